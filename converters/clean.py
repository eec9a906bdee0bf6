"""PII scrubbing and the text folding used for near-duplicate detection.

Personal identifiers are replaced by typed placeholders. The patterns are
anchored so they never fire inside longer digit runs, which keeps the numbers
medicine is made of (blood pressure 180/110mmHg, HbA1c 8.2%, doses, dates of
illness) untouched.
"""

from __future__ import annotations

import re
from collections import Counter

PLACEHOLDERS = {
    "email": "[EMAIL]",
    "url": "[URL]",
    "id_number": "[ID_NUMBER]",
    "mobile": "[PHONE]",
    "landline": "[PHONE]",
}

_NO_DIGIT_BEFORE = r"(?<![0-9A-Za-z])"
_NO_DIGIT_AFTER = r"(?![0-9A-Za-z])"
PII_PATTERN = re.compile(
    "|".join(
        [
            r"(?P<email>[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,})",
            r"(?P<url>(?:https?://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+)",
            # 18-digit resident identity number; kept only when its checksum holds.
            _NO_DIGIT_BEFORE + r"(?P<id_number>[1-9]\d{16}[0-9Xx])" + _NO_DIGIT_AFTER,
            # Mobile: 1[3-9]x xxxx xxxx, optionally +86, with optional - or space groups.
            _NO_DIGIT_BEFORE
            + r"(?P<mobile>(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2})"
            + _NO_DIGIT_AFTER,
            # Landline: area code 0xx(x) written with a dash, space or parentheses.
            _NO_DIGIT_BEFORE
            + r"(?P<landline>(?:\(0\d{2,3}\)|（0\d{2,3}）|0\d{2,3}[- ])\d{7,8}(?:-\d{1,5})?)"
            + _NO_DIGIT_AFTER,
        ]
    )
)
# Every pattern above needs '@', a URL marker, or seven digits in a row once
# separators are folded away: a cheap test that rules out most records.
_SEVEN_DIGITS = re.compile(r"[0-9]{7}")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_id_number(number: str) -> bool:
    """GB 11643 checksum of an 18-character resident identity number."""
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def might_hold_pii(text: str, folded: str) -> bool:
    """False when `text` (and `folded`, its fold()) cannot hold any identifier we scrub."""
    if "@" in text or "www." in text or "://" in text:
        return True
    return _SEVEN_DIGITS.search(folded) is not None


def scrub_pii(text: str, counts: Counter) -> str:
    """Replace personal identifiers in `text`; add what was replaced to `counts`."""

    def replace(match: re.Match) -> str:
        kind = match.lastgroup
        if kind == "id_number" and not valid_id_number(match.group(kind)):
            return match.group(0)
        counts[kind] += 1
        return PLACEHOLDERS[kind]

    return PII_PATTERN.sub(replace, text)


def _fold_table() -> list[int | None]:
    """Delete whitespace, punctuation and symbols; map full-width letters and digits to ASCII.

    A list indexed by code point: str.translate leaves characters past its end
    (CJK ideographs and beyond) unchanged, and a list lookup is twice as fast
    as a dict's -- the fold runs over every character of every record.
    """
    table: list[int | None] = []
    for code in range(0xFF66):
        char = chr(code)
        if 0xFF10 <= code <= 0xFF5E and char.isalnum():
            table.append(code - 0xFEE0)
        elif char.isalnum() or 0x3100 <= code < 0xFE10:
            table.append(code)
        else:
            table.append(None)
    return table


_FOLD = _fold_table()


def fold(text: str) -> str:
    """Whitespace-, punctuation-, width- and case-insensitive form of `text`."""
    return text.translate(_FOLD).lower()

"""PII scrubbing and the text folding used for near-duplicate detection.

Personal identifiers are replaced by typed placeholders. The patterns are
anchored so they never fire inside longer digit runs, which keeps the numbers
medicine is made of (blood pressure 180/110mmHg, HbA1c 8.2%, doses, dates of
illness) untouched.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import Counter

import numpy as np

# Each identifier kind: its pattern, its placeholder, and what every match holds once
# the fold has removed separators -- a literal marker or a run of digits -- which the
# cheap pre-check in fold_batch looks for. One table, so the two never drift apart.
_NO_DIGIT_BEFORE = r"(?<![0-9A-Za-z])"
_NO_DIGIT_AFTER = r"(?![0-9A-Za-z])"
PII_KINDS = {
    "email": (
        r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
        "[EMAIL]",
        ("@",),
    ),
    "url": (
        r"(?:https?://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+",
        "[URL]",
        ("://", "www."),
    ),
    # 18-digit resident identity number; kept only when its checksum holds.
    "id_number": (
        _NO_DIGIT_BEFORE + r"[1-9]\d{16}[0-9Xx]" + _NO_DIGIT_AFTER,
        "[ID_NUMBER]",
        17,
    ),
    # Mobile: 1[3-9]x xxxx xxxx, optionally +86, with optional - or space groups.
    "mobile": (
        _NO_DIGIT_BEFORE + r"(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}" + _NO_DIGIT_AFTER,
        "[PHONE]",
        11,
    ),
    # Landline: area code 0xx(x) written with a dash, space or parentheses.
    "landline": (
        _NO_DIGIT_BEFORE
        + r"(?:\(0\d{2,3}\)|（0\d{2,3}）|0\d{2,3}[- ])\d{7,8}(?:-\d{1,5})?"
        + _NO_DIGIT_AFTER,
        "[PHONE]",
        7,
    ),
}
PLACEHOLDERS = {kind: placeholder for kind, (_, placeholder, _) in PII_KINDS.items()}
PII_PATTERN = re.compile(
    "|".join(f"(?P<{kind}>{pattern})" for kind, (pattern, _, _) in PII_KINDS.items())
)
# What the pre-check looks for: every literal marker, and the shortest run of digits.
_PII_MARKERS = tuple(
    m for *_, found in PII_KINDS.values() if isinstance(found, tuple) for m in found
)
_PII_DIGITS = min(found for *_, found in PII_KINDS.values() if isinstance(found, int))
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_id_number(number: str) -> bool:
    """GB 11643 checksum of an 18-character resident identity number."""
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


AUDIT_CONTEXT = 20  # characters on each side of a replaced span, in the audit


def audit_entry(text: str, start: int, end: int, entity: str, new: str, rule: str) -> dict:
    """One replaced span for the audit file, the original marked 【like this】 in context."""
    before, after = text[max(0, start - AUDIT_CONTEXT) : start], text[end : end + AUDIT_CONTEXT]
    return {
        "entity": entity,
        "original": text[start:end],
        "replacement": new,
        "context": f"{before}【{text[start:end]}】{after}",
        "rule": rule,
    }


def scrub_pii(text: str, counts: Counter, replaced: list | None = None) -> str:
    """Replace personal identifiers in `text`; add what was replaced to `counts`, and
    each replacement's audit entry to `replaced`."""

    def replace(match: re.Match) -> str:
        kind = match.lastgroup
        if kind == "id_number" and not valid_id_number(match.group(kind)):
            return match.group(0)
        counts[kind] += 1
        if replaced is not None:
            replaced.append(
                audit_entry(text, *match.span(), kind, PLACEHOLDERS[kind], "basic scrubber")
            )
        return PLACEHOLDERS[kind]

    return PII_PATTERN.sub(replace, text)


UNICODE, BMP = 0x110000, 0x10000  # code points in all, and in the Basic Multilingual Plane


@functools.cache
def fold_table(size: int = UNICODE) -> np.ndarray:
    """Code point -> folded code point (0: delete) for the first `size` code points.

    Keeps exactly the letters and numbers of every script (`str.isalnum`) and
    deletes everything else: whitespace, punctuation, symbols and emoji,
    combining marks, controls -- what two copies of one text differ in. Maps
    full-width letters and every script's decimal digits to ASCII, then
    lower-cases. Built once per process; the BMP folds into itself, so text
    within it needs only the first 64k entries, which take a tenth of the time.
    """
    table = np.arange(size, dtype=np.uint32)
    every = _every_character(size)
    alnum = np.zeros(size, dtype=bool)
    alnum[[m.start() for m in re.finditer(r"[^\W_]", every)]] = True  # \w: isalnum or _
    table[~alnum] = 0
    full_width = np.arange(0xFF10, 0xFF5F)
    full_width = full_width[alnum[full_width]]
    table[full_width] = full_width - 0xFEE0
    digits = [m.start() for m in re.finditer(r"\d", every)]  # \d is isdecimal()
    table[digits] = [ord("0") + int(every[code]) for code in digits]
    return _lower_table(size)[table]


@functools.cache
def bmp_fold_table() -> np.ndarray:
    """fold_table() of the BMP in 16 bits: what text without astral characters needs."""
    return fold_table(BMP).astype(np.uint16)


def _every_character(size: int) -> str:
    return np.arange(size, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")


def _lower_table(size: int) -> np.ndarray:
    """Code point -> its lower case, all at once: one str.lower over every character."""
    spaced = np.zeros(2 * size, dtype=np.uint32)  # NULs between: no final-sigma context
    spaced[0::2] = np.arange(size)
    spaced[2 * ord("İ")] = ord("I")  # the one character whose lower case is two
    text = spaced.tobytes().decode("utf-32-le", "surrogatepass").lower()
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)[0::2]


_END = "\x01"


def fold_batch(texts: list[str]) -> tuple[list[memoryview], np.ndarray]:
    """fold() of each text as UTF-16-LE bytes, and whether each might hold an identifier.

    A table lookup over the code points of many texts at once in numpy costs a
    fraction of a per-text str.translate; the fold runs over every character of
    every record. The folds stay in UTF-16, the form the lookup works in: they
    are only hashed, and a UTF-8 round trip would cost as much as the lookup.
    """
    # Each text is followed by U+0001, which the fold deletes inside texts but
    # keeps at these places: the folded batch then splits back into its texts.
    joined = _END.join(texts) + _END
    ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
    ends += np.arange(len(texts))  # the position of each text's end mark
    utf16 = joined.encode("utf-16-le", "surrogatepass")
    if len(utf16) == 2 * len(joined):  # all in the BMP, as Chinese is: half the bytes to move
        codes = np.frombuffer(utf16, dtype=np.uint16)
        folded = _folded(codes, bmp_fold_table(), ends)
    else:
        codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        wide = _folded(codes, fold_table(), ends).tobytes().decode("utf-32-le", "surrogatepass")
        folded = np.frombuffer(wide.encode("utf-16-le", "surrogatepass"), dtype=np.uint16)
    marks = np.flatnonzero(folded == ord(_END))
    view = memoryview(folded.tobytes())
    starts = (2 * np.concatenate(([0], marks + 1))).tolist()  # byte offsets; marks take 2 bytes
    keys = [view[start : end - 2] for start, end in itertools.pairwise(starts)]

    suspect = np.zeros(len(texts), dtype=bool)
    digits = np.flatnonzero((folded - ord("0")) < 10)  # unsigned: below '0' wraps around
    last = _PII_DIGITS - 1  # a run of seven: the digit six places on is six code points on
    runs = digits[:-last][digits[last:] - digits[:-last] == last]
    suspect[np.searchsorted(marks, runs)] = True
    for marker in _PII_MARKERS:
        suspect[np.searchsorted(ends, _occurrences(codes, marker))] = True
    return keys, suspect


def _folded(codes: np.ndarray, table: np.ndarray, ends: np.ndarray) -> np.ndarray:
    mapped = np.take(table, codes)
    mapped[ends] = ord(_END)
    return mapped[mapped != 0]


def _occurrences(codes: np.ndarray, marker: str) -> np.ndarray:
    """Where `marker` starts in `codes`: one pass for its first character, then its candidates."""
    room = max(len(codes) - len(marker) + 1, 0)  # where a whole marker still fits
    found = np.flatnonzero(codes[:room] == ord(marker[0]))
    for offset, char in enumerate(marker[1:], start=1):
        found = found[codes[found + offset] == ord(char)]
    return found


def fold(text: str) -> str:
    """`text` with only its letters and numbers, full-width and digits of every script as
    ASCII, lower case: what near-duplicate detection compares (fold_table says exactly)."""
    return str(fold_batch([text])[0][0], "utf-16-le", "surrogatepass")

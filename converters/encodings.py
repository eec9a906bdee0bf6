"""Which encoding a text file of Chinese records is in: UTF-8, UTF-16, GBK/GB18030 or Big5.

A BOM settles UTF-8 and UTF-16 (Excel's "Unicode text"); a file that decodes as
UTF-8 is UTF-8. Otherwise GB18030 (a superset of GBK and GB2312) decodes almost
any bytes, Big5 (Traditional Chinese, Hong Kong and Taiwan) included, into
valid-looking mojibake: so every candidate that decodes the whole file is
scored, and the one whose characters are the common ones of its own code table
wins. Each table lists its common characters first (GB2312's level 1, Big5's
frequently used ones), and a wrong reading lands mostly outside them (Big5 read
as GBK gives 繷礹, GBK read as Big5 gives 芛芫). When the readings are too close
to tell, or the text too short, the file is refused with both readings shown.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from converters.records import SourceError

GB = "gb18030"  # a superset of GBK and GB2312
# Big5 as written by Windows (cp950) and with Hong Kong's supplement (HKSCS) too.
BIG5_CODECS = ("big5", "cp950", "big5hkscs")
NAMES = {GB: "GBK/GB18030", "big5": "Big5", "cp950": "Big5", "big5hkscs": "Big5-HKSCS"}
OPTION = {GB: "gb18030", "big5": "big5", "cp950": "cp950", "big5hkscs": "big5hkscs"}
SAMPLE_CHARS = 20_000  # non-ASCII characters scored per reading
MIN_CHARS = 4  # fewer non-ASCII characters than this cannot tell two readings apart
MIN_SHARE = 0.8  # of the winner's characters, in its table's common part
MIN_MARGIN = 0.3  # over the other reading's share
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def resolve_encoding(path: Path, encoding: str | None, option: str = "--encoding") -> str:
    """`encoding` checked over the whole file, or the one detected."""
    if encoding is None:
        return detect_encoding(path, option)
    check_encoding(path, encoding, option)
    return encoding


def detect_encoding(path: Path, option: str = "--encoding") -> str:
    """The codec that reads the file as the text it was written as; a file whose
    encoding cannot be told is refused, naming the candidates."""
    with open(path, "rb") as data:
        head = data.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return _checked(path, "utf-8-sig", option)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _checked(path, "utf-16", option)
    if _reading(path, "utf-8") is not None:
        return "utf-8"
    # Scored on the file's first SAMPLE_CHARS non-ASCII characters; only the winner
    # decodes the rest, so a large file is read whole once, as before Big5 was tried.
    readings = {GB: _reading(path, GB, whole=False)}
    for big5 in BIG5_CODECS:  # the first of the family that reads the sample
        readings[big5] = _reading(path, big5, whole=False)
        if readings[big5] is not None:
            break
    readings = {codec: text for codec, text in readings.items() if text is not None}
    if len(readings) == 2:
        chosen = _likelier(readings[GB], GB, readings[big5], big5)
        if chosen is None:
            raise SourceError(
                f"{path}: cannot tell whether it is GBK/GB18030 or Big5: it reads as "
                f"{_shown(readings[GB])} in GBK and as {_shown(readings[big5])} in Big5; pass "
                f"the right one with {option} gb18030 or {option} {OPTION[big5]}"
            )
    else:
        chosen = next(iter(readings), None)
    if chosen is None:
        raise SourceError(
            f"{path}: neither UTF-8, GBK/GB18030 nor Big5 ({first_bad_byte(path, 'utf-8')}); "
            f"pass its encoding with {option} (e.g. shift_jis, latin-1)"
        )
    if _reading(path, chosen) is None:
        raise SourceError(
            f"{path}: {NAMES[chosen]} at first, then not ({first_bad_byte(path, chosen)}); "
            f"pass its encoding with {option}, or mend that line"
        )
    return chosen


def check_encoding(path: Path, encoding: str, option: str = "--encoding") -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise SourceError(f"{option} {encoding}: unknown encoding") from None
    if _reading(path, encoding) is None:
        raise SourceError(
            f"{path}: not {encoding} ({first_bad_byte(path, encoding)}); pass the file's "
            f"encoding with {option}, or leave it out to detect UTF-8, GBK/GB18030 and Big5"
        )


def _checked(path: Path, encoding: str, option: str) -> str:
    check_encoding(path, encoding, option)
    return encoding


def _reading(path: Path, encoding: str, whole: bool = True) -> str | None:
    """The first non-ASCII characters of the file read in `encoding` (what scoring
    needs), or None when a byte does not decode: of the whole file, or (not `whole`)
    of the part that holds those characters."""
    decoder = codecs.getincrementaldecoder(encoding)()
    sample: list[str] = []
    kept = 0
    try:
        with open(path, "rb") as data:
            while block := data.read(1 << 16):
                text = decoder.decode(block)
                if kept < SAMPLE_CHARS:
                    runs = _NON_ASCII.findall(text)
                    sample += runs
                    kept += sum(map(len, runs))
                elif not whole:
                    break
            else:
                decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    return "".join(sample)[:SAMPLE_CHARS]


def common_share(text: str, codec: str) -> float:
    """The share of the characters that lie in the common part of `codec`'s table:
    GB2312's punctuation and level-1 characters (the 3,755 most used), Big5's
    symbols and frequently used characters (5,401)."""
    if not text:
        return 0.0
    big5 = codec != GB
    hits = 0
    for char in text:
        code = char.encode(codec, errors="replace")
        if len(code) != 2:
            continue  # a GB18030 four-byte character: rare, outside every common part
        lead, trail = code
        if big5:
            value = lead << 8 | trail
            hits += 0xA140 <= value <= 0xA3BF or 0xA440 <= value <= 0xC67E
        else:
            hits += trail >= 0xA1 and (0xA1 <= lead <= 0xA3 or 0xB0 <= lead <= 0xD7)
    return hits / len(text)


def _likelier(gb_text: str, gb: str, big5_text: str, big5: str) -> str | None:
    """The codec whose reading is clearly made of its table's common characters."""
    scores = {gb: common_share(gb_text, gb), big5: common_share(big5_text, big5)}
    best, other = sorted(scores, key=scores.get, reverse=True)
    enough = min(len(gb_text), len(big5_text)) >= MIN_CHARS
    if enough and scores[best] >= MIN_SHARE and scores[best] - scores[other] >= MIN_MARGIN:
        return best
    return None


def _shown(text: str) -> str:
    return f"“{text[:16]}”"


def first_bad_byte(path: Path, encoding: str) -> str:
    """'line N, byte M' of the first byte `encoding` cannot decode."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, line = 0, 1
    with open(path, "rb") as data:
        while block := data.read(1 << 20):
            pending = decoder.getstate()[0]  # bytes of a character cut by the last block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                at = error.start - len(pending)  # within this block
                line += block[: max(at, 0)].count(b"\n")
                return f"line {line}, byte {offset + at}"
            offset += len(block)
            line += block.count(b"\n")
    return f"byte {offset}"

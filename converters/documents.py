"""Medical documents (guidelines, textbooks, protocols) read and cut into chunks.

Markdown and plain text are read in their encoding (given, or detected: UTF-8,
UTF-16, GBK/GB18030 or Big5), PDF page by page with pypdf, DOCX paragraph by
paragraph with python-docx (its heading styles become Markdown headings).
Chunks follow the document's structure: a heading starts a new section,
paragraphs are packed up to `chunk_chars`, a paragraph longer than that is cut
at sentence ends (Chinese 。！？； as well as . ! ?), and each chunk
repeats up to `overlap` characters of whole sentences from the one before.
Every chunk keeps its file, heading and character range in the document's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from converters.encodings import resolve_encoding
from converters.records import SourceError

SUFFIXES = (".md", ".markdown", ".txt", ".pdf", ".docx")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|(?<=[.])(?=\s)")


@dataclass(frozen=True)
class Chunk:
    file: str
    index: int  # 0-based, in the document
    start: int  # character range in the document's text
    end: int
    heading: str  # the nearest heading above it ("" before the first)
    text: str


def read_document(path: Path, encoding: str | None = None) -> str:
    """The document's text; Markdown headings for DOCX heading styles. A text file is
    read in `encoding`, or in the one detected (UTF-8, UTF-16, GBK/GB18030, Big5)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    if suffix not in SUFFIXES:
        raise SourceError(f"{path}: not a document medfactory reads ({', '.join(SUFFIXES)})")
    if suffix == ".pdf":
        return _pdf_text(path)
    if suffix == ".docx":
        return _docx_text(path)
    text = path.read_bytes().decode(resolve_encoding(path, encoding))
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, OSError) as error:
        raise SourceError(f"{path}: not a readable PDF ({error})") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise SourceError(f"{path}: no text in the PDF (a scan? run OCR on it first)")
    return text


def _docx_text(path: Path) -> str:
    import zipfile

    import docx

    try:
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise SourceError(f"{path}: not a readable DOCX ({error})") from None
    lines = []
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name or "") if paragraph.style is not None else ""
        level = re.fullmatch(r"Heading (\d)", style) or re.fullmatch(r"标题 (\d)", style)
        if style == "Title":
            lines.append(f"# {text}")
        elif level:
            lines.append(f"{'#' * min(6, int(level.group(1)))} {text}")
        else:
            lines.append(text)
    return "\n\n".join(lines)


def _blocks(text: str) -> list[tuple[int, int, str | None]]:
    """(start, end, heading text or None) of each heading line and paragraph."""
    blocks: list[tuple[int, int, str | None]] = []
    paragraph: list[int] = []  # [start, end] of the paragraph being read
    offset = 0
    for line in text.split("\n"):
        end = offset + len(line)
        heading = HEADING.match(line)
        if heading or not line.strip():
            if paragraph:
                blocks.append((paragraph[0], paragraph[1], None))
                paragraph = []
            if heading:
                blocks.append((offset, end, heading.group(2)))
        else:
            paragraph = [paragraph[0] if paragraph else offset, end]
        offset = end + 1
    if paragraph:
        blocks.append((paragraph[0], paragraph[1], None))
    return blocks


def _sentences(text: str, start: int) -> list[tuple[int, int]]:
    spans, begin = [], 0
    for match in SENTENCE_END.finditer(text):
        if match.start() > begin:
            spans.append((start + begin, start + match.start()))
            begin = match.start()
    if begin < len(text):
        spans.append((start + begin, start + len(text)))
    return spans


def chunk_document(
    file: str, text: str, chunk_chars: int = 1500, overlap: int = 200
) -> list[Chunk]:
    """The document cut into chunks of about `chunk_chars`, within its sections."""
    if chunk_chars < 100:
        raise SourceError(f"--chunk-chars {chunk_chars}: at least 100")
    if not 0 <= overlap < chunk_chars // 2:
        raise SourceError(f"--overlap {overlap}: from 0 to half of --chunk-chars")
    sections: list[tuple[str, list[tuple[int, int]]]] = [("", [])]
    for start, end, heading in _blocks(text):
        if heading is not None:
            sections.append((heading, []))
            continue
        if end - start <= chunk_chars:
            sections[-1][1].append((start, end))
        else:  # a long paragraph: its sentences, each cut to size if need be
            for s_start, s_end in _sentences(text[start:end], start):
                for piece in range(s_start, s_end, chunk_chars):
                    sections[-1][1].append((piece, min(s_end, piece + chunk_chars)))
    chunks: list[Chunk] = []
    for heading, spans in sections:
        packed: list[tuple[int, int]] = []
        for span in spans:
            if packed and span[1] - packed[0][0] > chunk_chars:
                chunks.append(_chunk(file, len(chunks), heading, text, packed))
                packed = _overlap(text, packed, overlap)
            packed.append(span)
        if packed and any(text[s:e].strip() for s, e in packed):
            chunks.append(_chunk(file, len(chunks), heading, text, packed))
    return chunks


def _overlap(text: str, packed: list[tuple[int, int]], overlap: int) -> list[tuple[int, int]]:
    """The last whole sentences of `packed`, at most `overlap` characters of them."""
    end = packed[-1][1]
    sentences = [s for start, stop in packed for s in _sentences(text[start:stop], start)]
    kept = [s for s in sentences if end - s[0] <= overlap]
    return [(kept[0][0], end)] if kept and overlap else []


def _chunk(file: str, index: int, heading: str, text: str, spans: list) -> Chunk:
    start, end = spans[0][0], spans[-1][1]
    return Chunk(file, index, start, end, heading, text[start:end])

"""One way to write a report, read a JSON-lines file and set up a chart.

Every report is `NAME.json` (UTF-8, indent 1, non-ASCII kept as is), `NAME.md`
and, where it has a chart, `NAME.png` beside them; the Markdown names the
chart. Every JSON-lines file is read with the line number of each record, so
an error can name it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


def dumps(data) -> str:
    """JSON as every report and summary is written: UTF-8 text, indent 1."""
    return json.dumps(data, ensure_ascii=False, indent=1)


def write_json(path: Path, data) -> Path:
    """`data` as JSON at `path`, written whole (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(dumps(data) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def read_json_object(path: Path) -> dict:
    """A JSON object kept between runs (a run's state), or {} when it is missing,
    unreadable or not an object: the caller then starts as if there were none."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def write_jsonl(path: Path, rows: Iterable) -> Path:
    """One JSON object per line at `path`, written whole: a temporary file renamed over the
    old one, so a reader never sees half a file and a failure leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with temporary.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    os.replace(temporary, path)
    return path


def write_report(
    report: dict,
    out: Path,
    to_markdown: Callable[[dict, str | None], str],
    draw: Callable[[dict, Path], Path] | None = None,
    stem: str = "report",
) -> dict:
    """STEM.json, STEM.png (`draw`, if any) and STEM.md (`to_markdown`) in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{stem}.json", report)
    png = draw(report, out / f"{stem}.png") if draw else None
    (out / f"{stem}.md").write_text(
        to_markdown(report, png.name if png else None), encoding="utf-8"
    )
    return report


def number(value: float | None, digits: int = 2) -> str:
    """A figure for a Markdown table: "-" where there is none (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def read_jsonl(path: Path, errors: str = "strict") -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line of a JSON-lines file, counting from 1.

    Decoding each line is the caller's: what a bad line means differs (a reject, an error).
    """
    with Path(path).open(encoding="utf-8", errors=errors) as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield number, line


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display on a server)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

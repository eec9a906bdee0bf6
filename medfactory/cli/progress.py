"""Progress bars for long work: a live bar on a terminal, nothing in CI logs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RecordsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        records = task.fields.get("records", 0)
        elapsed = task.elapsed or 0.0
        rate = records / elapsed if elapsed > 0 else 0.0
        return Text(f"{records:,} records  {rate:,.0f} rec/s")


@contextlib.contextmanager
def record_progress(
    description: str, total_bytes: int, enabled: bool = True
) -> Iterator[Callable[[int, int], None]]:
    """Yield `update(bytes_done, records_done)` driving a bar over the input bytes."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        RecordsPerSecond(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )
    task = progress.add_task(description, total=total_bytes or None, records=0)
    last = 0.0

    def update(done: int, records: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last > 0.1 or done >= total_bytes:  # redraw at most ten times a second
            progress.update(task, completed=done, records=records)
            last = now

    with progress:
        yield update


@contextlib.contextmanager
def count_progress(description: str, total: int, enabled: bool = True) -> Iterator[Callable]:
    """Yield `advance(n)` driving a bar over `total` items, with the rate."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )
    task = progress.add_task(description, total=total)
    with progress:
        yield lambda n=1: progress.advance(task, n)

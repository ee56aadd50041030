"""Progress for long work: a rich bar with throughput (rows/s) and ETA, silent when asked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


class Meter:
    """Counts named quantities and shows them per second beside a bar of `total` units."""

    def __init__(self, progress: Progress | None, task_id: TaskID | None, counters: tuple[str, ...]):
        self._progress = progress
        self._task = task_id
        self._started = time.perf_counter()
        self.counts = dict.fromkeys(counters, 0)
        self._last_refresh = 0.0

    def advance(self, completed: int | None = None, **increments: int) -> None:
        for name, amount in increments.items():
            self.counts[name] += amount
        now = time.perf_counter()
        if self._progress is None or self._task is None or (now - self._last_refresh < 0.2 and completed is None):
            return
        self._last_refresh = now
        elapsed = max(now - self._started, 1e-9)
        rates = "  ".join(f"{count:,} {name} {_rate(count / elapsed)}" for name, count in self.counts.items())
        self._progress.update(self._task, completed=completed, rates=rates)  # completed None: left as it is

    def seconds(self) -> float:
        return time.perf_counter() - self._started


def _rate(per_second: float) -> str:
    """Throughput a person can read: per second when fast, seconds per item when slow."""
    if per_second >= 1:
        return f"{per_second:,.0f}/s"
    return f"{1 / per_second:,.1f} s each" if per_second > 0 else "…"


@contextmanager
def meter(description: str, total: int | None, counters: tuple[str, ...], enabled: bool = True) -> Iterator[Meter]:
    """A bar over `total` units (bytes of input, questions…) that also shows each counter per second."""
    if not enabled:
        yield Meter(None, None, counters)
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=20),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[rates]}"),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        task_id = progress.add_task(description, total=total, rates="")
        m = Meter(progress, task_id, counters)
        yield m
        m.advance(completed=total)


def notice(text: str, enabled: bool = True) -> None:
    """A line for the person watching a long job (on stderr, above any bar)."""
    if enabled:
        console.print(text, highlight=False, soft_wrap=True)

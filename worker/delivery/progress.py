"""Progress of the downloads: one ``rich`` bar per file on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class DownloadProgress(Protocol):
    """What the downloader reports; ``task`` handles are the values :meth:`start` returned."""

    def start(self, name: str, total: int | None, done: int) -> int: ...

    def advance(self, task: int, amount: int) -> None: ...

    def restart(self, task: int, done: int, why: str) -> None: ...

    def finish(self, task: int, note: str) -> None: ...

    def note(self, text: str) -> None: ...


def human(size: float) -> str:
    """``1.5 MB`` (decimal units, as ``rich`` shows them)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


class BarProgress:
    """A ``rich`` progress bar per file: bytes, transfer rate and time left."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._names: dict[int, str] = {}

    def __enter__(self) -> BarProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def start(self, name: str, total: int | None, done: int) -> int:
        task = int(self._progress.add_task(escape(name), total=total, completed=done))
        self._names[task] = escape(name)
        return task

    def advance(self, task: int, amount: int) -> None:
        self._progress.advance(TaskID(task), amount)

    def restart(self, task: int, done: int, why: str) -> None:
        self._progress.update(TaskID(task), completed=done)
        self._progress.console.print(f"  [yellow]{escape(why)}[/]")

    def finish(self, task: int, note: str) -> None:
        self._progress.update(TaskID(task), description=f"{self._names[task]} [dim]{escape(note)}[/]")

    def note(self, text: str) -> None:
        self._progress.console.print(escape(text))


class LineProgress:
    """Plain lines (no terminal): a line when a file starts, resumes and ends, with its rate."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._tasks: list[tuple[str, float, int]] = []  # name, start time, bytes done at start
        self._done: list[int] = []

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def start(self, name: str, total: int | None, done: int) -> int:
        self._tasks.append((name, time.monotonic(), done))
        self._done.append(done)
        size = human(total) if total is not None else "size unknown"
        resumed = f", resuming at {human(done)}" if done else ""
        self._console.print(f"downloading {escape(name)} ({size}{resumed})", markup=False)
        return len(self._tasks) - 1

    def advance(self, task: int, amount: int) -> None:
        self._done[task] += amount

    def restart(self, task: int, done: int, why: str) -> None:
        self._done[task] = done
        self._console.print(f"  {why}", markup=False)

    def finish(self, task: int, note: str) -> None:
        name, started, first = self._tasks[task]
        moved = self._done[task] - first
        elapsed = max(time.monotonic() - started, 1e-6)
        self._console.print(
            f"{name}: {note} ({human(moved)} in {elapsed:.1f} s, {human(moved / elapsed)}/s)", markup=False
        )

    def note(self, text: str) -> None:
        self._console.print(text, markup=False)

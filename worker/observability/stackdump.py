"""A stack dump of the running process on ``SIGUSR1``, written to the log.

The shipped image has no debugger and the chart drops every capability (no ``ptrace``), so an
external profiler cannot attach to a pod. Instead the worker answers ``kill -USR1 1`` (or
``kubectl exec deploy/<release>-tasking-worker -- kill -USR1 1``) with one ``stack_dump`` log line
per dump, through the usual logging and redaction: every asyncio task (name, state, the frames it
is suspended in) and every thread (name, current frames). Nothing is stopped or changed; a dump
costs a few milliseconds on the event loop.

Frames carry file, line and function only, never local variables (they may hold credentials).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Any, Final

import structlog

log = structlog.get_logger(__name__)

#: Frames kept per task or thread, innermost last (enough to see where it waits).
MAX_FRAMES: Final = 30


def _frames(frames: list[FrameType]) -> list[str]:
    summary = traceback.StackSummary.extract(
        ((f, f.f_lineno) for f in frames[-MAX_FRAMES:]), lookup_lines=True, capture_locals=False
    )
    return [f"{s.filename}:{s.lineno} {s.name}: {(s.line or '').strip()}" for s in summary]


def _thread_frames(frame: FrameType | None) -> list[FrameType]:
    frames: list[FrameType] = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    return frames


def _awaited_frames(task: asyncio.Task[Any]) -> list[FrameType]:
    """The frames a task waits in, outermost first: its coroutine, then what each one awaits
    (``Task.get_stack`` gives only the outermost frame of a suspended coroutine)."""
    frames: list[FrameType] = []
    current: Any = task.get_coro()
    while current is not None and len(frames) < MAX_FRAMES:
        frame = getattr(current, "cr_frame", None) or getattr(current, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        current = getattr(current, "cr_await", None) or getattr(current, "gi_yieldfrom", None)
    return frames


def snapshot() -> dict[str, Any]:
    """Every asyncio task of the running loop (when there is one) and every thread, with frames."""
    tasks: list[dict[str, Any]] = []
    with contextlib.suppress(RuntimeError):  # no running loop: threads only
        for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
            tasks.append(
                {
                    "name": task.get_name(),
                    "state": "done" if task.done() else "pending",
                    "coroutine": getattr(task.get_coro(), "__qualname__", repr(task.get_coro())),
                    "frames": _frames(_awaited_frames(task)),
                }
            )
    names = {t.ident: t.name for t in threading.enumerate()}
    threads = [
        {"name": names.get(ident, str(ident)), "frames": _frames(_thread_frames(frame))}
        for ident, frame in sys._current_frames().items()  # the documented way to read them
    ]
    return {"tasks": tasks, "threads": threads}


def dump() -> None:
    """Log one ``stack_dump`` line (warning level, so it shows at every log level)."""
    found = snapshot()
    log.warning("stack_dump", taskCount=len(found["tasks"]), threadCount=len(found["threads"]), **found)


def install(loop: asyncio.AbstractEventLoop) -> bool:
    """Dump on ``SIGUSR1`` from now on; ``False`` where the platform has no such signal."""
    usr1 = getattr(signal, "SIGUSR1", None)
    if usr1 is None:
        return False
    try:
        loop.add_signal_handler(usr1, dump)
    except (NotImplementedError, RuntimeError):
        return False
    return True

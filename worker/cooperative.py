"""Long stretches of work on the event loop, cut into bounded slices.

Everything of the worker shares one event loop with the Kafka consumer's heartbeat: a stretch of
synchronous work longer than the group's session timeout gets the instance evicted, and any
stretch delays every provider call, state write and probe behind it. Work over every owned order
(a poll cycle, a restore, the gauges) must therefore hand the loop back regularly. The helpers
here do it by time (:class:`Slicer`: at most ``SLICE_SECONDS`` between two yields) and by count
(:func:`gather_in_batches`: at most ``BATCH`` coroutines started per turn of the loop).

A yield is ``await asyncio.sleep(0)``: one turn of the loop, in which ready I/O callbacks (a
heartbeat answer, an acknowledgement) and due timers run before the work continues. It costs a few
microseconds; with slices of 10 ms a stretch of 15 s of work costs well under 1 % more.

Callers that iterate a container while yielding must iterate a copy (or a generator that copies):
the container may change during the yield.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

SLICE_SECONDS = 0.01
"""The longest stretch of work between two yields (well under the 20 ms the worker aims at)."""

BATCH = 64
"""Orders handled per batch where each may need a decode and a ``decide`` (~150 µs each)."""

IN_FLIGHT = 256
"""Orders of one poll cycle in flight at once (each may wait for a state write's ack)."""


async def yield_now() -> None:
    """One turn of the event loop."""
    await asyncio.sleep(0)


class Slicer:
    """Hands the loop back from inside a loop of work once ``budget`` seconds ran since the last
    yield. Per item: ``if slicer.used_up(): await slicer.rest()`` (one clock read when no yield
    is due), or ``await slicer.pause()`` where a coroutine call per item does not matter."""

    __slots__ = ("_budget", "_clock", "_since", "yields")

    def __init__(self, budget: float | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self._budget = SLICE_SECONDS if budget is None else budget  # read when built (tests set it)
        self._clock = clock
        self._since = clock()
        self.yields = 0

    def used_up(self) -> bool:
        return self._clock() - self._since >= self._budget

    async def rest(self) -> None:
        """Yield now; a new slice starts."""
        await yield_now()
        self.yields += 1
        self.restart()

    def restart(self) -> None:
        """Start a new slice (the caller was suspended anyway)."""
        self._since = self._clock()

    async def pause(self) -> None:
        """Yield if the slice is used up."""
        if self.used_up():
            await self.rest()


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last may be shorter), read lazily."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


async def gather_in_batches(
    items: Iterable[T],
    start: Callable[[T], Awaitable[R] | None],
    batch: int = BATCH,
    budget: float | None = None,
    limit: int | None = None,
) -> list[R | BaseException]:
    """Like ``asyncio.gather(*filter(None, map(start, items)), return_exceptions=True)``: the
    started coroutines run concurrently and the results come back in order. But

    - they are started ``batch`` at a time with one turn of the loop in between, so their
      synchronous first steps (often all of their work) never run more than ``batch`` to a turn;
    - ``start`` (which may skip an item by returning ``None``) is interrupted every ``budget``
      seconds (default ``SLICE_SECONDS``), so a long run of skipped items does not hold the
      loop either;
    - with ``limit``, at most ``limit`` of them are in flight at once (the next starts when one
      ends): 100,000 state writes started together would queue in the producer until they time
      out, the same writes ``limit`` at a time go through.

    Exceptions of the coroutines are returned, never raised (one item's failure must not stop the
    others). If the caller is cancelled, the coroutines started so far are cancelled with it.
    """
    tasks: list[asyncio.Future[R]] = []
    slicer = Slicer(budget)
    gate = asyncio.Semaphore(limit) if limit is not None else None
    pending = 0
    try:
        for item in items:
            work = start(item)
            if work is not None:
                if gate is not None:
                    waited = gate.locked()
                    try:
                        await gate.acquire()
                    except BaseException:
                        _close(work)
                        raise
                    if waited:  # the loop ran meanwhile: a new slice and batch start
                        slicer.restart()
                        pending = 0
                started: asyncio.Future[R] = asyncio.ensure_future(work)
                if gate is not None:
                    started.add_done_callback(_releaser(gate))
                tasks.append(started)
                pending += 1
            if pending >= batch or slicer.used_up():
                await slicer.rest()
                pending = 0
        results: list[R | BaseException] = await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:
        for future in tasks:
            future.cancel()
        raise
    return results


def _releaser(gate: asyncio.Semaphore) -> Callable[[object], None]:
    def release(_: object) -> None:
        gate.release()

    return release


def _close(work: Awaitable[object]) -> None:
    """Close a coroutine that will never be started (no "never awaited" warning)."""
    if inspect.iscoroutine(work):
        work.close()


def raise_first(results: Iterable[object]) -> None:
    """Raise the first exception among ``results`` (of :func:`gather_in_batches`), if any."""
    for result in results:
        if isinstance(result, BaseException):
            raise result

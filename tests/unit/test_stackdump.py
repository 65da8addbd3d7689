"""The stack dump names every task with the chain of coroutines it waits in, and every thread."""

from __future__ import annotations

import asyncio
import threading

from worker.observability.stackdump import snapshot


async def _innermost(release: asyncio.Event) -> None:
    await release.wait()


async def _outer(release: asyncio.Event) -> None:
    await _innermost(release)


async def test_a_task_shows_every_coroutine_it_waits_in_and_threads_are_listed() -> None:
    release = asyncio.Event()
    stop_thread = threading.Event()
    thread = threading.Thread(target=stop_thread.wait, name="probe-thread")
    thread.start()
    task = asyncio.create_task(_outer(release), name="probe-task")
    await asyncio.sleep(0)
    try:
        found = snapshot()
    finally:
        release.set()
        stop_thread.set()
        await task
        thread.join()
    (probe,) = [t for t in found["tasks"] if t["name"] == "probe-task"]
    assert probe["state"] == "pending"
    functions = [frame.split(" ", 2)[1].rstrip(":") for frame in probe["frames"]]
    assert functions[:2] == ["_outer", "_innermost"]
    (waiting,) = [t for t in found["threads"] if t["name"] == "probe-thread"]
    assert any(" wait: " in frame for frame in waiting["frames"])

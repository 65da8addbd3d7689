"""Timer jobs log as their own order, never with the context of whoever scheduled them."""

from __future__ import annotations

import asyncio

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from structlog.testing import capture_logs

from worker.domain.model import TimerKind
from worker.runtime.timers import Timers


class NoMetrics:
    def scheduler_job(self, job: str, ok: bool) -> None:
        return None

    def poll_succeeded(self, provider: str) -> None:
        return None


async def test_timer_job_does_not_inherit_the_scheduling_context() -> None:
    fired = asyncio.Event()

    async def fire(request_id: str, kind: TimerKind) -> None:
        structlog.get_logger().info("timer_work")
        fired.set()

    scheduler = AsyncIOScheduler()
    scheduler.start()
    try:
        timers = Timers(scheduler, fire, NoMetrics())
        structlog.contextvars.bind_contextvars(requestId="someone-else", offset=41)
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            from datetime import UTC, datetime

            timers.schedule("order-1", TimerKind.RETRY, datetime.now(UTC))
            structlog.contextvars.clear_contextvars()
            await asyncio.wait_for(fired.wait(), 5)
    finally:
        scheduler.shutdown(wait=False)
        structlog.contextvars.clear_contextvars()
    work = [line for line in logs if line["event"] == "timer_work"]
    assert work
    assert work[0]["requestId"] == "order-1"
    assert "offset" not in work[0]

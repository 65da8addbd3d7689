"""Logging: one JSON object per line, context merged, libraries routed, secrets redacted."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from worker.observability.logging import LIBRARY_LOGGERS, REDACTED, Redactor, configure_logging

SECRET = "sk-live-0123456789abcdef"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("INFO", "json", [SECRET], stream=out)
    yield out
    reset_logging()


def reset_logging() -> None:
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    for name in LIBRARY_LOGGERS:  # leave no raised level behind for other tests
        logging.getLogger(name).setLevel(logging.NOTSET)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_shape(stream: io.StringIO) -> None:
    structlog.get_logger("worker.intake").info("order accepted", sequence=1)
    (line,) = lines(stream)
    assert line["event"] == "order accepted"
    assert line["level"] == "info"
    assert line["logger"] == "worker.intake"
    assert line["sequence"] == 1
    assert line["timestamp"].endswith("Z")
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]


def test_context_variables_are_in_every_line(stream: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(
        requestId="req-1", provider="up42", topic="t", partition=2, offset=17
    )
    structlog.get_logger().info("one")
    logging.getLogger("aiokafka.consumer").info("two")
    for line in lines(stream):
        assert (line["requestId"], line["provider"], line["partition"], line["offset"]) == (
            "req-1",
            "up42",
            2,
            17,
        )


def test_stdlib_loggers_are_routed_and_filtered_by_level(stream: io.StringIO) -> None:
    logging.getLogger("httpx").warning("HTTP Request: %s %s failed", "GET", "https://api.up42.com")
    logging.getLogger("apscheduler").debug("below the level")
    (line,) = lines(stream)
    assert line["event"] == "HTTP Request: GET https://api.up42.com failed"
    assert line["logger"] == "httpx"


def test_at_info_libraries_write_only_warnings_and_the_worker_its_events(stream: io.StringIO) -> None:
    for name in ("httpx", "httpcore.http11", "aiokafka.consumer.group_coordinator", "uvicorn.access"):
        logging.getLogger(name).info("routine of %s", name)
    logging.getLogger("aiokafka.conn").warning("connection lost")
    structlog.get_logger("worker.runtime.intake").info("partitions_assigned", partitions=[0, 1])
    assert [(line["logger"], line["event"]) for line in lines(stream)] == [
        ("aiokafka.conn", "connection lost"),
        ("worker.runtime.intake", "partitions_assigned"),
    ]


async def run_one_job(job: Callable[[], Awaitable[None]], *, fails: bool = False) -> None:
    """Run ``job`` once on a real AsyncIOScheduler; return after the scheduler has logged its end."""
    done = asyncio.Event()
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_listener(lambda _: done.set(), EVENT_JOB_ERROR if fails else EVENT_JOB_EXECUTED)
    scheduler.start()
    try:
        scheduler.add_job(job, "date", run_date=datetime.now(UTC), id="timer-1")
        await asyncio.wait_for(done.wait(), 10)
    finally:
        scheduler.shutdown(wait=False)


async def timer_work() -> None:
    structlog.get_logger("worker.runtime.timers").info("timer_fired", requestId="r-1")


async def test_a_timer_run_at_info_writes_the_workers_event_only(stream: io.StringIO) -> None:
    await run_one_job(timer_work)
    assert [(line["logger"], line["event"]) for line in lines(stream)] == [
        ("worker.runtime.timers", "timer_fired")
    ]


async def test_a_failing_timer_run_still_reports_the_schedulers_error(stream: io.StringIO) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    await run_one_job(broken, fails=True)
    (line,) = lines(stream)
    assert line["logger"].startswith("apscheduler")
    assert line["level"] == "error"
    assert "raised an exception" in line["event"]


async def test_at_debug_the_schedulers_routine_is_written_too() -> None:
    out = io.StringIO()
    configure_logging("DEBUG", "json", [], stream=out)
    try:
        await run_one_job(timer_work)
    finally:
        reset_logging()
    events = [line["event"] for line in lines(out) if line["logger"].startswith("apscheduler")]
    assert any(e.startswith("Running job") for e in events), events
    assert any(e.endswith("executed successfully") for e in events), events
    assert "timer_fired" in [line["event"] for line in lines(out)]


@pytest.mark.parametrize(("level", "expected"), [("DEBUG", "DEBUG"), ("INFO", "WARNING"), ("ERROR", "ERROR")])
def test_library_level_follows_the_worker_level(level: str, expected: str) -> None:
    configure_logging(level, "json", [], stream=io.StringIO())
    try:
        levels = {
            logging.getLevelName(logging.getLogger(name).getEffectiveLevel()) for name in LIBRARY_LOGGERS
        }
    finally:
        reset_logging()
    assert levels == {expected}


def test_secret_values_and_tokens_are_redacted(stream: io.StringIO) -> None:
    log = structlog.get_logger()
    log.info(
        f"calling with key {SECRET}",
        headers={"Authorization": "Bearer eyJhbGciOi.payload.sig", "Accept": "json"},
        body='{"access_token": "tok-123", "expires_in": 300}',
        url="https://x.example/token?apikey=abc123&b=1",
        password="hunter2",
        nested=[{"text": f"Authorization: Basic {SECRET}"}],
    )
    logging.getLogger("aiokafka").warning("sasl password=%s", "kafka-pw")
    text = stream.getvalue()
    for leaked in (SECRET, "eyJhbGciOi", "tok-123", "abc123", "hunter2", "kafka-pw"):
        assert leaked not in text
    first = lines(stream)[0]
    assert first["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert first["password"] == REDACTED
    assert json.loads(first["body"]) == {"access_token": REDACTED, "expires_in": 300}


def test_tracebacks_have_no_locals_and_are_redacted(stream: io.StringIO) -> None:
    def fail() -> None:
        api_key = "local-credential-value"
        raise RuntimeError(f"refused Bearer abc.def for {SECRET} ({len(api_key)})")

    try:
        fail()
    except RuntimeError:
        structlog.get_logger().exception("provider call failed")
    try:
        fail()
    except RuntimeError:
        logging.getLogger("httpx").exception("library failure")
    text = stream.getvalue()
    assert "local-credential-value" not in text
    assert SECRET not in text
    assert "abc.def" not in text
    for line in lines(stream):
        (exception,) = line["exception"]
        assert exception["exc_type"] == "RuntimeError"
        assert all("locals" not in frame for frame in exception["frames"])
        assert any(frame["name"] == "fail" for frame in exception["frames"])


def test_console_format_renders_text_and_redacts() -> None:
    out = io.StringIO()
    configure_logging("DEBUG", "console", [SECRET], stream=out)
    try:
        structlog.get_logger().debug("hello", token=SECRET, requestId="r-1")
    finally:
        structlog.reset_defaults()
    text = out.getvalue()
    assert "hello" in text
    assert "requestId=r-1" in text
    assert SECRET not in text


def test_redactor_works_with_capture_logs() -> None:
    redactor = Redactor([SECRET])
    with structlog.testing.capture_logs(processors=[redactor]) as captured:
        structlog.get_logger().info("x", detail=f"uses {SECRET}", items=(SECRET, 1))
    assert captured[0]["detail"] == f"uses {REDACTED}"
    assert captured[0]["items"] == [REDACTED, 1]


def test_failed_write_never_dumps_the_record(stream: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    stream.close()  # every write now fails
    structlog.get_logger().info("lost", password="hunter2", detail=SECRET)
    err = capsys.readouterr().err
    assert "could not be written" in err
    assert SECRET not in err
    assert "hunter2" not in err


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("LOUD", "json", [])

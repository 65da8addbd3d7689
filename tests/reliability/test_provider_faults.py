"""Every provider fault at once, and the secrets of that run.

One run of a real worker process against both simulators with, all at the same time: random 5xx,
429 with ``Retry-After``, latency spikes (some longer than the client timeout), a paid ``POST`` that
succeeds but answers after the client timeout (both providers), a 5xx on the paid ``POST``, and
every token expired every 1.5 s. The tests then check (CONTRACT §7, §8):

* every order completes, with exactly one paid order (and one accepted UP42 quotation) each;
* retries are bounded and counted: ``tasking_provider_retries_total`` is positive and never more
  than the failed attempts, and ``tasking_provider_requests_total{outcome=...}`` counts exactly
  the 429s and at least the 5xx the simulators answered;
* no secret (OneAtlas API key, UP42 password, any token the simulators issued) appears in the
  worker's stdout, in any record of any topic (keys, values, headers; the state changelog too), or
  in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from harness import (
    RunVerdict,
    Stack,
    checked,
    http_get,
    metric_value,
    mixed_requests,
    read_topic,
    reliability_stack,
    spawn_worker,
    wait_all_terminal,
    wait_ready,
)
from reliability_sizes import DEFAULT

from worker.config import TopicSettings
from worker.kafka.broker import EmbeddedBroker
from worker.simulators.common import Fault, SimulatorCore

pytestmark = pytest.mark.integration

ONEATLAS_API = r"/api/.*"
UP42_API = r"/v2/.*|/orders/schema/.*"


def inject_everything(stack: Stack) -> None:
    """All fault classes on both providers' API paths (token endpoints stay healthy so the
    counts below compare like with like; tokens are expired separately)."""
    for sim, api, paid in (
        (stack.sims.oneatlas, ONEATLAS_API, "/api/v1/orders"),
        (stack.sims.up42, UP42_API, "/v2/orders"),
    ):
        sim.inject(Fault("lost_response", path=paid, method="POST", delay=2.0, times=1))
        sim.inject(Fault("status", path=paid, method="POST", status=503, times=1))
        sim.inject(Fault("status", path=api, status=503, probability=0.08, times=None))
        sim.inject(Fault("status", path=api, status=429, retry_after=0.3, probability=0.08, times=None))
        sim.inject(Fault("latency", path=api, delay=0.3, probability=0.08, times=None))
        sim.inject(Fault("latency", path=api, method="GET", delay=1.2, probability=0.03, times=None))


async def expire_tokens_forever(stack: Stack, every: float = 1.5) -> None:
    while True:
        await asyncio.sleep(every)
        stack.sims.oneatlas.expire_tokens()
        stack.sims.up42.expire_tokens()


def _answered(core: SimulatorCore, status: int, fault: str = "status") -> int:
    return sum(1 for c in core.calls if c.status == status and c.fault == fault)


@dataclass
class FaultyRun:
    verdict: RunVerdict
    metrics: str
    log: str
    topics: dict[str, list[bytes]]
    secrets: dict[str, str]
    answered_429: int
    answered_5xx: int
    lost_responses: int


@pytest.fixture(scope="module")
async def faulty_run(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FaultyRun]:
    suffix = uuid.uuid4().hex[:8]
    topics = TopicSettings(**{k: f"{v}.{suffix}" for k, v in TopicSettings().model_dump().items()})
    log_dir = tmp_path_factory.mktemp("faults")
    async with reliability_stack(broker, topics) as (stack, events):
        # DEBUG: the secret checks then read everything the worker and its libraries can log.
        # No harvest after COMPLETED: the counts below compare the worker's metrics with what the
        # simulators answered, so nothing may call them once every order is finished.
        worker = spawn_worker(
            stack,
            log_dir / "worker.log",
            TASKING_LOG_LEVEL="DEBUG",
            TASKING_TRACKING__HARVEST_AFTER_COMPLETION_SECONDS="0",
        )
        expiry = asyncio.create_task(expire_tokens_forever(stack))
        try:
            await wait_ready(worker)
            inject_everything(stack)
            requests = mixed_requests("faults", max(10, DEFAULT.requests // 2), stack.sims)
            await stack.publish(*requests)
            await wait_all_terminal(events, requests, 180)
            _, metrics = await http_get(worker.http_port, "/metrics")
            found = await checked(stack, events, requests, log_dir)
            cores = (stack.sims.oneatlas.core, stack.sims.up42.core)
            secrets = {
                "oneatlas api key": stack.sims.oneatlas.api_key,
                "up42 password": stack.sims.up42.password,
            }
            secrets |= {f"token {n}": t for n, t in enumerate(t for core in cores for t in core.tokens)}
            records = {name: await read_topic(broker.bootstrap_servers, name) for name in topics.all()}
            yield FaultyRun(
                verdict=found,
                metrics=metrics,
                log=worker.log_text(),
                topics={
                    name: [
                        (r.key or b"") + (r.value or b"") + b"".join(k.encode() + v for k, v in r.headers)
                        for r in recs
                    ]
                    for name, recs in records.items()
                },
                secrets=secrets,
                answered_429=sum(_answered(core, 429) for core in cores),
                answered_5xx=sum(_answered(core, 503) for core in cores),
                lost_responses=sum(1 for core in cores for c in core.calls if c.fault == "lost_response"),
            )
        finally:
            expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await expiry
            worker.kill()


async def test_all_orders_complete_once_under_every_fault(faulty_run: FaultyRun) -> None:
    assert faulty_run.verdict.failures() == []
    assert faulty_run.lost_responses == 2, "both paid POSTs must have lost their answer"


async def test_retries_are_bounded_and_counted(faulty_run: FaultyRun) -> None:
    text = faulty_run.metrics
    retries = metric_value(text, "tasking_provider_retries_total")
    failed = sum(
        metric_value(text, "tasking_provider_requests_total", outcome=o)
        for o in ("server_error", "timeout", "rate_limited", "client_error")
    )
    assert faulty_run.answered_429 > 0
    assert faulty_run.answered_5xx > 0
    assert 0 < retries <= failed
    assert (
        metric_value(text, "tasking_provider_requests_total", outcome="rate_limited")
        == faulty_run.answered_429
    )
    assert (
        metric_value(text, "tasking_provider_requests_total", outcome="server_error")
        >= faulty_run.answered_5xx
    )
    assert metric_value(text, "tasking_provider_requests_total", outcome="timeout") >= 2  # the lost answers
    assert metric_value(text, "tasking_provider_requests_total", outcome="ok") > failed


async def test_no_secret_in_logs_events_or_metrics(faulty_run: FaultyRun) -> None:
    tokens = [name for name in faulty_run.secrets if name.startswith("token")]
    assert len(tokens) >= 4, "token expiry must have forced several re-authentications"
    assert faulty_run.log.count("\n") > 100
    assert sum(map(len, faulty_run.topics.values())) > 50
    leaks = []
    for name, secret in faulty_run.secrets.items():
        if secret in faulty_run.log:
            leaks.append(f"{name} in the worker log")
        if secret in faulty_run.metrics:
            leaks.append(f"{name} in /metrics")
        for topic, values in faulty_run.topics.items():
            if any(secret.encode() in value for value in values):
                leaks.append(f"{name} in topic {topic}")
    assert leaks == []

"""The HTTP endpoints on a real socket: /metrics, /livez and /readyz with an injected clock."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from worker.httpserver import ServerHandle, serve
from worker.observability.http import Health, create_app
from worker.observability.metrics import WorkerMetrics


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Running:
    metrics: WorkerMetrics
    health: Health
    clock: FakeClock
    server: ServerHandle
    client: httpx.AsyncClient

    def ready_gauge(self) -> float:
        value = self.metrics.registry.get_sample_value("tasking_ready")
        assert value is not None
        return value


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    metrics = WorkerMetrics(CollectorRegistry())
    clock = FakeClock()
    health = Health(metrics, clock=clock, loop_stale_after=10, poll_timeout=30, startup_grace=60)
    server = await serve(create_app(metrics, health), "127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        yield Running(metrics, health, clock, server, client)
    await server.stop()


async def probe(client: httpx.AsyncClient, path: str) -> tuple[int, dict[str, object]]:
    response = await client.get(path)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body, dict)
    return response.status_code, body


async def test_port_zero_binds_a_real_port(running: Running) -> None:
    assert running.server.port > 0
    with socket.create_connection(("127.0.0.1", running.server.port), timeout=2):
        pass


async def test_metrics_endpoint_serves_prometheus_text(running: Running) -> None:
    running.metrics.dead_letter("MALFORMED_JSON")
    response = await running.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"tasking_build_info", "tasking_dead_letters", "tasking_ready"} <= families
    assert 'tasking_dead_letters_total{reason="MALFORMED_JSON"} 1.0' in response.text


async def test_only_get_is_served(running: Running) -> None:
    assert (await running.client.post("/metrics")).status_code == 405
    assert (await running.client.get("/nope")).status_code == 404


async def test_not_ready_until_declared_then_ready(running: Running) -> None:
    status, body = await probe(running.client, "/readyz")
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"] == {
        "eventLoop": "ok",
        "consumer": "ok",
        "broker": "ok",
        "partitions": "not assigned or not restored",
    }
    assert running.ready_gauge() == 0

    running.health.consumer_polled()
    running.health.set_ready(True)
    status, body = await probe(running.client, "/readyz")
    assert (status, body["status"]) == (200, "ok")
    assert running.ready_gauge() == 1

    running.health.set_ready(False)  # partitions revoked
    assert (await probe(running.client, "/readyz"))[0] == 503
    assert running.ready_gauge() == 0


async def test_live_during_startup_grace_then_dead_without_a_poll(running: Running) -> None:
    running.health.beat()
    running.clock.advance(59)
    running.health.beat()
    status, body = await probe(running.client, "/livez")
    assert (status, body["status"]) == (200, "ok")

    running.clock.advance(2)  # 61 s after start, still no poll
    running.health.beat()
    status, body = await probe(running.client, "/livez")
    assert status == 503
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks["eventLoop"] == "ok"
    assert "not polled" in checks["consumer"]


async def test_stalled_consumer_fails_liveness_and_readiness(running: Running) -> None:
    running.health.consumer_polled()
    running.health.set_ready(True)
    running.clock.advance(29)
    running.health.beat()
    assert (await probe(running.client, "/livez"))[0] == 200
    assert (await probe(running.client, "/readyz"))[0] == 200

    running.clock.advance(2)  # 31 s since the last poll > poll_timeout
    running.health.beat()
    live_status, live = await probe(running.client, "/livez")
    ready_status, ready = await probe(running.client, "/readyz")
    assert (live_status, ready_status) == (503, 503)
    assert live["checks"] == {
        "eventLoop": "ok",
        "consumer": "consumer has not polled for 31s",
        "broker": "ok",
    }
    assert isinstance(ready["checks"], dict)
    assert ready["checks"]["partitions"] == "ok"
    assert running.ready_gauge() == 0

    running.health.consumer_polled()  # the consumer recovers
    assert (await probe(running.client, "/readyz"))[0] == 200
    assert running.ready_gauge() == 1


async def test_silent_event_loop_fails_liveness(running: Running) -> None:
    running.health.consumer_polled()
    running.clock.advance(11)  # no heartbeat for longer than loop_stale_after
    running.health.consumer_polled()
    status, body = await probe(running.client, "/livez")
    assert status == 503
    assert body["checks"] == {"eventLoop": "no heartbeat for 11s", "consumer": "ok", "broker": "ok"}


async def test_heartbeat_task_keeps_the_loop_check_fresh() -> None:
    clock = FakeClock()
    health = Health(WorkerMetrics(CollectorRegistry()), clock=clock, loop_stale_after=10)
    health.start_heartbeat(interval=0.01)
    try:
        clock.advance(100)
        await asyncio.sleep(0.05)  # the task beats at the new time
        assert health.liveness().checks["eventLoop"] == "ok"
    finally:
        await health.stop_heartbeat()
    clock.advance(100)
    await asyncio.sleep(0.03)
    assert health.liveness().checks["eventLoop"] != "ok"


async def test_busy_port_raises_oserror() -> None:
    metrics = WorkerMetrics(CollectorRegistry())
    app = create_app(metrics, Health(metrics))
    first = await serve(app, "127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            await serve(app, "127.0.0.1", first.port)
    finally:
        await first.stop()


async def test_stop_releases_the_port() -> None:
    metrics = WorkerMetrics(CollectorRegistry())
    handle = await serve(create_app(metrics, Health(metrics)), "127.0.0.1", 0)
    port = handle.port
    await handle.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_unanswering_broker_fails_readiness_then_liveness(running: Running) -> None:
    running.health.set_ready(True)
    running.health.broker_answered()
    running.health.consumer_polled()
    running.clock.advance(16)  # > broker_timeout (15 s): the consumer still "polls" empty batches
    running.health.beat()
    running.health.consumer_polled()
    ready_status, ready = await probe(running.client, "/readyz")
    assert ready_status == 503
    assert ready["checks"]["broker"] == "Kafka has not answered for 16s"  # type: ignore[index]
    assert (await probe(running.client, "/livez"))[0] == 200  # not yet past poll_timeout (30 s)

    running.clock.advance(15)
    running.health.beat()
    running.health.consumer_polled()
    live_status, live = await probe(running.client, "/livez")
    assert live_status == 503
    assert live["checks"]["broker"] == "Kafka has not answered for 31s"  # type: ignore[index]

    running.health.broker_answered()  # the cluster is back
    assert (await probe(running.client, "/readyz"))[0] == 200
    assert (await probe(running.client, "/livez"))[0] == 200

"""The demo's stack on loopback: embedded broker, provider simulators, the worker and the client's
Kafka clients, started and stopped in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from worker.config import Settings, settings_from
from worker.demo.samples import BASE_SPEED

if TYPE_CHECKING:
    from worker.simulators.server import RunningSimulators

T = TypeVar("T")


# --------------------------------------------------------------------------- environment
def demo_environment(bootstrap_servers: str, simulator_env: Mapping[str, str]) -> dict[str, str]:
    """The ``TASKING_*`` variables of the demo's worker (documented settings only)."""
    return {
        **simulator_env,
        "TASKING_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "TASKING_KAFKA__ENABLE_IDEMPOTENCE": "false",  # the embedded broker refuses it
        "TASKING_TRACKING__POLL_INTERVAL_SECONDS": "1",
        # The delivery timeout is in real seconds: short, so the demo ends in time (default 14
        # days). No grace period (the default): COMPLETED follows the last product at once.
        "TASKING_TRACKING__DELIVERY_TIMEOUT_SECONDS": "20",
        "TASKING_HTTP__HOST": "127.0.0.1",
        "TASKING_HTTP__PORT": "0",
        "TASKING_HTTP_CLIENT__TIMEOUT_SECONDS": "5",
        "TASKING_HTTP_CLIENT__SETTLE_SECONDS": "6",
        "TASKING_SHUTDOWN_GRACE_SECONDS": "3",
        "TASKING_LOG_LEVEL": "INFO",
        "TASKING_LOG_FORMAT": "json",
        # Provider choice compares UP42 credits with euros (about a hundredth of a euro each).
        "TASKING_ROUTING__RATES": '{"CREDITS": 0.01}',
        # Most sample orders have no budget: the demo deployment auto-approves them up to this
        # (the default ceiling is none: every unbudgeted price would wait for a command).
        "TASKING_APPROVAL__UNBUDGETED_CEILING": DEMO_UNBUDGETED_CEILING,
    }


#: The demo deployment's ceiling for requests without a budget (ADR 0007).
DEMO_UNBUDGETED_CEILING = '{"EUR": 100000, "CREDITS": 10000000}'


async def in_daemon_thread(fn: Callable[[], T]) -> T:
    """Run a blocking call in a daemon thread: a prompt left unanswered never blocks the exit
    (``asyncio.to_thread`` would, since the loop waits for its executor when it closes)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def target() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting task as it is
            loop.call_soon_threadsafe(_set_exception, future, exc)
        else:
            loop.call_soon_threadsafe(_set_result, future, result)

    threading.Thread(target=target, name="demo-prompt", daemon=True).start()
    return await future


def _set_result(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


# --------------------------------------------------------------------------- start and stop
@dataclass
class Services:
    """What :func:`running_services` started."""

    settings: Settings
    simulators: RunningSimulators
    worker: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running_services(workdir: Path) -> AsyncIterator[Services]:
    """Broker, simulators and worker, started in that order and stopped in reverse.

    The worker's settings come from ``TASKING_*`` variables only (:func:`demo_environment`); its
    log lines go to ``workdir/worker.log``, the broker's to ``workdir/broker.log``.

    Raises:
        BrokerError, OSError, ConfigError, KafkaError: something could not start.
    """
    from worker.app import build_worker
    from worker.kafka.broker import EmbeddedBroker
    from worker.observability.logging import configure_logging
    from worker.simulators.server import start_simulators

    async with contextlib.AsyncExitStack() as stack:
        # Opened first and closed last: every library logs until the very end of the shutdown.
        log_file = stack.enter_context((workdir / "worker.log").open("a", encoding="utf-8"))
        configure_logging("INFO", "json", stream=log_file)
        broker = EmbeddedBroker(log_path=workdir / "broker.log")
        stack.push_async_callback(broker.stop)
        await broker.start()
        sims = await start_simulators(speed=BASE_SPEED)
        stack.push_async_callback(sims.stop)
        settings = settings_from(demo_environment(broker.bootstrap_servers, sims.worker_env()))
        await broker.create_contract_topics(settings.topics)
        configure_logging(settings.log_level, "json", settings.secret_values(), stream=log_file)
        worker = await build_worker(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run_until(stop), name="worker")
        stack.push_async_callback(_stop_worker, stop, task)
        yield Services(settings, sims, task)


async def _stop_worker(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    """Graceful stop (the worker drains, commits, leaves its group); cancelled after 30 s."""
    stop.set()
    with contextlib.suppress(Exception):  # a failure is in the worker log; stopping goes on
        await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def kafka_clients(settings: Settings) -> AsyncIterator[tuple[AIOKafkaProducer, AIOKafkaConsumer]]:
    """The demo client's producer and its group-less consumer of the output topics."""
    servers = settings.kafka.bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=servers, enable_idempotence=False, acks="all")
    consumer = AIOKafkaConsumer(
        settings.topics.status,
        settings.topics.acquisitions,
        settings.topics.deliveries,
        bootstrap_servers=servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    try:
        await consumer.start()
        try:
            yield producer, consumer
        finally:
            await consumer.stop()
    finally:
        await producer.stop()


def fast_forward(simulators: RunningSimulators) -> Callable[[float], None]:
    """A function that moves the simulators' shared clock ahead (tokens run on real time)."""
    return simulators.oneatlas.core.clock.advance

"""Composition root: builds and wires every part of one worker process, and owns start and stop.

Start: logging → metrics and the HTTP probes → producer (and topics when asked) → providers →
scheduler, runner, poller, delivery harvester → consumer (joins the group; assignment restores
state and resumes orders before ``/readyz`` turns green).

Stop (SIGTERM/SIGINT): stop consuming, let in-flight provider calls reach a checkpoint within
``TASKING_SHUTDOWN_GRACE_SECONDS``, commit, leave the group, flush the producer, exit 0. An
interrupted paid call leaves its intent durable, so whoever owns the order next reconciles it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from aiokafka.errors import KafkaError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from worker.config import Settings, unknown_variables
from worker.domain.model import Settings as DomainSettings
from worker.domain.ports import TaskingProvider
from worker.errors import KafkaConnectError, TopicLayoutError
from worker.events.models import Provider
from worker.httpserver import ServerHandle, serve
from worker.kafka.connection import connect_with_retry
from worker.kafka.consumer import make_consumer
from worker.kafka.ownership import GroupOwnership
from worker.kafka.publisher import Publisher, make_producer, producer_options
from worker.kafka.statestore import StateStore
from worker.kafka.topics import LayoutWatch, TopicLayout, ensure_topics
from worker.observability import stackdump
from worker.observability.http import Health, create_app
from worker.observability.logging import configure_logging
from worker.observability.metrics import WorkerMetrics
from worker.providers.oneatlas import OneAtlasProvider
from worker.providers.up42 import Up42Provider
from worker.runtime.deliveries import DeliveryHarvester
from worker.runtime.intake import Intake
from worker.runtime.runner import Runner
from worker.runtime.timers import OrderGauges, Poller, Timers, TokenKeeper, every

log = structlog.get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_providers(settings: Settings, metrics: WorkerMetrics) -> dict[Provider, TaskingProvider]:
    """The configured providers; a request for a missing one is rejected PROVIDER_NOT_CONFIGURED."""
    providers: dict[Provider, TaskingProvider] = {}
    if settings.oneatlas.configured:
        providers[Provider.ONEATLAS] = OneAtlasProvider(
            settings.oneatlas, settings.http_client, metrics=metrics, page_size=settings.tracking.page_size
        )
    if settings.up42.configured:
        providers[Provider.UP42] = Up42Provider(settings.up42, settings.http_client, metrics=metrics)
    return providers


def domain_settings(settings: Settings) -> DomainSettings:
    return DomainSettings(
        settle_seconds=settings.http_client.settle_seconds,
        outcome_timeout_seconds=settings.http_client.outcome_timeout_seconds,
        delivery_grace_seconds=settings.tracking.delivery_grace_seconds,
        delivery_timeout_seconds=settings.tracking.delivery_timeout_seconds,
        harvest_after_completion_seconds=settings.tracking.harvest_after_completion_seconds,
        rates=dict(settings.routing.rates),
        unbudgeted_ceiling=dict(settings.approval.unbudgeted_ceiling),
    )


@dataclass
class Worker:
    """One running worker process (see the module docstring)."""

    settings: Settings
    metrics: WorkerMetrics
    health: Health
    http: ServerHandle
    intake: Intake
    runner: Runner
    scheduler: AsyncIOScheduler
    providers: dict[Provider, TaskingProvider]
    layout: LayoutWatch | None = None
    # 1 once the worker stopped taking work for a reason of its own (the topic layout changed).
    exit_code: int = 0

    async def run_until(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then shut down gracefully."""
        consumer = self.intake.consumer
        await consumer.start()
        self.intake.subscribe()
        watch = asyncio.create_task(self._watch_layout(stop), name="layout-watch")
        try:
            await self.intake.run(stop)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            await self._shutdown()

    async def _watch_layout(self, stop: asyncio.Event) -> None:
        """Re-read the partition counts every ``topic_check_interval_seconds``; a change stops the
        worker taking work (not ready, then a graceful shutdown with exit code 1), with the reason
        in one log line and in ``/readyz``. A failed read is tried again at the next interval."""
        if self.layout is None:
            return
        while not stop.is_set():
            await asyncio.sleep(self.settings.kafka.topic_check_interval_seconds)
            try:
                reason = await self.layout.changed()
            except (KafkaError, KafkaConnectError, OSError) as exc:
                log.warning("topic_layout_unreadable", error=type(exc).__name__)
                continue
            if reason is not None:
                log.error("topic_layout_changed", reason=reason)
                self.health.set_kafka_problem(reason)
                self.exit_code = 1
                stop.set()
                return

    async def _shutdown(self) -> None:
        log.info("shutdown_started")
        self.health.set_ready(False)
        owned = self.intake.store.owned_partitions()
        await self.runner.stop_partitions(owned, grace=self.settings.shutdown_grace_seconds)
        await self.intake.consumer.stop()  # leaves the group (revocation runs first)
        self.scheduler.shutdown(wait=False)
        await self.runner.publisher.producer.stop()
        for provider in self.providers.values():
            await provider.aclose()
        await self.health.stop_heartbeat()
        await self.http.stop()
        log.info("shutdown_complete")


async def build_worker(settings: Settings, stop: asyncio.Event | None = None) -> Worker:
    """Create and start every component except the consumer loop.

    Before any client starts, the cluster is probed until it accepts a connection
    (``worker.kafka.connection``: one log line and a readiness reason per failure), then the
    contract topics are checked (created first when ``TASKING_KAFKA__CREATE_TOPICS``).

    Raises:
        TopicLayoutError: the topics cannot carry the guarantees (nothing was started).
        KafkaConnectError: ``stop`` was set before the cluster could be reached.
    """
    metrics = WorkerMetrics(topics=settings.topics)
    health = Health(
        metrics,
        poll_timeout=settings.health.stall_timeout_seconds,
        broker_timeout=settings.health.broker_timeout_seconds,
    )
    health.start_heartbeat()
    http = await serve(create_app(metrics, health), settings.http.host, settings.http.port)
    try:
        layout = await _connect_and_check(settings, health, stop)
    except BaseException:
        await health.stop_heartbeat()
        await http.stop()
        raise
    producer = make_producer(settings)
    await producer.start()
    security = {k: v for k, v in producer_options(settings.kafka).items() if k != "bootstrap_servers"}
    store = StateStore(
        producer,
        settings.kafka.bootstrap_servers,
        settings.topics.state,
        consumer_options=security,
        max_state_bytes=settings.intake.max_state_bytes,
    )
    publisher = Publisher(
        producer,
        settings.topics,
        metrics,
        source=settings.ce_source,
        stac_base_url=str(settings.stac.base_url) if settings.stac.base_url else None,
    )
    providers = build_providers(settings, metrics)
    scheduler = AsyncIOScheduler(timezone=UTC)
    runner = _wire_runtime(settings, store, publisher, providers, scheduler, metrics)
    scheduler.start()
    consumer = make_consumer(settings)
    ownership = GroupOwnership(
        consumer, settings.topics.requests, session_timeout=settings.kafka.session_timeout_ms / 1000
    )
    runner.ownership = ownership
    store.generation = ownership.generation
    intake = Intake(
        settings, consumer, store, runner, publisher, metrics, health, utc_now, ownership=ownership
    )
    watch = LayoutWatch(settings.kafka, settings.topics, _co_partitioned(settings, layout))
    return Worker(settings, metrics, health, http, intake, runner, scheduler, providers, layout=watch)


async def _connect_and_check(settings: Settings, health: Health, stop: asyncio.Event | None) -> TopicLayout:
    if not await connect_with_retry(settings.kafka, health, stop):
        raise KafkaConnectError("STOPPED", "stopped before Kafka could be reached")
    try:
        return await ensure_topics(settings.kafka, settings.topics)
    except TopicLayoutError as exc:
        log.error("topics_not_usable", reason=exc.message)  # noqa: TRY400 - one line, no trace
        health.set_kafka_problem(exc.message)
        raise


def _co_partitioned(settings: Settings, layout: TopicLayout) -> dict[str, int]:
    topics = settings.topics
    return {t: layout.partitions[t] for t in (topics.requests, topics.commands, topics.state)}


def _wire_runtime(
    settings: Settings,
    store: StateStore,
    publisher: Publisher,
    providers: dict[Provider, TaskingProvider],
    scheduler: AsyncIOScheduler,
    metrics: WorkerMetrics,
) -> Runner:
    runner_ref: list[Runner] = []

    async def fire(request_id: str, kind: object) -> None:
        from worker.domain.model import TimerKind

        assert isinstance(kind, TimerKind)
        await runner_ref[0].fire_timer(request_id, kind)

    timers = Timers(scheduler, fire, metrics)
    runner = Runner(
        store,
        publisher,
        {p.value: v for p, v in providers.items()},
        timers,
        metrics,
        domain_settings(settings),
        utc_now,
        state_retry_max_seconds=settings.intake.state_retry_max_seconds,
    )
    runner_ref.append(runner)

    poller = Poller(
        scheduler,
        providers,
        store.tracked,  # index entries: no order is decoded to decide whether it is due
        runner.deliver_snapshot,
        metrics,
        settings.tracking.poll_interval_seconds,
        utc_now,
        news=runner.snapshot_is_news,
        report=runner.report_tracking,
        error_threshold=settings.tracking.error_threshold,
    )
    poller.start()
    window = timedelta(seconds=settings.tracking.harvest_after_completion_seconds)
    DeliveryHarvester(
        scheduler,
        providers,
        store.awaiting_delivery,  # index entries: nothing is decoded to list the waiting orders
        runner.deliver_product,
        metrics,
        settings.tracking.delivery_interval,
        utc_now,
        owned=store.owned_partitions,
        completed=lambda name: store.completed_since(name, utc_now() - window),
        settle=runner.settle_delivery,
    ).start()
    TokenKeeper(scheduler, providers, metrics).start()
    retention = timedelta(seconds=settings.tracking.finished_retention_seconds)
    every(scheduler, "retire_finished", settings.tracking.retire_interval, runner.retire_finished, retention)
    OrderGauges(
        scheduler,
        lambda: (index for _, index in store.indexes()),
        metrics,
        utc_now,
        interval=min(10.0, settings.tracking.poll_interval_seconds * 4),
    ).start()
    return runner


async def run(settings: Settings) -> int:
    """``tasking-worker run``: the service. Returns the process exit code."""
    configure_logging(settings.log_level, settings.resolved_log_format().value, settings.secret_values())
    warn_unknown_variables(os.environ)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    stackdump.install(loop)  # SIGUSR1: every task's and thread's stack to the log
    try:
        worker = await build_worker(settings, stop)
    except KafkaConnectError:
        if stop.is_set():
            return 0
        raise
    tune_gc()
    log.info(
        "worker_started", providers=sorted(p.value for p in worker.providers), http_port=worker.http.port
    )
    await worker.run_until(stop)
    return worker.exit_code


def warn_unknown_variables(environ: Mapping[str, str]) -> None:
    """One ``unknown_variable`` warning per ``TASKING_*`` name no setting reads (a misspelt
    variable is otherwise ignored without a word), naming the closest known variable."""
    for name, closest in unknown_variables(environ):
        log.warning("unknown_variable", variable=name, closest=closest)


def tune_gc() -> None:
    """Garbage-collector settings for the service process (not for library use: it affects the
    whole process).

    Everything built so far (modules, models, schemas, clients) lives as long as the process:
    :func:`gc.freeze` takes it out of every later collection, and a larger first-generation
    threshold makes collections rarer. Together they cut the full collections of a loaded worker
    from ~4 pauses of 40-100 ms to ~1 of ~40 ms per 1,000 orders at 100 orders/s
    (docs/performance.md).
    Freezing only skips cyclic-garbage scans: frozen objects are still freed by reference
    counting, and nothing allocated later is frozen.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)


GC_THRESHOLD = 10_000  # objects allocated (net) between young collections; CPython's default: 700

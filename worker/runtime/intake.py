"""The intake: one consumer group over the request and command topics.

For every record: decode it (``worker.events.codec``); a bad one goes to the dead-letter topic
(plus a ``REJECTED``/``INVALID_REQUEST`` status when its ``requestId`` is readable and new); a valid
request is written to the order state; a command is applied to its order. Only when every record
of a batch is durable (state written, dead letter acked) are the batch's offsets committed, so a
crash at any point replays records whose effect is idempotent (a replayed request is a duplicate,
a replayed command has a ``commandId`` already seen).

Ownership follows partitions: the range assignor gives this instance the same partition numbers
of every co-partitioned topic. On assignment the state of those partitions is restored, timers are
rebuilt and open orders resumed before the instance reports ready; on revocation the partition's
work stops before the rebalance completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError

from worker import cooperative, crashpoints
from worker.config import Settings
from worker.errors import DecodeError, OwnershipLost, StateTooLarge
from worker.events.codec import (
    DeadLetterCode,
    InputKind,
    build_dead_letter,
    decode,
    routing_request_id,
)
from worker.events.models import Command, OrderRequest, OrderStatusEvent, Provider
from worker.kafka.ownership import GroupOwnership
from worker.kafka.publisher import Publisher
from worker.kafka.statestore import StateStore, raw_fingerprint, request_fingerprint
from worker.observability.logging import Redactor
from worker.runtime.runner import Runner

log = structlog.get_logger(__name__)


#: Header of a keyless input record forwarded under its ``requestId`` (``partition:offset`` of
#: the original), for tracing; the forwarded copy is processed as any keyed record.
FORWARDED_HEADER = "tasking-forwarded-from"


class IntakeMetrics(Protocol):
    def message_consumed(self, topic: str, outcome: str) -> None: ...

    def dead_letter(self, reason: str) -> None: ...

    def set_consumer_lag(self, topic: str, partition: int, lag: int) -> None: ...

    def clear_consumer_lag(self, topic: str, partition: int) -> None: ...

    def rebalance(self, kind: str, assigned_partitions: int) -> None: ...

    def restore_finished(self, duration_seconds: float, records: int) -> None: ...

    def record_failed(self, topic: str, *, given_up: bool) -> None: ...


class HealthSink(Protocol):
    def consumer_polled(self) -> None: ...

    def broker_answered(self) -> None: ...

    def set_ready(self, ready: bool) -> None: ...


@dataclass
class Intake:
    settings: Settings
    consumer: AIOKafkaConsumer
    store: StateStore
    runner: Runner
    publisher: Publisher
    metrics: IntakeMetrics
    health: HealthSink
    clock: Callable[[], datetime]
    ownership: GroupOwnership | None = None  # the runner's fence; batch commits go through it
    _batch_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Clear while an assignment is being restored: a batch fetched meanwhile waits for it.
    _restored: asyncio.Event = field(default_factory=asyncio.Event)
    _last_lag: float = 0.0
    # Set when a batch left records to read again (a Kafka or ownership failure): the next fetch
    # waits a moment, so an outage of the changelog is not met with a busy loop.
    _set_back: bool = False

    # ------------------------------------------------------------------ lifecycle

    def __post_init__(self) -> None:
        self._restored.set()

    def subscribe(self) -> None:
        topics = [self.settings.topics.requests, self.settings.topics.commands]
        self.consumer.subscribe(topics, listener=_Rebalance(self))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set. Returns after the last batch is committed."""
        watch = asyncio.create_task(self._watch_broker(stop), name="broker-watch")
        try:
            await self._consume(stop)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def _watch_broker(self, stop: asyncio.Event) -> None:
        """A bounded round trip to the cluster every few seconds, for the probes: a consumer
        returns empty batches while the cluster is unreachable, so polling proves nothing."""
        interval = self.settings.health.broker_check_interval_seconds
        limit = max(1.0, self.settings.health.broker_timeout_seconds / 2)
        while not stop.is_set():
            try:
                async with asyncio.timeout(limit):
                    assigned = list(self.consumer.assignment())
                    if assigned:
                        await self.consumer.end_offsets(assigned)
                    else:
                        await self.consumer.topics()
                self.health.broker_answered()
            except (TimeoutError, KafkaError) as exc:
                log.warning("broker_not_answering", error=type(exc).__name__)
            await asyncio.sleep(interval)

    async def _consume(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=500, max_records=1000)
            self.health.consumer_polled()
            if batch:
                async with self._batch_lock:
                    await self._process(batch)
            if self._set_back:
                self._set_back = False
                await asyncio.sleep(_SET_BACK_SECONDS)
            await self._report_lag()

    # ------------------------------------------------------------------ ownership

    async def acquire(self, partitions: set[int]) -> None:
        """Restore, resume and report ready for newly assigned partitions.

        Every assigned partition is restored and resumed, whatever this instance believes it
        holds: a member that was removed from the group while frozen or cut off may rejoin
        without its revocation having run (or having completed), and what it still holds of a
        partition (state, timers, tasks) is from a tenure that ended, possibly followed by
        another owner's. That is dropped first, then restored from the changelog."""
        self.health.set_ready(False)
        stale = {p for p in partitions if self.store.owns(p)}
        if stale:
            log.warning("partitions_reassigned_while_held", partitions=sorted(stale))
            async with self._batch_lock:
                await self._drop(stale)
        self._restored.clear()
        try:
            await self._restore_and_resume(partitions)
        finally:
            self._restored.set()
        self.health.set_ready(True)

    async def _restore_and_resume(self, partitions: set[int]) -> None:
        result = await self.store.restore(partitions)
        self.metrics.restore_finished(result.seconds, result.records)
        resumed = await self.runner.resume(result.partitions)
        self.metrics.rebalance("assigned", len(self.store.owned_partitions()))
        log.info("partitions_assigned", partitions=sorted(partitions), open_orders=resumed)

    async def release(self, partitions: set[int]) -> None:
        """Stop the work of revoked partitions before the rebalance completes."""
        async with self._batch_lock:  # let the batch in progress finish and commit
            await self._drop(partitions)
        self.metrics.rebalance("revoked", len(self.store.owned_partitions()))
        log.info("partitions_revoked", partitions=sorted(partitions))

    async def _drop(self, partitions: set[int]) -> None:
        """Stop and forget the work of these partitions: tasks, timers, state, offsets."""
        if self.ownership is not None:
            self.ownership.forget(partitions)
        owned = [p for p in partitions if self.store.owns(p)]
        indexes = [index for _, index in self.store.indexes(owned)]
        ids = [index.request_id for index in indexes]
        self.store.release(owned)  # first: work that finishes meanwhile sees its tenure ended
        await self.runner.stop_partitions(owned)
        # A cancelled step's write may already be queued in the producer: it must land before
        # the revocation completes (the next owner restores after it), never after.
        await self.store.settle(owned)
        self.runner.forget_orders(indexes)  # the adapters' per-order caches
        self.runner.timers.cancel_orders(ids)
        for partition in owned:
            for topic in (self.settings.topics.requests, self.settings.topics.commands):
                self.metrics.clear_consumer_lag(topic, partition)

    # ------------------------------------------------------------------ records

    async def _process(self, batch: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        # Requests before commands: a command may arrive in the same batch as its request.
        ordered = sorted(batch.items(), key=lambda kv: kv[0].topic != self.settings.topics.requests)
        await self._restored.wait()  # records may arrive while their partition is being restored
        commits: dict[TopicPartition, int] = {}
        for tp, records in ordered:
            if not self.store.owns(tp.partition):
                if tp in self.consumer.assignment():
                    self.consumer.seek(tp, records[0].offset)  # not ours yet: read them again
                    self._set_back = True
                continue
            next_offset = await self._process_partition(tp, records)
            if next_offset is not None:
                commits[tp] = next_offset
        if commits:
            crashpoints.reached("before_commit")
            try:
                if self.ownership is not None:
                    await self.ownership.commit(commits)
                else:
                    await self.consumer.commit(commits)
            except CommitFailedError as exc:
                await self._fenced({tp.partition for tp in commits}, exc)
                return
            crashpoints.reached("after_commit")

    async def _fenced(self, partitions: set[int], error: CommitFailedError) -> None:
        """A batch commit refused because this member left the generation that owns these
        partitions (evicted while frozen or cut off, or a rebalance under way): their work stops
        here, as at a revocation; the process lives, the consumer rejoins at its next poll, and
        whatever is assigned then is restored from the changelog (the uncommitted records are
        read again: their effects are idempotent)."""
        log.warning("commit_fenced", partitions=sorted(partitions), error=type(error).__name__)
        await self._drop(partitions)
        self.metrics.rebalance("revoked", len(self.store.owned_partitions()))

    async def _process_partition(
        self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]
    ) -> int | None:
        """Handle one partition's records concurrently (per-order order is kept by the runner's
        FIFO locks, which are taken in the records' order: ``gather_in_batches`` starts them in
        order); returns the offset to commit.

        A record whose processing raised (not a Kafka or ownership failure) is tried again,
        then dead-lettered ``INTERNAL_ERROR`` (:meth:`_settle_failed`): one record never stops
        its partition. On a Kafka failure, seeks back so the records from the first failed one
        are consumed again."""
        # Started a bounded batch per turn of the loop: a record's decode and decide run before
        # its first suspension point, and a fetch brings up to 1,000 of them.
        results = await cooperative.gather_in_batches(records, self._handle)
        for record, result in zip(records, results, strict=True):
            outcome: BaseException | None = result if isinstance(result, BaseException) else None
            if outcome is not None and not _transient(outcome):
                outcome = await self._settle_failed(record, outcome)
            if outcome is not None:
                log.error(
                    "record_not_durable",
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=record.offset,
                    error=type(outcome).__name__,
                )
                self.consumer.seek(tp, record.offset)
                self._set_back = True
                failed: int = record.offset
                return failed if failed > records[0].offset else None
        last: int = records[-1].offset
        return last + 1

    async def _settle_failed(
        self, record: ConsumerRecord[Any, Any], error: BaseException
    ) -> BaseException | None:
        """Try a record whose processing raised again, with backoff, up to
        ``TASKING_INTAKE__RECORD_ATTEMPTS`` attempts in all; after the last, dead-letter it with
        ``INTERNAL_ERROR`` (exception class and message, secrets hidden).

        Returns ``None`` once the record is settled (processed, or its dead letter acked), or
        the Kafka/ownership failure that stopped it (the caller seeks back to it)."""
        settings = self.settings.intake
        for attempt in range(1, settings.record_attempts):
            self.metrics.record_failed(record.topic, given_up=False)
            log.warning(
                "record_failed",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                attempt=attempt,
                error=type(error).__name__,
            )
            await asyncio.sleep(settings.record_backoff_seconds * 2 ** (attempt - 1))
            try:
                await self._handle(record)
                return None
            except Exception as exc:
                if _transient(exc):
                    return exc
                error = exc
        self.metrics.record_failed(record.topic, given_up=True)
        try:
            await self._dead_letter(record, self._internal_error(error), _kind_of(record, self.settings))
        except (KafkaError, OwnershipLost) as exc:
            return exc
        return None

    def _internal_error(self, error: BaseException) -> DecodeError:
        redact = Redactor(self.settings.secret_values()).redact_text
        text = redact(str(error))[:500]
        attempts = self.settings.intake.record_attempts
        return DecodeError(
            DeadLetterCode.INTERNAL_ERROR,
            f"processing raised {type(error).__name__} on each of {attempts} attempts: {text}",
            details={"exception": type(error).__name__, "attempts": attempts},
        )

    async def _handle(self, record: ConsumerRecord[Any, Any]) -> None:
        kind = _kind_of(record, self.settings)
        crashpoints.poisoned(record.value)
        if record.key is None and await self._forward(record):
            return
        try:
            message = decode(
                record.value, key=record.key, headers=record.headers, topic=record.topic, kind=kind
            )
        except DecodeError as exc:
            await self._dead_letter(record, exc, kind)
            return
        if isinstance(message, OrderRequest):
            await self._request(record, message)
        else:
            await self._command(record, message)

    async def _forward(self, record: ConsumerRecord[Any, Any]) -> bool:
        """Re-key a keyless record: send it once more to its own topic keyed by its
        ``requestId`` (the default partitioner, as producers use), so the request's state,
        commands and events have the one partition, and the one owner, of that key; it is
        processed there, valid or not. ``False`` when no ``requestId`` can be read (the record is
        dead-lettered here; nothing is kept under a key).

        Awaited (acks=all) before the record counts as done, so its offset is committed only
        after the forward is durable. A crash between the two forwards it again: both copies are
        on the same partition, and the second is a duplicate there (a request changes nothing and
        is answered with its latest status; a command's ``commandId`` was seen).

        Raises:
            KafkaError: the forward was not acknowledged (the record is read again).
        """
        request_id = routing_request_id(record.value, record.headers)
        if request_id is None:
            return False
        headers = [*record.headers, (FORWARDED_HEADER, f"{record.partition}:{record.offset}".encode())]
        await self.publisher.producer.send_and_wait(
            record.topic, record.value, key=request_id.encode(), headers=headers
        )
        crashpoints.reached("after_forward")
        self.metrics.message_consumed(record.topic, "forwarded")
        log.info(
            "keyless_record_forwarded",
            requestId=request_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        return True

    async def _request(self, record: ConsumerRecord[Any, Any], request: OrderRequest) -> None:
        structlog.contextvars.bind_contextvars(
            requestId=request.request_id, topic=record.topic, partition=record.partition, offset=record.offset
        )
        try:
            admission = await self.runner.accept_request(record.partition, request, self.clock())
        except StateTooLarge as exc:
            # Burnt with the request's own fingerprint: the same request again is a duplicate.
            error = _state_too_large(request, exc)
            await self._dead_letter(
                record, error, InputKind.REQUEST, fingerprint=request_fingerprint(request)
            )
            return
        if admission.outcome == "reused":
            error = _request_id_reused(request.request_id, admission.latest)
            await self._dead_letter(record, error, InputKind.REQUEST, publish_status=False)
            return
        self.metrics.message_consumed(record.topic, admission.outcome)
        if admission.outcome == "duplicate":
            log.info("duplicate_request_answered", requestId=request.request_id)

    async def _command(self, record: ConsumerRecord[Any, Any], command: Command) -> None:
        structlog.contextvars.bind_contextvars(
            requestId=command.request_id, topic=record.topic, partition=record.partition, offset=record.offset
        )
        known = await self.runner.apply_command(record.partition, command, self.clock())
        if known:
            self.metrics.message_consumed(record.topic, "command")
            return
        error = DecodeError(
            DeadLetterCode.UNKNOWN_REQUEST,
            f"no request {command.request_id!r} is known",
            request_id=command.request_id,
        )
        await self._dead_letter(record, error, InputKind.COMMAND, publish_status=False)

    async def _dead_letter(
        self,
        record: ConsumerRecord[Any, Any],
        error: DecodeError,
        kind: InputKind,
        publish_status: bool = True,
        fingerprint: str | None = None,
    ) -> None:
        """Dead-letter ``record``; for a request with a readable new id, also publish
        ``REJECTED``/``INVALID_REQUEST`` and burn the id with ``fingerprint`` (default: the
        record's bytes), the content a later re-send is compared with."""
        dead = build_dead_letter(
            error,
            value=record.value,
            key=record.key,
            headers=record.headers,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            received_at=self.clock(),
        )
        await self.publisher.dead_letter(dead, key=record.key, request_id=error.request_id)
        if publish_status and kind is InputKind.REQUEST and error.request_id:
            await self.runner.reject_invalid(
                record.partition,
                error.request_id,
                error,
                self.clock(),
                provider=_provider_of(record.value),
                fingerprint=fingerprint or raw_fingerprint(record.value),
            )
        self.metrics.dead_letter(error.code)
        self.metrics.message_consumed(record.topic, "dead_letter")
        log.warning(
            "dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            code=error.code,
            reason=error.message,
        )

    # ------------------------------------------------------------------ lag

    async def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < 5.0:
            return
        self._last_lag = now
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            position = await self.consumer.position(tp)
            self.metrics.set_consumer_lag(tp.topic, tp.partition, max(0, highwater - position))


_SET_BACK_SECONDS = 0.5


def _request_id_reused(request_id: str, first: OrderStatusEvent | None) -> DecodeError:
    """A request under a used id with other content (a corrected re-send): named with the first
    request's latest status, so the producer knows what became of it and that a new id is needed."""
    outcome: dict[str, Any] = {}
    if first is not None:
        outcome = {"status": first.status.value, "sequence": first.sequence, "ceId": first.ce_id}
        if first.reason is not None:
            outcome["reasonCode"] = first.reason.code
    status = outcome.get("status", "unknown")
    return DecodeError(
        DeadLetterCode.REQUEST_ID_REUSED,
        f"requestId {request_id!r} was already used by a request with other content (its status: "
        f"{status}); send a corrected request with a new requestId",
        details={"firstOutcome": outcome},
        request_id=request_id,
    )


def _state_too_large(request: OrderRequest, error: StateTooLarge) -> DecodeError:
    """A valid request whose first state would not fit a record leaves room to grow: refused
    before any provider call, with the measured and allowed sizes."""
    return DecodeError(
        DeadLetterCode.TOO_LARGE,
        f"the state of this request would take {error.size} bytes, more than the {error.limit} "
        "bytes a new request's state may take (TASKING_INTAKE__MAX_STATE_BYTES); "
        "send smaller providerOptions or fewer candidates",
        details={"stateSize": error.size, "maxStateBytes": error.limit},
        request_id=request.request_id,
    )


def _transient(error: BaseException) -> bool:
    """A failure that reading the record again can mend (Kafka unreachable, ownership not
    confirmed); any other exception is the record's own and is retried a bounded number of times."""
    return isinstance(error, KafkaError | OwnershipLost | asyncio.CancelledError)


def _kind_of(record: ConsumerRecord[Any, Any], settings: Settings) -> InputKind:
    return InputKind.REQUEST if record.topic == settings.topics.requests else InputKind.COMMAND


def _provider_of(value: bytes | None) -> Provider | None:
    """The ``provider`` of an invalid request when it is one of ours (for its REJECTED event)."""
    try:
        data = orjson.loads(value or b"")
        data = data.get("data", data) if isinstance(data, dict) else {}
        return Provider(str(data.get("provider")))
    except (ValueError, AttributeError, TypeError):
        return None


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._intake.release({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        partitions = {tp.partition for tp in assigned}
        if partitions:
            await self._intake.acquire(partitions)


__all__ = ["Intake", "KafkaError"]

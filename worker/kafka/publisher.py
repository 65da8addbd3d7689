"""Publishing output events (status, acquisition, delivery, dead letter) in CloudEvents binary mode.

Every publish is awaited (``acks=all``), so the caller knows the event is in Kafka before it, for
example, commits an input offset. Events are keyed by ``requestId`` and carry deterministic
``ce_id`` headers, so a re-published event is recognisably the same event.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer

from worker.config import KafkaSettings, Settings, TopicSettings
from worker.domain.model import OutboxAcquisition, OutboxDelivery, OutboxItem, OutboxStatus
from worker.events.codec import (
    EncodedRecord,
    encode_acquisition,
    encode_dead_letter,
    encode_delivery,
    encode_status,
)
from worker.events.models import DeadLetter, OrderStatusEvent
from worker.kafka.security import client_options


class PublishMetrics(Protocol):
    def event_published(self, topic: str) -> None: ...


def producer_options(kafka: KafkaSettings) -> dict[str, object]:
    """aiokafka client options from the settings (security, SASL, TLS): see
    :func:`worker.kafka.security.client_options`."""
    return client_options(kafka)


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """The process's one producer: acks=all, idempotent where the cluster supports it."""
    return AIOKafkaProducer(
        acks="all",
        enable_idempotence=settings.kafka.enable_idempotence,
        linger_ms=0,  # latency over batching: every send is awaited by a waiting step
        max_request_size=2 * 1024 * 1024,
        **producer_options(settings.kafka),
    )


@dataclass
class Publisher:
    producer: AIOKafkaProducer
    topics: TopicSettings
    metrics: PublishMetrics
    source: str = "urn:tasking-worker"
    stac_base_url: str | None = None  # TASKING_STAC__BASE_URL: items link self/parent/root under it

    async def _send(self, topic: str, record: EncodedRecord) -> None:
        await self.producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
        self.metrics.event_published(topic)

    async def status(self, event: OrderStatusEvent) -> None:
        await self._send(self.topics.status, encode_status(event, source=self.source))

    async def outbox(self, items: list[OutboxItem]) -> None:
        """Publish an order's outbox in order (status events keep their sequence order)."""
        futures = []
        for item in items:
            if isinstance(item, OutboxStatus):
                topic, record = self.topics.status, encode_status(item.event, source=self.source)
            elif isinstance(item, OutboxDelivery):
                topic, record = (
                    self.topics.deliveries,
                    encode_delivery(item.event, source=self.source, base_url=self.stac_base_url),
                )
            else:
                assert isinstance(item, OutboxAcquisition)
                topic = self.topics.acquisitions
                record = encode_acquisition(item.event, item.n, source=self.source)
            # send() keeps the order of one key within a partition; await all acks together.
            futures.append(
                (topic, await self.producer.send(topic, record.value, key=record.key, headers=record.headers))
            )
        for topic, future in futures:
            await asyncio.shield(future)
            self.metrics.event_published(topic)

    async def dead_letter(self, dead: DeadLetter, *, key: bytes | None, request_id: str | None) -> None:
        record = encode_dead_letter(dead, key=key, request_id=request_id, source=self.source)
        await self._send(self.topics.dead_letter, record)

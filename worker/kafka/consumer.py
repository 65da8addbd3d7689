"""The intake's Kafka consumer: manual commits, earliest reset, range assignment (co-partitioning).

The loop that drives it is ``worker.runtime.intake``.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from worker.config import Settings
from worker.kafka.publisher import producer_options


def make_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The intake consumer: manual commits, earliest reset, range assignment (co-partitioning)."""
    options: dict[str, Any] = producer_options(settings.kafka)
    return AIOKafkaConsumer(
        group_id=settings.kafka.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=(RangePartitionAssignor,),
        session_timeout_ms=settings.kafka.session_timeout_ms,
        heartbeat_interval_ms=max(1000, settings.kafka.session_timeout_ms // 4),
        max_poll_interval_ms=settings.kafka.max_poll_interval_ms,
        rebalance_timeout_ms=settings.kafka.max_poll_interval_ms,
        **options,
    )


__all__ = ["make_consumer"]

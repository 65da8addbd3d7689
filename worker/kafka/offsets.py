"""Where a read of a partition "to its end" stops.

A reader that takes the end offset once (``ListOffsets``, ``consumer.end_offsets``) and stops
there can stop short on brokers whose answer lags the log: the embedded broker answers the start
of the partition's last batch plus one when that batch holds several records (measured: 20,000
acknowledged records in batches of up to 1 MiB, ``ListOffsets`` 19,919; every record was readable
and the fetch high watermark was 20,000). Every fetch response also carries the partition's high
watermark, so a reader raises its end to it after each fetch: on real Kafka the two agree and
nothing changes.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition


def read_end(consumer: AIOKafkaConsumer, tp: TopicPartition, listed: int) -> int:
    """The end to read ``tp`` to: ``listed`` (the end offset taken when the read began), raised
    to the high watermark of the consumer's latest fetch of ``tp`` (none before the first fetch).

    Records at or past the returned offset were written after the read began and are left out,
    so the read stays bounded while producers keep writing.
    """
    return max(listed, consumer.highwater(tp) or 0)

"""What the command-line tests share: the environment a command needs, running it off the test's
event loop, and reading back what it published."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from harness import topic_env
from typer.testing import CliRunner, Result

from worker.cli.base import app
from worker.config import TopicSettings
from worker.kafka.broker import EmbeddedBroker

runner = CliRunner()


def cli_env(broker: EmbeddedBroker, topics: TopicSettings) -> dict[str, str]:
    return {
        **topic_env(topics),
        "TASKING_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "TASKING_KAFKA__ENABLE_IDEMPOTENCE": "false",
    }


async def invoke(args: list[str], env: dict[str, str]) -> Result:
    # The commands run their own event loop (asyncio.run), so not on the test's loop.
    return await asyncio.to_thread(lambda: runner.invoke(app, args, env=env))


async def read_all(broker: EmbeddedBroker, topic: str, expected: int) -> list[ConsumerRecord]:
    """At least ``expected`` records of ``topic`` (15 s at most), by partition and offset."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker.bootstrap_servers, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(15):
            while len(records) < expected:
                batches = await consumer.getmany(timeout_ms=500)
                records.extend(r for batch in batches.values() for r in batch)
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))

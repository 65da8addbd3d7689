"""``tasking-worker download REQUEST_ID``: the items come from the deliveries topic (embedded
broker), the files from the OneAtlas simulator over a socket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from cli_support import cli_env, invoke
from providers.test_download import Stack, stack

from worker.config import TopicSettings
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

__all__ = ["stack"]  # the fixture, shared with the provider-level download tests


async def publish_item(broker: EmbeddedBroker, topic: str, request_id: str, item: dict[str, object]) -> None:
    """A DeliveryEvent as the worker publishes it: the STAC Item as the value, binary CloudEvents."""
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", f"{request_id}:delivery:{item['id']}".encode()),
            ("ce_type", b"tasking.delivery.v1"),
            ("ce_source", b"urn:tasking-worker"),
            ("content-type", b"application/json"),
        ]
        value = json.dumps(item).encode()
        await producer.send_and_wait(topic, value, key=request_id.encode(), headers=headers)
        await producer.send_and_wait(topic, value, key=request_id.encode(), headers=headers)  # a duplicate
    finally:
        await producer.stop()


async def test_download_a_request_from_the_deliveries_topic(
    broker: EmbeddedBroker, unique_topics: TopicSettings, stack: Stack, tmp_path: Path
) -> None:
    await publish_item(broker, unique_topics.deliveries, "req-dl", stack.item)
    env = {**cli_env(broker, unique_topics), **stack.env, "COLUMNS": "200"}
    result = await invoke(["download", "req-dl", "--dest", str(tmp_path)], env)
    assert result.exit_code == 0, result.output
    target = tmp_path / stack.item["id"] / stack.item["assets"]["data"]["title"]
    assert target.read_bytes() == stack.content()
    assert "1 downloaded" in result.output, "the duplicated event is downloaded once"

    again = await invoke(["download", "req-dl", "--dest", str(tmp_path)], env)
    assert again.exit_code == 0, again.output
    assert "1 already complete" in again.output

    missing = await invoke(["download", "req-nothing", "--dest", str(tmp_path)], env)
    assert missing.exit_code == 1
    assert "no delivered product for req-nothing" in missing.output

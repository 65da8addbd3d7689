"""The CLI against the embedded broker: submit publishes what the codec reads back, tail prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cli_support import cli_env, invoke, read_all

from worker.config import TopicSettings
from worker.events import codec
from worker.events.codec import EventType, InputKind
from worker.events.examples import input_examples, output_examples
from worker.events.models import Command, OrderRequest, OrderStatusEvent
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


async def messages_in(broker: EmbeddedBroker, topic: str) -> int:
    """How many records a single-partition topic holds."""
    partition = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        start = (await consumer.beginning_offsets([partition]))[partition]
    finally:
        await consumer.stop()
    return int(end - start)


async def test_submit_publishes_requests_and_commands_the_codec_reads_back(
    broker: EmbeddedBroker, unique_topics: TopicSettings, tmp_path: Path
) -> None:
    await broker.create_contract_topics(unique_topics)
    request = input_examples()["order-request.oneatlas-oneplan-toulouse"]
    command = input_examples()["command.approve"]
    (tmp_path / "request.json").write_text(json.dumps(request))
    (tmp_path / "command.yaml").write_text(yaml.safe_dump([command]))

    result = await invoke(
        ["submit", str(tmp_path / "request.json"), str(tmp_path / "command.yaml")],
        cli_env(broker, unique_topics),
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("published") == 2

    (record,) = await read_all(broker, unique_topics.requests, 1)
    assert record.key == request["requestId"].encode()
    assert dict(record.headers)["ce_type"] == EventType.ORDER_REQUESTED.value.encode()
    decoded = codec.decode(
        record.value, key=record.key, headers=record.headers, topic=record.topic, kind=InputKind.REQUEST
    )
    assert decoded == OrderRequest.model_validate(request)

    (record,) = await read_all(broker, unique_topics.commands, 1)
    decoded_command = codec.decode(
        record.value, key=record.key, headers=record.headers, topic=record.topic, kind=InputKind.COMMAND
    )
    assert decoded_command == Command.model_validate(command)


async def test_tail_prints_a_published_status_event(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await broker.create_contract_topics(unique_topics)
    event = output_examples()["order-status-event"]
    assert isinstance(event, OrderStatusEvent)
    record = codec.encode_status(event)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(
            unique_topics.status, record.value, key=record.key, headers=record.headers
        )
    finally:
        await producer.stop()

    result = await invoke(
        ["tail", "--json", "--from-beginning", "--max-messages", "1", "--timeout", "30"],
        cli_env(broker, unique_topics),
    )
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert OrderStatusEvent.model_validate_json(line) == event

    pretty = await invoke(
        ["tail", "--from-beginning", "--max-messages", "1", "--timeout", "30", "--status", "ORDERED"],
        cli_env(broker, unique_topics),
    )
    assert pretty.exit_code == 0, pretty.output
    assert event.request_id in pretty.stdout
    assert "QUOTED → ORDERED" in pretty.stdout


async def test_bad_file_exits_2_and_publishes_nothing(
    broker: EmbeddedBroker, unique_topics: TopicSettings, tmp_path: Path
) -> None:
    await broker.create_contract_topics(unique_topics, partitions=1)
    request = dict(input_examples()["order-request.up42-pleiades-panama"])
    request["window"] = {"start": "2025-07-01T00:00:00Z", "end": "2025-06-01T00:00:00Z"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(request))
    not_json = tmp_path / "broken.json"
    not_json.write_text("{ nope")

    result = await invoke(["submit", str(bad), str(not_json)], cli_env(broker, unique_topics))
    assert result.exit_code == 2
    assert "window" in result.output
    assert "broken.json" in result.output
    assert "published" not in result.output
    assert await messages_in(broker, unique_topics.requests) == 0

    good = tmp_path / "good.json"
    good.write_text(json.dumps(input_examples()["order-request.up42-pleiades-panama"]))
    mixed = await invoke(["submit", str(bad), str(good)], cli_env(broker, unique_topics))
    assert mixed.exit_code == 2
    assert await messages_in(broker, unique_topics.requests) == 1  # only the valid file

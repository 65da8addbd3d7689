"""More of the command line against the embedded broker: ``submit`` of a directory, ``tail``
filters, ``status`` (latest event wins, unknown id exits 1) and ``--help`` of every command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cli_support import cli_env, invoke, read_all, runner

from worker.cli.base import app
from worker.config import TopicSettings
from worker.events import codec
from worker.events.codec import InputKind
from worker.events.examples import input_examples
from worker.events.models import OrderStatusEvent, Provider
from worker.events.status import OrderStatus, stapi_status
from worker.kafka.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

COMMANDS = ("run", "demo", "simulate", "submit", "tail", "status", "download", "schemas", "docs", "check")


def status_event(
    request_id: str, sequence: int, status: OrderStatus, previous: OrderStatus | None = None
) -> OrderStatusEvent:
    return OrderStatusEvent(
        request_id=request_id,
        provider=Provider.ONEATLAS,
        sequence=sequence,
        status=status,
        previous_status=previous,
        stapi_status=stapi_status(status),
        occurred_at=datetime(2030, 1, 1, 12, sequence, tzinfo=UTC),
    )


async def publish_status(broker: EmbeddedBroker, topic: str, events: list[OrderStatusEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for event in events:
            record = codec.encode_status(event)
            await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()


def request_file(directory: Path, name: str, request_id: str) -> None:
    request = dict(input_examples()["order-request.oneatlas-oneplan-toulouse"])
    request["requestId"] = request_id
    text = yaml.safe_dump(request) if name.endswith((".yaml", ".yml")) else json.dumps(request)
    (directory / name).write_text(text)


async def test_submit_a_directory_publishes_its_files_in_name_order(
    broker: EmbeddedBroker, unique_topics: TopicSettings, tmp_path: Path
) -> None:
    await broker.create_contract_topics(unique_topics, partitions=1)
    folder = tmp_path / "orders"
    folder.mkdir()
    request_file(folder, "b.yaml", "req-b")
    request_file(folder, "a.json", "req-a")
    request_file(folder, "c.yml", "req-c")
    (folder / "notes.txt").write_text("not a message")
    (folder / "nested").mkdir()
    request_file(folder / "nested", "d.json", "req-nested")

    result = await invoke(["submit", str(folder)], cli_env(broker, unique_topics))
    assert result.exit_code == 0, result.output
    assert result.output.count("published") == 3
    assert f"to {unique_topics.requests}[0]@0 key=req-a ce_id=req-a" in result.output

    records = await read_all(broker, unique_topics.requests, 3)
    assert [r.key for r in records] == [b"req-a", b"req-b", b"req-c"]
    decoded = codec.decode(
        records[1].value,
        key=records[1].key,
        headers=records[1].headers,
        topic=records[1].topic,
        kind=InputKind.REQUEST,
    )
    assert decoded.request_id == "req-b"


async def test_submit_an_empty_directory_is_bad_input(
    broker: EmbeddedBroker, unique_topics: TopicSettings, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    result = await invoke(["submit", str(tmp_path / "empty")], cli_env(broker, unique_topics))
    assert result.exit_code == 2
    assert "no .json, .yaml or .yml file" in result.output
    assert "published" not in result.output


async def test_tail_filters_by_request_id_and_by_status(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await broker.create_contract_topics(unique_topics)
    await publish_status(
        broker,
        unique_topics.status,
        [
            status_event("req-one", 1, OrderStatus.RECEIVED),
            status_event("req-two", 1, OrderStatus.RECEIVED),
            status_event("req-one", 2, OrderStatus.QUOTED, OrderStatus.RECEIVED),
            status_event("req-two", 2, OrderStatus.REJECTED, OrderStatus.RECEIVED),
        ],
    )
    env = cli_env(broker, unique_topics)
    base = ["tail", "--json", "--from-beginning", "--timeout", "8"]

    by_id = await invoke([*base, "--request-id", "req-one"], env)
    assert by_id.exit_code == 0, by_id.output
    seen = [OrderStatusEvent.model_validate_json(line) for line in by_id.stdout.splitlines()]
    assert sorted((e.request_id, e.sequence) for e in seen) == [("req-one", 1), ("req-one", 2)]

    by_status = await invoke([*base, "--status", "RECEIVED"], env)
    assert by_status.exit_code == 0, by_status.output
    seen = [OrderStatusEvent.model_validate_json(line) for line in by_status.stdout.splitlines()]
    assert sorted(e.request_id for e in seen) == ["req-one", "req-two"]
    assert {e.status for e in seen} == {OrderStatus.RECEIVED}

    both = await invoke([*base, "--request-id", "req-two", "--status", "REJECTED"], env)
    (line,) = both.stdout.splitlines()
    assert OrderStatusEvent.model_validate_json(line).sequence == 2


async def test_status_prints_the_latest_event_and_exits_1_for_an_unknown_request(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    await broker.create_contract_topics(unique_topics)
    latest = status_event("req-status", 2, OrderStatus.QUOTED, OrderStatus.RECEIVED)
    await publish_status(
        broker,
        unique_topics.status,
        [
            status_event("req-status", 1, OrderStatus.RECEIVED),
            status_event("req-other", 1, OrderStatus.RECEIVED),
            latest,
            status_event("req-other", 2, OrderStatus.FAILED, OrderStatus.RECEIVED),
        ],
    )
    env = cli_env(broker, unique_topics)

    as_json = await invoke(["status", "req-status", "--json"], env)
    assert as_json.exit_code == 0, as_json.output
    assert OrderStatusEvent.model_validate_json(as_json.stdout) == latest

    pretty = await invoke(["status", "req-status"], env)
    assert pretty.exit_code == 0, pretty.output
    assert "req-status" in pretty.stdout
    assert "RECEIVED → QUOTED" in pretty.stdout

    unknown = await invoke(["status", "req-nobody"], env)
    assert unknown.exit_code == 1
    assert "no status event for req-nobody" in unknown.output


async def test_status_finds_the_latest_event_when_the_newest_share_one_batch(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    """The worker's outbox sends an order's events together, so they often share one batch; the
    embedded broker's ListOffsets then answers the start of that batch plus one, and a read bounded
    by it alone returned an older status (RECEIVED) instead of the newest."""
    await broker.create_contract_topics(unique_topics)
    statuses = [OrderStatus.RECEIVED, OrderStatus.FEASIBLE, OrderStatus.QUOTED, OrderStatus.ORDERED]
    events = [
        status_event("req-batch", n, status, statuses[n - 2] if n > 1 else None)
        for n, status in enumerate(statuses, start=1)
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False, linger_ms=200
    )
    await producer.start()
    try:
        records = [codec.encode_status(event) for event in events]
        futures = [
            await producer.send(unique_topics.status, r.value, key=r.key, headers=r.headers) for r in records
        ]
        offsets = [(await future).offset for future in futures]
    finally:
        await producer.stop()
    assert offsets == list(range(offsets[0], offsets[0] + len(events)))  # one partition, in order
    env = cli_env(broker, unique_topics)
    result = await invoke(["status", "req-batch", "--json"], env)
    assert result.exit_code == 0, result.output
    assert OrderStatusEvent.model_validate_json(result.stdout) == events[-1]


async def test_status_of_a_missing_topic_exits_1_without_creating_it(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    env = cli_env(broker, unique_topics)  # no topic created
    result = await invoke(["status", "req-x"], env)
    assert result.exit_code == 1
    assert f"no status event for req-x on {unique_topics.status}" in result.output
    probe = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=None)
    await probe.start()
    try:
        assert unique_topics.status not in await probe.topics()
    finally:
        await probe.stop()


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_shows_examples(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    epilog = result.output.split("Examples:", 1)[1]
    assert f"tasking-worker {command}" in epilog


def test_every_registered_command_is_covered_by_the_help_test() -> None:
    names = {c.name for c in app.registered_commands}
    assert names == set(COMMANDS)


async def test_tail_prints_delivered_products_of_a_request(
    broker: EmbeddedBroker, unique_topics: TopicSettings
) -> None:
    from worker.events.examples import delivery_example

    await broker.create_contract_topics(unique_topics)
    event = delivery_example()
    record = codec.encode_delivery(event)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(
            unique_topics.deliveries, record.value, key=record.key, headers=record.headers
        )
    finally:
        await producer.stop()
    env = cli_env(broker, unique_topics)
    base = ["tail", "--from-beginning", "--timeout", "6", "--request-id", event.request_id]
    as_json = await invoke([*base, "--json"], env)
    (line,) = as_json.stdout.splitlines()
    assert json.loads(line)["id"] == event.product.item_id
    pretty = await invoke(base, env)
    assert f"delivered {event.product.item_id}" in pretty.stdout
    assert "data: " in pretty.stdout

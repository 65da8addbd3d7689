"""Hostile input: every record is either accepted or dead-lettered with a code, never an exception
out of the consumer, and never lost (CONTRACT §4.5).

* Property-based (hypothesis): the decoder and every function the intake runs on the bad-message
  path (dead letter, ``REJECTED``/``INVALID_REQUEST`` event, provider sniffing) over arbitrary
  bytes, arbitrary JSON, structured-mode envelopes and mutations of valid requests and commands;
  and ``OrderRequest`` validation, which may only raise pydantic's ``ValidationError``.
* Through the broker: a stream of mixed valid and invalid messages (``RELIABILITY_FUZZ``,
  ``SOAK_FUZZ``) processed by a real worker process. Each message is accounted for: a valid request
  has its own status stream starting at ``RECEIVED`` (or is a duplicate), every invalid message has
  exactly one dead letter pointing at its offset, the worker's ``tasking_messages_consumed_total``
  adds up to the number sent, and the worker is still alive and ready at the end.
"""

from __future__ import annotations

import asyncio
import copy
import random
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import (
    Stack,
    metric_value,
    probe,
    reliability_stack,
    spawn_worker,
    wait_ready,
    wait_until,
    window,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from reliability_sizes import Sizes

from worker.config import TopicSettings
from worker.errors import DecodeError
from worker.events.codec import (
    DeadLetterCode,
    InputKind,
    build_dead_letter,
    decode,
    encode_dead_letter,
    encode_input,
)
from worker.events.models import REQUEST_ID_PATTERN, OrderRequest
from worker.kafka.broker import EmbeddedBroker
from worker.runtime.intake import _provider_of
from worker.runtime.outcomes import invalid_request_event

REQUESTS, COMMANDS = "tasking.order-requests", "tasking.commands"
CODES = {code.value for code in DeadLetterCode} | {"UNKNOWN_REQUEST"}
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def valid_request_body(request_id: str, provider: str = "oneatlas", dry_run: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requestId": request_id,
        "provider": provider,
        "window": window(),
        "dryRun": dry_run,
    }
    if provider == "oneatlas":
        body["product"] = {"mission": "PLEIADES", "programmingType": "ONEPLAN"}
        body["aoi"] = {
            "type": "Polygon",
            "coordinates": [[[1.43, 43.56], [1.43, 43.60], [1.46, 43.60], [1.46, 43.56], [1.43, 43.56]]],
        }
    else:
        body["product"] = {"dataProductId": "bd102407-1814-4f92-8b5a-7697b7a73f5a"}
        body["aoi"] = {
            "type": "Polygon",
            "coordinates": [[[-79.64, 9.07], [-79.43, 9.07], [-79.43, 8.87], [-79.64, 8.87], [-79.64, 9.07]]],
        }
    return body


def valid_command_body(request_id: str) -> dict[str, Any]:
    return {"requestId": request_id, "commandId": uuid.uuid4().hex, "command": "cancel", "reason": "fuzz"}


# ------------------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)
FIELDS = [
    "requestId",
    "provider",
    "product",
    "aoi",
    "window",
    "constraints",
    "processing",
    "budget",
    "autoApprove",
    "dryRun",
    "customerReference",
    "acquisitionPolicy",
    "commandId",
    "command",
    "optionId",
    "acquisitionId",
    "unknownField",
]


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request or command with a few fields deleted, replaced or added."""
    rid = draw(st.from_regex(r"[A-Za-z0-9._:-]{1,20}", fullmatch=True))
    base = draw(
        st.sampled_from([valid_request_body(rid), valid_request_body(rid, "up42"), valid_command_body(rid)])
    )
    body: dict[str, Any] = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from(FIELDS))
        action = draw(st.sampled_from(["delete", "replace", "nested"]))
        if action == "delete":
            body.pop(field, None)
        elif action == "replace" or not isinstance(body.get(field), dict):
            body[field] = draw(json_values)
        else:
            inner = body[field]
            inner[draw(st.sampled_from([*inner.keys(), "x"]))] = draw(json_values)
    return body


@st.composite
def records(draw: st.DrawFn) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]:
    """(value, key, headers) of a hostile record: raw bytes, any JSON, a mutated valid message,
    in bare, binary or structured form, with a matching, wrong or missing key."""
    shape = draw(st.sampled_from(["bytes", "json", "mutated", "structured"]))
    data: Any = None
    if shape == "bytes":
        value: bytes | None = draw(st.none() | st.binary(max_size=300))
    elif shape == "json":
        data = draw(json_values)
        value = orjson.dumps(data)
    else:
        data = draw(mutated())
        value = orjson.dumps(data)
    headers: list[tuple[str, bytes | None]] = []
    if shape == "structured":
        envelope = {
            "specversion": draw(st.sampled_from(["1.0", "0.3"])),
            "id": "x",
            "source": "fuzz",
            "type": draw(
                st.sampled_from(["tasking.order.requested.v1", "tasking.order.command.v1", "other"])
            ),
            "data": data,
        }
        value = orjson.dumps(envelope)
        headers.append(("content-type", b"application/cloudevents+json"))
    elif draw(st.booleans()):
        headers.append(("ce_type", draw(st.sampled_from([b"tasking.order.requested.v1", b"nope", b"\xff"]))))
        headers.append(("ce_specversion", draw(st.sampled_from([b"1.0", b"2.0"]))))
    rid = data.get("requestId") if isinstance(data, dict) else None
    key_choice = draw(st.sampled_from(["none", "match", "other"]))
    key = None if key_choice == "none" else (str(rid).encode() if key_choice == "match" else b"other-key")
    return value, key, headers


def check_dead_letter(
    error: DecodeError,
    value: bytes | None,
    key: bytes | None,
    headers: list[tuple[str, bytes | None]],
    topic: str,
) -> str:
    """The intake's bad-message path for ``error``: a coded dead letter that encodes, and a
    ``REJECTED`` event when a request id was read. Returns the code."""
    assert error.code in CODES, error.code
    dead = build_dead_letter(
        error, value=value, key=key, headers=headers, topic=topic, partition=0, offset=7, received_at=NOW
    )
    record = encode_dead_letter(dead, key=key, request_id=error.request_id)
    assert orjson.loads(record.value)["error"]["code"] == error.code
    if error.request_id is not None:
        assert re.fullmatch(REQUEST_ID_PATTERN, error.request_id), error.request_id
        event = invalid_request_event(error.request_id, error, NOW, _provider_of(value))
        assert event.request_id == error.request_id
    return error.code


def check_record(
    value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes | None]], kind: InputKind
) -> str:
    """What the intake does with one record, minus Kafka; returns ``valid`` or the dead-letter code.
    Raises whatever escapes (the property is that nothing does)."""
    topic = REQUESTS if kind is InputKind.REQUEST else COMMANDS
    try:
        message = decode(value, key=key, headers=headers, topic=topic, kind=kind)
    except DecodeError as exc:
        return check_dead_letter(exc, value, key, headers, topic)
    # Accepted: the message re-encodes to a record that decodes, and encoding is then stable
    # (times are written with millisecond precision, so the first trip may round them).
    again = encode_input(message)
    back = decode(again.value, key=again.key, headers=again.headers, topic=topic, kind=kind)
    assert back.request_id == message.request_id
    assert encode_input(back).value == again.value
    return "valid"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records(), st.sampled_from(list(InputKind)))
def test_decoder_accepts_or_dead_letters_every_record(
    record: tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]], kind: InputKind
) -> None:
    value, key, headers = record
    assert check_record(value, key, headers, kind) in CODES | {"valid"}


@settings(max_examples=400, deadline=None)
@given(mutated() | json_values)
def test_order_request_validation_raises_only_validation_error(data: Any) -> None:
    try:
        request = OrderRequest.model_validate(data)
    except ValidationError:
        return
    # Valid: its JSON form validates again and is then stable (times are kept to milliseconds).
    once = OrderRequest.model_validate_json(request.model_dump_json(by_alias=True))
    assert once.request_id == request.request_id
    assert OrderRequest.model_validate_json(once.model_dump_json(by_alias=True)) == once


def test_mutations_produce_both_outcomes() -> None:
    """The strategies are not vacuous: they yield valid messages and several dead-letter codes."""
    outcomes: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(records())
    def collect(record: tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]) -> None:
        value, key, headers = record
        outcomes.add(check_record(value, key, headers, InputKind.REQUEST))

    collect()
    assert "valid" in outcomes, outcomes
    assert {"MALFORMED_JSON", "SCHEMA_VIOLATION"} <= outcomes, outcomes


# ------------------------------------------------------------------------- through the broker

Item = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]  # (kind, key, value, headers)


def hostile_stream(count: int, seed: int) -> list[Item]:
    """``count`` (topic, key, value, headers) records: dry-run requests (some sent twice), broken
    JSON, schema violations, key mismatches, foreign types, tombstones, oversized values, and
    commands for unknown requests. Deterministic for a seed."""
    rng = random.Random(seed)
    out: list[Item] = []
    sent: list[Item] = []
    item: Item
    for n in range(count):
        rid = f"fz{seed}-{n}"
        roll = rng.random()
        body = valid_request_body(rid, rng.choice(["oneatlas", "up42"]))
        if roll < 0.35:
            record = encode_input(OrderRequest.model_validate(body), structured=rng.random() < 0.3)
            item = ("req", record.key, record.value, record.headers)
            sent.append(item)
        elif roll < 0.42 and sent:
            item = rng.choice(sent)  # an exact duplicate delivery
        elif roll < 0.52:
            item = ("req", rid.encode(), bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 60))), [])
        elif roll < 0.62:
            body[rng.choice(["aoi", "window", "product", "provider"])] = rng.choice([None, 5, "x", []])
            item = ("req", rid.encode(), orjson.dumps(body), [])
        elif roll < 0.68:
            body["surprise"] = True
            item = ("req", rid.encode(), orjson.dumps(body), [])
        elif roll < 0.74:
            item = ("req", b"someone-else", orjson.dumps(body), [])
        elif roll < 0.80:
            item = ("req", rid.encode(), orjson.dumps(body), [("ce_type", b"tasking.something.v9")])
        elif roll < 0.84:
            item = ("req", rid.encode(), None, [])
        elif roll < 0.86:
            item = ("req", rid.encode(), b'{"requestId":"' + b"x" * (1024 * 1024 + 10) + b'"}', [])
        elif roll < 0.93:
            item = ("cmd", rid.encode(), orjson.dumps(valid_command_body(rid)), [])
        else:
            item = ("cmd", rid.encode(), orjson.dumps({"requestId": rid, "command": "explode"}), [])
        out.append(item)
    return out


async def _send_stream(stack: Stack, stream: list[Item]) -> dict[tuple[str, int, int], Item]:
    """Send every record; returns them by (topic, partition, offset)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=stack.broker.bootstrap_servers,
        enable_idempotence=False,
        max_request_size=4 * 1024 * 1024,
        linger_ms=5,
    )
    await producer.start()
    placed = {}
    try:
        futures = []
        for item in stream:
            topic = stack.topics.requests if item[0] == "req" else stack.topics.commands
            futures.append((topic, item, await producer.send(topic, item[2], key=item[1], headers=item[3])))
        for topic, item, future in futures:
            meta = await future
            placed[(topic, meta.partition, meta.offset)] = item
    finally:
        await producer.stop()
    return placed


def _expected(item: Item, topic: str) -> str:
    kind = InputKind.REQUEST if item[0] == "req" else InputKind.COMMAND
    try:
        decode(item[2], key=item[1], headers=item[3], topic=topic, kind=kind)
    except DecodeError:
        return "dead_letter"
    return "valid" if kind is InputKind.REQUEST else "dead_letter"  # commands: unknown requests


async def run_stream(broker: EmbeddedBroker, log_dir: Path, count: int, seed: int) -> dict[str, float]:
    suffix = uuid.uuid4().hex[:8]
    topics = TopicSettings(**{k: f"{v}.{suffix}" for k, v in TopicSettings().model_dump().items()})
    async with reliability_stack(broker, topics) as (stack, events):
        worker = spawn_worker(stack, log_dir / f"fuzz-{suffix}.log")
        try:
            await wait_ready(worker)
            started = time.monotonic()
            placed = await _send_stream(stack, hostile_stream(count, seed))
            expected = {where: _expected(item, where[0]) for where, item in placed.items()}
            dead_expected = {w for w, e in expected.items() if e == "dead_letter"}
            valid_ids = {
                decode(
                    placed[w][2], key=placed[w][1], headers=placed[w][3], topic=w[0], kind=InputKind.REQUEST
                ).request_id
                for w, e in expected.items()
                if e == "valid"
            }

            def consumed() -> float:
                return metric_value(metrics_text[0], "tasking_messages_consumed_total")

            metrics_text = [""]

            async def refresh() -> bool:
                metrics_text[0] = (await probe(worker, "/metrics"))[1]
                return consumed() >= len(placed)

            deadline = time.monotonic() + max(120.0, count * 0.2)
            while not await refresh():
                assert time.monotonic() < deadline, f"consumed {consumed()} of {len(placed)}"
                assert worker.process.poll() is None, worker.log_text()[-3000:]
                await asyncio.sleep(0.5)
            await wait_until(lambda: len(events.dead_letters) >= len(dead_expected), 60, "dead letters")
            await wait_until(
                lambda: valid_ids <= {r for r in events.status if events.statuses(r)[:1] == ["RECEIVED"]},
                60,
                "RECEIVED of every valid request",
            )
            seconds = time.monotonic() - started
            text = metrics_text[0]
            dead_sources = [
                (d["source"]["topic"], d["source"]["partition"], d["source"]["offset"])
                for d in events.dead_letters
            ]
            assert len(dead_sources) == len(set(dead_sources)), "a record was dead-lettered twice"
            assert set(dead_sources) == dead_expected
            assert consumed() == len(placed)
            assert metric_value(text, "tasking_messages_consumed_total", outcome="dead_letter") == len(
                dead_expected
            )
            accepted = metric_value(text, "tasking_messages_consumed_total", outcome="accepted")
            duplicate = metric_value(text, "tasking_messages_consumed_total", outcome="duplicate")
            assert accepted == len(valid_ids)
            assert accepted + duplicate + len(dead_expected) == len(placed)
            # Invalid requests with a readable new id got a REJECTED INVALID_REQUEST as sequence 1.
            rejected = [r for r in events.status if events.statuses(r)[:1] == ["REJECTED"]]
            assert all(events.unique(r)[0]["reason"]["code"] == "INVALID_REQUEST" for r in rejected)
            assert not (set(rejected) & valid_ids)
            assert events.event_problems() == []
            assert (await probe(worker, "/readyz"))[0] == 200
            assert "Traceback" not in worker.log_text()
            return {
                "messages": len(placed),
                "dead_letters": len(dead_expected),
                "accepted": accepted,
                "duplicates": duplicate,
                "seconds": seconds,
            }
        finally:
            worker.kill()


@pytest.mark.integration
async def test_hostile_stream_is_fully_accounted_for(
    broker: EmbeddedBroker, log_dir: Path, sizes: Sizes
) -> None:
    figures = await run_stream(broker, log_dir, sizes.fuzz, seed=11)
    assert figures["dead_letters"] > 0
    assert figures["accepted"] > 0
    assert figures["duplicates"] > 0


@pytest.mark.soak
@pytest.mark.timeout(3600)
async def test_soak_hostile_stream(broker: EmbeddedBroker, log_dir: Path, soak_sizes: Sizes) -> None:
    figures = await run_stream(broker, log_dir, soak_sizes.fuzz, seed=12)
    print("hostile stream:", figures)
    assert figures["messages"] == soak_sizes.fuzz

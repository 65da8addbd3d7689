"""The CloudEvents codec: binary-mode outputs, input forms, dead letters, robustness."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import orjson
import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.errors import DecodeError
from worker.events import codec
from worker.events.codec import DeadLetterCode, EventType, InputKind
from worker.events.examples import input_examples, output_examples
from worker.events.models import (
    AcquisitionEvent,
    Command,
    DeadLetter,
    OrderRequest,
    OrderStatusEvent,
)

TOPIC = "tasking.order-requests"


def status_event() -> OrderStatusEvent:
    event = output_examples()["order-status-event"]
    assert isinstance(event, OrderStatusEvent)
    return event


def acquisition_event() -> AcquisitionEvent:
    event = output_examples()["acquisition-event"]
    assert isinstance(event, AcquisitionEvent)
    return event


def a_request() -> OrderRequest:
    return OrderRequest.model_validate(input_examples()["order-request.up42-pleiades-panama"])


def a_command() -> Command:
    return Command.model_validate(input_examples()["command.accept-acquisition"])


def test_status_event_binary_mode_headers_and_value() -> None:
    event = status_event()
    record = codec.encode_status(event, source="urn:test")
    headers = dict(record.headers)
    assert record.key == event.request_id.encode()
    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": f"{event.request_id}:{event.sequence}".encode(),
        "ce_source": b"urn:test",
        "ce_type": EventType.ORDER_STATUS.value.encode(),
        "ce_time": codec.rfc3339(event.occurred_at).encode(),
        "ce_subject": event.request_id.encode(),
        "content-type": b"application/json",
    }
    assert OrderStatusEvent.model_validate_json(record.value) == event
    assert headers["ce_time"].endswith(b"Z")


def test_re_encoding_an_event_gives_the_same_record() -> None:
    assert codec.encode_status(status_event()) == codec.encode_status(status_event())


def test_acquisition_event_id_carries_acquisition_and_n() -> None:
    event = acquisition_event()
    record = codec.encode_acquisition(event, 3)
    headers = dict(record.headers)
    assert headers["ce_id"] == f"{event.request_id}:{event.acquisition_id}:3".encode()
    assert headers["ce_type"] == EventType.ACQUISITION_STATUS.value.encode()
    assert AcquisitionEvent.model_validate_json(record.value) == event


def test_outputs_are_readable_by_the_cloudevents_sdk() -> None:
    record = codec.encode_status(status_event())
    message = ce_kafka.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
    event = ce_kafka.from_binary(message, JSONFormat())
    assert event.get_type() == EventType.ORDER_STATUS
    assert event.get_id() == status_event().ce_id
    assert event.get_data() == status_event().to_json_dict()


def test_dead_letter_keeps_original_key_and_deterministic_id() -> None:
    error = DecodeError(DeadLetterCode.MALFORMED_JSON, "value is not UTF-8 JSON")
    dead = codec.build_dead_letter(
        error, value=b"{oops", key=b"k-1", headers=[("x", b"y")], topic=TOPIC, partition=2, offset=41
    )
    record = codec.encode_dead_letter(dead, key=b"k-1", request_id="req-9")
    headers = dict(record.headers)
    assert record.key == b"k-1"
    assert headers["ce_id"] == f"{TOPIC}:2:41".encode()
    assert headers["ce_subject"] == b"req-9"
    assert headers["ce_type"] == EventType.DEAD_LETTER.value.encode()
    parsed = DeadLetter.model_validate_json(record.value)
    assert (parsed.payload, parsed.payload_encoding) == ("{oops", "utf-8")
    assert parsed.source.headers == {"x": "y"}
    assert parsed.error.code == "MALFORMED_JSON"


def test_dead_letter_without_request_id_has_no_subject_and_null_key() -> None:
    error = DecodeError(DeadLetterCode.MALFORMED_JSON, "empty")
    dead = codec.build_dead_letter(
        error, value=None, key=None, headers=[], topic=TOPIC, partition=0, offset=0
    )
    record = codec.encode_dead_letter(dead, key=None)
    assert record.key is None
    assert "ce_subject" not in dict(record.headers)
    assert dead.payload is None


def test_dead_letter_of_binary_payload_is_base64() -> None:
    raw = b"\xff\x00\xfebinary"
    with pytest.raises(DecodeError) as caught:
        codec.decode(raw, key=None, headers=[], topic=TOPIC, kind=InputKind.REQUEST)
    dead = codec.build_dead_letter(
        caught.value, value=raw, key=b"\xff", headers=[], topic=TOPIC, partition=1, offset=5
    )
    assert dead.payload_encoding == "base64"
    assert base64.b64decode(dead.payload or "") == raw
    assert dead.source.key == "\\xff"


def test_dead_letter_leaves_out_a_payload_too_big_for_one_message() -> None:
    raw = b'{"requestId": "r1", "comments": "' + b"x" * 5000 + b'"}'
    error = DecodeError(DeadLetterCode.TOO_LARGE, "too large", details={"size": len(raw)})
    dead = codec.build_dead_letter(
        error, value=raw, key=None, headers=[], topic=TOPIC, partition=0, offset=9, max_payload_chars=1000
    )
    assert dead.payload is None
    assert dead.error.details == {"size": len(raw), "payloadOmitted": True, "payloadChars": len(raw)}


def test_input_encoder_round_trips_commands_in_binary_mode() -> None:
    command = a_command()
    record = codec.encode_input(command, time=datetime(2025, 1, 1, tzinfo=UTC))
    headers = dict(record.headers)
    assert headers["ce_type"] == EventType.ORDER_COMMAND.value.encode()
    assert headers["ce_id"] == f"{command.request_id}:{command.command_id}".encode()
    assert record.key == command.request_id.encode()
    decoded = codec.decode(
        record.value, key=record.key, headers=record.headers, topic="tasking.commands", kind=InputKind.COMMAND
    )
    assert decoded == command


def test_header_names_are_case_insensitive_and_may_carry_parameters() -> None:
    record = codec.encode_input(a_request(), structured=True)
    headers = [("Content-Type", b"application/cloudevents+json; charset=utf-8")]
    decoded = codec.decode(record.value, key=None, headers=headers, topic=TOPIC, kind=InputKind.REQUEST)
    assert decoded == a_request()


def test_structured_mode_with_data_base64() -> None:
    data = orjson.dumps(a_request().to_json_dict())
    event = {
        "specversion": "1.0",
        "id": "1",
        "source": "s",
        "type": EventType.ORDER_REQUESTED,
        "data_base64": base64.b64encode(data).decode(),
    }
    decoded = codec.decode(
        orjson.dumps(event),
        key=None,
        headers=[("content-type", b"application/cloudevents+json")],
        topic=TOPIC,
        kind=InputKind.REQUEST,
    )
    assert decoded == a_request()


@pytest.mark.parametrize(("header", "value"), [("ce_type", b"com.example.other"), ("ce_specversion", b"0.3")])
def test_foreign_type_or_specversion_is_unknown_type_with_request_id(header: str, value: bytes) -> None:
    record = codec.encode_input(a_request())
    headers = [(n, value if n == header else v) for n, v in record.headers]
    with pytest.raises(DecodeError) as caught:
        codec.decode(record.value, key=record.key, headers=headers, topic=TOPIC, kind=InputKind.REQUEST)
    assert caught.value.code == DeadLetterCode.UNKNOWN_TYPE
    assert caught.value.request_id == a_request().request_id


def test_structured_event_of_wrong_type_is_unknown_type() -> None:
    record = codec.encode_input(a_command(), structured=True)
    with pytest.raises(DecodeError) as caught:
        codec.decode(record.value, key=None, headers=record.headers, topic=TOPIC, kind=InputKind.REQUEST)
    assert caught.value.code == DeadLetterCode.UNKNOWN_TYPE


def test_structured_event_without_object_data_is_malformed() -> None:
    event = {
        "specversion": "1.0",
        "id": "1",
        "source": "s",
        "type": EventType.ORDER_REQUESTED,
        "data": "text",
    }
    with pytest.raises(DecodeError) as caught:
        codec.decode(
            orjson.dumps(event),
            key=None,
            headers=[("content-type", b"application/cloudevents+json")],
            topic=TOPIC,
            kind=InputKind.REQUEST,
        )
    assert caught.value.code == DeadLetterCode.MALFORMED_JSON


def test_tombstone_is_malformed() -> None:
    with pytest.raises(DecodeError) as caught:
        codec.decode(None, key=b"r1", headers=[], topic=TOPIC, kind=InputKind.REQUEST)
    assert caught.value.code == DeadLetterCode.MALFORMED_JSON


def test_size_limit_is_configurable_and_checked_first() -> None:
    value = b"{" * 200  # not JSON either: the size decides
    with pytest.raises(DecodeError) as caught:
        codec.decode(value, key=None, headers=[], topic=TOPIC, kind=InputKind.REQUEST, max_bytes=100)
    assert caught.value.code == DeadLetterCode.TOO_LARGE


_headers = st.lists(
    st.tuples(
        st.sampled_from(["ce_type", "ce_specversion", "content-type", "Content-Type", "x"]),
        st.one_of(
            st.none(),
            st.binary(max_size=40),
            st.sampled_from(
                [b"application/cloudevents+json", b"1.0", EventType.ORDER_REQUESTED.value.encode()]
            ),
        ),
    ),
    max_size=4,
)
_values = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "requestId",
                        "data",
                        "aoi",
                        "coordinates",
                        "type",
                        "specversion",
                        "data_base64",
                        "window",
                        "start",
                    ]
                ),
                children,
                max_size=5,
            )
        ),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=300, deadline=None)
@given(
    value=_values,
    key=st.none() | st.binary(max_size=10),
    headers=_headers,
    kind=st.sampled_from(list(InputKind)),
)
def test_decode_raises_nothing_but_decode_error(
    value: bytes | None,
    key: bytes | None,
    headers: list[tuple[str, bytes | None]],
    kind: InputKind,
) -> None:
    outcome: object
    try:
        outcome = codec.decode(value, key=key, headers=headers, topic=TOPIC, kind=kind)
    except DecodeError as exc:
        outcome = exc.code
    assert isinstance(outcome, OrderRequest | Command) or outcome in set(DeadLetterCode)


def test_routing_request_id_reads_every_form_without_validating() -> None:
    body = {"requestId": "rk-1", "provider": "nowhere"}  # invalid, yet routable
    assert codec.routing_request_id(orjson.dumps(body), []) == "rk-1"
    structured = orjson.dumps({"specversion": "1.0", "data": body})
    headers = [("content-type", b"application/cloudevents+json")]
    assert codec.routing_request_id(structured, headers) == "rk-1"
    assert codec.routing_request_id(structured, []) is None  # bare JSON without a requestId
    assert codec.routing_request_id(b"\xff{", []) is None
    assert codec.routing_request_id(None, []) is None
    assert codec.routing_request_id(orjson.dumps({"requestId": "bad id!"}), []) is None
    assert codec.routing_request_id(orjson.dumps(body), [], max_bytes=10) is None

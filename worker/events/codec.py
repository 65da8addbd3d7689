"""CloudEvents codec: Kafka records <-> contract models (CONTRACT §2-4).

Decoding (:func:`decode`) turns one consumed record into a validated :class:`OrderRequest` or
:class:`Command`, or raises :class:`~worker.errors.DecodeError` carrying a dead-letter code of
CONTRACT §4.5. It never raises anything else, whatever the bytes and headers, so the intake can
dead-letter every bad message and move on. Three input forms are accepted:

* binary mode: ``ce_*`` headers, the value is the JSON ``data``;
* structured mode: ``content-type: application/cloudevents+json``, the value is the whole event;
* bare JSON: no ``ce_`` header, the type is implied by the topic's kind.

Encoding (:func:`encode_status`, :func:`encode_acquisition`, :func:`encode_dead_letter`) produces
binary-mode records with deterministic ``ce_id`` values, so a re-published event keeps its id.

Implementation note: the decoding and output-encoding hot paths are a small explicit
implementation of the Kafka protocol binding rather than the CloudEvents SDK, because the SDK parses
the value with the stdlib ``json`` into a dict (and then the model would validate it a second time),
raises many exception types of its own, and takes headers as a dict (Kafka allows repeated
headers). Binary and bare values go straight from bytes into ``model_validate_json`` (one parse).
The SDK *is* used where it fits: :func:`encode_input` (the ``submit`` command and tests) builds a
``cloudevents.core.v1.event.CloudEvent`` and serialises it with the SDK's Kafka binding, so the
inputs we produce, and the structured-mode inputs tests feed to :func:`decode`, come from the
reference implementation rather than from this module's own reading of the spec.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal, NamedTuple, overload

import orjson
import pydantic_core
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from worker.errors import DecodeError
from worker.events.delivery import DeliveryEvent
from worker.events.models import (
    REQUEST_ID_PATTERN,
    AcquisitionEvent,
    Command,
    ContractModel,
    DeadLetter,
    DeadLetterError,
    MessageSource,
    OrderRequest,
    OrderStatusEvent,
    utc_now,
)

SPECVERSION: Final = "1.0"
DEFAULT_SOURCE: Final = "urn:tasking-worker"
DEFAULT_MAX_VALUE_BYTES: Final = 1024 * 1024
# A dead letter must fit in one Kafka message (1 MiB by default on brokers and producers), so a
# payload whose text is longer than this is left out of it; its source offset still finds it.
DEFAULT_MAX_DEAD_LETTER_PAYLOAD: Final = 768 * 1024
# Enough field errors to fix a message, bounded so a dead letter stays small.
MAX_REPORTED_ERRORS: Final = 20

CONTENT_TYPE_HEADER: Final = "content-type"
JSON_CONTENT_TYPE: Final = "application/json"
STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
CE_PREFIX: Final = "ce_"


class EventType(StrEnum):
    """The ``ce_type`` of every message of the contract (CONTRACT §2)."""

    ORDER_REQUESTED = "tasking.order.requested.v1"
    ORDER_COMMAND = "tasking.order.command.v1"
    ORDER_STATUS = "tasking.order.status.v1"
    ACQUISITION_STATUS = "tasking.acquisition.status.v1"
    DELIVERY = "tasking.delivery.v1"
    DEAD_LETTER = "tasking.dead-letter.v1"


class InputKind(StrEnum):
    """What an input topic carries; decides the model and the expected ``ce_type``."""

    REQUEST = "request"
    COMMAND = "command"


class DeadLetterCode(StrEnum):
    """Why a message was dead-lettered (CONTRACT §4.5)."""

    MALFORMED_JSON = "MALFORMED_JSON"
    SCHEMA_VIOLATION = "SCHEMA_VIOLATION"
    KEY_MISMATCH = "KEY_MISMATCH"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    TOO_LARGE = "TOO_LARGE"
    UNKNOWN_REQUEST = "UNKNOWN_REQUEST"  # a command for a requestId this worker does not know
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED"  # a used requestId with other content
    INTERNAL_ERROR = "INTERNAL_ERROR"  # processing raised on every one of its bounded attempts


_MODEL_BY_KIND: Final[dict[InputKind, type[OrderRequest] | type[Command]]] = {
    InputKind.REQUEST: OrderRequest,
    InputKind.COMMAND: Command,
}
_TYPE_BY_KIND: Final = {
    InputKind.REQUEST: EventType.ORDER_REQUESTED,
    InputKind.COMMAND: EventType.ORDER_COMMAND,
}

Headers = Sequence[tuple[str, bytes | None]]
RequestIdReader = Callable[[], str | None]
_REQUEST_ID: Final = re.compile(REQUEST_ID_PATTERN)


class EncodedRecord(NamedTuple):
    """What to hand to a Kafka producer: key, value and headers (binary content mode)."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


# --------------------------------------------------------------------------- decoding


@overload
def decode(
    value: bytes | None,
    *,
    key: bytes | None,
    headers: Headers,
    topic: str,
    kind: Literal[InputKind.REQUEST],
    max_bytes: int = ...,
) -> OrderRequest: ...


@overload
def decode(
    value: bytes | None,
    *,
    key: bytes | None,
    headers: Headers,
    topic: str,
    kind: Literal[InputKind.COMMAND],
    max_bytes: int = ...,
) -> Command: ...


@overload
def decode(
    value: bytes | None,
    *,
    key: bytes | None,
    headers: Headers,
    topic: str,
    kind: InputKind,
    max_bytes: int = ...,
) -> OrderRequest | Command: ...


def decode(
    value: bytes | None,
    *,
    key: bytes | None,
    headers: Headers,
    topic: str,
    kind: InputKind,
    max_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> OrderRequest | Command:
    """Decode and validate one consumed record of an input topic.

    Args:
        value: the record value (``None`` for a tombstone).
        key: the record key; when present it must equal the ``requestId``.
        headers: the record headers as the client gives them (repeats allowed; the last wins).
        topic: the topic name, only used in messages.
        kind: whether the topic carries requests or commands.
        max_bytes: values longer than this are refused before any parsing.

    Raises:
        DecodeError: and nothing else. ``code`` is one of :class:`DeadLetterCode`; ``request_id``
            is set whenever a well-formed ``requestId`` could be read from the value.
    """
    try:
        return _decode(value, key, headers, topic, kind, max_bytes)
    except DecodeError:
        raise
    except Exception as exc:  # a decoder bug must dead-letter the message, not stop the intake
        raise DecodeError(
            DeadLetterCode.SCHEMA_VIOLATION,
            f"message on {topic} could not be validated ({type(exc).__name__})",
            request_id=_request_id_of_bytes(value),
        ) from exc


def _decode(
    value: bytes | None,
    key: bytes | None,
    headers: Headers,
    topic: str,
    kind: InputKind,
    max_bytes: int,
) -> OrderRequest | Command:
    if value is None:
        raise DecodeError(DeadLetterCode.MALFORMED_JSON, f"empty value on {topic}")
    if len(value) > max_bytes:
        raise DecodeError(
            DeadLetterCode.TOO_LARGE,
            f"value of {len(value)} bytes on {topic} exceeds the limit of {max_bytes} bytes",
            details={"size": len(value), "maxBytes": max_bytes},
        )
    attributes = _ce_headers(headers)
    if _is_structured(attributes.get(CONTENT_TYPE_HEADER)):
        model = _decode_structured(value, topic, kind)
    else:
        _check_attributes(attributes, kind, topic, lambda: _request_id_of_bytes(value))
        model = _validate_json(value, kind)
    _check_key(key, model.request_id)
    return model


def _ce_headers(headers: Headers) -> dict[str, str]:
    """The ``ce_*`` and ``content-type`` headers, names lower-cased, values as text."""
    found: dict[str, str] = {}
    for name, raw in headers:
        lowered = name.lower()
        if lowered.startswith(CE_PREFIX) or lowered == CONTENT_TYPE_HEADER:
            found[lowered] = (raw or b"").decode("utf-8", "replace")
    return found


def _is_structured(content_type: str | None) -> bool:
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == STRUCTURED_CONTENT_TYPE


def _check_attributes(
    attributes: dict[str, str], kind: InputKind, topic: str, request_id: RequestIdReader
) -> None:
    """Refuse a foreign ``type`` or ``specversion``; absent attributes are implied by the topic.

    ``attributes`` maps CloudEvents attribute names, with or without the ``ce_`` prefix.
    ``request_id`` is called only on failure, to read the id for the error.
    """
    specversion = attributes.get("ce_specversion", attributes.get("specversion"))
    if specversion is not None and specversion != SPECVERSION:
        raise DecodeError(
            DeadLetterCode.UNKNOWN_TYPE,
            f"unsupported CloudEvents specversion {specversion[:20]!r} on {topic}",
            details={"specversion": specversion[:20]},
            request_id=request_id(),
        )
    ce_type = attributes.get("ce_type", attributes.get("type"))
    expected = _TYPE_BY_KIND[kind]
    if ce_type is not None and ce_type != expected:
        raise DecodeError(
            DeadLetterCode.UNKNOWN_TYPE,
            f"event type {ce_type[:100]!r} is not {expected} on {topic}",
            details={"type": ce_type[:100], "expected": expected.value},
            request_id=request_id(),
        )


def _decode_structured(value: bytes, topic: str, kind: InputKind) -> OrderRequest | Command:
    """A structured-mode event: the envelope and its ``data`` in one JSON object."""
    event = _parse_object(value, f"structured event on {topic}")
    attributes = {k: v if isinstance(v, str) else str(v) for k, v in event.items() if k != "data"}
    data = event.get("data")
    request_id = _request_id_of(data)
    _check_attributes(attributes, kind, topic, lambda: request_id)
    if data is None and isinstance(event.get("data_base64"), str):
        data = _parse_object(_b64decode(event["data_base64"]), f"data_base64 on {topic}")
    if not isinstance(data, dict):
        raise DecodeError(
            DeadLetterCode.MALFORMED_JSON,
            f"structured event on {topic} has no JSON object as data",
            request_id=request_id,
        )
    return validate_input(data, kind)


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(DeadLetterCode.MALFORMED_JSON, "data_base64 is not base64") from exc


def _parse_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(DeadLetterCode.MALFORMED_JSON, f"{what} is not UTF-8 JSON") from exc
    if not isinstance(parsed, dict):
        raise DecodeError(DeadLetterCode.MALFORMED_JSON, f"{what} is not a JSON object")
    return parsed


def _validate_json(value: bytes, kind: InputKind) -> OrderRequest | Command:
    """Parse and validate in one pass; the error path re-reads the bytes for the request id."""
    try:
        return _MODEL_BY_KIND[kind].model_validate_json(value)
    except ValidationError as exc:
        raise _validation_error(exc, kind, lambda: _request_id_of_bytes(value)) from None


def validate_input(data: Any, kind: InputKind) -> OrderRequest | Command:
    """Validate already-parsed JSON (a dict) as the model of ``kind``.

    Raises:
        DecodeError: ``MALFORMED_JSON`` when ``data`` is not an object, else ``SCHEMA_VIOLATION``.
    """
    try:
        return _MODEL_BY_KIND[kind].model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, kind, lambda: _request_id_of(data)) from None


def _validation_error(exc: ValidationError, kind: InputKind, request_id: RequestIdReader) -> DecodeError:
    """Translate a pydantic error; field paths are camelCase, the input is never copied."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if len(errors) == 1 and errors[0]["type"] in ("json_invalid", "model_type"):
        message = (
            "value is not UTF-8 JSON"
            if errors[0]["type"] == "json_invalid"
            else ("value is not a JSON object")
        )
        return DecodeError(DeadLetterCode.MALFORMED_JSON, message, request_id=request_id())
    fields = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
        for e in errors[:MAX_REPORTED_ERRORS]
    ]
    summary = "; ".join(f"{f['field'] or '(message)'}: {f['message']}" for f in fields[:3])
    return DecodeError(
        DeadLetterCode.SCHEMA_VIOLATION,
        f"invalid {kind.value}: {summary}",
        details={"errors": fields, "errorCount": len(errors)},
        request_id=request_id(),
    )


def routing_request_id(
    value: bytes | None, headers: Headers, max_bytes: int = DEFAULT_MAX_VALUE_BYTES
) -> str | None:
    """The well-formed ``requestId`` of an input record (binary, bare or structured mode), read
    without validating the message, or ``None``: what a keyless record is re-keyed by.

    A value over ``max_bytes`` is not read (it is dead-lettered ``TOO_LARGE`` where it is). Never
    raises."""
    if value is None or len(value) > max_bytes:
        return None
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and _is_structured(_ce_headers(headers).get(CONTENT_TYPE_HEADER)):
        data = data.get("data")
    return _request_id_of(data)


def _request_id_of_bytes(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return _request_id_of(orjson.loads(value))
    except orjson.JSONDecodeError:
        pass
    try:  # orjson refuses numbers that overflow (``1e999``); the id beside them is still readable
        return _request_id_of(pydantic_core.from_json(value))
    except ValueError:
        return None


def _request_id_of(data: Any) -> str | None:
    """``data["requestId"]`` when it is a well-formed request id, else ``None``.

    An id that breaks the ``requestId`` rules is not returned: consumers key on it, and a
    message without a usable id is still dead-lettered, never lost.
    """
    if not isinstance(data, dict):
        return None
    candidate = data.get("requestId")
    if isinstance(candidate, str) and _REQUEST_ID.match(candidate):
        return candidate
    return None


def _check_key(key: bytes | None, request_id: str) -> None:
    if key is None or key == request_id.encode():
        return
    raise DecodeError(
        DeadLetterCode.KEY_MISMATCH,
        f"Kafka key does not match requestId {request_id!r}",
        details={"key": key.decode("utf-8", "backslashreplace")[:200], "requestId": request_id},
        request_id=request_id,
    )


# --------------------------------------------------------------------------- encoding outputs


def encode_status(event: OrderStatusEvent, *, source: str = DEFAULT_SOURCE) -> EncodedRecord:
    """Binary-mode record of a status event; ``ce_id`` is ``{requestId}:{sequence}``."""
    return _encode_output(
        event, EventType.ORDER_STATUS, event.ce_id, event.request_id, event.occurred_at, source
    )


def encode_acquisition(event: AcquisitionEvent, n: int, *, source: str = DEFAULT_SOURCE) -> EncodedRecord:
    """Binary-mode record of an acquisition event; ``ce_id`` is ``{requestId}:{acquisitionId}:{n}``.

    ``n`` numbers the events of one acquisition (1 for the first sighting).
    """
    return _encode_output(
        event,
        EventType.ACQUISITION_STATUS,
        event.ce_id(n),
        event.request_id,
        event.occurred_at,
        source,
    )


def encode_delivery(
    event: DeliveryEvent, *, source: str = DEFAULT_SOURCE, base_url: str | None = None
) -> EncodedRecord:
    """Binary-mode record of a delivery event: the value is its STAC Item (links under
    ``base_url`` when one is configured), ``ce_id`` is ``{requestId}:delivery:{itemId}``,
    ``ce_time`` when the worker saw the product."""
    headers = _binary_headers(event.ce_id, EventType.DELIVERY, source, event.occurred_at, event.request_id)
    return EncodedRecord(event.request_id.encode(), orjson.dumps(event.stac_item(base_url)), headers)


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    """Deterministic ``ce_id`` of the dead letter of one source record."""
    return f"{topic}:{partition}:{offset}"


def encode_dead_letter(
    dead: DeadLetter,
    *,
    key: bytes | None,
    request_id: str | None = None,
    source: str = DEFAULT_SOURCE,
) -> EncodedRecord:
    """Binary-mode record of a dead letter, keyed by the original record's ``key``.

    ``ce_id`` comes from the source topic, partition and offset; ``ce_subject`` is the request id
    when it is known.
    """
    src = dead.source
    ce_id = dead_letter_id(src.topic, src.partition, src.offset)
    record = _encode_output(dead, EventType.DEAD_LETTER, ce_id, request_id, dead.received_at, source)
    return record._replace(key=key)


def _encode_output(
    model: ContractModel,
    ce_type: EventType,
    ce_id: str,
    subject: str | None,
    time: datetime,
    source: str,
) -> EncodedRecord:
    headers = _binary_headers(ce_id, ce_type, source, time, subject)
    key = subject.encode() if subject is not None else None
    return EncodedRecord(key, model.model_dump_json(by_alias=True).encode(), headers)


def _binary_headers(
    ce_id: str, ce_type: str, source: str, time: datetime, subject: str | None
) -> list[tuple[str, bytes]]:
    headers = [
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_id", ce_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", ce_type.encode()),
        ("ce_time", rfc3339(time).encode()),
    ]
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    headers.append((CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE.encode()))
    return headers


def rfc3339(time: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a ``Z``, the form of every time on output."""
    return time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- encoding inputs


def encode_input(
    message: OrderRequest | Command,
    *,
    source: str = DEFAULT_SOURCE,
    structured: bool = False,
    time: datetime | None = None,
) -> EncodedRecord:
    """A request or command as a CloudEvents Kafka record, keyed by ``requestId``.

    Binary mode by default, structured mode with ``structured=True``. ``ce_id`` is deterministic:
    ``{requestId}`` for a request, ``{requestId}:{commandId}`` for a command. Built with the
    CloudEvents SDK (see the module docstring).
    """
    is_command = isinstance(message, Command)
    ce_id = message.request_id
    if isinstance(message, Command):
        ce_id = f"{message.request_id}:{message.command_id}"
    attributes = {
        "specversion": SPECVERSION,
        "id": ce_id,
        "source": source,
        "type": (EventType.ORDER_COMMAND if is_command else EventType.ORDER_REQUESTED).value,
        "time": time or utc_now(),
        "subject": message.request_id,
        "datacontenttype": JSON_CONTENT_TYPE,
    }
    # Only the fields the sender set: defaults stay implicit, as in the sender's own file.
    data = message.model_dump(mode="json", by_alias=True, exclude_unset=True)
    to_kafka = ce_kafka.to_structured if structured else ce_kafka.to_binary
    kafka_message = to_kafka(CloudEvent(attributes, data), JSONFormat(), _key_of)
    headers = list(kafka_message.headers.items())
    return EncodedRecord(message.request_id.encode(), kafka_message.value, headers)


def _key_of(event: BaseCloudEvent) -> str | None:
    subject = event.get_subject()
    return subject if isinstance(subject, str) else None


# --------------------------------------------------------------------------- dead letters


def build_dead_letter(
    error: DecodeError,
    *,
    value: bytes | None,
    key: bytes | None,
    headers: Headers,
    topic: str,
    partition: int,
    offset: int,
    received_at: datetime | None = None,
    max_payload_chars: int = DEFAULT_MAX_DEAD_LETTER_PAYLOAD,
) -> DeadLetter:
    """The :class:`DeadLetter` for a record that :func:`decode` refused.

    The payload is the value as text when it is UTF-8, else base64 (``payloadEncoding:
    "base64"``). A payload longer than ``max_payload_chars`` is left out (``payload: null``) and
    ``error.details`` says so, so the dead letter itself still fits in one Kafka message; the
    original stays findable by its topic, partition and offset. Key and header values that are not
    UTF-8 are shown with backslash escapes.
    """
    payload, encoding = _payload_text(value)
    details = dict(error.details)
    if payload is not None and len(payload) > max_payload_chars:
        details.update(payloadOmitted=True, payloadChars=len(payload))
        payload = None
    return DeadLetter(
        error=DeadLetterError(code=error.code, message=error.message, details=details),
        source=MessageSource(
            topic=topic,
            partition=partition,
            offset=offset,
            key=None if key is None else key.decode("utf-8", "backslashreplace"),
            headers={n: (v or b"").decode("utf-8", "backslashreplace") for n, v in headers},
        ),
        payload=payload,
        payload_encoding=encoding,
        received_at=received_at or utc_now(),
    )


def _payload_text(value: bytes | None) -> tuple[str | None, Literal["utf-8", "base64"]]:
    if value is None:
        return None, "utf-8"
    try:
        return value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii"), "base64"

"""The AsyncAPI 3.0 document of the contract: channels, operations, messages with their headers,
keys and examples.
"""

from __future__ import annotations

from typing import Any, Final

from worker.events.codec import DEFAULT_SOURCE, DeadLetterCode
from worker.events.delivery import DeliveryEvent
from worker.events.examples import _CE_ID, _message_examples
from worker.events.models import REQUEST_ID_PATTERN, DeadLetter
from worker.events.schemas import SPEC_BY_NAME, SPECS, SchemaSpec
from worker.events.status import OrderStatus, stapi_status


# --------------------------------------------------------------------------- AsyncAPI
class Channel:
    """A topic of CONTRACT §1 as the AsyncAPI document shows it."""

    def __init__(
        self, cid: str, address: str, spec: SchemaSpec | None, action: str, description: str
    ) -> None:
        self.cid = cid
        self.address = address
        self.spec = spec
        self.action = action
        self.description = description


CHANNELS: Final = (
    Channel(
        "orderRequests",
        "tasking.order-requests",
        SPEC_BY_NAME["order-request"],
        "receive",
        "Tasking requests. Keyed by requestId; co-partitioned with commands and worker-state.",
    ),
    Channel(
        "commands",
        "tasking.commands",
        SPEC_BY_NAME["command"],
        "receive",
        "Customer decisions about a request (approve, cancel, accept an acquisition, ...). "
        "Keyed by requestId; co-partitioned with order-requests.",
    ),
    Channel(
        "orderStatus",
        "tasking.order-status",
        SPEC_BY_NAME["order-status-event"],
        "send",
        "One event per status transition of a request, in order, sequence from 1.",
    ),
    Channel(
        "acquisitions",
        "tasking.acquisitions",
        SPEC_BY_NAME["acquisition-event"],
        "send",
        "Acquisitions (OneAtlas segments, Pléiades Neo coverage items, UP42 deliveries) "
        "when first seen and on every change of their status.",
    ),
    Channel(
        "deliveries",
        "tasking.deliveries",
        SPEC_BY_NAME["delivery-event"],
        "send",
        "One STAC Item per product the provider delivers for a request (an OneAtlas catalogue "
        "item, a UP42 STAC item), as soon as the worker sees it; exactly once per item, "
        "re-publishes keep the ce_id and the content.",
    ),
    Channel(
        "deadLetter",
        "tasking.dead-letter",
        SPEC_BY_NAME["dead-letter"],
        "send",
        "Input messages that could not be used, with the reason and the original bytes. "
        "Keyed by the original key (may be null).",
    ),
)


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the contract, from the worker's point of view."""
    channels: dict[str, Any] = {c.cid: _channel(c) for c in CHANNELS}
    channels["workerState"] = _worker_state_channel()
    operations: dict[str, Any] = {}
    for c in CHANNELS:
        operations[f"{c.action}{c.cid[0].upper()}{c.cid[1:]}"] = _operation(c.cid, c.action, c.description)
    operations["sendWorkerState"] = _operation(
        "workerState", "send", "Record the durable state of each order before acting on it."
    )
    operations["receiveWorkerState"] = _operation(
        "workerState", "receive", "Restore the state of the orders of newly assigned partitions."
    )
    return {
        "asyncapi": "3.0.0",
        "id": "urn:tasking-worker",
        "info": _info(),
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "Any Kafka cluster (TASKING_KAFKA__BOOTSTRAP_SERVERS). Topic names "
                "are defaults; each can be changed with TASKING_TOPICS__*.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": _components(),
    }


def _channel(channel: Channel) -> dict[str, Any]:
    assert channel.spec is not None
    return {
        "address": channel.address,
        "title": channel.address,
        "description": channel.description,
        "messages": {
            _message_id(channel.spec): {"$ref": f"#/components/messages/{_message_id(channel.spec)}"}
        },
        "bindings": {"kafka": {"topic": channel.address, "bindingVersion": "0.5.0"}},
    }


def _worker_state_channel() -> dict[str, Any]:
    return {
        "address": "tasking.worker-state",
        "title": "tasking.worker-state",
        "description": "Internal: the worker's own durable order state, one record per "
        "requestId, compacted. Co-partitioned with order-requests and commands. "
        "Its format belongs to the worker and may change without notice; other "
        "systems must not read or write it.",
        "messages": {"workerState": {"$ref": "#/components/messages/workerState"}},
        "bindings": {
            "kafka": {
                "topic": "tasking.worker-state",
                "topicConfiguration": {"cleanup.policy": ["compact"]},
                "bindingVersion": "0.5.0",
            }
        },
    }


def _operation(cid: str, action: str, summary: str) -> dict[str, Any]:
    channel = f"#/channels/{cid}"
    message = (
        "workerState" if cid == "workerState" else _message_id(next(c for c in CHANNELS if c.cid == cid).spec)
    )
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": channel},
        "summary": summary,
        "messages": [{"$ref": f"{channel}/messages/{message}"}],
    }
    if action == "receive":
        operation["bindings"] = {
            "kafka": {
                "groupId": {
                    "type": "string",
                    "default": "tasking-worker",
                    "description": "TASKING_KAFKA__GROUP_ID",
                },
                "bindingVersion": "0.5.0",
            }
        }
    return operation


def _message_id(spec: SchemaSpec | None) -> str:
    assert spec is not None
    return spec.title[0].lower() + spec.title[1:]


def _components() -> dict[str, Any]:
    messages = {_message_id(spec): _message(spec) for spec in SPECS}
    messages["workerState"] = {
        "name": "WorkerState",
        "title": "Worker state (internal)",
        "contentType": "application/json",
        "payload": {"type": "object", "description": "Opaque to every other system."},
        "bindings": {"kafka": {"key": _key_schema(), "bindingVersion": "0.5.0"}},
    }
    schemas = {f"{_message_id(spec)}Headers": _headers_schema(spec) for spec in SPECS}
    return {"messages": messages, "schemas": schemas}


def _message(spec: SchemaSpec) -> dict[str, Any]:
    key = _key_schema()
    if spec.model is DeadLetter:
        key = {
            "type": ["string", "null"],
            "description": "The original record's key, unchanged (may be null).",
        }
    message: dict[str, Any] = {
        "name": spec.title,
        "title": spec.title,
        "summary": (spec.model.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "headers": {"$ref": f"#/components/schemas/{_message_id(spec)}Headers"},
        "payload": {"$ref": f"./{spec.file}"},
        "bindings": {"kafka": {"key": key, "bindingVersion": "0.5.0"}},
        "examples": _message_examples(spec),
    }
    if spec.model is DeliveryEvent:
        message["correlationId"] = {"location": "$message.payload#/properties/tasking:request_id"}
        message["contentType"] = "application/geo+json"
    elif spec.model is not DeadLetter:
        message["correlationId"] = {"location": "$message.payload#/requestId"}
    return message


def _key_schema() -> dict[str, Any]:
    return {"type": "string", "pattern": REQUEST_ID_PATTERN, "description": "The requestId, UTF-8."}


def _headers_schema(spec: SchemaSpec) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": _CE_ID[spec.name]},
        "ce_source": {"type": "string", "description": f"Configurable, default {DEFAULT_SOURCE}"},
        "ce_type": {"type": "string", "const": spec.ce_type.value},
        "ce_time": {"type": "string", "format": "date-time", "description": "RFC 3339, UTC"},
        "ce_subject": {"type": "string", "description": "The requestId"},
        "content-type": {"type": "string", "const": "application/json"},
    }
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if spec.mode == "validation":
        properties["content-type"] = {
            "type": "string",
            "enum": ["application/json", "application/cloudevents+json"],
        }
        schema["description"] = (
            "Binary content mode as shown. Also accepted: structured mode (content-type "
            "application/cloudevents+json, the whole event in the value) and a bare JSON value "
            "with no ce_ headers, whose type is implied by the topic."
        )
    else:
        required = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"]
        schema["required"] = required if spec.model is DeadLetter else [*required, "ce_subject"]
        schema["description"] = "CloudEvents 1.0, Kafka protocol binding, binary content mode."
    return schema


def _info() -> dict[str, Any]:
    return {
        "title": "tasking-worker",
        "version": "1.0.0",
        "description": _DESCRIPTION + _status_table() + _dead_letter_table(),
        "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
    }


_DESCRIPTION: Final = """\
A Kafka worker that orders satellite tasking from Airbus OneAtlas and UP42 and reports every step
as events. Every message is a CloudEvents 1.0 event over the Kafka protocol binding; outputs use
binary content mode (attributes as `ce_*` headers, the JSON data as the value). All JSON field
names are camelCase; times are RFC 3339 (UTC on output). Unknown input fields are refused
(dead-lettered). Events are delivered at least once; a re-published event keeps its `ce_id`.

"""


_STATUS_MEANING: Final = {
    OrderStatus.RECEIVED: "valid, durably accepted by the worker",
    OrderStatus.FEASIBLE: "the provider's feasibility answer is known (`feasibility` set)",
    OrderStatus.FEASIBILITY_PENDING: "a manual feasibility study runs at the provider",
    OrderStatus.QUOTED: "the price is known (`price` set); terminal for a `dryRun` request",
    OrderStatus.DECISION_REQUIRED: "waiting for a command from the customer (`decision` set)",
    OrderStatus.ORDERED: "the order is placed and activated at the provider",
    OrderStatus.IN_PROGRESS: "acquisitions are being made, or the provider finished and its "
    "products are still being delivered",
    OrderStatus.COMPLETED: "the tasking finished at the provider and its products are delivered "
    "(`reason.code` `DELIVERY_INCOMPLETE` when they did not all come in time)",
    OrderStatus.REJECTED: "invalid, infeasible, declined, over budget and refused",
    OrderStatus.CANCELLED: "cancelled by a command (`user_cancelled`) or by the provider (`cancelled`)",
    OrderStatus.FAILED: "unrecoverable provider or worker failure after retries",
    OrderStatus.EXPIRED: "the window or a decision deadline passed",
}


def _status_table() -> str:
    rows = [
        "## Order statuses and their STAPI codes",
        "",
        "| status | terminal | STAPI | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for status in OrderStatus:
        stapi = f"`{stapi_status(status).value}`"
        if status is OrderStatus.CANCELLED:
            stapi = f"`{stapi_status(status, by_user=True).value}` or {stapi}"
        terminal = "yes" if status.terminal else "no"
        rows.append(f"| `{status.value}` | {terminal} | {stapi} | {_STATUS_MEANING[status]} |")
    return "\n".join(rows) + "\n\n"


_DEAD_LETTER_MEANING: Final = {
    DeadLetterCode.MALFORMED_JSON: "the value is empty, not UTF-8 JSON, or not a JSON object",
    DeadLetterCode.SCHEMA_VIOLATION: "the JSON breaks the message schema "
    "(`error.details.errors` lists the camelCase field paths)",
    DeadLetterCode.KEY_MISMATCH: "the Kafka key is present and differs from `requestId`",
    DeadLetterCode.UNKNOWN_TYPE: "`ce_type` (or `ce_specversion`) is not the one of the topic",
    DeadLetterCode.TOO_LARGE: "the value exceeds the size limit (1 MiB by default; checked before "
    "parsing), or a request's first order state would exceed 750,000 bytes (3/4 of "
    "`TASKING_INTAKE__MAX_STATE_BYTES`; `error.details.stateSize`, `maxStateBytes`)",
    DeadLetterCode.UNKNOWN_REQUEST: "a command names a `requestId` this worker does not know",
    DeadLetterCode.REQUEST_ID_REUSED: "a request reuses a `requestId` already used by a request with "
    "other content (`error.details.firstOutcome` names the first request's latest status)",
    DeadLetterCode.INTERNAL_ERROR: "processing the message raised on each of its bounded attempts "
    "(`error.details.exception` names the class); the partition goes on",
}


def _dead_letter_table() -> str:
    rows = ["## Dead-letter codes", "", "| code | meaning |", "| --- | --- |"]
    rows += [f"| `{code.value}` | {text} |" for code, text in _DEAD_LETTER_MEANING.items()]
    return "\n".join(rows) + "\n"

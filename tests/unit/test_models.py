"""Contract models through the codec: the examples are accepted, each broken rule has its code."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from worker.errors import DecodeError
from worker.events import codec
from worker.events.codec import DeadLetterCode, InputKind
from worker.events.delivery import DeliveryEvent
from worker.events.examples import example_payloads, input_examples
from worker.events.models import Command, CommandName, ContractModel, OrderRequest, Up42Product
from worker.events.schemas import spec_for
from worker.events.stac_validation import validate_item

TOPIC = "tasking.order-requests"
TOULOUSE = "order-request.oneatlas-oneplan-toulouse"
PANAMA = "order-request.up42-pleiades-panama"


def request(name: str = TOULOUSE) -> dict[str, Any]:
    return copy.deepcopy(input_examples()[name])


def refuse(message: Any, kind: InputKind = InputKind.REQUEST, *, key: bytes | None = None) -> DecodeError:
    value = message if isinstance(message, bytes) else orjson.dumps(message)
    with pytest.raises(DecodeError) as caught:
        codec.decode(value, key=key, headers=[], topic=TOPIC, kind=kind)
    return caught.value


def fields_of(error: DecodeError) -> list[str]:
    return [entry["field"] for entry in error.details["errors"]]


@pytest.mark.parametrize("stem", sorted(example_payloads()))
def test_every_example_validates_against_its_model(stem: str) -> None:
    model = spec_for(stem).model
    payload = example_payloads()[stem]
    if model is DeliveryEvent:  # published as a STAC Item, checked against the STAC schemas
        validate_item(payload)
        return
    assert issubclass(model, ContractModel)
    parsed = model.model_validate(payload)
    assert parsed.to_json_dict() == model.model_validate(parsed.to_json_dict()).to_json_dict()


def test_examples_cover_both_providers_and_every_command() -> None:
    toulouse = OrderRequest.model_validate(input_examples()[TOULOUSE])
    panama = OrderRequest.model_validate(input_examples()[PANAMA])
    assert toulouse.oneatlas_product().programming_type == "ONEPLAN"
    assert panama.up42_product().data_product_id == "bd102407-1814-4f92-8b5a-7697b7a73f5a"
    commands = {
        Command.model_validate(m).command
        for stem, m in input_examples().items()
        if stem.startswith("command.")
    }
    assert commands == set(CommandName)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(message: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = message
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value

    return change


RING = [[1.36, 43.57], [1.5, 43.57], [1.5, 43.67], [1.36, 43.67], [1.36, 43.57]]
HOLE = [[1.4, 43.6], [1.45, 43.6], [1.45, 43.65], [1.4, 43.6]]

INVALID_REQUESTS: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    "wrong provider": (_set("provider", "planet"), "provider", "oneatlas"),
    "open ring": (_set("aoi.coordinates", [RING[:-1]]), "aoi.coordinates", "not closed"),
    "bowtie": (
        _set("aoi.coordinates", [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]),
        "aoi.coordinates",
        "intersects itself",
    ),
    "hole": (_set("aoi.coordinates", [RING, HOLE]), "aoi.coordinates", "holes"),
    "latitude 95": (
        _set("aoi.coordinates", [[[1, 43], [2, 43], [2, 95], [1, 43]]]),
        "aoi.coordinates",
        "latitude 95",
    ),
    "across the antimeridian": (
        _set(
            "aoi.coordinates",
            [[[179.9, -16.9], [-179.9, -16.9], [-179.9, -16.7], [179.9, -16.7], [179.9, -16.9]]],
        ),
        "aoi.coordinates",
        "antimeridian",
    ),
    "around the north pole": (
        _set("aoi.coordinates", [[[0, 88.5], [120, 88.5], [-120, 88.5], [0, 88.5]]]),
        "aoi.coordinates",
        "one request for each side",
    ),
    "3 positions": (_set("aoi.coordinates", [[[1, 43], [2, 43], [1, 43]]]), "aoi.coordinates", "4..999"),
    "1000 positions": (
        _set("aoi.coordinates", [[[i / 1000, 43 + (i % 2) / 1e6] for i in range(999)] + [[0, 43]]]),
        "aoi.coordinates",
        "4..999",
    ),
    "reversed window": (
        _set("window", {"start": "2025-07-01T00:00:00Z", "end": "2025-06-01T00:00:00Z"}),
        "window",
        "after",
    ),
    "window without zone": (_set("window.start", "2025-06-01T00:00:00"), "window.start", "zone"),
    "cloud cover 150": (_set("constraints.maxCloudCover", 150), "constraints.maxCloudCover", "100"),
    "unknown field": (_set("colour", "blue"), "colour", "Extra inputs"),
    "unknown nested field": (_set("budget.tax", 1), "budget.tax", "Extra inputs"),
    "space in requestId": (_set("requestId", "req 1"), "requestId", "pattern"),
    "129-char requestId": (_set("requestId", "r" * 129), "requestId", "pattern"),
    "BH on MONO": (_set("constraints.minBH", 0.3), "constraints", "STEREO"),
    "programming type not offered": (
        _set("product.programmingType", "ONENOWATTEMPTS"),
        "product.oneatlas",
        "not offered",
    ),
    "up42 product for oneatlas": (
        _set("product", {"dataProductId": "bd102407-1814-4f92-8b5a-7697b7a73f5a"}),
        "product",
        "does not fit provider oneatlas",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_REQUESTS))
def test_invalid_request_is_a_schema_violation_naming_the_field(case: str) -> None:
    change, field, reason = INVALID_REQUESTS[case]
    message = request()
    change(message)
    error = refuse(message)
    assert error.code == DeadLetterCode.SCHEMA_VIOLATION
    reported = {entry["field"]: entry["message"] for entry in error.details["errors"]}
    assert reason in reported[field]


@pytest.mark.parametrize(
    "ring",
    [
        [[179.5, -16.9], [180.0, -16.9], [180.0, -16.7], [179.5, -16.7], [179.5, -16.9]],  # up to +180
        [[-180.0, 65.0], [-179.6, 65.0], [-179.6, 65.2], [-180.0, 65.2], [-180.0, 65.0]],  # from -180
        [[10.0, 89.0], [12.0, 89.0], [12.0, 89.9], [10.0, 89.9], [10.0, 89.0]],  # near the north pole
        [[-60.0, -89.9], [-58.0, -89.9], [-58.0, -89.0], [-60.0, -89.0], [-60.0, -89.9]],  # south pole
    ],
)
def test_an_aoi_near_the_antimeridian_or_a_pole_that_does_not_cross_is_accepted(
    ring: list[list[float]],
) -> None:
    message = request()
    message["aoi"]["coordinates"] = [ring]
    decoded = codec.decode(
        orjson.dumps(message),
        key=message["requestId"].encode(),
        headers=[],
        topic=TOPIC,
        kind=InputKind.REQUEST,
    )
    assert isinstance(decoded, OrderRequest)
    assert list(decoded.aoi.ring()[0]) == ring[0]


def test_request_id_is_kept_for_an_invalid_request_but_not_when_it_is_itself_invalid() -> None:
    message = request()
    message["constraints"] = {"maxCloudCover": 150}
    assert refuse(message).request_id == message["requestId"]
    message["requestId"] = "has a space"
    assert refuse(message).request_id is None


def test_field_errors_never_copy_the_input() -> None:
    message = request()
    message["displayName"] = "x" * 300  # over 200 characters
    error = refuse(message)
    assert "x" * 50 not in orjson.dumps(error.details).decode()
    assert "displayName" in fields_of(error)


def test_provider_decides_which_product_fields_are_reported() -> None:
    message = request(PANAMA)
    message["product"] = {"dataProductId": "not-a-uuid"}
    error = refuse(message)
    assert fields_of(error) == ["product.up42.dataProductId"]


def test_key_mismatch() -> None:
    error = refuse(request(), key=b"another-id")
    assert (error.code, error.request_id) == (DeadLetterCode.KEY_MISMATCH, request()["requestId"])


@pytest.mark.parametrize("value", [b"{not json", b"\xff\xfe{}", b"[1, 2]", b'"text"', b""])
def test_not_a_json_object_is_malformed(value: bytes) -> None:
    assert refuse(value).code == DeadLetterCode.MALFORMED_JSON


def test_two_megabyte_payload_is_too_large() -> None:
    message = request()
    message["comments"] = "x" * (2 * 1024 * 1024)
    error = refuse(message)
    assert error.code == DeadLetterCode.TOO_LARGE
    assert error.details["size"] > 2 * 1024 * 1024


def test_request_on_the_command_topic_is_an_unknown_type() -> None:
    record = codec.encode_input(OrderRequest.model_validate(request()))
    with pytest.raises(DecodeError) as caught:
        codec.decode(
            record.value,
            key=record.key,
            headers=record.headers,
            topic="tasking.commands",
            kind=InputKind.COMMAND,
        )
    assert caught.value.code == DeadLetterCode.UNKNOWN_TYPE


@pytest.mark.parametrize("form", ["binary", "structured", "bare"])
@pytest.mark.parametrize("stem", [TOULOUSE, PANAMA])
def test_valid_request_is_accepted_in_all_three_forms(form: str, stem: str) -> None:
    expected = OrderRequest.model_validate(request(stem))
    record = codec.encode_input(expected, structured=form == "structured")
    headers = [] if form == "bare" else record.headers
    decoded = codec.decode(record.value, key=record.key, headers=headers, topic=TOPIC, kind=InputKind.REQUEST)
    assert decoded == expected
    if stem == PANAMA:
        assert isinstance(decoded.product, Up42Product)


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("select-feasibility-option", "optionId"),
        ("accept-acquisition", "acquisitionId"),
        ("refuse-acquisition", "acquisitionId"),
    ],
)
def test_command_without_its_argument_is_refused(command: str, missing: str) -> None:
    message = {"requestId": "req-1", "commandId": "cmd-1", "command": command}
    error = refuse(message, InputKind.COMMAND)
    assert error.code == DeadLetterCode.SCHEMA_VIOLATION
    assert missing in error.message
    assert error.request_id == "req-1"


def test_unknown_command_is_refused() -> None:
    error = refuse({"requestId": "r", "commandId": "c", "command": "pause"}, InputKind.COMMAND)
    assert fields_of(error) == ["command"]

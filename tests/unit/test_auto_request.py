"""``provider: "auto"`` requests through the codec: the valid shape is accepted, each invalid
combination is a schema violation whose message names the field (the intake then answers
``REJECTED``/``INVALID_REQUEST`` with that message)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from worker.errors import DecodeError
from worker.events import codec
from worker.events.codec import DeadLetterCode, InputKind
from worker.events.examples import input_examples
from worker.events.models import CommandName, OrderRequest, Provider, RoutingPrefer

AUTO = "order-request.auto-pleiades-toulouse"
ONEATLAS = {"provider": "oneatlas", "product": {"mission": "SPOT", "programmingType": "ONEDAY"}}


def auto(change: Callable[[dict[str, Any]], None] | None = None) -> bytes:
    message = copy.deepcopy(input_examples()[AUTO])
    if change is not None:
        change(message)
    return orjson.dumps(message)


def decode(value: bytes) -> OrderRequest:
    decoded = codec.decode(value, key=None, headers=[], topic="requests", kind=InputKind.REQUEST)
    assert isinstance(decoded, OrderRequest)
    return decoded


def refused(value: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode(value)
    assert caught.value.code is DeadLetterCode.SCHEMA_VIOLATION
    assert caught.value.request_id == "req-toulouse-2025-06-003"
    return caught.value


def test_the_example_is_a_valid_auto_request_with_defaults() -> None:
    request = decode(auto())
    assert request.provider is Provider.AUTO
    assert request.product is None
    assert [c.provider for c in request.candidates or []] == [Provider.ONEATLAS, Provider.UP42]
    assert request.routing is not None
    assert request.routing.prefer is RoutingPrefer.CHEAPEST
    defaults = decode(auto(lambda m: m.pop("routing")))
    assert defaults.routing is None  # cheapest with fallback, applied by the core


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda m: m.pop("candidates"), "candidates", "required with provider auto"),
        (lambda m: m.update(candidates=[ONEATLAS]), "candidates", "at least 2"),
        (lambda m: m.update(candidates=[ONEATLAS] * 7), "candidates", "at most 6"),
        (
            lambda m: m["candidates"].append(copy.deepcopy(m["candidates"][0])),
            "candidates",
            "candidates[2] repeats candidates[0]",
        ),
        (
            lambda m: m["candidates"][1].update(
                product={"mission": "PLEIADES", "programmingType": "ONEPLAN"}
            ),
            "candidates.1.product",
            "does not fit provider up42",
        ),
        (lambda m: m["candidates"][0].update(provider="auto"), "candidates.0.provider", "oneatlas or up42"),
        (
            lambda m: m.update(product={"mission": "PLEIADES", "programmingType": "ONEPLAN"}),
            "product",
            "given by each candidate",
        ),
        (lambda m: m.update(providerOptions={"x": 1}), "providerOptions", "given by each candidate"),
        (lambda m: m.update(routing={"prefer": "fastest"}), "routing.prefer", ""),
    ],
)
def test_invalid_auto_requests_name_the_field(
    change: Callable[[dict[str, Any]], None], field: str, words: str
) -> None:
    error = refused(auto(change))
    fields = [entry["field"] for entry in error.details["errors"]]
    assert field in fields
    assert field in error.message
    assert words in error.message


def direct(change: Callable[[dict[str, Any]], None]) -> bytes:
    message = copy.deepcopy(input_examples()["order-request.oneatlas-oneplan-toulouse"])
    change(message)
    return orjson.dumps(message)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            lambda m: m.update(candidates=[ONEATLAS, ONEATLAS]),
            "candidates",
            "only allowed with provider auto",
        ),
        (lambda m: m.update(routing={"prefer": "listed"}), "routing", "only allowed with provider auto"),
        (lambda m: m.pop("product"), "product", "required unless provider is auto"),
    ],
)
def test_provider_choice_fields_without_auto_are_refused(
    change: Callable[[dict[str, Any]], None], field: str, words: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(direct(change))
    assert field in [entry["field"] for entry in caught.value.details["errors"]]
    assert words in caught.value.message


def test_select_offer_needs_an_option_id() -> None:
    value = orjson.dumps({"requestId": "r-1", "commandId": "c-1", "command": "select-offer"})
    with pytest.raises(DecodeError) as caught:
        codec.decode(value, key=None, headers=[], topic="commands", kind=InputKind.COMMAND)
    assert "optionId is required for select-offer" in caught.value.message
    command = codec.decode(
        orjson.dumps(
            {"requestId": "r-1", "commandId": "c-1", "command": "select-offer", "optionId": "up42-2"}
        ),
        key=None,
        headers=[],
        topic="commands",
        kind=InputKind.COMMAND,
    )
    assert getattr(command, "command", None) is CommandName.SELECT_OFFER

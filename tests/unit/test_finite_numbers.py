"""Numbers that are not numbers are refused with a reason in every numeric field of a request:
``1e999`` (infinity once parsed), numbers of hundreds of digits, budgets beyond the documented
maximum or precision. The request id beside them is still read, so the request is answered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.errors import DecodeError
from worker.events import codec
from worker.events.codec import DeadLetterCode, InputKind
from worker.events.examples import input_examples
from worker.events.models import BUDGET_MAX, OrderRequest

HUGE = "1" + "0" * 400
NOT_NUMBERS = ["1e999", "-1e999", HUGE, "-" + HUGE]


def _request_text(**overrides: Any) -> str:
    example = input_examples()["order-request.oneatlas-oneplan-toulouse"]
    assert isinstance(example, dict)
    data = json.loads(json.dumps(example))
    data.update(overrides)
    return json.dumps(data)


def _with_number(path: str, number: str) -> bytes:
    """The example request with the JSON number text ``number`` at ``path`` (dotted)."""
    marker = "__NUMBER__"
    data = json.loads(_request_text())
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = marker
    if path == "budget.maxAmount":
        node["currency"] = "EUR"
    return json.dumps(data).replace(f'"{marker}"', number).encode()


def _decode(value: bytes) -> OrderRequest:
    return codec.decode(value, key=None, headers=[], topic="t", kind=InputKind.REQUEST)


@pytest.mark.parametrize("number", NOT_NUMBERS)
@pytest.mark.parametrize(
    "path",
    [
        "budget.maxAmount",
        "constraints.maxCloudCover",
        "constraints.maxIncidenceAngle",
        "acquisitionPolicy.autoAccept.maxCloudCover",
        "providerOptions.someFactor",
    ],
)
def test_non_finite_or_overflowing_numbers_are_refused_with_the_field(path: str, number: str) -> None:
    with pytest.raises(DecodeError) as caught:
        _decode(_with_number(path, number))
    error = caught.value
    assert error.code == DeadLetterCode.SCHEMA_VIOLATION
    assert error.request_id is not None  # answered REJECTED, not only dead-lettered
    fields = [e["field"] for e in error.details["errors"]]
    assert any(f.startswith(path.split(".", maxsplit=1)[0]) for f in fields), fields


def test_a_coordinate_that_is_not_a_number_is_refused() -> None:
    data = json.loads(_request_text())
    data["aoi"]["coordinates"][0][1][0] = "__N__"
    raw = json.dumps(data).replace('"__N__"', "1e999").encode()
    with pytest.raises(DecodeError) as caught:
        _decode(raw)
    assert caught.value.code == DeadLetterCode.SCHEMA_VIOLATION


@pytest.mark.parametrize(
    ("number", "accepted"),
    [
        ("12.34", True),
        ("1000000000000", True),
        ("0.01", True),
        ("12.345", False),  # more than 2 decimal places: refused, never rounded
        ("1000000000000.01", False),
        ("1e13", False),
        ("0", False),
        ("-5", False),
    ],
)
def test_a_budget_is_a_decimal_with_a_maximum_and_a_precision(number: str, accepted: bool) -> None:
    raw = _with_number("budget.maxAmount", number)
    if accepted:
        budget = _decode(raw).budget
        assert budget is not None
        assert budget.max_amount == float(number)
        assert budget.max_amount <= BUDGET_MAX
    else:
        with pytest.raises(DecodeError) as caught:
            _decode(raw)
        assert caught.value.details["errors"][0]["field"] == "budget.maxAmount"


def test_provider_options_keep_ordinary_numbers_and_nested_values() -> None:
    raw = _request_text(providerOptions={"a": 1.5, "b": [1, 2, {"c": 2**53}], "d": "1e999"})
    request = _decode(raw.encode())
    assert request.provider_options["b"][2]["c"] == 2**53
    assert request.provider_options["d"] == "1e999"  # a string stays a string

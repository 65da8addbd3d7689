"""``tasking-worker status`` prints the offers of a provider-choice request, one line each."""

from __future__ import annotations

from worker.display import offer_lines
from worker.events.models import OrderStatusEvent

EVENT = {
    "requestId": "req-auto-1",
    "provider": "auto",
    "sequence": 2,
    "status": "QUOTED",
    "previousStatus": "RECEIVED",
    "stapiStatus": "received",
    "occurredAt": "2025-06-02T08:00:00Z",
    "offers": [
        {
            "id": "up42-2",
            "provider": "up42",
            "product": {"dataProductId": "bd102407-1814-4f92-8b5a-7697b7a73f5a"},
            "price": {"amount": 106, "currency": "CREDITS"},
            "comparablePrice": {"amount": 1.06, "currency": "EUR"},
            "status": "OFFERED",
        },
        {
            "id": "oneatlas-1",
            "provider": "oneatlas",
            "product": {"mission": "PLEIADES", "programmingType": "ONEDAY"},
            "price": {"amount": 1250, "currency": "EUR"},
            "comparablePrice": {"amount": 1250, "currency": "EUR"},
            "firstOpportunity": "2025-06-03T10:30:00Z",
            "status": "OFFERED",
        },
        {
            "id": "oneatlas-3",
            "provider": "oneatlas",
            "product": {"mission": "SPOT", "programmingType": "ONEPLAN"},
            "status": "DROPPED",
            "reason": {"code": "NOT_FEASIBLE", "message": "the provider has no capacity for this request"},
        },
    ],
}


def test_each_offer_is_one_line_with_its_price_opportunity_and_reason() -> None:
    offers = OrderStatusEvent.model_validate(EVENT).to_json_dict()["offers"]
    lines = offer_lines(offers)
    assert len(lines) == 3
    assert lines[0].startswith("up42-2")
    assert "106 CREDITS (~1.06 EUR)" in lines[0]
    assert "1250 EUR" in lines[1]
    assert "(~" not in lines[1]  # same currency: no conversion shown
    assert "first opportunity 2025-06-03T10:30:00.000Z" in lines[1]
    assert "DROPPED" in lines[2]
    assert "NOT_FEASIBLE: the provider has no capacity" in lines[2]
    assert "SPOT ONEPLAN" in lines[2]

"""Every reason code the worker uses, with its meaning: the source of the reason-code reference.

Two families (CONTRACT §4.1 and §4.5):

* :class:`ReasonCode`: ``reason.code`` of an ``OrderStatusEvent``: why a status was reached or
  repeated;
* :class:`~worker.events.codec.DeadLetterCode`: ``error.code`` of a ``DeadLetter``: why an input
  message could not be used.

The flows build reasons from plain strings (``reason("NOT_FEASIBLE", ...)``); this enum is the
registry they must match. ``tests/unit/test_reference.py`` reads every code the code can emit and
fails when one is missing here or has no meaning, and ``docs/reference/reason-codes.md`` is
generated from this module (``tasking-worker docs``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from worker.events.codec import DeadLetterCode


class ReasonCode(StrEnum):
    """``reason.code`` values of status events."""

    INVALID_REQUEST = "INVALID_REQUEST"
    PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"
    WINDOW_EXPIRED = "WINDOW_EXPIRED"
    NOT_FEASIBLE = "NOT_FEASIBLE"
    MANUAL_FEASIBILITY = "MANUAL_FEASIBILITY"
    OVER_BUDGET = "OVER_BUDGET"
    NO_BUDGET = "NO_BUDGET"
    NO_OFFER = "NO_OFFER"
    PRICE_NOT_COMPARABLE = "PRICE_NOT_COMPARABLE"
    OFFER_SELECTED = "OFFER_SELECTED"
    OPTION_SELECTED = "OPTION_SELECTED"
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    CANCELLED = "CANCELLED"
    COMMAND_REJECTED = "COMMAND_REJECTED"
    DECISION_EXPIRED = "DECISION_EXPIRED"
    PROVIDER_REJECTED = "PROVIDER_REJECTED"
    PROVIDER_CANCELLED = "PROVIDER_CANCELLED"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    TRACKING_ERROR = "TRACKING_ERROR"
    TRACKING_RECOVERED = "TRACKING_RECOVERED"
    DELIVERY_INCOMPLETE = "DELIVERY_INCOMPLETE"
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
    CUSTOMER_REFERENCE_IN_USE = "CUSTOMER_REFERENCE_IN_USE"
    ORDER_FOUND = "ORDER_FOUND"
    STATE_TOO_LARGE = "STATE_TOO_LARGE"


#: What each status reason means and what the producer does about it. Keyed by the code's text,
#: so a meaning can be written before its enum member lands.
STATUS_MEANINGS: Final[dict[str, str]] = {
    "INVALID_REQUEST": "The request (or a field the provider needs) is invalid; `REJECTED`. "
    "`message` names the field. Fix it and send it with a **new** `requestId`.",
    "PROVIDER_NOT_CONFIGURED": "The deployment has no credentials for the requested provider; `REJECTED`.",
    "WINDOW_EXPIRED": "The acquisition window ended before the order could be placed or fulfilled; "
    "`EXPIRED`.",
    "NOT_FEASIBLE": "The provider says the acquisition cannot be made (feasibility, attempts); `REJECTED`.",
    "MANUAL_FEASIBILITY": "The provider studies the request by hand; its price comes after the study "
    "(`DECISION_REQUIRED confirm-order`, or `QUOTED` for a dry run).",
    "OVER_BUDGET": "The price exceeds `budget.maxAmount` (or is in another currency); "
    "`DECISION_REQUIRED approve-price`.",
    "NO_BUDGET": "`autoApprove` without a `budget`, and the price is above the deployment's "
    "ceiling for its currency (`TASKING_APPROVAL__UNBUDGETED_CEILING`, none by default); "
    "`DECISION_REQUIRED approve-price`.",
    "NO_OFFER": "Provider choice: every candidate dropped out (each offer carries its reason); `REJECTED`.",
    "PRICE_NOT_COMPARABLE": "Provider choice: the preferred offer has no price in the budget "
    "currency (manual study, no rate); `DECISION_REQUIRED select-offer`.",
    "OFFER_SELECTED": "Provider choice: an offer was chosen by a `select-offer` command (audit trail).",
    "OPTION_SELECTED": "A feasibility option was chosen by a `select-feasibility-option` command.",
    "APPROVED": "The price or order was approved by an `approve` command (audit trail).",
    "DECLINED": "Declined by a `reject` command, an automatic refusal, or the provider's "
    "quotation/study refusal; `REJECTED`.",
    "CANCELLED": "Cancelled by a `cancel` command; `CANCELLED`.",
    "COMMAND_REJECTED": "A command that does not fit the current state; the current status is "
    "repeated and nothing changes (`details` name the command).",
    "DECISION_EXPIRED": "A decision's deadline passed without a command; `EXPIRED`.",
    "PROVIDER_REJECTED": "The provider refused the request or the order (a business rejection); "
    "`REJECTED` or `FAILED`; with provider choice and `fallback`, the next offer is tried.",
    "PROVIDER_CANCELLED": "The provider cancelled the order; `CANCELLED`.",
    "PROVIDER_ERROR": "The provider failed in a way that is not a business answer (HTTP 5xx, "
    "protocol, credentials); `FAILED` when it cannot be retried.",
    "RETRIES_EXHAUSTED": "A retriable provider failure persisted through every retry; `FAILED`.",
    "TRACKING_ERROR": "The order could not be followed `TASKING_TRACKING__ERROR_THRESHOLD` times in "
    "a row; its status is repeated (`details.failing`: read, parse or dispatch).",
    "TRACKING_RECOVERED": "An order reported with `TRACKING_ERROR` is followed again.",
    "DELIVERY_INCOMPLETE": "`COMPLETED` without every product: the delivery timeout passed "
    "(`details.missingAcquisitionIds`, `details.delivered`).",
    "OUTCOME_UNKNOWN": "A paid call's outcome could not be settled by reading the provider; "
    "`DECISION_REQUIRED`, never a second order.",
    "CUSTOMER_REFERENCE_IN_USE": "An order found by `customerReference` does not match the request; "
    "`DECISION_REQUIRED`.",
    "ORDER_FOUND": "A paid write's answer was lost, and reading the provider found the order it "
    "placed; the order is tracked (`ORDERED`, `details` give the evidence).",
    "STATE_TOO_LARGE": "The order's state outgrew `TASKING_INTAKE__MAX_STATE_BYTES`; `FAILED`, with "
    "the provider references in the event so the order can be followed up at the provider.",
}

#: What each dead-letter code means (CONTRACT §4.5). Keyed by the code's text.
DEAD_LETTER_MEANINGS: Final[dict[str, str]] = {
    "MALFORMED_JSON": "The value is not JSON (or not UTF-8).",
    "SCHEMA_VIOLATION": "Valid JSON that breaks the schema (`details` name the fields); a readable "
    "new `requestId` also gets `REJECTED INVALID_REQUEST`.",
    "KEY_MISMATCH": "The Kafka key differs from the `requestId`.",
    "UNKNOWN_TYPE": "A `ce_type` that does not belong on this topic.",
    "TOO_LARGE": "The message exceeds the size the worker accepts.",
    "UNKNOWN_REQUEST": "A command for a `requestId` the worker never received (for example sent "
    "before its request): there is no request to answer on.",
    "REQUEST_ID_REUSED": "A request whose `requestId` was already used for different content; "
    "`details` name the first request's status. Send a corrected request with a new `requestId`.",
    "INTERNAL_ERROR": "The record could not be processed after bounded retries; it never stops its "
    "partition.",
}


def status_codes() -> list[str]:
    """Every status reason code, in declaration order."""
    return [code.value for code in ReasonCode]


def dead_letter_codes() -> list[str]:
    """Every dead-letter code, in declaration order."""
    return [code.value for code in DeadLetterCode]

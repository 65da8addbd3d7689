"""Order statuses (CONTRACT §4.2), their STAPI codes and the allowed transitions.

Kept free of I/O and of pydantic so the domain core can import it cheaply.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    RECEIVED = "RECEIVED"
    FEASIBLE = "FEASIBLE"
    FEASIBILITY_PENDING = "FEASIBILITY_PENDING"
    QUOTED = "QUOTED"
    DECISION_REQUIRED = "DECISION_REQUIRED"
    ORDERED = "ORDERED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        """True for the statuses after which nothing follows (``QUOTED`` only ends a dry run)."""
        return self in TERMINAL


class StapiStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    EXPIRED = "expired"
    SCHEDULED = "scheduled"
    HELD = "held"
    PROCESSING = "processing"
    RESERVED = "reserved"
    TASKED = "tasked"
    USER_CANCELLED = "user_cancelled"


TERMINAL = frozenset(
    {
        OrderStatus.COMPLETED,
        OrderStatus.REJECTED,
        OrderStatus.CANCELLED,
        OrderStatus.FAILED,
        OrderStatus.EXPIRED,
    }
)

_STAPI: dict[OrderStatus, StapiStatus] = {
    OrderStatus.RECEIVED: StapiStatus.RECEIVED,
    OrderStatus.FEASIBLE: StapiStatus.RECEIVED,
    OrderStatus.FEASIBILITY_PENDING: StapiStatus.HELD,
    OrderStatus.QUOTED: StapiStatus.RECEIVED,
    OrderStatus.DECISION_REQUIRED: StapiStatus.RESERVED,
    OrderStatus.ORDERED: StapiStatus.ACCEPTED,
    OrderStatus.IN_PROGRESS: StapiStatus.TASKED,
    OrderStatus.COMPLETED: StapiStatus.COMPLETED,
    OrderStatus.REJECTED: StapiStatus.REJECTED,
    OrderStatus.CANCELLED: StapiStatus.CANCELLED,
    OrderStatus.FAILED: StapiStatus.FAILED,
    OrderStatus.EXPIRED: StapiStatus.EXPIRED,
}


def stapi_status(status: OrderStatus, *, by_user: bool = False) -> StapiStatus:
    """The STAPI order status code for ``status``.

    ``CANCELLED`` maps to ``user_cancelled`` when a customer command caused it, else ``cancelled``.
    """
    if status is OrderStatus.CANCELLED and by_user:
        return StapiStatus.USER_CANCELLED
    return _STAPI[status]


S = OrderStatus
_ANY_OPEN_TO_END = {S.REJECTED, S.CANCELLED, S.FAILED, S.EXPIRED}

# Statuses follow the provider's flow forward. DECISION_REQUIRED may repeat (one per decision).
ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.RECEIVED: frozenset(
        {S.FEASIBLE, S.FEASIBILITY_PENDING, S.QUOTED, S.DECISION_REQUIRED, S.ORDERED} | _ANY_OPEN_TO_END
    ),
    S.FEASIBLE: frozenset(
        {S.FEASIBILITY_PENDING, S.QUOTED, S.DECISION_REQUIRED, S.ORDERED} | _ANY_OPEN_TO_END
    ),
    S.FEASIBILITY_PENDING: frozenset(
        {S.FEASIBLE, S.QUOTED, S.DECISION_REQUIRED, S.ORDERED, S.IN_PROGRESS, S.COMPLETED} | _ANY_OPEN_TO_END
    ),
    S.QUOTED: frozenset({S.DECISION_REQUIRED, S.ORDERED, S.FEASIBILITY_PENDING} | _ANY_OPEN_TO_END),
    S.DECISION_REQUIRED: frozenset(
        {
            S.DECISION_REQUIRED,
            S.FEASIBLE,
            S.FEASIBILITY_PENDING,
            S.QUOTED,
            S.ORDERED,
            S.IN_PROGRESS,
            S.COMPLETED,
        }
        | _ANY_OPEN_TO_END
    ),
    S.ORDERED: frozenset(
        {S.IN_PROGRESS, S.COMPLETED, S.DECISION_REQUIRED, S.FEASIBILITY_PENDING, S.QUOTED} | _ANY_OPEN_TO_END
    ),
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.DECISION_REQUIRED} | _ANY_OPEN_TO_END),
    **{t: frozenset() for t in TERMINAL},
}


def transition_allowed(current: OrderStatus | None, target: OrderStatus) -> bool:
    """Whether ``current -> target`` is a legal step (``None`` is "no status yet")."""
    if current is None:
        return target in (S.RECEIVED, S.REJECTED)
    return target in ALLOWED[current]

"""Delivered products: each published once, joined to its acquisitions, and completion on delivery.

A product the delivery harvest finds (``DeliveryFound``) is published as a ``DeliveryEvent`` the
first time its item id is seen for the order, also while the order is in progress; its item id
is then kept in ``state.deliveries``, so a re-harvest (after a restart, a rebalance, or a
provider that lists an item again) publishes nothing twice.

Completion on evidence (CONTRACT §4.2, ``docs/provider-status-mapping.md``): when the provider
finishes an order (a ``COMPLETED`` snapshot), the order stays ``IN_PROGRESS`` in phase
``AWAITING_DELIVERY`` until

- every validated acquisition has a delivered product and at least one product was delivered,
  and, for UP42, the provider's storage showed the delivery complete (``DeliverySettled``: the
  ``FULFILLED`` order's every storage asset extracted and its items published, or published as
  its archive) → ``COMPLETED`` in the same step that sees the last of it. An optional
  ``delivery_grace_seconds`` (default 0) after the provider finished delays it further; or
- ``delivery_timeout_seconds`` have passed since the provider finished → ``COMPLETED`` with
  ``reason.code = "DELIVERY_INCOMPLETE"`` and what is missing in its details.

When the provider finished with an acquisition listing still to come (its change marker moved),
completion waits for that listing: an acquisition validated at the end must not be missed.

Products after completion: a ``COMPLETED`` order still takes products for
``harvest_after_completion_seconds`` after it completed. Each new one is published and announced
by a ``COMPLETED`` status event repeated with the new ``progress.deliveries`` (and, after
``DELIVERY_INCOMPLETE``, the reason recomputed: dropped once nothing is missing).

A product published without an asset the provider could not be read for (``partial``) is
published again, complete, when a later harvest brings it whole (``DeliveryEvent.revision``).

Join rule: a product belongs to the acquisitions whose id, or one of whose provider ids
(``Acquisition.refs`` values: ``archiveId``, ``catalogId``...), is among the product's
``source_ids``. A product with source ids that join no known acquisition may simply be ahead of
the acquisition listing (UP42 lists a delivery as an acquisition and as a product at about the
same time): it is held (``state.held_products``), the acquisitions are listed once more, and it
is published after that listing, or when the harvest brings it a second time (a listing that
failed), whatever the join then says. For completion the join is computed again from the
products' source ids. Products that join no acquisition still count: each covers one validated
acquisition that no joined product covers (the provider's data then allows no finer check).
"""

from __future__ import annotations

from datetime import datetime

from worker.domain.flows.acquisitions import progress_of, set_progress, validated_ids
from worker.domain.flows.common import S, Step, after, end, nothing, reason, repeat, update
from worker.domain.model import (
    CallProvider,
    DeliveryFound,
    DeliveryRecord,
    DeliverySettled,
    Effect,
    Op,
    OrderState,
    OutboxDelivery,
    Phase,
    ProviderFinished,
    Schedule,
    Settings,
    TimerFired,
    TimerKind,
)
from worker.domain.ports import OrderSnapshot
from worker.events.delivery import DeliveryEvent
from worker.events.models import Provider, Reason
from worker.events.products import DeliveredProduct


def on_delivery(state: OrderState, event: DeliveryFound, settings: Settings) -> Step:
    """Publish a product not published before (or hold it for one acquisition listing); then
    complete the order if it was the last one. A completed order within its harvest window
    publishes it at once (see the module docstring)."""
    product = event.product
    placed = state.placed
    if placed is None or product.tracking_key != placed.tracking_key:
        return nothing(state)
    known = state.deliveries.get(product.item_id)
    if known is not None:
        return _completed_later(state, product, known, event.at)
    if state.terminal:
        return _after_completion(state, product, event.at, settings)
    held = any(p.item_id == product.item_id for p in state.held_products)
    if not held and product.source_ids and not join(state, product):
        listing: list[Effect] = [] if state.held_products else [CallProvider(op=Op.LIST_ACQUISITIONS)]
        return update(state, held_products=[*state.held_products, product]), listing
    state = update(state, held_products=[p for p in state.held_products if p.item_id != product.item_id])
    return _settle(publish(state, product, event.at), event.at, settings)


def publish_held(state: OrderState, at: datetime) -> OrderState:
    """During an acquisition listing: publish every held product with the join known now (the
    listing announces the progress)."""
    if not state.held_products:
        return state  # the same object: a listing that changes nothing is not persisted
    held, state = state.held_products, update(state, held_products=[])
    for product in held:
        state = publish(state, product, at)
    return state


def after_listing(state: OrderState, at: datetime, settings: Settings) -> Step:
    """After an acquisition listing: the order may now be complete."""
    if state.phase is Phase.AWAITING_DELIVERY and not state.terminal:
        return check(state, at, settings)
    return state, []


def publish(state: OrderState, product: DeliveredProduct, at: datetime, revision: int = 0) -> OrderState:
    """Record ``product`` as delivered and put its DeliveryEvent in the outbox."""
    ids = join(state, product)
    published = DeliveryEvent(
        request_id=state.request_id,
        provider=state.request.provider,
        product=product,
        acquisition_ids=ids,
        occurred_at=at,
        revision=revision,
    )
    record = DeliveryRecord(
        acquisition_ids=ids, source_ids=list(product.source_ids), at=at, partial=product.partial
    )
    return update(
        state,
        deliveries={**state.deliveries, product.item_id: record},
        outbox=[*state.outbox, OutboxDelivery(event=published)],
    )


def _completed_later(
    state: OrderState, product: DeliveredProduct, known: DeliveryRecord, at: datetime
) -> Step:
    """A product published partial comes back whole: publish it again, complete (revision 1)."""
    if not known.partial or product.partial:
        return nothing(state)
    return publish(state, product, at, revision=1), []


def _after_completion(state: OrderState, product: DeliveredProduct, at: datetime, settings: Settings) -> Step:
    """A product of a ``COMPLETED`` order within its harvest window: published, and announced by a
    repeated ``COMPLETED`` with the new counts (the reason recomputed after DELIVERY_INCOMPLETE)."""
    since = state.status_since
    if state.status is not S.COMPLETED or since is None:
        return nothing(state)
    if at > after(since, settings.harvest_after_completion_seconds):
        return nothing(state)
    state = publish(state, product, at)
    state = update(state, progress=progress_of(state, None))
    why = state.reason
    if why is not None and why.code == "DELIVERY_INCOMPLETE" and state.finished is not None:
        lacking = missing(state)
        why = incomplete_reason(state, lacking, state.finished) if lacking else None
    return repeat(state, at, why), []


def on_settled(state: OrderState, event: DeliverySettled, settings: Settings) -> Step:
    """The provider's storage shows the delivery complete: kept as the evidence, which counts
    once every item it names is published (a held one is, after its acquisition listing)."""
    placed = state.placed
    if placed is None or state.terminal or event.tracking_key != placed.tracking_key or not event.item_ids:
        return nothing(state)
    if state.settled_items == event.item_ids:
        return nothing(state)
    state = update(state, settled_items=list(event.item_ids))
    if state.phase is Phase.AWAITING_DELIVERY:
        # The evidence was read before the products it names were applied: never an earlier time.
        at = max([event.at, *(r.at for r in state.deliveries.values())])
        return check(state, at, settings)
    return state, []


def needs_settlement(state: OrderState) -> bool:
    """UP42 extracts STAC items after ``FULFILLED``: a finished order is delivered only once its
    storage showed every asset done (``DeliverySettled``) and every item it named is published.
    OneAtlas needs no more than its products."""
    if state.request.provider is not Provider.UP42:
        return False
    settled = state.settled_items
    return settled is None or any(i not in state.deliveries for i in settled)


def _settle(state: OrderState, at: datetime, settings: Settings) -> Step:
    state = set_progress(state, progress_of(state, None), at)
    if state.phase is Phase.AWAITING_DELIVERY:
        return check(state, at, settings)
    return state, []


def join(state: OrderState, product: DeliveredProduct) -> list[str]:
    """The ids of the known acquisitions ``product`` was made from (see the module docstring)."""
    return _join(state, product.source_ids)


def _join(state: OrderState, source_ids: list[str]) -> list[str]:
    sources = set(source_ids)
    if not sources:
        return []
    found = []
    for acquisition_id, record in sorted(state.acquisitions.items()):
        keys = {acquisition_id}
        if record.acquisition is not None:
            keys.update(record.acquisition.refs.values())
        if keys & sources:
            found.append(acquisition_id)
    return found


def missing(state: OrderState) -> list[str]:
    """The validated acquisitions that no delivered product covers (the join rule above)."""
    joins = [_join(state, r.source_ids) or r.acquisition_ids for r in state.deliveries.values()]
    joined = {a for ids in joins for a in ids}
    unjoined = sum(not ids for ids in joins)
    uncovered = [a for a in validated_ids(state) if a not in joined]
    return uncovered[unjoined:]


def provider_finished(
    state: OrderState, snapshot: OrderSnapshot, at: datetime, settings: Settings, *, listing_due: bool = False
) -> Step:
    """The provider finished the order (``state`` is already ``IN_PROGRESS``): wait for its
    products in ``AWAITING_DELIVERY``, or complete at once when they are all there. With an
    acquisition listing still to come (``listing_due``), only the timeout is scheduled: the
    listing's answer checks (:func:`after_listing`)."""
    finished = ProviderFinished(at=at, provider_status=snapshot.provider_status)
    state = update(state, phase=Phase.AWAITING_DELIVERY, finished=finished)
    if listing_due:
        deadline = after(at, settings.delivery_timeout_seconds)
        return state, [Schedule(timer=TimerKind.DELIVERY_CHECK, at=deadline)]
    return check(state, at, settings)


def on_check(state: OrderState, event: TimerFired, settings: Settings) -> Step:
    """The grace period or the delivery timeout ended."""
    if state.phase is not Phase.AWAITING_DELIVERY:
        return nothing(state)
    return check(state, event.at, settings)


def check(state: OrderState, at: datetime, settings: Settings) -> Step:
    """COMPLETED when delivered, COMPLETED ``DELIVERY_INCOMPLETE`` at the timeout, else the timer
    for the next moment the answer may change."""
    finished = state.finished
    assert finished is not None
    lacking = missing(state)
    complete = (
        not lacking
        and bool(state.deliveries)
        and not state.held_products
        and not state.listing_due
        and not needs_settlement(state)
    )
    grace_end = after(finished.at, settings.delivery_grace_seconds)
    deadline = after(finished.at, settings.delivery_timeout_seconds)
    if complete and at >= grace_end:
        return end(state, S.COMPLETED, at, None)
    if at >= deadline:
        return end(state, S.COMPLETED, at, incomplete_reason(state, lacking, finished))
    when = grace_end if complete else deadline
    return state, [Schedule(timer=TimerKind.DELIVERY_CHECK, at=when)]


def incomplete_reason(state: OrderState, lacking: list[str], finished: ProviderFinished) -> Reason:
    """``DELIVERY_INCOMPLETE``: which validated acquisitions lack a product, how many came."""
    message = (
        f"{len(lacking)} validated acquisition(s) without a delivered product"
        if lacking
        else "no product was delivered"
    )
    return reason(
        "DELIVERY_INCOMPLETE",
        message,
        missingAcquisitionIds=lacking,
        delivered=len(state.deliveries),
        providerStatus=finished.provider_status,
        providerFinishedAt=finished.at.isoformat(),
    )

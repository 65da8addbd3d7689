"""The ports of the domain: the `TaskingProvider` protocol and the project-owned types that cross it.

Adapters (the packages ``worker.providers.oneatlas`` and ``worker.providers.up42``) implement the
protocol and translate between these types and the providers' HTTP APIs; nothing outside an adapter
ever sees an ``httpx.Response`` or a provider payload. Every type here is a frozen pydantic model so
the domain core can keep it in the durable order state as JSON. The delivered-product types, which
the public DeliveryEvent is built from, live with the contract (``worker.events.products``).

Failure modes are the project's error tree (``worker.errors``): every method may raise
``ProviderUnavailable`` (retriable: 5xx, connection errors, read timeouts, 429 as ``RateLimited``),
``ProviderAuthError`` (credentials refused), ``ProviderProtocolError`` (an answer not shaped as
documented) and ``ProviderNotConfigured``. Methods that write (place an order, decide a quotation,
choose an option, decide an acquisition, cancel) may also raise ``OutcomeUnknown`` when the request
may have reached the provider but no answer came back: the caller must reconcile, never re-send.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from worker.events.models import (
    AcquisitionStatus,
    Automation,
    Classification,
    OrderRequest,
    Provider,
)
from worker.events.products import DeliveredProduct, ProviderModel, Refs


class FeasibilityResult(ProviderModel):
    """The provider's automatic feasibility answer.

    ``expires_at`` is the decision deadline the provider attaches (PNEO ``expirationDate``).
    ``available`` False means the provider has no capacity for the request.
    """

    programming_type: str
    automation: Automation
    classification: Classification | None = None
    automation_name: str | None = None
    available: bool = True
    expires_at: datetime | None = None


class Attempt(ProviderModel):
    """One acquisition opportunity (OneAtlas ``/attempts`` segment) with its ``segmentKey``."""

    id: str
    segment_key: str
    acquisition_start: datetime | None = None
    acquisition_end: datetime | None = None
    order_deadline: datetime | None = None
    incidence_angle: float | None = None
    footprint: dict[str, Any] | None = None  # GeoJSON (converted from the provider's WKT)


class OrderContext(ProviderModel):
    """What earlier steps learned and the order payload must carry (copied, not re-asked)."""

    feasibility: FeasibilityResult | None = None
    attempt: Attempt | None = None


class PriceQuote(ProviderModel):
    """A price. ``indicative`` is True for estimates that are not binding (UP42 estimate)."""

    amount: float
    currency: str
    area_km2: float | None = None
    indicative: bool = False


class PlacedOrder(ProviderModel):
    """An order that exists at the provider.

    ``tracking_key`` is the id the adapter's batched :meth:`Provider.poll` is keyed by
    (OneAtlas legacy: ``salesOrderId``; Pléiades Neo: ``quotationId``; UP42: ``orderId``).
    """

    tracking_key: str
    refs: Refs
    amount: float | None = None
    currency: str | None = None
    # What the provider's listing states about the order (``worker.domain.identity``); set by
    # ``find_order`` so an order found by customer reference is adopted only when it matches.
    identity: dict[str, str] = Field(default_factory=dict)
    # Set by the delivery harvest (never stored): the provider finished this order and the worker
    # waits for its last products, so the adapter may look them up directly.
    finished: bool = False


class StudyOption(ProviderModel):
    id: str
    description: str


class StudyDecision(StrEnum):
    NOT_DECIDED = "NOT_DECIDED"
    ACCEPTED = "ACCEPTED"


class FeasibilityStudy(ProviderModel):
    """A provider feasibility study (UP42) with the options a human may choose from."""

    id: str
    automation: Automation
    decision: StudyDecision
    options: list[StudyOption] = Field(default_factory=list)
    chosen_option_id: str | None = None
    deadline: datetime | None = None


class QuotationDecision(StrEnum):
    NOT_DECIDED = "NOT_DECIDED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


class Quotation(ProviderModel):
    """A binding price the customer must accept or refuse (PNEO quotation, UP42 quotation)."""

    id: str
    amount: float
    currency: str
    decision: QuotationDecision
    valid_until: datetime | None = None


class RemotePhase(StrEnum):
    """Where an order stands at the provider, in the project's words.

    The adapters map every provider status to one of these (documented in
    ``docs/provider-status-mapping.md``); the domain core maps phases to contract statuses.
    """

    FEASIBILITY_STUDY = "FEASIBILITY_STUDY"  # a manual study runs at the provider
    AWAITING_OPTION = "AWAITING_OPTION"  # the study is done: an option must be chosen
    AWAITING_QUOTATION = "AWAITING_QUOTATION"  # the provider prepares a quotation
    QUOTATION_READY = "QUOTATION_READY"  # a quotation waits for a decision
    ACTIVE = "ACTIVE"  # placed and activated, no acquisition yet
    ACQUIRING = "ACQUIRING"  # acquisitions are being made or proposed
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"  # the provider or the customer refused it (quotation refused)


class AcquisitionCounts(ProviderModel):
    proposed: int = 0
    validated: int = 0
    refused: int = 0


class OrderSnapshot(ProviderModel):
    """The state of one order at the provider at one poll.

    ``provider_status`` is the raw value (for logs and events); ``phase`` its mapping.
    ``change_marker`` changes whenever the acquisitions may have changed, so the caller fetches
    acquisitions only for orders whose marker moved (OneAtlas ``nbProposedSegments``...).
    """

    tracking_key: str
    refs: Refs
    provider_status: str
    phase: RemotePhase
    study: FeasibilityStudy | None = None
    quotation: Quotation | None = None
    counts: AcquisitionCounts | None = None
    coverage_pct: float | None = None
    change_marker: str | None = None


def stable_fingerprint(data: bytes) -> int:
    """A 64-bit fingerprint of ``data`` that is the same in every process (BLAKE2b, 8 bytes;
    ~1 µs for a 200-byte list item): unlike ``hash()``, whose value for bytes changes with every
    process (``PYTHONHASHSEED``), it can be kept in the changelog and compared after a restart
    or a handover (see ``StateStore.mark_seen``)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


Known = Callable[[str, int], bool]
"""``(tracking key, fingerprint) -> True`` when the caller already applied the snapshot of
that fingerprint to the order and needs nothing more for it (``TaskingProvider.poll``): the
adapter then builds nothing for the order, so an unchanged order costs its fingerprint alone."""


class PolledOrder:
    """One order as a batched poll saw it: a fingerprint of the provider's data for that order
    (:func:`stable_fingerprint`), and its :class:`OrderSnapshot`, built on first access of
    :attr:`snapshot`.

    Contract: for one snapshot revision (``worker.kafka.statecodec.SNAPSHOT_REVISION``, raised
    by a release that changes how snapshots are built), equal fingerprints of one order mean equal
    snapshots, so a
    caller that already applied the snapshot of a fingerprint may skip the order without building
    it (that is what keeps a cycle over 100,000 unchanged orders cheap, also the first one after
    a handover: the fingerprint is kept in the changelog). The converse does not
    hold: a different fingerprint may still give an equal snapshot (the provider reordered a
    payload's keys, say), which costs one redundant delivery and never a missed one.

    Failure modes: building the snapshot raises what the adapter's parser raises
    (``ProviderProtocolError`` for a payload not shaped as documented).
    """

    __slots__ = ("_build", "_snapshot", "fingerprint")

    def __init__(self, fingerprint: int, build: Callable[[], OrderSnapshot]) -> None:
        self.fingerprint = fingerprint
        self._build: Callable[[], OrderSnapshot] | None = build
        self._snapshot: OrderSnapshot | None = None

    @classmethod
    def of(cls, snapshot: OrderSnapshot) -> PolledOrder:
        """A snapshot already built (its fingerprint is that of its JSON)."""
        polled = cls(stable_fingerprint(snapshot.__pydantic_serializer__.to_json(snapshot)), lambda: snapshot)
        polled._snapshot, polled._build = snapshot, None
        return polled

    @classmethod
    def failed(cls, error: Exception) -> PolledOrder:
        """An order the listing returned but whose own reads or parsing failed: accessing
        :attr:`snapshot` raises ``error``, so the failure is this order's alone (the poller
        counts and retries it) rather than the whole poll's. Its fingerprint is never that of
        a snapshot, so it is always delivered."""

        def build() -> OrderSnapshot:
            raise error

        return cls(hash(("failed", id(error))), build)

    @property
    def snapshot(self) -> OrderSnapshot:
        if self._snapshot is None:
            assert self._build is not None
            self._snapshot, self._build = self._build(), None  # drop the raw payload it held
        return self._snapshot


class Acquisition(ProviderModel):
    """One acquisition (OneAtlas segment, PNEO coverage item, UP42 delivery)."""

    id: str
    status: AcquisitionStatus
    provider_status: str
    acquired_at: datetime | None = None
    cloud_cover: float | None = None  # 100 - clearSkyRate where the provider gives a clear-sky rate
    incidence_angle: float | None = None
    footprint: dict[str, Any] | None = None  # always GeoJSON
    refs: Refs = Field(default_factory=dict)


class DeliveryHarvest(ProviderModel):
    """What one :meth:`TaskingProvider.find_deliveries` call found.

    ``cursor`` is an opaque high-water mark: pass it back as ``cursor`` on the next cycle to see
    only what is new since. ``None`` means "no mark yet" (the next call looks back over
    everything). The same product may come back in a later harvest (a re-harvest after a restart,
    an item updated at the provider): callers dedupe by ``(tracking_key, item_id)``.
    """

    products: list[DeliveredProduct] = Field(default_factory=list)
    cursor: str | None = None
    # tracking key -> every item id of the order's complete delivery, for finished orders whose
    # delivery the adapter saw complete at the provider (UP42: every storage asset extracted).
    settled: dict[str, list[str]] = Field(default_factory=dict)
    # Reads or items that failed and affect only their own products (logged by the adapter with
    # the order's id, retried on later cycles): counted as delivery errors.
    skipped: int = 0


@runtime_checkable
class TaskingProvider(Protocol):
    """One tasking provider, in the project's own types.

    Implementations own their HTTP client, token lifecycle, retries and rate limits; see the
    module docstring for the failure modes every method shares.
    """

    name: Provider

    async def validate(self, request: OrderRequest) -> None:
        """Check that the request can be expressed for this provider, before any call that costs.

        Raises:
            InvalidOrderParams: a parameter is missing or invalid; the message names the field.
            ProviderNotConfigured: no credentials or contract for this request.
        """

    async def check_feasibility(self, request: OrderRequest) -> FeasibilityResult:
        """Ask the provider's automatic feasibility for the request.

        Raises:
            NotFeasible: the provider answered that it cannot task this request.
            ProviderRejected: the provider refused the request (4xx, e.g. ``E2203``).
        """

    async def find_attempts(self, request: OrderRequest) -> list[Attempt]:
        """List acquisition attempts (ONEDAY/ONENOW...), soonest first.

        Raises:
            NotFeasible: no attempt is possible (OneAtlas ``ERR_NO_SENSOR_AVAILABLE``).
        """

    async def price(self, request: OrderRequest, context: OrderContext) -> PriceQuote:
        """Price the order that :meth:`place_order` would place with the same arguments.

        Raises:
            ProviderRejected: the provider refused to price it.
        """

    async def place_order(self, request: OrderRequest, context: OrderContext) -> PlacedOrder:
        """Place the order (the paid call). Never retried by the adapter once sent.

        Raises:
            OutcomeUnknown: the request may have been accepted; reconcile with :meth:`find_order`.
            ProviderRejected: the provider refused the order (nothing was created).
        """

    async def find_order(self, request: OrderRequest) -> PlacedOrder | None:
        """Find an order already placed for ``request.reference`` (customer reference / tag).

        Returns ``None`` when the provider has none. Used to reconcile an intent after a crash or
        an ``OutcomeUnknown``.
        """

    async def get_order(self, placed: PlacedOrder) -> OrderSnapshot:
        """Read one order's current state (including a pending study or quotation)."""

    async def poll(self, keys: Collection[str], known: Known | None = None) -> dict[str, PolledOrder]:
        """Batched tracking: the orders whose ``tracking_key`` is in ``keys``, by tracking key.

        Uses the provider's listing endpoints page by page, so the number of calls grows with the
        number of pages, not of orders. Keys the provider does not return are absent. Snapshots
        are built lazily (:class:`PolledOrder`), so unchanged orders cost only their fingerprint.

        ``known(key, fingerprint)`` (see :data:`Known`), when given, is asked once per listed
        order of ``keys``; an order for which it answers true is left out of the result (it
        still counts as listed: the listing stops early once every key was seen). An adapter
        may also ignore it and return such an order: the caller must not rely on its absence.
        """

    async def list_acquisitions(self, placed: PlacedOrder) -> list[Acquisition]:
        """All acquisitions of one order (segments, coverage items, deliveries)."""

    async def decide_acquisition(self, placed: PlacedOrder, acquisition_id: str, accept: bool) -> None:
        """Accept or refuse a proposed acquisition.

        Raises:
            OutcomeUnknown: the decision may have been recorded; read the acquisition again.
            ProviderRejected: the acquisition can no longer be decided.
        """

    async def decide_quotation(self, placed: PlacedOrder, quotation_id: str, accept: bool) -> None:
        """Accept (activates the order, spends money) or refuse a quotation.

        Raises:
            OutcomeUnknown: reconcile by reading the quotation again.
            ProviderRejected: the quotation is no longer undecided (UP42 405) or not allowed.
        """

    async def choose_option(self, placed: PlacedOrder, study_id: str, option_id: str) -> None:
        """Choose one option of a feasibility study.

        Raises:
            OutcomeUnknown: reconcile by reading the study again.
            ProviderRejected: the study is already decided, or the option is unknown.
        """

    async def cancel(self, placed: PlacedOrder) -> None:
        """Cancel (or stop) the order at the provider.

        Raises:
            ProviderRejected: the provider does not allow it now; the message is its reason.
        """

    async def find_deliveries(self, orders: Collection[PlacedOrder], cursor: str | None) -> DeliveryHarvest:
        """Products delivered for ``orders`` (the orders waiting for delivery), new since ``cursor``.

        ``cursor`` is the :attr:`DeliveryHarvest.cursor` of the previous call, or ``None`` to look
        back over everything the orders could have. The number of calls grows with new products
        (pages of results), not with ``len(orders)``: adapters search across orders (by update
        time, or by a delivery workspace) and keep only the products of ``orders``, where the
        provider's API allows it (each adapter documents what its API allows). Products of
        orders not in ``orders`` are dropped. A product may be returned again in a later call;
        the caller dedupes by ``(tracking_key, item_id)``.

        Raises:
            ProviderProtocolError: a page not shaped as documented. Adapters skip (and log) one
                malformed product rather than fail the whole harvest where they can.
        """

    async def refresh_token(self) -> bool:
        """Renew the bearer token now if it is within its renewal margin (a timer calls this, so a
        token is renewed before it expires even between calls). Returns whether it renewed.

        Raises:
            ProviderAuthError: the credentials were refused.
        """

    def forget(self, tracking_keys: Collection[str]) -> None:
        """Drop whatever the adapter keeps per order for these tracking keys: the orders ended
        or left this instance (their partition was revoked). Per-order caches are thereby
        bounded by the open orders this instance owns; a key forgotten and then seen again (a
        partition assigned back) is learnt again at its next read."""

    async def aclose(self) -> None:
        """Release the HTTP client."""

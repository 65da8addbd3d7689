"""Airbus OneAtlas tasking adapter (SPOT / Pléiades on the ``legacy`` backend, Pléiades Neo on ``neo``).

It speaks the real API (Airbus's published tasking API, summarised in
``docs/providers/oneatlas.md``) and nothing else: every call goes through :class:`ProviderHttp`
(``read`` for calls without side effects, ``write`` for the ones that create or decide something),
with a bearer token obtained from the API key (1 h, no refresh token, renewed 60 s early and once on
401).

The two backends differ after the order is placed:

* legacy (SPOT, PLEIADES): ``POST /api/v1/orders`` answers a ``salesOrderId`` (the tracking key);
  the order becomes an ICR ("tasking") listed under ``/api/v1/contracts/{cid}/taskings`` with its
  segments (acquisitions).
* neo (PLEIADESNEO): ``POST /api/v1/orders`` answers a ``quotationId`` (the tracking key); the order
  line is found with ``POST /api/v2/orders/search`` and its acquisitions ("coverage items") with
  ``POST /api/v1/coverages/search``.

Provider quirks handled here: ``progCapacities`` as an object or an array, ``mission`` or
``missions``, the ``MAUAL`` typo, WKT footprints in ``/attempts``, camel-case ICR ``progTypeName``,
``token_type`` in either case, 201 on prices and orders, and three error body families.
The API key and the token never appear in an exception message or a log line.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from worker.domain.identity import mismatches, request_identity
from worker.domain.ports import (
    Acquisition,
    Attempt,
    DeliveryHarvest,
    FeasibilityResult,
    OrderContext,
    OrderSnapshot,
    PlacedOrder,
    PriceQuote,
)
from worker.errors import (
    InvalidOrderParams,
    NotFeasible,
    OutcomeUnknown,
    ProviderProtocolError,
    ProviderRejected,
)
from worker.events.models import OrderRequest
from worker.events.products import DeliveredProduct
from worker.providers.oneatlas.common import (
    ATTEMPT_TYPES,
    PROVIDER,
    as_dict,
    as_float,
    as_list,
    backend_of,
    lucene_escape,
    parse_automation,
    parse_classification,
    parse_time,
    refs_of,
    str_or_none,
)
from worker.providers.oneatlas.mapping import (
    acquisition_from,
    legacy_identity,
    legacy_snapshot,
    neo_identity,
    neo_quotation_id,
    neo_snapshot,
)
from worker.providers.oneatlas.ordering import (
    attempt_from,
    check_aoi_size,
    check_processing,
    oneatlas_product,
    order_body,
    prog_type_entry,
    search_body,
    soonest,
)
from worker.providers.oneatlas.tracking import OneAtlasTracking
from worker.tokens import TokenSource


class OneAtlasProvider(OneAtlasTracking):
    """:class:`~worker.domain.ports.TaskingProvider` for Airbus OneAtlas.

    Args:
        settings: API key, contract ids, hosts and order fields.
        http: timeouts and retry policy.
        client: an injected ``httpx.AsyncClient`` (tests pass a MockTransport or an ASGI app);
            when ``None`` the adapter builds and owns one.
        metrics: request / retry metrics sink.
        sleep: awaited between retries (tests inject a recorder).
        clock: monotonic seconds for token expiry (tests inject a fake clock).
        page_size: items per page when listing taskings or searching orders.
        delivery_page_size: items per page when searching delivered products (at most 500).
    """

    # ------------------------------------------------------------------ validation

    async def validate(self, request: OrderRequest) -> None:
        """Check mission/type, configuration, options and the AOI size rules of §6.

        Raises:
            ProviderNotConfigured: no API key, or no contract for the request's backend.
            InvalidOrderParams: the message names the offending field.
        """
        product = oneatlas_product(request)
        self._contract(backend_of(product.mission))
        check_processing(request, product)
        check_aoi_size(request, product)
        for key, value in request.provider_options.items():
            if not isinstance(value, str | int | float | bool):
                raise InvalidOrderParams(
                    f"providerOptions.{key}: must be a scalar", provider=PROVIDER, operation="validate"
                )

    # ------------------------------------------------------------------ feasibility and attempts

    def _search_body(self, request: OrderRequest, prog_type: str) -> dict[str, Any]:
        contract = self._contract(backend_of(oneatlas_product(request).mission))
        return search_body(request, prog_type, contract)

    async def check_feasibility(self, request: OrderRequest) -> FeasibilityResult:
        """``POST /api/v1/feasibility`` for the request's programming type.

        Raises:
            NotFeasible: ``available: false`` or a capacity error code.
            ProviderRejected: a per-progType AOI error (e.g. ``ERR_MIN_AOI_AREA``) or a 4xx.
        """
        product = oneatlas_product(request)
        prog = product.programming_type.value
        body = await self._read(
            "feasibility", "POST", "/api/v1/feasibility", json=self._search_body(request, prog)
        )
        entry = prog_type_entry(body, prog, "feasibility")
        feasibility = as_dict(entry.get("feasibility"))
        return FeasibilityResult(
            programming_type=prog,
            automation=parse_automation(feasibility.get("automation")),
            classification=parse_classification(feasibility.get("classification")),
            automation_name=str_or_none(feasibility.get("automationName")),
            available=True,
            expires_at=parse_time(entry.get("expirationDate") or feasibility.get("expirationDate")),
        )

    async def find_attempts(self, request: OrderRequest) -> list[Attempt]:
        """``POST /api/v1/attempts``: the acquisition slots of a ONEDAY/ONENOW(ATTEMPTS) request.

        Returns the attempts soonest first, footprints converted from WKT to GeoJSON.

        Raises:
            NotFeasible: ``ERR_NO_SENSOR_AVAILABLE`` (HTTP 500) or no segment at all.
            InvalidOrderParams: the programming type has no attempts.
        """
        product = oneatlas_product(request)
        if product.programming_type not in ATTEMPT_TYPES:
            raise InvalidOrderParams(
                f"product.programmingType: {product.programming_type} has no attempts",
                provider=PROVIDER,
                operation="attempts",
            )
        prog = product.programming_type.value
        body = await self._read("attempts", "POST", "/api/v1/attempts", json=self._search_body(request, prog))
        entry = prog_type_entry(body, prog, "attempts")
        attempts = [a for a in (attempt_from(s) for s in as_list(entry.get("segments"))) if a is not None]
        if not attempts:
            raise NotFeasible(
                "attempts: no acquisition attempt offered", provider=PROVIDER, operation="attempts"
            )
        return sorted(attempts, key=soonest)

    # ------------------------------------------------------------------ price and order

    def order_body(self, request: OrderRequest, context: OrderContext) -> dict[str, Any]:
        """The body shared by ``POST /api/v1/prices`` and ``POST /api/v1/orders`` (§3.3)."""
        contract = self._contract(backend_of(oneatlas_product(request).mission))
        return order_body(self._settings, request, context, contract)

    async def price(self, request: OrderRequest, context: OrderContext) -> PriceQuote:
        """``POST /api/v1/prices`` (answers 201) with the order body.

        Raises:
            ProviderRejected: the provider refused to price it (4xx, provider code attached).
        """
        body = await self._read("price", "POST", "/api/v1/prices", json=self.order_body(request, context))
        body = as_dict(body)
        amount = as_float(body.get("totalAmount"))
        if amount is None:
            raise ProviderProtocolError(
                "price: no totalAmount in the answer", provider=PROVIDER, operation="price"
            )
        areas = [as_float(as_dict(p).get("areaKm2")) for p in as_list(body.get("productTypes"))]
        known = [a for a in areas if a is not None]
        return PriceQuote(
            amount=amount, currency=str(body.get("currency") or "EUR"), area_km2=sum(known) if known else None
        )

    async def place_order(self, request: OrderRequest, context: OrderContext) -> PlacedOrder:
        """``POST /api/v1/orders`` (201): never retried once it may have been sent.

        Returns the legacy ``salesOrderId`` or the PNEO ``quotationId`` as tracking key.

        Raises:
            OutcomeUnknown: timeout, lost connection or 5xx; or a 2xx without the expected id
                (something was probably created): reconcile with :meth:`find_order`.
            ProviderRejected: refused, nothing created.
        """
        backend = backend_of(oneatlas_product(request).mission)
        body = self.order_body(request, context)
        answer = as_dict(await self._write("place_order", "POST", "/api/v1/orders", json=body))
        key_field = "salesOrderId" if backend == "legacy" else "quotationId"
        key = answer.get(key_field)
        if not key:
            raise OutcomeUnknown(
                f"place_order: answer has no {key_field}; reconcile",
                provider=PROVIDER,
                operation="place_order",
            )
        refs = refs_of(
            salesOrderId=answer.get("salesOrderId"),
            quotationId=answer.get("quotationId"),
            contractId=body["contractId"],
            customerReference=request.reference,
        )
        self._backends[str(key)] = backend
        return PlacedOrder(
            tracking_key=str(key),
            refs=refs,
            amount=as_float(answer.get("totalAmount")),
            currency=str_or_none(answer.get("currency")),
        )

    # ------------------------------------------------------------------ reconciliation

    async def find_order(self, request: OrderRequest) -> PlacedOrder | None:
        """Find the order placed for ``request.reference`` (after a crash or OutcomeUnknown): one
        whose product, AOI and window match the request, else the first one listed under the
        reference, with what its listing states (``PlacedOrder.identity``) for the caller's check."""
        backend = backend_of(oneatlas_product(request).mission)
        contract = self._contract(backend)
        ref = request.reference
        wanted = request_identity(request)
        first: PlacedOrder | None = None
        if backend == "legacy":
            async for item in self._taskings(contract, {"customerRef": ref}):
                if str(as_dict(item.get("icr")).get("customerRef")) == ref and item.get("sal"):
                    placed = self._placed(legacy_snapshot(item, contract), backend, legacy_identity(item))
                    if not mismatches(wanted, placed.identity):
                        return placed
                    first = first or placed
            return first
        query = f"(customerReference:{lucene_escape(ref)}) AND (contractId:{lucene_escape(contract)})"
        async for line in self._search("find_order", "/api/v2/orders/search", query):
            if str(line.get("customerReference")) == ref and neo_quotation_id(line):
                placed = self._placed(neo_snapshot(line), backend, neo_identity(line))
                if not mismatches(wanted, placed.identity):
                    return placed
                first = first or placed
        return first

    def _placed(self, snapshot: OrderSnapshot, backend: str, identity: dict[str, str]) -> PlacedOrder:
        self._backends[snapshot.tracking_key] = backend
        return PlacedOrder(tracking_key=snapshot.tracking_key, refs=snapshot.refs, identity=identity)

    # ------------------------------------------------------------------ acquisitions

    async def list_acquisitions(self, placed: PlacedOrder) -> list[Acquisition]:
        """Segments (legacy) or coverage items (PNEO) of one order; ``[]`` before there is any."""
        if self._backend_for_key(placed.tracking_key, placed.refs) == "neo":
            item_id = await self._order_item_id(placed, required=False)
            if item_id is None:
                return []
            refs = refs_of(orderItemId=item_id, quotationId=placed.tracking_key)
            query = f"(orderItemId:{lucene_escape(item_id)})"
            return [
                acquisition_from(c, id_key="coverageItemId", refs=refs)
                async for c in self._search("list_acquisitions", "/api/v1/coverages/search", query)
            ]
        contract, tasking_id = await self._tasking_id(placed, required=False)
        if tasking_id is None:
            return []
        body = as_dict(
            await self._read(
                "list_acquisitions", "GET", f"/api/v1/contracts/{contract}/taskings/{tasking_id}/segments"
            )
        )
        refs = refs_of(taskingId=tasking_id, salesOrderId=placed.tracking_key)
        return [
            acquisition_from(s, id_key="id", refs=refs)
            for s in as_list(body.get("segments"))
            if isinstance(s, dict)
        ]

    async def _tasking_id(self, placed: PlacedOrder, *, required: bool) -> tuple[str, str | None]:
        contract = placed.refs.get("contractId") or self._contract("legacy")
        tasking_id = placed.refs.get("taskingId")
        if not tasking_id:
            item = await self._find_tasking(contract, placed)
            tasking_id = str_or_none(as_dict(as_dict(item).get("icr")).get("id"))
        if tasking_id is None and required:
            raise ProviderRejected(
                f"no tasking (ICR) exists yet for {placed.tracking_key}",
                provider=PROVIDER,
                provider_code="NOT_FOUND",
            )
        return contract, tasking_id

    async def _order_item_id(self, placed: PlacedOrder, *, required: bool) -> str | None:
        item_id = placed.refs.get("orderItemId")
        if not item_id:
            item_id = (await self.get_order(placed)).refs.get("orderItemId")
        if item_id is None and required:
            raise ProviderRejected(
                f"quotation {placed.tracking_key} has no order item yet",
                provider=PROVIDER,
                provider_code="NOT_FOUND",
            )
        return item_id

    async def decide_acquisition(self, placed: PlacedOrder, acquisition_id: str, accept: bool) -> None:
        """Accept or refuse a proposed segment / coverage item (a write)."""
        verb = "accept" if accept else "refuse"
        if self._backend_for_key(placed.tracking_key, placed.refs) == "neo":
            path = f"/api/v1/coverages/{acquisition_id}/{verb}"
        else:
            contract, tasking_id = await self._tasking_id(placed, required=True)
            path = f"/api/v1/contracts/{contract}/taskings/{tasking_id}/segments/{acquisition_id}/{verb}"
        await self._write("decide_acquisition", "POST", path, json={})

    async def decide_quotation(self, placed: PlacedOrder, quotation_id: str, accept: bool) -> None:
        """PNEO: ``PUT /api/v1/contracts/{cid}/quotations/{id}/accept|refuse`` (a write)."""
        contract = placed.refs.get("contractId") or self._contract("neo")
        verb = "accept" if accept else "refuse"
        await self._write(
            "decide_quotation", "PUT", f"/api/v1/contracts/{contract}/quotations/{quotation_id}/{verb}"
        )

    async def choose_option(self, placed: PlacedOrder, study_id: str, option_id: str) -> None:
        """OneAtlas has no feasibility-study options to choose from.

        Raises:
            ProviderRejected: always.
        """
        raise ProviderRejected(
            "OneAtlas does not offer feasibility study options: a manual study ends in a tasking "
            "(SPOT/Pléiades) or a quotation (Pléiades Neo)",
            provider=PROVIDER,
            operation="choose_option",
        )

    async def cancel(self, placed: PlacedOrder) -> None:
        """Cancel the order.

        Legacy: ``POST …/taskings/{taskingId}/cancel`` with ``{}``. PNEO: before acceptance the
        quotation is refused; after, ``POST /api/v1/orders/{orderItemId}/cancel``, or ``/stop``
        when acquisitions already exist (what was acquired is kept).

        Raises:
            ProviderRejected: the provider refused; the message carries its reason.
        """
        if self._backend_for_key(placed.tracking_key, placed.refs) == "legacy":
            contract, tasking_id = await self._tasking_id(placed, required=True)
            await self._write(
                "cancel", "POST", f"/api/v1/contracts/{contract}/taskings/{tasking_id}/cancel", json={}
            )
            return
        snapshot = await self.get_order(placed)
        item_id = snapshot.refs.get("orderItemId")
        if item_id is None:
            await self.decide_quotation(placed, placed.tracking_key, accept=False)
            return
        has_acquisitions = (
            snapshot.counts is not None and (snapshot.counts.proposed + snapshot.counts.validated) > 0
        )
        verb = "stop" if has_acquisitions else "cancel"
        await self._write("cancel", "POST", f"/api/v1/orders/{item_id}/{verb}", json={})

    # ------------------------------------------------------------------ deliveries

    async def find_deliveries(self, orders: Collection[PlacedOrder], cursor: str | None) -> DeliveryHarvest:
        """Products delivered for ``orders`` since ``cursor`` (see :mod:`.delivery`).

        Harvests the delivery workspaces of the orders' backends by update date, so the calls
        grow with new products, not with ``len(orders)``; without orders nothing is asked.

        Raises:
            ProviderNotConfigured: no API key, or no contract for an order's backend.
            ProviderProtocolError: a delivery workspace cannot be resolved.
        """
        if not orders:
            return DeliveryHarvest(cursor=cursor)
        backends = {self._backend_for_key(o.tracking_key, o.refs) for o in orders}
        return await self._deliveries.harvest(orders, backends, cursor)

    async def order_products(self, placed: PlacedOrder) -> list[DeliveredProduct]:
        """The delivered products of one order, searched by sales order id (or customer reference)."""
        backend = self._backend_for_key(placed.tracking_key, placed.refs)
        return await self._deliveries.order_products(placed, backend)

    @property
    def tokens(self) -> TokenSource:
        """The bearer token source (also used to download delivered products)."""
        return self._tokens

    async def refresh_token(self) -> bool:
        """Renew the API-key token when it is within its renewal margin (see the protocol)."""
        return await self._tokens.refresh_if_due()

    def forget(self, tracking_keys: Collection[str]) -> None:
        """Drop the learnt backends of these orders (see ``TaskingProvider.forget``); a
        forgotten key's backend is told again by its refs or its id's shape."""
        for key in tracking_keys:
            self._backends.pop(key, None)

    async def aclose(self) -> None:
        """Close the HTTP client when this adapter created it."""
        if self._owns_client:
            await self._client.aclose()

"""The UP42 adapter class: auth, ordering, tracking, decisions and delivery discovery (the last in
``worker.providers.up42.delivery``)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from contextlib import aclosing
from typing import Any

import structlog

from worker.domain.identity import mismatches, request_identity
from worker.domain.ports import (
    Attempt,
    DeliveryHarvest,
    FeasibilityResult,
    OrderContext,
    PlacedOrder,
    PriceQuote,
    QuotationDecision,
    StudyDecision,
)
from worker.errors import (
    OutcomeUnknown,
    ProviderProtocolError,
    ProviderRejected,
)
from worker.events.models import OrderRequest, Provider
from worker.providers.up42.client import _listed
from worker.providers.up42.mapping import (
    CANCELLABLE,
    CREDITS,
    PROVIDER,
    _number,
    _page_items,
    _text,
    to_quotation,
    to_study,
)
from worker.providers.up42.params import display_name, reference_tags
from worker.providers.up42.tracking import Up42Tracking

log = structlog.get_logger(__name__)


class Up42Provider(Up42Tracking):
    """The UP42 v2 tasking API as a :class:`~worker.domain.ports.TaskingProvider`.

    Args:
        settings: credentials (password grant), hosts, workspace, pacing.
        http: timeouts and retry policy.
        client: an ``httpx.AsyncClient`` to use (tests inject a transport); one is built otherwise.
        metrics: provider call metrics.
        sleep: the backoff sleep (tests pass a no-op).
        clock: monotonic seconds for token expiry (tests pass a fake clock).
        wall_clock: the current time (how long a delivered asset may wait for its STAC items).

    Raises:
        ProviderNotConfigured: no username or password.
    """

    name = Provider.UP42

    async def validate(self, request: OrderRequest) -> None:
        """Build ``params`` from the product schema and validate them locally.

        Raises:
            InvalidOrderParams: names the parameter, the contract field it came from and the rule.
        """
        await self._params(request, "validate")

    # ------------------------------------------------------------------ no synchronous feasibility

    async def check_feasibility(self, request: OrderRequest) -> FeasibilityResult:
        """UP42 has no synchronous feasibility: studies arrive after the order is created."""
        raise ProviderRejected(
            "UP42 has no synchronous feasibility check; a study follows order creation",
            provider=PROVIDER,
            operation="check_feasibility",
            provider_code="UNSUPPORTED",
        )

    async def find_attempts(self, request: OrderRequest) -> list[Attempt]:
        """UP42 offers no acquisition attempts to choose from."""
        raise ProviderRejected(
            "UP42 has no acquisition attempts",
            provider=PROVIDER,
            operation="find_attempts",
            provider_code="UNSUPPORTED",
        )

    # ------------------------------------------------------------------ price and order

    @staticmethod
    def _item_error(body: Any, operation: str) -> ProviderRejected | None:
        errors = body.get("errors") if isinstance(body, dict) else None
        if not errors or not isinstance(errors, list) or not isinstance(errors[0], dict):
            return None
        first = errors[0]
        message = _text(first.get("message")) or "Failed"
        details = _text(first.get("details"))
        return ProviderRejected(
            f"{operation}: UP42 refused the order item: {message}" + (f" ({details})" if details else ""),
            provider=PROVIDER,
            operation=operation,
            status_code=200,
            details={"index": first.get("index"), "details": details},
        )

    async def price(self, request: OrderRequest, context: OrderContext) -> PriceQuote:
        """``POST /v2/orders/estimate``: indicative credits (the quotation is the binding price).

        Raises:
            InvalidOrderParams: the params do not fit the product schema (nothing sent).
            ProviderRejected: the estimate has a per-item error (HTTP 200) or a 4xx.
        """
        body = await self._order_body(request, "estimate")
        answer = await self._http.read("estimate", "POST", self._url("/v2/orders/estimate"), json=body)
        if (error := self._item_error(answer, "estimate")) is not None:
            raise error
        summary = answer.get("summary") if isinstance(answer, dict) else None
        credits = _number(summary.get("totalCredits")) if isinstance(summary, dict) else None
        if not isinstance(summary, dict) or credits is None:
            raise ProviderProtocolError(
                "estimate: answer has no summary.totalCredits", provider=PROVIDER, operation="estimate"
            )
        area = _number(summary.get("totalSize")) if summary.get("unit") == "SQ_KM" else None
        return PriceQuote(amount=credits, currency=CREDITS, area_km2=area, indicative=True)

    async def place_order(self, request: OrderRequest, context: OrderContext) -> PlacedOrder:
        """``POST /v2/orders?workspaceId=…``, sent once (no idempotency key at UP42).

        Raises:
            OutcomeUnknown: no answer (timeout, lost connection, 5xx), or a 2xx that is not
                readable (HTML, truncated, without an order id): reconcile with find_order.
            ProviderRejected: a per-item error (HTTP 200) or a 400; nothing was created.
            InvalidOrderParams: the params do not fit the product schema (nothing sent).
        """
        body = await self._order_body(request, "place_order")
        workspace = await self.workspace_id()
        answer = await self._http.write(
            "place_order", "POST", self._url("/v2/orders"), params={"workspaceId": workspace}, json=body
        )
        if (error := self._item_error(answer, "place_order")) is not None:
            raise error
        results = answer.get("results") if isinstance(answer, dict) else None
        first = results[0] if isinstance(results, list) and results else None
        if not isinstance(first, dict) or not first.get("id"):
            # A 2xx without the order id: the order may exist; only a read can tell.
            raise OutcomeUnknown(
                "place_order: answer has neither results nor errors; outcome unknown",
                provider=PROVIDER,
                operation="place_order",
            )
        order_id = str(first["id"])
        log.info("up42_order_created", order_id=order_id)
        return PlacedOrder(tracking_key=order_id, refs={"orderId": order_id})

    async def find_order(self, request: OrderRequest) -> PlacedOrder | None:
        """The order already placed for ``request.reference``, found by its tag(s).

        When the display name is the reference itself, orders whose tags were since removed are
        still found by ``displayName`` (exact match; UP42 may filter by substring).
        """
        tags = reference_tags(request.reference)
        name = display_name(request)
        wanted = request_identity(request)
        found = await self._first(
            "find_order",
            [("tags", tags[0])],
            lambda o: all(t in (o.get("tags") or []) for t in tags),
            wanted,
        )
        if found is None and name == request.reference:
            found = await self._first(
                "find_order", [("displayName", name)], lambda o: o.get("displayName") == name, wanted
            )
        if found is None:
            return None
        order_id = str(found["id"])
        return PlacedOrder(tracking_key=order_id, refs={"orderId": order_id}, identity=_listed(found))

    async def _first(
        self,
        operation: str,
        query: list[tuple[str, str]],
        match: Callable[[dict[str, Any]], bool],
        wanted: Mapping[str, str],
    ) -> dict[str, Any] | None:
        """The oldest order ``match`` accepts whose product, AOI and window are the request's
        (a duplicate, if any, is newer), else the oldest one ``match`` accepts (the caller's
        identity check then refuses to adopt it)."""
        first: dict[str, Any] | None = None
        async with aclosing(self._orders(operation, query)) as orders:
            async for order in orders:
                if not match(order) or not order.get("id"):
                    continue
                if not mismatches(wanted, _listed(order)):
                    return order
                first = first or order
        return first

    # ------------------------------------------------------------------ decisions

    async def _find_one(self, operation: str, path: str, item_id: str, order_id: str) -> dict[str, Any]:
        body = await self._http.read(
            operation, "GET", self._url(path), params={"id": item_id, "orderId": order_id}
        )
        for item in _page_items(body, operation)[0]:
            if str(item.get("id")) == item_id:
                return item
        raise ProviderRejected(
            f"{operation}: UP42 has no {item_id!r} for order {order_id}",
            provider=PROVIDER,
            operation=operation,
            provider_code="NOT_FOUND",
        )

    async def choose_option(self, placed: PlacedOrder, study_id: str, option_id: str) -> None:
        """Choose a study option: read first, PATCH only while ``NOT_DECIDED``.

        Already decided with the same option is success (a repeated command is a no-op).

        Raises:
            ProviderRejected: decided with another option, unknown option, or 405 write-protected.
            OutcomeUnknown: the PATCH got no answer; read the study again.
        """
        raw = await self._find_one(
            "choose_option", "/v2/tasking/feasibility-studies", study_id, placed.tracking_key
        )
        study = to_study(raw)
        if study.decision is StudyDecision.ACCEPTED:
            if study.chosen_option_id == option_id:
                return
            raise ProviderRejected(
                f"choose_option: study {study_id} is already decided"
                + (
                    f" with option {study.chosen_option_id}"
                    if study.chosen_option_id
                    else " (automatic study)"
                ),
                provider=PROVIDER,
                operation="choose_option",
                provider_code="ALREADY_DECIDED",
            )
        if option_id not in {o.id for o in study.options}:
            raise ProviderRejected(
                f"choose_option: study {study_id} has no option {option_id}",
                provider=PROVIDER,
                operation="choose_option",
                provider_code="UNKNOWN_OPTION",
            )
        await self._http.write(
            "choose_option",
            "PATCH",
            self._url(f"/v2/tasking/feasibility-studies/{study_id}"),
            json={"acceptedOptionId": option_id},
        )

    async def decide_quotation(self, placed: PlacedOrder, quotation_id: str, accept: bool) -> None:
        """Accept (spends credits, irreversible) or refuse: read first, PATCH only while
        ``NOT_DECIDED``; already in the requested decision is success.

        Raises:
            ProviderRejected: decided the other way, 405 write-protected, or 403 (role).
            OutcomeUnknown: the PATCH got no answer; read the quotation again.
        """
        wanted = QuotationDecision.ACCEPTED if accept else QuotationDecision.REJECTED
        raw = await self._find_one(
            "decide_quotation", "/v2/tasking/quotation", quotation_id, placed.tracking_key
        )
        current = to_quotation(raw).decision
        if current is wanted:
            return
        if current is not QuotationDecision.NOT_DECIDED:
            raise ProviderRejected(
                f"decide_quotation: quotation {quotation_id} is already {current.value}",
                provider=PROVIDER,
                operation="decide_quotation",
                provider_code="ALREADY_DECIDED",
            )
        await self._http.write(
            "decide_quotation",
            "PATCH",
            self._url(f"/v2/tasking/quotation/{quotation_id}"),
            json={"decision": wanted.value},
        )

    async def cancel(self, placed: PlacedOrder) -> None:
        """``POST /v2/orders/{id}/cancellation``, only while ``CREATED`` or ``PLACEMENT_FAILED``
        (the SDK's rule); an order already ``CANCELED`` is success.

        Raises:
            ProviderRejected: any other status (the message names it), or UP42 refused.
            OutcomeUnknown: the POST got no answer; read the order again.
        """
        order_id = placed.tracking_key
        order = await self._http.read("cancel", "GET", self._url(f"/v2/orders/{order_id}"))
        status = str(order.get("status")) if isinstance(order, dict) else "unknown"
        if status == "CANCELED":
            return
        if status not in CANCELLABLE:
            raise ProviderRejected(
                f"UP42 allows cancellation only while CREATED or PLACEMENT_FAILED; order is {status}",
                provider=PROVIDER,
                operation="cancel",
                provider_code="NOT_CANCELLABLE",
            )
        await self._http.write("cancel", "POST", self._url(f"/v2/orders/{order_id}/cancellation"))

    async def find_deliveries(self, orders: Collection[PlacedOrder], cursor: str | None) -> DeliveryHarvest:
        """Products in UP42 storage of ``orders``, new since ``cursor``: assets created since the
        cursor, their STAC items, their collections' original archives
        (``worker.providers.up42.delivery``). Calls grow with new assets, not with orders."""
        return await self._deliveries.harvest(orders, cursor)

    async def refresh_token(self) -> bool:
        """Renew the password-grant token when it is within its renewal margin (see the protocol)."""
        return await self.tokens.refresh_if_due()

    def forget(self, tracking_keys: Collection[str]) -> None:
        """Drop what the last polls saw of these orders (see ``TaskingProvider.forget``): a
        forgotten order's coverage is read again at its next poll while it is acquiring."""
        for key in tracking_keys:
            self._seen.pop(key, None)

    async def aclose(self) -> None:
        """Close the HTTP client when this adapter built it."""
        if self._owns_client:
            await self._client.aclose()

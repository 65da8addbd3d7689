"""The OneAtlas adapter's tracking: one order's snapshot (``get_order``) and the batched poll of
the legacy taskings and the neo order lines (``poll``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from worker import cooperative
from worker.domain.ports import (
    Known,
    OrderSnapshot,
    PlacedOrder,
    PolledOrder,
    stable_fingerprint,
)
from worker.errors import (
    ProviderRejected,
)
from worker.providers.oneatlas.client import OneAtlasClient
from worker.providers.oneatlas.common import (
    PROVIDER,
    as_dict,
    as_float,
    as_list,
    lucene_escape,
)
from worker.providers.oneatlas.mapping import (
    from_raw,
    legacy_snapshot,
    neo_quotation_id,
    neo_snapshot,
)

# Keys classified between two reads of the slicer's clock (a read costs as much as a key).
_CLOCK_EVERY = 64


class OneAtlasTracking(OneAtlasClient):
    """The tracking calls of :class:`~.provider.OneAtlasProvider`."""

    def _backend_for_key(self, key: str, refs: Mapping[str, str] | None = None) -> str:
        """Which backend a tracking key belongs to: learnt, else from refs, else by id shape."""
        known = self._backends.get(key)
        if known is not None:
            return known
        if refs is not None and refs.get("quotationId") == key:
            return "neo"
        return "neo" if key.upper().startswith("QUO") else "legacy"

    async def get_order(self, placed: PlacedOrder) -> OrderSnapshot:
        """The current state of one order.

        Raises:
            ProviderRejected: the provider does not know the order (any more).
        """
        key = placed.tracking_key
        if self._backend_for_key(key, placed.refs) == "neo":
            contract = placed.refs.get("contractId") or self._contract("neo")
            query = f"(cis.quotation:{lucene_escape(key)}) AND (contractId:{lucene_escape(contract)})"
            async for line in self._search("get_order", "/api/v2/orders/search", query):
                if neo_quotation_id(line) == key:
                    return neo_snapshot(line)
        else:
            contract = placed.refs.get("contractId") or self._contract("legacy")
            item = await self._find_tasking(contract, placed)
            if item is not None:
                return legacy_snapshot(item, contract)
        raise ProviderRejected(
            f"get_order: order {key} not found",
            provider=PROVIDER,
            operation="get_order",
            provider_code="NOT_FOUND",
        )

    async def _find_tasking(self, contract: str, placed: PlacedOrder) -> dict[str, Any] | None:
        """The ``{sal, so, icr}`` item of a legacy order (one GET when the ICR id is known)."""
        tasking_id = placed.refs.get("taskingId")
        if tasking_id:
            item = as_dict(
                await self._read("get_order", "GET", f"/api/v1/contracts/{contract}/taskings/{tasking_id}")
            )
            return item if item.get("icr") else None
        ref = placed.refs.get("customerReference")
        params = {"customerRef": ref} if ref else {}
        async for item in self._taskings(contract, params):
            if str(item.get("sal")) == placed.tracking_key:
                return item
        return None

    async def poll(self, keys: Collection[str], known: Known | None = None) -> dict[str, PolledOrder]:
        """The orders in ``keys``, by listing pages (calls grow with pages, not keys).

        Legacy keys are matched against ``GET …/taskings`` pages (``sal``), PNEO keys against
        ``POST /api/v2/orders/search`` pages (``quotationId``). Listing stops early once every
        key was seen. Each order's fingerprint is that of its raw list item; its snapshot is
        parsed only if the caller asks for it, and an order ``known`` with that fingerprint is
        left out without anything kept for it (``TaskingProvider.poll``).
        """
        legacy = set(keys)
        neo: set[str] = set()
        learnt = self._backends
        slicer = cooperative.Slicer()  # ~0.2 µs a key: 20 ms of the loop at 100,000 keys
        for n, key in enumerate(legacy):
            # _backend_for_key inlined (no refs here): a call per key is most of this loop.
            backend = learnt.get(key)
            if backend == "neo" or (backend is None and key[:3].upper().startswith("QUO")):
                neo.add(key)
            if n % _CLOCK_EVERY == 0 and slicer.used_up():
                await slicer.rest()
        legacy -= neo
        result = await self._poll_legacy(legacy, known) if legacy else {}
        if neo:
            result.update(await self._poll_neo(neo, known))
        return result

    async def _poll_legacy(self, keys: set[str], known: Known | None) -> dict[str, PolledOrder]:
        """The listed orders of ``keys``, which it consumes: a key leaves the set when its item
        is seen (so a key listed twice, as a page boundary shifting under a new order can do, is
        taken once), and the listing stops once the set is empty."""
        contract = self._contract("legacy")
        found: dict[str, PolledOrder] = {}
        async for items in self._tasking_pages(contract, {}, until=lambda: not keys):
            for item in items:
                sal, left = str(item.get("sal") or ""), len(keys)
                keys.discard(sal)  # one lookup of the key where a test and a removal are two
                if len(keys) < left:
                    polled = _polled(item, sal, known, legacy_snapshot, contract)
                    if polled is not None:
                        found[sal] = polled
        return found

    async def _poll_neo(self, keys: set[str], known: Known | None) -> dict[str, PolledOrder]:
        """As :meth:`_poll_legacy`, over the PNEO order lines (keyed by quotation id)."""
        contract = self._contract("neo")
        found: dict[str, PolledOrder] = {}
        query = f"(contractId:{lucene_escape(contract)})"
        async for lines in self._search_pages("poll", "/api/v2/orders/search", query, until=lambda: not keys):
            for line in lines:
                key = neo_quotation_id(line)
                if key is not None and key in keys:
                    keys.discard(key)
                    polled = _polled(line, key, known, neo_snapshot)
                    if polled is not None:
                        found[key] = polled
        return found

    async def _taskings(self, contract: str, filters: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Every tasking item matching ``filters`` (:meth:`_tasking_pages`, item by item)."""
        async for items in self._tasking_pages(contract, filters):
            for item in items:
                yield item

    async def _tasking_pages(
        self, contract: str, filters: Mapping[str, str], until: Callable[[], bool] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The pages of tasking items matching ``filters`` (``count``/``startPage`` from 1); a
        page at a time, so a poll's per-item work is a plain loop, not a suspension per item."""
        page = 1
        path = f"/api/v1/contracts/{contract}/taskings?"
        while True:
            params = {**filters, "count": str(self._page_size), "startPage": str(page)}
            # The query is encoded here rather than by httpx (``params=``), whose merging of it
            # costs ~70 µs a request: 70 ms of a cycle over 100,000 orders.
            body = as_dict(await self._read("poll", "GET", path + urlencode(params, quote_via=quote)))
            items = [i for i in as_list(body.get("taskings")) if isinstance(i, dict)]
            yield items
            if len(items) < self._page_size or (until is not None and until()):
                return
            page += 1

    async def _search(self, operation: str, path: str, query: str) -> AsyncIterator[dict[str, Any]]:
        """Every feature of a PNEO search (:meth:`_search_pages`, feature by feature)."""
        async for features in self._search_pages(operation, path, query):
            for feature in features:
                yield feature

    async def _search_pages(
        self, operation: str, path: str, query: str, until: Callable[[], bool] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The pages of a PNEO search (``paging`` with ``pagingMode: item``, 0-based index), each
        feature as its ``properties`` (the feature itself when it has none)."""
        start = 0
        while True:
            request = {
                "paging": {"itemsPerPage": self._page_size, "startIndex": start, "pagingMode": "item"},
                "criteria": {"q": query},
            }
            body = as_dict(await self._read(operation, "POST", path, json=request))
            features = [f for f in as_list(body.get("features")) if isinstance(f, dict)]
            yield [as_dict(feature.get("properties")) or feature for feature in features]
            start += len(features)
            total = as_float(as_dict(body.get("paging")).get("totalResults"))
            done = len(features) < self._page_size or (total is not None and start >= total)
            if done or (until is not None and until()):
                return


def _polled(
    item: dict[str, Any],
    key: str,
    known: Known | None,
    parse: Callable[..., OrderSnapshot],
    *args: Any,
) -> PolledOrder | None:
    """One listed order's :class:`PolledOrder`, fingerprinted over its item as ``orjson``
    serialises it; ``None`` when ``known`` already has that fingerprint (nothing is kept)."""
    raw = orjson.dumps(item)
    fingerprint = stable_fingerprint(raw)
    if known is not None and known(key, fingerprint):
        return None
    return PolledOrder(fingerprint, partial(from_raw, parse, raw, *args))

"""UP42 adapter: the v2 tasking API (``docs/providers/up42.md``) behind :class:`TaskingProvider`.

Flow at UP42: ``POST /v2/orders`` creates an order in ``CREATED``; UP42 Operations upload a
feasibility study (``AUTO``: accepted by itself; ``MANUAL``: the customer chooses an option), then a
quotation in credits; accepting the quotation activates the order and spends the credits; the
order is then placed, fulfilled, and its deliveries appear as STAC items in UP42 storage.

What this module handles on purpose (see ``docs/providers/up42.md``):

* ``params`` are built from the product's JSON Schema (``GET /orders/schema/{id}``, cached) and
  validated locally with ``jsonschema`` before anything is sent; parameter names differ per
  product (``cloudCoverage`` vs ``maxCloudCover``...). The geometry only ever goes in
  ``featureCollection``; ``displayName`` is top level; ``tags`` is omitted rather than empty.
* Create and estimate answer HTTP 200 even when an item failed: per-item ``errors[]`` are refusals.
* ``POST /v2/orders`` has no idempotency key: it is sent once through ``ProviderHttp.write``; a lost
  answer raises ``OutcomeUnknown`` and :meth:`Up42Provider.find_order` reconciles by tag.
* ``subStatus`` goes stale once ``status`` moves on: it is read only while ``status == CREATED``.
* Studies and quotations are decided GET-then-PATCH, only while ``NOT_DECIDED`` (UP42 answers 405
  "write-protected" otherwise), so a repeated command is a no-op, never a second charge.
* Error bodies come in four shapes (tasking, ``BasicErrorResponse``, legacy ``{data,error}``,
  Keycloak); :func:`translate_error` reads them all.
"""

from worker.providers.up42.mapping import order_phase, to_acquisition, to_quotation, to_study, translate_error
from worker.providers.up42.params import build_params, display_name, reference_tags, validate_params
from worker.providers.up42.provider import Up42Provider

__all__ = [
    "Up42Provider",
    "build_params",
    "display_name",
    "order_phase",
    "reference_tags",
    "to_acquisition",
    "to_quotation",
    "to_study",
    "translate_error",
    "validate_params",
]

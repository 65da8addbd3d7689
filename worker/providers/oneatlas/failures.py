"""OneAtlas error bodies and their translation into the project's error tree.

The API key never appears in a message: the token endpoint's answer is scrubbed of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from worker.errors import (
    NotFeasible,
    OutcomeUnknown,
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)
from worker.providers.http import json_body
from worker.providers.oneatlas.common import WRITE_OPERATIONS, as_dict, str_or_none


def provider_error_fields(body: Any) -> tuple[str | None, str | None]:
    """``(code, message)`` from any of OneAtlas's error body families.

    * ApiError ``{correlationId, hint, internalCode, message, timestamp}``
    * ``{errorCode, message}`` (order.api 4xx, e.g. ``E2203``)
    * ``{errors: [{code, locator, message}]}`` (feasibility, attempts)
    * ``{code: "UNEXPECTED_SERVER_ERROR"}`` and ``{message}`` (expired token)
    """
    if isinstance(body, str):
        return None, body[:200] or None
    if not isinstance(body, dict):
        return None, None
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        first = as_dict(errors[0])
        message = "; ".join(_error_text(as_dict(e)) for e in errors)
        return str_or_none(first.get("code")), message
    code = body.get("errorCode") or body.get("internalCode") or body.get("code")
    return str_or_none(code), str_or_none(body.get("message") or body.get("hint"))


def translate_error(response: httpx.Response, operation: str) -> ProviderError | None:
    """The ``translate`` hook of :class:`ProviderHttp` for order.api answers.

    ``ERR_NO_SENSOR_AVAILABLE`` (a 500!) is :class:`NotFeasible`; other 4xx carry the provider's code
    and message in a :class:`ProviderRejected`; 401/403 are :class:`ProviderAuthError`; 5xx keep
    the default semantics (retriable on reads, :class:`OutcomeUnknown` on writes) but name the
    provider's code. 429 is left to the default (``RateLimited`` with ``Retry-After``).
    """
    status = response.status_code
    if status == 429:
        return None
    code, message = provider_error_fields(json_body(response))
    text = f"{operation}: HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if code == "ERR_NO_SENSOR_AVAILABLE":
        return NotFeasible(text, provider_code=code)
    if status >= 500:
        if operation in WRITE_OPERATIONS:
            return OutcomeUnknown(text + "; outcome unknown", provider_code=code)
        return ProviderUnavailable(text, provider_code=code)
    if status in (401, 403):
        return ProviderAuthError(text, provider_code=code)
    return ProviderRejected(text, provider_code=code, details={"message": message} if message else None)


def auth_translate(api_key: str) -> Callable[[httpx.Response, str], ProviderError | None]:
    """Token endpoint errors: 400/401/403 mean the API key was refused (never echo the key)."""

    def translate(response: httpx.Response, operation: str) -> ProviderError | None:
        status = response.status_code
        if status not in (400, 401, 403):
            return None
        code, message = provider_error_fields(json_body(response))
        text = f"{operation}: API key refused (HTTP {status}" + (f" {code}" if code else "") + ")"
        if message:
            text += ": " + (message.replace(api_key, "[REDACTED]") if api_key else message)
        return ProviderAuthError(text, provider_code=code)

    return translate


def _error_text(error: dict[str, Any]) -> str:
    """``code (locator): message`` of one ``errors[]`` entry."""
    return f"{error.get('code')} ({error.get('locator')}): {error.get('message') or ''}".rstrip(": ")

"""The project's one error tree.

Every failure the worker reasons about is one of these; third-party exceptions (httpx, aiokafka,
pydantic) are translated once, at the boundary where they occur, with ``raise ... from exc``.
Retry policy reads :attr:`WorkerError.retriable`, never the exception class of a library.

::

    WorkerError
    ├── ConfigError                 invalid environment: the process stops with one line
    ├── DecodeError                 an input message cannot be used; carries a dead-letter code
    ├── IllegalTransition           decide() was asked for a status change the contract forbids
    ├── OwnershipLost               this instance may no longer own the order's partition    retriable
    ├── StateTooLarge               an order's state would not fit one changelog record
    ├── DownloadError               a delivered product could not be downloaded (``download``)
    ├── KafkaConnectError           the cluster cannot be reached or refuses us; carries a reason
    ├── TopicLayoutError            the contract topics are missing, not co-partitioned or not
    │                               compacted: the worker does not start (or stops taking work)
    └── ProviderError               anything a provider call went wrong with (provider, operation)
        ├── ProviderNotConfigured   no credentials for this provider (reason PROVIDER_NOT_CONFIGURED)
        ├── ProviderUnavailable     5xx, connection error, read timeout           retriable
        │   └── RateLimited         429, with the provider's Retry-After             retriable
        ├── ProviderAuthError       the credentials were refused (401/403 on the token endpoint)
        ├── ProviderRejected        4xx or a documented refusal (carries the provider's code)
        │   ├── NotFeasible         no capacity / no attempt (e.g. ERR_NO_SENSOR_AVAILABLE)
        │   └── InvalidOrderParams  the request does not fit the provider's parameter schema
        ├── ProviderProtocolError   the answer is not shaped as the provider documents it
        └── OutcomeUnknown          a write that may have taken effect (timed out, connection lost
                                    after sending): never retried blindly, always reconciled

Flow signals (dead-letter this message, retry later) are *not* exceptions: they are explicit
outcomes returned by the intake and by ``decide()``.
"""

from __future__ import annotations

from typing import Any


class WorkerError(Exception):
    """Base of every error raised by the project.

    Attributes:
        retriable: True when the same operation may succeed if tried again later unchanged.
    """

    retriable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(WorkerError):
    """The configuration is invalid; the message names the variable (never its value)."""


class DecodeError(WorkerError):
    """An input message cannot be decoded or validated.

    Attributes:
        code: the dead-letter code of CONTRACT §4.5 (``MALFORMED_JSON``, ``SCHEMA_VIOLATION``, ...).
        details: JSON-safe details (for example the failing field paths).
        request_id: the ``requestId`` when it could be read, so a ``REJECTED`` status can be sent.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}
        self.request_id = request_id


class IllegalTransition(WorkerError):
    """A status change that CONTRACT §4.2 does not allow (a bug, never silently ignored)."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"illegal transition {current} -> {target}")
        self.current = current
        self.target = target


class OwnershipLost(WorkerError):
    """The broker did not confirm that this instance still owns a partition (its group
    membership ended while it was frozen or cut off, or a rebalance is under way): nothing was
    written or sent; the partition's owner, possibly this instance after it rejoins, resumes
    the order from its durable state."""

    retriable = True

    def __init__(self, partition: int) -> None:
        super().__init__(f"ownership of partition {partition} is not confirmed")
        self.partition = partition


class StateTooLarge(WorkerError):
    """An order's state is larger than one changelog record may be: the write can never
    succeed, so it is not retried (a new request is refused ``TOO_LARGE`` at intake, an open
    order ends ``FAILED`` with reason ``STATE_TOO_LARGE``).

    Attributes:
        size: the serialised state, in bytes (0 when only the broker's refusal is known).
        limit: the bytes allowed for this write.
    """

    def __init__(self, request_id: str, size: int, limit: int) -> None:
        super().__init__(f"the state of {request_id!r} is {size} bytes, more than the {limit} allowed")
        self.request_id = request_id
        self.size = size
        self.limit = limit


class DownloadError(WorkerError):
    """A delivered product's file could not be downloaded or verified (``tasking-worker download``).

    Attributes:
        code: ``BAD_CREDENTIALS``, ``NOT_CONFIGURED``, ``EXPIRED``, ``NOT_FOUND``,
            ``CHECKSUM_MISMATCH``, ``SIZE_MISMATCH``, ``HTTP_ERROR`` or ``TRANSFER_FAILED``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class KafkaConnectError(WorkerError):
    """A Kafka connection failed for a reason an operator can act on.

    Attributes:
        reason: ``AUTHENTICATION_FAILED`` (wrong user/password, refused mechanism),
            ``TLS_UNTRUSTED`` (server certificate not signed by the configured CA),
            ``TLS_EXPIRED`` (a certificate outside its validity), ``TLS_HANDSHAKE`` (any other
            TLS failure, e.g. a client certificate refused), ``TLS_CONFIG`` (a certificate,
            key or CA file that cannot be loaded), ``TOKEN_REFUSED`` / ``TOKEN_UNAVAILABLE``
            (the OAUTHBEARER token endpoint), ``UNREACHABLE`` (no bootstrap server answers).
            The message never contains a secret.
    """

    retriable = True

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TopicLayoutError(WorkerError):
    """The contract topics cannot carry the worker's guarantees (missing, partition counts that
    differ between requests, commands and state, or a state topic that is not compacted). The
    message names every topic and what is wrong with it."""


class ProviderError(WorkerError):
    """A provider call failed.

    Attributes:
        provider: ``oneatlas`` or ``up42``.
        operation: the adapter operation (``feasibility``, ``place_order``, ...).
        status_code: the HTTP status when there was a response.
        provider_code: the provider's own error code (``ERR_NO_SENSOR_AVAILABLE``, ``E2203``, ...).
        reason_code: the status-event reason code this error maps to (CONTRACT §4.1).
    """

    reason_code = "PROVIDER_ERROR"

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        operation: str = "",
        status_code: int | None = None,
        provider_code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.operation = operation
        self.status_code = status_code
        self.provider_code = provider_code
        self.details = details or {}


class ProviderNotConfigured(ProviderError):
    reason_code = "PROVIDER_NOT_CONFIGURED"


class ProviderUnavailable(ProviderError):
    retriable = True


class RateLimited(ProviderUnavailable):
    """HTTP 429. ``retry_after`` is the provider's ``Retry-After`` in seconds, when it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ProviderAuthError(ProviderError):
    reason_code = "PROVIDER_ERROR"


class ProviderRejected(ProviderError):
    reason_code = "PROVIDER_REJECTED"


class NotFeasible(ProviderRejected):
    reason_code = "NOT_FEASIBLE"


class InvalidOrderParams(ProviderRejected):
    """The request cannot be expressed in the provider's parameters (names the field)."""

    reason_code = "INVALID_REQUEST"


class ProviderProtocolError(ProviderError):
    reason_code = "PROVIDER_ERROR"


class OutcomeUnknown(ProviderError):
    """A write whose effect is unknown: reconcile (look it up), never re-send blindly."""

    reason_code = "PROVIDER_ERROR"

"""What both provider simulators share: a simulated clock, fault injection and a call record.

The simulators are ASGI apps (starlette) implementing the providers' real paths. They are used in
process through ``httpx.ASGITransport`` by tests and as real HTTP servers (uvicorn) by the demo and
the reliability suite. Operator controls live under ``/_sim/`` on each app and as Python methods.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

FaultKind = Literal["status", "latency", "lost_response", "html_success"]

#: What a gateway in maintenance serves with a success status (fault ``html_success``).
MAINTENANCE_PAGE = (
    "<!DOCTYPE html><html><head><title>Maintenance</title></head>"
    "<body><h1>Service temporarily under maintenance</h1></body></html>"
)


@dataclass
class SimClock:
    """Simulated time: real elapsed time times ``speed``, plus manual jumps.

    With ``speed=3600`` one real second is one simulated hour, so a week passes in under three
    minutes; :meth:`advance` jumps ahead at once (tests use it to reach deadlines).
    """

    speed: float = 1.0
    start: datetime = field(default_factory=lambda: datetime.now(UTC))
    _real_start: float = field(default_factory=time.monotonic)
    _offset: float = 0.0

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._real_start) * self.speed + self._offset
        return self.start + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> None:
        """Jump ``seconds`` of simulated time ahead."""
        self._offset += seconds

    @property
    def offset(self) -> float:
        """Total simulated seconds added by :meth:`advance` jumps."""
        return self._offset

    def real_seconds(self, simulated: float) -> float:
        """How many real seconds ``simulated`` seconds take at the current speed."""
        return simulated / self.speed


def iso(value: datetime) -> str:
    """The providers' time format: ``yyyy-MM-ddTHH:mm:ss.SSSZ``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Fault:
    """One injected fault.

    Attributes:
        kind: ``status`` answers ``status``/``body`` without running the handler; ``latency``
            delays the answer by ``delay`` seconds; ``lost_response`` runs the handler (the effect
            happens) and then delays the answer by ``delay`` seconds (longer than the client
            timeout) so the client never sees it; ``html_success`` runs the handler (the effect
            happens) and answers its 2xx status with an HTML maintenance page instead of its body
            (a refusal, non-2xx, is passed through unchanged).
        path: regular expression matched against the request path.
        method: HTTP method, or ``None`` for any.
        times: how many matching requests it applies to (``None``: all).
        probability: chance that a matching request is affected.
    """

    kind: FaultKind
    path: str = ".*"
    method: str | None = None
    status: int = 500
    body: Any = None
    retry_after: float | None = None
    delay: float = 0.0
    times: int | None = 1
    probability: float = 1.0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return re.fullmatch(self.path, path) is not None


@dataclass(frozen=True)
class CallRecord:
    """One request the simulator received."""

    seq: int
    method: str
    path: str
    query: str
    status: int
    body: Any
    at: datetime
    fault: str | None = None


@dataclass
class SimulatorCore:
    """Clock, faults, call record and token bookkeeping shared by one simulator instance."""

    clock: SimClock = field(default_factory=SimClock)
    faults: list[Fault] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    tokens: dict[str, datetime] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _token_life: dict[str, float] = field(default_factory=dict)  # token -> monotonic deadline
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first fault that applies to this request (consuming one of its ``times``)."""
        with self._lock:
            for fault in self.faults:
                if not fault.matches(method, path) or self.rng.random() >= fault.probability:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def record(self, request: Request, status: int, body: Any, fault: str | None = None) -> None:
        with self._lock:
            self.calls.append(
                CallRecord(
                    next(self._seq),
                    request.method,
                    request.url.path,
                    request.url.query,
                    status,
                    body,
                    self.clock.now(),
                    fault,
                )
            )

    def count(self, method: str, path_regex: str, status_ok: bool = True) -> int:
        """How many recorded calls match (by default only those answered 2xx)."""
        return sum(
            1
            for c in self.calls
            if c.method == method
            and re.fullmatch(path_regex, c.path)
            and (not status_ok or 200 <= c.status < 300)
        )

    def issue_token(self, lifetime_seconds: float) -> str:
        """A new opaque bearer token valid for ``lifetime_seconds``.

        Token lifetimes are protocol time, not business time: they run on the real clock, not at
        the simulated clock's speed nor with its :meth:`SimClock.advance` jumps, so a clock that
        makes weeks pass in seconds does not turn a 1 h token into a 20 ms one.
        :meth:`expire_tokens` expires them on demand.
        ``tokens`` maps each token to its nominal expiry (for messages and inspection).
        """
        token = f"simtok-{self.rng.getrandbits(96):024x}"
        self.tokens[token] = self.clock.now() + timedelta(seconds=lifetime_seconds)
        self._token_life[token] = time.monotonic() + lifetime_seconds
        return token

    def token_expired(self, token: str) -> bool | None:
        """``None`` for an unknown token, else whether it has expired."""
        deadline = self._token_life.get(token)
        if deadline is None:
            return None
        return time.monotonic() >= deadline

    def token_valid(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return False
        return self.token_expired(header[7:]) is False

    def expire_tokens(self) -> None:
        """Make every issued token expired (the client must re-authenticate)."""
        now = self.clock.now()
        for token in self._token_life:
            self._token_life[token] = 0.0
            self.tokens[token] = now - timedelta(seconds=1)


def paid_write_switches(sim: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Set a simulator's paid-write switches from a ``/_sim/paid-write-faults`` body
    (``listingLag`` seconds, ``duplicateReferenceStatus`` HTTP status or ``null``); returns them."""
    if "listingLag" in body:
        lag = float(body["listingLag"])
        if not 0 <= lag < float("inf"):
            raise ValueError("listingLag must be a finite number of seconds >= 0")
        sim.listing_lag = lag
    if "duplicateReferenceStatus" in body:
        status = body["duplicateReferenceStatus"]
        if status is not None and not (isinstance(status, int) and 400 <= status < 500):
            raise ValueError("duplicateReferenceStatus must be a 4xx status or null")
        sim.duplicate_reference_status = status
    return {"listingLag": sim.listing_lag, "duplicateReferenceStatus": sim.duplicate_reference_status}


Handler = Callable[[Request], Awaitable[Response]]


async def apply_faults(core: SimulatorCore, request: Request, handler: Handler) -> Response:
    """Run ``handler`` under any fault injected for this request, and record the call."""
    fault = core.take_fault(request.method, request.url.path)
    if fault is not None and fault.kind == "status":
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        response: Response = JSONResponse(
            fault.body if fault.body is not None else {"code": "UNEXPECTED_SERVER_ERROR"},
            status_code=fault.status,
            headers=headers,
        )
        core.record(request, fault.status, None, fault="status")
        return response
    if fault is not None and fault.kind == "latency":
        await asyncio.sleep(fault.delay)
    body = await _body(request)
    response = await handler(request)
    core.record(request, response.status_code, body, fault=fault.kind if fault else None)
    if fault is not None and fault.kind == "lost_response":
        await asyncio.sleep(fault.delay)
    if fault is not None and fault.kind == "html_success" and 200 <= response.status_code < 300:
        return HTMLResponse(MAINTENANCE_PAGE, status_code=response.status_code)
    return response


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")

"""Prometheus metrics of the worker, behind one injected object with intent-named methods.

Callers never touch ``prometheus_client`` directly: they call :class:`WorkerMetrics` methods that
say what happened (``message_consumed``, ``provider_request``, ...). The object owns the
:class:`~prometheus_client.CollectorRegistry` it registers into, so tests build one per test
with a fresh registry and read the result back with :meth:`WorkerMetrics.render`.

Label values are bounded: every label takes its value from a closed set (an outcome, a status, a
provider, a scheduler job kind) or from configuration (topic names), never from data such as a
request id. Methods check closed-set labels and raise :class:`ValueError` on an unknown value, so
a bug shows up as an error in tests instead of a slow cardinality explosion in production.
Free-form but code-defined labels (``operation``, dead-letter ``reason``) are checked against a
short identifier pattern for the same reason. Names follow CONTRACT §7 (binding) and Prometheus
conventions: base units (seconds), ``_total`` for counters.

Every family is registered at construction, and every series whose label values are known in
advance starts at 0 (CONTRACT §7): dead-letter reasons, outcomes, providers, statuses, scheduler
jobs and the configured topics. A series that appears only with its first event hides that event
from ``increase()``/``rate()`` and leaves dashboards blank. Series whose labels are learnt at run
time appear when first known: consumer lag (the partitions this instance is assigned), provider
calls (an operation's outcome series are all created at its first call), the oldest status age
(absent when no order is in that status) and the last successful poll (a Unix time has no neutral
value: 0 would read as "last success in 1970" and fire the stale-poll alert after every restart).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

import worker
from worker.config import TopicSettings
from worker.events.codec import DeadLetterCode
from worker.events.status import OrderStatus

#: The content type of :meth:`WorkerMetrics.render`: the classic text format 0.0.4, which every
#: Prometheus version scrapes.
CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4

PROVIDERS: Final = frozenset({"oneatlas", "up42"})
#: Orders are counted under ``auto`` while a provider-choice request has not chosen yet.
ORDER_PROVIDERS: Final = PROVIDERS | {"auto"}
ROUTING_PREFERENCES: Final = frozenset({"cheapest", "earliest", "listed"})
ROUTING_CHOSEN_BY: Final = frozenset({"worker", "command", "fallback"})
STATUSES: Final = frozenset(status.value for status in OrderStatus)
OPEN_STATUSES: Final = frozenset(status.value for status in OrderStatus if not status.terminal)
CONSUME_OUTCOMES: Final = frozenset({"accepted", "duplicate", "dead_letter", "command", "forwarded"})
#: What can become of a message on each input topic (the series pre-created per topic);
#: ``forwarded``: a keyless message re-keyed by its ``requestId`` to its own partition.
REQUEST_TOPIC_OUTCOMES: Final = ("accepted", "duplicate", "dead_letter", "forwarded")
COMMAND_TOPIC_OUTCOMES: Final = ("command", "dead_letter", "forwarded")
#: What became of one failed attempt to process an input record (an exception, not a bad
#: message): tried again, or dead-lettered ``INTERNAL_ERROR`` after the last attempt.
RECORD_FAILURE_OUTCOMES: Final = ("retried", "dead_lettered")
DEAD_LETTER_REASONS: Final = frozenset(code.value for code in DeadLetterCode)
REQUEST_OUTCOMES: Final = frozenset({"ok", "client_error", "server_error", "timeout", "rate_limited"})
REBALANCE_KINDS: Final = frozenset({"assigned", "revoked"})
SCHEDULER_JOBS: Final = frozenset({"poll", "retry", "deadline", "token_refresh", "reconcile", "deliveries"})
DECISIONS: Final = frozenset({"accept", "refuse"})
POLL_ERROR_KINDS: Final = frozenset({"read", "parse", "dispatch"})
DECIDED_BY: Final = frozenset({"policy", "command"})
BINARY_OUTCOMES: Final = ("ok", "error")
#: Topic settings that are not published to through :class:`~worker.kafka.publisher.Publisher`:
#: the inputs, and the state changelog (written by the state store, not counted as events).
_UNPUBLISHED_TOPICS: Final = frozenset({"requests", "commands", "state"})

# Operations are code-defined names ("create_order", "get_tasking"); reasons are dead-letter
# codes ("MALFORMED_JSON"). A pattern keeps ids, URLs and free text out of these labels.
_OPERATION = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_REASON = re.compile(r"^[A-Z][A-Z0-9_]{0,47}$")

#: Provider calls span a fast token refresh (~10 ms) to a slow order search near the timeout.
PROVIDER_LATENCY_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)
#: How late the health heartbeat (a 1 s timer) runs: ~0 on an idle loop; seconds mean a stretch
#: of work held the loop (and the group heartbeat) that long. Alerts read the 0.25 bucket.
LOOP_LAG_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Restoring a partition's changelog takes from milliseconds (empty) to minutes (100k orders).
RESTORE_BUCKETS: Final = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def running_version() -> str:
    """The version of the running worker: ``worker.__version__``, else the installed metadata.

    The fallback matters when ``worker`` is imported as a namespace package (an editable install
    made before ``worker/__init__.py`` existed), where ``__version__`` is not defined.
    """
    declared = getattr(worker, "__version__", None)
    return declared if isinstance(declared, str) else metadata.version("tasking-worker")


def _check(label: str, value: str, allowed: frozenset[str]) -> str:
    """Return ``value`` if it belongs to ``allowed``; raise ``ValueError`` naming the label."""
    if value not in allowed:
        raise ValueError(f"unknown {label} {value!r}; expected one of {sorted(allowed)}")
    return value


def _check_pattern(label: str, value: str, pattern: re.Pattern[str]) -> str:
    """Return ``value`` if it matches ``pattern``; raise ``ValueError`` naming the label."""
    if not pattern.fullmatch(value):
        raise ValueError(f"invalid {label} {value!r}; must match {pattern.pattern}")
    return value


def _check_topic(topic: str) -> str:
    """Topic names come from configuration; reject only what cannot be a Kafka topic."""
    if not topic or len(topic) > 249:
        raise ValueError(f"invalid topic name {topic!r}")
    return topic


class WorkerMetrics:
    """Every metric family of the worker, registered into one registry.

    Args:
        registry: where the families are registered; a fresh one by default. Registering two
            ``WorkerMetrics`` into the same registry raises ``ValueError`` (duplicate names).
        topics: the configured topic names, whose per-topic series start at 0; the contract's
            default names when omitted.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, topics: TopicSettings | None = None
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._open_order_keys: set[tuple[str, str]] = set()
        self._status_age_keys: set[tuple[str, str]] = set()
        self._known_operations: set[tuple[str, str]] = set()
        self._register_intake()
        self._register_orders()
        self._register_providers()
        self._register_runtime()
        self._build_info.labels(version=running_version()).set(1)
        self._ready.set(0)
        self._zero_known_series(topics if topics is not None else TopicSettings())

    def _zero_known_series(self, topics: TopicSettings) -> None:
        """Create, at 0, every series whose label values are known before the first event."""
        for outcome in REQUEST_TOPIC_OUTCOMES:
            self._consumed.labels(topic=_check_topic(topics.requests), outcome=outcome)
        for outcome in COMMAND_TOPIC_OUTCOMES:
            self._consumed.labels(topic=_check_topic(topics.commands), outcome=outcome)
        for name, topic in topics.model_dump().items():
            if name not in _UNPUBLISHED_TOPICS:
                self._published.labels(topic=_check_topic(topic))
        for reason in DEAD_LETTER_REASONS:
            self._dead_letters.labels(reason=reason)
        for topic in (topics.requests, topics.commands):
            for failure in RECORD_FAILURE_OUTCOMES:
                self._record_failures.labels(topic=_check_topic(topic), outcome=failure)
        for kind in REBALANCE_KINDS:
            self._rebalances.labels(kind=kind)
        for job in SCHEDULER_JOBS:
            for outcome in BINARY_OUTCOMES:
                self._scheduler_runs.labels(job=job, outcome=outcome)
        for provider in PROVIDERS:
            self._zero_provider_series(provider)
        self.set_open_orders({(provider, status): 0 for provider in PROVIDERS for status in OPEN_STATUSES})

    def _zero_provider_series(self, provider: str) -> None:
        for status in STATUSES:
            self._transitions.labels(provider=provider, status=status)
        for decision in DECISIONS:
            for decided_by in DECIDED_BY:
                self._acq_decisions.labels(provider=provider, decision=decision, decided_by=decided_by)
        for outcome in BINARY_OUTCOMES:
            self._token_renewals.labels(provider=provider, outcome=outcome)
        self._in_flight.labels(provider=provider)

    def _operation_known(self, provider: str, operation: str) -> None:
        """At the first call of an operation, create its series for every outcome at 0.

        Operations are not a closed set (each adapter names its own), so their series cannot be
        made in advance; making all outcomes at once means the first error is an increase from
        0 that ``increase()`` sees, not the birth of a series it cannot.
        """
        if (provider, operation) in self._known_operations:
            return
        for outcome in REQUEST_OUTCOMES:
            self._requests.labels(provider=provider, operation=operation, outcome=outcome)
        self._retries.labels(provider=provider, operation=operation)
        self._known_operations.add((provider, operation))

    # -- registration -----------------------------------------------------------------------

    def _register_intake(self) -> None:
        r = self.registry
        self._consumed = Counter(
            "tasking_messages_consumed",
            "Input messages handled, by topic and outcome.",
            ["topic", "outcome"],
            registry=r,
        )
        self._dead_letters = Counter(
            "tasking_dead_letters",
            "Messages sent to the dead-letter topic, by error code.",
            ["reason"],
            registry=r,
        )
        self._published = Counter(
            "tasking_events_published", "Events published, by topic.", ["topic"], registry=r
        )
        self._record_failures = Counter(
            "tasking_record_failures",
            "Failed attempts to process an input record (an exception, not a bad message), by "
            "topic and outcome: retried, or dead-lettered INTERNAL_ERROR after the last attempt.",
            ["topic", "outcome"],
            registry=r,
        )
        self._lag = Gauge(
            "tasking_consumer_lag_messages",
            "Messages between the committed/consumed position and the end of each owned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self._rebalances = Counter(
            "tasking_rebalances", "Consumer group rebalances seen, by kind.", ["kind"], registry=r
        )
        self._assigned = Gauge(
            "tasking_assigned_partitions",
            "Input partitions currently assigned to this instance.",
            registry=r,
        )

    def _register_orders(self) -> None:
        r = self.registry
        self._transitions = Counter(
            "tasking_order_transitions",
            "Order status transitions, by provider and new status.",
            ["provider", "status"],
            registry=r,
        )
        self._orders = Gauge(
            "tasking_orders",
            "Open orders owned by this instance, by provider and status.",
            ["provider", "status"],
            registry=r,
        )
        self._status_age = Gauge(
            "tasking_order_oldest_status_age_seconds",
            "Time the oldest open order has spent in its current status.",
            ["provider", "status"],
            registry=r,
        )
        self._acq_decisions = Counter(
            "tasking_acquisition_decisions",
            "Acquisitions accepted or refused by the worker's policy or by a command.",
            ["provider", "decision", "decided_by"],
            registry=r,
        )
        self._deliveries = Counter(
            "tasking_deliveries",
            "Delivered products published on the deliveries topic, by provider.",
            ["provider"],
            registry=r,
        )
        self._delivery_errors = Counter(
            "tasking_delivery_errors",
            "Delivered products (or whole delivery harvests) that could not be applied, by provider.",
            ["provider"],
            registry=r,
        )
        for provider in sorted(PROVIDERS):
            self._deliveries.labels(provider=provider)
            self._delivery_errors.labels(provider=provider)
        self._routing_choices = Counter(
            "tasking_routing_choices",
            "Offers chosen for provider-choice requests, by provider, preference and who chose.",
            ["provider", "prefer", "by"],
            registry=r,
        )
        for provider in sorted(PROVIDERS):
            for prefer in sorted(ROUTING_PREFERENCES):
                for by in sorted(ROUTING_CHOSEN_BY):
                    self._routing_choices.labels(provider=provider, prefer=prefer, by=by)
        self._restore_duration = Histogram(
            "tasking_state_restore_duration_seconds",
            "Time to restore the order state of newly assigned partitions.",
            buckets=RESTORE_BUCKETS,
            registry=r,
        )
        self._restored_records = Counter(
            "tasking_state_restored_records",
            "Changelog records read while restoring state.",
            registry=r,
        )

    def _register_providers(self) -> None:
        r = self.registry
        self._requests = Counter(
            "tasking_provider_requests",
            "Provider HTTP calls, by operation and outcome.",
            ["provider", "operation", "outcome"],
            registry=r,
        )
        self._duration = Histogram(
            "tasking_provider_request_duration_seconds",
            "Duration of provider HTTP calls.",
            ["provider", "operation"],
            buckets=PROVIDER_LATENCY_BUCKETS,
            registry=r,
        )
        self._in_flight = Gauge(
            "tasking_provider_requests_in_flight",
            "Provider HTTP calls currently running.",
            ["provider"],
            registry=r,
        )
        self._retries = Counter(
            "tasking_provider_retries",
            "Provider calls retried after a retriable failure.",
            ["provider", "operation"],
            registry=r,
        )
        self._last_poll = Gauge(
            "tasking_provider_last_successful_poll_timestamp_seconds",
            "Unix time of the last tracking poll that completed without error.",
            ["provider"],
            registry=r,
        )
        self._poll_errors = Counter(
            "tasking_poll_errors",
            "Tracking failures of single orders (their own reads, the parsing of their snapshot,"
            " the step applying it), by provider and kind; a failed listing is not counted here.",
            ["provider", "kind"],
            registry=r,
        )
        self._tracking_errors = Gauge(
            "tasking_tracking_error_orders",
            "Orders whose tracking failed the configured number of times in a row and has not"
            " recovered (each was published with reason TRACKING_ERROR).",
            ["provider"],
            registry=r,
        )
        for provider in sorted(PROVIDERS):
            self._tracking_errors.labels(provider=provider).set(0)
            for kind in sorted(POLL_ERROR_KINDS):
                self._poll_errors.labels(provider=provider, kind=kind)
        self._token_renewals = Counter(
            "tasking_token_renewals",
            "Access token renewals, by outcome.",
            ["provider", "outcome"],
            registry=r,
        )

    def _register_runtime(self) -> None:
        r = self.registry
        self._build_info = Gauge(
            "tasking_build_info",
            "Always 1; the version of the running worker.",
            ["version"],
            registry=r,
        )
        self._scheduler_runs = Counter(
            "tasking_scheduler_job_runs",
            "Timer job runs, by job kind and outcome.",
            ["job", "outcome"],
            registry=r,
        )
        self._ready = Gauge(
            "tasking_ready",
            "1 when the instance is ready (partitions assigned and restored).",
            registry=r,
        )
        self._loop_lag = Histogram(
            "tasking_event_loop_lag_seconds",
            "How late the event loop ran a 1 s timer (the health heartbeat): work that held the loop.",
            buckets=LOOP_LAG_BUCKETS,
            registry=r,
        )

    # -- intake -----------------------------------------------------------------------------

    def message_consumed(self, topic: str, outcome: str) -> None:
        """Count one input message by what became of it (``accepted``, ``duplicate``, ...)."""
        _check("outcome", outcome, CONSUME_OUTCOMES)
        self._consumed.labels(topic=_check_topic(topic), outcome=outcome).inc()

    def dead_letter(self, reason: str) -> None:
        """Count one dead-lettered message by its error code (e.g. ``MALFORMED_JSON``)."""
        self._dead_letters.labels(reason=_check_pattern("reason", reason, _REASON)).inc()

    def record_failed(self, topic: str, *, given_up: bool) -> None:
        """Count one failed attempt to process a record of ``topic``: ``given_up`` when it was
        the last one (the record is dead-lettered ``INTERNAL_ERROR`` and its partition goes on)."""
        outcome = "dead_lettered" if given_up else "retried"
        self._record_failures.labels(topic=_check_topic(topic), outcome=outcome).inc()

    def event_published(self, topic: str) -> None:
        """Count one event published to ``topic``."""
        self._published.labels(topic=_check_topic(topic)).inc()

    def set_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        """Record the lag of one owned partition (negative values are clamped to 0)."""
        self._lag.labels(topic=_check_topic(topic), partition=str(partition)).set(max(lag, 0))

    def clear_consumer_lag(self, topic: str, partition: int) -> None:
        """Forget a partition's lag when it is revoked, so a stale value is not reported."""
        with contextlib.suppress(KeyError):  # never reported: nothing to forget
            self._lag.remove(topic, str(partition))

    def rebalance(self, kind: str, assigned_partitions: int) -> None:
        """Count a rebalance (``assigned`` or ``revoked``) and record the new assignment size."""
        self._rebalances.labels(kind=_check("kind", kind, REBALANCE_KINDS)).inc()
        self._assigned.set(assigned_partitions)

    def restore_finished(self, duration_seconds: float, records: int) -> None:
        """Record one state restore: how long it took and how many changelog records it read."""
        self._restore_duration.observe(duration_seconds)
        self._restored_records.inc(records)

    # -- orders -----------------------------------------------------------------------------

    def order_transition(self, provider: str, status: str) -> None:
        """Count one transition of an order into ``status``."""
        self._transitions.labels(
            provider=_check("provider", provider, ORDER_PROVIDERS),
            status=_check("status", status, STATUSES),
        ).inc()

    def set_open_orders(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace the open-order gauge with ``{(provider, status): count}``.

        Series present before but absent from ``counts`` are set to 0, so a dashboard sees a
        status empty out instead of a series vanishing mid-graph.
        """
        self._replace(self._orders, self._open_order_keys, counts)

    def set_status_ages(self, ages: Mapping[tuple[str, str], float]) -> None:
        """Replace the oldest-status-age gauge with ``{(provider, status): seconds}``.

        Series absent from ``ages`` are removed (an empty status has no oldest order; a 0 would
        read as "fresh" and hide nothing, but removing is the honest answer).
        """
        keys = self._validated_keys(ages)
        for provider, status in self._status_age_keys - keys:
            self._status_age.remove(provider, status)
        for (provider, status), age in ages.items():
            self._status_age.labels(provider=provider, status=status).set(max(age, 0.0))
        self._status_age_keys = keys

    def acquisition_decision(self, provider: str, decision: str, decided_by: str) -> None:
        """Count an acquisition accepted/refused by the worker's ``policy`` or a ``command``."""
        self._acq_decisions.labels(
            provider=_check("provider", provider, PROVIDERS),
            decision=_check("decision", decision, DECISIONS),
            decided_by=_check("decided_by", decided_by, DECIDED_BY),
        ).inc()

    def delivery_published(self, provider: str, n: int = 1) -> None:
        """Count ``n`` delivered products published for ``provider``."""
        self._deliveries.labels(provider=_check("provider", provider, PROVIDERS)).inc(n)

    def delivery_error(self, provider: str) -> None:
        """Count a product (or a harvest) of ``provider`` that could not be applied."""
        self._delivery_errors.labels(provider=_check("provider", provider, PROVIDERS)).inc()

    def routing_choice(self, provider: str, prefer: str, by: str) -> None:
        """Count an offer chosen for a provider-choice request (by the ``worker``, a ``command``
        or a ``fallback`` after a refusal)."""
        self._routing_choices.labels(
            provider=_check("provider", provider, PROVIDERS),
            prefer=_check("prefer", prefer, ROUTING_PREFERENCES),
            by=_check("by", by, ROUTING_CHOSEN_BY),
        ).inc()

    def _validated_keys(self, values: Mapping[tuple[str, str], float]) -> set[tuple[str, str]]:
        for provider, status in values:
            _check("provider", provider, ORDER_PROVIDERS)
            _check("status", status, STATUSES)
        return set(values)

    def _replace(
        self, gauge: Gauge, known: set[tuple[str, str]], values: Mapping[tuple[str, str], float]
    ) -> None:
        keys = self._validated_keys(values)
        for provider, status in known - keys:
            gauge.labels(provider=provider, status=status).set(0)
        for (provider, status), value in values.items():
            gauge.labels(provider=provider, status=status).set(value)
        known |= keys

    # -- providers --------------------------------------------------------------------------

    def provider_request(self, provider: str, operation: str, outcome: str, duration_seconds: float) -> None:
        """Record one finished provider call: its outcome and how long it took."""
        _check("provider", provider, PROVIDERS)
        _check_pattern("operation", operation, _OPERATION)
        _check("outcome", outcome, REQUEST_OUTCOMES)
        self._operation_known(provider, operation)
        self._requests.labels(provider=provider, operation=operation, outcome=outcome).inc()
        self._duration.labels(provider=provider, operation=operation).observe(duration_seconds)

    @contextmanager
    def provider_in_flight(self, provider: str) -> Iterator[None]:
        """Count a provider call as running for the duration of the ``with`` block."""
        gauge = self._in_flight.labels(provider=_check("provider", provider, PROVIDERS))
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def provider_retry(self, provider: str, operation: str) -> None:
        """Count one retry of a provider call."""
        _check("provider", provider, PROVIDERS)
        _check_pattern("operation", operation, _OPERATION)
        self._operation_known(provider, operation)
        self._retries.labels(provider=provider, operation=operation).inc()

    def poll_succeeded(self, provider: str, *, at: float | None = None) -> None:
        """Record that a tracking poll of ``provider`` completed (now, or at Unix time ``at``)."""
        self._last_poll.labels(provider=_check("provider", provider, PROVIDERS)).set(
            time.time() if at is None else at
        )

    def poll_error(self, provider: str, kind: str) -> None:
        """Count one failure to track a single order (``read``, ``parse`` or ``dispatch``)."""
        self._poll_errors.labels(
            provider=_check("provider", provider, PROVIDERS), kind=_check("kind", kind, POLL_ERROR_KINDS)
        ).inc()

    def set_tracking_errors(self, provider: str, orders: int) -> None:
        """How many orders of ``provider`` are currently reported with ``TRACKING_ERROR``."""
        self._tracking_errors.labels(provider=_check("provider", provider, PROVIDERS)).set(orders)

    def token_renewed(self, provider: str, ok: bool) -> None:
        """Count one access-token renewal attempt."""
        self._token_renewals.labels(
            provider=_check("provider", provider, PROVIDERS), outcome="ok" if ok else "error"
        ).inc()

    # -- runtime ----------------------------------------------------------------------------

    def scheduler_job(self, job: str, ok: bool) -> None:
        """Count one run of a timer job kind (``poll``, ``retry``, ...) by outcome."""
        self._scheduler_runs.labels(
            job=_check("job", job, SCHEDULER_JOBS), outcome="ok" if ok else "error"
        ).inc()

    def event_loop_lag(self, seconds: float) -> None:
        """Record how late a timer of the event loop fired (negative values count as 0)."""
        self._loop_lag.observe(max(0.0, seconds))

    def set_ready(self, ready: bool) -> None:
        """Mirror the readiness of the instance (1 ready, 0 not)."""
        self._ready.set(1 if ready else 0)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format (see :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)

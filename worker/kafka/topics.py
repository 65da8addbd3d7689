"""The contract topics, checked before any work (and created when the worker is asked to).

Before the worker joins its group, and in ``tasking-worker check``, :func:`inspect_layout` reads
the metadata of every topic (one all-topics metadata request: asking for a topic by name would
let a cluster with ``auto.create.topics.enable`` create it) and, where the cluster answers
``DescribeConfigs``, the state topic's ``cleanup.policy``. :func:`layout_checks` turns that into
one :class:`Check` per rule:

* every contract topic exists (when topic creation is off; with it on, missing ones are created
  first, co-partitioned, the state topic compacted);
* requests, commands and state have the same partition count: the range assignor then gives one
  instance the same partition numbers of each, which is what makes one owner per request;
* the state topic is compacted (``cleanup.policy`` contains ``compact``): a deleting policy
  would lose the state of old orders, so duplicates would be ordered again.

While running, :class:`LayoutWatch` reads the partition counts again; a change (partitions added
to the requests topic, say) stops the worker taking work, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from worker.config import KafkaSettings, TopicSettings
from worker.errors import TopicLayoutError
from worker.kafka.security import client_options

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Check:
    """One verdict: ``name`` says what was checked, ``detail`` what was found (or what is wrong)."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass
class TopicLayout:
    """What the cluster says: partition count per existing topic, ``cleanup.policy`` of the state
    topic when readable (``None``: the cluster does not answer DescribeConfigs)."""

    partitions: dict[str, int] = field(default_factory=dict)
    state_cleanup_policy: str | None = None


def admin_client(kafka: KafkaSettings) -> AIOKafkaAdminClient:
    """An admin client with the process's security settings (TLS, SASL, OAUTHBEARER)."""
    return AIOKafkaAdminClient(request_timeout_ms=15_000, **client_options(kafka))


async def inspect_layout(admin: AIOKafkaAdminClient, topics: TopicSettings) -> TopicLayout:
    """Partition counts of the contract topics that exist, and the state topic's cleanup policy.

    Raises:
        KafkaError: when the metadata cannot be read.
    """
    wanted = set(topics.all())
    described = await admin.describe_topics(None)  # all topics: never auto-creates
    layout = TopicLayout(
        partitions={t["topic"]: len(t["partitions"]) for t in described if t["topic"] in wanted}
    )
    if topics.state in layout.partitions:
        layout.state_cleanup_policy = await _cleanup_policy(admin, topics.state)
    return layout


async def _cleanup_policy(admin: AIOKafkaAdminClient, topic: str) -> str | None:
    """The topic's ``cleanup.policy`` (``delete`` when the cluster lists no value: Kafka's
    default), or ``None`` when the cluster does not answer DescribeConfigs."""
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    except (KafkaError, AttributeError, ValueError) as exc:  # not supported, or not authorised
        log.info("topic_configs_unreadable", topic=topic, error=type(exc).__name__)
        return None
    for response in responses:
        for resource in response.resources:
            error_code, entries = resource[0], resource[4]
            if error_code != 0:
                return None
            for entry in entries:
                if entry[0] == "cleanup.policy":
                    return str(entry[1])
    return "delete"


def layout_checks(layout: TopicLayout, topics: TopicSettings, *, create_topics: bool) -> list[Check]:
    """One check per rule (module docstring), in a stable order."""
    missing = [t for t in topics.all() if t not in layout.partitions]
    checks = [
        Check(
            "topics exist",
            not missing or create_topics,
            f"missing: {', '.join(missing)}"
            + (
                " (to be created)"
                if create_topics
                else " (create them, or set TASKING_KAFKA__CREATE_TOPICS=true)"
            )
            if missing
            else f"all {len(topics.all())} contract topics present",
        )
    ]
    counts = {t: layout.partitions.get(t) for t in (topics.requests, topics.commands, topics.state)}
    known = {t: n for t, n in counts.items() if n is not None}
    same = len(set(known.values())) <= 1
    shown = ", ".join(f"{t}={n}" for t, n in known.items())
    checks.append(
        Check(
            "co-partitioned",
            same,
            f"{shown}"
            if same
            else f"partition counts differ: {shown} (requests, commands and state must match)",
        )
    )
    policy = layout.state_cleanup_policy
    if topics.state not in layout.partitions:
        compacted = Check("state compacted", create_topics, f"{topics.state} does not exist")
    elif policy is None:
        compacted = Check(
            "state compacted", True, f"{topics.state}: cleanup.policy not readable (not checked)"
        )
    else:
        is_compact = "compact" in policy.split(",")
        compacted = Check(
            "state compacted",
            is_compact,
            f"{topics.state}: cleanup.policy={policy}" + ("" if is_compact else " (must contain compact)"),
        )
    checks.append(compacted)
    return checks


def failure_message(checks: Iterable[Check]) -> str | None:
    """One line naming every failed check and what is wrong, or ``None`` when all passed."""
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    return "contract topics not usable: " + "; ".join(failed) if failed else None


async def ensure_topics(kafka: KafkaSettings, topics: TopicSettings) -> TopicLayout:
    """The start-up check: create missing topics when asked, then verify the layout.

    Returns the verified layout (the partition counts the running worker watches).

    Raises:
        TopicLayoutError: one message naming the topics and what is wrong.
        KafkaError: when the cluster cannot be read.
    """
    admin = admin_client(kafka)
    await admin.start()
    try:
        layout = await inspect_layout(admin, topics)
        if kafka.create_topics:
            created = await _create_missing(admin, kafka, topics, layout)
            if created:
                log.info("topics_created", topics=created)
                layout = await inspect_layout(admin, topics)
        message = failure_message(layout_checks(layout, topics, create_topics=False))
        if message is not None:
            raise TopicLayoutError(message)
        return layout
    finally:
        await admin.close()


async def _create_missing(
    admin: AIOKafkaAdminClient, kafka: KafkaSettings, topics: TopicSettings, layout: TopicLayout
) -> list[str]:
    """Create the contract topics that do not exist: co-partitioned with an existing input topic
    when there is one (else ``TASKING_KAFKA__PARTITIONS``), the state topic compacted."""
    missing = [t for t in topics.all() if t not in layout.partitions]
    if not missing:
        return []
    inputs = [
        layout.partitions[t]
        for t in (topics.requests, topics.commands, topics.state)
        if t in layout.partitions
    ]
    partitions = inputs[0] if inputs else kafka.partitions
    compact: dict[str, Any] = {"cleanup.policy": "compact"}
    await admin.create_topics(
        [
            NewTopic(
                t, partitions, kafka.replication_factor, topic_configs=compact if t == topics.state else None
            )
            for t in missing
        ]
    )
    return missing


@dataclass
class LayoutWatch:
    """Re-reads the partition counts of the co-partitioned topics while the worker runs.

    :meth:`changed` answers the reason to stop taking work when a count differs from the one
    verified at start (partitions added to one topic break the co-partitioning), else ``None``.
    """

    kafka: KafkaSettings
    topics: TopicSettings
    expected: dict[str, int]

    async def changed(self) -> str | None:
        """Raises KafkaError when the metadata cannot be read (the caller tries again later)."""
        admin = admin_client(self.kafka)
        await admin.start()
        try:
            layout = await inspect_layout(admin, self.topics)
        finally:
            await admin.close()
        return self.compare(layout)

    def compare(self, layout: TopicLayout) -> str | None:
        moved = [
            f"{t} {n} -> {layout.partitions.get(t, 'missing')}"
            for t, n in self.expected.items()
            if layout.partitions.get(t) != n
        ]
        if not moved:
            return None
        return "partition counts changed while running: " + ", ".join(moved) + " (co-partitioning broken)"

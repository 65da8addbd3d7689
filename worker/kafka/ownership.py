"""Ownership fence: is this instance still the owner of an order's partition?

An instance whose process was frozen (``SIGSTOP``, a VM pause, a long GC) or cut off from Kafka
longer than its session timeout has been removed from the consumer group, and its partitions
given to another instance, before it notices. When it wakes up, its timers, poll cycles and
queued provider calls still run for orders that are now someone else's. Two checks stop it:

* :meth:`GroupOwnership.confirm` asks the broker: it commits the partition's last committed
  input offset again, under the member's current group generation. The broker refuses the
  commit (``IllegalGeneration``, ``UnknownMemberId``, ``RebalanceInProgress``: aiokafka raises
  ``CommitFailedError``) when the member is no longer in the generation that owns the
  partition. The runner calls it right before every paid call (placing an order, accepting a
  quotation, choosing an option, deciding an acquisition).
* :meth:`GroupOwnership.holds` is a local lease, for every state write: a confirmation (or an
  intake commit) sent at ``t`` proves membership at ``t``; since the same process heartbeats
  every ``session_timeout / 4``, the member cannot have been evicted before ``t + session_timeout
  / 2`` unless its heartbeats stopped too, and a frozen process's monotonic clock runs on, so a
  woken instance always finds its lease expired and asks the broker again before writing.

The offset committed by a confirmation is the last one this instance committed for the
partition (or the committed one read from the broker, or the log start when there is none), and
confirmations share one lock with the intake's batch commits, so a confirmation never moves the
group's position backwards past a batch commit nor forwards past an unprocessed record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = structlog.get_logger(__name__)


class Ownership(Protocol):
    """What the runner asks before it writes state or sends a paid call."""

    def holds(self, partition: int) -> bool:
        """Local, no I/O: whether a recent confirmation still covers writes to ``partition``."""
        ...

    async def confirm(self, partition: int, fresh: bool = True) -> bool:
        """Ask the broker whether this instance owns ``partition`` now. Never raises.

        ``fresh=False`` accepts a lease renewed by a concurrent confirmation meanwhile (writers
        that found the lease expired at the same time share one round trip)."""
        ...


class Unfenced:
    """The fence of an instance that is not in a consumer group (tools, unit tests)."""

    def holds(self, partition: int) -> bool:
        return True

    async def confirm(self, partition: int, fresh: bool = True) -> bool:
        return True


@dataclass
class GroupOwnership:
    """The fence of a consumer-group member (see the module docstring).

    Args:
        consumer: the intake's consumer (its generation is the one checked).
        topic: the input topic whose partition offsets are committed (the requests topic).
        session_timeout: the consumer's session timeout in seconds (the lease lasts half of it).
        timeout: the bound of one confirmation round trip; a slower broker means "not confirmed".
    """

    consumer: AIOKafkaConsumer
    topic: str
    session_timeout: float
    timeout: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _offsets: dict[TopicPartition, int] = field(default_factory=dict)
    _lease_until: float = 0.0
    _confirmed_sent: float = float("-inf")  # send time of the last commit the broker accepted
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def holds(self, partition: int) -> bool:
        return self.clock() < self._lease_until and self._tp(partition) in self.consumer.assignment()

    async def confirm(self, partition: int, fresh: bool = True) -> bool:
        """See :class:`Ownership`. Confirmations asked at the same time share one round trip: a
        commit the broker accepted that was *sent after* this confirmation was asked proves the
        membership at a later moment than a commit of its own would."""
        tp = self._tp(partition)
        asked = self.clock()
        try:
            async with asyncio.timeout(self.timeout), self._lock:
                if tp not in self.consumer.assignment():
                    return self._lost(partition, "not_assigned")
                if self._confirmed_sent >= asked or (not fresh and self.holds(partition)):
                    return True
                offset = self._offsets.get(tp)
                if offset is None:
                    offset = await self._committed(tp)
                sent = self.clock()
                await self.consumer.commit({tp: offset})
                self._offsets[tp] = offset
                self._renew(sent)
                return True
        except (KafkaError, TimeoutError) as exc:
            return self._lost(partition, type(exc).__name__)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit the intake's processed offsets (same lock as the confirmations).

        Raises:
            KafkaError: as ``AIOKafkaConsumer.commit`` (``CommitFailedError`` when the member
                left the generation).
        """
        async with self._lock:
            sent = self.clock()
            try:
                await self.consumer.commit(offsets)
            except KafkaError:
                self._lease_until = 0.0
                self._confirmed_sent = float("-inf")
                raise
            self._offsets.update(offsets)
            self._renew(sent)

    def generation(self) -> int:
        """The member's current group generation (-1 before it joined or once reset)."""
        coordinator = getattr(self.consumer, "_coordinator", None)
        return int(getattr(coordinator, "generation", -1))

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop what is known of revoked partitions: the next owner commits from there on."""
        for partition in partitions:
            for tp in [tp for tp in self._offsets if tp.partition == partition]:
                del self._offsets[tp]
        self._lease_until = 0.0  # a rebalance: writes wait for a confirmation of the new generation
        self._confirmed_sent = float("-inf")

    def _renew(self, sent: float) -> None:
        self._confirmed_sent = max(self._confirmed_sent, sent)
        self._lease_until = max(self._lease_until, sent + self.session_timeout / 2)

    def _lost(self, partition: int, why: str) -> bool:
        self._lease_until = 0.0
        self._confirmed_sent = float("-inf")
        log.warning("ownership_not_confirmed", partition=partition, why=why)
        return False

    async def _committed(self, tp: TopicPartition) -> int:
        committed = await self.consumer.committed(tp)
        if committed is not None:
            return int(committed)
        start = await self.consumer.beginning_offsets([tp])
        return int(start[tp])

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.topic, partition)


__all__ = ["GroupOwnership", "Ownership", "Unfenced"]

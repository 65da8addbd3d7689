"""Test facility: kill this process at a named point of the paid step (reliability suite only).

Inert unless the environment variable ``TASKING_TEST_CRASH_AT`` is set (read once, at import).
It is not part of the configuration contract and is never set in production; the reliability
suite (``tests/reliability/test_crash_boundaries.py``) sets it on a child worker to crash it at a
deterministic boundary, then restarts a worker without it and checks that nothing was lost or
ordered twice.

When the variable names a point that is reached, the process writes one JSON line
``{"event": "test_crash_point", "point": ...}`` to stdout (so the test can prove where it died) and
sends itself ``SIGKILL``: no ``finally`` block, no producer flush, no group leave, exactly like a
machine that loses power.

Points (``<where>:<detail>``; the variable may name the full point or only ``<where>``):

* ``before_intent_persist:<intent>`` / ``after_intent_persist:<intent>``: around the changelog
  write of the state that first records a paid or irreversible intent (``place_order``,
  ``accept_quotation``, ...), i.e. before and after "the intent is durable";
* ``after_call_returned:<op>``: the provider answered a write (``place_order``, ...), its result
  is not yet written to the state;
* ``before_result_persist:<intent>`` / ``after_result_persist:<intent>``: around the changelog
  write of the state that records the outcome of that write (before its status is published);
* ``before_commit`` / ``after_commit``: around the intake's offset commit of a batch;
* ``after_forward``: a keyless input record was forwarded under its ``requestId``, its offset is
  not yet committed.
* ``after_segment_persist``: a segment of finished orders is acknowledged and its single
  records are not yet tombstoned (``StateStore.fold_finished``).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import orjson

ENV_VARIABLE = "TASKING_TEST_CRASH_AT"
_TARGET: str | None = os.environ.get(ENV_VARIABLE) or None
#: A second facility of the same kind: an input record whose value contains this text makes its
#: processing raise (a poison record, for the intake's bounded retries). Inert when unset.
POISON_VARIABLE = "TASKING_TEST_POISON_MARK"
_POISON: bytes | None = (os.environ.get(POISON_VARIABLE) or "").encode() or None


#: A third: while the file this variable names exists, every write to the state changelog fails
#: as a broker timeout would (the other topics keep working). Inert when unset.
STATE_OUTAGE_VARIABLE = "TASKING_TEST_FAIL_STATE_WRITES_WHILE"
_STATE_OUTAGE: str | None = os.environ.get(STATE_OUTAGE_VARIABLE) or None


def state_writes_failing() -> bool:
    """Whether the configured state-write outage is on (its file exists)."""
    return _STATE_OUTAGE is not None and os.path.exists(_STATE_OUTAGE)


class PoisonRecord(RuntimeError):
    """Raised for a record carrying the poison mark (test facility only)."""


def poisoned(value: bytes | None) -> None:
    """Raise :class:`PoisonRecord` when ``value`` carries the configured poison mark."""
    if _POISON is not None and value is not None and _POISON in value:
        raise PoisonRecord("test poison record")


#: Freeze instead of kill: ``TASKING_TEST_FREEZE_AT=<point>:<seconds>`` blocks the whole process
#: (event loop, group heartbeats) that long the first time ``<point>`` is reached, as a
#: ``SIGSTOP`` at that exact point would. Inert when unset.
FREEZE_VARIABLE = "TASKING_TEST_FREEZE_AT"
_FREEZE: list[str] = (os.environ.get(FREEZE_VARIABLE) or "").rsplit(":", 1)


def armed() -> bool:
    """Whether a crash point is configured (callers skip computing point names otherwise)."""
    return _TARGET is not None


def reached(point: str | None) -> None:
    """Kill the process if ``point`` is the configured one (or its ``<where>`` prefix); freeze
    it if ``point`` is the configured freeze point (once)."""
    if point is not None and len(_FREEZE) == 2 and point == _FREEZE[0]:
        seconds = float(_FREEZE.pop())
        sys.stdout.write(orjson.dumps({"event": "test_freeze_point", "point": point}).decode() + "\n")
        sys.stdout.flush()
        time.sleep(seconds)  # blocking on purpose: nothing of the process runs meanwhile
    if _TARGET is None or point is None:
        return
    if point != _TARGET and point.split(":", 1)[0] != _TARGET:
        return
    sys.stdout.write(orjson.dumps({"event": "test_crash_point", "point": point}).decode() + "\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

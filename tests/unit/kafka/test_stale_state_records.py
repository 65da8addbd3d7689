"""The restore ignores a changelog record written in an older group generation than one already
read for its key: a write queued by an instance that was then frozen lands after the next
owner's writes, and must not win over them (``StateStore`` restore, ``_apply``)."""

from __future__ import annotations

from worker.kafka.stateentries import GENERATION_HEADER, _apply, _stale


def header(generation: int) -> list[tuple[str, bytes]]:
    return [(GENERATION_HEADER, str(generation).encode())]


def test_an_older_generation_after_a_newer_one_is_stale() -> None:
    seen: dict[str, int] = {}
    assert not _stale("r-1", header(4), seen)
    assert not _stale("r-1", header(4), seen)  # the same owner's next write
    assert not _stale("r-1", header(6), seen)  # the next owner
    assert _stale("r-1", header(4), seen)  # the frozen owner's write, landed late
    assert not _stale("r-2", header(4), seen)  # per key
    assert not _stale("r-1", [], seen)  # records of older versions carry no header


def test_a_stale_record_does_not_replace_the_newer_entry() -> None:
    entries: dict[str, object] = {}
    seen: dict[str, int] = {}
    _apply(entries, b"r-1", None, header(6), seen)  # type: ignore[arg-type]
    entries["r-1"] = "newer"
    _apply(entries, b"r-1", None, header(4), seen)  # type: ignore[arg-type]  # stale tombstone
    assert entries == {"r-1": "newer"}
    _apply(entries, b"r-1", None, header(7), seen)  # type: ignore[arg-type]
    assert entries == {}

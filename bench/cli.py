"""Start time of the command line: ``tasking-worker --help`` and the read-only commands, each as
the median wall time of a fresh interpreter over several runs, beside a bare interpreter start
(``python -c pass``) measured in the same runs.

A read-only command's *start* is everything it does before its first network call, as the
command does it: reading the ``TASKING_*`` settings, building the Kafka client options from them,
and importing what it needs (``status``: asyncio, the Kafka client, the reader, and the event
models and display it prints the found event with; ``download``'s planning: the delivery command,
which finds the items on the deliveries topic, without the transfer's modules, imported once
there is something to download). Every case also builds the command line (``worker.cli``). The
commands import their modules when they run, so ``--help`` pays for none of it; ``--help`` is
click's plain help, so it imports no rich either.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

_MAIN = "from worker.cli import main; main()"
CASES: dict[str, list[str]] = {
    "tasking-worker --help": ["-c", _MAIN, "--help"],
    "tasking-worker status --help": ["-c", _MAIN, "status", "--help"],
    "status: start (settings, Kafka options, client, reader, models)": [
        "-c",
        "import worker.cli.base as c; s = c._settings(); c._kafka_kwargs(s.kafka, None); "
        "import asyncio, aiokafka, worker.kafka.reader, worker.events.models, worker.display",
    ],
    "download: start of its planning (settings, Kafka options, delivery command)": [
        "-c",
        "import worker.cli.base as c; s = c._settings(); c._kafka_kwargs(s.kafka, None); "
        "import asyncio, worker.delivery.command",
    ],
}


@dataclass
class StartResult:
    bare: float  # median seconds of ``python -c pass``
    cases: dict[str, float]  # name -> median seconds


def _wall(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True)
    return time.perf_counter() - started


def measure(runs: int = 5) -> StartResult:
    """Median of ``runs`` starts of each case, interleaved with the bare starts (a loaded
    machine slows both alike)."""
    bare: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(runs):
        bare.append(_wall(["-c", "pass"]))
        for name, args in CASES.items():
            times[name].append(_wall(args))
    return StartResult(statistics.median(bare), {n: statistics.median(t) for n, t in times.items()})

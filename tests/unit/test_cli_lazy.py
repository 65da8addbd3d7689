"""The command line imports per command: ``--help`` loads neither Kafka, nor the models, nor the
service (structure only; the start time itself is printed by ``make bench``, section cli)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from worker.cli import local
from worker.demo import samples

# Modules any of which would mean that the help pays for work it does not do. (A command's own
# ``--help`` imports pydantic: typer's parameter adapters need it.)
HEAVY = ("aiokafka", "shapely", "httpx", "worker.config", "worker.events", "worker.app", "asyncio")

PROBE = """
import sys
sys.argv = ["tasking-worker", *sys.argv[1:]]
from worker.cli import main
try:
    main()
except SystemExit:
    pass
print("\\nMODULES", " ".join(sorted(sys.modules)))
"""


def _modules_after(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, check=True
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("MODULES "))
    return set(line.split()[1:])


def _heavy(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in names))


def test_help_imports_nothing_heavy() -> None:
    loaded = _modules_after("--help")
    assert "typer" in loaded  # the probe did run the command line
    assert _heavy(loaded, (*HEAVY, "pydantic")) == []


@pytest.mark.parametrize("command", ["status", "download", "run", "submit", "tail"])
def test_command_help_imports_nothing_heavy(command: str) -> None:
    loaded = _modules_after(command, "--help")
    assert "typer" in loaded
    assert _heavy(loaded, HEAVY) == []


def test_schemas_check_imports_what_it_needs() -> None:
    # A command still finds its modules: they are imported when it runs.
    loaded = _modules_after("schemas", "--check", "--out", "schemas")
    assert "worker.events.schemas" in loaded
    assert "aiokafka" not in loaded


def test_demo_defaults_match_the_demo() -> None:
    assert (local.DEMO_TIMEOUT, local.DEMO_SPEED) == (samples.DEFAULT_TIMEOUT, samples.DEFAULT_SPEED)

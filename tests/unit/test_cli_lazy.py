"""The command line imports per command: ``--help`` loads neither Kafka, nor the models, nor the
service, nor rich; a read-only command loads what it reads with, not what the service or a
transfer needs (structure only; the start time itself is printed by ``make bench``, section cli)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from worker.cli import local
from worker.demo import samples

# Modules any of which would mean that the help pays for work it does not do.
HEAVY = ("aiokafka", "shapely", "httpx", "worker.config", "worker.events", "worker.app", "asyncio")

# What typer's rich help format would import: ``--help`` is click's plain format.
RICH = ("rich", "markdown_it", "pygments")

# The geometry libraries: loaded when an AOI is validated or a delivered geometry is built, not
# when a model module is imported.
GEOMETRY = ("shapely", "antimeridian", "numpy")

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
    assert _heavy(loaded, (*HEAVY, *RICH, "pydantic")) == []


@pytest.mark.parametrize(
    "command", ["status", "download", "run", "submit", "tail", "check", "stac collections"]
)
def test_command_help_imports_nothing_heavy(command: str) -> None:
    # pydantic too: the group's own --help flag is False when not given, not a None that typer
    # would coerce through a pydantic adapter.
    loaded = _modules_after(*command.split(), "--help")
    assert "typer" in loaded
    assert _heavy(loaded, (*HEAVY, *RICH, "pydantic")) == []


def _modules_of(code: str) -> set[str]:
    """The modules loaded by a fresh interpreter after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(done.stdout.split())


def test_the_models_do_not_import_the_geometry_libraries() -> None:
    loaded = _modules_of("import worker.events.models")
    assert "worker.events.geometry" in loaded  # the AOI rules are there, their libraries are not
    assert _heavy(loaded, GEOMETRY) == []


def test_a_geometry_check_imports_the_geometry_libraries() -> None:
    loaded = _modules_of(
        "from worker.events.geometry import validate_polygon_rings as v\n"
        "v([[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]])"
    )
    assert "shapely" in loaded


def test_kafka_client_options_import_no_http_client_nor_logging() -> None:
    # status, tail and download build their client options; only OAUTHBEARER's token fetch needs
    # httpx (and logs with structlog).
    loaded = _modules_of(
        "from worker.config import load_settings\n"
        "from worker.kafka.security import client_options\n"
        "client_options(load_settings().kafka)"
    )
    assert "aiokafka" in loaded
    assert _heavy(loaded, ("httpx", "structlog", "worker.kafka.publisher", "worker.domain")) == []


def test_download_planning_imports_no_transfer_modules() -> None:
    loaded = _modules_of("import worker.delivery.command")
    assert "worker.delivery.source" in loaded
    transfer = ("httpx", "rich", "pystac", "multihash", "worker.delivery.download", "worker.events")
    assert _heavy(loaded, (*transfer, *GEOMETRY)) == []


def test_schemas_check_imports_what_it_needs() -> None:
    # A command still finds its modules: they are imported when it runs.
    loaded = _modules_after("schemas", "--check", "--out", "schemas")
    assert "worker.events.schemas" in loaded
    assert "aiokafka" not in loaded


def test_demo_defaults_match_the_demo() -> None:
    assert (local.DEMO_TIMEOUT, local.DEMO_SPEED) == (samples.DEFAULT_TIMEOUT, samples.DEFAULT_SPEED)

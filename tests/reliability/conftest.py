"""Fixtures of the reliability suite (sizes live in ``reliability_sizes``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from reliability_sizes import DEFAULT, SOAK, Sizes


@pytest.fixture(scope="session")
def sizes() -> Sizes:
    return DEFAULT


@pytest.fixture(scope="session")
def soak_sizes() -> Sizes:
    return SOAK


@pytest.fixture
def log_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Where worker process logs go: ``RELIABILITY_LOG_DIR/<test>`` when set (kept for a
    post-mortem), else the test's temporary directory."""
    base = os.environ.get("RELIABILITY_LOG_DIR", "").strip()
    if not base:
        return tmp_path
    path = Path(base) / f"{request.node.name}-{time.strftime('%H%M%S')}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path

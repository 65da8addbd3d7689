"""Fixtures of the operability tests: the promtool binary, and paths to the chart."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .support import PROMTOOL_INSTALL_HINT


@pytest.fixture(scope="session")
def promtool() -> Path:
    """The promtool binary; missing promtool fails under ``CI`` and skips elsewhere."""
    found = shutil.which("promtool")
    if found is None:
        message = f"promtool is not installed; install it with: {PROMTOOL_INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Path(found)

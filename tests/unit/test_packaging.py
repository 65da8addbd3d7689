"""Package metadata: the licence is an SPDX expression (PEP 639), with a build backend that reads it.

The older ``license = { text = ... }`` table makes setuptools print a deprecation warning on every
install and is due to be refused; the SPDX string needs setuptools 77 or newer.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LICENSE = "Apache-2.0"


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_string() -> None:
    project = pyproject()["project"]
    assert project["license"] == LICENSE
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]  # PEP 639


def test_the_build_backend_reads_spdx_licenses() -> None:
    requires = pyproject()["build-system"]["requires"]
    (setuptools,) = [r for r in requires if re.match(r"setuptools\b", r)]
    minimum = re.fullmatch(r"setuptools\s*>=\s*(\d+)(\.\d+)*", setuptools)
    assert minimum is not None, setuptools
    assert int(minimum.group(1)) >= 77


def test_the_image_declares_the_same_license() -> None:
    assert f'org.opencontainers.image.licenses="{LICENSE}"' in (ROOT / "Dockerfile").read_text()

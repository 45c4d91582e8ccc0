"""What pip sees of biohicl: pyproject.toml's metadata and floors, and the wheel and sdist that hatchling (the dev
extra's build backend, run offline) builds from this checkout into a temporary folder."""

from __future__ import annotations

from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]


def floors(requirements: list[str]) -> dict[str, Version]:
    """Each requirement's lower bound (its ``>=``), by canonical name."""
    found = {}
    for text in requirements:
        requirement = Requirement(text)
        lows = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
        if lows:
            found[canonicalize_name(requirement.name)] = max(lows)
    return found


def test_requires_python_is_what_the_transformers_floor_needs():
    """transformers 5.23 (the floor) requires Python 3.11: on 3.10 pip found no transformers at all."""
    supported = SpecifierSet(PROJECT["requires-python"])
    assert "3.10" not in supported
    assert all(version in supported for version in ("3.11", "3.12", "3.13"))
    listed = {
        c.rsplit(" :: ", 1)[1] for c in PROJECT["classifiers"] if c.startswith("Programming Language :: Python :: 3.")
    }
    assert listed == {"3.11", "3.12", "3.13"}
    assert "Operating System :: OS Independent" in PROJECT["classifiers"]
    assert any(c.startswith("Development Status :: ") for c in PROJECT["classifiers"])


def test_license_is_an_spdx_expression_that_hatchling_understands():
    """PEP 639: ``license`` is the SPDX expression (no License :: classifier beside it), from hatchling 1.27 on."""
    assert PROJECT["license"] == "Apache-2.0"
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License :: ")]
    (backend,) = PYPROJECT["build-system"]["requires"]
    assert floors([backend]) == {"hatchling": Version("1.27")}

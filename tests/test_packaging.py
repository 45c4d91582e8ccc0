"""What pip sees of biohicl: pyproject.toml's metadata and floors, and the wheel and sdist that hatchling (the dev
extra's build backend, run offline) builds from this checkout into a temporary folder."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

import biohicl
from biohicl.provenance import REPOSITORY_URL

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]

#: The first release of each compiled dependency built against numpy 2 (older ones fail to import under numpy 2).
FIRST_NUMPY2_BUILDS = {"scipy": Version("1.13.0"), "matplotlib": Version("3.8.4"), "pyarrow": Version("16.0.0")}
#: What the sdist carries: the package, the two card templates and the configs the wheel force-includes, the project
#: files, and the .gitignore hatchling adds so that a wheel built from the sdist leaves out what one built from the
#: checkout does.
SDIST_TOP_LEVEL = {
    "biohicl",
    "model_card_template.md",
    "hub",
    "configs",
    "README.md",
    "LICENSE",
    "pyproject.toml",
    "PKG-INFO",
    ".gitignore",
}


def floors(requirements: list[str]) -> dict[str, Version]:
    """Each requirement's lower bound (its ``>=``), by canonical name."""
    found = {}
    for text in requirements:
        requirement = Requirement(text)
        lows = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
        if lows:
            found[canonicalize_name(requirement.name)] = max(lows)
    return found


def pins(path: Path) -> dict[str, Version]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            found[canonicalize_name(name)] = Version(version)
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


def test_numpy_floor_admits_no_version_pyarrow_and_the_compiled_floors_break_with():
    """pyarrow 26, which ``pyarrow>=24`` resolves to, needs numpy 2 without saying so: ``pip install biohicl
    "numpy<2"`` installed a pair that failed at import. numpy 1.x is now refused, and each compiled floor is a numpy-2
    build."""
    declared = floors(PROJECT["dependencies"])
    numpy = next(Requirement(r) for r in PROJECT["dependencies"] if Requirement(r).name == "numpy")
    assert "1.26.4" not in numpy.specifier
    assert declared["numpy"] == Version("2.0")
    for name, first in FIRST_NUMPY2_BUILDS.items():
        assert declared[name] >= first, name


def test_constraints_min_pins_exactly_the_declared_floors():
    """``make test-min`` tests the floors pyproject declares, not other versions (torch comes from TORCH_SPEC)."""
    pinned = pins(ROOT / "constraints-min.txt")
    declared = floors(PROJECT["dependencies"])
    assert set(declared) - set(pinned) == {"torch"}
    assert {name: pinned[name] for name in declared if name != "torch"} == {
        name: floor for name, floor in declared.items() if name != "torch"
    }
    dev = floors(PROJECT["optional-dependencies"]["dev"])
    assert {name: pinned[name] for name in dev if name in pinned} == {name: dev[name] for name in dev if name in pinned}


def test_version_is_written_once_in_the_package():
    assert "version" not in PROJECT
    assert "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"] == {"path": "biohicl/__init__.py"}
    assert importlib.metadata.version("biohicl") == biohicl.__version__


def test_project_urls_point_at_the_repository_and_the_released_models():
    urls = PROJECT["urls"]
    assert urls == {
        "Homepage": REPOSITORY_URL,
        "Source": REPOSITORY_URL,
        "Issues": f"{REPOSITORY_URL}/issues",
        "Documentation": f"{REPOSITORY_URL}/tree/main/docs",
        "Models": "https://huggingface.co/LunaLan07",
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The wheel and sdist hatchling builds from the checkout, and the wheel it builds from that sdist."""
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("dist")
    build = [sys.executable, "-m", "hatchling", "build", "-d"]
    subprocess.run([*build, str(out)], cwd=ROOT, check=True, capture_output=True)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    unpacked = tmp_path_factory.mktemp("sdist")
    with tarfile.open(sdist) as archive:
        archive.extractall(unpacked, filter="data")
    (source,) = unpacked.iterdir()
    again = tmp_path_factory.mktemp("dist_from_sdist")
    subprocess.run([*build, str(again), "-t", "wheel"], cwd=source, check=True, capture_output=True)
    (wheel_from_sdist,) = again.glob("*.whl")
    return {"wheel": wheel, "sdist": sdist, "wheel_from_sdist": wheel_from_sdist}


def wheel_names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        return {name for name in archive.namelist() if ".dist-info/" not in name}


def test_wheel_carries_the_package_its_templates_and_py_typed(built):
    names = wheel_names(built["wheel"])
    assert {n.split("/", 1)[0] for n in names} == {"biohicl"}
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "biohicl").rglob("*.py")}
    assert {n for n in names if n.endswith(".py")} == modules  # biohicl/data/ too: .gitignore's data/ is top-level
    for name in ("py.typed", "model_card_template.md", "data/dataset_card_template.md", "resources/mesh2024.tsv.gz"):
        assert f"biohicl/{name}" in names
    # the configs `--help` and the docs name (`biohicl train --config configs/biohicl_minilm.yaml`), read from a pip
    # install as biohicl/configs/ (biohicl.config_values.shipped_config)
    configs = {f"biohicl/{path.relative_to(ROOT).as_posix()}" for path in (ROOT / "configs").glob("*.yaml")}
    assert "biohicl/configs/biohicl_minilm.yaml" in configs
    assert {n for n in names if n.startswith("biohicl/configs/")} == configs
    with zipfile.ZipFile(built["wheel"]) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        fields = Parser().parsestr(archive.read(metadata).decode())
    assert fields["Version"] == biohicl.__version__
    assert fields["Requires-Python"] == ">=3.11"
    assert fields["License-Expression"] == "Apache-2.0"
    assert fields.get_all("License-File") == ["LICENSE"]
    assert f"Source, {REPOSITORY_URL}" in fields.get_all("Project-URL")


def test_sdist_carries_the_include_list_only_and_builds_the_same_wheel(built):
    """A ``data/`` folder from the README's build-dataset, docs/results/ (3.9 MB) and the tests stay out of it."""
    with tarfile.open(built["sdist"]) as archive:
        names = [member.name.split("/", 1)[1] for member in archive.getmembers() if "/" in member.name]
    assert {name.split("/", 1)[0] for name in names} == SDIST_TOP_LEVEL
    assert [n for n in names if n.startswith("hub/")] == ["hub/dataset_card_template.md"]
    assert wheel_names(built["wheel_from_sdist"]) == wheel_names(built["wheel"])

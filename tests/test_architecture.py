"""What docs/architecture.md promises about the package's shape, checked."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "biohicl"


def test_no_module_is_over_about_400_lines():
    lengths = {
        str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.rglob("*.py")
    }
    assert len(lengths) > 100  # the whole package was read
    assert {name: n for name, n in lengths.items() if n > 410} == {}


def test_every_script_is_listed_outside_the_package():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    outside = text[text.index("Outside the package:") :].split("\n\n")[0]
    scripts = sorted(p.stem for p in (PACKAGE.parent / "scripts").glob("*.py"))
    assert len(scripts) >= 11
    assert [name for name in scripts if f"`{name}`" not in outside] == []


def test_reading_data_never_loads_torch(data_dir):
    """Reading a corpus and the MeSH hierarchy (what `biohicl build-dataset` needs) imports neither torch nor
    transformers: the packages export their torch-backed names lazily."""
    corpus = str(data_dir / "pubmedqa" / "ori_pqal.json")
    code = (
        "import sys; from biohicl.data.sources import read_records; from biohicl.mesh import MeshHierarchy; "
        f"mesh = MeshHierarchy.load(); records = list(read_records('pubmedqa', {corpus!r}, mesh)); "
        "print(len(records), sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1000 []"


def test_comparing_records_and_card_rows_never_load_torch():
    """Whether two evaluation records compare (`evaluation.comparison`) is plain dict logic, and the hub's card rows
    use it at import: neither imports the evaluation harness, so neither loads torch or transformers; nor do the card,
    publishing's record check or the study's tables (the Δ formatter lives in `evaluation.results`)."""
    code = (
        "import sys; from biohicl.hub.eval_rows import card_rows; "
        "from biohicl.evaluation.comparison import check_comparable; "
        "import biohicl.hub.model_card, biohicl.hub.run_sources, biohicl.study.report; "
        "record = {'settings': {'limit_queries': 5}, 'tasks': {'scifact': {'split': 'test', 'num_queries': 5, "
        "'metrics': {'ndcg@10': 0.5}}}}; "
        "base = {'tasks': {'scifact': {'split': 'test', 'num_queries': 300, 'metrics': {'ndcg@10': 0.4}}}}; "
        "rows = card_rows(record, base); check_comparable([base, base]); "
        "print(rows[0].limit_queries, rows[0].base_value, "
        "sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "5 None []"


@pytest.mark.parametrize("module", ["biohicl.hub.record_match", "biohicl.evaluation.comparison"])
def test_matching_records_loads_neither_scipy_nor_the_data_layer(module):
    """Matching a record to a run's settings is plain dict logic: it imports no evaluation task (the agreement's
    name lives in `evaluation.results`), so neither scipy nor the data layer."""
    code = f"import sys, {module}; print(sorted(m for m in ('scipy', 'biohicl.data', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_package_never_imports_a_test_only_dependency():
    """pytrec_eval is a dev extra (the tests check the trec_eval-exact metrics against it), not a runtime one."""
    importing = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "import pytrec_eval" in p.read_text()]
    assert importing == []


@pytest.mark.parametrize(
    "package",
    [
        "biohicl",
        "biohicl.data",
        "biohicl.evaluation",
        "biohicl.losses",
        "biohicl.models",
        "biohicl.training",
        "biohicl.search",
    ],
)
def test_lazy_exports_are_listed_by_dir_before_their_first_use(package):
    # tab completion and help() read dir(); the lazy names were missing from it until first used
    module = importlib.import_module(package)
    assert set(module.__all__) <= set(dir(module))
    # only the public exports (and submodules), not the helpers a package imports for itself
    assert not {"TYPE_CHECKING", "annotations", "lazy_dir", "lazy_getattr", "importlib"} & set(dir(module))
    assert all(not name.startswith("_") or name in module.__all__ for name in dir(module))


@pytest.mark.parametrize(
    "module",
    ["biohicl.mesh.hierarchy", "biohicl.evaluation.metrics", "biohicl.hub.eval_rows", "biohicl.hub.model_card"],
)
def test_self_contained_docstring_examples_run(module):
    import doctest

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

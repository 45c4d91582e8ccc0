"""Every evaluation record names the code that made it (``versions.biohicl_source``, a digest of the package's
source), and a study whose runs were made by several versions of the code says so in ``results.json`` and
``results.md``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

from biohicl.evaluation.runner import evaluate_model, save_results, source_digest
from biohicl.study.config import ReproduceConfig
from biohicl.study.report import markdown_results
from biohicl.study.stats import aggregate
from tests.conftest import tiny_study_values
from tests.test_evaluation import write_beir
from tests.test_significance import VocabEncoder

WARNING = "**Warning**: these runs were made by"


def _package(root):
    """A fake package folder: Python files, a packaged data file and a resource."""
    (root / "sub").mkdir(parents=True)
    (root / "resources").mkdir()
    (root / "__init__.py").write_text('"""pkg"""\n')
    (root / "sub" / "mod.py").write_text("VALUE = 1\n")
    (root / "registry.json").write_text("{}\n")
    (root / "resources" / "table.tsv.gz").write_bytes(b"\x1f\x8b\x00\x01")
    return root


def test_the_digest_of_one_file_is_its_length_prefixed_path_and_bytes(tmp_path):
    (tmp_path / "a.py").write_bytes(b"x = 1\n")
    by_hand = hashlib.sha256((4).to_bytes(8, "big") + b"a.py" + (6).to_bytes(8, "big") + b"x = 1\n")
    assert source_digest(tmp_path) == by_hand.hexdigest()[:12]


def test_the_digest_is_stable_and_changes_only_with_the_sources_paths_and_bytes(tmp_path):
    package = _package(tmp_path / "one" / "pkg")
    digest = source_digest(package)
    assert len(digest) == 12 and int(digest, 16) >= 0
    assert source_digest(package) == digest
    # a clone elsewhere, written later, with bytecode, hidden files and other kinds of file beside: the same digest
    clone = tmp_path / "two" / "elsewhere"
    shutil.copytree(package, clone)
    os.utime(clone / "sub" / "mod.py", (1_000_000, 1_000_000))
    (clone / "sub" / "__pycache__").mkdir()
    (clone / "sub" / "__pycache__" / "mod.cpython-310.pyc").write_bytes(b"bytecode")
    (clone / ".mod.py.swp").write_bytes(b"editor")
    (clone / "notes.txt").write_text("not packaged\n")
    assert source_digest(clone) == digest

    (clone / "sub" / "mod.py").write_text("VALUE = 2\n")  # one byte of one source file
    assert source_digest(clone) != digest
    (clone / "sub" / "mod.py").write_text("VALUE = 1\n")
    assert source_digest(clone) == digest
    (clone / "resources" / "table.tsv.gz").write_bytes(b"\x1f\x8b\x00\x02")  # a resource
    assert source_digest(clone) != digest
    (clone / "resources" / "table.tsv.gz").write_bytes(b"\x1f\x8b\x00\x01")
    (clone / "registry.json").write_text('{"m": 1}\n')  # a packaged data file
    assert source_digest(clone) != digest
    (clone / "registry.json").write_text("{}\n")
    (clone / "sub" / "mod.py").rename(clone / "sub" / "other.py")  # the same bytes under another path
    assert source_digest(clone) != digest


def test_the_installed_packages_digest_is_computed_once_per_process():
    first = source_digest()
    assert source_digest() == first and len(first) == 12


def test_an_evaluation_record_names_the_source_digest(tmp_path):
    record = evaluate_model(VocabEncoder(["insulin", "heart"]), [str(write_beir(tmp_path / "beir"))])
    saved = json.loads(save_results(record, tmp_path / "eval.json").read_text(encoding="utf-8"))
    assert saved["versions"]["biohicl_source"] == source_digest()
    assert saved["versions"]["biohicl"] == "0.1.0"  # beside the version, which does not tell the code apart


def _study(tmp_path) -> ReproduceConfig:
    values = tiny_study_values(str(tmp_path / "study"), str(tmp_path / "dataset"), model="m", hub_id="org/m")
    return ReproduceConfig.from_dict({**values, "seeds": [0, 1]})


def _record(score: float, source: str | None) -> dict:
    versions = {"biohicl": "0.1.0"} | ({"biohicl_source": source} if source else {})
    task = {"task": "biosses", "main_metric": "spearman", "metrics": {"spearman": score}}
    return {"tasks": {"biosses": task}, "summary": {"biosses/spearman": score}, "versions": versions}


def test_a_study_of_runs_made_by_two_versions_of_the_code_says_so(tmp_path):
    records = {
        ("tiny", "base", None): _record(0.5, "aaaaaaaaaaaa"),
        ("tiny", "full", 0): _record(0.6, "aaaaaaaaaaaa"),
        ("tiny", "full", 1): _record(0.7, "bbbbbbbbbbbb"),
        ("tiny", "no_mse", 0): _record(0.55, None),  # evaluated before records kept the digest
    }
    results = aggregate(_study(tmp_path), records)
    assert results["code_versions"] == {
        "aaaaaaaaaaaa": ["tiny/base", "tiny/full/seed0"],
        "bbbbbbbbbbbb": ["tiny/full/seed1"],
        "unknown": ["tiny/no_mse/seed0"],
    }
    table = markdown_results(results)
    warning = (
        f"{WARNING} 2 versions of the code: `aaaaaaaaaaaa` (tiny/base, tiny/full/seed0); `bbbbbbbbbbbb` "
        "(tiny/full/seed1); `unknown` (tiny/no_mse/seed0)."
    )
    assert warning in table.splitlines() and table.count(WARNING) == 1


def test_tasks_added_by_other_code_count_as_that_codes_run(tmp_path):
    added = _record(0.6, "aaaaaaaaaaaa") | {"added": [{"versions": {"biohicl_source": "bbbbbbbbbbbb"}}]}
    results = aggregate(
        _study(tmp_path), {("tiny", "base", None): _record(0.5, "aaaaaaaaaaaa"), ("tiny", "full", 0): added}
    )
    assert results["code_versions"] == {
        "aaaaaaaaaaaa": ["tiny/base", "tiny/full/seed0"],
        "bbbbbbbbbbbb": ["tiny/full/seed0"],
    }
    assert f"{WARNING} 2 versions of the code" in markdown_results(results)


def test_one_version_of_the_code_and_records_without_one_give_no_warning(tmp_path):
    records = {
        ("tiny", "base", None): _record(0.5, None),
        ("tiny", "full", 0): _record(0.6, "aaaaaaaaaaaa"),
        ("tiny", "full", 1): _record(0.7, "aaaaaaaaaaaa"),
    }
    results = aggregate(_study(tmp_path), records)
    assert results["code_versions"] == {
        "aaaaaaaaaaaa": ["tiny/full/seed0", "tiny/full/seed1"],
        "unknown": ["tiny/base"],
    }
    assert WARNING not in markdown_results(results)
    only_old = aggregate(_study(tmp_path), {("tiny", "full", 0): _record(0.6, None)})
    assert only_old["code_versions"] == {"unknown": ["tiny/full/seed0"]}
    assert WARNING not in markdown_results(only_old)

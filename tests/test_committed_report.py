"""The study's own report over the committed records of ``study_minilm_cpu_guarded_256`` (laid out by
``scripts/study_from_committed.py``, as docs/results.md shows): it names the dev pick the docs cite, and lists as
unrun only the runs that have no evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_script

from biohicl.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "results" / "study_minilm_cpu_guarded_256"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    from biohicl.study import ReproduceConfig, run_study

    out = tmp_path_factory.mktemp("guarded256")
    load_script("study_from_committed").lay_out(COMMITTED, out, "minilm")
    config = ReproduceConfig.from_yaml(ROOT / "configs" / "study_minilm_cpu_guarded_256.yaml")
    config = config.select(seeds=[3, 4, 5])
    config.output_dir = str(out)
    return run_study(config, progress=False, write_plots=False, report_only=True) | {"out": out}


def test_the_report_lists_only_runs_without_an_evaluation_as_not_run(report):
    # the committed eval.json files keep no per-item values: evaluated, tabulated, not "not run yet"
    assert report["missing"] == ["minilm/one_pass_distill4/seed4", "minilm/one_pass_distill4/seed5"]
    per_item = ["biosses per-item values", "pubmedqa per-item values"]
    assert report["incomplete"]["minilm/base"] == report["incomplete"]["minilm/two_pass_distill2/seed3"] == per_item
    text = (report["out"] / "results.md").read_text(encoding="utf-8")
    assert "Not run yet (no evaluation): `minilm/one_pass_distill4/seed4`, `minilm/one_pass_distill4/seed5`." in text
    assert "Tabulated as evaluated, lacking biosses per-item values, pubmedqa per-item values: `minilm/base`, " in text


def test_a_run_lacking_a_task_is_named_with_it_in_the_report_and_on_the_console(tmp_path, capsys):
    """Its target means use fewer seeds than the row's count: the report and the command say which run lacks what."""
    load_script("study_from_committed").lay_out(COMMITTED, tmp_path, "minilm")
    path = tmp_path / "minilm" / "two_pass_distill2" / "seed3" / "eval.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    del record["tasks"]["pubmedqa"]
    record["summary"] = {k: v for k, v in record["summary"].items() if not k.startswith("pubmedqa/")}
    path.write_text(json.dumps(record), encoding="utf-8")
    config = str(ROOT / "configs" / "study_minilm_cpu_guarded_256.yaml")
    capsys.readouterr()
    argv = ["reproduce", "--config", config, "--output_dir", str(tmp_path), "--seeds", "3,4,5", "--report_only"]
    assert cli.main(argv) == 0
    line = "evaluated without pubmedqa, biosses per-item values: minilm/two_pass_distill2/seed3"
    assert line in capsys.readouterr().out.splitlines()
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert (
        "Tabulated as evaluated, lacking pubmedqa, biosses per-item values: `minilm/two_pass_distill2/seed3`." in text
    )


def test_the_report_names_the_dev_pick_the_docs_cite(report):
    saved = json.loads((report["out"] / "results.json").read_text(encoding="utf-8"))
    assert saved["models"]["minilm"]["dev_pick"]["picked"] == "two_pass_distill2"


def _crafted(tmp_path: Path, edit) -> Path:
    """The laid-out study with ``minilm/two_pass_distill2/seed3/eval.json`` rewritten by ``edit(record) -> text``."""
    load_script("study_from_committed").lay_out(COMMITTED, tmp_path, "minilm")
    path = tmp_path / "minilm" / "two_pass_distill2" / "seed3" / "eval.json"
    path.write_text(edit(json.loads(path.read_text(encoding="utf-8"))), encoding="utf-8")
    return path


def _report(tmp_path: Path) -> int:
    config = str(ROOT / "configs" / "study_minilm_cpu_guarded_256.yaml")
    return cli.main(
        ["reproduce", "--config", config, "--output_dir", str(tmp_path), "--seeds", "3,4,5", "--report_only"]
    )


def _with(**fields):
    return lambda record: json.dumps(record | fields)


def _task(name, value):
    return lambda record: json.dumps(record | {"tasks": record["tasks"] | {name: value}})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_with(versions=["x"]), "versions: expected an object, got a list"),
        (_with(added={"a": 1}), "added: expected a list of objects, got an object"),
        (_with(added=[{"versions": "x"}]), "added[0].versions: expected an object, got a string"),
        (_with(added=[1]), "added[0]: expected an object, got a number"),
        (lambda record: "[]", "expected a JSON object (an evaluation record), got a list"),
        (lambda record: json.dumps(record)[:100], "line 1: not valid JSON (Unterminated string starting at column 71)"),
        (_task("biosses", "x"), "tasks.biosses: expected an object (the task's result), got a string"),
        (_task("biosses", {"split": "test"}), "tasks.biosses.main_metric: expected a metric name, got null or nothing"),
        (_with(tasks=[]), "tasks: expected an object of task results, got a list"),
        (_with(summary={"biosses/spearman": "0.8"}), "summary.biosses/spearman: expected a number, got a string"),
        (_with(wall_time_s=None), "wall_time_s: expected a number, got null or nothing"),
        (_with(settings=["x"]), "settings: expected an object, got a list"),
        (_with(model="m"), "model: expected an object, got a string"),
        (_task("biosses", {"main_metric": "spearman", "per_item": [1]}),
         "tasks.biosses.per_item: expected an object, got a list"),
        (_task("biosses", {"main_metric": "spearman", "metrics": [1]}),
         "tasks.biosses.metrics: expected an object, got a list"),
    ],
)  # fmt: skip
def test_a_crafted_eval_json_is_refused_in_one_line_naming_the_file_and_field(tmp_path, capsys, edit, message):
    path = _crafted(tmp_path, edit)
    capsys.readouterr()
    assert _report(tmp_path) == 2
    assert capsys.readouterr().err.splitlines() == [f"biohicl reproduce: error: {path}: {message}"]
    assert not (tmp_path / "results.json").exists()


def test_a_digest_that_is_not_a_string_is_filed_under_unknown(tmp_path):
    _crafted(tmp_path, _with(versions={"biohicl_source": ["x"]}))
    other = tmp_path / "minilm" / "two_pass_distill2" / "seed4" / "eval.json"
    other.write_text(_with(versions={"biohicl_source": "abc123"})(json.loads(other.read_text())), encoding="utf-8")
    assert _report(tmp_path) == 0
    versions = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))["code_versions"]
    assert list(versions) == ["abc123", "unknown"]
    assert versions["abc123"] == ["minilm/two_pass_distill2/seed4"]
    assert "minilm/two_pass_distill2/seed3" in versions["unknown"]
    assert "minilm/two_pass_distill2/seed4" not in versions["unknown"]


def test_a_record_whose_summary_lacks_a_main_metric_is_incomplete_naming_it(tmp_path):
    """A real record's summary holds each task's main metric and it is tabulated as evaluated (its per-item values
    apart); the same record with ``biosses/spearman`` deleted from its summary is listed with what it lacks, and
    the row's BIOSSES mean is over the seeds that have it."""
    load_script("study_from_committed").lay_out(COMMITTED, tmp_path, "minilm")
    run = tmp_path / "minilm" / "two_pass_distill2"
    scores = [json.loads((run / f"seed{s}" / "eval.json").read_text())["summary"]["biosses/spearman"] for s in (4, 5)]
    assert _report(tmp_path) == 0
    per_item = ["biosses per-item values", "pubmedqa per-item values"]
    assert json.loads((tmp_path / "results.json").read_text())["incomplete"]["minilm/two_pass_distill2/seed3"] == (
        per_item
    )

    def drop(record):
        assert record["tasks"]["biosses"]["main_metric"] == "spearman"
        del record["summary"]["biosses/spearman"]
        return json.dumps(record)

    _crafted(tmp_path, drop)
    assert _report(tmp_path) == 0
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    lacks = ["biosses main metric (biosses/spearman)", *per_item]
    assert results["incomplete"]["minilm/two_pass_distill2/seed3"] == lacks
    row = results["models"]["minilm"]["rows"]["two_pass_distill2"]
    assert row["n"] == 3 and row["values"]["biosses/spearman"] == scores
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert f"Tabulated as evaluated, lacking {', '.join(lacks)}: `minilm/two_pass_distill2/seed3`." in text


def test_a_collapsed_seeds_null_score_is_reported_as_undefined_not_refused(tmp_path, capsys):
    # strict JSON writes a collapsed model's NaN Spearman as null: --report_only read it as "expected a number"
    def collapsed(record):
        record["summary"]["biosses/spearman"] = None
        record["tasks"]["biosses"]["metrics"]["spearman"] = None
        return json.dumps(record)

    _crafted(tmp_path, collapsed)
    capsys.readouterr()
    assert _report(tmp_path) == 0
    out = capsys.readouterr().out.splitlines()
    prefix = "  minilm/two_pass_distill2 "
    undefined = "Δ – (undefined: see results.md)"
    assert [line[len(prefix) :] for line in out if line.startswith(prefix)] == [
        f"biosses/spearman: {undefined} (target +0.0) MISSED (the dev pick)",
        "pubmedqa/recall@1: Δ +0.87 (target +0.0) met (the dev pick)",
        f"mean of biosses/spearman, pubmedqa/recall@1: {undefined} (target +1.0) MISSED (the dev pick)",
    ]
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "note: two_pass_distill2 has no biosses Spearman mean: the score of seed 3 is NaN (a collapsed run?)" in text

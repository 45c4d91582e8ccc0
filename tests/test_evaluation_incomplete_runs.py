"""What a run that stops keeps, and what the pre-flight refuses before the first task: a NaN task counts as the
failed task (the finite ones before it are kept), an error with an empty message keeps them too, a later complete
run removes the stale incomplete record and --compare names one; a BEIR folder load_beir would refuse fails the
pre-flight; an empty --split is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from biohicl.errors import BioHiCLError, ConfigError, DataError

DOCS = [{"_id": "d1", "title": "Insulin", "text": "insulin"}, {"_id": "d2", "title": "", "text": "tumor growth"}]
QUERIES = [{"_id": "q1", "text": "insulin"}, {"_id": "q2", "text": "tumor"}]


def lines(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def write_beir(folder: Path, docs=DOCS, queries=QUERIES, qrels="q1\td1\t1\nq2\td2\t1\n") -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(lines(docs))
    (folder / "queries.jsonl").write_text(lines(queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return folder


class ConstantEncoder:
    """A collapsed model: PubMedQA's recall is defined (all ties), BIOSSES's correlations are NaN."""

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        return np.ones((len(list(texts)), 3), dtype=np.float32)


def test_a_nan_task_is_the_failed_task_and_the_finite_ones_before_it_are_kept(tmp_path, data_dir):
    """A NaN metric threw away every finished task, after all of them had run."""
    from biohicl.cli.evaluate import keeping_finished
    from biohicl.evaluation.runner import evaluate_model

    output = tmp_path / "c.json"
    kept = tmp_path / "c.incomplete.json"
    with pytest.raises(BioHiCLError) as caught, keeping_finished(output) as keep:
        evaluate_model(
            ConstantEncoder(),
            ["pubmedqa", "biosses", "scifact:train"],
            limit_queries=5,
            on_incomplete=keep,
            require_finite=True,
        )
    message = str(caught.value)
    assert message.startswith("biosses: spearman, pearson are NaN")
    assert message.endswith(f"; the finished task (pubmedqa) is saved in {kept}, marked incomplete")
    assert "nothing was written" not in message
    record = json.loads(kept.read_text())
    assert list(record["tasks"]) == ["pubmedqa"]
    assert record["incomplete"]["failed"] == "biosses" and record["incomplete"]["not_run"] == ["scifact:train"]
    assert record["incomplete"]["error"].startswith("biosses: spearman, pearson are NaN")
    assert not output.exists()


def test_without_require_finite_a_nan_task_is_kept_with_a_warning(data_dir):
    from biohicl.evaluation.runner import evaluate_model

    record = evaluate_model(ConstantEncoder(), ["biosses"])
    assert all(np.isnan(v) for v in record["tasks"]["biosses"]["metrics"].values())


def test_the_cli_keeps_the_finite_task_before_a_nan_one(tmp_path, data_dir, capsys):
    import torch
    from conftest import build_tiny_bert
    from safetensors.torch import load_file, save_file

    from biohicl.cli.main import main

    folder = build_tiny_bert(tmp_path / "collapsed")
    weights = load_file(folder / "model.safetensors")
    save_file({k: torch.zeros_like(v) for k, v in weights.items()}, folder / "model.safetensors")
    output = tmp_path / "c.json"
    argv = ["evaluate", str(folder), "--tasks", "pubmedqa,biosses", "--limit_queries", "5", "--output", str(output)]
    assert main([*argv, "--device", "cpu", "--no_progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    kept = tmp_path / "c.incomplete.json"
    assert err.startswith("biohicl evaluate: error: biosses: spearman, pearson are NaN")
    assert err.endswith(f"; the finished task (pubmedqa) is saved in {kept}, marked incomplete")
    record = json.loads(kept.read_text())
    assert list(record["tasks"]) == ["pubmedqa"] and record["incomplete"]["failed"] == "biosses"
    assert not output.exists()


@pytest.mark.parametrize("error", [MemoryError(), AssertionError(), RuntimeError("  \n")])
def test_an_error_with_an_empty_message_is_named_by_its_type(tmp_path, data_dir, monkeypatch, error):
    """str(err).splitlines()[0] raised IndexError, replacing the real error and keeping nothing."""
    from biohicl.evaluation import runner

    real = runner._run_task

    def run_task(model, name, *args, **kwargs):
        if name == "biosses":
            raise error
        return real(model, name, *args, **kwargs)

    monkeypatch.setattr(runner, "_run_task", run_task)
    kept = []
    with pytest.raises(type(error)):
        runner.evaluate_model(ConstantEncoder(), ["pubmedqa", "biosses"], limit_queries=5, on_incomplete=kept.append)
    assert kept[0]["incomplete"] == {"failed": "biosses", "error": type(error).__name__, "not_run": []}


def test_a_complete_run_removes_the_stale_incomplete_record(tiny_bert_dir, tmp_path, data_dir, capsys):
    from biohicl.cli.main import main

    output = tmp_path / "x.json"
    stale = tmp_path / "x.incomplete.json"
    stale.write_text(json.dumps({"tasks": {"biosses": {}}, "incomplete": {"failed": "pubmedqa"}}))
    argv = ["evaluate", str(tiny_bert_dir), "--tasks", "biosses", "--output", str(output), "--no_progress"]
    assert main([*argv, "--device", "cpu"]) == 0
    assert output.exists() and not stale.exists()
    assert f"removed {stale}" in capsys.readouterr().out


def test_a_complete_run_keeps_an_incomplete_record_of_tasks_it_did_not_run(tiny_bert_dir, tmp_path, data_dir, capsys):
    # a finished scifact result (hours of encoding) was deleted by a later complete run of biosses alone
    from biohicl.cli.main import main

    output = tmp_path / "x.json"
    stale = tmp_path / "x.incomplete.json"
    stale.write_text(json.dumps({"tasks": {"scifact": {}}, "incomplete": {"failed": "biosses"}}))
    argv = ["evaluate", str(tiny_bert_dir), "--tasks", "biosses", "--output", str(output), "--no_progress"]
    assert main([*argv, "--device", "cpu"]) == 0
    assert output.exists() and stale.exists()
    assert f"kept {stale}: it holds scifact, which this run did not evaluate" in capsys.readouterr().out


def test_compare_names_an_incomplete_record(tmp_path, capsys):
    from biohicl.cli.main import main

    task = {"split": "all", "main_metric": "spearman", "metrics": {"spearman": 0.5, "pearson": 0.4}}
    a, b = tmp_path / "a.json", tmp_path / "b.incomplete.json"
    a.write_text(json.dumps({"tasks": {"biosses": task}, "model": {"id": "base"}}))
    incomplete = {"failed": "scifact", "error": "boom", "not_run": ["pubmedqa"]}
    b.write_text(json.dumps({"tasks": {"biosses": task}, "model": {"id": "tuned"}, "incomplete": incomplete}))
    assert main(["evaluate", "--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "note: tuned is incomplete: scifact failed (boom); not run: pubmedqa" in out
    assert out.count("incomplete") == 1


def test_a_paired_compare_names_an_incomplete_record_as_the_plain_table_does(tmp_path, capsys):
    """``--compare --paired`` showed no note for a stopped run's record (only the plain table did)."""
    from biohicl.cli.main import main

    def record(model: str, scores: list[float], **more) -> dict:
        per_item = {"ids": [f"q{i}" for i in range(len(scores))], "scores": scores}
        task = {"split": "test", "main_metric": "recall@1", "metrics": {"recall@1": sum(scores) / len(scores)}}
        return {"tasks": {"pubmedqa": task | {"per_item": per_item}}, "model": {"id": model}, **more}

    a, b = tmp_path / "a.json", tmp_path / "b.incomplete.json"
    a.write_text(json.dumps(record("base", [0, 1, 0, 1])))
    incomplete = {"failed": "scifact", "error": "boom", "not_run": []}
    b.write_text(json.dumps(record("tuned", [1, 1, 0, 1], incomplete=incomplete)))
    assert main(["evaluate", "--compare", str(a), str(b), "--paired", "--rounds", "200"]) == 0
    out = capsys.readouterr().out
    assert "| pubmedqa | recall@1 | 4 | 0.5000 | 0.7500 | +25.00 |" in out
    assert out.count("note: tuned is incomplete: scifact failed (boom)") == 1


@pytest.mark.parametrize(
    ("corpus", "queries", "qrels", "message"),
    [
        (
            [*DOCS, {"_id": "d1", "text": "again"}],
            QUERIES,
            None,
            "line 3: duplicate document id 'd1' (first at line 1)",
        ),
        (DOCS, QUERIES[:1], None, "1 judged query id(s) not in queries.jsonl, e.g. 'q2'"),
        ([], QUERIES, None, "corpus.jsonl: no documents"),
        (DOCS, QUERIES, "q1\tx1\t1\nq2\tx2\t1\n", "all 2 judged document ids are not in corpus.jsonl"),
    ],
)
def test_the_pre_flight_refuses_what_load_beir_refuses(tmp_path, data_dir, corpus, queries, qrels, message):
    """`--tasks pubmedqa,DUPDOC,biosses` ran pubmedqa, then failed on DUPDOC's duplicate document."""
    from biohicl.evaluation.retrieval import load_beir
    from biohicl.evaluation.runner import plan_tasks

    folder = write_beir(tmp_path / "beir", corpus, queries, *([qrels] if qrels else []))
    with pytest.raises(DataError) as checked:
        plan_tasks(["pubmedqa", str(folder), "biosses"])
    with pytest.raises(DataError) as loaded:
        load_beir(folder, "test")
    assert message in str(checked.value) and str(checked.value) == str(loaded.value)
    assert str(folder) in str(checked.value)


def test_the_pre_flight_keeps_no_document_texts(tmp_path, monkeypatch):
    from biohicl.evaluation import retrieval, tasks

    folder = write_beir(tmp_path / "beir")
    seen = []
    real = retrieval.read_beir

    def spy(*args, **kwargs):
        seen.append(data := real(*args, **kwargs))
        return data

    monkeypatch.setattr(retrieval, "read_beir", spy)
    tasks.check_beir(folder, "test")
    assert set(seen[0].corpus) == {"d1", "d2"} and set(seen[0].corpus.values()) == {""}


@pytest.mark.parametrize("split", ["", "  "])
def test_an_empty_split_is_refused_in_one_line(split, tmp_path, capsys):
    from biohicl.cli.main import main
    from biohicl.evaluation.runner import plan_tasks

    with pytest.raises(ConfigError, match=r"^split: empty; give a split name"):
        plan_tasks(["scifact"], split)
    assert main(["evaluate", "MODEL", "--tasks", "pubmedqa,biosses", "--split", split]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("biohicl evaluate: error: split: empty; give a split name")

"""Evaluation on bad input: BEIR folders with a missing file, ids that do not match, malformed or mis-encoded lines;
NaN scores into the metrics; NaN embeddings from an encoder; NaN results into the results file."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from biohicl.errors import DataError
from biohicl.evaluation.metrics import CorrelationMetric, RetrievalMetric
from biohicl.evaluation.retrieval import dense_retrieve, evaluate_beir, load_beir
from biohicl.evaluation.runner import load_results, save_results

CORPUS = [{"_id": "d1", "title": "Insulin", "text": "insulin resistance"}, {"_id": "d2", "text": "heart disease"},
          {"_id": "d3", "text": "brain tumour"}]  # fmt: skip
QUERIES = [{"_id": "q1", "text": "insulin"}, {"_id": "q2", "text": "heart"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n"


def beir(folder: Path, corpus=CORPUS, queries=QUERIES, qrels=QRELS, skip: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"corpus.jsonl": "".join(json.dumps(r) + "\n" for r in corpus),
             "queries.jsonl": "".join(json.dumps(r) + "\n" for r in queries), "qrels/test.tsv": qrels}  # fmt: skip
    for name, text in files.items():
        if name != skip:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
    return folder


class BagOfLetters:
    """A deterministic encoder: letter counts (no model needed)."""

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        out = np.zeros((len(texts), 26), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return out


class NaNEncoder(BagOfLetters):
    def encode(self, texts, **kwargs):
        out = super().encode(texts, **kwargs)
        out[0, 0] = np.nan
        return out


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_beir_folder_with_a_missing_file(tmp_path, missing):
    folder = beir(tmp_path / "nfcorpus", skip=missing)
    with pytest.raises(DataError, match=rf"nfcorpus: not a complete BEIR folder: missing {missing}"):
        load_beir(folder)


def test_beir_folder_with_a_missing_file_at_the_cli(tmp_path, run_cli, tiny_bert_dir):
    folder = beir(tmp_path / "nfcorpus", skip="qrels/test.tsv")
    out = tmp_path / "results.json"
    result = run_cli(["evaluate", str(tiny_bert_dir), "--tasks", str(folder), "--output", str(out), "--no_progress"])
    assert "not a complete BEIR folder: missing qrels/test.tsv" in result.err and not out.exists()


def test_judged_query_ids_missing_from_queries(tmp_path):
    folder = beir(tmp_path / "b", qrels=QRELS + "q9\td3\t1\n")
    with pytest.raises(DataError, match=r"test\.tsv: 1 judged query id\(s\) not in queries\.jsonl, e\.g\. 'q9'"):
        load_beir(folder)


def test_judged_document_ids_that_match_no_document(tmp_path):
    folder = beir(tmp_path / "b", qrels="query-id\tcorpus-id\tscore\nq1\tD1\t1\nq2\tD2\t1\n")  # ids upper-cased
    with pytest.raises(DataError, match=r"test\.tsv: .*not in corpus\.jsonl"):
        load_beir(folder)


def test_malformed_corpus_line_names_the_line(tmp_path):
    folder = beir(tmp_path / "b")
    with (folder / "corpus.jsonl").open("a") as handle:
        handle.write('{"_id": "d4", "text": "trunc\n')
    with pytest.raises(DataError, match=r"corpus\.jsonl: line 4: not valid JSON"):
        load_beir(folder)


@pytest.mark.parametrize(
    ("name", "line", "message"),
    [
        ("corpus.jsonl", b"{not json", "not valid JSON"),  # was "corpus.jsonl, record 4"
        ("corpus.jsonl", b"[1]", "expected a JSON object"),
        ("corpus.jsonl", b'{"_id": "d4", "text": "caf\xe9"}', "cannot decode the line"),  # was "record 4"
        ("queries.jsonl", b'{"_id": "q3", "text": "caf\xe9"}', "cannot decode the line"),
    ],
)
def test_an_error_at_a_jsonl_line_is_named_file_line_n(tmp_path, name, line, message):
    folder = beir(tmp_path / "b", queries=[*QUERIES, {"_id": "q0", "text": "x"}])
    with (folder / name).open("ab") as handle:
        handle.write(line + b"\n")
    with pytest.raises(DataError, match=rf"b/{name}: line 4: {message}"):
        load_beir(folder)


def test_record_without_id(tmp_path):
    folder = beir(tmp_path / "b", queries=[*QUERIES, {"id": "q3", "text": "x"}])
    with pytest.raises(DataError, match=r"queries\.jsonl: line 3: record has no `_id` field"):
        load_beir(folder)


def test_record_with_id_not_underscore_id_is_told_so(tmp_path):
    folder = beir(tmp_path / "b", corpus=[{"id": "d1", "text": "x"}])
    message = (
        r"corpus\.jsonl: line 1: record has no `_id` field \(a BEIR corpus\.jsonl names each record's id `_id`; "
        r"its `id` field is not read here\)$"
    )
    with pytest.raises(DataError, match=message):
        load_beir(folder)
    folder = beir(tmp_path / "c", corpus=[{"doc": "d1", "text": "x"}])
    with pytest.raises(DataError, match=r"line 1: record has no `_id` field \(a BEIR corpus\.jsonl names .* `_id`\)$"):
        load_beir(folder)


def same_data(a, b) -> bool:
    return (a.corpus, a.queries, a.qrels) == (b.corpus, b.queries, b.qrels)


def test_byte_order_marks_and_crlf_read_as_plain_utf8(tmp_path):
    plain = load_beir(beir(tmp_path / "plain"))
    folder = beir(tmp_path / "bom")
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        text = (folder / name).read_text(encoding="utf-8")
        (folder / name).write_bytes(text.replace("\n", "\r\n").encode("utf-8-sig"))
    assert (folder / "qrels/test.tsv").read_bytes().startswith(b"\xef\xbb\xbfquery-id\tcorpus-id\tscore\r\n")
    data = load_beir(folder)
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}} and same_data(data, plain)


TREC = "q1 0 d1 2\nq2 0 d2 1\nq2 0 d3 0\n"  # trec_eval's qrels: query, iteration, document, relevance
BEIR_SAME = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t1\nq2\td3\t0\n"


@pytest.mark.parametrize(
    "qrels",
    [
        TREC,
        TREC.replace(" ", "\t"),  # tab-separated TREC
        TREC.replace(" 0 ", " 4.5 "),  # the iteration column is ignored (trec-covid's covid-complete has 4.5)
        TREC.replace("d1 2", "d1 2.0"),  # a whole grade written as a decimal (0.9 is refused: session 34's tests)
        "topic iteration docid relevance\n" + TREC,  # a header line: no field is a number
        "\ufefftopic\tdocid\trelevance\n" + BEIR_SAME.split("\n", 1)[1],  # a 3-column header under other names
        "\n \n" + BEIR_SAME,  # a header after blank lines: the first non-blank line (was read as a judgement)
        "\n" + "topic iteration docid relevance\n" + TREC,
    ],
)
def test_trec_qrels_and_other_headers_read_as_the_beir_file(tmp_path, qrels):
    expected = load_beir(beir(tmp_path / "beir", qrels=BEIR_SAME))
    assert expected.qrels == {"q1": {"d1": 2}, "q2": {"d2": 1, "d3": 0}}
    assert same_data(load_beir(beir(tmp_path / "trec", qrels=qrels)), expected)


@pytest.mark.parametrize(
    ("qrels", "message"),
    [
        (TREC + "q1\td2\t1\n", r"line 4: expected 4 whitespace-separated fields \(TREC.*got 3; one format per file"),
        (BEIR_SAME + "q1 0 d2 1\n", r"line 5: expected 3 tab-separated fields, got 1 \(a TREC line in a file whose"),
        (BEIR_SAME + "q1\t0\td2\t1\n", r"line 5: expected 3 tab-separated fields, got 4 \(a TREC line"),
        ("q1 0 d1\n", r"line 1: expected 3 tab-separated fields .* or 4 whitespace-separated fields \(TREC"),
        (TREC + "q1 0 d2 high\n", r"line 4: relevance \(the 4th field of a TREC line\) 'high' is not a finite"),
    ],
)
def test_a_qrels_file_mixing_formats_names_the_line(tmp_path, qrels, message):
    with pytest.raises(DataError, match=r"test\.tsv: " + message):
        load_beir(beir(tmp_path / "b", qrels=qrels))


def test_qrels_score_not_a_number_and_wrong_columns(tmp_path):
    folder = beir(tmp_path / "b", qrels=QRELS + "q1\td3\thigh\n")
    with pytest.raises(DataError, match=r"test\.tsv: line 4: score 'high' is not a finite number"):
        load_beir(folder)
    folder = beir(tmp_path / "c", qrels=QRELS + "q1 d3 1\n")
    with pytest.raises(DataError, match=r"test\.tsv: line 4: expected 3 tab-separated fields, got 1"):
        load_beir(folder)


def test_duplicate_document_id(tmp_path):
    folder = beir(tmp_path / "b", corpus=[*CORPUS, {"_id": "d1", "text": "again"}])
    with pytest.raises(DataError, match=r"corpus\.jsonl: line 4: duplicate document id 'd1'"):
        load_beir(folder)


def test_duplicate_query_id_is_refused_naming_the_line(tmp_path):
    """A repeated query id used to be read silently, the last text winning (as a repeated document id is refused)."""
    folder = beir(tmp_path / "b", queries=[*QUERIES, {"_id": "q3", "text": "x"}, {"_id": "q1", "text": "brain"}])
    with pytest.raises(DataError, match=r"queries\.jsonl: line 4: duplicate query id 'q1' \(first at line 1\)$"):
        load_beir(folder)


@pytest.mark.parametrize(
    ("qrels", "line", "first"),
    [
        (QRELS + "q1\td1\t0\n", 4, 2),  # another grade
        (QRELS + "q2\td3\t0\n" + "q1\td1\t1\n", 5, 2),  # the same line again
        (TREC + "q1 0 d1 1\n", 4, 1),  # in TREC's form
    ],
)
def test_a_repeated_judgement_is_refused_naming_both_lines(tmp_path, qrels, line, first):
    """A second grade of a pair used to replace the first silently (``q1 d1 1`` then ``q1 d1 0``: q1 lost its relevant
    document); any repeat is refused, an identical one too."""
    message = rf"test\.tsv: line {line}: query 'q1' judges document 'd1' again \(first at line {first}\)$"
    with pytest.raises(DataError, match=message):
        load_beir(beir(tmp_path / "b", qrels=qrels))


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"_id": "q2", "text": None}, "`text` is null"),  # was encoded as the string 'None'
        ({"_id": "q2"}, "no `text` field"),  # was scored as an empty query
        ({"_id": "q2", "title": "heart"}, "no `text` field"),
        ({"_id": "q2", "text": 42}, "`text` is 42"),
        ({"_id": "q2", "text": " "}, '`text` is " "'),
    ],
)
def test_a_judged_query_without_text_is_refused_naming_the_line(tmp_path, query, reason):
    folder = beir(tmp_path / "b", queries=[QUERIES[0], query])
    with pytest.raises(DataError, match=rf"queries\.jsonl: line 2: query 'q2' has no text \({reason}\)$"):
        load_beir(folder)


def test_an_unjudged_query_without_text_is_not_read(tmp_path):
    data = load_beir(beir(tmp_path / "b", queries=[*QUERIES, {"_id": "q3", "text": None}]))
    assert data.queries == {"q1": "insulin", "q2": "heart"}


def test_latin1_corpus(tmp_path):
    folder = beir(tmp_path / "b")
    (folder / "corpus.jsonl").write_bytes('{"_id": "d1", "text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"corpus\.jsonl"):
        load_beir(folder)


def test_empty_qrels(tmp_path):
    folder = beir(tmp_path / "b", qrels="query-id\tcorpus-id\tscore\n")
    with pytest.raises(DataError, match=r"test\.tsv: no judgements"):
        load_beir(folder)


def test_end_to_end_values_with_the_toy_encoder(tmp_path):
    result = evaluate_beir(BagOfLetters(), beir(tmp_path / "b"), k_values=[1, 3])
    assert result.metrics["recall@3"] == 1.0 and all(math.isfinite(v) for v in result.metrics.values())


def test_nan_embeddings_are_refused(tmp_path):
    data = load_beir(beir(tmp_path / "b"))
    with pytest.raises((DataError, ValueError), match="NaN"):
        dense_retrieve(NaNEncoder(), data.queries, data.corpus, top_k=3)


def test_nan_scores_into_the_retrieval_metric():
    with pytest.raises(ValueError, match="NaN"):
        RetrievalMetric().compute_from_dicts({"q": {"a": 1}}, {"q": {"a": float("nan"), "b": 0.5}}, k_values=[1])


def test_inf_scores_rank_first_and_stay_finite():
    scores = RetrievalMetric().compute_from_dicts({"q": {"a": 1}}, {"q": {"a": float("inf"), "b": 0.5}}, k_values=[1])
    assert scores == {"ndcg@1": 1.0, "recall@1": 1.0, "mrr@1": 1.0}


@pytest.mark.parametrize("predictions", [[0.1, float("nan"), 0.3], [0.5, 0.5, 0.5]])
def test_nan_or_constant_predictions_into_the_correlation(predictions):
    """A collapsed model's: NaN, undefined (tests/test_evaluation_run_scope.py); the gold scores of that kind are
    refused."""
    scores = CorrelationMetric().compute(predictions=predictions, references=[1.0, 2.0, 3.0])
    assert all(value != value for value in scores.values())  # NaN
    with pytest.raises(ValueError):
        CorrelationMetric().compute(predictions=[1.0, 2.0, 3.0], references=predictions)


def test_nan_results_are_not_written(tmp_path):
    path = tmp_path / "results.json"
    with pytest.raises(ValueError):
        save_results({"tasks": {"scifact": {"metrics": {"ndcg@10": float("nan")}}}}, path)
    assert not path.exists()


def test_results_file_that_is_not_one(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"tasks": ')
    with pytest.raises(DataError, match=r"r\.json: line 1: not valid JSON \(Expecting value at column 11\)$"):
        load_results(path)
    path.write_text('{"metrics": {}}')
    with pytest.raises(DataError, match="not a biohicl evaluation results file"):
        load_results(path)


def test_unknown_task_at_the_cli(tmp_path, run_cli, tiny_bert_dir):
    out = tmp_path / "results.json"
    result = run_cli(["evaluate", str(tiny_bert_dir), "--tasks", "scifcat", "--output", str(out)])
    assert "unknown task 'scifcat' (did you mean scifact" in result.err and not out.exists()


# ---------------------------------------------------------------------- issue #16
@pytest.mark.parametrize("value", ["0", "-1", "100000"])
def test_max_length_out_of_range_at_the_cli(tmp_path, run_cli, tiny_bert_dir, value):
    # 0 used to switch truncation off (a long text then crashed), -1 and 100000 were tracebacks
    folder = beir(tmp_path / "b")
    out = tmp_path / "results.json"
    argv = ["evaluate", str(tiny_bert_dir), "--tasks", str(folder), "--output", str(out), "--max_length", value]
    result = run_cli([*argv, "--no_progress"])
    assert f"error: max_length: {value} is not" in result.err and not out.exists()


def test_max_length_within_the_model_range_truncates(tmp_path, run_cli, tiny_bert_dir):
    long = [*CORPUS, {"_id": "d4", "text": "insulin " * 700}]  # more tokens than the tiny model's 128 positions
    out = tmp_path / "results.json"
    argv = ["evaluate", str(tiny_bert_dir), "--tasks", str(beir(tmp_path / "b", corpus=long)), "--output", str(out)]
    run_cli([*argv, "--max_length", "128", "--no_progress"], expect_error=False)
    assert json.loads(out.read_text())["settings"]["max_length"] == 128


def unwritable_outputs(tmp_path: Path) -> list[Path]:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-folder").mkdir()
    return [tmp_path / "a-file" / "results.json", tmp_path / "a-folder"]


@pytest.mark.parametrize("option", ["--output", "--markdown", "--plot"])
def test_unwritable_evaluate_output_fails_before_the_model_loads(tmp_path, run_cli, tiny_bert_dir, monkeypatch, option):
    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded although the output cannot be written")

    monkeypatch.setattr("biohicl.models.model.load_model", no_work)
    folder = beir(tmp_path / "b")
    for target in unwritable_outputs(tmp_path):
        argv = ["evaluate", str(tiny_bert_dir), "--tasks", str(folder), option, str(target)]
        result = run_cli(argv if option == "--output" else [*argv, "--output", str(tmp_path / "r.json")])
        assert str(target) in result.err and ("is a folder" in result.err or "cannot write here" in result.err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder", "b"]


def test_read_only_results_folder_fails_before_the_evaluation(tmp_path, run_cli, tiny_bert_dir, monkeypatch):
    import errno
    import tempfile

    from biohicl.evaluation import runner

    real_mkstemp = tempfile.mkstemp

    def read_only(*args, **kwargs):  # we run as root: simulate the read-only folder the OS would refuse
        if ".results.json." in str(kwargs.get("prefix", "")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkstemp(*args, **kwargs)

    def no_work(*args, **kwargs):
        raise AssertionError("evaluated although the results cannot be written")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(runner, "evaluate_model", no_work)
    out = tmp_path / "results.json"
    result = run_cli(["evaluate", str(tiny_bert_dir), "--tasks", str(beir(tmp_path / "b")), "--output", str(out)])
    assert "results.json: cannot write here (Read-only file system)" in result.err and not out.exists()


def test_judged_document_ids_missing_from_the_corpus_are_counted_and_reported(tmp_path, caplog):
    # a partial mismatch is allowed (real BEIR sets have a few) but was silent, and it moves nDCG
    folder = beir(tmp_path / "b", qrels=QRELS + "q1\tgone\t1\nq2\td9\t2\n")
    with caplog.at_level("WARNING", logger="biohicl.evaluation.retrieval"):
        data = load_beir(folder)
    assert data.unknown_judgements == 2
    assert len(caplog.records) == 1
    assert "test.tsv: 2 judgement(s) of 4 name a document id not in corpus.jsonl (e.g. 'gone' for query 'q1')" in (
        caplog.records[0].getMessage()
    )
    result = evaluate_beir(BagOfLetters(), folder)
    assert "2 judgement(s) name a document not in the corpus" in result.protocol
    assert load_beir(beir(tmp_path / "clean")).unknown_judgements == 0


def test_default_output_of_two_runs_with_the_same_last_part_differs(tmp_path, monkeypatch):
    # `biohicl evaluate runs/a/seed3` then `runs/b/seed3` both wrote results/seed3.json: the second replaced the first
    from biohicl.cli.evaluate import default_output

    monkeypatch.chdir(tmp_path)
    for run in ("runs/a/seed3", "runs/b/seed3"):
        (tmp_path / run).mkdir(parents=True)
    first = default_output("seed3 (LoRA over org/base)", "runs/a/seed3")
    assert first == Path("results/runs_a_seed3.json")
    assert default_output("seed3 (LoRA over org/base)", "runs/b/seed3") == Path("results/runs_b_seed3.json")
    assert default_output("x", str(tmp_path / "runs/a/seed3/")) == first  # however the folder is written
    # a merged run records its base's id: it must not take the base's results file
    assert default_output("org/base", "runs/b/seed3") != default_output("org/base", "org/base")
    assert default_output("org/base", "org/base") == Path("results/org_base.json")

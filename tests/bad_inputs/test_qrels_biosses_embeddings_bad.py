"""Bad input into evaluation, indexing and encoding found by review (session 34): fractional or all-zero qrels
grades, NaN embeddings stored by ``index``/``encode``, a BIOSSES file with a non-UTF-8 byte or a NaN score, an empty
corpus or text file, a non-finite ``--target``, a results file with a byte-order mark and a task given twice."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from biohicl.errors import ConfigError, DataError
from biohicl.evaluation.qrels import read_qrels
from biohicl.evaluation.retrieval import load_beir
from biohicl.evaluation.runner import plan_tasks
from biohicl.evaluation.significance import ItemValues, paired_bootstrap
from biohicl.evaluation.sts import load_biosses
from biohicl.jsonio import read_json
from tests.bad_inputs.test_evaluation_bad import beir
from tests.conftest import TINY_VOCAB, build_tiny_bert


# ----------------------------------------------------------------------------------------------- qrels grades
@pytest.mark.parametrize(
    ("qrels", "message"),
    [
        ("q1\td1\t0.9\nq2\td2\t1\n", r"line 1: score '0\.9' is not an integer grade"),
        ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t0.5\n", r"line 3: score '0\.5' is not an integer grade"),
        ("q1 0 d1 1\nq2 0 d2 2.5\n", r"line 2: relevance \(the 4th field of a TREC line\) '2\.5' is not an integer"),
    ],
)
def test_a_fractional_grade_is_refused_naming_its_line(tmp_path, qrels, message):
    """``int(float('0.9'))`` made every judgement 0, so every metric was 0.0000 with exit 0 (BEIR's loader refuses)."""
    folder = beir(tmp_path / "b", qrels=qrels)
    with pytest.raises(DataError, match=r"qrels/test\.tsv: " + message):
        load_beir(folder)


def test_a_whole_grade_written_as_a_decimal_reads_as_its_integer(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_text("q1\td1\t1.0\nq1\td2\t0\nq2\td3\t2.00\n")
    assert read_qrels(path) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}


@pytest.mark.parametrize("qrels", ["q1\td1\t0\nq2\td2\t0\n", "q1 0 d1 0\nq2 0 d2 -1\n"])
def test_qrels_judging_no_document_relevant_are_refused(tmp_path, qrels):
    """Every metric of qrels with no grade above 0 is 0 whatever the ranking: not a measurement."""
    path = tmp_path / "test.tsv"
    path.write_text(qrels)
    with pytest.raises(DataError, match=r"test\.tsv: no judgement grades a document relevant \(all 2 grades are 0 or"):
        read_qrels(path)


# ----------------------------------------------------------------------------------------------- NaN embeddings
@pytest.fixture(scope="module")
def nan_model_dir(tmp_path_factory) -> Path:
    """A tiny BERT whose word embedding of `z` is inf: a text with a `z` encodes to NaN, any other text is finite."""
    from safetensors.torch import load_file, save_file

    folder = build_tiny_bert(tmp_path_factory.mktemp("nan-bert"))
    weights = load_file(folder / "model.safetensors")
    key = next(k for k in weights if "word_embeddings" in k)
    weights[key][TINY_VOCAB.index("z")] = float("inf")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def write_corpus(path: Path, zebra_at: int, count: int = 6) -> Path:
    lines = [{"_id": f"d{i}", "title": f"t{i}", "text": ("zebra " if i == zebra_at else "") + f"cells {i} heart"}
             for i in range(count)]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_the_nan_model_gives_nan_only_for_a_text_with_z(nan_model_dir):
    from biohicl.models.model import BioHiCL

    rows = BioHiCL.from_pretrained(str(nan_model_dir), device="cpu").encode(
        ["zebra heart", "heart"], convert_to="torch"
    )
    assert torch.isnan(rows[0]).all() and torch.isfinite(rows[1]).all()


def test_index_refuses_a_nan_row_naming_the_document_and_keeps_the_shards_before_it(nan_model_dir, tmp_path, run_cli):
    """The NaN row was stored and `search` ranked it first (``1. nan d2 t2``)."""
    corpus = write_corpus(tmp_path / "cz.jsonl", zebra_at=3)
    out = tmp_path / "idx"
    argv = ["index", str(corpus), "--model", str(nan_model_dir), "--output", str(out), "--device", "cpu"]
    result = run_cli([*argv, "--shard_size", "2", "--no_progress"])
    assert f"{corpus}: line 4: document 'd3': the encoder returned NaN or inf embeddings" in result.err
    assert "shard 1 was not written" in result.err
    assert (out / "shard-00000.safetensors").is_file()  # the finished shard is kept: a rerun resumes from it
    assert not (out / "shard-00001.safetensors").exists() and not (out / "manifest.json").exists()


def test_build_index_refuses_a_nan_row_and_a_fresh_folder_is_undone(nan_model_dir, tmp_path):
    from biohicl.models.model import BioHiCL
    from biohicl.search.indexing import build_index

    model = BioHiCL.from_pretrained(str(nan_model_dir), device="cpu")
    corpus = write_corpus(tmp_path / "cz.jsonl", zebra_at=0)
    with pytest.raises(DataError, match=r"cz\.jsonl: line 1: document 'd0': the encoder returned NaN"):
        build_index(model, corpus, tmp_path / "idx", shard_size=4, show_progress_bar=False)
    assert not (tmp_path / "idx").exists()  # no shard was written: a corrected rerun is not refused


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("cz.jsonl", None, r"cz\.jsonl: line 3: document 'd2': the encoder returned NaN or inf embeddings"),
        ("q.txt", "heart\ncells\nzebra\n", r"q\.txt: line 3: the encoder returned NaN or inf embeddings"),
    ],
)
def test_encode_refuses_a_nan_row_naming_its_line_and_writes_nothing(
    nan_model_dir, tmp_path, run_cli, name, text, message
):
    source = tmp_path / name
    write_corpus(source, zebra_at=2) if text is None else source.write_text(text)
    out = tmp_path / "e.st"
    out.write_bytes(b"earlier")
    result = run_cli(["encode", "--model", str(nan_model_dir), "--input", str(source), "--output", str(out),
                      "--device", "cpu", "--no_progress"])  # fmt: skip
    assert re.search(message, result.err), result.err
    assert out.read_bytes() == b"earlier"


def test_index_rerun_after_a_nan_refusal_resumes_the_kept_shard(nan_model_dir, tmp_path):
    """Loses nothing already done: the kept shard is reused (not re-encoded) once the document is fixed."""
    from biohicl.models.model import BioHiCL
    from biohicl.search.indexing import build_index

    model = BioHiCL.from_pretrained(str(nan_model_dir), device="cpu")
    corpus = write_corpus(tmp_path / "cz.jsonl", zebra_at=3)
    with pytest.raises(DataError):
        build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    kept = (tmp_path / "idx" / "shard-00000.safetensors").read_bytes()
    shutil.copy(write_corpus(tmp_path / "fixed.jsonl", zebra_at=-1), corpus)
    manifest = build_index(model, corpus, tmp_path / "idx", shard_size=2, show_progress_bar=False)
    assert manifest.count == 6 and (tmp_path / "idx" / "shard-00000.safetensors").read_bytes() == kept


# ----------------------------------------------------------------------------------------------- BIOSSES
def biosses_copy(data_dir: Path, folder: Path, change) -> Path:
    lines = (data_dir / "biosses" / "biosses.tsv").read_bytes().split(b"\n")
    change(lines)
    (folder / "biosses").mkdir(parents=True)
    (folder / "biosses" / "biosses.tsv").write_bytes(b"\n".join(lines))
    return folder / "biosses" / "biosses.tsv"


def _latin1(lines):
    lines[4] = lines[4].replace(b"the ", b"th\xe9 ", 1)


def _nan(lines):
    lines[5] = b"\t".join([*lines[5].split(b"\t")[:-1], b"nan"])


def _inf(lines):
    lines[2] = b"\t".join([*lines[2].split(b"\t")[:-1], b"inf"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_latin1, r"line 5: cannot decode the line: byte 0xe9 is not UTF-8"),
        (_nan, r"line 6: score_mean 'nan' is not a finite number"),
        (_inf, r"line 3: score_mean 'inf' is not a finite number"),
    ],
)
def test_biosses_bad_byte_or_non_finite_score_is_one_line(data_dir, tmp_path, change, message):
    path = biosses_copy(data_dir, tmp_path, change)
    with pytest.raises(DataError, match=r"biosses\.tsv: " + message):
        load_biosses(path)


@pytest.mark.parametrize("change", [_nan, _latin1])
def test_biosses_bad_line_is_one_line_at_the_cli_before_the_model_loads(
    data_dir, tmp_path, monkeypatch, run_cli, tiny_bert_dir, change
):
    biosses_copy(data_dir, tmp_path, change)
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(tmp_path))
    loaded = []
    monkeypatch.setattr("biohicl.models.model.load_model", lambda *a, **k: loaded.append(a))
    result = run_cli(["evaluate", str(tiny_bert_dir), "--tasks", "biosses", "--device", "cpu",
                      "--output", str(tmp_path / "r.json")])  # fmt: skip
    assert loaded == [] and not (tmp_path / "r.json").exists()
    line = "line 6: score_mean 'nan' is not a finite number" if change is _nan else "line 5: cannot decode the line"
    assert f"{tmp_path}/biosses/biosses.tsv: {line}" in result.err


def test_biosses_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "biosses.tsv"
    path.write_text("id\tsentence1\tsentence2\tscore_mean\n1\ta\tb\t1.0\n\n2\tc\td\tx\n")
    with pytest.raises(DataError, match=r"line 4: score_mean 'x' is not a number"):
        load_biosses(path)


# ----------------------------------------------------------------------------------------------- empty inputs
def test_index_of_an_empty_corpus_is_refused_naming_it(tiny_bert_dir, tmp_path, run_cli):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "idx"
    result = run_cli(["index", "--corpus", str(empty), "--model", str(tiny_bert_dir), "--output", str(out),
                      "--device", "cpu", "--no_progress"])  # fmt: skip
    assert result.err.strip().endswith(f"{empty}: no documents; nothing to index"), result.err
    assert not out.exists()


def test_encode_of_an_empty_text_file_is_refused_naming_it(tiny_bert_dir, tmp_path, run_cli):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "e.st"
    result = run_cli(["encode", "--model", str(tiny_bert_dir), "--input", str(empty), "--output", str(out),
                      "--device", "cpu", "--no_progress"])  # fmt: skip
    assert result.err.strip().endswith(f"{empty}: no texts; nothing to encode"), result.err
    assert not out.exists()


# ----------------------------------------------------------------------------------------------- --target
def item_values(values: list[float]) -> dict[str, ItemValues]:
    ids = tuple(str(i) for i in range(len(values)))
    return {"t": ItemValues(task="t", metric="m", ids=ids, scores=np.asarray(values, dtype=np.float64))}


@pytest.mark.parametrize("target", [math.nan, math.inf, -math.inf])
def test_a_non_finite_target_is_refused(target):
    base, tuned = item_values([0.1, 0.2, 0.3]), item_values([0.2, 0.2, 0.4])
    with pytest.raises(ConfigError, match=rf"^target: {target} is not a finite number"):
        paired_bootstrap(base, [tuned], rounds=100, target=target)
    assert paired_bootstrap(base, [tuned], rounds=100, target=0.01)[0].p_target is not None


def test_target_nan_at_the_cli_is_one_line(tmp_path, run_cli):
    task = {
        "split": "test",
        "main_metric": "m",
        "metrics": {"m": 0.5},
        "per_item": {"ids": ["a", "b"], "scores": [0, 1]},
    }
    record = {"format": 1, "model": {"id": "m"}, "tasks": {"t": task}}
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        path.write_text(json.dumps(record))
    result = run_cli(["evaluate", "--compare", *map(str, paths), "--paired", "--target", "nan"])
    assert "target: nan is not a finite number" in result.err


# ----------------------------------------------------------------------------------------------- BOM, repeats
def test_read_json_accepts_a_byte_order_mark(tmp_path):
    """Every other reader takes an editor's "UTF-8 with BOM"; read_json said `not valid JSON`."""
    path = tmp_path / "r.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"tasks": {"biosses": 1}}).encode())
    assert read_json(path) == {"tasks": {"biosses": 1}}
    path.write_bytes(b'\xef\xbb\xbf{"a": "\xe9"}')  # a bad byte after the mark: its offset in the file
    with pytest.raises(DataError, match=r"r\.json: not UTF-8 \(byte 0xe9 at offset 10\)$"):
        read_json(path)


def test_a_task_given_twice_is_evaluated_once(data_dir):
    assert plan_tasks(["biosses", "pubmedqa", "biosses", "pubmedqa"]) == [("biosses", None), ("pubmedqa", None)]
    assert plan_tasks(["biosses", "biosses"]) == [("biosses", None)]

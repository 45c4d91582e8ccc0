"""Bad input into evaluation, indexing and encoding found by review (session 34): fractional or all-zero qrels
grades, NaN embeddings stored by ``index``/``encode``, a BIOSSES file with a non-UTF-8 byte or a NaN score, an empty
corpus or text file, a non-finite ``--target``, a results file with a byte-order mark and a task given twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from biohicl.errors import DataError
from biohicl.evaluation.qrels import read_qrels
from biohicl.evaluation.retrieval import load_beir
from biohicl.evaluation.sts import load_biosses
from tests.bad_inputs.test_evaluation_bad import beir


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

"""Bad input into evaluation, indexing and encoding found by review (session 34): fractional or all-zero qrels
grades, NaN embeddings stored by ``index``/``encode``, a BIOSSES file with a non-UTF-8 byte or a NaN score, an empty
corpus or text file, a non-finite ``--target``, a results file with a byte-order mark and a task given twice."""

from __future__ import annotations

import pytest

from biohicl.errors import DataError
from biohicl.evaluation.qrels import read_qrels
from biohicl.evaluation.retrieval import load_beir
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

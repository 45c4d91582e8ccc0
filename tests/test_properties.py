"""Property-based tests (hypothesis): SimL is symmetric, in [0, 1], 1 on identical non-empty sets and grows with the
depth of the deepest shared tree node; the readers never crash on arbitrary bytes (they raise DataError or skip)."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biohicl.data.corpus import read_corpus
from biohicl.data.read_report import ReadReport
from biohicl.data.sources import SOURCES, read_records
from biohicl.errors import DataError
from biohicl.mesh.hierarchy import MeshHierarchy

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A small synthetic hierarchy: two trees, depth up to 4, one descriptor with two tree numbers, one with none.
TREES = {
    "D1": ("A01",), "D2": ("A01.001",), "D3": ("A01.001.001",), "D4": ("A01.001.001.001",), "D5": ("A01.001.002",),
    "D6": ("A01.002",), "D7": ("A01.002.001",), "D8": ("B01",), "D9": ("B01.001",), "D10": ("B01.001.001", "A01.002"),
    "D11": (),
}  # fmt: skip
SMALL = MeshHierarchy(names={ui: f"Term {ui}" for ui in TREES}, trees=TREES, version="synthetic")
label_sets = st.lists(st.sampled_from(sorted(TREES)), max_size=5)


def has_nodes(labels) -> bool:
    return any(TREES[ui] for ui in labels)


@FAST
@given(label_sets, label_sets)
def test_siml_is_symmetric_and_in_unit_range(a, b):
    ab, ba = SMALL.label_similarity(a, b), SMALL.label_similarity(b, a)
    assert ab == pytest.approx(ba, abs=1e-12)
    assert -1e-12 <= ab <= 1 + 1e-12
    if not has_nodes(a) or not has_nodes(b):
        assert ab == 0.0


@FAST
@given(label_sets, st.booleans(), st.booleans())
def test_siml_identity(a, ancestors, depth_weight):
    value = SMALL.label_similarity(a, list(reversed(a)), ancestors=ancestors, depth_weight=depth_weight)
    assert value == (pytest.approx(1.0, abs=1e-12) if has_nodes(a) else 0.0)


@FAST
@given(st.lists(label_sets, min_size=1, max_size=6))
def test_similarity_matrix_matches_pairwise_siml(docs):
    matrix = SMALL.similarity_matrix(docs).double()
    assert matrix.shape == (len(docs), len(docs)) and bool((matrix == matrix.T).all())
    assert bool(((matrix >= 0) & (matrix <= 1)).all()) and not bool(matrix.isnan().any())
    for i, a in enumerate(docs):
        for j, b in enumerate(docs):
            assert float(matrix[i, j]) == pytest.approx(SMALL.label_similarity(a, b), abs=1e-6)


def chain(depth: int, diverge_at: int) -> str:
    """A tree number of ``depth`` segments sharing its first ``diverge_at`` segments with ``A01.001.001...``."""
    parts = ["A01"] + ["001"] * (depth - 1)
    if diverge_at < depth:
        parts[diverge_at] = "002" if diverge_at else "B01"
    return ".".join(parts)


@FAST
@given(st.integers(2, 8), st.data())
def test_siml_grows_with_the_depth_of_the_shared_node(depth, data):
    shallow = data.draw(st.integers(0, depth - 1), label="shallow")
    deeper = data.draw(st.integers(shallow + 1, depth), label="deeper")
    trees = {"X": (chain(depth, depth),), "S": (chain(depth, shallow),), "T": (chain(depth, deeper),)}
    mesh = MeshHierarchy(names={k: k for k in trees}, trees=trees)
    s_shallow, s_deeper = mesh.label_similarity(["X"], ["S"]), mesh.label_similarity(["X"], ["T"])
    assert s_shallow < s_deeper
    # hand formula: shared nodes 1..k, each of weight log(d + 1), over the full path's squared norm
    norm = sum(math.log(d + 1) ** 2 for d in range(1, depth + 1))
    assert s_deeper == pytest.approx(sum(math.log(d + 1) ** 2 for d in range(1, deeper + 1)) / norm, abs=1e-9)


# ------------------------------------------------------------------------------------------------ readers
SUFFIX = {"bioasq": ".json", "pubmedqa": ".json", "pubtator": ".txt", "medline": ".xml", "medline-text": ".txt",
          "jsonl": ".jsonl"}  # fmt: skip


def read_bytes(source: str, data: bytes, suffix: str, mesh, strict: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(data)
        report = ReadReport()
        try:
            records = list(read_records(source, path, mesh, strict=strict, report=report))
        except DataError as err:
            assert str(path) in str(err) and "\n" not in str(err)
            return -1
        assert report.kept == len(records) and report.read >= len(records)
        return len(records)


@pytest.mark.parametrize("source", SOURCES)
@FAST
@given(data=st.binary(max_size=300), strict=st.booleans())
def test_readers_never_crash_on_arbitrary_bytes(mesh, source, data, strict):
    read_bytes(source, data, SUFFIX[source], mesh, strict)


@pytest.mark.parametrize("source", SOURCES)
@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=200))
def test_readers_never_crash_on_arbitrary_gzip_bytes(mesh, source, data):
    read_bytes(source, data, SUFFIX[source] + ".gz", mesh, strict=False)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(["Humans", "D003920", "C0001"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["pmid", "abstractText", "meshMajor", "title", "CONTEXTS", "MESHES", "articles"]), inner,
        max_size=4),
    max_leaves=12,
)  # fmt: skip


@pytest.mark.parametrize("source", ["bioasq", "pubmedqa"])
@FAST
@given(value=json_values, cut=st.integers(0, 400))
def test_json_readers_on_json_shaped_input_possibly_truncated(mesh, source, value, cut):
    text = json.dumps({"articles": [value, value]} if source == "bioasq" else {"1": value, "2": value})
    read_bytes(source, text[: max(cut, 1)].encode(), ".json", mesh, strict=False)


jsonl_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["Humans", "D003920", "MESH:D006321", "C012345", "-1", "Heart|Humans", "mentions", "indexing"])
    | st.lists(st.text(max_size=6) | st.sampled_from(["Humans", "D003920"]) | st.integers(), max_size=3)
)
jsonl_lines = (
    st.dictionaries(
        st.sampled_from(["pmid", "id", "_id", "title", "abstract", "text", "mesh", "labels", "label_kind", "year"]),
        jsonl_values,
        max_size=6,
    )
    | jsonl_values
)


@FAST
@given(lines=st.lists(jsonl_lines, max_size=4), strict=st.booleans())
def test_jsonl_reader_on_json_shaped_lines(mesh, lines, strict):
    text = "\n".join(json.dumps(line) for line in lines)
    read_bytes("jsonl", text.encode(), ".jsonl", mesh, strict)


@FAST
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".tsv", ".jsonl.gz"]))
def test_corpus_readers_raise_data_error_or_read(data, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"corpus{suffix}"
        path.write_bytes(data)
        try:
            docs = list(read_corpus(path))
        except DataError as err:
            assert "\n" not in str(err)
            return
        assert all(doc.id for doc in docs)

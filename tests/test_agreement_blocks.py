"""The SimE-SimL agreement computed in row blocks, without n x n float64 temporaries, gives the numbers of the
whole-matrix computation it replaced (kept below as :func:`whole_matrix_alignment`, the reference), on real BioASQ
abstracts with their MeSH indexing; and the dev split is read by whole columns, not row by row."""

from __future__ import annotations

import functools
import itertools
import math
import re
import tracemalloc
import zlib
from decimal import Decimal, localcontext

import numpy as np
import pytest
from scipy.stats import rankdata

from biohicl.data.bioasq import read_bioasq
from biohicl.data.documents import split_documents_with_kinds
from biohicl.data.read_report import ReadReport
from biohicl.evaluation import agreement

DEV, TRAIN, COPIES = 600, 60, 20  # the first COPIES dev abstracts again (new pmids): ties in SimL, equal SimE rows


class HashedWords:
    """A document's longer words (7+ letters) hashed into ``dim`` counts (float32, as a model gives them): SimE that
    follows the text, weakly."""

    def __init__(self, dim: int = 256, salt: int = 0):
        self.dim, self.salt = dim, salt

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        return np.stack([self.vector(text) for text in texts])

    @functools.lru_cache(maxsize=4096)  # noqa: B019 (a test's few encoders)
    def vector(self, text: str) -> np.ndarray:
        out = np.zeros(self.dim, dtype=np.float32)
        for word in re.findall(r"[a-z]{7,}", text.lower()):
            out[zlib.crc32(f"{self.salt}:{word}".encode()) % self.dim] += 1
        return out


class Fixed:
    """Given vectors, whatever the texts."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        return self.vectors


def whole_matrix_alignment(model, texts, labels, mesh, beta=0.3, kinds=None, rank_blocks=False) -> dict:
    """The computation before the row blocks (commit fea472a: ``siml_pairs``, ``SimLPairs.ranks``,
    ``rank_correlation`` and ``siml_alignment`` of its non-degenerate path), verbatim in its arithmetic; with
    ``rank_blocks``, SimE ranked as the row blocks give it (:func:`pair_cosines`), the values the code ranks."""
    from scipy.stats import pearsonr

    from biohicl.evaluation.agreement_pairs import pair_cosines
    from biohicl.mesh.gram import gram_matrix
    from biohicl.mesh.pair_rules import ZERO_TOLERANCE

    clean = [mesh.known_labels(labs) for labs in labels]
    keep = [i for i, labs in enumerate(clean) if labs]
    siml = gram_matrix(mesh.normalized_label_vectors([clean[i] for i in keep]))
    mask = np.triu(np.ones((len(keep), len(keep)), dtype=bool), k=1)
    cross = 0
    if kinds is not None:
        codes = np.unique(np.asarray([str(kinds[i]) for i in keep]), return_inverse=True)[1].ravel()
        same = codes[:, None] == codes[None, :]
        cross = int(np.count_nonzero(mask & ~same))
        mask &= same
    s_l = siml[mask]
    doubled = (2.0 * rankdata(s_l)).astype(np.uint32)
    encoded = model.encode([texts[i] for i in keep], batch_size=32, kind="document", show_progress_bar=None)
    emb = np.asarray(encoded, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    s_e = (emb @ emb.T)[mask]
    positive, zero = s_l > beta, s_l <= ZERO_TOLERANCE
    ranks = doubled.astype(np.float64) * 0.5
    ranked = pair_cosines(emb, mask) if rank_blocks else s_e
    return {
        "documents": len(keep),
        "pairs": len(s_l),
        "spearman": float(np.corrcoef(np.column_stack((rankdata(ranked), ranks)), rowvar=False)[1, 0]),
        "pearson": float(pearsonr(s_e, s_l).statistic),
        "mse_all_pairs": float(np.mean((s_e - s_l) ** 2)),
        "sime_positive_mean": float(s_e[positive].mean()) if positive.any() else float("nan"),
        "sime_zero_mean": float(s_e[zero].mean()) if zero.any() else float("nan"),
        "positive_pairs": int(positive.sum()),
        "zero_pairs": int(zero.sum()),
        "cross_kind_pairs_skipped": cross,
    }


def assert_same_metrics(new: dict, old: dict) -> None:
    """Counts exactly; the means and the two correlations to 1e-12. The means are numpy's sums of the same pairs'
    values, but a BLAS may round a block's cosines otherwise than the whole product's (in the last bit: see
    :func:`test_the_pair_cosines_are_the_whole_products_to_rounding`); the correlations sum in chunks (Pearson) or
    exactly in integers (Spearman), where scipy and numpy sum the whole vectors in floating point."""
    assert new.keys() == old.keys()
    for key in ("documents", "pairs", "positive_pairs", "zero_pairs", "cross_kind_pairs_skipped"):
        assert new[key] == old[key], key
    for key in ("mse_all_pairs", "sime_positive_mean", "sime_zero_mean", "spearman", "pearson"):
        assert new[key] == pytest.approx(old[key], abs=1e-12, rel=0), key


@pytest.fixture(scope="module")
def real_dataset(tmp_path_factory, data_dir, mesh):
    """A built-dataset folder (``documents/*.parquet``) of BioASQ sample abstracts: DEV dev documents plus COPIES
    repeats of the first ones, TRAIN train ones; one label kind (``indexing``) or, in ``mixed``, every fifth
    document ``mentions``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = data_dir / "bioasq_sample" / "bioasq_sample.json"
    records = list(itertools.islice(read_bioasq(path, mesh, report=ReadReport()), DEV + TRAIN))
    rows = [
        {"pmid": r.pmid, "title": r.title, "abstract": r.abstract, "mesh": list(r.mesh), "split": split}
        for r, split in zip(records, ["dev"] * DEV + ["train"] * TRAIN, strict=True)
    ]
    rows[DEV:DEV] = [{**row, "pmid": f"{row['pmid']}-copy"} for row in rows[:COPIES]]
    folders = {}
    for name, kind in (("plain", lambda i: "indexing"), ("mixed", lambda i: "mentions" if i % 5 == 0 else "indexing")):
        folder = tmp_path_factory.mktemp(name)
        (folder / "documents").mkdir()
        table = pa.Table.from_pylist([{**row, "label_kind": kind(i)} for i, row in enumerate(rows)])
        pq.write_table(table, folder / "documents" / "documents-00000.parquet")
        folders[name] = folder
    return folders


@pytest.mark.parametrize("name", ["plain", "mixed"])
def test_the_metrics_are_those_of_the_whole_matrix(real_dataset, mesh, name):
    """The Spearman is compared on the values the code ranks, the block cosines: where a BLAS (OpenBLAS's AVX-512
    kernels, MKL) rounds a block's cosine a last bit off the whole product's, a tie of SimE (the copies' rows, these
    count vectors') splits, and the whole product's Spearman moves by a few 1e-9 (seen: 4.8e-9)."""
    texts, labels, _, kinds = split_documents_with_kinds(real_dataset[name], "dev")
    assert len(texts) == DEV + COPIES
    for model in (HashedWords(), HashedWords(dim=768, salt=1)):
        whole = whole_matrix_alignment(model, texts, labels, mesh, kinds=kinds)
        old = {
            **whole,
            "spearman": whole_matrix_alignment(model, texts, labels, mesh, kinds=kinds, rank_blocks=True)["spearman"],
        }
        assert old["spearman"] == pytest.approx(whole["spearman"], abs=1e-7, rel=0)
        assert old["pairs"] > 100_000 and (old["cross_kind_pairs_skipped"] > 0) == (name == "mixed")
        assert old["positive_pairs"] > 1000 and old["zero_pairs"] > 1000 and 0.02 < old["spearman"] < 0.9
        assert_same_metrics(agreement.siml_alignment(model, texts, labels, mesh, kinds=kinds), old)
        cache = agreement.AgreementCache()  # as training evaluates: SimL and its ranks kept, then a repeat
        with agreement.reusing(cache):
            for _ in range(2):
                result = agreement.evaluate_agreement(model, real_dataset[name])
                assert result.num_queries == old["pairs"] and result.num_documents == old["documents"]
                assert_same_metrics({**old, **result.metrics}, old)


def test_the_pair_cosines_are_the_whole_products_to_rounding(real_dataset, mesh):
    """Row blocks of a multiple of 64 rows: each cosine is the dot product the whole ``emb @ emb.T`` (a BLAS syrk)
    computes, equal to rounding: within 8 ulps of 1 (each is within about one of the exact dot product of unit
    vectors). With OpenBLAS's AVX2 kernels they are the same bits; its AVX-512 kernels and MKL round some of a
    block's pairs otherwise, in the last bits."""
    from biohicl.evaluation.agreement_pairs import pair_cosines

    texts, labels, _, kinds = split_documents_with_kinds(real_dataset["mixed"], "dev")
    pairs = agreement.siml_pairs(labels, mesh, kinds)
    for model in (HashedWords(), HashedWords(dim=768, salt=2)):
        emb = np.asarray(model.encode([texts[i] for i in pairs.keep]), dtype=np.float64)
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        whole = (emb @ emb.T)[pairs.mask]
        for rows in (None, 64, 128, 192, 512, len(emb)):
            cosines = pair_cosines(emb, pairs.mask, rows=rows)
            assert cosines.dtype == np.float64 and cosines.flags.c_contiguous
            np.testing.assert_allclose(cosines, whole, rtol=0, atol=8 * np.finfo(np.float64).eps)
    upper = np.triu(np.ones((3, 3), dtype=bool), k=1)
    assert pair_cosines(np.eye(3), upper).tolist() == [0.0, 0.0, 0.0]
    assert pair_cosines(np.ones((1, 4)), np.zeros((1, 1), dtype=bool)).shape == (0,)


def test_doubled_ranks_are_twice_scipys_average_ranks():
    from biohicl.evaluation.agreement_pairs import doubled_ranks

    rng = np.random.default_rng(0)
    cases = [
        np.array([0.5]),
        np.array([2.0, 2.0, 2.0]),
        np.array([0.0, -0.0, 1.0, -0.0]),  # -0.0 == 0.0: one tie, as rankdata's comparison has it
        rng.integers(0, 4, 1000).astype(np.float32),  # long ties across chunks
        rng.standard_normal(5000),
        np.round(rng.standard_normal(20_000), 2).astype(np.float32),
    ]
    for values, chunk in itertools.product(cases, (None, 1, 3, 64)):
        doubled = doubled_ranks(values, chunk=chunk)
        assert doubled.dtype == np.uint32
        np.testing.assert_array_equal(doubled, (2 * rankdata(values)).astype(np.int64))


def test_the_spearman_is_the_exact_correlation_of_the_ranks(real_dataset, mesh):
    """Integer sums of the doubled ranks: exact, so the correlation is the true one to a few ulps; numpy's float
    ``corrcoef`` of the same ranks (the reference's) is within 1e-12 of it."""
    from biohicl.evaluation.agreement_pairs import doubled_ranks, rank_correlation_of

    texts, labels, _, kinds = split_documents_with_kinds(real_dataset["plain"], "dev")
    pairs = agreement.siml_pairs(labels, mesh, kinds)
    emb = np.asarray(HashedWords().encode([texts[i] for i in pairs.keep]), dtype=np.float64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    s_e = (emb @ emb.T)[pairs.mask]
    a, b = doubled_ranks(s_e), doubled_ranks(pairs.siml)
    rho = rank_correlation_of(a, b)
    n, sa, sb = len(a), int(a.astype(np.int64).sum()), int(b.astype(np.int64).sum())
    saa, sbb = int(np.dot(a.astype(np.int64), a)), int(np.dot(b.astype(np.int64), b))
    sab = int(np.dot(a.astype(np.int64), b))
    with localcontext() as context:
        context.prec = 60
        exact = Decimal(n * sab - sa * sb) / (Decimal(n * saa - sa * sa) * Decimal(n * sbb - sb * sb)).sqrt()
    assert abs(rho - float(exact)) <= 4 * math.ulp(rho)
    assert rho == pytest.approx(np.corrcoef(rankdata(s_e), rankdata(pairs.siml))[0, 1], abs=1e-12, rel=0)
    assert rank_correlation_of(a, a) == 1.0 and rank_correlation_of(a, 2 * n + 2 - a.astype(np.int64)) == -1.0


def test_a_repeat_evaluation_holds_about_20_bytes_a_pair(real_dataset, mesh):
    """With SimL and its ranks kept (a training run's repeat evaluation), the evaluation's numpy peak is SimE
    (8 bytes a pair), its sort order (8) and its ranks (4) plus blocks: the whole-matrix computation held ~70 (the
    n x n products, float64 copies of the ranks, a stacked copy for ``corrcoef``, scipy's temporaries)."""
    texts, labels, _, kinds = split_documents_with_kinds(real_dataset["plain"], "dev")
    pairs = agreement.siml_pairs(labels, mesh, kinds)
    pairs.doubled_ranks()  # kept, as a training run's repeat evaluation holds it
    model = Fixed(HashedWords(dim=64).encode([texts[i] for i in pairs.keep]))
    tracemalloc.start()
    try:
        agreement.siml_alignment(model, texts, labels, mesh, pairs=pairs)
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        agreement.siml_alignment(model, texts, labels, mesh, pairs=pairs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_pair = (peak - before) / len(pairs.siml)
    print(f"{per_pair:.2f} bytes a pair")
    assert per_pair < 24, f"{per_pair:.1f} bytes a pair"


def test_the_split_is_read_by_whole_columns(real_dataset, tmp_path, monkeypatch):
    """``documents["split"]`` iterated formats every row (2.1 s of 6.4 s at 80,000 documents): the split, the
    kinds and the kept rows are read through arrow, with the values a row-by-row read gives."""
    import shutil

    import datasets

    folder = real_dataset["mixed"]
    expected = {(split, limit): _row_by_row(folder, split, limit) for split in ("dev", "train") for limit in (None, 50)}
    file = tmp_path / "docs.parquet"  # a documents file: its texts and labels read as training reads the file
    shutil.copyfile(folder / "documents" / "documents-00000.parquet", file)

    def row_by_row(self):
        raise AssertionError(f"{self.column_name} read row by row")

    monkeypatch.setattr(datasets.arrow_dataset.Column, "__iter__", row_by_row)
    for (split, limit), values in expected.items():
        assert split_documents_with_kinds(folder, split, limit=limit) == values
        texts, labels, pmids, kinds = split_documents_with_kinds(file, split, limit=limit)
        assert (pmids, kinds) == values[2:] and len(texts) == len(labels) == len(pmids)
    assert len(expected["dev", None][0]) == DEV + COPIES and len(expected["train", 50][0]) == 50
    assert expected["dev", None][3].count("mentions") == (DEV + COPIES + 4) // 5


def _row_by_row(path, split, limit):
    """``split_documents_with_kinds`` of a built dataset as it read before: the split column and rows one by one."""
    from biohicl.data.documents import document_text, read_documents
    from biohicl.data.records import INDEXING

    documents = read_documents(path)
    keep = [i for i, s in enumerate(documents["split"]) if s == split]
    rows = documents.select(keep[:limit] if limit is not None else keep)
    texts = [document_text(r) for r in rows]
    labels = [list(r["mesh"] or ()) for r in rows]
    pmids = [str(r.get("pmid", i)) for i, r in enumerate(rows)]
    kinds = [str(k or INDEXING) for k in rows["label_kind"]]
    return texts, labels, pmids, kinds


def test_the_memory_benchmark_runs_at_a_tiny_size():
    """``benchmarks/bench_agreement_memory.py`` measures both ways in one run and fails when the metrics differ
    (counts exactly, the means and Pearson to 1e-12, the Spearman to 1e-7: a tie a BLAS rounds apart moves it)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = root / "benchmarks" / "bench_agreement_memory.py"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    out = subprocess.run(
        [sys.executable, str(script), "--docs", "150", "--repeat", "1"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "150 dev documents, 11,175 pairs" in out.stdout
    assert re.search(
        r"metrics: counts and means equal (bit for bit|to rounding \(largest \|Δ\| [0-9.e+-]+\))", out.stdout
    )

"""A training run's evaluator keeps what the SimE-SimL agreement of its dataset does not owe to the model (the dev
split, SimL of the pairs and their ranks): a repeat evaluation reads nothing and builds no SimL, with the numbers of
an evaluation from scratch."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy.stats import ConstantInputWarning, pearsonr, rankdata, spearmanr

from biohicl.data import documents
from biohicl.evaluation import agreement
from biohicl.evaluation.evaluator import TaskEvaluator
from biohicl.evaluation.runner import evaluate_model
from biohicl.mesh import gram


class RandomEncoder:
    """A fixed random vector per text (``seed``: another model)."""

    def __init__(self, seed: int, dim: int = 8):
        self.seed, self.dim = seed, dim

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        return np.asarray(
            [np.random.default_rng([self.seed, sum(map(ord, t)), len(t)]).standard_normal(self.dim) for t in texts]
        )


def write_documents(path, mesh, count: int = 60, seed: int = 0) -> None:
    """A documents file of :func:`documents_rows`."""
    path.write_text("".join(json.dumps(r) + "\n" for r in documents_rows(mesh, count, seed)))


def documents_rows(mesh, count: int = 60, seed: int = 0) -> list[dict]:
    """``count`` dev documents (and a few train ones) of two label kinds, labelled with 1-2 of 12 descriptors of the
    cardiovascular and nutritional trees (many equal SimL values: ties), one with no label the hierarchy places."""
    uis = sorted(ui for ui, tns in mesh.trees.items() if any(tn.startswith(("C14.280", "C18.452")) for tn in tns))[:12]
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count + 5):
        labels = list(rng.choice(uis, size=1 + (i % 5 == 0), replace=False)) if i != 3 else ["D999999"]
        rows.append({"pmid": str(i), "title": f"T{i}", "abstract": f"abstract {i} {rng.integers(1000)}",
                     "mesh": labels, "label_kind": "mentions" if i % 3 == 0 else "indexing",
                     "split": "dev" if i < count else "train"})  # fmt: skip
    return rows


@pytest.fixture
def counted(monkeypatch):
    """Counts of SimL matrices built and dev splits read."""
    calls = {"gram_matrix": 0, "reads": 0}
    build, read = gram.gram_matrix, documents.split_documents_with_kinds

    def gram_matrix(*args, **kwargs):
        calls["gram_matrix"] += 1
        return build(*args, **kwargs)

    def split_documents_with_kinds(*args, **kwargs):
        calls["reads"] += 1
        return read(*args, **kwargs)

    monkeypatch.setattr(gram, "gram_matrix", gram_matrix)
    monkeypatch.setattr(documents, "split_documents_with_kinds", split_documents_with_kinds)
    return calls


def test_a_task_evaluator_builds_siml_and_reads_the_split_once(tmp_path, mesh, counted):
    path = tmp_path / "docs.jsonl"
    write_documents(path, mesh)
    evaluator = TaskEvaluator([f"siml-agreement@{path}"])
    first, second = evaluator(RandomEncoder(1)), evaluator(RandomEncoder(2))
    # before: SimL built at each evaluation, the split read twice at each (the pre-flight, then the task)
    assert counted == {"gram_matrix": 1, "reads": 1}
    assert first.keys() == second.keys() == {"siml-agreement_spearman"}
    assert first != second  # the second model's own numbers
    for seed, metrics in ((1, first), (2, second)):
        alone = evaluate_model(RandomEncoder(seed), [f"siml-agreement@{path}"])["summary"]
        assert metrics["siml-agreement_spearman"] == pytest.approx(alone["siml-agreement/spearman"], abs=1e-12)
    evaluator.metric_names()  # the pre-flight of an evaluator that read the split: nothing read again
    assert counted == {"gram_matrix": 1 + 2, "reads": 1 + 2 * 2}  # (+ the two one-off evaluations above)


def test_a_repeat_evaluation_gives_the_record_of_one_from_scratch(tmp_path, mesh, counted):
    path = tmp_path / "docs.jsonl"
    write_documents(path, mesh)
    task = f"siml-agreement@{path}"
    for limit in (None, 40):
        cache = agreement.AgreementCache()
        with agreement.reusing(cache):
            evaluate_model(RandomEncoder(1), [task], limit_queries=limit)
            repeat = evaluate_model(RandomEncoder(2), [task], limit_queries=limit)["tasks"]["siml-agreement"]
        alone = evaluate_model(RandomEncoder(2), [task], limit_queries=limit)["tasks"]["siml-agreement"]
        assert repeat.keys() == alone.keys() and repeat["metrics"].keys() == alone["metrics"].keys()
        assert len(repeat["metrics"]) == 5 and repeat["num_queries"] == alone["num_queries"] > 100
        assert repeat["metrics"] == pytest.approx(alone["metrics"], abs=1e-12, rel=0)
        for key in ("protocol", "data_files", "num_documents", "split", "main_metric"):
            assert repeat[key] == alone[key]
    assert "left out" in alone["protocol"]  # two label kinds: the cross-kind pairs are not measured


def test_the_cached_spearman_is_scipys(mesh):
    rows = [r for r in documents_rows(mesh) if r["split"] == "dev"]
    texts, labels, kinds = [r["title"] for r in rows], [r["mesh"] for r in rows], [r["label_kind"] for r in rows]
    pairs = agreement.siml_pairs(labels, mesh, kinds)
    assert pairs.cross > 0 and len(np.unique(pairs.siml)) < len(pairs.siml) / 4  # kinds apart, many ties
    np.testing.assert_array_equal(pairs.doubled_ranks(), 2 * rankdata(pairs.siml))  # what siml_alignment reads
    model = RandomEncoder(3)
    stats = agreement.siml_alignment(model, texts, labels, mesh, kinds=kinds, pairs=pairs)
    assert stats == agreement.siml_alignment(model, texts, labels, mesh, kinds=kinds)
    emb = model.encode([texts[i] for i in pairs.keep])
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sime = (emb @ emb.T)[pairs.mask]
    assert stats["spearman"] == pytest.approx(spearmanr(sime, pairs.siml).statistic, abs=1e-12, rel=0)
    assert stats["pearson"] == pytest.approx(pearsonr(sime, pairs.siml).statistic, abs=1e-12, rel=0)
    with pytest.warns(ConstantInputWarning):  # constant SimE, as scipy: undefined
        assert np.isnan(agreement.rank_correlation(np.ones(len(pairs.siml)), pairs))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(agreement.rank_correlation(np.r_[np.nan, sime[1:]], pairs))


def test_a_changed_documents_file_is_read_again(tmp_path, mesh, counted):
    path = tmp_path / "docs.jsonl"
    write_documents(path, mesh)
    evaluator = TaskEvaluator([f"siml-agreement@{path}"])
    evaluator(RandomEncoder(1))
    write_documents(path, mesh, count=30, seed=5)
    changed = evaluator(RandomEncoder(1))
    alone = evaluate_model(RandomEncoder(1), [f"siml-agreement@{path}"])["summary"]
    assert changed["siml-agreement_spearman"] == pytest.approx(alone["siml-agreement/spearman"], abs=1e-12)
    assert counted["gram_matrix"] == 3


def save_documents(folder, mesh, count: int, seed: int) -> None:
    """A dataset folder as ``DatasetDict.save_to_disk`` writes it (arrow files, no parquet) with a ``documents``
    config of :func:`documents_rows`."""
    import datasets

    datasets.DatasetDict({"documents": datasets.Dataset.from_list(documents_rows(mesh, count, seed))}).save_to_disk(
        str(folder)
    )


def test_a_changed_save_to_disk_dataset_is_read_again(tmp_path, mesh, counted):
    folder = tmp_path / "saved"
    save_documents(folder, mesh, count=60, seed=0)
    evaluator = TaskEvaluator([f"siml-agreement@{folder}"])
    evaluator(RandomEncoder(1))
    assert counted["reads"] == 1
    save_documents(folder, mesh, count=30, seed=5)
    changed = evaluator(RandomEncoder(1))
    assert counted["reads"] == 2  # before: kept, as the folder has no parquet file to watch
    alone = evaluate_model(RandomEncoder(1), [f"siml-agreement@{folder}"])["summary"]
    assert changed["siml-agreement_spearman"] == pytest.approx(alone["siml-agreement/spearman"], abs=1e-12)
    evaluator(RandomEncoder(1))
    assert counted["reads"] == 2 + 2  # unchanged since: kept (+ the one-off evaluation above: pre-flight, task)


def test_a_save_to_disk_datasets_record_names_its_files(tmp_path, mesh):
    """The result's ``data_files`` (what a study compares to tell another dataset) are the files the cache watches:
    a ``save_to_disk`` folder's arrow files, so a changed dataset there gives other checksums."""
    from biohicl.evaluation.agreement import agreement_data_files

    folder = tmp_path / "saved"
    save_documents(folder, mesh, count=60, seed=0)
    first = agreement_data_files(folder)
    assert any(name.endswith(".arrow") for name in first)
    import datasets  # a user's .map writes a cache-*.arrow beside the data: not a file the agreement reads

    datasets.load_from_disk(str(folder))["documents"].map(lambda row: {"extra": 1})
    assert any(f.name.startswith("cache-") for f in (folder / "documents").iterdir())
    assert agreement_data_files(folder) == first
    save_documents(folder, mesh, count=30, seed=5)
    assert agreement_data_files(folder) != first

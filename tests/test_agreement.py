"""SimE-vs-SimL agreement: a model whose embeddings are the label vectors themselves agrees perfectly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import label_vector_powers
from scipy.stats import pearsonr

from biohicl.evaluation.agreement import siml_alignment


class LabelVectorModel:
    """Embeds a document as its normalised MeSH vector (+ optional noise): SimE = SimL exactly when noise = 0
    (SimE = SimL ** power with ``power``)."""

    def __init__(self, mesh, labels, noise=0.0, power=1):
        self.vectors = label_vector_powers(mesh, labels, power)
        self.index = {f"doc {i}": i for i in range(len(labels))}
        self.noise = noise

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        rows = self.vectors[[self.index[t] for t in texts]]
        return rows + self.noise * np.random.default_rng(0).standard_normal(rows.shape)


def test_perfect_agreement_and_pair_counts(mesh):
    labels = [["D003920"], ["D003924"], ["D009203"], ["D006333"], ["D001943"], []]
    texts = [f"doc {i}" for i in range(len(labels))]
    result = siml_alignment(LabelVectorModel(mesh, labels), texts, labels, mesh)
    assert result["documents"] == 5 and result["pairs"] == 10  # the unlabelled document is left out
    assert result["spearman"] == pytest.approx(1.0) and result["mse_all_pairs"] == pytest.approx(0.0, abs=1e-12)
    # one positive: diabetes / its type 2 (0.778); MI and heart failure share only C14 and C14.280 (SimL ≤ β)
    assert mesh.label_similarity(["D009203"], ["D006333"]) <= 0.3
    assert result["positive_pairs"] == 1
    assert result["sime_zero_mean"] == pytest.approx(0.0, abs=1e-12)
    noisy = siml_alignment(LabelVectorModel(mesh, labels, noise=0.5), texts, labels, mesh)
    assert noisy["spearman"] < 1.0

    # SimE = SimL³: the same order (Spearman 1), not a linear relation (Pearson < 1, as scipy computes it on the
    # pairs' SimL from label_similarity)
    cubed = siml_alignment(LabelVectorModel(mesh, labels, power=3), texts, labels, mesh)
    siml = np.array([mesh.label_similarity(labels[i], labels[j]) for i in range(5) for j in range(i + 1, 5)])
    assert len(set(np.round(siml, 6))) >= 3  # 0, MI / heart failure's, diabetes / type 2's
    assert cubed["spearman"] == pytest.approx(1.0, abs=1e-12)
    assert cubed["pearson"] == pytest.approx(pearsonr(siml**3, siml).statistic, abs=1e-7)
    assert cubed["pearson"] < 0.99
    assert cubed["mse_all_pairs"] == pytest.approx(np.mean((siml**3 - siml) ** 2), abs=1e-9)


class FixedVectorModel:
    """Embeds each text as the vector given for it."""

    def __init__(self, vectors):
        self.vectors = vectors

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        return np.asarray([self.vectors[t] for t in texts], dtype=np.float64)


def test_agreement_statistics_by_hand(mesh):
    # SimL: a = b (diabetes), c = d (breast neoplasms), the two topics share no tree node: 1 for ab and cd, else 0
    labels = [["D003920"], ["D003920"], ["D001943"], ["D001943"]]
    vectors = {"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [0.0, 1.0], "d": [0.0, 2.0]}
    result = siml_alignment(FixedVectorModel(vectors), list(vectors), labels, mesh)
    # pairs ab ac ad bc bd cd: SimE 0.6 0 0 0.8 0.8 1, SimL 1 0 0 0 0 1
    assert (result["pairs"], result["positive_pairs"], result["zero_pairs"]) == (6, 2, 4)
    assert result["mse_all_pairs"] == pytest.approx((0.4**2 + 0.8**2 + 0.8**2) / 6, abs=1e-12)  # 0.24
    assert result["sime_zero_mean"] == pytest.approx((0 + 0 + 0.8 + 0.8) / 4, abs=1e-12)  # 0.4
    assert result["sime_positive_mean"] == pytest.approx((0.6 + 1.0) / 2, abs=1e-12)  # 0.8


def test_mixed_label_kinds_pair_within_a_kind_only(mesh):
    # indexing a b c, mentions d e (and an unlabelled f): SimL never compares the two kinds, so the pairs are
    # ab ac bc (indexing) and de (mentions); the 6 pairs across kinds are left out
    labels = [["D003920"], ["D003920"], ["D001943"], ["D003920"], ["D003920"], []]
    kinds = ["indexing", "indexing", "indexing", "mentions", "mentions", "mentions"]
    vectors = {"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [0.0, 1.0], "d": [1.0, 0.0], "e": [0.8, 0.6], "f": [0.0, 1.0]}
    result = siml_alignment(FixedVectorModel(vectors), list(vectors), labels, mesh, kinds=kinds)
    from scipy.stats import spearmanr

    sime, siml = [0.6, 0.0, 0.8, 0.8], [1.0, 0.0, 0.0, 1.0]  # ab ac bc de
    assert (result["documents"], result["pairs"], result["cross_kind_pairs_skipped"]) == (5, 4, 6)
    assert result["spearman"] == pytest.approx(spearmanr(sime, siml).statistic, abs=1e-12)
    assert result["pearson"] == pytest.approx(pearsonr(sime, siml).statistic, abs=1e-12)
    assert result["mse_all_pairs"] == pytest.approx((0.4**2 + 0.8**2 + 0.2**2) / 4, abs=1e-12)  # 0.21
    assert result["sime_positive_mean"] == pytest.approx((0.6 + 0.8) / 2, abs=1e-12)
    assert result["sime_zero_mean"] == pytest.approx((0.0 + 0.8) / 2, abs=1e-12)
    # across kinds, the mixed pairs would count: all 10 pairs of the 5 labelled documents
    assert siml_alignment(FixedVectorModel(vectors), list(vectors), labels, mesh)["pairs"] == 10


def test_one_label_kind_gives_the_numbers_without_kinds(mesh):
    labels = [["D003920"], ["D003924"], ["D009203"], ["D006333"], ["D001943"], []]
    texts = [f"doc {i}" for i in range(len(labels))]
    model = LabelVectorModel(mesh, labels, noise=0.5)
    plain = siml_alignment(model, texts, labels, mesh)
    kinded = siml_alignment(model, texts, labels, mesh, kinds=["indexing"] * len(labels))
    assert kinded == plain and plain["cross_kind_pairs_skipped"] == 0 and plain["pairs"] == 10

"""SimE-vs-SimL agreement: a model whose embeddings are the label vectors themselves agrees perfectly."""

from __future__ import annotations

import numpy as np
import pytest

from biohicl.training.diagnostics import siml_alignment


class LabelVectorModel:
    """Embeds a document as its normalised MeSH vector (+ optional noise): SimE = SimL exactly when noise = 0."""

    def __init__(self, mesh, labels, noise=0.0):
        self.vectors = mesh.normalized_label_vectors(labels).toarray()
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

"""An :class:`~biohicl.evaluation.encoder.Encoder` may return a torch tensor (``BioHiCL.encode(convert_to="torch")``
does): every task reads its rows as the same numbers an array gives, a bfloat16 tensor included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biohicl.evaluation import dense_retrieve
from biohicl.evaluation.agreement import siml_alignment
from biohicl.evaluation.cache import encoder_fingerprint
from biohicl.evaluation.sts import evaluate_biosses

VOCAB = ["insulin", "tumor", "heart", "brain", "virus"]


class WordCounts:
    """A text as its counts of VOCAB words (plus 0.5, so no row is zero), as ``dtype``: a numpy array or a tensor."""

    def __init__(self, tensor_dtype: torch.dtype | None = None):
        self.tensor_dtype = tensor_dtype

    def encode(self, texts, *, batch_size=32, kind="document", show_progress_bar=None):
        rows = np.asarray([[t.split().count(w) for w in VOCAB] + [0.5] for t in texts], dtype=np.float32)
        return rows if self.tensor_dtype is None else torch.from_numpy(rows).to(self.tensor_dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tasks_read_a_tensor_as_the_array_it_holds(tmp_path, mesh, dtype):
    path = tmp_path / "biosses.tsv"
    rows = [("insulin", "insulin", 4.0), ("insulin", "insulin heart", 3.0), ("heart", "brain tumor", 1.0)]
    lines = [f"{i}\t{a}\t{b}\t{s}\n" for i, (a, b, s) in enumerate(rows)]
    path.write_text("id\tsentence1\tsentence2\tscore_mean\n" + "".join(lines))
    arrays, tensors = WordCounts(), WordCounts(dtype)  # the counts and 0.5 are exact in bfloat16
    assert evaluate_biosses(tensors, path).metrics == evaluate_biosses(arrays, path).metrics
    queries, corpus = {"q": "heart"}, {"a": "insulin", "b": "heart heart", "c": "brain heart"}
    assert dense_retrieve(tensors, queries, corpus, top_k=2) == dense_retrieve(arrays, queries, corpus, top_k=2)
    assert encoder_fingerprint(tensors) == encoder_fingerprint(arrays)
    texts = ["insulin heart", "insulin", "heart tumor", "tumor"]
    labels = [["D003920"], ["D003924"], ["D009203"], ["D006333"]]  # two diabetes, two heart diseases
    alignment = siml_alignment(arrays, texts, labels, mesh)
    assert np.isfinite(alignment["spearman"]) and siml_alignment(tensors, texts, labels, mesh) == alignment

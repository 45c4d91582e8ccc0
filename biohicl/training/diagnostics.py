"""Did training teach the hierarchy? SimE vs. SimL agreement on held-out MeSH-indexed abstracts.

This measures the training objective itself, independently of any downstream task: over every pair of held-out
documents (e.g. PubMedQA's 500 test abstracts, never trained on), the rank correlation between the embedding
cosine SimE and the MeSH similarity SimL, and the mean SimE of related (SimL > β) and unrelated (SimL = 0) pairs.

    python scripts/siml_alignment.py sentence-transformers/all-MiniLM-L6-v2 runs/minilm-biohicl --max_length 256
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from biohicl.mesh.gram import gram_matrix
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.mesh.pair_rules import ZERO_TOLERANCE


def siml_alignment(
    model: Any,
    texts: Sequence[str],
    labels: Sequence[Sequence[str]],
    mesh: MeshHierarchy | None = None,
    beta: float = 0.3,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
    kinds: Sequence[str] | None = None,
) -> dict[str, float]:
    """Agreement of SimE (``model.encode``) with SimL over all pairs ``i < j`` of the given documents; with
    ``kinds`` (each document's ``label_kind``), over the pairs of one kind only: SimL never compares an
    indexing-labelled with a mention-labelled document (one kind: every pair, the same numbers)."""
    from scipy.stats import pearsonr, spearmanr

    mesh = mesh or MeshHierarchy.load()
    clean = [mesh.known_labels(labs) for labs in labels]
    keep = [i for i, labs in enumerate(clean) if labs]
    siml = gram_matrix(mesh.normalized_label_vectors([clean[i] for i in keep]))
    kept_texts = [texts[i] for i in keep]
    encoded = model.encode(kept_texts, batch_size=batch_size, kind="document", show_progress_bar=show_progress_bar)
    emb = np.asarray(encoded, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sime = emb @ emb.T
    upper = np.triu_indices(len(keep), k=1)
    cross = 0
    if kinds is not None:
        kept_kinds = np.asarray([str(kinds[i]) for i in keep])
        same = kept_kinds[upper[0]] == kept_kinds[upper[1]]
        cross = int((~same).sum())
        upper = (upper[0][same], upper[1][same])
    s_l, s_e = siml[upper], sime[upper]
    positive, zero = s_l > beta, s_l <= ZERO_TOLERANCE
    if len(s_l) < 2:  # no correlation over fewer than 2 pairs (e.g. kinds of one labelled document each)
        return {"documents": len(keep), "pairs": len(s_l), "spearman": float("nan"), "pearson": float("nan"),
                "cross_kind_pairs_skipped": cross}  # fmt: skip
    return {
        "documents": len(keep),
        "pairs": len(s_l),
        "spearman": float(spearmanr(s_e, s_l).statistic),
        "pearson": float(pearsonr(s_e, s_l).statistic),
        "mse_all_pairs": float(np.mean((s_e - s_l) ** 2)),
        "sime_positive_mean": float(s_e[positive].mean()) if positive.any() else float("nan"),
        "sime_zero_mean": float(s_e[zero].mean()) if zero.any() else float("nan"),
        "positive_pairs": int(positive.sum()),
        "zero_pairs": int(zero.sum()),
        "cross_kind_pairs_skipped": cross,
    }


def pubmedqa_test_documents() -> tuple[list[str], list[list[str]]]:
    """PubMedQA's official test abstracts (title-less: the contexts joined) with their MeSH UIs."""
    from biohicl.data.pubmedqa import load_pubmedqa_test_ids
    from biohicl.settings import data_path

    items = json.loads(data_path("pubmedqa", "ori_pqal.json").read_text(encoding="utf-8"))
    test_ids = load_pubmedqa_test_ids(data_path("pubmedqa", "test_ground_truth.json"))
    mesh = MeshHierarchy.load()
    texts, labels = [], []
    for pmid in sorted(test_ids):
        item = items[pmid]
        texts.append(" ".join(item["CONTEXTS"]))
        labels.append([ui for name in item.get("MESHES", []) if (ui := mesh.try_resolve(name))])
    return texts, labels

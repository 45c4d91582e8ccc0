"""BioHiCL losses: filtered SimE→SimL regression, hierarchy-aware contrastive, their combination, and two terms
beyond the paper (self-distillation towards the base model, title InfoNCE). Each loss class names its source in
``citation``.

Every label loss takes ``(embeddings [B, D], siml [B, B])`` where ``siml`` comes from
:meth:`biohicl.mesh.hierarchy.MeshHierarchy.similarity_matrix` over the batch's MeSH label sets; which pairs are
negatives is the SimL rule of :mod:`biohicl.mesh.pair_rules`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biohicl.lazy import lazy_dir, lazy_getattr

_LAZY = {
    "BioHiCLLoss": "biohicl.losses.combined",
    "CONTRASTIVE_FORMS": "biohicl.losses.contrastive",
    "HierarchicalContrastiveLoss": "biohicl.losses.contrastive",
    "negative_pair_mask": "biohicl.losses.contrastive",
    "SimilarityDistillationLoss": "biohicl.losses.distillation",
    "PAIR_FILTERS": "biohicl.losses.regression",
    "FilteredMSELoss": "biohicl.losses.regression",
    "pair_filter_mask": "biohicl.losses.regression",
    "TitleInfoNCELoss": "biohicl.losses.title",
    "check_inputs": "biohicl.losses.utils",
    "embedding_similarity": "biohicl.losses.utils",
    "labelled_pair_mask": "biohicl.losses.utils",
}

if TYPE_CHECKING:
    from biohicl.losses.combined import BioHiCLLoss
    from biohicl.losses.contrastive import CONTRASTIVE_FORMS, HierarchicalContrastiveLoss, negative_pair_mask
    from biohicl.losses.distillation import SimilarityDistillationLoss
    from biohicl.losses.regression import PAIR_FILTERS, FilteredMSELoss, pair_filter_mask
    from biohicl.losses.title import TitleInfoNCELoss
    from biohicl.losses.utils import check_inputs, embedding_similarity, labelled_pair_mask

__all__ = [
    "CONTRASTIVE_FORMS",
    "PAIR_FILTERS",
    "BioHiCLLoss",
    "FilteredMSELoss",
    "HierarchicalContrastiveLoss",
    "SimilarityDistillationLoss",
    "TitleInfoNCELoss",
    "check_inputs",
    "embedding_similarity",
    "labelled_pair_mask",
    "negative_pair_mask",
    "pair_filter_mask",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)

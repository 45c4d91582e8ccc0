"""BioHiCL losses: filtered SimE→SimL regression, hierarchy-aware contrastive, their combination, and two terms
beyond the paper (self-distillation towards the base model, title InfoNCE). Each loss class names its source in
``citation``.

Every label loss takes ``(embeddings [B, D], siml [B, B])`` where ``siml`` comes from
:meth:`biohicl.mesh.hierarchy.MeshHierarchy.similarity_matrix` over the batch's MeSH label sets; which pairs are
negatives is the SimL rule of :mod:`biohicl.mesh.pair_rules`.
"""

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

"""BioHiCL losses: filtered SimE→SimL regression, hierarchy-aware contrastive, and their combination.

Every loss takes ``(embeddings [B, D], siml [B, B])`` where ``siml`` comes from
:meth:`biohicl.mesh.hierarchy.MeshHierarchy.similarity_matrix` over the batch's MeSH label sets.
"""

from biohicl.losses.combined import BioHiCLLoss
from biohicl.losses.contrastive import HierarchicalContrastiveLoss
from biohicl.losses.distillation import SimilarityDistillationLoss
from biohicl.losses.regression import PAIR_FILTERS, FilteredMSELoss, pair_filter_mask
from biohicl.losses.title import TitleInfoNCELoss
from biohicl.losses.utils import embedding_similarity, labelled_pair_mask

__all__ = [
    "PAIR_FILTERS",
    "BioHiCLLoss",
    "FilteredMSELoss",
    "HierarchicalContrastiveLoss",
    "SimilarityDistillationLoss",
    "TitleInfoNCELoss",
    "embedding_similarity",
    "labelled_pair_mask",
    "pair_filter_mask",
]

"""BioHiCL losses: filtered SimE→SimL regression, hierarchy-aware contrastive, and their combination.

Every loss takes ``(embeddings [B, D], siml [B, B])`` where ``siml`` comes from
:meth:`biohicl.mesh.MeshHierarchy.similarity_matrix` over the batch's MeSH label sets.
"""

from .combined import BioHiCLLoss
from .contrastive import HierarchicalContrastiveLoss
from .distillation import SimilarityDistillationLoss
from .regression import PAIR_FILTERS, FilteredMSELoss, pair_filter_mask
from .title import TitleInfoNCELoss
from .utils import embedding_similarity, labelled_pair_mask

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

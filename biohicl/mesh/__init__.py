"""The MeSH hierarchy and SimL: descriptors and tree numbers, depth-weighted label vectors, their Gram matrix, the
SimL rules for unrelated and negative pairs, and the descriptor groups (check tags, study designs) SimL can
down-weight."""

from biohicl.mesh.gram import GramFactors, gram_factors, gram_matrix, inverse_row_norms, support_hashes
from biohicl.mesh.hierarchy import MeshHierarchy, tree_ancestors, tree_depth
from biohicl.mesh.label_groups import (
    CHECK_TAG_NAMES,
    STUDY_DESIGN_NAMES,
    check_tag_uis,
    siml_label_weights,
    study_design_uis,
)
from biohicl.mesh.pair_rules import ZERO_TOLERANCE, parse_negative

__all__ = [
    "CHECK_TAG_NAMES",
    "STUDY_DESIGN_NAMES",
    "ZERO_TOLERANCE",
    "GramFactors",
    "MeshHierarchy",
    "check_tag_uis",
    "gram_factors",
    "gram_matrix",
    "inverse_row_norms",
    "parse_negative",
    "siml_label_weights",
    "study_design_uis",
    "support_hashes",
    "tree_ancestors",
    "tree_depth",
]

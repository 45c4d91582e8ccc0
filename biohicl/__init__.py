"""biohicl: teach general dense retrievers the MeSH hierarchy (BioHiCL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from biohicl.lazy import lazy_dir, lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "MeshHierarchy": "biohicl.mesh.hierarchy",
    "BioHiCL": "biohicl.models.model",
    "BioHiCLTrainer": "biohicl.training.trainer",
    "BioHiCLTrainingArguments": "biohicl.training.args",
}

if TYPE_CHECKING:
    from biohicl.mesh.hierarchy import MeshHierarchy
    from biohicl.models.model import BioHiCL
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.trainer import BioHiCLTrainer

__all__ = ["BioHiCL", "BioHiCLTrainer", "BioHiCLTrainingArguments", "MeshHierarchy", "__version__"]


__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)

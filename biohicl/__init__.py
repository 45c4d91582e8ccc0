"""biohicl: teach general dense retrievers the MeSH hierarchy (BioHiCL)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    """Import heavy submodules (torch, transformers) only when their classes are first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'biohicl' has no attribute {name!r}")

"""biohicl: teach general dense retrievers the MeSH hierarchy (BioHiCL)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "MeshHierarchy": "biohicl.mesh",
    "BioHiCLModel": "biohicl.modeling",
    "BioHiCL": "biohicl.loader",
    "BioHiCLTrainer": "biohicl.trainer",
    "BioHiCLTrainingArguments": "biohicl.training_args",
}

if TYPE_CHECKING:
    from .loader import BioHiCL
    from .mesh import MeshHierarchy
    from .modeling import BioHiCLModel
    from .trainer import BioHiCLTrainer
    from .training_args import BioHiCLTrainingArguments

__all__ = ["BioHiCL", "BioHiCLModel", "BioHiCLTrainer", "BioHiCLTrainingArguments", "MeshHierarchy", "__version__"]


def __getattr__(name: str) -> Any:
    """Import heavy submodules (torch, transformers) only when their classes are first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'biohicl' has no attribute {name!r}")

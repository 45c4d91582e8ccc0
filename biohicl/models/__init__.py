"""The encoder: one user-facing class, :class:`BioHiCL` (``from_pretrained`` by registered name, Hub repo id or
folder; ``from_base``; LoRA; ``encode``; save and merged export).

Modules: ``config`` (``biohicl_config.json``), ``registry`` (short names → Hub repos), ``resolver`` (name, repo or
folder → local files; the one Hub allow-list), ``backbone`` (safetensors-only loading, LoRA targets), ``signature``
and ``adapter_fit`` (an adapter only loads onto its own base), ``encoding`` (what every backend shares), ``export``
(sentence-transformers files), ``mteb``, ``st_compat`` (the sentence-transformers-style conveniences and device
checks :class:`BioHiCL` inherits), ``model`` (:class:`BioHiCL`, :func:`load_model`), and the ONNX Runtime
backend: ``onnx_export`` (export, int8, the cache) and ``onnx_backend`` (:class:`OnnxEncoder`, ``with_backend``).
The torch-backed names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biohicl.lazy import lazy_dir, lazy_getattr
from biohicl.models.config import BioHiCLConfig
from biohicl.models.registry import Registry, RegistryEntry, default_registry, get_entry, known_names
from biohicl.models.resolver import ResolvedModel, resolve, resolve_base, split_revision

_LAZY = {
    "BioHiCL": "biohicl.models.model",
    "load_model": "biohicl.models.model",
    "MtebEncoder": "biohicl.models.mteb",
    "OnnxEncoder": "biohicl.models.onnx_backend",
    "load_onnx_encoder": "biohicl.models.onnx_backend",
    "with_backend": "biohicl.models.onnx_backend",
}

if TYPE_CHECKING:
    from biohicl.models.model import BioHiCL, load_model
    from biohicl.models.mteb import MtebEncoder
    from biohicl.models.onnx_backend import OnnxEncoder, load_onnx_encoder, with_backend

__all__ = [
    "BioHiCL",
    "BioHiCLConfig",
    "MtebEncoder",
    "OnnxEncoder",
    "Registry",
    "RegistryEntry",
    "ResolvedModel",
    "default_registry",
    "get_entry",
    "known_names",
    "load_model",
    "load_onnx_encoder",
    "resolve",
    "resolve_base",
    "split_revision",
    "with_backend",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)

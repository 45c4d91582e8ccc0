"""What evaluation needs from a model (:class:`Encoder`), an adapter that fixes the encoding dtype, and one that
evaluates a sentence-transformers model (:class:`SentenceTransformerEncoder`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from biohicl.errors import ConfigError

if TYPE_CHECKING:
    import torch


@runtime_checkable
class Encoder(Protocol):
    """What evaluation needs from a model: texts in, one embedding row per text out (input order), as an array or a
    tensor (:func:`embedding_rows` reads either). Evaluation passes the texts by position and the rest by keyword,
    so ``BioHiCL``, ``OnnxEncoder`` and a ``SentenceTransformer`` (which ``evaluate_model`` wraps) all are one."""

    def encode(
        self,
        texts: Sequence[str],
        /,
        *,
        batch_size: int = 32,
        kind: str = "document",
        show_progress_bar: bool | None = None,
    ) -> np.ndarray | torch.Tensor: ...


def embedding_rows(rows: np.ndarray | torch.Tensor, dtype: Any = None) -> np.ndarray:
    """An :class:`Encoder`'s output as a numpy array (of ``dtype`` when given): a tensor, on any device and of any
    float dtype (bfloat16 and float16 read as float32), read back to the CPU first."""
    if not isinstance(rows, np.ndarray) and hasattr(rows, "detach"):  # a torch.Tensor (torch is not imported here)
        rows = rows.detach().cpu()
        rows = (rows.float() if rows.dtype.itemsize < 4 else rows).numpy()
    return np.asarray(rows, dtype=dtype)


class DtypeEncoder:
    """Adapts a model's ``encode(..., dtype=)`` to the :class:`Encoder` protocol."""

    def __init__(self, model: Any, dtype: Any = None) -> None:
        self.model = model
        self.dtype = dtype
        self.config = getattr(model, "config", None)

    @property
    def device(self) -> Any:
        """The model's device (None when it does not say)."""
        return getattr(self.model, "device", None)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        kind: str = "document",
        show_progress_bar: bool | None = None,
    ) -> np.ndarray:
        return self.model.encode(
            list(texts), batch_size=batch_size, kind=kind, show_progress_bar=show_progress_bar, dtype=self.dtype
        )


class SentenceTransformerConfig:
    """What a results record says about a SentenceTransformer (``model.config`` of the record): its class, maximum
    tokens (``max_length``, as a BioHiCL config names it, and sentence-transformers' ``max_seq_length``), prompts and
    similarity function; read when asked, so a length set after wrapping is the one recorded."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @property
    def max_length(self) -> int | None:
        """The model's ``max_seq_length`` (the most tokens a text is cut to)."""
        return getattr(self.model, "max_seq_length", None)

    @property
    def query_prompt(self) -> str | None:
        """The model's ``query`` prompt (None: it has none)."""
        return (getattr(self.model, "prompts", None) or {}).get("query")

    @property
    def document_prompt(self) -> str | None:
        """The model's ``document``, ``passage`` or ``corpus`` prompt, the first it has (None: none)."""
        prompts = getattr(self.model, "prompts", None) or {}
        return next((prompts[k] for k in ("document", "passage", "corpus") if k in prompts), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": type(self.model).__name__,
            "max_length": self.max_length,  # the name the runner's comparison reads (compared_settings)
            "max_seq_length": self.max_length,
            "query_prompt": self.query_prompt,
            "document_prompt": self.document_prompt,
            "similarity_fn_name": getattr(self.model, "similarity_fn_name", None),
        }


class SentenceTransformerEncoder:
    """Adapts a ``sentence_transformers.SentenceTransformer`` to the :class:`Encoder` protocol: ``kind="query"``
    encodes with ``encode_query`` (its ``query`` prompt), ``kind="document"`` with ``encode_document`` (its
    ``document``/``passage``/``corpus`` prompt); rows are L2-normalised, as :class:`~biohicl.models.model.BioHiCL`'s
    (the tasks score by cosine). :func:`~biohicl.evaluation.runner.evaluate_model` wraps one itself."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.config = SentenceTransformerConfig(model)

    @property
    def device(self) -> Any:
        """The SentenceTransformer's device."""
        return getattr(self.model, "device", None)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        kind: str = "document",
        show_progress_bar: bool | None = None,
    ) -> np.ndarray:
        if kind not in ("query", "document"):
            raise ConfigError(f"kind: {kind!r} is not 'query' or 'document'")
        encode = self.model.encode_query if kind == "query" else self.model.encode_document
        rows = encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(rows, dtype=np.float32)


def is_sentence_transformer(model: Any) -> bool:
    """Whether ``model`` is a ``sentence_transformers.SentenceTransformer`` (never imports the package: a model of
    it exists only once it is imported)."""
    module = sys.modules.get("sentence_transformers")
    cls = getattr(module, "SentenceTransformer", None) if module is not None else None
    return isinstance(cls, type) and isinstance(model, cls)


def as_encoder(model: Any) -> Any:
    """``model`` as an :class:`Encoder`: a SentenceTransformer wrapped in :class:`SentenceTransformerEncoder`, any
    other model as it is."""
    return SentenceTransformerEncoder(model) if is_sentence_transformer(model) else model

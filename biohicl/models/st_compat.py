"""What :class:`~biohicl.models.model.BioHiCL` tells about itself (device, sizes, length limits) and the
sentence-transformers-style names a user coming from ``SentenceTransformer`` reaches for; a mixin, so ``model.py``
keeps loading, LoRA, encoding and saving."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from biohicl.errors import ConfigError
from biohicl.field_types import is_count
from biohicl.models.positions import usable_positions
from biohicl.models.signature import unwrapped


class EncoderInfo:
    """Mixin of :class:`~biohicl.models.model.BioHiCL`: needs ``backbone``, ``tokenizer``, ``config`` and
    ``parameters()``."""

    def __repr__(self) -> str:
        """One line of what decides the embeddings (``print(model.backbone)`` shows the module tree)."""
        c = self.config
        fields = (
            f"base={c.base_model!r}, kind={c.kind!r}, pooling={c.pooling!r}, max_length={c.max_length}, "
            f"query_prompt={c.query_prompt!r}, document_prompt={c.document_prompt!r}, normalize={c.normalize}, "
            f"lora={self.is_peft}, dim={self.embedding_dim}, device={self.device}"
        )
        return f"{type(self).__name__}({fields})"

    @property
    def device(self) -> torch.device:
        """Where the weights are (``model.to(...)`` moves them)."""
        return next(self.parameters()).device

    @property
    def embedding_dim(self) -> int:
        """The length of an embedding (the backbone's hidden size)."""
        return int(unwrapped(self.backbone).config.hidden_size)

    @property
    def max_tokens(self) -> int | None:
        """The most tokens a text can have: what the backbone's position embeddings encode
        (:func:`~biohicl.models.positions.usable_positions`, the limit the loaders cap ``max_length`` at); None when
        its config states no positions. Not the tokenizer's ``model_max_length``: sentence-transformers 6 saves its
        ``max_seq_length`` there, a setting rather than a limit."""
        config = getattr(unwrapped(self.backbone), "config", None)
        return usable_positions(config) if config is not None else None

    def set_max_length(self, value: int) -> None:
        """Change the maximum tokens per text; a :class:`ConfigError` naming ``max_length`` when out of range
        (0 would switch truncation off, more than the model's positions fails mid-encoding)."""
        limit = self.max_tokens
        if not is_count(value) or (limit is not None and value > limit):
            upper = f" and {limit}, the most this model takes" if limit is not None else " and the model's limit"
            raise ConfigError(f"max_length: {value!r} is not between 1{upper}")
        self.config.max_length = value

    @property
    def max_seq_length(self) -> int:
        """sentence-transformers' name for the most tokens a text is cut to (``config.max_length``); setting it
        calls :meth:`set_max_length`."""
        return int(self.config.max_length)

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self.set_max_length(value)

    def get_sentence_embedding_dimension(self) -> int:
        """sentence-transformers' name for :attr:`embedding_dim`."""
        return self.embedding_dim

    def get_embedding_dimension(self) -> int:
        """sentence-transformers' newer name for :attr:`embedding_dim`."""
        return self.embedding_dim

    def encode_query(self, texts: Any, **kwargs: Any) -> np.ndarray | torch.Tensor:
        """``encode(texts, kind="query", ...)``: with the query prompt."""
        return self.encode(texts, kind="query", **kwargs)

    def encode_document(self, texts: Any, **kwargs: Any) -> np.ndarray | torch.Tensor:
        """``encode(texts, kind="document", ...)``: with the document prompt (``encode``'s default)."""
        return self.encode(texts, kind="document", **kwargs)

    @staticmethod
    def similarity(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Cosine similarities [n, m] of the rows of ``a`` and ``b`` (a single embedding counts as one row): numpy
        when both are numpy, else torch."""
        rows = [torch.nn.functional.normalize(torch.atleast_2d(torch.as_tensor(x)).float(), dim=-1) for x in (a, b)]
        scores = rows[0] @ rows[1].T
        return scores if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor) else scores.numpy()


#: the devices biohicl encodes on, as a refusal lists them
DEVICE_NAMES = "(cpu, cuda, cuda:N, mps, xpu)"


def _available(kind: str) -> bool:
    """Whether this machine has a ``kind`` device (cuda, mps, xpu)."""
    backend = torch.backends.mps if kind == "mps" else getattr(torch, kind, None)
    return backend is not None and bool(backend.is_available())


def _device_count(kind: str) -> int:
    """How many ``kind`` devices an available backend has (MPS: one)."""
    return 1 if kind == "mps" else int(getattr(torch, kind).device_count())


def inference_device(device: str | int | torch.device | None) -> torch.device:
    """``device`` as a torch device (None: CUDA when there is a GPU, else CPU; an int N: ``cuda:N``, as in torch),
    checked before anything loads: a one-line :class:`ConfigError` for a name torch does not know, a device biohicl
    does not encode on (``meta``, ...) and a GPU, MPS or XPU device this machine lacks (an index past its count)."""
    if device is None or device == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shown = device
    if isinstance(device, (int, np.integer)) and not isinstance(device, bool):
        device = shown = f"cuda:{device}" if device >= 0 else device
    try:
        if not isinstance(device, (str, torch.device)):
            raise RuntimeError(device)
        device = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device: {shown!r} is not a torch device {DEVICE_NAMES}") from None
    if device.type == "cpu":
        return device
    if device.type not in ("cuda", "mps", "xpu"):
        raise ConfigError(f"device: {str(device)!r} is not a device biohicl encodes on {DEVICE_NAMES}")
    name = {"cuda": "CUDA", "mps": "MPS", "xpu": "XPU"}[device.type]
    if not _available(device.type):
        lacks = "CUDA sees no GPU" if device.type == "cuda" else f"{name} is not available"
        raise ConfigError(f"device: {str(device)!r} asked for, but {lacks} on this machine")
    if device.index is not None and device.index >= (count := _device_count(device.type)):
        known = f"{device.type}:0" + (f" to {device.type}:{count - 1}" if count > 1 else "")
        sees = f"{count} GPU{'s' if count != 1 else ''}" if device.type == "cuda" else f"{count} {name} device(s)"
        raise ConfigError(f"device: {str(device)!r} asked for, but {name} sees {sees} on this machine ({known})")
    return device

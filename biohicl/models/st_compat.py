"""What :class:`~biohicl.models.model.BioHiCL` tells about itself (device, sizes, length limits) and the
sentence-transformers-style names a user coming from ``SentenceTransformer`` reaches for; a mixin, so ``model.py``
keeps loading, LoRA, encoding and saving."""

from __future__ import annotations

import torch

from biohicl.errors import ConfigError
from biohicl.models.signature import unwrapped


class EncoderInfo:
    """Mixin of :class:`~biohicl.models.model.BioHiCL`: needs ``backbone``, ``tokenizer``, ``config`` and
    ``parameters()``."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def embedding_dim(self) -> int:
        return int(unwrapped(self.backbone).config.hidden_size)

    @property
    def max_tokens(self) -> int | None:
        """The most tokens a text can have: the tokenizer's ``model_max_length`` when it states one, else the
        backbone's position embeddings (None when neither says)."""
        limits = []
        stated = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(stated, int) and 0 < stated < 1_000_000:
            limits.append(stated)
        config = getattr(unwrapped(self.backbone), "config", None)
        positions = getattr(config, "max_position_embeddings", None)
        if isinstance(positions, int) and positions > 0:
            limits.append(positions)
        return min(limits) if limits else None

    def set_max_length(self, value: int) -> None:
        """Change the maximum tokens per text; a :class:`ConfigError` naming ``max_length`` when out of range
        (0 would switch truncation off, more than the model's positions fails mid-encoding)."""
        limit = self.max_tokens
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (limit is not None and value > limit):
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

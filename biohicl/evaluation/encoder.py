"""What evaluation needs from a model (:class:`Encoder`) and an adapter that fixes the encoding dtype."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """What evaluation needs from a model: texts in, one embedding row per text out (input order)."""

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        kind: str = "document",
        show_progress_bar: bool | None = None,
    ) -> np.ndarray: ...


class DtypeEncoder:
    """Adapts a model's ``encode(..., dtype=)`` to the :class:`Encoder` protocol."""

    def __init__(self, model: Any, dtype: Any = None) -> None:
        self.model = model
        self.dtype = dtype
        self.config = getattr(model, "config", None)

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

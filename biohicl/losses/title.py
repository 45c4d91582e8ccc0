"""Title InfoNCE (beyond the BioHiCL paper; off by default): each abstract's title should retrieve its own document.

For the T documents of a batch that have a title (PubMedQA abstracts have none: those rows are skipped), the
title embedding ``t_k`` (a query) is scored against all B document embeddings ``e_j`` (title + abstract) of the
batch, and the document it came from is the one positive::

    L_title = mean_k −log( exp(cos(t_k, e_{r_k})/τ) / Σ_j exp(cos(t_k, e_j)/τ) )

with ``r_k`` the batch row of title ``k``. It adds a query → document signal that needs no labels, the kind of
pairs retrieval is evaluated on. A batch without titles gives 0.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .utils import embedding_similarity


class TitleInfoNCELoss(nn.Module):
    """In-batch InfoNCE of titles against documents; ``forward(embeddings [B, D], title_embeddings [T, D],
    title_rows [T]) -> scalar`` (float32)."""

    citation = "van den Oord et al., Representation Learning with Contrastive Predictive Coding (InfoNCE), 2018"

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"title_temperature: must be positive, got {temperature}")
        self.temperature = temperature

    def forward(
        self, embeddings: torch.Tensor, title_embeddings: torch.Tensor, title_rows: torch.Tensor
    ) -> torch.Tensor:
        title_rows = torch.as_tensor(title_rows, dtype=torch.long, device=embeddings.device)
        if title_embeddings.shape[0] != title_rows.shape[0]:
            raise ValueError(f"title_rows: {title_rows.shape[0]} rows for {title_embeddings.shape[0]} title embeddings")
        if title_rows.numel() == 0:
            return embeddings.sum() * 0.0  # no title in the batch: 0, still on the graph
        if not torch.isfinite(title_embeddings).all():
            raise ValueError("title_embeddings: NaN or inf in the batch; loss not computed")
        both = torch.cat([title_embeddings.to(embeddings.dtype), embeddings])
        t = title_rows.shape[0]
        logits = embedding_similarity(both)[:t, t:] / self.temperature  # [T, B]: titles × documents
        return F.cross_entropy(logits, title_rows)

    def get_config_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"

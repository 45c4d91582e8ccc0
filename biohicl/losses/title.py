"""Title InfoNCE (beyond the BioHiCL paper; off by default): each title should retrieve its own abstract.

For the T documents of a batch that have both a title and an abstract (PubMedQA abstracts have no title: those rows
are skipped), the title embedding ``t_k`` (a query) is scored against the T abstract embeddings ``a_j`` (the
abstract alone: against ``title + abstract`` the title would find itself, a loss of ~0 and no signal), and its own
abstract is the one positive::

    L_title = mean_k −log( exp(cos(t_k, a_k)/τ) / Σ_j exp(cos(t_k, a_j)/τ) )

It adds a query → document signal that needs no labels, the kind of pairs retrieval is evaluated on. Fewer than
2 titled documents in a batch give 0.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from biohicl.losses.utils import embedding_similarity


class TitleInfoNCELoss(nn.Module):
    """In-batch InfoNCE of titles against their abstracts; ``forward(title_embeddings [T, D],
    abstract_embeddings [T, D]) -> scalar`` (float32; row k of both is the same document).

    Not a trainer ``loss=`` on its own (that is ``loss(embeddings, siml, **inputs)``): it is a term of
    :class:`~biohicl.losses.combined.BioHiCLLoss`, switched on by ``title_weight``, which hands it the titles and
    abstracts."""

    citation = "van den Oord et al., Representation Learning with Contrastive Predictive Coding (InfoNCE), 2018"

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"title_temperature: must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, title_embeddings: torch.Tensor, abstract_embeddings: torch.Tensor) -> torch.Tensor:
        if title_embeddings.shape != abstract_embeddings.shape:
            raise ValueError(
                f"abstract_embeddings must have the title embeddings' shape {tuple(title_embeddings.shape)}, "
                f"got {tuple(abstract_embeddings.shape)}"
            )
        if title_embeddings.shape[0] < 2:
            return (title_embeddings.sum() + abstract_embeddings.sum()) * 0.0  # nothing to contrast
        if not bool(torch.isfinite(title_embeddings).all() & torch.isfinite(abstract_embeddings).all()):  # one read
            raise ValueError("title_embeddings: NaN or inf in the batch; loss not computed")
        t = title_embeddings.shape[0]
        both = torch.cat([title_embeddings.float(), abstract_embeddings.float()])
        logits = embedding_similarity(both)[:t, t:] / self.temperature  # [T, T]: titles × abstracts
        return F.cross_entropy(logits, torch.arange(t, device=logits.device))

    def get_config_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"

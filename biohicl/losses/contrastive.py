"""Hierarchy-aware multi-label contrastive loss.

For an anchor ``i``, positives are the in-batch documents with SimL_ip > β and negatives those with SimL_in = 0 (no
shared MeSH tree node); documents in between (0 < SimL ≤ β) are neither. Each (anchor, positive) pair is an InfoNCE
term against the anchor's negatives, and the terms are averaged with weights SimL_ip, so closer label sets pull
harder::

    ℓ_ip = −log( exp(s_ip/τ) / (exp(s_ip/τ) + Σ_{n ∈ N(i)} exp(s_in/τ)) )
    L_con = Σ_{i,p} SimL_ip · ℓ_ip / Σ_{i,p} SimL_ip

with ``s`` the cosine similarity (SimE) and τ the temperature. Positives do not compete with each other (a
document may have several, at different depths of the same branch). A batch without any positive pair gives 0,
never NaN; an anchor without negatives contributes ``ℓ = 0``.

The default τ = 0.05 is the usual value for cosine-similarity contrastive training of sentence encoders
(SimCSE, E5/GTE); with cosines in [−1, 1] it gives logits in [−20, 20].
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .utils import ZERO_TOLERANCE, check_inputs, embedding_similarity, labelled_pair_mask

_MASKED = -1e9


class HierarchicalContrastiveLoss(nn.Module):
    """SimL-weighted InfoNCE with positives SimL > β and negatives SimL = 0.

    Args:
        beta: SimL threshold above which a pair is a positive.
        temperature: τ dividing the cosine similarities.
        weighted: weight each positive term by its SimL (``False``: plain average over positive pairs).
    """

    def __init__(self, beta: float = 0.3, temperature: float = 0.05, weighted: bool = True):
        super().__init__()
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta: must be in [0, 1), got {beta}")
        if temperature <= 0:
            raise ValueError(f"temperature: must be positive, got {temperature}")
        self.beta = beta
        self.temperature = temperature
        self.weighted = weighted

    def forward(
        self, embeddings: torch.Tensor, siml: torch.Tensor, pair_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``embeddings`` [B, D] (any norm), ``siml`` [B, B], ``pair_mask`` [B, B] (optional) → scalar (float32)."""
        check_inputs(embeddings, siml)
        siml = siml.to(device=embeddings.device, dtype=torch.float32)
        usable = labelled_pair_mask(siml, pair_mask)
        positive = usable & (siml > self.beta)
        negative = usable & (siml <= ZERO_TOLERANCE)

        logits = embedding_similarity(embeddings) / self.temperature
        # log Σ_{n ∈ N(i)} exp(s_in/τ); a finite fill (not −inf) keeps gradients finite for anchors without negatives.
        negative_lse = logits.masked_fill(~negative, _MASKED).logsumexp(dim=1, keepdim=True)
        negative_lse = negative_lse.masked_fill(~negative.any(dim=1, keepdim=True), _MASKED)
        per_pair = F.softplus(negative_lse - logits)  # = −log(e^{s_ip} / (e^{s_ip} + Σ_n e^{s_in}))

        weights = (siml if self.weighted else torch.ones_like(siml)) * positive.float()
        return (weights * per_pair).sum() / weights.sum().clamp_min(1e-12)

    def get_config_dict(self) -> dict[str, Any]:
        return {"beta": self.beta, "temperature": self.temperature, "weighted": self.weighted}

    def extra_repr(self) -> str:
        return f"beta={self.beta}, temperature={self.temperature}, weighted={self.weighted}"

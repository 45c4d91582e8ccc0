"""Self-distillation of the in-batch similarity structure (beyond the BioHiCL paper; off by default).

    L_distill = mean over pairs i ≠ j of (SimE_ij − SimE^base_ij)²

``SimE^base`` is the cosine matrix of the same batch under the frozen base model (for LoRA: the same model with its
adapters disabled, under ``no_grad``; no second copy of the weights). The two losses of the paper only see pairs
whose labels say something (SimL = 0 or SimL > β); this term keeps every pair, so the tuned space stays close to
the base model's where the labels are silent, the relational form of "learning without forgetting".
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from biohicl.losses.utils import embedding_similarity


class SimilarityDistillationLoss(nn.Module):
    """Mean squared difference between the batch's SimE matrix and the base model's, over off-diagonal pairs.

    ``forward(embeddings [B, D], base_embeddings [B, D], pair_mask=None) -> scalar`` (float32). ``base_embeddings``
    are targets (detached here). ``pair_mask`` [B, B] (optional) limits the pairs; the diagonal never counts. The
    combined loss passes the batch's (the collator's same-label-kind mask), as it does to every pair term. The loss
    has no settings, so :meth:`get_config_dict` is ``{}``.

    Not a trainer ``loss=`` on its own (that is ``loss(embeddings, siml, **inputs)``): it is a term of
    :class:`~biohicl.losses.combined.BioHiCLLoss`, switched on by ``distill_weight``, which hands it the base
    embeddings.
    """

    citation = (
        "Tung & Mori, Similarity-Preserving Knowledge Distillation, ICCV 2019; Li & Hoiem, Learning without "
        "Forgetting, ECCV 2016"
    )

    def forward(
        self, embeddings: torch.Tensor, base_embeddings: torch.Tensor, pair_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if embeddings.shape != base_embeddings.shape:
            raise ValueError(
                f"base_embeddings must have the embeddings' shape {tuple(embeddings.shape)}, "
                f"got {tuple(base_embeddings.shape)}"
            )
        if not torch.isfinite(base_embeddings).all():
            raise ValueError("base_embeddings: NaN or inf in the batch; loss not computed")
        sime = embedding_similarity(embeddings)
        target = embedding_similarity(base_embeddings.detach().to(embeddings.device))
        mask = ~torch.eye(sime.shape[0], dtype=torch.bool, device=sime.device)
        if pair_mask is not None:
            mask &= pair_mask.to(device=sime.device, dtype=torch.bool)
        mask = mask.float()
        return ((sime - target).pow(2) * mask).sum() / mask.sum().clamp_min(1.0)

    def get_config_dict(self) -> dict[str, Any]:
        return {}  # no parameters (each loss's dict holds its constructor's settings)

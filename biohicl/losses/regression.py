"""Filtered regression: pull the embedding similarity SimE of in-batch pairs onto their MeSH similarity SimL.

    L_mse = mean over kept pairs (i ≠ j) of (SimE_ij − SimL_ij)²

Which pairs are kept is the ``pair_filter``:

- ``"zero_or_positive"`` (default): SimL = 0 (no shared MeSH node: pushed towards orthogonal) or SimL > β
  (clearly related: pulled towards their label similarity). Weakly overlapping pairs (0 < SimL ≤ β) mostly share
  only broad ancestors such as "Diseases" branches; regressing onto such small values would fight the contrastive
  term, so they are left free. These are the pairs the contrastive loss uses under its default ``negative="zero"``
  (positives SimL > β, negatives SimL = 0, at the same β) only: under ``below:t`` or ``lowest:k`` its negatives
  include pairs with 0 < SimL ≤ β, which this filter leaves free, and ``lowest:k`` may leave out SimL = 0 pairs
  that this filter keeps.
- ``"all"``: every labelled off-diagonal pair.
- ``"positive"``: only SimL > β.
- ``"nonzero"``: only SimL > 0.

Pairs involving a document without labels are never used. A batch with no kept pair gives 0 (never NaN).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from biohicl.losses.utils import check_inputs, embedding_similarity, labelled_pair_mask
from biohicl.mesh.pair_rules import ZERO_TOLERANCE

PAIR_FILTERS = ("zero_or_positive", "all", "positive", "nonzero")


def pair_filter_mask(
    siml: torch.Tensor, pair_filter: str, beta: float, pair_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Boolean [B, B] mask of the pairs ``pair_filter`` keeps (diagonal and unlabelled documents excluded, and
    pairs outside ``pair_mask`` when given)."""
    mask = labelled_pair_mask(siml, pair_mask)
    if pair_filter == "all":
        return mask
    if pair_filter == "zero_or_positive":
        return mask & ((siml <= ZERO_TOLERANCE) | (siml > beta))
    if pair_filter == "positive":
        return mask & (siml > beta)
    if pair_filter == "nonzero":
        return mask & (siml > ZERO_TOLERANCE)
    raise ValueError(f"pair_filter: {pair_filter!r} is not one of {', '.join(PAIR_FILTERS)}")


class FilteredMSELoss(nn.Module):
    """Mean squared error between SimE and SimL over the in-batch pairs that pass ``pair_filter``.

    Args:
        pair_filter: which pairs to regress (see the module docstring).
        beta: the positive threshold on SimL used by the filters.
    """

    citation = (
        "BioHiCL: Hierarchy-Aware Contrastive Learning with MeSH Labels for Biomedical Retrieval, ACL 2026 (L_mse)"
    )

    def __init__(self, pair_filter: str = "zero_or_positive", beta: float = 0.3):
        super().__init__()
        if pair_filter not in PAIR_FILTERS:
            raise ValueError(f"pair_filter: {pair_filter!r} is not one of {', '.join(PAIR_FILTERS)}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta: must be in [0, 1), got {beta}")
        self.pair_filter = pair_filter
        self.beta = beta

    def forward(
        self,
        embeddings: torch.Tensor,
        siml: torch.Tensor,
        pair_mask: torch.Tensor | None = None,
        *,
        checked: bool = False,
    ) -> torch.Tensor:
        """``embeddings`` [B, D] (any norm), ``siml`` [B, B], ``pair_mask`` [B, B] (optional) → scalar (float32).
        ``checked``: the caller has already passed the two through :func:`~biohicl.losses.utils.check_inputs` (the
        combined loss checks once for all its terms)."""
        if not checked:
            check_inputs(embeddings, siml)
        siml = siml.to(device=embeddings.device, dtype=torch.float32)
        mask = pair_filter_mask(siml, self.pair_filter, self.beta, pair_mask).float()
        squared = (embedding_similarity(embeddings) - siml).pow(2)
        return (squared * mask).sum() / mask.sum().clamp_min(1.0)

    def get_config_dict(self) -> dict[str, Any]:
        return {"pair_filter": self.pair_filter, "beta": self.beta}

    def extra_repr(self) -> str:
        return f"pair_filter={self.pair_filter!r}, beta={self.beta}"

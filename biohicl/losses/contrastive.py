"""Hierarchy-aware multi-label contrastive loss, in two forms.

For an anchor ``i``, positives are the in-batch documents with SimL_ip > β and negatives those the ``negative``
rule picks: ``"zero"`` (default, the paper's: SimL_in = 0, no shared MeSH tree node), ``"below:t"`` (SimL_in < t,
t ≤ β) or ``"lowest:k"`` (the anchor's k lowest-SimL in-batch documents among those with SimL ≤ β; with indexing
labels only 0.1–1.2% of pairs have SimL = 0, so most batches have no "zero" negative at all). Documents that are
neither (e.g. 0 < SimL ≤ β under ``"zero"``) are left out.

``form="infonce"`` (default): each (anchor, positive) pair is an InfoNCE term against the anchor's negatives, and
the terms are averaged with weights SimL_ip, so closer label sets pull harder::

    ℓ_ip = −log( exp(s_ip/τ) / (exp(s_ip/τ) + Σ_{n ∈ N(i)} exp(s_in/τ)) )
    L_con = Σ_{i,p} SimL_ip · ℓ_ip / Σ_{i,p} SimL_ip

with ``s`` the cosine similarity (SimE) and τ the temperature. Positives do not compete with each other (a
document may have several, at different depths of the same branch). The default τ = 0.05 is the usual value for
cosine-similarity contrastive training of sentence encoders (SimCSE, E5/GTE); with cosines in [−1, 1] it gives
logits in [−20, 20].

``form="paper"``: the term as the BioHiCL paper writes it, no temperature, SimL inside the log, negatives only in
the denominator::

    ℓ_ip = −log( SimL_ip · exp(s_ip) / Σ_{n ∈ N(i)} exp(s_in) ) = −log SimL_ip − s_ip + log Σ_n exp(s_in)
    L_con = mean of ℓ_ip over the positive pairs whose anchor has a negative

(it can be negative: the positive is not in the denominator). ``temperature`` and ``weighted`` do not apply.

Either form: a batch without any usable positive pair gives 0, never NaN. An anchor without negatives contributes
no term, but the two forms differ in what they average over: the InfoNCE form keeps its positive pairs in the
weighted mean with ``ℓ = 0`` (its weight still counts in ``Σ SimL_ip``), so the term of the pairs that do contrast is
scaled by their share of the batch's positive weight; the paper form leaves them out of its mean. ``mean`` (the
InfoNCE form's; training argument ``contrastive_mean``) chooses: ``"positives"`` (default, the mean above) or
``"contrastable"``, ``Σ SimL_ip · ℓ_ip / Σ SimL_ip`` over the positive pairs whose anchor has a negative only
(0, with zero gradients, for a batch without any), the paper form's choice of pairs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from biohicl.losses.utils import check_inputs, embedding_similarity, labelled_pair_mask
from biohicl.mesh.pair_rules import ZERO_TOLERANCE, parse_negative

CONTRASTIVE_FORMS = ("infonce", "paper")
#: what the InfoNCE form averages over: every positive pair (default), or those whose anchor has a negative
CONTRASTIVE_MEANS = ("positives", "contrastable")


def _masked(values: torch.Tensor) -> float:
    """The fill for left-out entries: the dtype's lowest finite value, below any logit at any temperature (a fixed
    −1e9 was not: at τ ≤ 1e-10 the logits reach ±1e10 and the fill leaked into the log-sum-exp)."""
    return torch.finfo(values.dtype).min


def negative_pair_mask(siml: torch.Tensor, usable: torch.Tensor, rule: str, beta: float) -> torch.Tensor:
    """Boolean [B, B]: the negatives of each anchor (row) under ``rule``, among the ``usable`` pairs."""
    kind, value = parse_negative(rule, beta)
    if kind == "zero":
        return usable & (siml <= ZERO_TOLERANCE)
    if kind == "below":
        return usable & (siml < value)
    candidates = usable & (siml <= beta)
    # the k lowest SimL per row among the candidates; ties broken by column index (stable sort)
    order = siml.masked_fill(~candidates, float("inf")).sort(dim=1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(siml.shape[1], device=siml.device).expand_as(order))
    return candidates & (rank < int(value))


class HierarchicalContrastiveLoss(nn.Module):
    """SimL-aware contrastive loss with positives SimL > β and negatives by ``negative`` (see the module docstring).

    Args:
        beta: SimL threshold above which a pair is a positive.
        temperature: τ dividing the cosine similarities (InfoNCE form only).
        weighted: weight each positive term by its SimL (``False``: plain average; InfoNCE form only).
        form: ``"infonce"`` (default) or ``"paper"``.
        negative: ``"zero"`` (default), ``"below:<t>"`` or ``"lowest:<k>"``.
        mean: ``"positives"`` (default) or ``"contrastable"``: the positive pairs the InfoNCE form averages over
            (every one, or those whose anchor has a negative; the paper form's are the latter).
    """

    citation = (
        "BioHiCL: Hierarchy-Aware Contrastive Learning with MeSH Labels for Biomedical Retrieval, ACL 2026 (L_con); "
        "van den Oord et al., Representation Learning with Contrastive Predictive Coding (InfoNCE), 2018 (the "
        "infonce form)"
    )

    def __init__(
        self,
        beta: float = 0.3,
        temperature: float = 0.05,
        weighted: bool = True,
        form: str = "infonce",
        negative: str = "zero",
        mean: str = "positives",
    ):
        super().__init__()
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta: must be in [0, 1), got {beta}")
        if temperature <= 0:
            raise ValueError(f"temperature: must be positive, got {temperature}")
        if form not in CONTRASTIVE_FORMS:
            raise ValueError(f"contrastive_form: {form!r} is not one of {', '.join(CONTRASTIVE_FORMS)}")
        if mean not in CONTRASTIVE_MEANS:
            raise ValueError(f"contrastive_mean: {mean!r} is not one of {', '.join(CONTRASTIVE_MEANS)}")
        if form == "paper" and mean != "positives":
            raise ValueError(
                f"contrastive_mean, contrastive_form: {mean!r} applies to the infonce form (the paper form averages "
                "over the contrastable pairs already)"
            )
        parse_negative(negative, beta)
        self.beta = beta
        self.temperature = temperature
        self.weighted = weighted
        self.form = form
        self.negative = negative
        self.mean = mean

    def masks(self, siml: torch.Tensor, pair_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(positive, negative)`` boolean [B, B] masks of a batch (rows: anchors)."""
        siml = siml.to(dtype=torch.float32)
        usable = labelled_pair_mask(siml, pair_mask)
        return usable & (siml > self.beta), negative_pair_mask(siml, usable, self.negative, self.beta)

    def forward(
        self,
        embeddings: torch.Tensor,
        siml: torch.Tensor,
        pair_mask: torch.Tensor | None = None,
        *,
        checked: bool = False,
        masks: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``embeddings`` [B, D] (any norm), ``siml`` [B, B], ``pair_mask`` [B, B] (optional) → scalar (float32).

        For a caller that computed them already (the combined loss, once per batch): ``checked``, the two inputs
        passed :func:`~biohicl.losses.utils.check_inputs`; ``masks``, this loss's :meth:`masks` of the batch (on the
        embeddings' device), used instead of computing them again."""
        if not checked:
            check_inputs(embeddings, siml)
        siml = siml.to(device=embeddings.device, dtype=torch.float32)
        positive, negative = masks if masks is not None else self.masks(siml, pair_mask)
        has_negative = negative.any(dim=1, keepdim=True)
        sime = embedding_similarity(embeddings)
        if self.form == "paper":
            # log Σ_{n ∈ N(i)} exp(s_in); rows without negatives get a finite fill and are left out below
            negative_lse = sime.masked_fill(~negative, _masked(sime)).logsumexp(dim=1, keepdim=True)
            per_pair = negative_lse - sime - torch.log(siml.clamp_min(1e-12))
            valid = positive & has_negative
            return torch.where(valid, per_pair, 0.0).sum() / valid.sum().clamp_min(1)

        logits = sime / self.temperature
        # log Σ_{n ∈ N(i)} exp(s_in/τ); a finite fill (not −inf) keeps gradients finite for anchors without negatives.
        negative_lse = logits.masked_fill(~negative, _masked(logits)).logsumexp(dim=1, keepdim=True)
        negative_lse = negative_lse.masked_fill(~has_negative, _masked(logits))
        per_pair = F.softplus(negative_lse - logits)  # = −log(e^{s_ip} / (e^{s_ip} + Σ_n e^{s_in}))

        weights = (siml if self.weighted else torch.ones_like(siml)) * positive.float()
        if self.mean == "contrastable":  # the pairs whose anchor has no negative leave the mean
            weights = weights * has_negative.float()
        return (weights * per_pair).sum() / weights.sum().clamp_min(1e-12)

    def get_config_dict(self) -> dict[str, Any]:
        """The settings; ``mean`` only when not the default, so that the record of a run trained before it was a
        setting (which a resume compares, and the model card shows) reads the same."""
        config = {
            "beta": self.beta,
            "temperature": self.temperature,
            "weighted": self.weighted,
            "form": self.form,
            "negative": self.negative,
        }
        return config if self.mean == "positives" else {**config, "mean": self.mean}

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta}, temperature={self.temperature}, weighted={self.weighted}, form={self.form!r}, "
            f"negative={self.negative!r}" + (f", mean={self.mean!r}" if self.mean != "positives" else "")
        )

"""Shared pieces of the BioHiCL losses: the SimE matrix and the mask of usable in-batch pairs."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from biohicl.mesh.pair_rules import ZERO_TOLERANCE


def embedding_similarity(embeddings: torch.Tensor) -> torch.Tensor:
    """SimE: cosine similarity of every pair of rows, computed in float32 ([B, D] → [B, B])."""
    unit = F.normalize(embeddings.float(), p=2, dim=-1)
    return unit @ unit.T


def labelled_pair_mask(siml: torch.Tensor, pair_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Off-diagonal pairs whose two documents both carry MeSH labels (and that ``pair_mask`` allows, when given:
    e.g. the collator's same-label-kind mask).

    ``MeshHierarchy.similarity_matrix`` puts 1.0 on the diagonal of a labelled document and 0.0 on the diagonal of
    a document with no (resolvable) label, so an unlabelled document is never treated as everyone's negative.
    """
    labelled = siml.diagonal() > ZERO_TOLERANCE
    mask = labelled[:, None] & labelled[None, :]
    mask.fill_diagonal_(False)
    if pair_mask is not None:
        if pair_mask.shape != mask.shape:
            raise ValueError(f"pair_mask must be {list(mask.shape)}, got {tuple(pair_mask.shape)}")
        mask &= pair_mask.to(device=mask.device, dtype=torch.bool)
    return mask


def check_inputs(embeddings: torch.Tensor, siml: torch.Tensor) -> None:
    """ValueError unless ``embeddings`` is a finite [B, D] matrix and ``siml`` a [B, B] matrix of values in [0, 1].

    The shapes are checked on the host; the values with one read from the device (a sync on a GPU), and a second
    only to name what is wrong (the embeddings before ``siml``)."""
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be [batch, dim], got shape {tuple(embeddings.shape)}")
    batch = embeddings.shape[0]
    if siml.shape != (batch, batch):
        raise ValueError(f"siml must be [{batch}, {batch}] for {batch} embeddings, got {tuple(siml.shape)}")
    finite = torch.isfinite(embeddings).all()
    in_range = torch.isfinite(siml).all() & (siml.min() >= 0) & (siml.max() <= 1 + ZERO_TOLERANCE)
    if bool(finite & in_range):
        return
    if not finite:
        raise ValueError("embeddings: NaN or inf in the batch (diverged model or bad input); loss not computed")
    raise ValueError("siml: values must be finite and in [0, 1]")


def pair_shares(masks: Mapping[str, torch.Tensor], pair_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``{name: share}``: for each boolean [B, B] mask, the share of a batch's pairs (each unordered pair once, among
    those ``pair_mask`` allows) it marks from either document, as 0-dim tensors on the masks' device (0 for a batch
    without pairs)."""
    first = next(iter(masks.values()))
    upper = torch.triu(torch.ones_like(first, dtype=torch.bool), diagonal=1)
    if pair_mask is not None:
        upper &= pair_mask.to(device=upper.device, dtype=torch.bool)
    pairs = upper.sum().clamp_min(1)
    return {name: ((mask | mask.T) & upper).sum() / pairs for name, mask in masks.items()}

"""The BioHiCL objective: ``L = L_mse + λ · L_con`` (λ = 0.1), returning every component for logging.

Either term can be switched off (the paper's "no L_con" / "no L_mse" ablations); a switched-off term is reported as
0 and costs nothing. Beyond the paper, and off by default: ``+ w_distill · L_distill`` (self-distillation towards
the frozen base model's SimE, :mod:`.distillation`) and ``+ w_title · L_title`` (title → own abstract InfoNCE,
:mod:`.title`).

Any loss the trainer is given works the same way: ``forward(embeddings, siml, **inputs)`` returns a dict with
``loss`` (back-propagated) and any number of ``loss_*`` components (logged); :attr:`extra_inputs` names the inputs
beyond ``embeddings`` and ``siml`` it needs (``base_embeddings``: the batch under the frozen base model;
``title_embeddings`` and ``abstract_embeddings``: the titled documents' titles and abstracts alone).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from biohicl.losses.contrastive import HierarchicalContrastiveLoss
from biohicl.losses.distillation import SimilarityDistillationLoss
from biohicl.losses.regression import FilteredMSELoss
from biohicl.losses.title import TitleInfoNCELoss


class BioHiCLLoss(nn.Module):
    """Filtered SimE→SimL regression plus λ times the hierarchy-aware contrastive loss.

    ``forward`` returns a dict: ``loss`` (the total, to back-propagate) and the unscaled components ``loss_mse``
    and ``loss_con`` (still attached to the graph: detach them before logging).
    """

    citation = (
        "BioHiCL: Hierarchy-Aware Contrastive Learning with MeSH Labels for Biomedical Retrieval, ACL 2026 "
        "(L = L_mse + λ·L_con)"
    )

    def __init__(
        self,
        regression: FilteredMSELoss | None = None,
        contrastive: HierarchicalContrastiveLoss | None = None,
        lambda_con: float = 0.1,
        use_mse: bool = True,
        use_contrastive: bool = True,
        distillation: SimilarityDistillationLoss | None = None,
        distill_weight: float = 0.0,
        title: TitleInfoNCELoss | None = None,
        title_weight: float = 0.0,
    ):
        super().__init__()
        if not (use_mse or use_contrastive or title_weight > 0):
            raise ValueError("use_mse and use_contrastive are both False and title_weight is 0: an empty loss")
        if lambda_con < 0:
            raise ValueError(f"lambda_con: must be non-negative, got {lambda_con}")
        if distill_weight < 0:
            raise ValueError(f"distill_weight: must be non-negative, got {distill_weight}")
        if title_weight < 0:
            raise ValueError(f"title_weight: must be non-negative, got {title_weight}")
        self.regression = regression if regression is not None else FilteredMSELoss()
        self.contrastive = contrastive if contrastive is not None else HierarchicalContrastiveLoss()
        self.lambda_con = lambda_con
        self.use_mse = use_mse
        self.use_contrastive = use_contrastive
        self.distillation = distillation if distillation is not None else SimilarityDistillationLoss()
        self.distill_weight = distill_weight
        self.title = title if title is not None else TitleInfoNCELoss()
        self.title_weight = title_weight

    @property
    def extra_inputs(self) -> frozenset[str]:
        """Inputs beyond ``embeddings`` and ``siml`` that ``forward`` needs from the trainer: ``base_embeddings``
        (the batch under the frozen base model), ``title_embeddings`` (with ``abstract_embeddings``: the titled
        documents' titles and abstracts)."""
        wanted = {"base_embeddings"} if self.distill_weight > 0 else set()
        if self.title_weight > 0:
            wanted.add("title_embeddings")
        return frozenset(wanted)

    def forward(
        self,
        embeddings: torch.Tensor,
        siml: torch.Tensor,
        pair_mask: torch.Tensor | None = None,
        base_embeddings: torch.Tensor | None = None,
        title_embeddings: torch.Tensor | None = None,
        abstract_embeddings: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``pair_mask`` [B, B] (optional): pairs the label terms may use (e.g. same label kind only)."""
        zero = embeddings.new_zeros((), dtype=torch.float32)
        loss_mse = self.regression(embeddings, siml, pair_mask) if self.use_mse else zero
        loss_con = self.contrastive(embeddings, siml, pair_mask) if self.use_contrastive else zero
        total = (loss_mse if self.use_mse else 0.0) + (self.lambda_con * loss_con if self.use_contrastive else 0.0)
        out = {"loss_mse": loss_mse, "loss_con": loss_con}
        if self.distill_weight > 0:
            if base_embeddings is None:
                raise ValueError("base_embeddings: required when distill_weight > 0 (the frozen base model's batch)")
            out["loss_distill"] = self.distillation(embeddings, base_embeddings)
            total = total + self.distill_weight * out["loss_distill"]
        if self.title_weight > 0:
            if title_embeddings is None or abstract_embeddings is None:  # a batch without titles (PubMedQA abstracts)
                out["loss_title"] = embeddings.float().sum() * 0.0  # 0, in the graph: a title-only loss still backprops
            else:
                out["loss_title"] = self.title(title_embeddings, abstract_embeddings)
            total = total + self.title_weight * out["loss_title"]
        return {"loss": total, **out}

    def get_config_dict(self) -> dict[str, Any]:
        config = {
            "lambda_con": self.lambda_con,
            "use_mse": self.use_mse,
            "use_contrastive": self.use_contrastive,
            "regression": self.regression.get_config_dict(),
            "contrastive": self.contrastive.get_config_dict(),
            "distill_weight": self.distill_weight,
        }
        if self.distill_weight > 0:
            config["distillation"] = self.distillation.get_config_dict()
        if self.title_weight > 0:
            config["title_weight"] = self.title_weight
            config["title"] = self.title.get_config_dict()
        return config

    def extra_repr(self) -> str:
        return (
            f"lambda_con={self.lambda_con}, use_mse={self.use_mse}, use_contrastive={self.use_contrastive}, "
            f"distill_weight={self.distill_weight}, title_weight={self.title_weight}"
        )

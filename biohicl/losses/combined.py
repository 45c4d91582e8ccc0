"""The BioHiCL objective: ``L = L_mse + λ · L_con`` (λ = 0.1), returning every component for logging.

Either term can be switched off (the paper's "no L_con" / "no L_mse" ablations); a switched-off term is reported as
0 and costs nothing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .contrastive import HierarchicalContrastiveLoss
from .regression import FilteredMSELoss


class BioHiCLLoss(nn.Module):
    """Filtered SimE→SimL regression plus λ times the hierarchy-aware contrastive loss.

    ``forward`` returns a dict: ``loss`` (the total, to back-propagate) and the unscaled components ``loss_mse``
    and ``loss_con`` (still attached to the graph: detach them before logging).
    """

    def __init__(
        self,
        regression: FilteredMSELoss | None = None,
        contrastive: HierarchicalContrastiveLoss | None = None,
        lambda_con: float = 0.1,
        use_mse: bool = True,
        use_contrastive: bool = True,
    ):
        super().__init__()
        if not (use_mse or use_contrastive):
            raise ValueError("use_mse and use_contrastive are both False: the loss would be empty")
        if lambda_con < 0:
            raise ValueError(f"lambda_con: must be non-negative, got {lambda_con}")
        self.regression = regression if regression is not None else FilteredMSELoss()
        self.contrastive = contrastive if contrastive is not None else HierarchicalContrastiveLoss()
        self.lambda_con = lambda_con
        self.use_mse = use_mse
        self.use_contrastive = use_contrastive

    def forward(self, embeddings: torch.Tensor, siml: torch.Tensor) -> dict[str, torch.Tensor]:
        zero = embeddings.new_zeros((), dtype=torch.float32)
        loss_mse = self.regression(embeddings, siml) if self.use_mse else zero
        loss_con = self.contrastive(embeddings, siml) if self.use_contrastive else zero
        total = (loss_mse if self.use_mse else 0.0) + (self.lambda_con * loss_con if self.use_contrastive else 0.0)
        return {"loss": total, "loss_mse": loss_mse, "loss_con": loss_con}

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "lambda_con": self.lambda_con,
            "use_mse": self.use_mse,
            "use_contrastive": self.use_contrastive,
            "regression": self.regression.get_config_dict(),
            "contrastive": self.contrastive.get_config_dict(),
        }

    def extra_repr(self) -> str:
        return f"lambda_con={self.lambda_con}, use_mse={self.use_mse}, use_contrastive={self.use_contrastive}"

"""The training objective the arguments describe (:func:`build_loss`) and how a run records it (:func:`loss_config`).

Any loss works with :class:`~biohicl.training.trainer.BioHiCLTrainer`: ``loss(embeddings, siml, **inputs)``
returns a tensor, or a dict of components (``loss`` is the total when present, else the components are summed).
To add a term to the objective the arguments describe, give :func:`build_loss` ``extra_terms`` and the result to
``train_biohicl(args, loss=...)`` (docs/training.md, "Adding a loss term").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from biohicl.errors import ConfigError
from biohicl.losses import BioHiCLLoss, FilteredMSELoss, HierarchicalContrastiveLoss, TitleInfoNCELoss
from biohicl.training.args import BioHiCLTrainingArguments


def build_loss(
    args: BioHiCLTrainingArguments, extra_terms: Mapping[str, tuple[nn.Module, float]] | None = None
) -> BioHiCLLoss:
    """The objective described by ``args``, plus ``extra_terms`` (``{name: (module, weight)}``, each logged as
    ``loss_<name>``: :class:`~biohicl.losses.combined.BioHiCLLoss`)."""
    return BioHiCLLoss(
        FilteredMSELoss(pair_filter=args.pair_filter, beta=args.beta),
        HierarchicalContrastiveLoss(
            beta=args.beta,
            temperature=args.temperature,
            weighted=args.weight_positives,
            form=args.contrastive_form,
            negative=args.negative,
        ),
        lambda_con=args.lambda_con,
        use_mse=args.use_mse,
        use_contrastive=args.use_contrastive,
        distill_weight=args.distill_weight,
        title=TitleInfoNCELoss(temperature=args.title_temperature),
        title_weight=args.title_weight,
        extra_terms=extra_terms,
    )


def loss_terms(out: torch.Tensor | Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A loss's output as ``(total, {loss_<name>: component})``: a tensor is the total alone; in a dict, ``loss``
    is the total when present, else the components are summed. A component that is not one number (a per-document
    vector) is a :class:`ConfigError` naming it, at the first step rather than at the first log."""
    if isinstance(out, torch.Tensor):
        return out, {}
    components = {}
    for key, value in out.items():
        value = torch.as_tensor(value)
        if value.numel() != 1:
            raise ConfigError(f"loss: component {key!r} is not a scalar (shape {list(value.shape)})")
        if key != "loss":
            components[key if key.startswith("loss_") else f"loss_{key}"] = value.reshape(())
    if "loss" in out:
        return out["loss"], components
    if not components:
        raise ConfigError("loss: returned an empty dict (expected a tensor or a dict of loss components)")
    return sum(components.values()), components


def loss_config(loss: Any) -> dict[str, Any]:
    """A loss's ``get_config_dict()``, or its class name for a loss without one."""
    getter = getattr(loss, "get_config_dict", None)
    return getter() if callable(getter) else {"class": type(loss).__name__}

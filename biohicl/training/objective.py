"""The training objective the arguments describe (:func:`build_loss`) and how a run records it (:func:`loss_config`).

Any loss works with :class:`~biohicl.training.trainer.BioHiCLTrainer`: ``loss(embeddings, siml, **inputs)``
returns a tensor, or a dict of components (``loss`` is the total when present, else the components are summed).
To add a term to the objective the arguments describe, give :func:`build_loss` ``extra_terms`` and the result to
``train_biohicl(args, loss=...)`` (docs/training.md, "Adding a loss term").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

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


def loss_config(loss: Any) -> dict[str, Any]:
    """A loss's ``get_config_dict()``, or its class name for a loss without one."""
    getter = getattr(loss, "get_config_dict", None)
    return getter() if callable(getter) else {"class": type(loss).__name__}

"""The training objective the arguments describe (:func:`build_loss`) and how a run records it (:func:`loss_config`).

Any loss works with :class:`~biohicl.training.trainer.BioHiCLTrainer`: ``loss(embeddings, siml, **inputs)``
returns a tensor, or a dict of components (``loss`` is the total when present, else the components are summed).
To add a term to the objective the arguments describe, give :func:`build_loss` ``extra_terms`` and the result to
``train_biohicl(args, loss=...)`` (docs/training.md, "Adding a loss term").

The loss is the one place its values are checked: the arguments refuse what the loss built from them would refuse
(:func:`check_objective`), and whether any term is on is said where the whole objective is known, extra terms
included (:func:`build_loss`: an objective of extra terms alone trains).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from biohicl.errors import ConfigError
from biohicl.losses import BioHiCLLoss, FilteredMSELoss, HierarchicalContrastiveLoss, TitleInfoNCELoss

if TYPE_CHECKING:
    from biohicl.training.args import BioHiCLTrainingArguments

#: The term :func:`check_objective` builds the arguments' loss with, so that only their values are checked.
_STAND_IN = "stand_in"


def _objective(args: Any, extra_terms: Mapping[str, tuple[nn.Module, float]] | None) -> BioHiCLLoss:
    return BioHiCLLoss(
        FilteredMSELoss(pair_filter=args.pair_filter, beta=args.beta),
        HierarchicalContrastiveLoss(
            beta=args.beta,
            temperature=args.temperature,
            weighted=args.weight_positives,
            form=args.contrastive_form,
            negative=args.negative,
            mean=args.contrastive_mean,
        ),
        lambda_con=args.lambda_con,
        use_mse=args.use_mse,
        use_contrastive=args.use_contrastive,
        distill_weight=args.distill_weight,
        title=TitleInfoNCELoss(temperature=args.title_temperature),
        title_weight=args.title_weight,
        extra_terms=extra_terms,
    )


def check_objective(args: Any) -> None:
    """Refuse what :func:`build_loss` would refuse of ``args``' values (a ``BioHiCLTrainingArguments``, or a study's
    namespace of them), as a one-line :class:`ConfigError` naming the field: the loss is built, with a stand-in extra
    term so that whether any term is on is left to the run, which knows its extra terms."""
    _built(args, {_STAND_IN: (nn.Identity(), 1.0)})


def _built(args: Any, extra_terms: Mapping[str, tuple[nn.Module, float]] | None) -> BioHiCLLoss:
    """:func:`_objective`, a ValueError of the loss's as a one-line :class:`ConfigError` naming the field."""
    try:
        return _objective(args, extra_terms)
    except ConfigError:  # an extra term's own refusal, naming it
        raise
    except ValueError as err:
        message = " ".join(str(err).split())
        named = message.partition(":")[0].split(", ")  # the fields the message opens with
        raise ConfigError(message if all(hasattr(args, name) for name in named) else f"loss: {message}") from None


def build_loss(
    args: BioHiCLTrainingArguments, extra_terms: Mapping[str, tuple[nn.Module, float]] | None = None
) -> BioHiCLLoss:
    """The objective described by ``args``, plus ``extra_terms`` (``{name: (module, weight)}``, each logged as
    ``loss_<name>``: :class:`~biohicl.losses.combined.BioHiCLLoss`). A value the loss refuses is a one-line
    :class:`ConfigError` naming its field, and so is an objective with no term on
    (:data:`~biohicl.losses.combined.EMPTY_OBJECTIVE`: the arguments' terms all off and no extra term of positive
    weight), only once the values are right (``BioHiCLLoss`` checks them first)."""
    return _built(args, extra_terms)


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


def _json_form(value: Any) -> Any:
    """What JSON stores of a config value it cannot store itself: a numpy or torch number or array as its list, a
    path as its text, a set as its sorted texts, anything else as its text (``torch.float16``, ``Mode.MEAN``), or as
    its type alone (``"<function>"``) when that text holds an address (``<function f at 0x7f...>``), which differs
    between processes that built the same term: a resume compares the record."""
    if callable(getattr(value, "tolist", None)):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))
    text = str(value)
    return f"<{type(value).__name__}>" if " at 0x" in text else text


def objective_record(loss: Any) -> dict[str, Any]:
    """What a run records of the loss it trains, as JSON reads it back: its class and :func:`loss_config`, a value
    JSON cannot store by its type (:func:`_json_form`) (``training_summary.json``'s ``loss``, and each checkpoint's,
    which a resume compares: :func:`~biohicl.training.run_settings.check_resume_objective`)."""
    return json.loads(json.dumps({"class": type(loss).__name__, **loss_config(loss)}, default=_json_form))

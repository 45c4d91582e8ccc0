"""Which built-in terms of the BioHiCL objective train: a term trains only with its switch on and its weight above 0
(``use_contrastive`` with ``lambda_con=0`` is computed and logged, not trained on). The one rule that
:class:`~biohicl.losses.combined.BioHiCLLoss` refuses an objective by (no term trains) and that reading a recorded
loss uses (``training.loss_record``: the dry run's ``objective:`` line, the model card). Torch-free: the card reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from biohicl.field_types import is_number

#: each built-in term's entry in a loss's record, and the settings that weigh it: it trains when each is on
#: (:func:`is_on`)
TERM_WEIGHTS = {
    "regression": ("use_mse",),
    "contrastive": ("use_contrastive", "lambda_con"),
    "distillation": ("distill_weight",),
    "title": ("title_weight",),
}
#: every setting that weighs a built-in term, in the order a refusal names them
WEIGHT_FIELDS = tuple(field for fields in TERM_WEIGHTS.values() for field in fields)


def is_on(value: Any) -> bool:
    """Whether a term's weight or switch ``value`` trains it: anything but false, or a number not above 0 (a value
    not recorded, or of another kind, counts as on: a term is shown rather than hidden)."""
    return not (value is False or (is_number(value) and not value > 0))


def trains(settings: Mapping[str, Any], term: str) -> bool:
    """Whether the built-in term ``term`` trains under ``settings`` (a loss's record or its arguments:
    :data:`TERM_WEIGHTS`); a term this release does not know, always."""
    return all(is_on(settings.get(weight)) for weight in TERM_WEIGHTS.get(term, ()))

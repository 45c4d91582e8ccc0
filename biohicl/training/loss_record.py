"""Which terms of a recorded BioHiCL loss train: the one rule that the dry run's ``objective:`` line
(``cli.train_plan.objective_plan``) and the model card's loss rows and citations (``hub.card_hyperparameters``) both
read, from what ``BioHiCLLoss.get_config_dict()`` records. A term switched off, or on with weight 0
(``lambda_con=0``: computed and logged, not trained on), does not train. Torch-free: the card reads it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from biohicl.field_types import is_number

#: each built-in term's entry in the record, and the entries that weigh it: it trains when each is on (:func:`is_on`)
TERM_WEIGHTS = {
    "regression": ("use_mse",),
    "contrastive": ("use_contrastive", "lambda_con"),
    "distillation": ("distill_weight",),
    "title": ("title_weight",),
}
#: the record's entry of the terms added with ``extra_terms=``, each ``{class, weight, config}`` by its name
EXTRA_TERMS = "extra_terms"


def is_biohicl_record(record: Any) -> bool:
    """Whether ``record`` is a BioHiCL loss's (``class`` BioHiCLLoss, or none in a record written before it was
    recorded, with its ``lambda_con``); another loss's is shown whole, by its class and settings."""
    return isinstance(record, dict) and record.get("class") in (None, "BioHiCLLoss") and "lambda_con" in record


def is_on(value: Any) -> bool:
    """Whether a term's weight or switch ``value`` trains it: anything but false, or a number not above 0 (a value
    not recorded, or of another kind, counts as on: a term is shown rather than hidden)."""
    return not (value is False or (is_number(value) and not value > 0))


def trains(record: dict[str, Any], term: str) -> bool:
    """Whether the built-in term ``term`` of the BioHiCL ``record`` trains (:data:`TERM_WEIGHTS`); a term this
    release does not know, always."""
    return all(is_on(record.get(weight)) for weight in TERM_WEIGHTS.get(term, ()))


def trained_terms(record: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(key, name, entry)`` of each term of the BioHiCL ``record`` that trains, in the record's order: a built-in
    term (``key`` and ``name`` its entry's, ``contrastive``) when :func:`trains`, an extra term (``key``
    :data:`EXTRA_TERMS`, ``name`` its own) of weight above 0."""
    for key, value in record.items():
        if key == EXTRA_TERMS and isinstance(value, dict):
            for name, term in value.items():
                if isinstance(term, dict) and is_on(term.get("weight")):
                    yield key, name, term
        elif isinstance(value, dict) and trains(record, key):
            yield key, key, value

"""Which terms of a recorded BioHiCL loss train: the one rule that the dry run's ``objective:`` line
(``cli.train_plan.objective_plan``) and the model card's loss rows and citations (``hub.card_hyperparameters``) both
read, from what ``BioHiCLLoss.get_config_dict()`` records, by the losses' own rule (:mod:`biohicl.losses.terms`,
by which ``BioHiCLLoss`` refuses an objective where no term trains): a term switched off, or on with weight 0
(``lambda_con=0``: computed and logged, not trained on), does not train. Torch-free: the card reads it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from biohicl.losses.terms import TERM_WEIGHTS, is_on, trains

__all__ = ["EXTRA_TERMS", "TERM_WEIGHTS", "is_biohicl_record", "is_on", "trained_terms", "trains"]

#: the record's entry of the terms added with ``extra_terms=``, each ``{class, weight, config}`` by its name
EXTRA_TERMS = "extra_terms"


def is_biohicl_record(record: Any) -> bool:
    """Whether ``record`` is a BioHiCL loss's (``class`` BioHiCLLoss, or none in a record written before it was
    recorded, with its ``lambda_con``); another loss's is shown whole, by its class and settings."""
    return isinstance(record, dict) and record.get("class") in (None, "BioHiCLLoss") and "lambda_con" in record


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

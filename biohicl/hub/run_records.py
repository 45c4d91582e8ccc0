"""A training run's records as the model card reads them: each file's fields of the JSON kind the card needs (a list
for an object, a word for a number, a ``max_steps`` of ``"3"``), else one :class:`~biohicl.errors.PublishError`
line naming the file and the field, not a traceback while the card is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biohicl.errors import PublishError
from biohicl.field_types import is_int, is_number
from biohicl.hub.card_hyperparameters import RUN_SCALE, loss_fields
from biohicl.training.selection import read_evaluation_rows, read_selection

#: the ``training_summary.json`` fields the card reads and the JSON each must be (null: not recorded); the nested
#: objects' fields under their dotted names; the recorded loss's, those its walk reads (:func:`summary_fields`)
SUMMARY_FIELDS = {
    "data": "object",
    "loss": "object",
    "selection": "object",
    "selection.evaluations": "pairs",
    "selection.best_step": "integer",
    "selection.best_metric": "number",
    "selection.step0_metric": "number",
    "global_step": "integer",
    "trainable_parameters": "integer",
    "total_parameters": "integer",
    "world_size": "integer",
    "documents_per_optimizer_step": "integer",
    "runtime_s": "number",
    "resumed_at_step": "integer",
}
#: the ``trainer_state.json`` fields the card reads (the schedule that ran)
STATE_FIELDS = {"epoch": "number", "max_steps": "integer"}
#: the ``biohicl_training_args.json`` fields the card reads whose kind matters: the numbers of its hyperparameter
#: table and schedule (a ``max_steps`` of ``"3"`` would show the epochs as governing) and the selection's metric lists
ARGS_FIELDS = {
    **dict.fromkeys(
        ("lambda_con", "beta", "temperature", "lora_dropout", "learning_rate", "num_train_epochs", "warmup_steps"),
        "number",
    ),
    **dict.fromkeys(
        ("distill_weight", "title_weight", "check_tag_weight", "study_design_weight", "selection_guard_tolerance"),
        "number",
    ),
    **dict.fromkeys(
        ("lora_r", "lora_alpha", "per_device_train_batch_size", "max_steps", "max_length", "seed", *RUN_SCALE),
        "integer",
    ),
    **dict.fromkeys(("eval_tasks", "selection_metrics", "selection_guard"), "strings"),
}
#: the ``soup.json`` fields the card reads (:func:`soup_paragraph`)
SOUP_FIELDS = {"adapters": "strings", "weights": "numbers", "rank": "integer"}
#: what a selection that loaded its best step must record: the card says which step it kept and both scores
SELECTED_FIELDS = ("selection.best_step", "selection.best_metric", "selection.step0_metric")
_KIND_WORDS = {
    "object": "a JSON object",
    "list": "a JSON list",
    "integer": "an integer",
    "number": "a number",
    "pairs": "a list of [step, score] pairs",
    "strings": "a list of strings",
    "numbers": "a list of numbers",
}


def summary_fields(summary: Any) -> dict[str, str]:
    """The fields of the ``training_summary.json`` value ``summary`` the card reads: :data:`SUMMARY_FIELDS` and
    those of its recorded loss the card's loss rows walk (:func:`~biohicl.hub.card_hyperparameters.loss_fields`:
    a BioHiCL loss's weights, terms and numbers, each extra term's weight)."""
    return {**SUMMARY_FIELDS, **loss_fields(summary.get("loss") if isinstance(summary, dict) else None)}


def _is(value: Any, kind: str) -> bool:
    """Whether the JSON ``value`` is of ``kind`` (:data:`_KIND_WORDS`); null always is (not recorded)."""
    if value is None:
        return True
    if kind == "pairs":
        return isinstance(value, list) and all(
            isinstance(pair, list) and len(pair) == 2 and is_int(pair[0]) and _is(pair[1], "number") for pair in value
        )
    if kind in ("strings", "numbers"):
        each = (lambda v: isinstance(v, str)) if kind == "strings" else is_number
        return isinstance(value, list) and all(each(v) for v in value)
    checks = {
        "object": lambda v: isinstance(v, dict),
        "list": lambda v: isinstance(v, list),
        "integer": is_int,
        "number": is_number,
    }
    return checks[kind](value)


def _shown(value: Any) -> str:
    """``value`` as an error message quotes it: its repr, cut at 80 characters."""
    return repr(value) if len(repr(value)) <= 80 else f"{repr(value)[:77]}..."


def _field(values: dict[str, Any], name: str) -> Any:
    """The value of the dotted field ``name`` in ``values`` (None where a parent is missing or not an object)."""
    holder: Any = values
    for key in name.split("."):
        holder = holder.get(key) if isinstance(holder, dict) else None
    return holder


def checked(values: Any, path: Path, fields: dict[str, str] | None = None) -> dict[str, Any]:
    """``values`` (the JSON of the run record ``path``) when it is a JSON object whose ``fields`` (dotted names for
    a nested object's) are of their kind or null; else a one-line :class:`PublishError` naming the file and field."""
    if not isinstance(values, dict):
        raise PublishError(f"{path}: expected a JSON object, got {type(values).__name__}")
    for name, kind in (fields or {}).items():
        value = _field(values, name)  # a parent is listed, and so checked, before its fields
        if not _is(value, kind):
            raise PublishError(f"{path}: field {name} must be {_KIND_WORDS[kind]}, got {_shown(value)}")
    return values


def check_selected(summary: dict[str, Any], path: Path) -> None:
    """A selection that loaded its best step records the step and both scores the card states
    (:data:`SELECTED_FIELDS`); else a one-line :class:`PublishError`. A score written ``null`` for NaN (its step's
    evaluation was not a number: :func:`~biohicl.training.selection.read_selection`) is recorded; a ``null`` step is
    not."""
    if not _field(summary, "selection.loaded_best"):
        return
    read = {"selection": read_selection(summary.get("selection"))}
    for name in SELECTED_FIELDS:
        if _field(read, name) is None:
            kind = SUMMARY_FIELDS[name]
            raise PublishError(f"{path}: field {name} must be {_KIND_WORDS[kind]} (selection.loaded_best), got None")


def checked_rows(rows: Any, path: Path) -> list[dict[str, Any]]:
    """``rows`` (``dev_evaluations.json``) when a JSON list of objects, each with an integer ``step`` and a number
    for each ``eval_*`` metric (``null``, a NaN's JSON, read as NaN:
    :func:`~biohicl.training.selection.read_evaluation_rows`); else a one-line :class:`PublishError` naming the file,
    the row and the field."""
    rows = read_evaluation_rows(rows)
    if not isinstance(rows, list):
        raise PublishError(f"{path}: expected a JSON list, got {type(rows).__name__}")
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise PublishError(f"{path}: row {number} must be a JSON object, got {_shown(row)}")
        if not is_int(row.get("step")):
            raise PublishError(f"{path}: row {number}: field step must be an integer, got {_shown(row.get('step'))}")
        for key, value in row.items():
            if key.startswith("eval_") and not is_number(value):
                raise PublishError(f"{path}: step {row['step']}: field {key} must be a number, got {_shown(value)}")
    return rows

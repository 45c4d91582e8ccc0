"""The card's hyperparameter table: what trained, from the training arguments, the recorded loss, the saved
adapter and the trainer state (not the arguments' defaults); and the loss classes the card cites.

The loss rows are one walk of ``training_summary.json``'s ``loss`` (what ``get_config_dict()`` recorded,
:func:`loss_leaves`): every term that trains (:mod:`biohicl.training.loss_record`, the rule the dry run's objective
line follows too), with its weight and each of its parameters, named as the training argument that sets it
(``title.temperature`` is ``title_temperature``), an extra term as ``loss_<name>``; so a parameter a loss records,
today or in a later release, reaches the card without being listed here.

The other rows: :data:`HYPERPARAMETERS`, in the paper's order, wherever the run recorded them, then every other training
argument outside :data:`~biohicl.training.run_settings.RUN_NEUTRAL_ARGS` (what changes neither what trains nor what
is selected) whose value is not its default (:func:`other_settings`), so the one list of what does not change a run
decides what the card names; the card says that the others were at their defaults, all of them in the run's
``biohicl_training_args.json``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from biohicl.field_types import is_number
from biohicl.hub.card_adapter import PEFT_KEYS, adapter_rows
from biohicl.hub.run_sources import without_machine_paths
from biohicl.training.loss_record import EXTRA_TERMS, TERM_WEIGHTS, is_biohicl_record, trained_terms, trains
from biohicl.training.run_settings import RUN_NEUTRAL_ARGS

if TYPE_CHECKING:
    from biohicl.losses import BioHiCLLoss

#: training arguments shown in the card's hyperparameter table whatever their value, in this order (when present in
#: biohicl_training_args.json; the :data:`RUN_SCALE` rows from training_summary.json); any other that changes the run
#: follows where it is not at its default (:func:`other_settings`)
LORA_KEYS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
HYPERPARAMETERS = (
    "lambda_con",
    "beta",
    "temperature",
    "pair_filter",
    "weight_positives",
    "use_mse",
    "use_contrastive",
    "use_ancestors",
    "use_depth_weight",
    "full_finetune",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "learning_rate",
    "optim",
    "weight_decay",
    "max_grad_norm",
    "gradient_accumulation_steps",
    "per_device_train_batch_size",
    "world_size",
    "documents_per_optimizer_step",
    "num_train_epochs",
    "max_steps",
    "warmup_steps",
    "max_length",
    "batch_sampler",
    "seed",
    # beyond the paper: shown so that a card never hides a term or schedule the paper does not have (the recorded
    # loss's rows this table does not name, title_temperature, loss_<name> ..., follow title_weight)
    "contrastive_form",
    "negative",
    "distill_weight",
    "title_weight",
    "check_tag_weight",
    "study_design_weight",
    "lr_scheduler_type",
)


#: the training arguments the card states elsewhere, so not in this table: the base (its Hub id and revision), its
#: pooling and prompts (Model details) and the dataset (the training data paragraph, by its name and sha256)
STATED_ELSEWHERE = frozenset(
    {"base_model", "base_revision", "base_model_hub_id", "pooling", "query_prompt", "document_prompt", "dataset_path"}
)
#: the rows the run's schedule decides (:func:`schedule_rows`), not the arguments as given
SCHEDULE_KEYS = ("num_train_epochs", "max_steps", "warmup_steps")
#: transformers' schedulers that take no warm-up (``get_scheduler`` builds them without ``num_warmup_steps``)
NO_WARMUP_SCHEDULERS = frozenset({"constant", "reduce_lr_on_plateau", "greedy"})
#: training_summary.json's keys on the processes that trained (none in a run folder written before they were recorded)
RUN_SCALE = ("world_size", "documents_per_optimizer_step")

#: the prefix a built-in term's parameters take on the card (``loss_record.TERM_WEIGHTS``), the training
#: arguments' (``title.temperature``: ``title_temperature``); another entry's are shown by their place (``hard.k``)
ARGUMENT_PREFIXES = {"regression": "", "contrastive": "", "distillation": "distill_", "title": "title_"}
#: the parameters whose training argument is named otherwise than prefix + name
ARGUMENT_NAMES = {
    "contrastive.weighted": "weight_positives",
    "contrastive.form": "contrastive_form",
    "contrastive.mean": "contrastive_mean",
}
#: the entries of a term that name it rather than set it (an earlier release recorded ``distillation: {type: ...}``)
NAMING_KEYS = frozenset({"class", "type", "citation"})
#: what a BioHiCL record without the entry meant: an earlier release recorded ``title_weight`` only when it was on
UNRECORDED = {"title_weight": 0.0}
#: β also picks the batches' positive pairs (the sampler's), so its argument's row stays beside the loss's
SAMPLER_ARGUMENTS = frozenset({"beta"})


def _flat(config: dict[str, Any], skip: frozenset[str] = frozenset(), place: str = "") -> Iterator[tuple[str, Any]]:
    """``(key, value)`` of each setting in ``config``, a nested object's by its dotted place (``inner.temperature``),
    the top level's ``skip`` keys left out."""
    for key, value in config.items():
        if not place and key in skip:
            continue
        if isinstance(value, dict):
            yield from _flat(value, place=f"{place}{key}.")
        else:
            yield f"{place}{key}", value


def _call(name: Any, settings: dict[str, Any]) -> str:
    """``Class(key=value, ...)``: how the card shows a loss or term with its settings."""
    return f"{name or 'unknown'}({', '.join(f'{k}={v}' for k, v in _flat(settings))})"


def _extra_term(term: Any) -> Any:
    """An extra term's row: ``weight · Class(key=value, ...)`` from its record (the term's own ``config`` settings,
    with any other entry it has), or the record as it is when not an object."""
    if not isinstance(term, dict):
        return term
    config = term.get("config")
    settings = {k: v for k, v in term.items() if k not in ("class", "weight", "citation", "config")}
    settings = {**settings, **(config if isinstance(config, dict) else {} if config is None else {"config": config})}
    weight = term.get("weight")
    shown = f"{weight:g}" if is_number(weight) else weight
    return (
        f"{shown} · {_call(term.get('class'), settings)}" if weight is not None else _call(term.get("class"), settings)
    )


def loss_leaves(record: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """``(row, place, value)`` of each setting of a BioHiCL loss's ``record`` that the card shows: each weight and
    switch as recorded (``title_weight`` 0 where an earlier release left it out, :data:`UNRECORDED`), each
    parameter of a term that trains (``loss_record.trains``; named as its training argument,
    :data:`ARGUMENT_PREFIXES`, :data:`ARGUMENT_NAMES`), each
    extra term as ``loss_<name>`` (:func:`_extra_term`). ``place`` is its dotted place in the record."""
    leaves = []
    unrecorded = {key: value for key, value in UNRECORDED.items() if key not in record}
    for key, value in {**record, **unrecorded}.items():
        if key in NAMING_KEYS:
            continue
        if key == EXTRA_TERMS and isinstance(value, dict):
            leaves += [(f"loss_{name}", f"{key}.{name}", _extra_term(term)) for name, term in value.items()]
        elif isinstance(value, dict):
            if trains(record, key):
                prefix = ARGUMENT_PREFIXES.get(key, f"{key}.")
                for param, setting in _flat(value, NAMING_KEYS):
                    place = f"{key}.{param}"
                    leaves.append((ARGUMENT_NAMES.get(place, prefix + param), place, setting))
        else:
            leaves.append((key, key, value))
    return leaves


def loss_rows(record: dict[str, Any] | None, kept: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The card's loss rows from ``training_summary.json``'s ``loss`` (:func:`loss_leaves`), or
    ``{"loss": "Class(key=value, ...)"}`` for another loss; None when the run recorded no loss. Settings of one
    name that differ (the regression's β and the contrastive term's, or either and ``kept``'s, the arguments' rows
    that stay: :data:`SAMPLER_ARGUMENTS`) are each named by their place instead (``contrastive.beta``)."""
    if not record:
        return None
    if not is_biohicl_record(record):
        return {"loss": _call(record.get("class"), dict(_flat(record, frozenset({"class", "citation"}))))}
    leaves = loss_leaves(record)
    leaves += [(key, key, value) for key, value in (kept or {}).items() if key in SAMPLER_ARGUMENTS]
    places: dict[str, list[tuple[str, Any]]] = {}
    for name, place, value in leaves:
        places.setdefault(name, []).append((place, value))
    rows = {}
    for name, settings in places.items():
        if all(value == settings[0][1] for _, value in settings):
            rows[name] = settings[0][1]
        else:
            rows.update(settings)
    return rows


@cache
def _every_term() -> BioHiCLLoss:
    """A BioHiCL loss with every built-in term on, and every setting its record holds only away from its default set
    so (the contrastive ``mean``): what its record can hold, and each term's class."""
    from biohicl.losses import BioHiCLLoss, HierarchicalContrastiveLoss  # torch: only for a run that recorded its loss

    return BioHiCLLoss(
        contrastive=HierarchicalContrastiveLoss(mean="contrastable"), distill_weight=1.0, title_weight=1.0
    )


@cache
def loss_arguments() -> frozenset[str]:
    """The training arguments the BioHiCL objective is built from (the rows its record walks to, every term on),
    left out of the card of a run that recorded its loss: the record's rows say what trained, another loss's too;
    β stays (:data:`SAMPLER_ARGUMENTS`)."""
    return frozenset(name for name, _, _ in loss_leaves(_every_term().get_config_dict())) - SAMPLER_ARGUMENTS


def _kinds(config: dict[str, Any], place: str) -> Iterator[tuple[str, str]]:
    """``(dotted field, kind)`` of each object and number in ``config`` (under ``place``)."""
    for key, value in config.items():
        if isinstance(value, dict):
            yield f"{place}.{key}", "object"
            yield from _kinds(value, f"{place}.{key}")
        elif is_number(value):
            yield f"{place}.{key}", "number"


def loss_fields(record: Any) -> dict[str, str]:
    """The fields of a BioHiCL loss's ``record`` the card's walk reads, dotted under ``loss``, and the JSON kind each
    must be (:mod:`~biohicl.hub.run_records`): each object and number a BioHiCL loss with every term on records
    (its weights, terms, temperatures ...), ``extra_terms`` an object of objects each with a number ``weight``;
    none for another loss, shown as recorded."""
    if not is_biohicl_record(record):
        return {}
    fields = dict(_kinds(_every_term().get_config_dict(), "loss"))
    fields[f"loss.{EXTRA_TERMS}"] = "object"
    terms = record.get(EXTRA_TERMS)
    for name in terms if isinstance(terms, dict) else ():
        fields |= {f"loss.{EXTRA_TERMS}.{name}": "object", f"loss.{EXTRA_TERMS}.{name}.weight": "number"}
    return fields


def _cite(cited: dict[str, str], name: Any, entry: Any) -> None:
    """Add ``name``'s citation to ``cited``: the record ``entry``'s own ``citation``, else the class of that name's
    in :mod:`biohicl.losses`; none for a class this release does not have whose record carries none."""
    from biohicl import losses

    source = entry.get("citation") if isinstance(entry, dict) else None
    if not isinstance(source, str) and isinstance(name, str) and name in losses.__all__:
        source = getattr(getattr(losses, name), "citation", None)
    if isinstance(name, str) and isinstance(source, str) and source:
        cited.setdefault(name, source)


def loss_citations(record: Any) -> dict[str, str]:
    """``{class name: citation}`` for each loss class the recorded loss ``record`` trained with (the card's
    citation section): the loss, then each of a BioHiCL loss's terms that trains (``loss_record.trained_terms``),
    by the class its entry records, else the built-in term's (:func:`_every_term`), an extra term's by its
    ``class``."""
    cited: dict[str, str] = {}
    if not isinstance(record, dict) or not record:
        return cited
    if not is_biohicl_record(record):
        _cite(cited, record.get("class"), record)
        return cited
    _cite(cited, "BioHiCLLoss", record)
    for key, _, entry in trained_terms(record):
        built_in = getattr(_every_term(), key, None) if key in TERM_WEIGHTS else None
        _cite(cited, entry.get("class") or (type(built_in).__name__ if built_in is not None else None), entry)
    return cited


def schedule_rows(args: dict[str, Any], state: dict[str, Any] | None = None) -> dict[str, Any]:
    """The epoch, step and warm-up rows of the run the arguments ``args`` and its ``trainer_state.json`` (``state``)
    describe. ``max_steps`` > 0 governs (transformers stops there): it is shown, and the epochs are those the trainer
    state records (``epoch``), none without it; otherwise ``num_train_epochs`` as given. The warm-up is the steps
    transformers took (``TrainingArguments.get_warmup_steps``: ``int(warmup_steps)`` from 1 up, else a ratio, the
    ceiling of that share of the run's optimizer steps, ``max_steps`` or the trainer state's), a share of the steps
    when no total is recorded, and no row under a scheduler that takes no warm-up (``constant`` ...)."""
    state = state or {}
    rows: dict[str, Any] = {}
    max_steps = args.get("max_steps")
    by_steps = is_number(max_steps) and max_steps > 0
    if by_steps:
        rows["max_steps"] = max_steps
        if is_number(state.get("epoch")):
            rows["num_train_epochs"] = round(state["epoch"], 2)
    elif args.get("num_train_epochs") is not None:
        rows["num_train_epochs"] = args["num_train_epochs"]
    warmup = args.get("warmup_steps")
    if not is_number(warmup) or args.get("lr_scheduler_type") in NO_WARMUP_SCHEDULERS:
        return rows
    total = max_steps if by_steps else state.get("max_steps")
    if warmup >= 1 or warmup <= 0:
        rows["warmup_steps"] = max(int(warmup), 0)
    elif is_number(total) and total > 0:
        rows["warmup_steps"] = math.ceil(total * warmup)
    else:
        rows["warmup_steps"] = f"{warmup * 100:g}% of the steps"
    return rows


@cache
def argument_defaults() -> dict[str, Any]:
    """Each training argument's default as ``biohicl_training_args.json`` records it (this release's
    :class:`~biohicl.training.args.BioHiCLTrainingArguments`, as JSON)."""
    import json

    from biohicl.training.args import BioHiCLTrainingArguments  # transformers: only for a run with such arguments

    return json.loads(BioHiCLTrainingArguments(output_dir="defaults").to_json_string())


def other_settings(args: dict[str, Any], skip: frozenset[str]) -> dict[str, Any]:
    """The rows of the training arguments in ``args`` that change the run (outside
    :data:`~biohicl.training.run_settings.RUN_NEUTRAL_ARGS`), not named in :data:`HYPERPARAMETERS` nor stated elsewhere
    on the card (:data:`STATED_ELSEWHERE`) nor in ``skip``, whose value is not its default (:func:`argument_defaults`)
    nor a masked token (``<HUB_TOKEN>``), in the file's order, a local path in a value reduced to its name
    (:func:`~biohicl.hub.run_sources.without_machine_paths`). A field this release does not have (an older file's
    ``evaluation_strategy``, ``save_safetensors``) has no row: nothing here says what it changed; the file has it."""
    skip = skip | RUN_NEUTRAL_ARGS | STATED_ELSEWHERE | set(HYPERPARAMETERS)
    candidates = {key: value for key, value in args.items() if key not in skip}
    if not candidates:
        return {}
    defaults = argument_defaults()
    return {
        key: without_machine_paths(value)
        for key, value in candidates.items()
        if key in defaults and value != defaults[key] and not _masked(key, value)
    }


def _masked(key: str, value: Any) -> bool:
    """Whether ``value`` is a token transformers masked when it wrote the arguments (``<PUSH_TO_HUB_TOKEN>``)."""
    return key.endswith("_token") and isinstance(value, str) and re.fullmatch(r"<[A-Z_]+>", value) is not None


def trained_hyperparameters(
    args: dict[str, Any],
    loss: dict[str, Any] | None,
    adapter: dict[str, Any] | None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card's hyperparameter table: ``args`` (``biohicl_training_args.json``), with the loss rows from the
    recorded loss (:func:`loss_rows`, in place of the arguments' :func:`loss_arguments`), the LoRA rows from the
    saved ``adapter_config.json`` where present (a ``loss=`` or ``peft_config=`` given to ``train_biohicl``
    replaced what the arguments say) and the epochs, steps and warm-up of the schedule that ran
    (:func:`schedule_rows`, with ``state``: the run's ``trainer_state.json``); an adapter of another peft method
    shows its ``peft_type`` and :data:`PEFT_KEYS` instead of LoRA rows. Then every other argument that changes the
    run and is not at its default (:func:`other_settings`)."""
    unused = LORA_KEYS if args.get("full_finetune") else ()  # a full fine-tune built no LoRA: its values meant nothing
    unused = (*unused, *SCHEDULE_KEYS)
    values = {k: args[k] for k in HYPERPARAMETERS if k in args and args[k] is not None and k not in unused}
    values.update(schedule_rows(args, state))
    if loss:
        values = {k: v for k, v in values.items() if k not in loss_arguments()}
        trained = loss_rows(loss, values) or {}
        if "loss" in trained:
            values = {"loss": trained["loss"], **values}
        else:
            values.update(trained)
    if adapter:
        values = adapter_rows(values, adapter)
    cut = HYPERPARAMETERS.index("learning_rate")  # the adapter's rows where the LoRA rows stand
    order = ["loss", *HYPERPARAMETERS[:cut], "peft_type", *PEFT_KEYS, *HYPERPARAMETERS[cut:], "use_dora"]
    after = order.index("title_weight") + 1  # the loss's rows the table does not name, in the record's order
    order[after:after] = [k for k in values if k not in order]
    rows = {k: values[k] for k in order if k in values}
    skip = frozenset({*SCHEDULE_KEYS, *(loss_arguments() if loss else ())})
    return {**rows, **{k: v for k, v in other_settings(args, skip).items() if k not in rows}}

"""The card's hyperparameter table: what trained, from the training arguments, the recorded loss, the saved
adapter and the trainer state (not the arguments' defaults)."""

from __future__ import annotations

import math
from typing import Any

from biohicl.field_types import is_number
from biohicl.hub.card_adapter import PEFT_KEYS, adapter_rows

#: training arguments shown in the card's hyperparameter table (when present in biohicl_training_args.json; the
#: :data:`RUN_SCALE` rows from training_summary.json)
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
    "per_device_train_batch_size",
    "world_size",
    "documents_per_optimizer_step",
    "num_train_epochs",
    "max_steps",
    "warmup_steps",
    "max_length",
    "batch_sampler",
    "seed",
    # beyond the paper: shown so that a card never hides a term or schedule the paper does not have
    "contrastive_form",
    "negative",
    "distill_weight",
    "title_weight",
    "check_tag_weight",
    "study_design_weight",
    "lr_scheduler_type",
)


#: the hyperparameters that describe the BioHiCL loss: a run trained with another loss shows its class instead
LOSS_KEYS = frozenset(
    {"lambda_con", "temperature", "pair_filter", "weight_positives", "use_mse", "use_contrastive", "contrastive_form"}
    | {"negative", "distill_weight", "title_weight"}
)
#: the rows the run's schedule decides (:func:`schedule_rows`), not the arguments as given
SCHEDULE_KEYS = ("num_train_epochs", "max_steps", "warmup_steps")
#: transformers' schedulers that take no warm-up (``get_scheduler`` builds them without ``num_warmup_steps``)
NO_WARMUP_SCHEDULERS = frozenset({"constant", "reduce_lr_on_plateau", "greedy"})
#: training_summary.json's keys on the processes that trained (none in a run folder written before they were recorded)
RUN_SCALE = ("world_size", "documents_per_optimizer_step")


def loss_rows(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The card's loss hyperparameters from ``training_summary.json``'s ``loss``: the BioHiCL loss's settings, or
    ``{"loss": "Class(key=value, ...)"}`` for another loss; None when the run recorded no loss."""
    if not record:
        return None
    name = record.get("class")
    if name not in (None, "BioHiCLLoss") or "lambda_con" not in record:
        settings = ", ".join(f"{k}={v}" for k, v in record.items() if k != "class" and not isinstance(v, dict))
        return {"loss": f"{name or 'unknown'}({settings})"}
    regression, contrastive = record.get("regression") or {}, record.get("contrastive") or {}
    rows = {
        "lambda_con": record.get("lambda_con"),
        "use_mse": record.get("use_mse"),
        "use_contrastive": record.get("use_contrastive"),
        "pair_filter": regression.get("pair_filter"),
        "temperature": contrastive.get("temperature"),
        "weight_positives": contrastive.get("weighted"),
        "contrastive_form": contrastive.get("form"),
        "negative": contrastive.get("negative"),
        "distill_weight": record.get("distill_weight"),
        "title_weight": record.get("title_weight", 0.0),  # recorded only when on
    }
    return {k: v for k, v in rows.items() if v is not None}


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


def trained_hyperparameters(
    args: dict[str, Any],
    loss: dict[str, Any] | None,
    adapter: dict[str, Any] | None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card's hyperparameter table: ``args`` (``biohicl_training_args.json``), with the loss rows from the
    recorded loss (:func:`loss_rows`), the LoRA rows from the saved ``adapter_config.json`` where present (a
    ``loss=`` or ``peft_config=`` given to ``train_biohicl`` replaced what the arguments say) and the epochs, steps
    and warm-up of the schedule that ran (:func:`schedule_rows`, with ``state``: the run's ``trainer_state.json``);
    an adapter of another peft method shows its ``peft_type`` and :data:`PEFT_KEYS` instead of LoRA rows."""
    unused = LORA_KEYS if args.get("full_finetune") else ()  # a full fine-tune built no LoRA: its values meant nothing
    unused = (*unused, *SCHEDULE_KEYS)
    values = {k: args[k] for k in HYPERPARAMETERS if k in args and args[k] is not None and k not in unused}
    values.update(schedule_rows(args, state))
    trained = loss_rows(loss)
    if trained is not None:
        values = {k: v for k, v in values.items() if k not in LOSS_KEYS}
        if "loss" in trained:
            values = {"loss": trained["loss"], **values}
        else:
            values.update(trained)
    if adapter:
        values = adapter_rows(values, adapter)
    cut = HYPERPARAMETERS.index("learning_rate")  # the adapter's rows where the LoRA rows stand
    order = ("loss", *HYPERPARAMETERS[:cut], "peft_type", *PEFT_KEYS, *HYPERPARAMETERS[cut:], "use_dora")
    return {k: values[k] for k in order if k in values}

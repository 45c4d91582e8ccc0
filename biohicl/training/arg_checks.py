"""Checks of ``biohicl train`` values, each refusal a one-line :class:`ConfigError` naming its field.

:func:`check_run_values`: what peft, torch and transformers would refuse only after the data and the model loaded,
with a traceback, or never: no push to the Hub (:func:`check_hub_values`), every float field finite (a NaN passed
``x < 0`` and trained an all-NaN adapter), what the loss built from the arguments refuses (:func:`check_loss`),
LoRA's rank, alpha and dropout (not under ``full_finetune``, which builds no LoRA), the seeds, the reporting
integrations (known, and installed), the scheduler's keyword arguments, ``max_steps``, ``max_partners`` and the
inherited optimizer, schedule and data-loader numbers (:func:`check_inherited_values`). Once transformers normalised
the arguments (``BioHiCLTrainingArguments.__post_init__``): the evaluation and model selection
(:func:`check_selection`), the model (:func:`check_model`), the data and batches (:func:`check_data`) and the run
folder apart from its inputs (:func:`check_output_folder`).
:func:`check_seed` is the one seed rule of training, a study config and ``biohicl build-dataset``."""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shlex
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from biohicl.data.files import resolved_path
from biohicl.errors import ConfigError
from biohicl.field_types import check_count
from biohicl.models.lora_values import check_alpha, check_rank
from biohicl.training.run_settings import option_value
from biohicl.training.selection import check_guard_mode

#: Seeds ``transformers.set_seed`` takes (numpy's range).
SEED_LIMIT = 2**32
#: ``report_to`` values that stand alone: no integration, or every one installed.
REPORT_TO_WORDS = ("none", "all")
#: Integrations whose transformers callback refuses, at ``Trainer`` init, when a package is missing: the
#: ``transformers.integrations`` function its callback asks, and what to install. An integration not here is checked
#: by transformers' naming pattern, ``is_<name without underscores>_available``, when it has that function
#: (:func:`check_installed`). Checked otherwise: ``comet_ml`` by its callback's own test, the package installed and
#: recent enough (``is_comet_available`` also wants an API key, which the callback does not), and ``kubeflow`` by the
#: environment variable its callback asks (:data:`INTEGRATION_ENVIRONMENT`).
INTEGRATION_PACKAGES = {
    "azure_ml": ("is_azureml_available", "azureml-sdk"),
    "clearml": ("is_clearml_available", "clearml"),
    "codecarbon": ("is_codecarbon_available", "codecarbon"),
    "dagshub": ("is_dagshub_available", "dagshub mlflow"),
    "dvclive": ("is_dvclive_available", "dvclive"),
    "flyte": ("is_flytekit_available", "flytekit"),
    "mlflow": ("is_mlflow_available", "mlflow"),
    "neptune": ("is_neptune_available", "neptune"),
    "swanlab": ("is_swanlab_available", "swanlab"),
    "tensorboard": ("is_tensorboard_available", "tensorboard"),
    "trackio": ("is_trackio_available", "trackio"),
    "wandb": ("is_wandb_available", "wandb"),
}
#: Inherited counts that must be whole numbers of at least 1 (0 divided by zero, or encoded empty batches, after
#: the model loaded); the optional ones only when given.
COUNT_FIELDS = ("gradient_accumulation_steps", "per_device_eval_batch_size")
OPTIONAL_COUNT_FIELDS = ("dataloader_prefetch_factor",)
#: Inherited intervals (steps, or a fraction of all steps if < 1): a negative one logged or saved once, at a step
#: no one chose; 0 is transformers' own refusal under the ``steps`` strategy.
INTERVAL_FIELDS = ("logging_steps", "save_steps", "eval_steps")
#: How ``batch_sampler`` composes batches: around mined SimL > β pairs, or plain shuffling.
BATCH_SAMPLERS = ("mesh_pairs", "random")
#: The options only transformers' push to the Hub reads, each with its value that asks for nothing (``hub_token``
#: aside: accepted, read by nothing, never written, as ``HF_TOKEN`` is the token ``biohicl publish`` reads).
PUSH_ONLY_FIELDS = {
    "hub_model_id": None,
    "hub_strategy": "every_save",
    "hub_always_push": False,
    "hub_revision": None,
}  # not hub_private_repo: the trackio integration makes its Space private by it
#: Integrations whose callback asks for an environment variable rather than a package.
INTEGRATION_ENVIRONMENT = {"kubeflow": "KUBEFLOW_TRAINER_SERVER_URL (set inside a Kubeflow TrainJob)"}


def check_run_values(args: Any) -> None:
    """Refuse a bad value of ``args`` (a ``BioHiCLTrainingArguments`` before ``TrainingArguments.__post_init__``
    normalises it). ``report_to`` None becomes ``"none"``; a ``lr_scheduler_kwargs`` JSON object string is left for
    transformers to parse, stripped. The LoRA values are not checked under ``full_finetune``: no LoRA is built."""
    check_hub_values(args)
    check_finite(args)
    check_loss(args)
    if args.selection_guard_tolerance < 0:
        raise ConfigError(f"selection_guard_tolerance: {args.selection_guard_tolerance} is negative")
    if not args.full_finetune:
        check_lora_values(args)
    for name in ("seed", "data_seed"):
        value = getattr(args, name, None)
        if value is not None:
            check_seed(value, name, SEED_LIMIT)
    if args.max_partners is not None:
        check_count("max_partners", args.max_partners)
        if args.batch_sampler != "mesh_pairs":
            raise ConfigError("max_partners: only the mesh_pairs batch sampler has partners (not random batches)")
    if args.max_steps == 0 or args.max_steps < -1:
        raise ConfigError(f"max_steps: give a positive number, or -1 to train num_train_epochs; got {args.max_steps}")
    check_inherited_values(args)
    if args.report_to is None:
        args.report_to = "none"
    check_report_to(args.report_to)
    args.lr_scheduler_kwargs = scheduler_kwargs(args.lr_scheduler_kwargs)


def check_hub_values(args: Any) -> None:
    """Refuse ``push_to_hub``, and an option only a push reads (:data:`PUSH_ONLY_FIELDS`) set alone, which would ask
    for a push that never comes: transformers' push pickles the arguments (``hub_token`` in clear text) into
    ``training_args.bin`` and uploads it with the checkpoints' pickles, no card, no token scan, and not the kept step;
    ``biohicl publish`` is the one way a run goes to the Hub."""
    if getattr(args, "push_to_hub", False):
        raise ConfigError(push_refusal(args))
    for name, unset in PUSH_ONLY_FIELDS.items():
        if getattr(args, name, unset) != unset:
            raise ConfigError(push_refusal(args, name))


def push_refusal(args: Any, field: str = "push_to_hub") -> str:
    """The one line refusing a push asked for by ``field``, with the ``biohicl publish`` command that publishes the
    run (its folder, and ``hub_model_id`` as the repo id when it is an owner/name one)."""
    run_dir = shlex.quote(str(args.output_dir)) if getattr(args, "output_dir", None) else "RUN_DIR"
    repo_id = getattr(args, "hub_model_id", None) or ""
    repo_id = repo_id if re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id) else "OWNER/NAME"
    return (
        f"{field}: biohicl train does not push to the Hub (transformers' push uploads the checkpoints' pickles and "
        f"the arguments with the token, without a card); train, then run `biohicl publish {run_dir} --repo_id "
        f"{repo_id}`, which publishes the kept step with its card"
    )


def check_finite(args: Any) -> None:
    """Every float value of ``args`` (the arguments, or a study's namespace of them) is a finite number: NaN passes
    ``x < 0`` and ``x <= 0`` (and the losses then train an all-NaN adapter), inf weighs a term infinitely. The first
    one (in field order) refused."""
    for name, value in vars(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name}: must be a finite number, got {value}")


def check_loss(args: Any) -> None:
    """What the loss built from ``args`` refuses, in its words (:func:`~biohicl.training.objective.check_objective`:
    the loss is the one place its values are checked; whether any term is on is the run's to say, which knows its
    extra terms), and the distillation term's frozen base, which only LoRA has."""
    from biohicl.training.objective import check_objective

    check_objective(args)
    if args.distill_weight > 0 and args.full_finetune:
        raise ConfigError(
            "distill_weight: needs LoRA (the frozen base is the model with its adapters disabled); "
            "full_finetune has no frozen copy"
        )


def check_selection_target(args: Any) -> None:
    """``metric_for_best_model`` defaults to ``dev_score`` with ``selection_metrics`` (with or without
    ``load_best_model_at_end``: then it is recorded), and ``load_best_model_at_end`` needs one."""
    if args.metric_for_best_model is None and args.selection_metrics:
        args.metric_for_best_model = "dev_score"
    if args.load_best_model_at_end and args.metric_for_best_model is None:
        raise ConfigError(
            "metric_for_best_model: load_best_model_at_end needs a dev metric to select on, e.g. "
            "pubmedqa-dev_recall@1 or siml-agreement_spearman (or --selection_metrics for their mean)"
        )


def check_selection(args: Any) -> None:
    """The evaluation during training and the model selection on it, once transformers normalised the strategies:
    step 0 (the base weights) evaluated when it is a selection candidate or the guard's reference, every best step
    saved, the guard's metrics and mode, ``eval_max_queries`` a count."""
    if (args.load_best_model_at_end or args.selection_guard) and option_value(args.eval_strategy) != "no":
        args.eval_on_start = True
    if (
        args.load_best_model_at_end
        and option_value(args.save_strategy) == "steps"
        and args.save_steps != args.eval_steps
    ):
        raise ConfigError(
            f"save_steps: must equal eval_steps ({args.eval_steps}) with load_best_model_at_end, got "
            f"{args.save_steps} (a best step that is not saved could not be loaded)"
        )
    if args.selection_guard and not args.selection_metrics:
        raise ConfigError("selection_guard: needs --selection_metrics (what to maximise among the guarded steps)")
    if args.selection_guard and args.selection_metric_key != "eval_dev_score":
        raise ConfigError(
            "selection_guard: selects on dev_score (with --load_best_model_at_end), but metric_for_best_model is "
            f"{args.metric_for_best_model}"
        )
    check_guard_mode(args.selection_guard_mode)
    check_count("eval_max_queries", args.eval_max_queries, "the first N queries", optional=True)  # [:0]: no query


def check_model(args: Any) -> None:
    """The encoder's pooling and maximum length."""
    if args.pooling not in (None, "cls", "mean"):
        raise ConfigError(f"pooling: {args.pooling!r} is not cls or mean")
    if args.max_length < 8:
        raise ConfigError(f"max_length: must be at least 8, got {args.max_length}")


def check_data(args: Any) -> None:
    """The training documents, their SimL weights and the batches, once transformers set the devices up
    (gradient caching's one process, :func:`~biohicl.training.cached_batch.check_mini_batch_size`)."""
    from biohicl.training.cached_batch import check_mini_batch_size  # torch's: a study's checks import none

    check_mini_batch_size(args.mini_batch_size, args.world_size, args.n_gpu)
    if args.batch_sampler not in BATCH_SAMPLERS:
        raise ConfigError(f"batch_sampler: {args.batch_sampler!r} is not one of {', '.join(BATCH_SAMPLERS)}")
    if args.max_train_documents is not None and args.max_train_documents < 2:
        raise ConfigError(
            f"max_train_documents: must be at least 2 (the losses compare documents within a batch), got "
            f"{args.max_train_documents}"
        )
    if args.per_device_train_batch_size < 2:
        raise ConfigError("per_device_train_batch_size: in-batch losses need at least 2 documents per batch")
    for name in ("check_tag_weight", "study_design_weight"):
        value = getattr(args, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name}: must be in [0, 1], got {value}")
    if args.drop_check_tags and args.check_tag_weight != 1.0:
        raise ConfigError("check_tag_weight: give either it or drop_check_tags (= check_tag_weight 0), not both")
    if args.batch_negatives and args.batch_sampler != "mesh_pairs":
        raise ConfigError("batch_negatives: only the mesh_pairs batch sampler composes batches")
    if args.remove_unused_columns:
        raise ConfigError("remove_unused_columns: must stay False (the collator needs the text and labels)")
    check_output_folder(args)


def check_output_folder(args: Any) -> None:
    """Refuse an ``output_dir`` that is the ``base_model`` folder (the run's adapter config, ``biohicl_config.json``
    and tokenizer written over the base, which then names itself as its base) or the ``dataset_path`` folder (run
    files mixed into the dataset); a run folder inside or holding either writes only its own files at its top,
    compared as the folders they resolve to; a documents file as ``dataset_path`` only when it is the ``output_dir``.
    A base that is no folder here (a Hub id) is left alone. Nothing is read or written: paths are looked up."""
    output = resolved_path(args.output_dir)
    for name in ("base_model", "dataset_path"):
        value = getattr(args, name, None)
        if not value or not (folder := resolved_path(value)).exists():
            continue
        if not (output == folder or (output.exists() and os.path.samefile(output, folder))):
            continue
        kind = "folder" if folder.is_dir() else "file"
        raise ConfigError(
            f"output_dir: {args.output_dir} is the {name} {kind} {value}; write the run to a folder of its own"
        )


def check_inherited_values(args: Any) -> None:
    """``TrainingArguments`` numbers that torch or transformers refuse only once the model loaded (a ZeroDivisionError,
    the optimizer's or the DataLoader's ValueError), or take and train nothing or garbage with (``num_train_epochs
    0`` trained 0 steps and "saved the trained model"): each a one-line :class:`ConfigError` naming it."""
    for name in COUNT_FIELDS + OPTIONAL_COUNT_FIELDS:
        check_count(name, getattr(args, name), optional=name in OPTIONAL_COUNT_FIELDS)
    for name in ("learning_rate", "adam_epsilon"):
        if getattr(args, name) < 0:
            raise ConfigError(f"{name}: must be non-negative, got {getattr(args, name)}")
    for name in ("adam_beta1", "adam_beta2"):
        if not 0.0 <= getattr(args, name) < 1.0:
            raise ConfigError(f"{name}: must be in [0, 1), got {getattr(args, name)}")
    if args.max_steps == -1 and args.num_train_epochs <= 0:
        raise ConfigError(
            f"num_train_epochs: must be positive when max_steps is -1 (training by epochs), got {args.num_train_epochs}"
        )
    if args.warmup_steps < 0:  # transformers: "Got warmup_steps = -0.5, Expected value warmup_steps >= 0"
        raise ConfigError(
            f"warmup_steps: must be non-negative (steps, or a fraction of all steps if < 1), got {args.warmup_steps}"
        )
    for name in INTERVAL_FIELDS:
        value = getattr(args, name)
        if value is not None and value < 0:
            raise ConfigError(f"{name}: must be positive, got {value}")
    if args.dataloader_num_workers < 0:
        raise ConfigError(
            f"dataloader_num_workers: must be non-negative (0: load in the main process), got "
            f"{args.dataloader_num_workers}"
        )
    if args.neftune_noise_alpha is not None:  # transformers calls get_input_embeddings(), which BioHiCL has not
        raise ConfigError(
            "neftune_noise_alpha: NEFTune adds noise to a generative language model's input embeddings, which "
            "biohicl train does not support; leave it unset"
        )
    if getattr(args, "enable_jit_checkpoint", False):  # transformers' SIGTERM handler ends training as if finished
        raise ConfigError(
            "enable_jit_checkpoint: a SIGTERM then ends the run as if it finished (its model saved, exit 0) and its "
            "checkpoint does not resume bit-exact; leave it unset and save checkpoints with --save_strategy steps "
            "--save_steps N, then --resume_from_checkpoint last"
        )


def check_lora_values(args: Any) -> None:
    """LoRA's rank and alpha in ``args`` by the models' one rule (:mod:`biohicl.models.lora_values`), and its dropout
    (in [0, 1))."""
    check_rank("lora_r", args.lora_r)
    check_alpha("lora_alpha", args.lora_alpha)
    if not 0.0 <= args.lora_dropout < 1.0:
        raise ConfigError(f"lora_dropout: must be in [0, 1), got {args.lora_dropout}")


def check_seed(value: int, name: str, upper: int | None = None) -> None:
    """Refuse a seed below 0, or at or above ``upper`` (None: no bound), naming ``name``. Training's seeds go to
    ``transformers.set_seed``, whose numpy takes ``[0, 2**32)`` (:data:`SEED_LIMIT`); the dataset build's go to
    ``numpy.random.default_rng`` and a hash, which take any whole number from 0."""
    if upper is None:
        if value < 0:
            raise ConfigError(f"{name}: must be >= 0, got {value}")
    elif not 0 <= value < upper:
        bound = f"2**{upper.bit_length() - 1}" if upper & (upper - 1) == 0 else str(upper)  # 2**32, not 4294967296
        raise ConfigError(f"{name}: must be in [0, {bound}), got {value}")


def check_report_to(value: str | list[str]) -> None:
    """Each ``report_to`` entry is an integration transformers reports to (``none`` or ``all`` alone) whose package
    is installed (:data:`INTEGRATION_PACKAGES`: its callback would refuse only at ``Trainer`` init, after the data and
    the model loaded). ``all`` is every integration installed, so it needs none."""
    from transformers.integrations import integration_utils
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    names = [value] if isinstance(value, str) else list(value)
    if len(names) == 1 and names[0] in REPORT_TO_WORDS:
        return
    known = sorted(INTEGRATION_TO_CALLBACK)
    for name in names:
        if name in REPORT_TO_WORDS:
            raise ConfigError(f"report_to: {name!r} stands alone, not with other integrations ({', '.join(names)})")
        if name not in INTEGRATION_TO_CALLBACK:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(
                f"report_to: {name!r} is not an integration transformers reports to{hint}; one of "
                f"{', '.join(known)}, or none, all"
            )
        check_installed(name, integration_utils)


def check_installed(name: str, integrations: ModuleType) -> None:
    """Refuse integration ``name`` when the ``integrations`` module's (``transformers.integrations``) availability
    function its callback asks says no (:data:`INTEGRATION_PACKAGES`, else ``is_<name without underscores>_available``
    and the package named as the integration); a function transformers does not have passes."""
    if name == "comet_ml":  # as CometCallback.__init__ refuses: not installed, or too old
        installed = getattr(integrations, "_is_comet_installed", True) and getattr(
            integrations, "_is_comet_recent_enough", True
        )
        if not installed:
            raise ConfigError("report_to: comet_ml is not installed; pip install comet-ml, or leave comet_ml out")
        return
    if name in INTEGRATION_ENVIRONMENT:
        available = getattr(integrations, f"is_{name}_available", None)
        if available is not None and not available():
            raise ConfigError(f"report_to: {name} needs {INTEGRATION_ENVIRONMENT[name]}, or leave {name} out")
        return
    pattern = (f"is_{name.replace('_', '')}_available", name.replace("_", "-"))
    function, package = INTEGRATION_PACKAGES.get(name, pattern)
    available = getattr(integrations, function, None)
    if available is not None and not available():
        alternative = " (or tensorboardX)" if name == "tensorboard" else ""
        raise ConfigError(
            f"report_to: {name} is not installed; pip install {package}{alternative}, or leave {name} out of report_to"
        )


def scheduler_kwargs(value: Any) -> Any:
    """``lr_scheduler_kwargs`` checked: None, a mapping, or a string holding a JSON object (returned stripped, which
    transformers parses); anything else is refused."""
    if value is None or isinstance(value, Mapping):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"lr_scheduler_kwargs: expected a mapping of keyword arguments, got {type(value).__name__}")
    try:
        parsed = json.loads(value)
    except ValueError as err:
        raise ConfigError(
            f"lr_scheduler_kwargs: {value!r} is not JSON ({err}); give a JSON object, e.g. '{{\"num_cycles\": 2}}'"
        ) from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"lr_scheduler_kwargs: expected a JSON object of keyword arguments, got {value!r}")
    return value.strip()

"""The study's configuration: datasets, base models, variants, seeds, tasks, targets; read from YAML and checked.

:class:`ReproduceConfig` is what ``biohicl reproduce --config`` reads; :func:`training_arguments` turns it into one
run's :class:`~biohicl.training.args.BioHiCLTrainingArguments` (defaults < study < model < variant).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from biohicl.errors import ConfigError
from biohicl.field_types import check_count, check_field_types, is_number
from biohicl.study.run_checks import check_run_names, check_run_settings, check_seeds, check_task_splits
from biohicl.study.specs import DatasetSpec, ModelSpec
from biohicl.training.arg_checks import check_seed
from biohicl.training.run_settings import ABSENT, SettingsSpelling, dev_selection_notice, predated_default

if TYPE_CHECKING:
    from biohicl.training.args import BioHiCLTrainingArguments

T = TypeVar("T")

#: The paper's ablations as BioHiCLTrainingArguments overrides (``full`` = the method as published).
DEFAULT_VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "no_contrastive": {"use_contrastive": False},
    "no_mse": {"use_mse": False},
    "no_ancestors": {"use_ancestors": False},
    "no_depth_weight": {"use_depth_weight": False},
    # every weight trains: a LoRA-sized learning rate would wreck the backbone, so the usual full fine-tune rate
    "full_finetune": {"full_finetune": True, "learning_rate": 2e-5},
}

#: Training settings every run gets unless the config overrides them.
DEFAULT_TRAINING: dict[str, Any] = {
    "per_device_train_batch_size": 32,
    "num_train_epochs": 1,
    "learning_rate": 2e-4,
    "logging_steps": 5,
    "save_strategy": "steps",
    "save_steps": 20,
    "save_total_limit": 1,
    "report_to": "none",
    "disable_tqdm": True,
}

#: The study's evaluation cache (``<output_dir>/eval_cache``) unless ``training`` names one: runs share step 0.
EVAL_CACHE_DIR = "eval_cache"

#: Minimum improvements over the base the issue asks for (fractions: +3.0 points = 0.03).
DEFAULT_TARGETS: dict[str, float] = {"biosses/spearman": 0.03, "pubmedqa/recall@1": 0.03, "scifact/ndcg@10": 0.01}

#: Arguments the study sets itself per run (a config may not override them).
RESERVED_TRAINING_KEYS = (
    "output_dir",
    "seed",
    "dataset_path",
    "base_model",
    "base_model_hub_id",
    "resume_from_checkpoint",
)


@dataclass
class ReproduceConfig:
    """The whole study: data, base models, variants, seeds, tasks and where results go."""

    output_dir: str = field(metadata={"help": "Study folder (runs, evaluations, results)."})
    models: list[ModelSpec] = field(metadata={"help": "Base models (see ModelSpec)."})
    dataset: DatasetSpec = field(default_factory=DatasetSpec, metadata={"help": "The MeSH-pair dataset."})
    variants: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_VARIANTS.items()},
        metadata={"help": "Variant name → BioHiCLTrainingArguments overrides; `full` is the reference."},
    )
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "Training seeds."})
    seeds_per_variant: dict[str, list[int]] = field(
        default_factory=dict, metadata={"help": "Seeds for particular variants (e.g. ablations: [0])."}
    )
    tasks: list[str] = field(
        default_factory=lambda: ["biosses", "pubmedqa", "scifact:train"],
        metadata={"help": "Evaluation tasks (biohicl evaluate specs)."},
    )
    tasks_per_variant: dict[str, list[str]] = field(
        default_factory=dict,
        metadata={"help": "Tasks for particular variants (a subset of the model's tasks; e.g. skip SciFact)."},
    )
    training: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "BioHiCLTrainingArguments overrides for every run."}
    )
    eval_batch_size: int = field(default=32, metadata={"help": "Encoding batch size at evaluation."})
    eval_dtype: str = field(
        default="float32", metadata={"help": "`float32` or `bfloat16` (autocast) for evaluation encoding."}
    )
    eval_device: str = field(
        default="auto",
        metadata={"help": "Where evaluation encodes: `auto` (a GPU if there is one, else the CPU), `cpu`, `cuda:N`."},
    )
    limit_queries: int | None = field(default=None, metadata={"help": "Cap on retrieval queries (quick runs)."})
    targets: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_TARGETS),
        metadata={"help": "`task/metric` → minimum improvement of each target variant over the base (fractions)."},
    )
    target_variants: list[str] | None = field(
        default=None,
        metadata={"help": "The variants judged against `targets` and `target_mean` (default: `full`, if run)."},
    )
    target_mean: float | None = field(
        default=None,
        metadata={
            "help": "Minimum improvement of the mean of the targets' metrics over the base (fractions; 0.01 = one "
            "point), judged per target variant, with the share of paired-bootstrap rounds at or above it."
        },
    )
    pick_variant_on_dev: bool = field(
        default=False,
        metadata={
            "help": "Name the one target variant the dev data picks (biohicl.study.dev_pick): a variant with a seed "
            "not trained, without dev selection, or that kept its base is out; of the rest, the highest mean dev "
            "selection score at the selected steps wins (a tie: the one listed first). Its target rows count."
        },
    )
    keep_checkpoints: bool = field(
        default=False, metadata={"help": "Keep checkpoint-N folders after a run finished (default: delete)."}
    )
    title: str = field(default="BioHiCL reproduction", metadata={"help": "Heading of results.md."})
    registered_seeds: dict[str, dict[str, list[int]]] | None = field(  # set by select(); study_config.json keeps it
        default=None, repr=False, compare=False,
        metadata={"help": "Model → variant → its seeds as the config selected from gives them (study.verdict)."},
    )  # fmt: skip
    registered_target_variants: list[str] | None = field(  # set by select(only=); study_config.json keeps it
        default=None, repr=False, compare=False,
        metadata={"help": "The target variants of the config selected from, those --only left out too (verdict)."},
    )  # fmt: skip

    def __post_init__(self) -> None:
        """Build the nested specs and check every field. The training settings (``training``, each model's
        ``training``, each variant) are converted and checked as ``biohicl train --config`` reads a file, however
        the config is made: ``learning_rate: 1e-4`` (a string to YAML) is a float, ``lora_r: abc`` or an unknown
        key a one-line error naming the scope and the field, when the config is read, not when a run trains; so are
        the values ``biohicl train`` refuses before loading (``lora_alpha: 0``, ``max_steps: 0``, ...), on what each
        model's variant trains with (:func:`~biohicl.study.run_checks.check_run_settings`)."""
        if isinstance(self.dataset, Mapping):
            self.dataset = _build(DatasetSpec, self.dataset, "dataset")
        if not isinstance(self.models, list):
            raise ConfigError(f"models: expected a list of models, got {self.models!r}")
        self.models = [m if isinstance(m, ModelSpec) else _build(ModelSpec, m, "models[]") for m in self.models]
        if self.target_mean is not None and not is_number(self.target_mean):
            raise ConfigError(f"target_mean: expected a fraction (0.01 = one point), got {self.target_mean!r}")
        check_field_types(self)
        check_count("limit_queries", self.limit_queries, "the first N queries", optional=True)
        if not self.models:
            raise ConfigError("models: at least one base model is required")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ConfigError(f"models: names must be unique, got {names}")
        check_run_names(names, "models")
        if not self.variants:
            raise ConfigError("variants: at least one variant is required")
        check_run_names(list(self.variants), "variants")
        task_scopes = {f"models[{m.name}].tasks": m.tasks for m in self.models}
        check_task_splits(
            {
                "tasks": self.tasks,
                **task_scopes,
                **{f"tasks_per_variant.{k}": v for k, v in self.tasks_per_variant.items()},
            }
        )
        for name, overrides in self.variants.items():
            if not isinstance(overrides, Mapping):
                raise ConfigError(f"variants.{name}: expected a mapping of training overrides")
        for model in self.models:
            unknown = sorted(set(model.variants or ()) - set(self.variants))
            if unknown:
                raise ConfigError(f"models[{model.name}].variants: unknown variant(s) {', '.join(unknown)}")
        for name in ("seeds_per_variant", "tasks_per_variant", "target_variants"):
            unknown = sorted(set(getattr(self, name) or ()) - set(self.variants))
            if unknown:
                raise ConfigError(f"{name}: unknown variant(s) {', '.join(unknown)}")
        if self.pick_variant_on_dev:
            for variant in self.target_variants if self.target_variants is not None else ["full"]:
                own = sorted({"selection_metrics", "selection_guard"} & set(self.variants.get(variant, {})))
                if own:
                    raise ConfigError(
                        f"variants.{variant}: sets its own {', '.join(own)}; pick_variant_on_dev compares one dev score"
                    )
        if self.eval_dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"eval_dtype: {self.eval_dtype!r} is not float32 or bfloat16")
        from biohicl.study.run_checks import check_eval_device

        check_eval_device(self.eval_device)
        if not self.seeds:
            raise ConfigError("seeds: at least one seed is required")
        check_seeds(self.seeds, "seeds")
        for model in self.models:
            check_seeds(model.seeds or [], f"models[{model.name}].seeds")
        for variant, seeds in self.seeds_per_variant.items():
            check_seeds(seeds, f"seeds_per_variant.{variant}")
        check_seed(self.dataset.seed, "dataset.seed")  # the mining's: build-dataset's --seed rule
        from biohicl.config_values import convert_config_values
        from biohicl.training.args import BioHiCLTrainingArguments

        for scope, values in (
            [("training", self.training)]
            + [(f"models[{m.name}].training", m.training) for m in self.models]
            + [(f"variants.{k}", v) for k, v in self.variants.items()]
        ):
            reserved = sorted(set(values) & set(RESERVED_TRAINING_KEYS))
            if reserved:
                raise ConfigError(f"{scope}: {', '.join(reserved)} are set by the study itself")
            values.update(convert_config_values(BioHiCLTrainingArguments, values, scope))
        for model in self.models:  # what each run trains with, as biohicl train checks it, named by its scope
            for variant in self.model_variants(model):
                scopes = {
                    f"variants.{variant}": self.variants[variant],
                    f"models[{model.name}].training": model.training,
                }
                check_run_settings(run_settings(self, model, variant), {**scopes, "training": self.training})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> ReproduceConfig:
        """A checked config from a mapping (``source`` names it in errors); see :meth:`__post_init__` for the
        training settings' conversion."""
        try:
            config = _build(cls, values, source)
        except ConfigError as err:
            message = str(err).removeprefix(f"{source}: ")  # _build names the top level itself
            if message.startswith("unknown field(s)"):  # every unknown field a training argument: a train config
                from biohicl.training.args import BioHiCLTrainingArguments as TrainArgs

                if set(values) - {f.name for f in fields(cls)} <= {f.name for f in fields(TrainArgs)}:
                    message += " (this looks like a `biohicl train --config` file)"
            raise ConfigError(f"{source}: {message}") from None
        return config

    @classmethod
    def from_yaml(cls, path: str | Path) -> ReproduceConfig:
        """Read a YAML (or JSON: ``.json``, e.g. the ``study_config.json`` a study writes) study config; relative
        ``output_dir``/dataset paths stay relative to the cwd."""
        from biohicl.config_values import read_config

        return cls.from_dict(read_config(path, expected="a mapping at the top level"), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data, every ``*_token`` value masked (``<HUB_TOKEN>``, as transformers'
        ``TrainingArguments.to_dict`` does): what ``study_config.json`` and ``results.json`` hold."""

        def masked(settings: dict[str, Any]) -> dict[str, Any]:  # training settings only: never a variant's name
            return {k: f"<{k.upper()}>" if k.endswith("_token") else v for k, v in settings.items()}

        # a selection's study_config.json keeps the seeds and target variants of the config it came from; none else
        registered = ("registered_seeds", "registered_target_variants")
        data = {k: v for k, v in asdict(self).items() if k not in registered or v is not None}
        data["training"] = masked(data["training"])
        for model in data["models"]:
            model["training"] = masked(model["training"])
        data["variants"] = {name: masked(settings) for name, settings in data["variants"].items()}
        return data

    # -------------------------------------------------------------- derived
    def model_variants(self, model: ModelSpec) -> list[str]:
        """The variants run for ``model``, in the config's order."""
        return [v for v in self.variants if model.variants is None or v in model.variants]

    def run_seeds(self, model: ModelSpec, variant: str) -> list[int]:
        """The seeds of ``model``'s ``variant`` (per-variant seeds win over the model's and the study's)."""
        if variant in self.seeds_per_variant:
            return list(self.seeds_per_variant[variant])
        return list(model.seeds if model.seeds is not None else self.seeds)

    def judged_variants(self, model: ModelSpec) -> list[str]:
        """The variants of ``model`` judged against the targets: ``target_variants``, else ``full`` if it runs."""
        judged = self.target_variants if self.target_variants is not None else ["full"]
        return [v for v in self.model_variants(model) if v in judged]

    def target_tasks(self) -> list[str]:
        """The tasks the targets name (``biosses/spearman`` → ``biosses``): the study keeps their per-item values,
        for the paired intervals of its report."""
        from biohicl.evaluation.results import split_summary_key

        return list(dict.fromkeys(split_summary_key(key)[0] for key in self.targets))

    def model_tasks(self, model: ModelSpec, variant: str | None = None) -> list[str]:
        """The tasks a run is evaluated on (the base: all of the model's tasks)."""
        tasks = list(model.tasks if model.tasks is not None else self.tasks)
        if variant in self.tasks_per_variant:
            return [t for t in tasks if t in self.tasks_per_variant[variant]]
        return tasks

    def select(
        self, only: Sequence[str] | None = None, seeds: Sequence[int] | None = None, models: Sequence[str] | None = None
    ) -> ReproduceConfig:
        """A copy restricted to some variants / models, or with other seeds (the CLI's --only/--seeds/--models):
        :func:`biohicl.study.selection.select`."""
        from biohicl.study.selection import select

        return select(self, only, seeds, models)


def _build(cls: type[T], values: Mapping[str, Any], scope: str) -> T:
    """``cls(**values)``, with unknown fields and bad values as a :class:`ConfigError` naming ``scope``."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{scope}: expected a mapping, got {type(values).__name__}")
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{scope}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    required = [f.name for f in fields(cls) if f.init and f.default is MISSING and f.default_factory is MISSING]
    if missing := [name for name in required if name not in values]:  # an empty file too
        raise ConfigError(f"{scope}: missing field(s) {', '.join(missing)}")
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"{scope}: {err}") from None


def run_settings(config: ReproduceConfig, model: ModelSpec, variant: str) -> dict[str, Any]:
    """The training settings the study gives every seed of ``model``'s ``variant``: defaults < study ``training`` <
    model ``training`` < variant (:func:`training_arguments` adds the run's folder, seed, data and base model)."""
    return {
        **DEFAULT_TRAINING,
        "pooling": model.pooling,
        "max_length": model.max_length,
        "query_prompt": model.query_prompt,
        "document_prompt": model.document_prompt,
        **config.training,
        **model.training,
        **config.variants[variant],
    }


#: How a study run's warning names its settings: this config's keys (YAML), not ``biohicl train``'s options.
STUDY_SETTINGS = SettingsSpelling(
    lambda name, value: f"{name}: {value if isinstance(value, str) else json.dumps(value)}",
    flag="", scope=" in the study config", separator=", ", add="set", place=" in the study config's training",
    guide='docs/training.md, "Model selection on dev data"; configs/study_minilm_cpu.yaml is a study that does',
    alternative="",
)  # fmt: skip


def study_selection_notice(args: BioHiCLTrainingArguments) -> str | None:
    """``dev_selection_notice`` of a study run (``configs/reproduce_*.yaml``'s keep their last step), in its keys."""
    return dev_selection_notice(args, STUDY_SETTINGS)


#: Settings that change how a run logs, not what it trains: a finished run is not compared on them.
UNTRAINED_SETTINGS = frozenset({"report_to", "disable_tqdm", "logging_steps", "eval_cache_dir"})


def changed_settings(
    config: ReproduceConfig, model: ModelSpec, variant: str, saved: Mapping[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """``{name: (trained with, the config now)}`` for each setting the study gives the run that differs from
    ``saved`` (the run's ``biohicl_training_args.json``); a setting the saved run predates is compared with the
    default it trained with (:func:`~biohicl.training.run_settings.predated_default`), if any."""
    from biohicl.training.args import BioHiCLTrainingArguments

    changed = {}
    for name, value in run_settings(config, model, variant).items():
        recorded = saved[name] if name in saved else predated_default(BioHiCLTrainingArguments, name)
        if name in UNTRAINED_SETTINGS or recorded is ABSENT:
            continue
        if json.loads(json.dumps(value)) != recorded:  # as the run saved it (tuples as lists, 1.0e-4 as 0.0001)
            changed[name] = (recorded, value)
    return changed


def training_arguments(
    config: ReproduceConfig, model: ModelSpec, variant: str, seed: int, dataset_path: Path, run_dir: Path
) -> BioHiCLTrainingArguments:
    """The BioHiCLTrainingArguments of one run: defaults < study ``training`` < model ``training`` < variant."""
    from biohicl.training.args import BioHiCLTrainingArguments

    values = run_settings(config, model, variant)
    # every run of the study shares one evaluation cache: their step 0 is the same base model
    values.setdefault("eval_cache_dir", str(Path(config.output_dir) / EVAL_CACHE_DIR))
    values.update(
        output_dir=str(run_dir),
        seed=seed,
        dataset_path=str(dataset_path),
        base_model=model.model,
        base_model_hub_id=model.hub_id,
        resume_from_checkpoint="last",
    )
    known = {f.name for f in fields(BioHiCLTrainingArguments) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{model.name}/{variant}: unknown training argument(s) {', '.join(unknown)}")
    return BioHiCLTrainingArguments(**values)

"""The paper's study on any MeSH-annotated corpus: base vs BioHiCL, the ablation table, several base models.

:func:`run_study` does, for a :class:`ReproduceConfig` (usually read from YAML with :meth:`ReproduceConfig.from_yaml`):

1. build (or reuse) the MeSH-pair dataset (:func:`biohicl.data.pairs.build_dataset_from_files`);
2. for every base model: evaluate the untrained base, then train every ``(variant, seed)`` with
   :func:`biohicl.training.trainer.train_biohicl` and evaluate the saved model on the same tasks, at the same
   maximum length and precision;
3. aggregate over seeds (mean ± sample std), mark the differences that exceed the noise (:data:`NOISE_RULE`),
   check the targets, and write ``results.json``, ``results.md``, one grouped-bar PNG per base model (error bars
   = std over seeds) and one training-curve PNG per base model; each run folder gets a model card (``README.md``)
   with its results in the ``model-index``.

Resuming: every finished evaluation is an atomically written ``eval.json``; a run whose ``eval.json`` exists is
skipped, a run whose training finished (``training_summary.json``) is only evaluated, and an interrupted training
resumes from its last complete checkpoint. Layout of ``output_dir``::

    dataset/                           the MeSH-pair dataset (when built here)
    <model>/base/eval.json             the untrained base
    <model>/<variant>/seed<k>/         train_biohicl run folder + eval.json + README.md (model card)
    results.json  results.md  <model>_bars.png  <model>_curves.png
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from biohicl.atomic import atomic_path, atomic_write_json, atomic_write_text, pid_alive
from biohicl.errors import ConfigError

logger = logging.getLogger(__name__)

RESULTS_FORMAT = 1
EVAL_NAME = "eval.json"
TRAINING_DONE_NAME = "training_summary.json"

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

#: Minimum improvements over the base the issue asks for (fractions: +3.0 points = 0.03).
DEFAULT_TARGETS: dict[str, float] = {"biosses/spearman": 0.03, "pubmedqa/recall@1": 0.03, "scifact/ndcg@10": 0.01}

NOISE_FACTOR = 2.0
NOISE_RULE = (
    "A difference Δ between two rows is marked † when |Δ| > 2·s_pooled, where s_pooled is the pooled sample "
    "standard deviation over seeds of the rows that have ≥ 2 seeds (s_pooled² = Σ(n_i − 1)s_i² / Σ(n_i − 1)); the "
    "untrained base is deterministic and adds no variance. When neither row has ≥ 2 seeds the noise is unknown "
    "and the difference is left unmarked (shown with ?)."
)

#: Arguments the study sets itself per run (a config may not override them).
RESERVED_TRAINING_KEYS = (
    "output_dir",
    "seed",
    "dataset_path",
    "base_model",
    "base_model_hub_id",
    "resume_from_checkpoint",
)


# ---------------------------------------------------------------------------------------------------------- config
@dataclass
class DatasetSpec:
    """Where the MeSH-pair dataset comes from: an existing folder, or the corpora to build it from."""

    path: str | None = field(
        default=None,
        metadata={"help": "A built `biohicl build-dataset` folder to reuse (default: <output_dir>/dataset)."},
    )
    inputs: list[dict[str, Any]] | None = field(
        default=None,
        metadata={
            "help": "Corpora: [{source: pubmedqa|pubtator|medline|bioasq, files: [...]}]; relative files are "
            "looked up in BIOHICL_DATA_DIR. Default: the MeSH-indexed corpora (build_default_dataset)."
        },
    )
    top_k: int = field(default=10, metadata={"help": "Partners mined per document."})
    seed: int = field(default=0, metadata={"help": "Seed of the pair mining."})
    exclude_test: bool = field(default=True, metadata={"help": "Drop PubMedQA's 500 test abstracts entirely."})
    limit: int | None = field(default=None, metadata={"help": "Use at most this many documents (quick runs)."})
    mix_label_kinds: bool = field(
        default=False,
        metadata={
            "help": "Allow MeSH indexing and entity-mention (PubTator) labels in one dataset (pairs and batches "
            "never cross kinds). Off: inputs of both kinds are refused."
        },
    )
    decontaminate: bool = field(
        default=True, metadata={"help": "Leave out documents of the evaluation sets (PubMedQA test, SciFact, BIOSSES)."}
    )


@dataclass
class ModelSpec:
    """One base model of the study and how it is trained and evaluated."""

    name: str = field(metadata={"help": "Short label used in folders and tables, e.g. minilm."})
    model: str = field(metadata={"help": "Hub id (read offline) or a local model folder."})
    hub_id: str | None = field(default=None, metadata={"help": "Hub id recorded when `model` is a local folder."})
    pooling: str | None = field(default=None, metadata={"help": "`cls` or `mean` (default: the model's own)."})
    max_length: int = field(default=256, metadata={"help": "Tokens per training document."})
    eval_max_length: int | None = field(
        default=None, metadata={"help": "Tokens per text at evaluation, base and tuned alike (default max_length)."}
    )
    query_prompt: str = field(default="", metadata={"help": "Query prefix (e.g. BGE's instruction)."})
    document_prompt: str = field(default="", metadata={"help": "Document prefix."})
    training: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "BioHiCLTrainingArguments overrides for this model."}
    )
    tasks: list[str] | None = field(default=None, metadata={"help": "Tasks for this model (default: the study's)."})
    variants: list[str] | None = field(
        default=None, metadata={"help": "Variants run for this model (default: all of the study's)."}
    )
    seeds: list[int] | None = field(default=None, metadata={"help": "Seeds for this model (default: the study's)."})
    card_name: str | None = field(default=None, metadata={"help": "Model-card display name prefix."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub repo id the best `full` run would go to."})


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
        metadata={"help": "`task/metric` → minimum improvement of `full` over the base (fractions)."},
    )
    keep_checkpoints: bool = field(
        default=False, metadata={"help": "Keep checkpoint-N folders after a run finished (default: delete)."}
    )
    title: str = field(default="BioHiCL reproduction", metadata={"help": "Heading of results.md."})

    def __post_init__(self) -> None:
        if isinstance(self.dataset, Mapping):
            self.dataset = _build(DatasetSpec, self.dataset, "dataset")
        self.models = [m if isinstance(m, ModelSpec) else _build(ModelSpec, m, "models[]") for m in self.models]
        if not self.models:
            raise ConfigError("models: at least one base model is required")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ConfigError(f"models: names must be unique, got {names}")
        if not self.variants:
            raise ConfigError("variants: at least one variant is required")
        for name, overrides in self.variants.items():
            if not isinstance(overrides, Mapping):
                raise ConfigError(f"variants.{name}: expected a mapping of training overrides")
        for model in self.models:
            unknown = sorted(set(model.variants or ()) - set(self.variants))
            if unknown:
                raise ConfigError(f"models[{model.name}].variants: unknown variant(s) {', '.join(unknown)}")
        for name in ("seeds_per_variant", "tasks_per_variant"):
            unknown = sorted(set(getattr(self, name)) - set(self.variants))
            if unknown:
                raise ConfigError(f"{name}: unknown variant(s) {', '.join(unknown)}")
        if self.eval_dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"eval_dtype: {self.eval_dtype!r} is not float32 or bfloat16")
        check_eval_device(self.eval_device)
        if not self.seeds:
            raise ConfigError("seeds: at least one seed is required")
        for scope, values in (
            [("training", self.training)]
            + [(f"models[{m.name}].training", m.training) for m in self.models]
            + [(f"variants.{k}", v) for k, v in self.variants.items()]
        ):
            reserved = sorted(set(values) & set(RESERVED_TRAINING_KEYS))
            if reserved:
                raise ConfigError(f"{scope}: {', '.join(reserved)} are set by the study itself")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> ReproduceConfig:
        try:
            return _build(cls, values, source)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> ReproduceConfig:
        """Read a YAML (or JSON) study config; relative ``output_dir``/dataset paths stay relative to the cwd."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: cannot parse YAML ({err})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return cls.from_dict(values, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # -------------------------------------------------------------- derived
    def model_variants(self, model: ModelSpec) -> list[str]:
        return [v for v in self.variants if model.variants is None or v in model.variants]

    def run_seeds(self, model: ModelSpec, variant: str) -> list[int]:
        if variant in self.seeds_per_variant:
            return list(self.seeds_per_variant[variant])
        return list(model.seeds if model.seeds is not None else self.seeds)

    def model_tasks(self, model: ModelSpec, variant: str | None = None) -> list[str]:
        """The tasks a run is evaluated on (the base: all of the model's tasks)."""
        tasks = list(model.tasks if model.tasks is not None else self.tasks)
        if variant in self.tasks_per_variant:
            return [t for t in tasks if t in self.tasks_per_variant[variant]]
        return tasks

    def select(
        self, only: Sequence[str] | None = None, seeds: Sequence[int] | None = None, models: Sequence[str] | None = None
    ) -> ReproduceConfig:
        """A copy restricted to some variants / models, or with other seeds (the CLI's --only/--seeds/--models)."""
        import copy

        new = copy.deepcopy(self)
        if only:
            unknown = sorted(set(only) - set(new.variants))
            if unknown:
                raise ConfigError(f"--only: unknown variant(s) {', '.join(unknown)}; known: {', '.join(new.variants)}")
            new.variants = {k: v for k, v in new.variants.items() if k in only}
            for model in new.models:
                if model.variants is not None:
                    model.variants = [v for v in model.variants if v in only]
            new.seeds_per_variant = {k: v for k, v in new.seeds_per_variant.items() if k in only}
            new.tasks_per_variant = {k: v for k, v in new.tasks_per_variant.items() if k in only}
        if seeds:
            new.seeds = list(seeds)
            new.seeds_per_variant = {}
            for model in new.models:
                model.seeds = None
        if models:
            unknown = sorted(set(models) - {m.name for m in new.models})
            if unknown:
                raise ConfigError(f"--models: unknown model(s) {', '.join(unknown)}")
            new.models = [m for m in new.models if m.name in models]
        return new


def _build(cls, values: Mapping[str, Any], scope: str):
    if not isinstance(values, Mapping):
        raise ConfigError(f"{scope}: expected a mapping, got {type(values).__name__}")
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{scope}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"{scope}: {err}") from None


# ---------------------------------------------------------------------------------------------------------- plan
@dataclass
class PlannedRun:
    """One (model, variant, seed) training run, or the model's untrained base (variant ``base``, seed None)."""

    model: str
    variant: str
    seed: int | None
    run_dir: Path
    status: str  # "done" (evaluated), "evaluate" (trained), "resume" (checkpoint), "train" (nothing yet)

    @property
    def label(self) -> str:
        return f"{self.model}/{self.variant}" if self.seed is None else f"{self.model}/{self.variant}/seed{self.seed}"


BASE = "base"


def run_dir_for(config: ReproduceConfig, model: str, variant: str, seed: int | None) -> Path:
    root = Path(config.output_dir) / model
    return root / BASE if variant == BASE else root / variant / f"seed{seed}"


def plan_study(config: ReproduceConfig) -> list[PlannedRun]:
    """Every run of the study in execution order (per model: base, then each variant's seeds), with its status.

    A run whose ``eval.json`` lacks some of its tasks (tasks added to the config later) gets status ``add_tasks``:
    only the missing tasks are evaluated and merged into the record.
    """
    from biohicl.training.trainer import last_complete_checkpoint

    runs = []
    for model in config.models:
        base_dir = run_dir_for(config, model.name, BASE, None)
        runs.append(
            PlannedRun(
                model.name, BASE, None, base_dir, _eval_status(base_dir, config.model_tasks(model)) or "evaluate"
            )
        )
        for variant in config.model_variants(model):
            for seed in config.run_seeds(model, variant):
                folder = run_dir_for(config, model.name, variant, seed)
                status = _eval_status(folder, config.model_tasks(model, variant))
                if status is None:
                    if (folder / TRAINING_DONE_NAME).is_file():
                        status = "evaluate"
                    elif last_complete_checkpoint(folder) is not None:
                        status = "resume"
                    else:
                        status = "train"
                runs.append(PlannedRun(model.name, variant, seed, folder, status))
    return runs


def missing_tasks(record: Mapping[str, Any], tasks: Sequence[str]) -> list[str]:
    """The task specs of ``tasks`` that ``record`` (an ``eval.json``) has no result for (name and split)."""
    from biohicl.evaluation.tasks import parse_task_spec, record_key

    missing = []
    for spec in tasks:
        name, split = parse_task_spec(spec)
        name = Path(name).name if "/" in name else name
        result = record.get("tasks", {}).get(record_key(name, split))
        if result is None or (split is not None and result.get("split") != split):
            missing.append(spec)
    return missing


def _eval_status(folder: Path, tasks: Sequence[str]) -> str | None:
    path = folder / EVAL_NAME
    if not path.is_file():
        return None
    return "add_tasks" if missing_tasks(json.loads(path.read_text(encoding="utf-8")), tasks) else "done"


def describe_plan(runs: Sequence[PlannedRun]) -> str:
    """One line per run: what :func:`run_study` would do with it."""
    actions = {
        "done": "skip (evaluated)",
        "add_tasks": "evaluate the tasks its eval.json lacks",
        "evaluate": "evaluate",
        "resume": "resume training from checkpoint, evaluate",
        "train": "train, evaluate",
    }
    lines = []
    for run in runs:
        what = actions[run.status] if run.variant != BASE or run.status != "evaluate" else "evaluate untrained base"
        lines.append(f"{run.model:>10}  {run.variant:<16} {'' if run.seed is None else run.seed!s:>4}  {what}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------- data
def resolve_files(files: Iterable[str]) -> list[Path]:
    """Corpus files: as given when they exist, else relative to ``BIOHICL_DATA_DIR``."""
    from biohicl.settings import data_path

    resolved = []
    for name in files:
        path = Path(name).expanduser()
        resolved.append(path if path.exists() else data_path(*Path(name).parts))
    return resolved


def prepare_dataset(config: ReproduceConfig, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Reuse the dataset folder when it holds a build, else build it there; returns (folder, summary)."""
    from biohicl.data.pairs import build_dataset_from_files, default_inputs

    spec = config.dataset
    folder = Path(spec.path) if spec.path else Path(config.output_dir) / "dataset"
    if (folder / "documents").is_dir() and (folder / "pairs").is_dir():
        summary_file = folder / "summary.json"
        summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else {}
        logger.info("reusing the MeSH-pair dataset in %s", folder)
        return folder, summary
    if spec.inputs is None:
        inputs = default_inputs()
    else:
        inputs = []
        for i, item in enumerate(spec.inputs):
            if not isinstance(item, Mapping) or "source" not in item or "files" not in item:
                raise ConfigError(f"dataset.inputs[{i}]: expected {{source: ..., files: [...]}}")
            inputs.append((str(item["source"]), resolve_files(item["files"])))
    _, summary = build_dataset_from_files(
        inputs, folder, top_k=spec.top_k, seed=spec.seed, limit=spec.limit, exclude_test=spec.exclude_test,
        mix_label_kinds=spec.mix_label_kinds, decontaminate=spec.decontaminate, progress=progress,
    )  # fmt: skip
    return folder, summary.to_dict()


# ---------------------------------------------------------------------------------------------------------- runs
def training_arguments(
    config: ReproduceConfig, model: ModelSpec, variant: str, seed: int, dataset_path: Path, run_dir: Path
):
    """The BioHiCLTrainingArguments of one run: defaults < study ``training`` < model ``training`` < variant."""
    from biohicl.training.args import BioHiCLTrainingArguments

    values: dict[str, Any] = {
        **DEFAULT_TRAINING,
        "pooling": model.pooling,
        "max_length": model.max_length,
        "query_prompt": model.query_prompt,
        "document_prompt": model.document_prompt,
        **config.training,
        **model.training,
        **config.variants[variant],
    }
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


def load_base(model: ModelSpec):
    """The untrained base encoder with the study's pooling, prompts and evaluation length."""
    from biohicl.models.model import BioHiCLModel

    encoder = BioHiCLModel.from_base(
        model.model, pooling=model.pooling, max_length=model.eval_max_length or model.max_length,
        query_prompt=model.query_prompt, document_prompt=model.document_prompt, hub_id=model.hub_id,
    )  # fmt: skip
    if model.eval_max_length:
        encoder.config.max_length = model.eval_max_length
    return encoder


def load_trained(model: ModelSpec, run_dir: Path):
    """A trained run reloaded from its saved folder (the artefact users get), at the evaluation length."""
    from biohicl.models.model import BioHiCLModel

    encoder = BioHiCLModel.from_pretrained(run_dir, base_model_path=model.model)
    if model.eval_max_length:
        encoder.config.max_length = model.eval_max_length
    return encoder


def evaluate_encoder(
    config: ReproduceConfig,
    model: ModelSpec,
    encoder,
    label: str,
    output: Path,
    variant: str | None = None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate ``encoder`` on the run's tasks (those ``previous`` lacks, when given) and write ``output``
    atomically (what marks the run done); a ``previous`` record is extended, never overwritten."""
    import torch

    from biohicl.evaluation.runner import evaluate_model

    device = resolve_eval_device(config.eval_device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if config.eval_dtype == "bfloat16" else _NullContext()
    tasks = config.model_tasks(model, variant)
    if previous is not None:
        tasks = missing_tasks(previous, tasks)
    encoder.to(device)
    encoder.eval()
    with autocast:
        record = evaluate_model(
            encoder,
            tasks,
            model_id=label,
            batch_size=config.eval_batch_size,
            limit_queries=config.limit_queries,
            show_progress_bar=False,
            settings={"dtype": config.eval_dtype, "max_length": encoder.config.max_length, "device": device.type},
        )
    if previous is not None:
        if previous.get("settings", {}) != record["settings"]:
            logger.warning(
                "%s: settings differ from the earlier evaluation (%s vs %s)",
                label,
                previous.get("settings"),
                record["settings"],
            )
        merged = dict(previous)
        merged["tasks"] = {**previous["tasks"], **record["tasks"]}
        merged["summary"] = {**previous["summary"], **record["summary"]}
        merged["wall_time_s"] = previous.get("wall_time_s", 0.0) + record["wall_time_s"]
        merged.setdefault("added", []).append({"created": record["created"], "tasks": list(record["tasks"])})
        record = merged
    atomic_write_json(output, record)
    return record


def check_eval_device(name: str) -> None:
    """A :class:`ConfigError` unless ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    kind, _, index = name.partition(":")
    if name != "auto" and not (kind in ("cpu", "cuda") and (not index or (kind == "cuda" and index.isdigit()))):
        raise ConfigError(f"eval_device: {name!r} is not auto, cpu, cuda or cuda:N")


def resolve_eval_device(name: str = "auto"):
    """The ``torch.device`` evaluation encodes on: ``auto`` is the GPU when CUDA sees one, else the CPU."""
    import torch

    check_eval_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"eval_device: {name!r} asked for, but CUDA sees no GPU on this machine")
    return torch.device(name)


class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def train_run(args) -> Path:
    """Train one run (resuming from its last complete checkpoint) and drop the checkpoints afterwards."""
    from biohicl.training.trainer import train_biohicl

    return train_biohicl(args)


def set_inference_length(run_dir: Path, max_length: int | None) -> None:
    """Record the evaluation length as the saved encoder's default (``biohicl_config.json`` ``max_length``), so the
    published model encodes as it was evaluated even when it was trained on shorter inputs."""
    from biohicl.models.model import CONFIG_NAME

    path = run_dir / CONFIG_NAME
    if max_length is None or not path.is_file():
        return
    values = json.loads(path.read_text(encoding="utf-8"))
    if values.get("max_length") != max_length:
        values["max_length"] = max_length
        atomic_write_text(path, json.dumps(values, indent=2) + "\n")


def remove_checkpoints(run_dir: Path) -> None:
    for child in run_dir.glob("checkpoint-*"):
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)


def write_model_card(
    config: ReproduceConfig,
    model: ModelSpec,
    run: PlannedRun,
    record: Mapping[str, Any],
    base_record: Mapping[str, Any] | None,
    repo_id: str | None = None,
) -> Path:
    """Render the run's model card (README.md) with its results (and the base's) in the ``model-index``."""
    from biohicl.hub.model_card import BioHiCLModelCardData, render_model_card

    prefix = model.card_name or f"BioHiCL-{model.name}"
    name = prefix if run.variant == "full" else f"{prefix}-{run.variant}"
    data = BioHiCLModelCardData.from_run_dir(run.run_dir, model_name=f"{name}-seed{run.seed}")
    if repo_id:
        data.repo_id = repo_id
    data.eval_results = []
    for task, result in record["tasks"].items():
        base = (base_record or {}).get("tasks", {}).get(task)
        data.add_eval_results(
            {task: result}, base={task: base} if base else None, split=str(result.get("split") or "test")
        )
    data.eval_source = (
        f"`biohicl reproduce` ({config.title}): {model.name}/{run.variant}/seed{run.seed}, evaluated with "
        f"`biohicl.evaluation` at max length {record.get('settings', {}).get('max_length')} "
        f"({record.get('settings', {}).get('dtype')}); base = the untrained {model.hub_id or model.model}."
    )
    path = run.run_dir / "README.md"
    atomic_write_text(path, render_model_card(data))
    return path


LOCK_NAME = ".reproduce.lock"


def acquire_run_lock(run_dir: Path) -> bool:
    """Claim a run for this process (``.reproduce.lock`` holding the pid, created exclusively); False when another
    live process holds it. A lock left by a dead process is taken over. Lets several workers share one study."""
    import os

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder == os.getpid():
                return True
            if holder and pid_alive(holder):
                return False
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        return True
    return False


def release_run_lock(run_dir: Path) -> None:
    (run_dir / LOCK_NAME).unlink(missing_ok=True)


def _refresh(config: ReproduceConfig, run: PlannedRun) -> PlannedRun:
    """The run's status now (another worker may have finished it since the plan was made)."""
    for fresh in plan_study(config):
        if (fresh.model, fresh.variant, fresh.seed) == (run.model, run.variant, run.seed):
            return fresh
    return run


def run_study(
    config: ReproduceConfig,
    *,
    progress: bool = True,
    write_plots: bool = True,
    report_only: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the whole study and write its results; returns the ``results.json`` record.

    ``report_only``: train and evaluate nothing; tabulate the runs already evaluated (the rest are listed as
    ``missing`` in the results).
    """
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "study_config.json", config.to_dict())
    dataset_path, dataset_summary = prepare_dataset(config, progress=progress)
    runs = plan_study(config)
    logger.info("study plan:\n%s", describe_plan(runs))
    specs = {m.name: m for m in config.models}
    records: dict[tuple[str, str, int | None], dict[str, Any]] = {}
    elsewhere: list[str] = []
    missing = [r.label for r in runs if r.status != "done"] if report_only else []
    for i, run in enumerate(runs, start=1):
        model = specs[run.model]
        start = time.time()
        if report_only and run.status != "done":
            continue
        locked = run.status != "done"
        if locked:
            if not acquire_run_lock(run.run_dir):
                print(f"[{i}/{len(runs)}] {run.label}: another worker is on it, skipped", flush=True)
                elsewhere.append(run.label)
                continue
            run = _refresh(config, run)
        try:
            record = _execute(config, model, run, i, len(runs), dataset_path)
        finally:
            if locked:
                release_run_lock(run.run_dir)
        records[(run.model, run.variant, run.seed)] = record
        if run.status != "done":
            print(
                f"[{i}/{len(runs)}] {run.label}: done in {time.time() - start:.0f} s "
                f"({', '.join(f'{k}={v:.4f}' for k, v in record['summary'].items())})",
                flush=True,
            )
    # runs other workers were on when this one passed them: pick up what they have finished since
    for run in plan_study(config):
        key = (run.model, run.variant, run.seed)
        if key not in records and run.status in ("done", "add_tasks") and (run.run_dir / EVAL_NAME).is_file():
            records[key] = json.loads((run.run_dir / EVAL_NAME).read_text(encoding="utf-8"))
    unfinished = [label for label in elsewhere if not any(
        f"{m}/{v}/seed{s}" == label for (m, v, s) in records)]  # fmt: skip
    if unfinished:
        print(f"still running in another worker (not in these results): {', '.join(unfinished)}", flush=True)
    results = aggregate(config, records, dataset_summary)
    results["missing"] = list(dict.fromkeys(missing + unfinished))
    _write_cards(config, runs, records, results)
    write_results(config, results, write_plots=write_plots)
    return results


def _execute(
    config: ReproduceConfig, model: ModelSpec, run: PlannedRun, i: int, total: int, dataset_path: Path
) -> dict[str, Any]:
    """Do what ``run.status`` says (skip / evaluate / train or resume, then evaluate); returns the eval record."""
    eval_file = run.run_dir / EVAL_NAME
    if run.variant != BASE and run.status in ("done", "add_tasks", "evaluate"):
        set_inference_length(run.run_dir, model.eval_max_length)
    if run.status == "done":
        print(f"[{i}/{total}] {run.label}: already evaluated, skipped", flush=True)
        return json.loads(eval_file.read_text(encoding="utf-8"))
    print(f"[{i}/{total}] {run.label}: {run.status}", flush=True)
    if run.variant == BASE:
        encoder = load_base(model)
        label = f"{model.name} (untrained)"
    else:
        if run.status in ("train", "resume"):
            args = training_arguments(config, model, run.variant, run.seed, dataset_path, run.run_dir)
            train_run(args)
            set_inference_length(run.run_dir, model.eval_max_length)
        if not config.keep_checkpoints and run.status != "add_tasks":
            remove_checkpoints(run.run_dir)
        encoder = load_trained(model, run.run_dir)
        label = f"{model.name}/{run.variant}/seed{run.seed}"
    variant = None if run.variant == BASE else run.variant
    previous = json.loads(eval_file.read_text(encoding="utf-8")) if run.status == "add_tasks" else None
    return evaluate_encoder(config, model, encoder, label, eval_file, variant, previous)


def _write_cards(config, runs, records, results) -> None:
    specs = {m.name: m for m in config.models}
    for run in runs:
        if run.variant == BASE or (run.model, run.variant, run.seed) not in records:
            continue
        model = specs[run.model]
        best = results["models"][run.model].get("best_full_run")
        repo_id = model.repo_id if best and best.get("seed") == run.seed and run.variant == "full" else None
        try:
            write_model_card(
                config,
                model,
                run,
                records[(run.model, run.variant, run.seed)],
                records.get((run.model, BASE, None)),
                repo_id=repo_id,
            )
        except Exception as err:  # a card problem must not lose the study's results
            logger.warning("%s: no model card written (%s)", run.label, err)
            results.setdefault("card_errors", []).append(f"{run.label}: {type(err).__name__}: {err}")


# ---------------------------------------------------------------------------------------------------------- stats
def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof = 1; None for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def pooled_std(groups: Sequence[tuple[int, float | None]]) -> float | None:
    """Pooled sample std over ``(n, std)`` groups with n ≥ 2; None when there is none."""
    num = sum((n - 1) * s**2 for n, s in groups if n >= 2 and s is not None)
    dof = sum(n - 1 for n, s in groups if n >= 2 and s is not None)
    return math.sqrt(num / dof) if dof else None


def compare(a: Mapping[str, Any], b: Mapping[str, Any], metric: str) -> dict[str, Any] | None:
    """Δ = b − a for ``metric`` between two aggregated rows, with the noise level and whether |Δ| exceeds it."""
    if metric not in a["mean"] or metric not in b["mean"]:
        return None
    delta = b["mean"][metric] - a["mean"][metric]
    noise = pooled_std([(a["n"], a["std"].get(metric)), (b["n"], b["std"].get(metric))])
    threshold = None if noise is None else NOISE_FACTOR * noise
    return {
        "delta": delta,
        "noise_std": noise,
        "threshold": threshold,
        "exceeds_noise": None if threshold is None else abs(delta) > threshold,
    }


def aggregate_row(per_seed: Mapping[int | None, Mapping[str, float]]) -> dict[str, Any]:
    """``{seed: {metric: value}}`` → ``{n, seeds, mean, std, values}``."""
    metrics = sorted({m for values in per_seed.values() for m in values})
    row: dict[str, Any] = {"n": len(per_seed), "seeds": [s for s in per_seed], "mean": {}, "std": {}, "values": {}}
    for metric in metrics:
        values = [per_seed[s][metric] for s in per_seed if metric in per_seed[s]]
        mean, std = mean_std(values)
        row["mean"][metric], row["values"][metric] = mean, values
        if std is not None:
            row["std"][metric] = std
    return row


def aggregate(
    config: ReproduceConfig,
    records: Mapping[tuple[str, str, int | None], Mapping[str, Any]],
    dataset_summary: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``results.json`` record: per model, per variant, mean ± std over seeds, deltas, noise marks, targets."""
    models: dict[str, Any] = {}
    targets = []
    for spec in config.models:
        base = records.get((spec.name, BASE, None))
        rows: dict[str, Any] = {}
        main_metrics: list[str] = []
        if base is not None:
            rows[BASE] = aggregate_row({None: base["summary"]})
            rows[BASE]["seeds"] = []
            main_metrics = _main_metrics(base)
        for variant in config.model_variants(spec):
            per_seed = {
                seed: records[(spec.name, variant, seed)]["summary"]
                for seed in config.run_seeds(spec, variant)
                if (spec.name, variant, seed) in records
            }
            if per_seed:
                rows[variant] = aggregate_row(per_seed)
                if not main_metrics:
                    main_metrics = _main_metrics(records[(spec.name, variant, next(iter(per_seed)))])
        for variant, row in rows.items():
            if variant == BASE:
                continue
            row["vs_base"] = {m: compare(rows[BASE], row, m) for m in row["mean"]} if BASE in rows else {}
            if variant != "full" and "full" in rows:
                row["vs_full"] = {m: compare(rows["full"], row, m) for m in row["mean"]}
        best = _best_full_run(config, spec, records, main_metrics)
        models[spec.name] = {
            "model": spec.hub_id or spec.model,
            "tasks": config.model_tasks(spec),
            "main_metrics": main_metrics,
            "rows": rows,
            "best_full_run": best,
        }
        if "full" in rows and BASE in rows:
            for metric, minimum in config.targets.items():
                comparison = rows["full"]["vs_base"].get(metric)
                if comparison is None:
                    continue
                targets.append({
                    "model": spec.name, "metric": metric, "target": minimum, "delta": comparison["delta"],
                    "met": comparison["delta"] >= minimum, "exceeds_noise": comparison["exceeds_noise"],
                })  # fmt: skip
        for variant, row in rows.items():
            if variant in (BASE, "full") or "full" not in rows:
                continue
            for metric in main_metrics:
                comparison = row["vs_full"].get(metric)
                if comparison is not None:
                    targets.append({
                        "model": spec.name, "metric": metric, "target": f"full ≥ {variant}",
                        "delta": -comparison["delta"], "met": comparison["delta"] <= 0,
                        "exceeds_noise": comparison["exceeds_noise"],
                    })  # fmt: skip
    return {
        "format": RESULTS_FORMAT,
        "title": config.title,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "noise_rule": NOISE_RULE,
        # the build's read report names machine paths and examples: keep the counts only
        "dataset": {k: v for k, v in (dataset_summary or {}).items() if k != "read"},
        "config": config.to_dict(),
        "models": models,
        "targets": targets,
    }


def _main_metrics(record: Mapping[str, Any]) -> list[str]:
    return [f"{task}/{result['main_metric']}" for task, result in record["tasks"].items()]


def _best_full_run(config, spec, records, main_metrics) -> dict[str, Any] | None:
    """The `full` seed with the highest mean of its main metrics (the one to publish)."""
    scored = []
    for seed in config.run_seeds(spec, "full") if "full" in config.model_variants(spec) else []:
        record = records.get((spec.name, "full", seed))
        if record is None or not main_metrics:
            continue
        values = [record["summary"][m] for m in main_metrics if m in record["summary"]]
        scored.append((sum(values) / len(values), seed))
    if not scored:
        return None
    score, seed = max(scored)
    return {"seed": seed, "mean_main_metric": score, "run_dir": str(run_dir_for(config, spec.name, "full", seed))}


# ---------------------------------------------------------------------------------------------------------- report
def _cell(row: Mapping[str, Any], metric: str, comparison: Mapping[str, Any] | None = None, scale: float = 100.0):
    if metric not in row["mean"]:
        return "–"
    text = f"{scale * row['mean'][metric]:.2f}"
    if metric in row["std"]:
        text += f" ± {scale * row['std'][metric]:.2f}"
    if comparison is not None:
        mark = {True: " †", False: "", None: " ?"}[comparison["exceeds_noise"]]
        text += f" ({scale * comparison['delta']:+.2f}{mark})"
    return text


def markdown_results(results: Mapping[str, Any]) -> str:
    """``results.md``: per model, a table of mean ± std (×100) with Δ vs the base, then Δ vs full, then targets."""
    from biohicl.evaluation.report import metric_label

    lines = [f"# {results['title']}", ""]
    data = results.get("dataset") or {}
    if data:
        lines += [
            f"MeSH-pair dataset: {data.get('documents', '?')} training documents, {data.get('pairs', '?')} mined "
            f"pairs (sources {data.get('sources', {})}, PubMedQA test abstracts excluded: "
            f"{data.get('excluded_documents', 0)}).",
            "",
        ]
    lines += [
        "Scores ×100, mean ± sample std over seeds (n = seeds); in brackets Δ against the reference row.",
        NOISE_RULE,
        "",
    ]
    for name, model in results["models"].items():
        rows, metrics = model["rows"], model["main_metrics"]
        extra = sorted({m for row in rows.values() for m in row["mean"]} - set(metrics))
        header = ["variant", "n", *(_metric_header(m, metric_label) for m in metrics)]
        lines += [f"## {name}: `{model['model']}`", "", "Δ against the untrained base:", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---:"] + ["---:"] * len(metrics)) + "|"]
        for variant, row in rows.items():
            cells = [_cell(row, m, row.get("vs_base", {}).get(m)) for m in metrics]
            lines.append("| " + " | ".join([variant, str(row["n"]), *cells]) + " |")
        ablations = [v for v in rows if v not in (BASE, "full")]
        if ablations and "full" in rows:
            lines += ["", "Ablations, Δ against `full` (negative = the ablation is worse):", ""]
            lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---:"] + ["---:"] * len(metrics)) + "|"]
            lines.append(
                "| " + " | ".join(["full", str(rows["full"]["n"]), *(_cell(rows["full"], m) for m in metrics)]) + " |"
            )
            for variant in ablations:
                row = rows[variant]
                cells = [_cell(row, m, row.get("vs_full", {}).get(m)) for m in metrics]
                lines.append("| " + " | ".join([variant, str(row["n"]), *cells]) + " |")
        if extra:
            lines += ["", "Other metrics (mean over seeds, ×100):", ""]
            lines += [
                "| variant | " + " | ".join(_metric_header(m, metric_label) for m in extra) + " |",
                "|---|" + "|".join(["---:"] * len(extra)) + "|",
            ]
            for variant, row in rows.items():
                lines.append(f"| {variant} | " + " | ".join(_cell(row, m) for m in extra) + " |")
        if model.get("best_full_run"):
            best = model["best_full_run"]
            lines += ["", f"Best `full` run (highest mean main metric): seed {best['seed']} (`{best['run_dir']}`)."]
        lines.append("")
    if results.get("missing"):
        lines += ["Not run yet (no evaluation): " + ", ".join(f"`{m}`" for m in results["missing"]) + ".", ""]
    if results.get("targets"):
        lines += [
            "## Targets",
            "",
            "Δ = full − base for the improvement targets, full − ablation for the others.",
            "",
            "| model | metric | target | Δ | met | beyond noise (2·s) |",
            "|---|---|---|---:|---|---|",
        ]
        for t in results["targets"]:
            target = t["target"] if isinstance(t["target"], str) else f"Δ ≥ {100 * t['target']:+.1f}"
            noise = {True: "yes", False: "no", None: "unknown (n = 1)"}[t.get("exceeds_noise")]
            lines.append(
                f"| {t['model']} | {t['metric']} | {target} | {100 * t['delta']:+.2f} | "
                f"{'yes' if t['met'] else '**no**'} | {noise} |"
            )
        lines.append("")
    return "\n".join(lines)


def _metric_header(metric: str, metric_label) -> str:
    task, _, name = metric.partition("/")
    return f"{task} {metric_label(name)}"


def plot_bars(model: Mapping[str, Any], output: Path, title: str) -> Path:
    """Grouped bars: one group per main metric, one bar per variant, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from biohicl.evaluation.report import metric_label

    rows, metrics = model["rows"], model["main_metrics"]
    variants = list(rows)
    width = 0.8 / max(len(variants), 1)
    x = np.arange(len(metrics))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(metrics) * max(1, len(variants) / 3) + 2), 4.4), dpi=110)
    palette = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20").colors  # one distinct colour per variant
    for i, variant in enumerate(variants):
        row = rows[variant]
        heights = [row["mean"].get(m, np.nan) for m in metrics]
        errors = [row["std"].get(m, 0.0) for m in metrics]
        bars = ax.bar(
            x - 0.4 + width * (i + 0.5),
            heights,
            width,
            yerr=errors,
            capsize=2,
            label=f"{variant} (n={row['n']})",
            color=palette[i % len(palette)],
        )
        ax.bar_label(
            bars, labels=[("" if np.isnan(h) else f"{h:.3f}") for h in heights], fontsize=6, padding=1, rotation=90
        )
    ax.set_xticks(x, [_metric_header(m, metric_label).replace(" ", "\n", 1) for m in metrics], fontsize=8)
    values = [v for row in rows.values() for m in metrics if (v := row["mean"].get(m)) is not None]
    low = max(0.0, min(values) - 0.1) if values else 0.0  # zoom in: the differences are a few points
    ax.set_ylim(low, min(1.05, max(values) + 0.06) if values else 1.05)
    ax.set_ylabel("score (axis does not start at 0)" if low > 0 else "score")
    ax.set_title(title, fontsize=10)
    if len(variants) > 8:  # many variants: the legend goes beside the plot, not over the bars
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=7, loc="lower right", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return output


def plot_deltas(model: Mapping[str, Any], output: Path, title: str, targets: Mapping[str, float] | None = None) -> Path:
    """One panel per main metric: each variant's Δ against the untrained base (points ×100) as a horizontal bar,
    error bar = std over seeds, its ±2·s noise threshold shaded behind it (:data:`NOISE_RULE`) and the target drawn
    as a dashed line. Bars beyond the noise are solid (green above the base, red below); the others are grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from biohicl.evaluation.report import metric_label

    rows, metrics = model["rows"], model["main_metrics"]
    variants = [v for v in rows if v != BASE and any(m in rows[v].get("vs_base", {}) for m in metrics)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics) + 1.2, 0.32 * len(variants) + 1.6),
                             dpi=110, sharey=True, squeeze=False)  # fmt: skip
    for ax, metric in zip(axes[0], metrics, strict=True):
        ys = range(len(variants))
        deltas, errors, colors, bands = [], [], [], []
        for variant in variants:
            entry = rows[variant].get("vs_base", {}).get(metric, {})
            delta = 100 * entry.get("delta", float("nan"))
            deltas.append(delta)
            errors.append(100 * rows[variant]["std"].get(metric, 0.0))
            bands.append(100 * (entry.get("threshold") or 0.0))
            colors.append(("#2a9d48" if delta > 0 else "#c0392b") if entry.get("exceeds_noise") else "#b9b9b9")
        ax.barh(list(ys), [2 * b for b in bands], left=[-b for b in bands], color="#1f6fb2", alpha=0.12, height=0.9)
        ax.barh(list(ys), deltas, xerr=errors, color=colors, capsize=2, height=0.6)
        ax.axvline(0, color="black", lw=0.8)
        if targets and metric in targets:
            ax.axvline(100 * targets[metric], color="#1f6fb2", ls="--", lw=1)
            ax.text(100 * targets[metric], len(variants) - 0.4, " target", color="#1f6fb2", fontsize=7, va="bottom")
        ax.set_title(_metric_header(metric, metric_label), fontsize=9)
        ax.set_xlabel("Δ vs base (points)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0][0].set_yticks(range(len(variants)), [f"{v} (n={rows[v]['n']})" for v in variants])
    axes[0][0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return output


def plot_curves(config: ReproduceConfig, model: ModelSpec, output: Path) -> Path | None:
    """Training loss per logged step for every finished run of ``model`` (one line per variant/seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from biohicl.training.curves import curve_series, read_log_history

    series = []
    for variant in config.model_variants(model):
        for seed in config.run_seeds(model, variant):
            folder = run_dir_for(config, model.name, variant, seed)
            if not (folder / "trainer_state.json").is_file():
                continue
            steps, values = curve_series(read_log_history(folder), "loss")
            if steps:
                series.append((variant, seed, steps, values))
    if not series:
        return None
    variants = list(dict.fromkeys(s[0] for s in series))
    colors = {v: f"C{i}" for i, v in enumerate(variants)}
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    seen = set()
    for variant, _seed, steps, values in series:
        ax.plot(
            steps,
            values,
            color=colors[variant],
            alpha=0.85,
            linewidth=1.2,
            label=variant if variant not in seen else None,
        )
        seen.add(variant)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (each variant's own objective)")
    ax.set_title(f"{model.name}: training loss per run (one line per seed)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return output


def write_results(config: ReproduceConfig, results: Mapping[str, Any], write_plots: bool = True) -> list[Path]:
    """``results.json``, ``results.md`` and the PNGs into ``config.output_dir``."""
    out = Path(config.output_dir)
    written = [
        atomic_write_json(out / "results.json", results),
        atomic_write_text(out / "results.md", markdown_results(results)),
    ]
    if write_plots:
        for spec in config.models:
            model = results["models"].get(spec.name)
            if model and model["rows"] and model["main_metrics"]:
                written.append(
                    plot_bars(model, out / f"{spec.name}_bars.png", f"{model['model']}\n(error bars: std over seeds)")
                )
                if any(v != BASE for v in model["rows"]) and BASE in model["rows"]:
                    written.append(
                        plot_deltas(
                            model,
                            out / f"{spec.name}_deltas.png",
                            f"{model['model']}: Δ against the untrained base (shaded: ±2·s noise)",
                            results.get("config", {}).get("targets"),
                        )
                    )
            curves = plot_curves(config, spec, out / f"{spec.name}_curves.png")
            if curves is not None:
                written.append(curves)
    return written

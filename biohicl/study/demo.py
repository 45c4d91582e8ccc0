"""The demo: the whole pipeline on the embedded default, on CPU, in minutes (``biohicl demo``, ``make demo``).

1. build the MeSH-pair dataset from the real MeSH-indexed abstracts (``BIOHICL_DATA_DIR``: PubMedQA, the MEDLINE
   sample, a BioASQ sample, PubMed exports; decontaminated, with a dev split);
2. LoRA-train all-MiniLM-L6-v2 with the BioHiCL loss for a short run, selected on PubMedQA dev (step 0 included),
   or the run of a ``biohicl train`` config (``training_args``; ``biohicl demo --training_config FILE``, e.g.
   ``configs/biohicl_minilm.yaml``, the recipe of the registry's BioHiCL-MiniLM); its ``biohicl_config.json`` then
   gets the evaluation length (``--eval_max_length``, capped at the most tokens the base encodes), so the run
   publishes with its results, as a study's run does;
3. evaluate the untrained base and the trained adapter on BIOSSES and PubMedQA (question → long answer); a tuned
   model whose merged weights are the base's, bit for bit (dev selection kept step 0), is not encoded again: its
   record holds the base's numbers under its own id, saying so (``settings.scores_of``, ``scores_note``);
4. the base-vs-BioHiCL table (also written to ``<output_dir>/results.md``).

A step whose outputs are already in ``output_dir`` is reused only when they are what this call would make: a run
trained with other settings is refused in one line (nothing is overwritten), a results file of another model,
length or dtype, or without one of the tasks asked for, is evaluated again. Progress is logged
(``biohicl.study.demo``); the command shows it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biohicl.errors import ConfigError
from biohicl.models.config import DEFAULT_BASE_MODEL
from biohicl.training.run_settings import settings_differences

if TYPE_CHECKING:
    from biohicl.training.args import BioHiCLTrainingArguments

logger = logging.getLogger(__name__)

#: What a demo whose run folder holds checkpoints of a run with other settings (one killed mid-run) can do.
DEMO_REMEDY = (
    "rerun the demo with that run's settings, give another --output_dir, or --no_skip_steps_done to train over it"
)


@dataclass
class DemoArguments:
    """Size settings of the demo (defaults: a run that finishes in minutes on 2 CPU cores)."""

    output_dir: str = field(default="runs/demo", metadata={"help": "Where the dataset, run and results go."})
    base_model: str = field(default=DEFAULT_BASE_MODEL, metadata={"help": "Hub id (or folder) of the model to tune."})
    max_steps: int = field(
        default=60, metadata={"help": "Training steps (at least 1; not used with --training_config)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Documents per training batch."})
    max_length: int = field(default=128, metadata={"help": "Tokens per training document."})
    eval_max_length: int = field(
        default=256,
        metadata={
            "help": "Tokens per text at evaluation, base and tuned alike (one length, or the table compares "
            "lengths instead of models; 256 = all-MiniLM-L6-v2's own); capped at the most the base encodes."
        },
    )
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate of the LoRA weights."})
    eval_steps: int = field(
        default=30, metadata={"help": "Dev evaluation (PubMedQA dev) every N steps, and at step 0; the best is kept."}
    )
    tasks: str = field(default="biosses,pubmedqa", metadata={"help": "Comma-separated evaluation tasks."})
    bf16: bool = field(
        default=False,
        metadata={"help": "bfloat16 autocast (fast on GPUs and AVX512-bf16 CPUs, several times slower on AVX2)."},
    )
    seed: int = field(default=0, metadata={"help": "Random seed (dataset mining, LoRA init, batches)."})
    skip_steps_done: bool = field(
        default=True, metadata={"help": "Reuse a dataset / run / results already complete in output_dir."}
    )
    training_config: str | None = field(
        default=None,
        metadata={
            "help": "A `biohicl train` config (YAML or JSON) to train instead of the short run, e.g. "
            "configs/biohicl_minilm.yaml (the recipe of the registry's BioHiCL-MiniLM: one pass with guarded "
            "selection, about 65 min on 2 CPU cores). Its output_dir and dataset_path become the demo's; the size "
            "options above (--base_model, --max_steps, --batch_size, --max_length, --learning_rate, --eval_steps, "
            "--bf16) are then the config's."
        },
    )

    def __post_init__(self) -> None:
        # 0 would train one step at learning rate 0 and report the base as BioHiCL, and the demo has no epochs option
        # for -1 to mean; with --training_config the config's max_steps is used, not this one
        if self.max_steps < 1 and self.training_config is None:
            raise ConfigError(f"max_steps: the demo trains at least 1 step, got {self.max_steps}")


def demo_paths(args: DemoArguments) -> tuple[Path, Path]:
    """``(dataset folder, run folder)`` under ``args.output_dir``."""
    out = Path(args.output_dir)
    return out / "mesh-pairs", out / "run"


def short_run_arguments(args: DemoArguments) -> BioHiCLTrainingArguments:
    """The demo's own run: ``args.max_steps`` LoRA steps selected on PubMedQA dev, step 0 (the base) a candidate."""
    from biohicl.training.args import BioHiCLTrainingArguments

    dataset_dir, run_dir = demo_paths(args)
    return BioHiCLTrainingArguments(
        output_dir=str(run_dir),
        base_model=args.base_model,
        dataset_path=str(dataset_dir),
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.learning_rate,
        bf16=args.bf16,
        seed=args.seed,
        logging_steps=5,
        # model selection on dev data (PubMedQA dev, never a test split); step 0, the base, is a candidate,
        # so the demo never ships a model below its base on dev
        eval_strategy="steps",
        eval_steps=args.eval_steps,
        save_strategy="steps",
        save_steps=args.eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        eval_tasks=["pubmedqa:dev"],
        selection_metrics=["pubmedqa-dev_recall@1", "pubmedqa-dev_recall@5"],
        report_to="none",
    )


def run_differences(run_dir: Path, training_args: BioHiCLTrainingArguments) -> list[str] | None:
    """Settings in which the run saved in ``run_dir`` differs from ``training_args`` (``[]``: the same run), compared
    as a resume compares them (:func:`~biohicl.training.run_settings.settings_differences`: paths by the folder they
    name, a setting the saved run predates by its default), or None when ``run_dir`` holds no finished run."""
    from biohicl.jsonio import read_json
    from biohicl.training.checkpoint import TRAINING_ARGS_JSON

    saved_file = run_dir / TRAINING_ARGS_JSON
    if not (run_dir / "adapter_model.safetensors").is_file() or not saved_file.is_file():
        return None
    return sorted(settings_differences(read_json(saved_file), training_args))


def clear_checkpoints(run_dir: Path) -> None:
    """Delete the ``checkpoint-N`` folders of an earlier run in ``run_dir`` (complete or not): ``--no_skip_steps_done``
    trains over it. Only numbered ones, the run's (:func:`~biohicl.training.checkpoint.numbered_checkpoints`), and
    no link: another folder named ``checkpoint-...`` (a copy kept aside) is not the run's to delete."""
    import shutil

    from biohicl.training.checkpoint import numbered_checkpoints

    for child in numbered_checkpoints(run_dir):
        if not child.is_symlink():
            logger.info("removing %s of the run trained over", child)
            shutil.rmtree(child)


def reusable_results(
    path: Path, model_id: str, max_length: int, tasks: Sequence[str], dtype: str
) -> dict[str, Any] | None:
    """The results record in ``path`` when it is of ``model_id`` at ``max_length`` tokens and ``dtype``, with a result
    for every one of ``tasks`` (task specs, ``pubmedqa:dev`` too), else None."""
    from biohicl.evaluation.runner import load_results
    from biohicl.evaluation.tasks import parse_task_spec, record_name

    if not path.is_file():
        return None
    record = load_results(path)
    settings = record.get("settings") or {}
    same = (
        (record.get("model") or {}).get("id") == model_id
        and settings.get("max_length") == max_length
        and settings.get("dtype") == dtype
        and all(record_name(*parse_task_spec(task)) in record["tasks"] for task in tasks)
    )
    return record if same else None


def run_demo(args: DemoArguments, training_args: BioHiCLTrainingArguments | None = None) -> str:
    """Run the four demo steps; returns the Markdown table. ``training_args`` (output_dir and dataset_path set to
    :func:`demo_paths`) replaces the short run; its ``base_model`` is the base of the table."""
    import torch

    from biohicl.atomic import atomic_write_text
    from biohicl.data.build import build_default_dataset
    from biohicl.data.storage import load_pair_dataset
    from biohicl.evaluation.encoder import DtypeEncoder
    from biohicl.evaluation.evaluator import evaluator_from_args
    from biohicl.evaluation.runner import evaluate_model, plan_tasks, save_results
    from biohicl.evaluation.tasks import names_dataset
    from biohicl.models.positions import fit_to_base
    from biohicl.study.execute import set_inference_length
    from biohicl.training.checkpoint import resolve_resume
    from biohicl.training.run import train_biohicl
    from biohicl.training.run_settings import check_fresh_run_folder

    start = time.time()
    out = Path(args.output_dir)
    dataset_dir, run_dir = demo_paths(args)
    training_args = training_args if training_args is not None else short_run_arguments(args)
    if (Path(training_args.output_dir), Path(training_args.dataset_path or "")) != (run_dir, dataset_dir):
        raise ConfigError(f"training_args: output_dir and dataset_path must be the demo's ({run_dir}, {dataset_dir})")
    base_model = training_args.base_model
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    dtype = torch.bfloat16 if args.bf16 else None
    dtype_name = "bfloat16" if args.bf16 else "float32"
    # the tasks' data is checked before the dataset build and the training (minutes to an hour), not after them; a
    # dataset task over the demo's own dataset (siml-agreement@<output_dir>/mesh-pairs[#mesh=FILE][:split]) is checked
    # once step 1 built it
    own = [t for t in tasks if names_dataset(t, dataset_dir)]
    if len(own) < len(tasks) or not tasks:
        plan_tasks([t for t in tasks if t not in own])

    _step(1, "MeSH-pair dataset from the MeSH-indexed abstracts")
    if args.skip_steps_done and (dataset_dir / "README.md").is_file():
        load_pair_dataset(dataset_dir)
        logger.info("reusing %s", dataset_dir)
    else:
        _, summary = build_default_dataset(dataset_dir, seed=args.seed)
        logger.info("%s", summary)

    batch = training_args.per_device_train_batch_size
    epochs = f"{training_args.num_train_epochs:g} epoch(s)"
    steps = f"{training_args.max_steps} steps" if training_args.max_steps > 0 else epochs
    _step(2, f"LoRA training of {base_model} ({steps} × {batch} documents)")
    differences = run_differences(run_dir, training_args) if args.skip_steps_done else None
    if differences:
        raise ConfigError(
            f"{run_dir} holds a run trained with other settings ({', '.join(differences[:6])}"
            f"{', ...' if len(differences) > 6 else ''}): give another --output_dir, or --no_skip_steps_done to "
            "train over it"
        )
    trained_now = differences is None
    if trained_now:
        if resolve_resume(training_args.resume_from_checkpoint, run_dir) is None:
            if not args.skip_steps_done:
                clear_checkpoints(run_dir)  # trained over, as asked: train_biohicl refuses another run's checkpoints
            # train_biohicl's own check, with the demo's options (it has no --resume_from_checkpoint)
            check_fresh_run_folder(training_args, remedy=DEMO_REMEDY)
        train_biohicl(training_args, evaluator=evaluator_from_args(training_args))
    else:
        logger.info("reusing %s", run_dir)
    # the saved model encodes as step 3 measures it, as a study's runs do: `biohicl publish` compares the two; a
    # length above what the base encodes is capped there, as BioHiCL.from_base caps it (else long texts would fail)
    eval_length = fit_to_base(base_model, args.eval_max_length)
    set_inference_length(run_dir, eval_length)

    _step(3, f"evaluation on {', '.join(tasks)}: base vs BioHiCL")
    records, loaders, base = [], dict(evaluation_models(base_model, run_dir, eval_length)), None
    for label, load in loaders.items():
        path = out / f"results_{label}.json"
        model_id = f"{base_model} ({label})"
        reuse = args.skip_steps_done and not (label == "biohicl" and trained_now)
        reused = reusable_results(path, model_id, eval_length, tasks, dtype_name) if reuse else None
        if reused is not None:
            records.append(reused)
            logger.info("reusing %s", path)
            continue
        checked, model = time.perf_counter(), load()
        # the base as loaded here, or again (seconds) when its record was reused; then released
        same = label == "biohicl" and same_model(base if base is not None else loaders["base"](), model)
        base = model if label == "base" else None
        if same:  # dev selection kept the base (step 0): encoding it again would give the base's numbers
            record = base_scores_record(records[0], model, model_id, time.perf_counter() - checked)
            logger.info("%s: %s; %s", model_id, SAME_WEIGHTS_NOTE, "its record is the base's, not encoded again")
        else:
            record = evaluate_model(
                DtypeEncoder(model, dtype),
                tasks,
                model_id=model_id,
                per_item=True,
                settings={"dtype": dtype_name, "max_length": model.config.max_length},
            )
        save_results(record, path)
        records.append(record)

    _step(4, "base vs BioHiCL")
    table = comparison_table(records)
    atomic_write_text(out / "results.md", table)
    logger.info("demo finished in %.1f min; outputs in %s/", (time.time() - start) / 60, out)
    return table


#: Why a tuned model's record holds its base's numbers (``settings.scores_note``).
SAME_WEIGHTS_NOTE = (
    "the merged weights are bit-identical to the base's (torch.equal on every tensor) and it encodes with the same "
    "settings, so its numbers are the base's"
)


def same_model(base: Any, tuned: Any) -> bool:
    """Whether ``tuned`` encodes exactly as ``base``: the same encoding settings (pooling, normalisation, max length,
    prompts), tokenizer vocabulary and lower-casing, and state dicts of the same names whose tensors are bit-identical
    (same dtype, :func:`torch.equal`). A run whose dev selection kept step 0 (LoRA's B still zero) is its base; a
    later step, or an adapter whose initialisation already changes the weights (a non-zero B), is not. False for
    anything but two torch modules: nothing to compare."""
    import torch

    from biohicl.models.config import ENCODING_SETTINGS

    if not (isinstance(base, torch.nn.Module) and isinstance(tuned, torch.nn.Module)):
        return False
    if any(getattr(base.config, key, None) != getattr(tuned.config, key, None) for key in ENCODING_SETTINGS):
        return False
    tokenizers = getattr(base, "tokenizer", None), getattr(tuned, "tokenizer", None)
    probe = "Metformin, Ménière's disease and HbA1c"
    if any(t is None for t in tokenizers) or len({str(t(probe)["input_ids"]) for t in tokenizers}) > 1:
        return False
    if tokenizers[0].get_vocab() != tokenizers[1].get_vocab():
        return False
    ours, theirs = base.state_dict(), tuned.state_dict()
    return ours.keys() == theirs.keys() and all(
        ours[name].dtype == theirs[name].dtype and torch.equal(ours[name], theirs[name]) for name in ours
    )


def base_scores_record(base_record: dict[str, Any], tuned: Any, model_id: str, seconds: float) -> dict[str, Any]:
    """The record of ``tuned`` when :func:`same_model` found it to be its base: the base's numbers (tasks with their
    per-item values, summary), settings and the versions that scored them, under the tuned model's ``model`` (its
    id, config and the weights files it was loaded from, as :func:`~biohicl.evaluation.runner.evaluate_model` records
    them, so ``biohicl publish`` checks it as the run's), ``settings.scores_of`` naming the record the numbers are
    from and ``settings.scores_note`` why; ``wall_time_s`` is the seconds the load and comparison took."""
    import copy
    import datetime

    from biohicl.evaluation.record_model import model_entry

    scores_of = (base_record.get("model") or {}).get("id")
    return copy.deepcopy(base_record) | {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": model_entry(tuned, model_id),
        "settings": {**base_record.get("settings", {}), "scores_of": scores_of, "scores_note": SAME_WEIGHTS_NOTE},
        "wall_time_s": seconds,
    }


def comparison_table(records: list[dict[str, Any]]) -> str:
    """Base and BioHiCL side by side, then each task's Δ with its paired-bootstrap interval over the test items (the
    tasks whose per-item values both records kept; results reused from before they were kept get the table only)."""
    from biohicl.evaluation.report import markdown_table
    from biohicl.evaluation.significance import compare_records, markdown_paired, tasks_with_item_values

    table = markdown_table(records, labels=["base", "BioHiCL (LoRA)"])
    if tasks := tasks_with_item_values(records):
        rows = compare_records(records[0], records[1:], tasks=tasks)
        table += "\nBioHiCL − base, with the interval the test set's size allows:\n\n" + markdown_paired(rows)
    return table


def evaluation_models(base_model: str, run_dir: Path, eval_max_length: int):
    """``(label, loader)`` for the base and the tuned model, both set to ``eval_max_length`` tokens per text: the
    tuned model would otherwise keep its (shorter) training length and the table would compare lengths."""
    from biohicl.models.model import BioHiCL

    def at_length(model):
        model.config.max_length = eval_max_length
        return model

    return [
        ("base", lambda: at_length(BioHiCL.from_base(base_model))),
        ("biohicl", lambda: at_length(BioHiCL.from_pretrained(run_dir, merge=True))),
    ]


def _step(number: int, title: str) -> None:
    logger.info("\n=== [%d/4] %s ===", number, title)

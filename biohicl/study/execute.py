"""Running the study: the dataset, each run (train or resume, then evaluate), run locks for several workers.

:func:`run_study` resumes by construction: a run whose ``eval.json`` exists is skipped, a finished training is only
evaluated, an interrupted one resumes from its last complete checkpoint. Workers (``biohicl reproduce --workers``)
share one study through per-run file locks; each run is done by exactly one of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biohicl.atomic import atomic_write_json, atomic_write_text
from biohicl.data.storage import read_build_summary
from biohicl.errors import ConfigError, DataError
from biohicl.jsonio import read_json
from biohicl.study.cards import write_cards
from biohicl.study.config import ModelSpec, ReproduceConfig, training_arguments
from biohicl.study.dev_pick import read_training_summaries
from biohicl.study.locks import LOCK_NAME as LOCK_NAME  # re-exported: the lock file a run folder may hold
from biohicl.study.locks import acquire_run_lock, release_run_lock
from biohicl.study.locks import run_locks_available as run_locks_available  # re-exported: reproduce --workers asks
from biohicl.study.plan import (
    BASE,
    EVAL_NAME,
    PlannedRun,
    RunKey,
    check_runs_before_build,
    describe_plan,
    lacking,
    missing_tasks,
    plan_study,
    read_eval_record,
    run_label,
)
from biohicl.study.report import write_results
from biohicl.study.reuse import check_reused_dataset, evaluation_length
from biohicl.study.run_checks import check_eval_device
from biohicl.study.stats import aggregate

if TYPE_CHECKING:
    import torch

    from biohicl.models.model import BioHiCL
    from biohicl.training.args import BioHiCLTrainingArguments

logger = logging.getLogger(__name__)

GIB = 1 << 30
#: The ``eval.json`` key of a trained run's peak GPU memory in training, bytes (absent when it trained without CUDA).
PEAK_KEY = "training_peak_gpu_memory_bytes"


def resolve_files(files: Iterable[str]) -> list[Path]:
    """Corpus files: as given when they exist, else relative to ``BIOHICL_DATA_DIR``."""
    from biohicl.settings import data_path

    resolved = []
    for name in files:
        path = Path(name).expanduser()
        resolved.append(path if path.exists() else data_path(*Path(name).parts))
    return resolved


def prepare_dataset(config: ReproduceConfig, progress: bool = True, build: bool = True) -> tuple[Path, dict[str, Any]]:
    """Reuse the dataset folder when it holds a build, else build it there (``build=False``, a report: an empty
    summary, nothing built); returns (folder, summary)."""
    from biohicl.data.build import build_dataset_from_files, default_inputs

    spec = config.dataset
    folder = Path(spec.path) if spec.path else Path(config.output_dir) / "dataset"
    if (folder / "documents").is_dir() and (folder / "pairs").is_dir():
        summary = read_build_summary(folder) or {}
        check_reused_dataset(config)  # a build of other settings at the config's path is not the config's dataset
        logger.info("reusing the MeSH-pair dataset in %s", folder)
        return folder, summary
    if not build:
        return folder, {}
    check_runs_before_build(config)  # a run the build could not match is refused now, not after minutes of building
    if spec.inputs is None:
        inputs = default_inputs(mentions=spec.mix_label_kinds)  # as build-dataset --mix_label_kinds: BC5CDR too
    else:
        inputs = []
        for i, item in enumerate(spec.inputs):
            if not isinstance(item, Mapping) or "source" not in item or "files" not in item:
                raise ConfigError(f"dataset.inputs[{i}]: expected {{source: ..., files: [...]}}")
            inputs.append((str(item["source"]), resolve_files(item["files"])))
    _, built = build_dataset_from_files(
        inputs, folder, top_k=spec.top_k, seed=spec.seed, limit=spec.limit, exclude_test=spec.exclude_test,
        mix_label_kinds=spec.mix_label_kinds, decontaminate=spec.decontaminate, progress=progress,
    )  # fmt: skip
    return folder, built.to_dict()


def load_base(model: ModelSpec) -> BioHiCL:
    """The untrained base encoder with the study's pooling, prompts and evaluation length (capped at the base's
    positions, as :func:`~biohicl.study.reuse.evaluation_length` says)."""
    from biohicl.models.model import BioHiCL

    encoder = BioHiCL.from_base(
        model.model, pooling=model.pooling, max_length=model.eval_max_length or model.max_length,
        query_prompt=model.query_prompt, document_prompt=model.document_prompt, hub_id=model.hub_id,
    )  # fmt: skip
    if length := evaluation_length(model):
        encoder.config.max_length = length
    return encoder


def load_trained(model: ModelSpec, run_dir: Path) -> BioHiCL:
    """A trained run reloaded from its saved folder (the artefact users get), at the evaluation length (capped)."""
    from biohicl.models.model import BioHiCL

    encoder = BioHiCL.from_pretrained(run_dir, base_model_path=model.model)
    if length := evaluation_length(model):
        encoder.config.max_length = length
    return encoder


def evaluate_encoder(
    config: ReproduceConfig,
    model: ModelSpec,
    encoder: BioHiCL,
    label: str,
    output: Path,
    variant: str | None = None,
    previous: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate ``encoder`` on the run's tasks (those ``previous`` lacks, when given) and write ``output``
    atomically (what marks the run done); a ``previous`` record is extended, never overwritten. ``extra``: keys
    written into the record beside the evaluation's (a run's training peak GPU memory). A task with a NaN metric (a
    collapsed model) or data the harness refuses is a one-line :class:`DataError` naming the run (``label``), and
    ``output`` is not written: the run is not done."""
    import torch

    from biohicl.evaluation.runner import evaluate_model

    device = resolve_eval_device(config.eval_device)
    bf16 = config.eval_dtype == "bfloat16"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    tasks = config.model_tasks(model, variant)
    if previous is not None:
        tasks = missing_tasks(previous, tasks, config.target_tasks())
    encoder.to(device)
    encoder.eval()
    try:
        with autocast:
            record = evaluate_model(
                encoder,
                tasks,
                model_id=label,
                batch_size=config.eval_batch_size,
                limit_queries=config.limit_queries,
                show_progress_bar=False,
                per_item=True,  # the report's paired intervals over the test items (stats.paired_rows)
                settings={"dtype": config.eval_dtype, "max_length": encoder.config.max_length, "device": device.type},
                require_finite=True,  # a collapsed model's NaN stops at its task: eval.json holds numbers only
            )
    except DataError as err:  # a NaN metric, NaN embeddings or bad task data: one line naming the run
        raise DataError(f"{label}: {err}; nothing was written to {output.name}") from None
    if previous is not None:
        earlier, now = previous.get("settings") or {}, record["settings"]
        if differ := {k: (earlier[k], now[k]) for k in earlier.keys() & now.keys() if earlier[k] != now[k]}:
            # a key one record lacks (recorded by newer code only) is no difference
            logger.warning("%s: settings differ from the earlier evaluation (%s)", label, differ)
        merged = dict(previous)
        merged["tasks"] = {**previous["tasks"], **record["tasks"]}
        merged["summary"] = {**previous["summary"], **record["summary"]}
        merged["wall_time_s"] = previous.get("wall_time_s", 0.0) + record["wall_time_s"]
        merged.setdefault("added", []).append(  # what the added tasks ran with, beside the record's first settings
            {k: record[k] for k in ("created", "settings", "versions") if k in record}
            | {"tasks": list(record["tasks"])}
        )
        record = merged
    record.update(extra or {})
    atomic_write_json(output, record)
    return record


def resolve_eval_device(name: str = "auto") -> torch.device:
    """The ``torch.device`` evaluation encodes on: ``auto`` is the GPU when CUDA sees one, else the CPU."""
    import torch

    check_eval_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"eval_device: {name!r} asked for, but CUDA sees no GPU on this machine")
    return torch.device(name)


def train_run(args: BioHiCLTrainingArguments) -> Path:
    """Train one run (resuming from its last complete checkpoint); returns its folder."""
    from biohicl.evaluation.evaluator import evaluator_from_args
    from biohicl.study.config import study_selection_notice  # its keys in the line of a run that keeps its last step
    from biohicl.training.run import train_biohicl

    return train_biohicl(args, evaluator=evaluator_from_args(args), selection_notice=study_selection_notice)


def evaluate_step0_once(config: ReproduceConfig, dataset_path: Path) -> int:
    """Evaluate step 0 of every run still to train into the study's evaluation cache, once per distinct base model
    and evaluation, before ``--workers`` start; returns how many such evaluations there were (made or read back).

    Workers that start together would each evaluate the same base at step 0 (LoRA starts as its base), since the
    cache helps only a run that starts after one has written it. Each model is built as its run builds it (seed,
    LoRA, the trainer's device), so the run's step 0 finds this evaluation under its key (a miss only costs time).
    """
    import gc

    from transformers import set_seed

    from biohicl.evaluation.cache import evaluation_key
    from biohicl.evaluation.evaluator import evaluator_from_args
    from biohicl.training.run import build_model

    specs = {m.name: m for m in config.models}
    keys: set[str] = set()
    for run in plan_study(config):
        if run.status != "train":  # a resumed run evaluated its step 0 before it was interrupted
            continue
        args = training_arguments(config, specs[run.model], run.variant, run.seed, dataset_path, run.run_dir)
        evaluator = evaluator_from_args(args)
        if not args.eval_on_start or evaluator is None or not evaluator.cache_dir:
            continue
        set_seed(args.seed)  # as train_biohicl does before it builds the model
        model = build_model(args).to(args.device)
        model.eval()
        key = evaluation_key(model, evaluator.tasks, evaluator.max_queries)
        if key not in keys:
            keys.add(key)
            logger.info("step 0 of %s (and the runs sharing its base): once for all workers", run.label)
            evaluator(model)  # made and stored, or read back (the evaluator logs which)
        del model
        gc.collect()
    release_cached_gpu_memory()
    return len(keys)


def release_cached_gpu_memory() -> None:
    """Hand the caching allocator's free blocks back to the GPU (when this process has a CUDA context): the parent of
    ``--workers`` keeps them otherwise after its step-0 pre-pass, and its workers share the same GPU."""
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def train_and_measure(args: BioHiCLTrainingArguments, label: str) -> int | None:
    """Train one run (:func:`train_run`); returns the peak GPU memory the process allocated while it trained, in
    bytes (its in-training evaluations included; None when it used no CUDA). Out of GPU memory, the peak and what
    the GPU had free are logged before the error goes on."""
    import torch

    if torch.cuda.is_initialized():  # an earlier run or evaluation of this worker set its own peak
        torch.cuda.reset_peak_memory_stats()
    try:
        train_run(args)
    except torch.cuda.OutOfMemoryError:
        free, total = torch.cuda.mem_get_info()
        logger.error(
            "%s: out of GPU memory in training: peak %.2f GiB allocated by this process; %.2f GiB of %.2f GiB free "
            "(fewer workers share the GPU with reproduce --workers)",
            label, torch.cuda.max_memory_allocated() / GIB, free / GIB, total / GIB,
        )  # fmt: skip
        raise
    if not torch.cuda.is_initialized():
        return None
    peak = int(torch.cuda.max_memory_allocated())
    logger.info("%s: peak GPU memory in training %.2f GiB", label, peak / GIB)
    return peak


def set_inference_length(run_dir: Path, max_length: int | None) -> None:
    """Record the evaluation length as the saved encoder's default (``biohicl_config.json`` ``max_length``), so the
    published model encodes as it was evaluated even when it was trained on shorter inputs."""
    from biohicl.models.config import CONFIG_NAME

    path = run_dir / CONFIG_NAME
    if max_length is None or not path.is_file():
        return
    values = read_json(path)
    if not isinstance(values, dict):
        raise DataError("expected a JSON object (the encoder's settings)", path)
    if values.get("max_length") != max_length:
        values["max_length"] = max_length
        atomic_write_text(path, json.dumps(values, indent=2) + "\n")


def remove_checkpoints(run_dir: Path) -> None:
    """Delete the run's ``checkpoint-N`` folders (the saved model stays)."""
    for child in run_dir.glob("checkpoint-*"):
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)


def _refresh(config: ReproduceConfig, run: PlannedRun) -> PlannedRun:
    """The run's status now (another worker may have finished it since the plan was made)."""
    for fresh in plan_study(config):
        if fresh.key == run.key:
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

    ``study_config.json`` is written once the dataset and the plan passed their checks (a refused config leaves
    the earlier one). ``report_only``: train, evaluate and build nothing, nor rewrite ``study_config.json``; tabulate
    the runs already evaluated (the rest are listed as ``missing`` in the results).
    """
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset_path, dataset_summary = prepare_dataset(config, progress=progress, build=not report_only)
    runs = plan_study(config)
    # written once the dataset and the plan passed their checks: a refused config leaves the study's as it was, as
    # does a report (of an --only/--seeds selection, say)
    if not report_only:
        atomic_write_json(out / "study_config.json", config.to_dict())
    logger.info("study plan:\n%s", describe_plan(runs))
    specs = {m.name: m for m in config.models}
    records: dict[RunKey, dict[str, Any]] = {}
    elsewhere: list[str] = []
    # a report's runs with no eval.json are missing; those with one lacking tasks or per-item values are tabulated
    missing = [r.label for r in runs if r.status not in ("done", "add_tasks")] if report_only else []
    incomplete = {r.label: lacking(config, r) for r in runs if r.status == "add_tasks"} if report_only else {}
    for i, run in enumerate(runs, start=1):
        model = specs[run.model]
        start = time.time()
        if report_only and run.status != "done":
            continue
        locked = run.status != "done"
        if locked:
            if not acquire_run_lock(run.run_dir):
                logger.info("[%d/%d] %s: another worker is on it, skipped", i, len(runs), run.label)
                elsewhere.append(run.label)
                continue
            run = _refresh(config, run)
        try:
            record = _execute(config, model, run, i, len(runs), dataset_path)
        finally:
            if locked:
                release_run_lock(run.run_dir)
        records[run.key] = record
        if run.status != "done":
            shown = ", ".join(f"{k}={v:.4f}" for k, v in record["summary"].items())
            logger.info("[%d/%d] %s: done in %.0f s (%s)", i, len(runs), run.label, time.time() - start, shown)
    # runs other workers were on when this one passed them: pick up what they have finished since
    for run in plan_study(config):
        if run.key not in records and run.status in ("done", "add_tasks") and (run.run_dir / EVAL_NAME).is_file():
            records[run.key] = read_eval_record(run.run_dir / EVAL_NAME)
    finished = {run_label(key) for key in records}
    unfinished = [label for label in elsewhere if label not in finished]
    if unfinished:
        logger.info("still running in another worker (not in these results): %s", ", ".join(unfinished))
    summaries = read_training_summaries(config) if config.pick_variant_on_dev else None
    results = aggregate(config, records, dataset_summary, summaries)
    results["missing"] = list(dict.fromkeys(missing + unfinished))
    results["incomplete"] = incomplete
    write_cards(config, runs, records, results)
    write_results(config, results, write_plots=write_plots)
    return results


def _execute(
    config: ReproduceConfig, model: ModelSpec, run: PlannedRun, i: int, total: int, dataset_path: Path
) -> dict[str, Any]:
    """Do what ``run.status`` says (skip / evaluate / train or resume, then evaluate); returns the eval record."""
    eval_file = run.run_dir / EVAL_NAME
    peak: int | None = None
    if run.variant != BASE and run.status in ("done", "add_tasks", "evaluate"):
        set_inference_length(run.run_dir, evaluation_length(model))
    if run.status == "done":
        logger.info("[%d/%d] %s: already evaluated, skipped", i, total, run.label)
        return read_eval_record(eval_file)
    logger.info("[%d/%d] %s: %s", i, total, run.label, run.status)
    if run.variant == BASE:
        encoder = load_base(model)
        label = f"{model.name} (untrained)"
    else:
        if run.status in ("train", "resume"):
            args = training_arguments(config, model, run.variant, run.seed, dataset_path, run.run_dir)
            peak = train_and_measure(args, run.label)
            set_inference_length(run.run_dir, evaluation_length(model))
        if not config.keep_checkpoints and run.status != "add_tasks":
            remove_checkpoints(run.run_dir)
        encoder = load_trained(model, run.run_dir)
        label = f"{model.name}/{run.variant}/seed{run.seed}"
    variant = None if run.variant == BASE else run.variant
    previous = read_eval_record(eval_file) if run.status == "add_tasks" else None
    extra = {PEAK_KEY: peak} if peak is not None else None
    return evaluate_encoder(config, model, encoder, label, eval_file, variant, previous, extra)

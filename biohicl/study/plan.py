"""The study's plan: every run (per model: the untrained base, then each variant's seeds), its folder and status.

A run's status says what :func:`~biohicl.study.execute.run_study` still has to do: ``done`` (evaluated),
``add_tasks`` (its ``eval.json`` lacks tasks added to the config later, a task's main metric in its ``summary``, or
the per-item values of a task the targets name), ``evaluate``
(trained), ``resume`` (a complete checkpoint) or ``train`` (nothing yet). :func:`describe_plan` is the ``--dry_run``
view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biohicl.errors import ConfigError, DataError
from biohicl.field_types import is_number
from biohicl.jsonio import read_json
from biohicl.study.config import ModelSpec, ReproduceConfig, changed_settings
from biohicl.study.reuse import check_build, check_dataset, check_evaluated, check_reused_dataset

#: The untrained base's variant name (seed None).
BASE = "base"
#: A run's evaluation record; its presence marks the run done.
EVAL_NAME = "eval.json"
#: Written by training when it finished.
TRAINING_DONE_NAME = "training_summary.json"

#: ``(model, variant, seed)``: a run's identity (the base: seed None).
RunKey = tuple[str, str, int | None]
#: A run's evaluation record (``eval.json``) by run.
Records = Mapping[RunKey, Mapping[str, Any]]


@dataclass
class PlannedRun:
    """One (model, variant, seed) training run, or the model's untrained base (variant ``base``, seed None)."""

    model: str
    variant: str
    seed: int | None
    run_dir: Path
    status: str  # "done", "add_tasks", "evaluate", "resume" or "train" (see the module docstring)

    @property
    def key(self) -> RunKey:
        """``(model, variant, seed)``: how records and results index the run."""
        return (self.model, self.variant, self.seed)

    @property
    def label(self) -> str:
        return run_label(self.key)


def run_label(key: RunKey) -> str:
    """``model/variant/seed<k>`` (the base: ``model/base``), as progress lines and results name a run."""
    model, variant, seed = key
    return f"{model}/{variant}" if seed is None else f"{model}/{variant}/seed{seed}"


def run_dir_for(config: ReproduceConfig, model: str, variant: str, seed: int | None) -> Path:
    """``<output_dir>/<model>/base`` or ``<output_dir>/<model>/<variant>/seed<k>``."""
    root = Path(config.output_dir) / model
    return root / BASE if variant == BASE else root / variant / f"seed{seed}"


def plan_study(config: ReproduceConfig) -> list[PlannedRun]:
    """Every run of the study in execution order (per model: base, then each variant's seeds), with its status.

    A run whose ``eval.json`` lacks some of its tasks (tasks added to the config later), a task's main metric in its
    ``summary`` (a damaged or crafted record), or the per-item values of a task the targets name (evaluated before the
    study kept them), gets status ``add_tasks``: only those tasks are evaluated and merged into the record.
    """
    from biohicl.training.checkpoint import last_complete_checkpoint

    check_reused_dataset(config)  # the study's dataset first: under --dry_run too, before any run is compared with it
    runs, items = [], config.target_tasks()
    for model in config.models:
        base_dir = run_dir_for(config, model.name, BASE, None)
        status, record = _eval_status(base_dir, config.model_tasks(model), items)
        if record is not None:
            check_evaluated(config, model, None, base_dir, record)
        runs.append(PlannedRun(model.name, BASE, None, base_dir, status or "evaluate"))
        for variant in config.model_variants(model):
            for seed in config.run_seeds(model, variant):
                folder = run_dir_for(config, model.name, variant, seed)
                status, record = _eval_status(folder, config.model_tasks(model, variant), items)
                if status is None:
                    if (folder / TRAINING_DONE_NAME).is_file():
                        status = "evaluate"
                    elif last_complete_checkpoint(folder) is not None:
                        status = "resume"
                    else:
                        status = "train"
                if status != "train":
                    _check_settings(config, model, variant, folder, last_complete_checkpoint(folder))
                if record is not None:
                    check_evaluated(config, model, variant, folder, record)
                runs.append(PlannedRun(model.name, variant, seed, folder, status))
    return runs


def check_runs_before_build(config: ReproduceConfig) -> None:
    """Before the config's dataset is built: a :class:`ConfigError` for the first run trained (or started) on a
    dataset here that the build cannot match (:func:`~biohicl.study.reuse.check_build`), which :func:`plan_study`
    would refuse only after the build."""
    from biohicl.training.checkpoint import last_complete_checkpoint

    for model in config.models:
        for variant in config.model_variants(model):
            for seed in config.run_seeds(model, variant):
                folder = run_dir_for(config, model.name, variant, seed)
                if folder.is_dir():
                    check_build(config, folder, _saved_args(folder, last_complete_checkpoint(folder)))


def _saved_args(folder: Path, checkpoint: Path | None) -> dict[str, Any] | None:
    """The training arguments the run in ``folder`` saved (its last complete ``checkpoint`` before it finished)."""
    from biohicl.training.checkpoint import TRAINING_ARGS_JSON

    saved = next((p for p in (folder, checkpoint) if p is not None and (p / TRAINING_ARGS_JSON).is_file()), None)
    args = read_json(saved / TRAINING_ARGS_JSON) if saved is not None else None
    return args if isinstance(args, dict) else None


def _check_settings(
    config: ReproduceConfig, model: ModelSpec, variant: str, folder: Path, checkpoint: Path | None
) -> None:
    """A :class:`ConfigError` when the run in ``folder`` was trained (or started) with other settings than the
    config now gives it: its results would be reported as the config's, or its training resumed under others."""
    args = _saved_args(folder, checkpoint)
    check_dataset(config, folder, args)
    if args is None:
        return
    # a run saves its tokens masked (``<HUB_TOKEN>``): they match any token, are not what it trained, never shown
    changed = changed_settings(config, model, variant, args)
    changed = {name: values for name, values in changed.items() if not name.endswith("_token")}
    if changed:
        shown = ", ".join(f"{name} {old!r} → {new!r}" for name, (old, new) in list(changed.items())[:3])
        raise ConfigError(
            f"{folder}: trained with other settings than the config gives {model.name}/{variant} now ({shown}"
            f"{', …' if len(changed) > 3 else ''}); restore the config, or move the run away to train it again"
        )


def missing_tasks(record: Mapping[str, Any], tasks: Sequence[str], item_tasks: Sequence[str] = ()) -> list[str]:
    """The task specs of ``tasks`` that ``record`` (an ``eval.json``) has no result for (name and split), whose
    result is of another dataset than a dataset task names now (``siml-agreement@runs/x``: its documents files'
    checksums), whose main metric its ``summary`` lacks, or, for the tasks named in ``item_tasks``, a result evaluated
    before the study kept per-item values."""
    return [spec for spec in tasks if _lacks(record, spec, item_tasks)]


def lacking(config: ReproduceConfig, run: PlannedRun) -> list[str]:
    """What an ``add_tasks`` run's ``eval.json`` lacks: each task spec it has no result for (or one of another split
    or dataset), then ``<spec> main metric (<summary key>)`` for a result whose main metric the record's ``summary``
    lacks, then ``<spec> per-item values`` for a task the targets name that it holds without them."""
    model = next(m for m in config.models if m.name == run.model)
    tasks = config.model_tasks(model) if run.variant == BASE else config.model_tasks(model, run.variant)
    record = read_eval_record(run.run_dir / EVAL_NAME)
    found = [lack for spec in tasks for lack in _lacks(record, spec, config.target_tasks())]
    return [text for kind in range(3) for lacked, text in found if lacked == kind]


def _lacks(record: Mapping[str, Any], spec: str, item_tasks: Sequence[str]) -> list[tuple[int, str]]:
    """What ``record`` lacks of the task ``spec``, as ``(kind, text)``: ``(0, spec)`` its result (none, or of another
    split or dataset); else ``(1, "<spec> main metric (<key>)")`` when ``summary`` lacks the result's main metric
    where the task reports it, and ``(2, "<spec> per-item values")`` for a task of ``item_tasks`` without them."""
    from biohicl.evaluation.results import summary_key
    from biohicl.evaluation.tasks import dataset_files, default_split, parse_task_spec, record_name, summary_keys

    name, split = parse_task_spec(spec)
    task = record_name(name, split)
    result = record.get("tasks", {}).get(task)
    if (
        result is None
        or result.get("split") != (split or default_split(name))  # `scifact` is test: a train result is not it
        or _of_another_dataset(result, dataset_files(name))
    ):
        return [(0, spec)]
    found = []
    main = result.get("main_metric")
    key = summary_key(task, main) if isinstance(main, str) else None
    # a task that does not report its main metric (registered so) never has it in the summary: not lacking
    if key in summary_keys(name, split) and key not in record.get("summary", {}):
        found.append((1, f"{spec} main metric ({key})"))
    if task in item_tasks and "per_item" not in result:
        found.append((2, f"{spec} per-item values"))
    return found


def _of_another_dataset(result: Mapping[str, Any], files: Mapping[str, str] | None) -> bool:
    """Whether a dataset task's ``result`` read other files than the task's dataset holds now (``files``)."""
    return files is not None and "data_files" in result and result["data_files"] != files


def _eval_status(
    folder: Path, tasks: Sequence[str], item_tasks: Sequence[str]
) -> tuple[str | None, dict[str, Any] | None]:
    """(``done`` / ``add_tasks``, the record) when the run has an ``eval.json``, read once; else (None, None): its
    training decides."""
    path = folder / EVAL_NAME
    if not path.is_file():
        return None, None
    record = read_eval_record(path)
    return ("add_tasks" if missing_tasks(record, tasks, item_tasks) else "done"), record


def read_eval_record(path: Path) -> dict[str, Any]:
    """A run's ``eval.json``, its shape checked once for what the study reads of it: a JSON object whose ``tasks``
    map each task to its result (an object naming its ``main_metric``; its ``metrics``, ``per_item``, ``data_files``
    objects), whose ``summary`` maps metrics to numbers (``null``, an undefined score, read as NaN), ``versions``,
    ``settings`` and ``model`` objects, ``added`` a list of objects (each one's ``versions`` an object),
    ``wall_time_s`` a number. A :class:`DataError` naming the file (and the field: ``FILE: tasks.biosses: expected
    …``) otherwise."""
    record = read_json(path)

    def expect(ok: bool, field: str, what: str, value: Any) -> None:
        if not ok:
            raise DataError(f"{field}{': ' if field else ''}expected {what}, got {_json_kind(value)}", path)

    expect(isinstance(record, dict), "", "a JSON object (an evaluation record)", record)
    tasks, summary = record.get("tasks"), record.get("summary")
    expect(isinstance(tasks, dict), "tasks", "an object of task results", tasks)
    for task, result in tasks.items():
        expect(isinstance(result, dict), f"tasks.{task}", "an object (the task's result)", result)
        metric = result.get("main_metric")
        expect(isinstance(metric, str), f"tasks.{task}.main_metric", "a metric name", metric)
        for part in ("metrics", "per_item", "data_files"):  # read as mappings by the report's tables and intervals
            expect(isinstance(result.get(part) or {}, dict), f"tasks.{task}.{part}", "an object", result.get(part))
    expect(isinstance(summary, dict), "summary", "an object of metric values", summary)
    for metric, value in summary.items():
        if value is None:  # an undefined score (a collapsed model's NaN Spearman), written as null by strict JSON
            summary[metric] = math.nan
            continue
        expect(is_number(value), f"summary.{metric}", "a number", value)
    expect(is_number(record.get("wall_time_s", 0.0)), "wall_time_s", "a number", record.get("wall_time_s"))
    for part in ("versions", "settings", "model"):
        expect(isinstance(record.get(part) or {}, dict), part, "an object", record.get(part))
    added = record.get("added", [])
    expect(isinstance(added, list), "added", "a list of objects", added)
    for i, entry in enumerate(added):
        expect(isinstance(entry, dict), f"added[{i}]", "an object", entry)
        expect(
            isinstance(entry.get("versions") or {}, dict), f"added[{i}].versions", "an object", entry.get("versions")
        )
    return record


def _json_kind(value: Any) -> str:
    """What a JSON value is, as an error names it (``a list``, ``a string``; an absent field: ``null or nothing``)."""
    if value is None:
        return "null or nothing"
    kinds = {bool: "true/false", dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def describe_plan(runs: Sequence[PlannedRun]) -> str:
    """One line per run: what :func:`~biohicl.study.execute.run_study` would do with it."""
    actions = {
        "done": "skip (evaluated)",
        "add_tasks": "evaluate the tasks (or per-item values) its eval.json lacks",
        "evaluate": "evaluate",
        "resume": "resume training from checkpoint, evaluate",
        "train": "train, evaluate",
    }
    lines = []
    for run in runs:
        what = actions[run.status] if run.variant != BASE or run.status != "evaluate" else "evaluate untrained base"
        lines.append(f"{run.model:>10}  {run.variant:<16} {'' if run.seed is None else run.seed!s:>4}  {what}")
    return "\n".join(lines)

"""``evaluate_model``: run several tasks on one encoder and return one JSON-ready record.

The record holds every metric, the model id and revision (and its weights files' sha256 when it was loaded from a
folder), the sha256 of each data file read, the library versions, the settings and the wall time, so a number in
``docs/results.md`` can be traced back to its run. Whether two records compare: :mod:`biohicl.evaluation.comparison`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import platform
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from biohicl.atomic import atomic_write_json
from biohicl.errors import ConfigError, DataError
from biohicl.evaluation.comparison import cut_by_cap
from biohicl.evaluation.encoder import Encoder, as_encoder
from biohicl.evaluation.record_model import library_versions, loaded_weights, model_entry, model_settings
from biohicl.evaluation.results import AGREEMENT_TASK, RESULTS_FORMAT, summary_key
from biohicl.evaluation.retrieval import DocumentIndex, NonFiniteEmbeddings
from biohicl.evaluation.tasks import (
    check_task,
    get_task,
    is_retrieval_task,
    parse_task_spec,
    record_name,
    reported_metrics,
    summary_keys,
)
from biohicl.field_types import check_count, is_number
from biohicl.jsonio import nan_for_null, read_json

logger = logging.getLogger(__name__)


def split_scope(tasks: Iterable[str], split: str | None) -> tuple[list[str], list[str]]:
    """The record names of the tasks ``split`` (the default split of the BEIR tasks) applies to, those given
    without ``:split`` that are BEIR tasks, and the specs of those it does not apply to (``pubmedqa``,
    ``scifact:train``); both empty when no split is given."""
    if split is None:
        return [], []
    applies, not_applied = [], []
    for spec in (t.strip() for t in tasks if t.strip()):
        name, own = parse_task_spec(spec)
        if own is None and is_retrieval_task(name):
            applies.append(record_name(name, split))
        else:
            not_applied.append(spec)
    return applies, not_applied


def check_split_applies(tasks: Iterable[str], split: str | None, option: str = "split") -> None:
    """A :class:`ConfigError` naming ``option`` when ``split`` applies to none of ``tasks`` (:func:`split_scope`):
    ``biohicl evaluate --split dev --tasks pubmedqa,biosses`` would score PubMedQA's test split."""
    applies, not_applied = split_scope(tasks, split)
    if split is not None and not_applied and not applies:
        raise ConfigError(
            f"{option}: {split} is the split of the BEIR tasks given without one, and none of "
            f"{', '.join(not_applied)} is one; give a task's own split in its spec instead (pubmedqa:dev)"
        )


def plan_tasks(tasks: Iterable[str], split: str | None = None) -> list[tuple[str, str | None]]:
    """``[(task, split)]`` for task specs, after checking every task's data exists (before any slow encoding); a task
    given again with the same split is left out (``biosses,biosses`` evaluates BIOSSES once)."""
    if split is not None and not split.strip():  # "split:  is the split of ..." otherwise
        raise ConfigError("split: empty; give a split name (test, dev, train) or leave it out (test)")
    plan = []
    for spec in (t for t in tasks if t.strip()):
        name, task_split = parse_task_spec(spec)
        task_split = task_split or (split if is_retrieval_task(name) else None)
        if (name, task_split) in plan:  # `biosses,biosses`: evaluated once, where first given
            continue
        check_task(name, task_split)
        plan.append((name, task_split))
    if not plan:
        raise ConfigError("tasks: no task given")
    filed: dict[str, str] = {}
    for name, task_split in plan:
        spec, key = name + (f":{task_split}" if task_split else ""), record_name(name, task_split)
        if (other := filed.setdefault(key, spec)) != spec:
            raise ConfigError(
                f"tasks: {other} and {spec} would be filed under the same key ({key!r}) and one would overwrite the "
                "other; evaluate them in separate runs"
            )
    return plan


def planned_summary_keys(tasks: Iterable[str], split: str | None = None) -> list[str]:
    """The ``summary`` keys :func:`evaluate_model` will give for ``tasks`` (``pubmedqa-dev/recall@1`` ...), after
    the same data checks and without encoding anything: what a selection metric can be checked against."""
    return [key for name, task_split in plan_tasks(tasks, split) for key in summary_keys(name, task_split)]


def evaluate_model(
    model: Encoder,
    tasks: Iterable[str],
    *,
    model_id: str | None = None,
    revision: str | None = None,
    batch_size: int = 32,
    split: str | None = None,
    limit_queries: int | None = None,
    show_progress_bar: bool | None = None,
    settings: dict[str, Any] | None = None,
    document_index: DocumentIndex | None = None,
    per_item: bool = False,
    on_incomplete: Callable[[dict[str, Any]], Any] | None = None,
    require_finite: bool = False,
    warn_nan: bool = True,
) -> dict[str, Any]:
    """Run ``tasks`` (names, ``name:split`` or BEIR folder paths) and return the results record.

    ``split`` is the default split of retrieval (BEIR) tasks; a ``name:split`` spec overrides it for that task. It
    applies to no other task: one that leaves some out logs one line naming them, and ``settings.split`` holds it
    only where it applied (``biohicl evaluate`` refuses one that applies to none: :func:`check_split_applies`).
    ``limit_queries`` keeps the first N queries of retrieval tasks (the record says so).
    The record's ``settings`` hold the model's max length, prompts and device (:func:`model_settings`) where
    ``settings`` (the caller's, which win) does not give them; its ``model.weights_sha256`` the sha256 of the weights
    files of the folder the model was loaded from (:func:`~biohicl.models.signature.loaded_folder`), its
    ``model.weights_files`` their names (``adapter_model.safetensors`` for an adapter folder, also loaded with
    ``merge=True``, so publish can compare a merged load with the adapter), and its ``model.source`` how it was
    loaded (:func:`~biohicl.evaluation.record_model.loaded_source`), all left out for a model built in memory.
    ``document_index`` (precomputed document embeddings of its corpus, e.g. a ``biohicl index`` folder of the same
    model: ``biohicl.search.documents.IndexDocuments``) serves the one retrieval task's documents, so only its
    queries are encoded. ``per_item`` keeps what each query or pair gave (:attr:`TaskResult.per_item`) in the record,
    for a paired test against another model (:mod:`biohicl.evaluation.significance`).
    ``on_incomplete(record)``: called when a task fails (or is interrupted) after others finished, with their record
    and ``incomplete`` (``failed``: that task's spec, ``error``: the first line of its error, ``not_run``: the specs
    after it), before the error goes on: ``biohicl evaluate`` saves it (:func:`incomplete_path`).
    ``require_finite``: a task with a NaN metric (a collapsed model) is the failed task, right after it ran, with a
    :class:`DataError` (:func:`nan_message`); without it the task is kept with one warning (an info line with
    ``warn_nan=False``: training's evaluator, whose trainer warns naming the step and the metrics).
    A retrieval task whose encoder returned NaN or inf embeddings fails with a
    :class:`~biohicl.evaluation.retrieval.NonFiniteEmbeddings` whose message starts with the task's record name and
    whose ``finished`` is the record ``on_incomplete`` gets (given or not, tasks finished or not), so a caller that
    scores that task NaN (training's evaluator) runs only the tasks in ``not_run``.
    """
    import torch

    model = as_encoder(model)  # a SentenceTransformer: through encode_query / encode_document
    start = time.perf_counter()
    check_count("limit_queries", limit_queries, "the first N queries", optional=True)  # [:0] scores no query
    tasks = list(tasks)
    plan = plan_tasks(tasks, split)
    applies, not_applied = split_scope(tasks, split)
    if not_applied:
        logger.info(
            "split: %s applies to %s; it does not apply to %s (a task's own split: name:split)",
            split,
            ", ".join(applies) or "no task",
            ", ".join(not_applied),
        )
    retrieval = [name for name, _ in plan if is_retrieval_task(name)]
    if document_index is not None and len(retrieval) != 1:
        raise ConfigError(
            f"document_index: serves exactly one retrieval task, the plan has {len(retrieval)} ({', '.join(retrieval)})"
        )
    # once, before the tasks: as loaded (a merged load of an adapter folder hashes its adapter file)
    weights = loaded_weights(model)
    results: dict[str, Any] = {}

    def record() -> dict[str, Any]:
        summary = {
            summary_key(task, metric): entry["metrics"][metric]
            for task, entry in results.items()
            for metric in reported_metrics(task, entry)
        }
        recorded = {
            "batch_size": batch_size,
            "split": split if applies else None,  # only as it applied: no task's own split is recorded as it
            "limit_queries": limit_queries,
            "torch_threads": torch.get_num_threads(),
            **({"document_index": document_index.location} if document_index is not None else {}),
            **(settings or {}),
        }
        for key, value in model_settings(model).items():
            recorded.setdefault(key, value)
        return {
            "format": RESULTS_FORMAT,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "model": model_entry(model, model_id, revision, weights),
            "settings": recorded,
            "tasks": dict(results),
            "summary": summary,
            "versions": library_versions(),
            "platform": platform.platform(),
            "wall_time_s": time.perf_counter() - start,
        }

    for index, (name, task_split) in enumerate(plan):
        try:
            result = _run_task(model, name, task_split, batch_size, limit_queries, show_progress_bar, **(
                {"document_index": document_index} if document_index is not None and name in retrieval else {}
            ))  # fmt: skip
            undefined = [metric for metric, value in result.metrics.items() if not math.isfinite(value)]
            if undefined and require_finite:  # the failed task: the finite ones before it are kept
                raise DataError(nan_message(record_name(name, task_split), undefined))
        except (Exception, KeyboardInterrupt) as err:
            specs = [n + (f":{s}" if s else "") for n, s in plan[index:]]
            said = str(err).strip().splitlines()  # none: MemoryError(), a bare AssertionError()
            reason = "interrupted" if isinstance(err, KeyboardInterrupt) else (said or [type(err).__name__])[0]
            finished = record() | {"incomplete": {"failed": specs[0], "error": reason, "not_run": specs[1:]}}
            if results and on_incomplete is not None:  # what finished is handed over before the error goes on
                on_incomplete(finished)
            if isinstance(err, NonFiniteEmbeddings) and err.finished is None:  # raised inside the task: name it
                named = NonFiniteEmbeddings(f"{record_name(name, task_split)}: {err}")
                named.finished = finished
                raise named from None
            raise
        # filed under the key the plan checked and the summary keys promise, whatever name the function returns
        # (a task registered as `scifact-small` that runs evaluate_beir(...) would otherwise be filed as `scifact`)
        key = record_name(name, task_split)
        result.task = key
        results[key] = result.to_dict()
        if not per_item:  # asked for, a task without per-item values (the agreement) keeps an empty mapping
            del results[key]["per_item"]
        if undefined:
            logger.log(logging.WARNING if warn_nan else logging.INFO, nan_message(key, undefined, refused=False))
        shown = ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items())
        cut = cut_by_cap(key, {"settings": {"limit_queries": limit_queries}, "tasks": results})
        part = f", the first {cut.cap} {'documents' if key == AGREEMENT_TASK else 'queries'} only" if cut else ""
        logger.info("%s (%s%s): %s [%.1fs]", result.task, result.split, part, shown, result.wall_time_s)
    return record()


def _run_task(
    model: Encoder,
    name: str,
    split: str | None,
    batch_size: int,
    limit_queries: int | None,
    show_progress_bar: bool | None,
    **extra: Any,
) -> Any:
    """One planned task's :class:`~biohicl.evaluation.results.TaskResult`."""
    function = get_task(name)
    return function(
        model,
        split=split,
        batch_size=batch_size,
        limit_queries=limit_queries,
        show_progress_bar=show_progress_bar,
        **extra,
    )


def undefined_metrics(record: dict[str, Any]) -> dict[str, list[str]]:
    """``{task: [metric, ...]}`` of a results record's metrics that are NaN or infinite (a collapsed model's
    correlations: :class:`~biohicl.evaluation.metrics.CorrelationMetric`)."""
    found = {}
    for task, entry in (record.get("tasks") or {}).items():
        metrics = entry.get("metrics") or {} if isinstance(entry, dict) else {}
        bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            found[task] = bad
    return found


def nan_message(task: str, names: list[str], refused: bool = True) -> str:
    """What a task whose ``names`` metrics are NaN is refused with (a results file holds numbers only), or, not
    ``refused``, warned with where it is kept (training's evaluator)."""
    verb = "is" if len(names) == 1 else "are"
    said = (
        f"{task}: {', '.join(names)} {verb} NaN: the model's embeddings are constant or not finite (a collapsed model?)"
    )
    return said + (", and a results file holds numbers only" if refused else "")


def check_defined(record: dict[str, Any], path: str | Path | None = None) -> None:
    """A one-line :class:`DataError` naming the first task with a NaN metric (:func:`undefined_metrics`): a
    results file holds numbers only."""
    if undefined := undefined_metrics(record):
        raise DataError(nan_message(*next(iter(undefined.items()))) + "; nothing was written", path)


def incomplete_path(output: str | Path) -> Path:
    """Where ``biohicl evaluate`` keeps the finished tasks of a run that failed: ``results/x.json`` ->
    ``results/x.incomplete.json`` (never ``output`` itself, which a complete run writes)."""
    output = Path(output)
    return output.with_name(f"{output.stem}.incomplete{output.suffix or '.json'}")


def drop_stale_record(output: Path, results: dict[str, Any]) -> str | None:
    """Remove an earlier run's incomplete record of ``output`` when the complete ``results`` hold every task it kept
    (else keep it: its tasks may have taken hours); returns the line that says which, None when there is none."""
    if not (stale := incomplete_path(output)).is_file():
        return None
    import json

    try:
        kept = set(json.loads(stale.read_text(encoding="utf-8")).get("tasks") or ())
    except (OSError, ValueError, AttributeError):  # unreadable or not a record: nothing of it can be kept
        kept = set()
    if missing := sorted(kept - set(results["tasks"])):
        return f"kept {stale}: it holds {', '.join(missing)}, which this run did not evaluate"
    stale.unlink()
    return f"removed {stale} (an earlier run's incomplete record)"


def save_results(results: dict[str, Any], path: str | Path) -> Path:
    """Write a results record as indented JSON, atomically; a NaN metric is refused in one line
    (:func:`check_defined`), any other non-finite value is written ``null`` (JSON has no NaN)."""
    check_defined(results, path)
    return atomic_write_json(path, results)


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results record written by :func:`save_results`; :class:`DataError` when it is not one, or not of its
    shape (:func:`_shape_problem`), in one line naming the file and the task. A ``null`` metric (a non-finite one
    as JSON holds it) reads as NaN, as the ``NaN`` of an older record does."""
    path = Path(path)
    record = read_json(path, missing="no such file")
    if not isinstance(record, dict) or "tasks" not in record:
        raise DataError("not a biohicl evaluation results file (no `tasks`)", path)
    _read_null_metrics(record)
    if (problem := _shape_problem(record)) is not None:
        raise DataError(f"not a biohicl evaluation results file: {problem}", path)
    return record


def _read_null_metrics(record: dict[str, Any]) -> None:
    """Each ``null`` among ``record``'s task metrics and summary values as NaN, in place (anything else as it is)."""
    tasks = record["tasks"] if isinstance(record["tasks"], dict) else {}
    holders = [entry.get("metrics") for entry in tasks.values() if isinstance(entry, dict)]
    for values in (*holders, record.get("summary")):
        if isinstance(values, dict):
            values.update({k: nan_for_null(v) for k, v in values.items()})


def _kind(value: Any) -> str:
    return type(value).__name__


def _shape_problem(record: dict[str, Any]) -> str | None:
    """What in ``record`` is not as reports and comparisons read it (None: nothing): ``tasks`` a mapping of entries
    each with ``metrics`` (metric -> number) and, where given, a string ``split`` and ``main_metric`` and mappings
    ``data_files`` and ``per_item``; ``model``, ``settings`` and ``summary`` mappings where given."""
    for name in ("model", "settings", "summary"):
        if name in record and not isinstance(record[name], dict):
            return f"`{name}` is not a mapping (got {_kind(record[name])})"
    if not isinstance(record["tasks"], dict):
        return "`tasks` is not a mapping of task names to results"
    for task, entry in record["tasks"].items():
        if not isinstance(entry, dict):
            return f"task {task!r}: its entry is not a mapping (got {_kind(entry)})"
        if not isinstance(metrics := entry.get("metrics"), dict):
            return f"task {task!r}: " + ("no `metrics`" if metrics is None else f"`metrics` is a {_kind(metrics)}")
        for metric, value in metrics.items():
            if not is_number(value):
                return f"task {task!r}: metric {metric!r} is {value!r}, not a number"
        for name, kind in (("split", str), ("main_metric", str), ("data_files", dict), ("per_item", dict)):
            if entry.get(name) is not None and not isinstance(entry[name], kind):
                wanted = "a string" if kind is str else "a mapping"
                return f"task {task!r}: `{name}` is not {wanted} (got {_kind(entry[name])})"
    return None

"""Which data a run's model selection reads: each ``--eval_tasks`` spec's split, and whether it is dev data.

A spec names its split (``pubmedqa:dev``, ``scifact:train``, ``siml-agreement@runs/x#mesh=t.txt:dev``) or takes
its task's default, as the evaluation harness reads it (:func:`task_split`): ``dev`` for a dataset task
(``siml-agreement``: the dataset's dev documents), ``all`` for BIOSSES (its 100 pairs, the pairs a BIOSSES score
reports), ``test`` for any other (PubMedQA, the BEIR tasks and folders). The splits a run may select on
(:data:`DEV_SPLITS`) are ``dev`` and ``train`` (SciFact's training queries, never trained on); any other is held-out
data, the items a reported score reads. :func:`held_out_selection` names the tasks a selecting run
(``load_best_model_at_end``) takes a metric of from held-out data, :func:`held_out_notice` is the run's one warning
line about them, and the model card says so (:mod:`biohicl.hub.card_selection`). :func:`check_train_splits` refuses
training documents a run must not train on: the dataset's ``test`` split, and its ``dev`` split while a task reading
it selects the step.

Plain strings: training sits below the evaluation harness and imports none of it; ``tests/test_selection_splits.py``
checks these rules against the harness's own (``biohicl.evaluation.tasks``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from biohicl.errors import ConfigError

#: The splits model selection may read: a dataset's dev split, and a training split BioHiCL never trains on.
DEV_SPLITS = ("dev", "train")
#: The tasks over the training dataset itself (``evaluation.results.AGREEMENT_TASK``): their default split is ``dev``.
DATASET_TASKS = ("siml-agreement",)
#: Tasks whose dev split is filed as ``<task>-dev`` (the harness's ``DEV_SPLIT_TASKS``).
DEV_KEYED_TASKS = ("pubmedqa", "pubmedqa-context")
#: Tasks whose default split is neither ``test`` nor ``dev`` (the harness's ``DEFAULT_SPLITS``).
DEFAULT_SPLITS = {"biosses": "all"}
#: The scores a selection computes from its metrics, which name no task.
COMBINED_SCORES = ("dev_score", "dev_guard", "dev_guard_passed")
#: The dev tasks a run can select on instead (docs/training.md, "Model selection on dev data").
DEV_TASKS_HINT = "pubmedqa:dev, siml-agreement, scifact:train"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"scifact:train"`` → ``("scifact", "train")``; ``"biosses"`` → ``("biosses", None)``; a ``:`` inside a path
    (``siml-agreement@runs/x#mesh=C:/t.txt``) starts no split (the harness's ``parse_task_spec``)."""
    spec = str(spec).strip()
    name, sep, split = spec.rpartition(":")
    if sep and name and split and "/" not in split and "\\" not in split:
        return name, split
    return spec, None


def _dataset_task(name: str) -> str | None:
    """The dataset task ``name`` runs (``siml-agreement@runs/x`` → ``siml-agreement``), else None."""
    task = name.partition("@")[0]
    return task if task in DATASET_TASKS else None


def task_split(spec: str) -> str:
    """The split the task spec ``spec`` evaluates: its own, else its task's default (module doc)."""
    name, split = parse_spec(spec)
    if split:
        return split
    return "dev" if _dataset_task(name) else DEFAULT_SPLITS.get(name, "test")


def metric_key(spec: str) -> str:
    """The name the metrics of ``spec`` are logged under (``<name>_<metric>``), as the harness files its result: its
    task's (a BEIR folder's: the folder's name; a dataset task's: the task's), ``pubmedqa-dev`` for ``pubmedqa:dev``."""
    name, split = parse_spec(spec)
    key = _dataset_task(name) or Path(name).name
    return f"{key}-dev" if split == "dev" and key in DEV_KEYED_TASKS else key


def selection_metrics_of(args: Any) -> list[str]:
    """The metrics (no ``eval_``) a run's selection reads: ``metric_for_best_model`` unless it is a score the
    selection combines (``dev_score``), its ``selection_metrics`` and its ``selection_guard``. ``args``: training
    arguments, or their ``biohicl_training_args.json`` mapping."""
    names = [_value(args, "metric_for_best_model")]
    names += [*(_value(args, "selection_metrics") or ()), *(_value(args, "selection_guard") or ())]
    metrics = [str(n).removeprefix("eval_") for n in names if n]
    return [m for m in dict.fromkeys(metrics) if m not in COMBINED_SCORES]


def selecting_tasks(eval_tasks: Iterable[str], metrics: Sequence[str]) -> list[str]:
    """The specs of ``eval_tasks`` that give one of ``metrics`` (``biosses`` for ``biosses_spearman``)."""
    return [spec for spec in eval_tasks if any(m.startswith(f"{metric_key(spec)}_") for m in metrics)]


def held_out_selection(args: Any) -> list[tuple[str, str]]:
    """``[(spec, split)]``: the tasks a run that selects (``load_best_model_at_end``) takes a metric of on a split
    that is not dev data (:data:`DEV_SPLITS`); ``[]`` for a run that selects on dev only, or keeps its last step."""
    if not _value(args, "load_best_model_at_end"):
        return []
    tasks = selecting_tasks(_value(args, "eval_tasks") or (), selection_metrics_of(args))
    return [(spec, split) for spec in tasks if (split := task_split(spec)) not in DEV_SPLITS]


def held_out_metrics(args: Any) -> list[str]:
    """The metrics the selection reads of its held-out tasks (:func:`held_out_selection`), not of its dev tasks."""
    keys = [metric_key(spec) for spec, _ in held_out_selection(args)]
    return [m for m in selection_metrics_of(args) if any(m.startswith(f"{key}_") for key in keys)]


def held_out_names(args: Any) -> list[str]:
    """:func:`held_out_selection` as task specs naming their split: ``["biosses:all", "pubmedqa:test"]``."""
    return [f"{parse_spec(spec)[0]}:{split}" for spec, split in held_out_selection(args)]


def held_out_notice(args: Any) -> str | None:
    """The one warning line of a run that selects a step on held-out data (None for one that does not)."""
    if not (held := held_out_names(args)):
        return None
    splits = "is no dev split" if len(held) == 1 else "are no dev splits"
    return (
        f"model selection on held-out data: {', '.join(held)} {splits}, and the selection reads "
        f"{', '.join(held_out_metrics(args))}, so the kept step is chosen on the items those scores report: it is "
        "not a dev-selected model and its scores there are no held-out results (its model card says so); select on "
        f'dev tasks instead ({DEV_TASKS_HINT}; docs/training.md, "Model selection on dev data")'
    )


def reads_dataset_dev(spec: str, dataset_path: str | None) -> bool:
    """Whether ``spec`` scores on the dev documents of the dataset at ``dataset_path``: ``pubmedqa:dev`` (and
    ``pubmedqa-context:dev``), the PubMedQA dev items the build marks ``dev``, and a dataset task's dev split over that
    dataset (``siml-agreement``: the run's own; ``siml-agreement@PATH`` when PATH is that dataset)."""
    name, _ = parse_spec(spec)
    if task_split(spec) != "dev":
        return False
    if name in DEV_KEYED_TASKS:
        return True
    if _dataset_task(name) is None:
        return False
    from biohicl.data.files import resolved_path  # the data layer loads scipy: importing this module loads none

    _, at, where = name.partition("@")
    where = where.partition("#mesh=")[0]
    if not at:
        return True
    return bool(dataset_path) and resolved_path(where) == resolved_path(str(dataset_path))


def check_train_splits(args: Any) -> None:
    """Refuse, in one line, ``train_splits`` with ``test`` (the dataset's held-out split: PubMedQA's test abstracts,
    kept in the dataset by construction and never trained on), and with ``dev`` while a run that selects
    (``load_best_model_at_end``) takes a metric of a task scoring on those dev documents (:func:`reads_dataset_dev`):
    its kept step would be chosen on its own training documents."""
    splits = list(_value(args, "train_splits") or ())
    if "test" in splits:
        raise ConfigError(
            "train_splits: test is the dataset's held-out split (PubMedQA's test abstracts, the items a reported "
            "PubMedQA score asks about), kept in the dataset to be left out and never trained on; train on train "
            "(or train dev)"
        )
    if "dev" not in splits or not _value(args, "load_best_model_at_end"):
        return
    tasks = selecting_tasks(_value(args, "eval_tasks") or (), selection_metrics_of(args))
    if reading := [spec for spec in tasks if reads_dataset_dev(spec, _value(args, "dataset_path"))]:
        raise ConfigError(
            "train_splits: dev trains on the dev documents that the selection (--load_best_model_at_end) scores on "
            f"with {_and_joined(reading)}, so the kept step would be chosen on its own training documents; leave dev "
            "out of --train_splits, or train on it without selecting a step (no --load_best_model_at_end)"
        )


def _and_joined(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]


def _value(args: Any, name: str) -> Any:
    """A training argument of ``args``: an arguments object or its JSON mapping."""
    return args.get(name) if isinstance(args, Mapping) else getattr(args, name, None)

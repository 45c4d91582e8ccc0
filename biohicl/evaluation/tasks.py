"""The task registry: a task name (``scifact``, ``biosses``, ``pubmedqa`` ...) → a function that scores an encoder.

A task function has the signature ``fn(encoder, *, split, batch_size, limit_queries, show_progress_bar) ->
TaskResult``; :func:`register_task` adds one (``split=None`` means the task's own default). A task spec on the command
line is ``name`` or ``name:split`` (``scifact:train``), or the path of any BEIR folder (``path/to/folder[:split]``).
A task over a built dataset names it after ``@``: ``siml-agreement@runs/mesh-pairs[:split]``, and the MeSH
hierarchy it measures SimL with after ``#mesh=`` (default the packaged MeSH; :func:`with_mesh`):
``siml-agreement@runs/icd-pairs#mesh=trees/icd10MeshTree.txt:dev``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from biohicl.errors import ConfigError
from biohicl.evaluation import retrieval
from biohicl.evaluation.agreement import agreement_data_files, check_agreement, evaluate_agreement
from biohicl.evaluation.encoder import Encoder
from biohicl.evaluation.pubmedqa import SPLITS as PUBMEDQA_SPLITS
from biohicl.evaluation.pubmedqa import evaluate_pubmedqa
from biohicl.evaluation.results import AGREEMENT_TASK, TaskResult, record_key, summary_key
from biohicl.evaluation.retrieval import beir_files, evaluate_beir
from biohicl.evaluation.sts import evaluate_biosses, load_biosses
from biohicl.settings import data_path

TaskFunction = Callable[..., TaskResult]
TaskCheck = Callable[[str | None], None]
TASKS: dict[str, TaskFunction] = {}
#: Cheap pre-flight checks (files present?) run for every task before any encoding starts.
CHECKS: dict[str, TaskCheck] = {}
#: Tasks over BEIR folders: their split defaults to ``evaluate_model(split=...)`` / ``biohicl evaluate --split``.
RETRIEVAL_TASKS: set[str] = set()
#: The data each registered task reads: a folder of the data directory (``pubmedqa-context`` → ``pubmedqa``) or an
#: absolute file or folder.
DATA_FOLDERS: dict[str, str] = {}
#: Metrics shown in reports and plots per task (others stay in the JSON).
REPORTED_METRICS: dict[str, list[str]] = {}
#: The split a task evaluates when given no ``:split`` (what its function does with ``split=None``); ``test`` if absent.
DEFAULT_SPLITS: dict[str, str] = {}


def _check_task_name(name: Any) -> None:
    """A :class:`ConfigError` for a name a task spec cannot give: ``:`` starts a split, ``/`` separates a summary
    key's metric, ``@`` a dataset, ``,`` the ``--tasks`` list; spaces at either end are stripped; empty is none."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"register_task: a task name must be a non-empty string, got {name!r}")
    bad = sorted(set(name) & set(":/@,"))
    if bad or name != name.strip():
        why = f"contains {', '.join(map(repr, bad))}" if bad else "has spaces at an end"
        raise ConfigError(
            f"register_task: {name!r} {why}, which a task spec cannot give (`:` starts a split, `/` separates a "
            "summary key's metric, `@` a dataset, `,` the --tasks list)"
        )


def register_task(
    name: str,
    function: TaskFunction,
    reported: Iterable[str] = (),
    retrieval: bool = False,
    check: TaskCheck | None = None,
    data_folder: str | os.PathLike[str] | None = None,
    default_split: str | None = None,
) -> None:
    """Make ``name`` available to task specs **in this Python process**: :func:`evaluate_model`,
    :class:`~biohicl.evaluation.evaluator.TaskEvaluator` (``eval_tasks`` of a training run started here), and the
    CLI called from the same process after registering (``biohicl.cli.main.main(["evaluate", MODEL, "--tasks",
    name, ...])``).
    A ``biohicl`` command started from a shell, or a worker process (``reproduce --workers``), does not see it.

    ``name`` cannot contain ``:``, ``/``, ``@`` or ``,`` nor start or end with spaces (a spec could not give it).

    ``reported``: the metrics reports and plots show; ``retrieval``: the task is a BEIR folder whose split follows
    the run-wide default split; ``check(split)``: raises when the task's data is missing (no encoding);
    ``data_folder``: what it reads, a folder name under ``BIOHICL_DATA_DIR`` or an absolute file or folder (the
    evaluation cache keys by its files; without one a task not built into biohicl is never read back from the cache);
    ``default_split``: the split its function evaluates when given ``split=None`` (``test`` when not given), what a
    study's resume check expects a finished result to have been evaluated on.
    """
    _check_task_name(name)
    folder = os.fspath(data_folder) if isinstance(data_folder, str | os.PathLike) else data_folder
    if data_folder is not None and (not isinstance(folder, str) or not folder.strip()):
        raise ConfigError(f"register_task: {name}: data_folder must be a folder name or a path, got {data_folder!r}")
    TASKS[name] = function
    if check is not None:
        CHECKS[name] = check
    DATA_FOLDERS.pop(name, None)  # registered again without one: its data is unknown, not the old task's
    if folder is not None:
        DATA_FOLDERS[name] = folder
    REPORTED_METRICS[name] = list(reported)
    DEFAULT_SPLITS.pop(name, None)
    if default_split is not None:
        DEFAULT_SPLITS[name] = default_split
    if retrieval:
        RETRIEVAL_TASKS.add(name)


def is_builtin_task(name: str) -> bool:
    """True when ``name`` still runs the function biohicl registered for it (its source is biohicl's own code)."""
    return name in _BUILTIN_TASKS and TASKS.get(name) is _BUILTIN_TASKS[name]


def is_retrieval_task(name: str) -> bool:
    """True for registered BEIR tasks and BEIR folder paths."""
    return name in RETRIEVAL_TASKS or beir_folder(name) is not None


def beir_folder(name: str) -> Path | None:
    """The BEIR folder a task spec's name (no ``:split``) is, as :func:`get_task` reads it: a directory that is
    neither a dataset task (``siml-agreement@DATASET``) nor a registered task (a path with ``@`` in it is a folder);
    None for any other name."""
    if split_dataset_task(name) is not None or name in TASKS:
        return None
    folder = Path(name).expanduser()
    return folder if folder.is_dir() else None


def _reported_names(task: str, main_metric: str) -> list[str]:
    """The metrics reports show for the task filed as ``task`` (its dev split like the task itself); an unregistered
    task (a BEIR folder) shows the retrieval metrics when its main metric is an nDCG, else its main metric."""
    return (
        REPORTED_METRICS.get(task)
        or REPORTED_METRICS.get(task.removesuffix("-dev"))
        or (_RETRIEVAL_REPORTED if main_metric.startswith("ndcg@") else [main_metric])
    )


def reported_metrics(task: str, record: dict[str, Any]) -> list[str]:
    """The metrics of ``record`` (a :meth:`TaskResult.to_dict`) that reports and plots show for ``task``."""
    names = _reported_names(task, record.get("main_metric", ""))
    return [name for name in names if name in record.get("metrics", {})]


def parse_task_spec(spec: str) -> tuple[str, str | None]:
    """``"scifact:train"`` → ``("scifact", "train")``; ``"biosses"`` → ``("biosses", None)``."""
    spec = spec.strip()
    name, sep, split = spec.rpartition(":")
    if sep and name and split and "/" not in split and "\\" not in split:
        return name, split
    return spec, None


#: What separates a dataset task's dataset from the hierarchy file it measures SimL with.
MESH_MARK = "#mesh="


def split_dataset_task(name: str) -> tuple[str, str, str | None] | None:
    """``"siml-agreement@runs/x#mesh=t.txt"`` → ``("siml-agreement", "runs/x", "t.txt")`` (no ``#mesh=``: None
    for the hierarchy); None for other names."""
    task, sep, dataset = name.partition("@")
    dataset, mark, mesh = dataset.partition(MESH_MARK)
    return (task, dataset, mesh if mark else None) if sep and task in DATASET_TASKS and dataset else None


def names_dataset(spec: str, dataset: str | Path) -> bool:
    """Whether ``spec`` is a dataset task (``siml-agreement@DATASET[#mesh=FILE][:split]``) over ``dataset``."""
    parsed = split_dataset_task(parse_task_spec(spec)[0])
    return parsed is not None and Path(parsed[1]).expanduser().resolve() == Path(dataset).resolve()


def with_mesh(spec: str, mesh_path: str | None) -> str:
    """A dataset task spec (``siml-agreement@runs/x[:split]``) measuring SimL with the hierarchy file ``mesh_path``
    (``siml-agreement@runs/x#mesh=<mesh_path>[:split]``); any other spec, one naming its hierarchy already, or no
    ``mesh_path`` (the packaged MeSH): ``spec`` as it is."""
    name, split = parse_task_spec(spec)
    if not mesh_path or (parsed := split_dataset_task(name)) is None or parsed[2] is not None:
        return spec
    return f"{name}{MESH_MARK}{mesh_path}" + (f":{split}" if split else "")


def default_split(name: str) -> str:
    """The split a task spec without ``:split`` evaluates: ``dev`` for a dataset task (``siml-agreement@x``), the
    ``default_split`` a task was registered with (``all`` for BIOSSES), ``test`` for the others (PubMedQA, registered
    BEIR tasks, BEIR folders)."""
    if split_dataset_task(name) is not None or name in DATASET_TASKS:
        return "dev"
    return DEFAULT_SPLITS.get(name, "test")


def record_name(name: str, split: str | None) -> str:
    """The key a task's result is filed under in a results record: ``siml-agreement@runs/x`` → ``siml-agreement``,
    ``pubmedqa:dev`` → ``pubmedqa-dev`` (:func:`~biohicl.evaluation.results.record_key`), a BEIR folder path → the
    folder's name, any other task → its name."""
    if (parsed := split_dataset_task(name)) is not None:
        return parsed[0]
    if name in TASKS:
        return record_key(name, split)
    return Path(name).expanduser().name


def summary_keys(name: str, split: str | None) -> list[str]:
    """The ``summary`` keys (``task/metric``) a results record gets for one task, without running it: the metrics
    the task reports (:func:`reported_metrics`) under its :func:`record_name` (a BEIR folder's main metric is
    nDCG@10)."""
    key = record_name(name, split)
    return [summary_key(key, metric) for metric in _reported_names(key, "ndcg@10")]


def dataset_files(name: str) -> dict[str, str] | None:
    """For a dataset task (``siml-agreement@runs/x``) the checksums of the files it reads, as its result's
    ``data_files`` holds them; None for other tasks or when the dataset is not there (nothing to compare with)."""
    if (parsed := split_dataset_task(name)) is None or not Path(parsed[1]).expanduser().exists():
        return None
    return DATASET_FILES[parsed[0]](parsed[1], parsed[2])


#: The BEIR files :func:`check_beir` found sound, by (path, size, mtime) each: a repeat check reads nothing.
_CHECKED_BEIR: set[tuple[tuple[str, int, int], ...]] = set()


def check_beir(folder: str | os.PathLike[str], split: str) -> None:
    """A BEIR folder's files there (:func:`~biohicl.evaluation.retrieval.beir_files`) and read as its task reads
    them (:func:`~biohicl.evaluation.retrieval.read_beir`, the corpus's ids kept, not its texts), so a malformed
    line, a repeated id or qrels that do not fit the corpus fail before the first task runs, not after the tasks
    before it. Once per version of the files."""
    paths = beir_files(folder, split)
    version = tuple((str(p.resolve()), (found := p.stat()).st_size, found.st_mtime_ns) for p in paths)
    if version in _CHECKED_BEIR:
        return
    retrieval.read_beir(folder, split, texts=False)  # load_beir's reading: the same refusals, no document text kept
    _CHECKED_BEIR.add(version)


def check_task(name: str, split: str | None) -> None:
    """Fail before any encoding when a task's data is missing or a BEIR file malformed (:func:`check_beir`)."""
    if (parsed := split_dataset_task(name)) is not None:
        DATASET_TASKS[parsed[0]][1](parsed[1], split, parsed[2])
    elif name in CHECKS:
        CHECKS[name](split)
    elif (folder := beir_folder(name)) is not None:
        check_beir(folder, split or "test")
    else:
        get_task(name)


def get_task(name: str) -> TaskFunction:
    """The registered task function, or a BEIR task over ``name`` when it is a directory."""
    if (parsed := split_dataset_task(name)) is not None:
        run_task, dataset = DATASET_TASKS[parsed[0]][0], parsed[1]
        hierarchy = parsed[2]

        def dataset_task(encoder: Encoder, *, split: str | None = None, **kwargs: Any) -> TaskResult:
            return run_task(encoder, dataset, split=split or "dev", mesh_path=hierarchy, **kwargs)

        return dataset_task
    if name in TASKS:
        return TASKS[name]
    if (folder := beir_folder(name)) is not None:

        def beir_folder_task(encoder: Encoder, *, split: str | None = None, **kwargs: Any) -> TaskResult:
            return evaluate_beir(encoder, folder, split or "test", name=folder.name, **kwargs)

        return beir_folder_task
    if looks_like_path(name):  # a mistyped folder, not a mistyped task name
        why = "is not a directory" if Path(name).expanduser().exists() else "no such directory"
        raise ConfigError(f"{name}: {why} (a BEIR folder path)")
    close = difflib.get_close_matches(name, TASKS, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"tasks: unknown task {name!r}{hint}; known: {', '.join(TASKS)}, or a BEIR folder path")


def looks_like_path(name: str) -> bool:
    """Whether a task spec's name reads as a folder path (``./x``, ``~/x``, ``data/x``), not as a task name."""
    return "@" not in name and (name.startswith((".", "~")) or "/" in name or "\\" in name)


def _beir_task(dataset: str) -> TaskFunction:
    def task(encoder: Encoder, *, split: str | None = None, **kwargs: Any) -> TaskResult:
        return evaluate_beir(encoder, data_path(dataset), split or "test", name=dataset, **kwargs)

    task.__doc__ = f"{dataset} (BEIR folder ``$BIOHICL_DATA_DIR/{dataset}``): nDCG@10, Recall@100, MRR@10."
    return task


def _biosses(encoder: Encoder, *, split: str | None = None, **kwargs: Any) -> TaskResult:
    kwargs.pop("limit_queries", None)
    return evaluate_biosses(encoder, split=split or "all", **kwargs)


def _pubmedqa(target: str) -> TaskFunction:
    def task(encoder: Encoder, *, split: str | None = None, **kwargs: Any) -> TaskResult:
        return evaluate_pubmedqa(encoder, target=target, split=split or "test", **kwargs)

    return task


def _check_beir(dataset: str) -> TaskCheck:
    def check(split: str | None) -> None:
        check_beir(data_path(dataset), split or "test")

    return check


def check_split(name: str, split: str | None, field: str = "tasks") -> None:
    """A :class:`ConfigError` naming ``field`` and the spec when built-in task ``name`` has no split ``split``
    (``pubmedqa:deV``, ``biosses:dev``): before any file is read or anything encoded. Other tasks: nothing."""
    if is_builtin_task(name) and name in _SPLITS:
        _check_split(name, split, field)


def _check_split(name: str, split: str | None, field: str = "tasks") -> None:
    if split not in (splits := _SPLITS[name]):
        shown = ", ".join(s for s in splits if s is not None)
        raise ConfigError(f"{field}: {name}:{split}: {name} has no split {split!r} (its splits: {shown})")


def _check_files(name: str, *files: tuple[str, str]) -> TaskCheck:
    """The check of a task of fixed splits (:data:`_SPLITS`) reading ``files`` under ``BIOHICL_DATA_DIR``."""

    def check(split: str | None) -> None:
        _check_split(name, split)
        for parts in files:
            data_path(*parts)

    return check


_RETRIEVAL_REPORTED = ["ndcg@10", "recall@100", "mrr@10"]
for _dataset in ("scifact", "nfcorpus", "trec-covid", "scidocs"):
    register_task(
        _dataset, _beir_task(_dataset), _RETRIEVAL_REPORTED, retrieval=True, check=_check_beir(_dataset),
        data_folder=_dataset,
    )  # fmt: skip
#: The splits each built-in task of fixed splits takes (None: its default), checked before any file is read.
_SPLITS: dict[str, tuple[str | None, ...]] = {
    "biosses": (None, "all"),
    "pubmedqa": (None, *PUBMEDQA_SPLITS),
    "pubmedqa-context": (None, *PUBMEDQA_SPLITS),
}
_PUBMEDQA_FILES = (("pubmedqa", "ori_pqal.json"), ("pubmedqa", "test_ground_truth.json"))


def _check_biosses(split: str | None) -> None:
    """BIOSSES's split, then its 100 lines read as the task reads them: a bad byte or score fails before the model
    loads."""
    _check_split("biosses", split)
    load_biosses(data_path("biosses", "biosses.tsv"))


register_task(
    "biosses", _biosses, ["spearman", "pearson"], check=_check_biosses,
    data_folder="biosses", default_split="all",
)  # fmt: skip
for _name, _target in (("pubmedqa", "long_answer"), ("pubmedqa-context", "context")):
    register_task(
        _name, _pubmedqa(_target), ["recall@1", "recall@5"], check=_check_files(_name, *_PUBMEDQA_FILES),
        data_folder="pubmedqa",
    )  # fmt: skip


def _needs_dataset(task: str) -> TaskCheck:
    def check(split: str | None) -> None:
        raise ConfigError(f"tasks: {task} needs a dataset: {task}@<build-dataset folder or documents file>[:split]")

    return check


#: Tasks over a built dataset (``name@dataset[#mesh=file]``): name -> (function(encoder, dataset, mesh_path=, **kwargs),
#: check(dataset, split, mesh_path)); ``mesh_path`` is the spec's hierarchy file, None without ``#mesh=``.
DATASET_TASKS: dict[str, tuple[Callable[..., TaskResult], Callable[..., None]]] = {
    AGREEMENT_TASK: (evaluate_agreement, check_agreement),
}
#: The files each dataset task reads: name -> function(dataset, mesh_path) -> ``{file: sha256}`` (its results'
#: ``data_files``).
DATASET_FILES: dict[str, Callable[..., dict[str, str]]] = {AGREEMENT_TASK: agreement_data_files}
for _name in DATASET_TASKS:
    register_task(_name, lambda *a, _n=_name, **k: _needs_dataset(_n)(None), ["spearman"], check=_needs_dataset(_name))
#: The functions biohicl registers itself (a name registered again with another function is no longer built in).
_BUILTIN_TASKS: dict[str, TaskFunction] = dict(TASKS)

"""Evaluations kept by what decides them: an identical encoder on the same tasks and data is read back, not rerun.

A study evaluates the same base model at step 0 of every run (LoRA's B starts at zero, so the adapted model encodes
exactly as its base): at 256 tokens with SciFact train on a 2-core machine that is 5-10 minutes per run. The key of
an evaluation (:func:`evaluation_key`) is a hash of

- the encoder's **outputs** on fixed probe texts, bit for bit (queries and documents, so prompts and pooling are in
  it; two encoders that differ in any weight differ here),
- what truncates a task's long texts, which the probes cannot all show (the longest is 1,142 tokens of BERT's
  vocabulary, so 4500 and 8000 tokens encode it alike): the encoder's ``config.max_length`` (a SentenceTransformer's
  ``max_seq_length``) and its tokenizer's ``truncation_side``,
- the task specs and the query cap,
- the data behind them: ``BIOHICL_DATA_DIR`` and the size and mtime of every regular file of a folder a task reads,
  symlinked subfolders included (a registered task's ``data_folder``: a folder of the data directory or an absolute
  file or folder; a dataset task's, ``siml-agreement@folder`` (and the hierarchy file of ``#mesh=``), or a BEIR
  folder given as the task, resolved, so the same relative path from another directory is another folder); a task
  registered outside biohicl with no ``data_folder`` to read (none given, a folder name with no data directory, a
  path not there or neither a file nor a folder) makes the key unique, so it is never read back: its data could
  change unseen; so does data that is neither a file nor a folder (a FIFO) or a tree of over
  :data:`MAX_DATA_FILES` files, for any task,
- the source of the biohicl package (any change to the code is a new key, so a fixed metric is never read back),
- for a task registered outside biohicl, its function (module, qualified name and a hash of its source and of the
  values it was made with: a partial's arguments, a factory's closure; a function whose source or values cannot be
  read as text makes the key unique, so nothing is read back), and the metrics each task reports.

A changed thread count can change the last bits of an encoding: that is a miss (a new evaluation), never a wrong hit.
Records are one JSON file per key, written atomically, so workers of one study share a folder safely.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
import stat
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biohicl.atomic import atomic_write_json
from biohicl.evaluation.encoder import embedding_rows
from biohicl.jsonio import nan_for_null

logger = logging.getLogger(__name__)

#: Probe texts whose embeddings identify an encoder; the last (1,142 tokens of BERT's vocabulary) is cut by a
#: 512-token model, not by a longer one's length, which is in the key itself (:func:`truncation`).
PROBE_TEXTS = (
    "Metformin lowers hepatic glucose production in type 2 diabetes.",
    "Does statin therapy reduce cardiovascular mortality in elderly patients?",
    "BRCA1 mutations and the risk of breast and ovarian cancer.",
    " ".join(["Randomized controlled trial of an antihypertensive drug in adults with chronic kidney disease."] * 60),
)

#: The most files the data of one task may hold to be fingerprinted; a larger tree is never read back.
MAX_DATA_FILES = 100_000

_NO_DATA_FOLDER = (
    "evaluation cache: task %r has no data_folder it can fingerprint (register_task(..., data_folder=...)); it is "
    "evaluated afresh each time, never read back"
)


def _registered_data(name: str, root: Path | None) -> Path | None:
    """The file or folder a registered task reads (its ``data_folder``): an absolute path as it is, a name under the
    data directory ``root``; None when it has none or names a folder of a data directory there is not."""
    from biohicl.evaluation.tasks import DATA_FOLDERS

    if name not in DATA_FOLDERS:
        return None
    folder = Path(DATA_FOLDERS[name]).expanduser()
    if folder.is_absolute():
        return folder
    return root / folder if root is not None else None


def _files(folder: Path) -> list[tuple[str, int, int]] | None:
    """The regular files under ``folder`` (relative name, size, mtime) in sorted path order, following symlinked
    subfolders (each folder walked once, so a link back up the tree is no loop); ``folder`` itself when it is a
    regular file; ``[]`` when it is not there; None when its data cannot be known: a path neither a regular file
    nor a folder (a FIFO, a device) or a tree of over :data:`MAX_DATA_FILES` files."""
    try:
        top = folder.stat()
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError:
        return None
    if stat.S_ISREG(top.st_mode):  # a dataset task over a documents file (siml-agreement@docs.jsonl)
        return [(folder.name, top.st_size, top.st_mtime_ns)]
    if not stat.S_ISDIR(top.st_mode):
        return None
    seen = {(top.st_dev, top.st_ino)}
    found_files: list[tuple[tuple[str, ...], str]] = []  # (relative parts, path): no Path each, 100,000 are 3 s
    for where, subfolders, names in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(subfolders):
            try:
                found = os.stat(os.path.join(where, name))
            except OSError:
                continue
            if (found.st_dev, found.st_ino) not in seen:
                seen.add((found.st_dev, found.st_ino))
                kept.append(name)
        subfolders[:] = kept
        relative = os.path.relpath(where, folder)
        parts = () if relative == os.curdir else tuple(relative.split(os.sep))
        found_files += [((*parts, name), os.path.join(where, name)) for name in names]
        if len(found_files) > MAX_DATA_FILES:
            return None
    files = []
    for parts, path in sorted(found_files):  # by path parts, as ``sorted(folder.rglob("*"))`` was: earlier keys
        try:
            found = os.stat(path)
        except OSError:  # a broken link
            continue
        if stat.S_ISREG(found.st_mode):
            files.append(("/".join(parts), found.st_size, found.st_mtime_ns))
    return files


def _data_fingerprint(tasks: Sequence[str]) -> dict[str, Any]:
    """The data behind ``tasks``: the data directory, and the files (relative name, size, mtime) of each folder a
    task reads (:func:`_files`): a registered task's ``data_folder`` (:func:`_registered_data`), a dataset task's
    (``siml-agreement@folder``, and its ``#mesh=`` hierarchy file) or a BEIR folder given as the task. A value no
    other call gives stands for data that cannot be known (and for a ``data_folder`` not there, of a task
    registered outside biohicl): no cache hit."""
    from biohicl.evaluation.tasks import beir_folder, is_builtin_task, parse_task_spec, split_dataset_task
    from biohicl.settings import data_dir

    root = data_dir(required=False)
    folders: dict[str, list[tuple[str, int, int]] | str] = {}
    read: list[tuple[Path, str | None]] = []  # a path, and the registered task outside biohicl that reads it
    for spec in tasks:  # parsed as get_task parses it: `/x/at@dir/beir` is a BEIR folder, not a dataset task
        name, _ = parse_task_spec(spec)
        if (parsed := split_dataset_task(name)) is not None:  # its dataset, and its ``#mesh=`` hierarchy file
            _, dataset, mesh = parsed
            read += [(Path(dataset).expanduser(), None)] + ([(Path(mesh).expanduser(), None)] if mesh else [])
        elif (folder := _registered_data(name, root)) is not None:
            # an edited qrels or score file is new data, not a cache hit
            read.append((folder, None if is_builtin_task(name) else name))
        elif (folder := beir_folder(name)) is not None:
            read.append((folder, None))
    for folder, own in read:
        files: list[tuple[str, int, int]] | str | None = _files(folder)
        if files == [] and own is not None and not folder.exists():
            files = None  # a task registered outside biohicl whose data is not there: nothing to see it change by
        if files is None:
            if folder.is_dir():
                who = f"task {own!r} reads {folder}," if own else f"{folder} is"
                logger.info(
                    "evaluation cache: %s a tree of over %d files, too many to fingerprint; it is evaluated afresh "
                    "each time, never read back",
                    who,
                    MAX_DATA_FILES,
                )
            elif own:
                logger.info(_NO_DATA_FOLDER, own)
            else:
                logger.info(
                    "evaluation cache: %s is neither a file nor a folder it can fingerprint; its task is evaluated "
                    "afresh each time, never read back",
                    folder,
                )
            files = f"unknown-{uuid.uuid4().hex}"
        folders[str(folder.resolve())] = files
    return {"data_dir": str(root.resolve()) if root else None, "folders": folders}


def _source_hash(function: Any) -> str:
    """SHA-256 of a function's source and of the values it was made with (a ``functools.partial``'s arguments, a
    factory-made function's closure and defaults), or a value no other call gives when either cannot be read or a
    value has no full, stable text (a repr with an object address, or one shortened with ``...``): no cache hit."""
    bound: list[Any] = []
    while isinstance(function, functools.partial):
        bound += [function.args, sorted(function.keywords.items())]
        function = function.func
    cells = getattr(function, "__closure__", None) or ()
    bound += [getattr(function, "__defaults__", None), getattr(function, "__kwdefaults__", None)]
    try:
        bound += [cell.cell_contents for cell in cells]
        source = inspect.getsource(function)
    except (OSError, TypeError, ValueError):  # ValueError: an empty closure cell
        return f"unreadable-{uuid.uuid4().hex}"
    with np.printoptions(threshold=sys.maxsize):  # every element of an array, not numpy's summary
        made_with = repr(bound)
    if " at 0x" in made_with or "..." in made_with:  # an object known only by its identity, or a shortened repr
        return f"unreadable-{uuid.uuid4().hex}"
    return hashlib.sha256((source + "\0" + made_with).encode()).hexdigest()


def _task_functions(tasks: Sequence[str]) -> dict[str, Any]:
    """What each registered task of ``tasks`` runs: the metrics it reports and, for a task not built into biohicl
    (whose source the code fingerprint does not cover), its function's module, qualified name and source hash, and
    a value no other call gives when the data it reads is unknown (:func:`_registered_data`): no cache hit."""
    from biohicl.evaluation.tasks import REPORTED_METRICS, TASKS, is_builtin_task, parse_task_spec
    from biohicl.settings import data_dir

    functions: dict[str, Any] = {}
    for spec in tasks:
        name, _ = parse_task_spec(spec)
        if name not in TASKS:
            continue
        entry: dict[str, Any] = {"reported": list(REPORTED_METRICS.get(name, []))}
        if not is_builtin_task(name):
            function = TASKS[name]
            entry["module"] = getattr(function, "__module__", None)
            entry["qualname"] = getattr(function, "__qualname__", type(function).__qualname__)
            entry["source"] = _source_hash(function)
            if _registered_data(name, data_dir(required=False)) is None:
                logger.info(_NO_DATA_FOLDER, name)
                entry["data"] = f"unknown-{uuid.uuid4().hex}"
        functions[name] = entry
    return functions


def code_fingerprint() -> str:
    """The biohicl package's source digest, the one every record names as ``versions.biohicl_source``
    (:func:`biohicl.provenance.source_digest`)."""
    from biohicl.provenance import source_digest

    return source_digest()


def encoder_fingerprint(model: Any) -> str:
    """SHA-256 of the model's float32 embeddings of :data:`PROBE_TEXTS`, as queries and as documents."""
    digest = hashlib.sha256()
    for kind in ("query", "document"):
        encoded = model.encode(list(PROBE_TEXTS), batch_size=len(PROBE_TEXTS), kind=kind, show_progress_bar=False)
        embeddings = np.ascontiguousarray(embedding_rows(encoded, np.float32))
        digest.update(kind.encode())
        digest.update(str(embeddings.shape).encode())
        digest.update(embeddings.tobytes())
    return digest.hexdigest()


def truncation(model: Any) -> dict[str, Any]:
    """What cuts the texts ``model`` encodes: its config's ``max_length`` (a wrapped SentenceTransformer's
    ``max_seq_length``) and its tokenizer's ``truncation_side`` (the model's, or a wrapper's ``.model``'s), None
    where it has none; another value is kept as its repr."""
    holders = (model, getattr(model, "model", None))
    tokenizer = next((found for m in holders if (found := getattr(m, "tokenizer", None)) is not None), None)
    values = {
        "max_length": getattr(getattr(model, "config", None), "max_length", None),
        "truncation_side": getattr(tokenizer, "truncation_side", None),
    }
    return {k: v if v is None or isinstance(v, int | str) else repr(v) for k, v in values.items()}


def evaluation_key(model: Any, tasks: Sequence[str], max_queries: int | None = None) -> str:
    """The key of evaluating ``model`` on ``tasks`` (see the module docstring for what is in it)."""
    parts = {
        "encoder": encoder_fingerprint(model),
        "truncation": truncation(model),
        "tasks": list(tasks),
        "max_queries": max_queries,
        "data": _data_fingerprint(tasks),
        "code": code_fingerprint(),
        "functions": _task_functions(tasks),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


class EvaluationCache:
    """A folder of evaluation results by :func:`evaluation_key` (``<key>.json``)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> dict[str, float] | None:
        """The metrics stored under ``key``, or None (also for an unreadable record, which is then rerun)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            metrics = record["metrics"]
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("evaluation cache: %s is unreadable; evaluating again", path)
            return None
        return {str(k): float(nan_for_null(v)) for k, v in metrics.items()}  # an older record's "nan" text too

    def put(self, key: str, metrics: Mapping[str, float], tasks: Sequence[str]) -> Path:
        """Store ``metrics`` under ``key`` (with the tasks, for a reader); returns the file. A NaN or infinite
        metric (a collapsed model's correlation) is stored as ``null`` (JSON has no NaN), which :meth:`get` reads
        back as NaN."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        atomic_write_json(path, {"tasks": list(tasks), "metrics": {k: float(v) for k, v in metrics.items()}})
        return path

    def __repr__(self) -> str:
        return f"EvaluationCache({str(self.folder)!r})"

"""Rank 0's preparation of an index build's output folder (:func:`biohicl.search.indexing.build_index`).

A fresh folder gets the run's ``settings.json``; a rerun's is checked against the run (other weights or settings are
refused, naming what changed); the temp files a killed run left are removed (those of a writer still running, such as
another ``biohicl index`` into the same folder, are left alone: :func:`biohicl.atomic.sweep_temporaries`'s rule). A
fresh start that fails before its first shard is undone, so a corrected rerun is not refused.

One build at a time in a folder: rank 0 holds an exclusive ``flock`` on the folder's ``.index.lock`` (which records
its pid) while it builds (:func:`index_folder_lock`), so a second ``biohicl index`` into that folder is refused in one
line naming it and that pid, instead of the two rewriting its manifest and files. The kernel drops the lock when its
process dies: a lock file a killed run left stops nobody. The lock is :func:`biohicl.folder_lock.held_folder_lock`, as
``biohicl train``'s is: without ``fcntl`` (Windows) nothing is locked, and the run says so in one warning line.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from biohicl.atomic import atomic_write_text, pid_alive, sweep_temporaries
from biohicl.errors import ConfigError, DataError
from biohicl.folder_lock import held_folder_lock
from biohicl.jsonio import read_json
from biohicl.search import blank_documents
from biohicl.search.layout import (
    PROBE_MIN_COSINE,
    SETTINGS_NAME,
    changed_settings,
    probe_cosine,
    probe_min_cosine,
    rerun_hint,
)

#: An index folder's lock file, ``flock``-ed by the build writing there (rank 0), holding its pid.
LOCK_NAME = ".index.lock"


def index_folder_lock(directory: str | Path, main: bool = True) -> contextlib.AbstractContextManager[None]:
    """Hold ``directory``'s build lock while the block runs (``main``: the process that prepares and merges the
    folder, rank 0; the other ranks take none; ``build_index`` inside the CLI's hold takes no second one); a
    :class:`ConfigError` when another process holds it. The folders this made that nothing was written to are removed
    at the end, as are those of a build refused before it wrote."""

    def refusal(holder: str) -> ConfigError:
        return ConfigError(
            f"{directory}: in use by another biohicl index run (pid {holder}, in {LOCK_NAME}); wait for it to end, or "
            "index into another folder"
        )

    return held_folder_lock(directory, LOCK_NAME, refusal, "an index lock", main)


def prepare_folder(directory: Path, settings: dict, resume: bool, default_compute: str) -> tuple[bool, bool]:
    """``(fresh, created)``: whether this run wrote ``directory``'s ``settings.json`` (else it checked the one there)
    and whether it created the folder. ``settings`` gets the folder's blank-documents setting (in place);
    ``default_compute``: the compute dtype an older ``settings.json`` without one was built with."""
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    # keys an older settings.json lacks: the defaults it was built with; blank_documents: what its manifest tells
    legacy = {"compute_dtype": default_compute, "backend": "torch", "quantize": None}
    settings[blank_documents.SETTING] = legacy[blank_documents.SETTING] = blank_documents.recorded_mode(directory)
    fresh = _check_settings(directory, settings, resume, legacy)
    if not fresh:
        blank_documents.record_mode(directory, settings[blank_documents.SETTING])
    # a finished index's manifest.json stays until merge_rank_manifests replaces it atomically: a refused or
    # killed rerun leaves that index searchable (the shards it lists are never rewritten)
    _sweep_dead_temps(directory)  # left by a killed run: never a complete file
    return fresh, created


def undo_fresh_start(directory: Path, created: bool) -> None:
    """After a run that failed before writing any shard (corpus not found, a bad first record): remove the
    settings.json it wrote, and the folder when it created it, so a corrected rerun is not refused."""
    if any(directory.glob("shard-*")):
        return  # a resumable run: keep its settings
    (directory / SETTINGS_NAME).unlink(missing_ok=True)
    if created:
        _sweep_dead_temps(directory)
        with contextlib.suppress(OSError):  # it holds something else
            directory.rmdir()


def _sweep_dead_temps(directory: Path) -> None:
    """Remove the temp files of atomic writes in ``directory`` whose writing process is gone (a live writer's stay,
    e.g. another index run's into this folder): ``.NAME.<pid>-<random>.tmp`` (:func:`~biohicl.atomic.atomic_path`'s)
    through :func:`~biohicl.atomic.sweep_temporaries` for their target; biohicl <= 0.1.0's ``.NAME.tmp-<pid>`` by
    :func:`~biohicl.atomic.pid_alive`; 0.1.0's ``.NAME.<random>.tmp`` (no pid: no writer of today's biohicl) always."""
    targets = set()
    for temp in directory.glob(".*.tmp"):
        target, _, writer = temp.name[1 : -len(".tmp")].rpartition(".")
        if "-" in writer:
            targets.add(target)
        elif target:
            temp.unlink(missing_ok=True)
    for target in sorted(targets):
        sweep_temporaries(directory / target)
    for temp in directory.glob(".*.tmp-*"):
        pid = temp.name.rpartition(".tmp-")[2]
        if not pid.isdigit() or (int(pid) != os.getpid() and not pid_alive(int(pid))):
            temp.unlink(missing_ok=True)


def _check_settings(directory: Path, settings: dict, resume: bool, legacy: dict[str, Any]) -> bool:
    """Refuse to resume a folder built with other ``settings``; ``legacy``: the values of keys older biohicl did not
    write (what it always used)."""
    path = directory / SETTINGS_NAME
    if path.is_file():
        recorded = read_json(path)
        if not isinstance(recorded, dict):
            raise DataError(f"not a JSON object (a {type(recorded).__name__}); use a new output folder", path)
        previous = {**legacy, **recorded}
        if not resume:
            raise ConfigError(f"{directory}: holds an index already; pass a new output folder (or resume)")
        # int8 ONNX rows agree with fp32 ones to the int8 tolerance only: the same weights through another encoder
        # are a settings change (backend/quantize, with the options to repeat), not other weights; the same weights
        # quantised the same way give the same int8 rows, so two int8 (or two fp32) runs keep the fp32 tolerance
        quantize = previous.get("quantize"), settings.get("quantize")
        tolerance = probe_min_cosine(*quantize) if quantize.count("int8") == 1 else PROBE_MIN_COSINE
        cosine = probe_cosine(previous.get("probe"), settings.get("probe"), tolerance)
        if cosine is not None:
            raise ConfigError(
                f"{directory}: built with other weights (probe cosine {cosine:.4f}); use a new output folder"
            )
        changed = changed_settings(previous, settings)
        if changed:
            detail = ", ".join(f"{k}: {previous.get(k)!r} → {settings[k]!r}" for k in changed)
            hint = rerun_hint(previous, changed, path)
            raise ConfigError(f"{directory}: built with other settings ({detail}); {hint}use a new output folder")
    elif any(directory.glob("shard-*.safetensors")):
        raise ConfigError(f"{directory}: holds shards but no {SETTINGS_NAME}; use a new output folder")
    else:
        atomic_write_text(path, json.dumps(settings, indent=2) + "\n", fsync=True)
        return True
    return False

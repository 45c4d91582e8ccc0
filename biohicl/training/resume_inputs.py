"""Whether a resume trains on its checkpoint's inputs: the training data, by the sha256 of its files
(:func:`dataset_sha256`, which every checkpoint keeps in its ``trainer_state.json``, ``SourceRecord``'s entry), the
hierarchy file of ``--mesh_path``, which sets the SimL targets, by its sha256 (:func:`mesh_sha256`, kept there too),
and the base, by the signature an adapter checkpoint keeps in its ``biohicl_config.json`` (``base_signature``).

A resume names its data, hierarchy and base by path, which :mod:`~biohicl.training.run_settings` compares; a dataset
rebuilt in place, a hierarchy file rewritten, or a base folder rewritten with other weights, keeps the path, and the
run would go on training other data, targets or another base than its first steps did, its record naming only the
new. So :func:`check_resume_data` refuses such a
resume in one line before the model loads, and :func:`check_resume_base` once the base has loaded, before the
checkpoint's weights and any step (the signature samples the loaded weights). A checkpoint written before a record
resumes, saying in one log line what is not compared. Torch-free.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from biohicl.errors import ConfigError
from biohicl.provenance import files_sha256

logger = logging.getLogger(__name__)

#: The ``trainer_state.json`` entry (of ``stateful_callbacks``) in which each checkpoint keeps the code and data
#: digests of its run and its figures (:class:`~biohicl.training.summary.SourceRecord`).
SOURCE_RECORD = "SourceRecord"
#: The configs of a dataset folder training reads, in the order :func:`dataset_files` lists their files.
DATASET_CONFIGS = ("documents", "pairs")
#: How a refused resume ends, after what restores its input.
RESUME_REMEDY = "or train a new run in another --output_dir"


def dataset_files(dataset_path: str | Path | None) -> list[Path]:
    """The files a run's ``dataset_path`` holds its data in: a documents file itself; of a ``biohicl build-dataset``
    folder, the ``documents`` then the ``pairs`` parquet files (each config's as training finds them,
    :func:`~biohicl.data.documents.parquet_files`, in name order), or a ``save_to_disk`` folder's Arrow files of those
    configs; ``[]`` without a ``dataset_path`` or when nothing is there."""
    from biohicl.data.documents import parquet_files  # the data layer loads scipy: importing this module loads none

    if not dataset_path:
        return []
    path = Path(dataset_path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return [
        file
        for config in DATASET_CONFIGS
        for file in parquet_files(path, config) or sorted((path / config).glob("*.arrow"))
    ]


def dataset_sha256(dataset_path: str | Path | None) -> str | None:
    """sha256 (hex) of :func:`dataset_files`' bytes one after another (:func:`~biohicl.provenance.files_sha256`;
    one documents file: its ``sha256sum``), which tells two builds of other contents apart; None without files."""
    files = dataset_files(dataset_path)
    return files_sha256(files) if files else None


def mesh_sha256(mesh_path: str | Path | None) -> str | None:
    """sha256 (hex) of the hierarchy file ``mesh_path`` (``--mesh_path``; its ``sha256sum``); None without one or when
    it is no file (its reading fails in its own line)."""
    path = Path(mesh_path).expanduser() if mesh_path else None
    return files_sha256([path]) if path is not None and path.is_file() else None


#: What :func:`check_resume_data` compares: the record's name, the argument naming the input, the input's digest,
#: how the refusal says it differs and what to restore, and how a checkpoint without the record is logged.
RESUME_INPUTS = (
    ("dataset_sha256", "dataset_path", dataset_sha256, "on other data", "the data it was trained on",
     "digest of its training data", "data are"),
    ("mesh_sha256", "mesh_path", mesh_sha256, "with another hierarchy", "the hierarchy file it was trained with",
     "digest of its hierarchy file", "hierarchy is"),
)  # fmt: skip


def record_attributes(stateful_callbacks: Any) -> dict[str, Any] | None:
    """The attributes :class:`~biohicl.training.summary.SourceRecord` keeps in a ``TrainerState``'s
    ``stateful_callbacks`` (a ``trainer_state.json``'s), or None where it keeps none."""
    entry = stateful_callbacks.get(SOURCE_RECORD) if isinstance(stateful_callbacks, dict) else None
    attributes = entry.get("attributes") if isinstance(entry, dict) else None
    return attributes if isinstance(attributes, dict) else None


@functools.lru_cache(maxsize=64)
def not_compared(checkpoint: Path, record: str, what: str) -> None:
    """The log line of a checkpoint that keeps no ``record`` (of code before it): ``what`` is not compared. Said once
    a process: ``train_biohicl`` checks the checkpoint, then ``BioHiCLTrainer.train`` again."""
    logger.info("%s keeps no %s: this run's %s not compared with it", checkpoint, record, what)


def checkpoint_json(checkpoint: Path, name: str) -> dict[str, Any] | None:
    """The JSON object of ``checkpoint``'s file ``name``, or None when the file is missing or holds no object."""
    from biohicl.jsonio import read_json

    path = checkpoint / name
    value = read_json(path) if path.is_file() else None
    return value if isinstance(value, dict) else None


def check_resume_data(args: Any, checkpoint: str | Path) -> None:
    """A :class:`ConfigError` when ``args.dataset_path``'s files (:func:`dataset_sha256`), or ``args.mesh_path``'s
    hierarchy file (:func:`mesh_sha256`), now hash to another sha256 than ``checkpoint``'s ``trainer_state.json``
    records (rebuilt or rewritten since), naming both. A checkpoint that records none (of code before the record) is
    resumed, saying so in one log line; one of a run without that path, or an input that is gone (its reading fails in
    its own line), is not compared."""
    checkpoint = Path(checkpoint)
    state = checkpoint_json(checkpoint, "trainer_state.json") or {}
    attributes = record_attributes(state.get("stateful_callbacks")) or {}
    for record, option, digest, differs, restore, missing, what in RESUME_INPUTS:
        given = getattr(args, option, None)
        if record not in attributes:
            if given:
                not_compared(checkpoint, missing, what)
            continue
        recorded = attributes[record]
        now = digest(given) if isinstance(recorded, str) else None
        if now is not None and now != recorded:
            raise ConfigError(
                f"resume_from_checkpoint: {checkpoint} was trained {differs} ({option} {given}: sha256 "
                f"{recorded[:12]}… in its trainer_state.json, {now[:12]}… now); restore {restore}, {RESUME_REMEDY}"
            )


def check_resume_base(model: Any, checkpoint: str | Path, base_model: str | None) -> None:
    """A :class:`ConfigError` when ``model``'s base (just loaded from ``base_model``, before the checkpoint's weights)
    is not the one ``checkpoint``'s ``biohicl_config.json`` records (``base_signature``, compared as an adapter is
    with its base: :func:`~biohicl.models.signature.signature_mismatch`), naming what differs. A model that records
    no base signature (a full fine-tune, whose checkpoint holds every weight) is not compared; a checkpoint that
    records none (of code before the record) is resumed, saying so in one log line."""
    if getattr(getattr(model, "config", None), "base_signature", None) is None:
        return
    checkpoint = Path(checkpoint)
    recorded = (checkpoint_json(checkpoint, "biohicl_config.json") or {}).get("base_signature")
    if not isinstance(recorded, dict):
        not_compared(checkpoint, "signature of its base", "base is")
        return
    from biohicl.models.signature import signature_mismatch

    if why := signature_mismatch(recorded, model.backbone):
        raise ConfigError(
            f"resume_from_checkpoint: {checkpoint} was trained on another base (base_model {base_model}: {why}, by "
            f"its biohicl_config.json's base_signature); restore the base it was trained on, {RESUME_REMEDY}"
        )

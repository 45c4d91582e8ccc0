"""``training_summary.json``: what a run trained on, with what, over how many processes, and what it kept.

:func:`batch_scale` says how the batches were shared: the processes that trained (``world_size``), the sampler's
batches of an epoch (all processes together), each process's share of them (as accelerate's
``BatchSamplerShard`` splits them) and the documents behind one optimizer step. :func:`run_summary` is the whole
record :func:`~biohicl.training.run.train_biohicl` writes; its ``biohicl_source`` lists the code that trained the run
(:func:`~biohicl.provenance.source_digest`), each process that trained part of it, which :class:`SourceRecord`
keeps in every checkpoint's ``trainer_state.json`` for the process that resumes from it, as :class:`ObjectiveRecord`
keeps the run's objective there for the resume to compare; its ``dataset_sha256`` names the data it trained on
(:func:`dataset_sha256`, hashed by :class:`SourceRecord` as training begins).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from biohicl.provenance import UNKNOWN_SOURCE, files_sha256, source_digest
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.objective import objective_record
from biohicl.training.run_settings import OBJECTIVE_RECORD
from biohicl.training.selection import selection_summary


def batch_scale(
    sampler: torch.utils.data.Sampler, args: BioHiCLTrainingArguments, world_size: int, process_index: int = 0
) -> dict[str, int]:
    """``world_size``; ``batches_per_epoch``: the sampler's batches of ``per_device_train_batch_size`` documents in an
    epoch, all processes together; ``batches_per_epoch_per_process``: the ones process ``process_index`` runs (with
    accelerate's default ``even_batches`` a process short of one loops back to the epoch's first batches);
    ``documents_per_optimizer_step``: the sampler's batch (its ``batch_size`` when it has one: a sampler caps it at
    the documents there are, else ``per_device_train_batch_size``) × ``gradient_accumulation_steps`` ×
    ``world_size`` (under ``split_batches`` the processes split each batch, so × 1), the documents one step trains
    on when batches are full (a label group smaller than the batch gives smaller ones)."""
    from accelerate.data_loader import BatchSamplerShard

    split = bool(args.accelerator_config.split_batches)
    per_process = len(sampler)
    if world_size > 1:
        shard = BatchSamplerShard(
            sampler, world_size, process_index, split_batches=split, even_batches=args.accelerator_config.even_batches
        )
        per_process = len(shard)
    sharing = 1 if split else world_size
    batch = getattr(sampler, "batch_size", None) or args.per_device_train_batch_size
    return {
        "world_size": world_size,
        "batches_per_epoch": len(sampler),
        "batches_per_epoch_per_process": per_process,
        "documents_per_optimizer_step": batch * args.gradient_accumulation_steps * sharing,
    }


def documents_per_second(documents: int, metrics: Mapping[str, Any]) -> float | None:
    """The training documents the loss saw per second of transformers' ``train_runtime`` (the steps this process
    trained, all processes' documents), or None when it trained none. transformers' ``train_samples_per_second``
    counts ``max_steps`` × the nominal batch, or the dataset's rows × epochs: neither is the documents the sampler's
    batches held (a batch capped at the documents there are, an epoch's last step with fewer micro-batches, an epoch
    of more batch places than rows)."""
    runtime = metrics.get("train_runtime")
    return round(documents / runtime, 3) if documents and runtime else None


def trained_by(state: Any) -> list[str]:
    """The code digests that trained a run whose ``TrainerState`` is ``state``, as training begins: those its
    checkpoint recorded (:class:`SourceRecord`; ``unknown`` for steps a checkpoint without that record holds), then
    this process's when it has steps left to train (none for a resume at the run's last step)."""
    entry = (getattr(state, "stateful_callbacks", None) or {}).get(SourceRecord.__name__)
    attributes = entry.get("attributes") if isinstance(entry, dict) else None
    listed = attributes.get("sources") if isinstance(attributes, dict) else None
    if isinstance(listed, list):
        found = [s for s in listed if isinstance(s, str)]
    else:  # no record: steps already trained were trained by code that kept none
        found = [UNKNOWN_SOURCE] if state.global_step > 0 else []
    if state.max_steps <= 0 or state.global_step < state.max_steps:
        found.append(source_digest())
    return list(dict.fromkeys(found))


#: The configs of a dataset folder training reads, in the order :func:`dataset_files` lists their files.
DATASET_CONFIGS = ("documents", "pairs")


def dataset_files(dataset_path: str | Path | None) -> list[Path]:
    """The files a run's ``dataset_path`` holds its data in: a documents file itself; of a ``biohicl build-dataset``
    folder, the ``documents`` then the ``pairs`` parquet files (each config's as training finds them,
    :func:`~biohicl.data.documents.parquet_files`, in name order), or a ``save_to_disk`` folder's Arrow files of those
    configs; ``[]`` without a ``dataset_path`` or when nothing is there."""
    from biohicl.data.documents import parquet_files

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


class SourceRecord(TrainerCallback, ExportableState):
    """Keeps :func:`trained_by` in the ``TrainerState``, so every checkpoint's ``trainer_state.json`` lists the code
    digests that trained up to it and a resumed run's summary names them all (a checkpoint written before this
    record: ``unknown``, then the code that resumed it); and the :func:`dataset_sha256` of the run's ``dataset_path``,
    hashed once as this process's training begins (a resume hashes its data again)."""

    def __init__(self, sources: Sequence[str] = (), dataset_sha256: str | None = None):
        self.sources = list(sources)
        self.dataset_sha256 = dataset_sha256

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.sources = trained_by(state)
        self.dataset_sha256 = dataset_sha256(getattr(args, "dataset_path", None))
        state.stateful_callbacks[type(self).__name__] = self.state()  # an older checkpoint has no entry to update

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {"sources": list(self.sources), "dataset_sha256": self.dataset_sha256}}


class ObjectiveRecord(TrainerCallback, ExportableState):
    """Keeps the run's objective (``config``: :func:`~biohicl.training.objective.objective_record` of its loss) in the
    ``TrainerState``, so every checkpoint's ``trainer_state.json`` says which loss trained up to it and a resume
    from it under another is refused (:func:`~biohicl.training.run_settings.check_resume_objective`)."""

    def __init__(self, config: Mapping[str, Any] | None = None):
        self.config = dict(config or {})

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        state.stateful_callbacks[OBJECTIVE_RECORD] = self.state()  # a checkpoint of older code has no entry to update

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {"config": self.config}}


def recorded_dataset(state: Any, args: Any) -> str | None:
    """The :func:`dataset_sha256` :class:`SourceRecord` kept when this process's training began (hashed now when it
    kept none: a trainer without the record)."""
    entry = (getattr(state, "stateful_callbacks", None) or {}).get(SourceRecord.__name__)
    attributes = entry.get("attributes") if isinstance(entry, dict) else None
    if isinstance(attributes, dict) and "dataset_sha256" in attributes:
        return attributes["dataset_sha256"]
    return dataset_sha256(getattr(args, "dataset_path", None))


def recorded_sources(state: Any) -> list[str]:
    """The digests :class:`SourceRecord` kept when this process's training began (:func:`trained_by` if it kept
    none)."""
    entry = (getattr(state, "stateful_callbacks", None) or {}).get(SourceRecord.__name__)
    sources = entry.get("attributes", {}).get("sources") if isinstance(entry, dict) else None
    return list(sources) if isinstance(sources, list) else trained_by(state)


def run_summary(
    trainer: Any, model: Any, sampler: torch.utils.data.Sampler, data_stats: dict[str, Any], result: Any, start: float
) -> dict[str, Any]:
    """The ``training_summary.json`` record of a run ``trainer`` finished with ``result``: data and batch statistics
    (:func:`batch_scale`), the loss that trained (its class and ``get_config_dict()``, not the arguments'),
    ``model``'s parameter counts, steps, the model selection, this process's runtime since ``start``, the
    documents trained on and their rate (:func:`documents_per_second`), ``biohicl_source``: the code digests that
    trained it (:func:`trained_by`), and ``dataset_sha256``: the sha256 of its dataset's files as training began
    (:func:`dataset_sha256`; None without a ``dataset_path``)."""
    trainable, total = model.trainable_parameters()
    return {
        "data": data_stats,
        "batch_sampler": type(sampler).__name__,
        **batch_scale(sampler, trainer.args, trainer.accelerator.num_processes, trainer.args.process_index),
        "loss": objective_record(trainer.loss),  # what trained, not the arguments
        "trainable_parameters": trainable,
        "total_parameters": total,
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        # model selection on dev data (None without metric_for_best_model): step 0 is the base weights
        **selection_summary(trainer.selection),
        "runtime_s": round(time.time() - start, 1),  # this process: after a resume, the steps since resuming
        "documents_trained": trainer.documents_trained,  # this call's steps, all processes together
        "documents_per_second": documents_per_second(trainer.documents_trained, result.metrics),
        "resumed_at_step": trainer.resumed_at_step,  # read before training: the checkpoint may be gone now
        "biohicl_source": recorded_sources(trainer.state),
        "dataset_sha256": recorded_dataset(trainer.state, trainer.args),
    }

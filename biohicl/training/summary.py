"""``training_summary.json``: what a run trained on, with what, over how many processes, and what it kept.

:func:`batch_scale` says how the batches were shared: the processes that trained (``world_size``), the sampler's
batches of an epoch (all processes together), each process's share of them (as accelerate's
``BatchSamplerShard`` splits them) and the documents behind one optimizer step. :func:`run_summary` is the whole
record :func:`~biohicl.training.run.train_biohicl` writes; its ``biohicl_source`` lists the code that trained the run
(:func:`~biohicl.provenance.source_digest`), each process that trained part of it, which :class:`SourceRecord`
keeps in every checkpoint's ``trainer_state.json`` for the process that resumes from it, as :class:`ObjectiveRecord`
keeps the run's objective there for the resume to compare; its ``dataset_sha256`` names the data it trained on
(:func:`~biohicl.training.resume_inputs.dataset_sha256`, hashed by :class:`SourceRecord` as training begins, which a
resume must find unchanged, as the ``--mesh_path`` file's ``mesh_sha256`` its checkpoints keep); ``versions`` and
``source_git`` the software that trained it, taken as each process's training begins and kept in each checkpoint
too (:func:`trained_with`: one value, else the list of a resumed run's values); and its
``runtime_s``, ``documents_trained`` and ``documents_per_second`` cover the whole run, each resumed part's figures
up to its checkpoint kept there by :class:`SourceRecord` (:func:`kept_figures`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from biohicl.provenance import UNKNOWN_SOURCE, git_revision, library_versions, source_digest
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.objective import objective_record
from biohicl.training.resume_inputs import SOURCE_RECORD, dataset_sha256, mesh_sha256, record_attributes
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


def documents_per_second(documents: int, train_runtime: float | None) -> float | None:
    """The training documents the loss saw per second of training (transformers' ``train_runtime``, summed over a
    resumed run's parts), or None when it trained none. transformers' ``train_samples_per_second`` counts
    ``max_steps`` × the nominal batch, or the dataset's rows × epochs: neither is the documents the sampler's batches
    held (a batch capped at the documents there are, an epoch's last step with fewer micro-batches, an epoch of more
    batch places than rows)."""
    return round(documents / train_runtime, 3) if documents and train_runtime else None


def trained_by(state: Any) -> list[str]:
    """The code digests that trained a run whose ``TrainerState`` is ``state``, as training begins: those its
    checkpoint recorded (:class:`SourceRecord`; ``unknown`` for steps a checkpoint without that record holds), then
    this process's when it has steps left to train (none for a resume at the run's last step)."""
    return [source for source in trained_with(state, "sources", source_digest) if isinstance(source, str)]


def trained_with(state: Any, name: str, now: Callable[[], Any]) -> list[Any]:
    """What trained a run whose ``TrainerState`` is ``state``, as training begins, each value once in the order the
    run's processes had it: those its checkpoint's :class:`SourceRecord` kept as ``name`` (``unknown`` for steps a
    checkpoint without them holds), then this process's (``now()``) when it has steps left to train."""
    listed = (record_attributes(getattr(state, "stateful_callbacks", None)) or {}).get(name)
    found = list(listed) if isinstance(listed, list) else [UNKNOWN_SOURCE] if state.global_step > 0 else []
    if state.max_steps <= 0 or state.global_step < state.max_steps:
        found.append(now())
    return [value for i, value in enumerate(found) if value not in found[:i]]


#: The run's figures :class:`SourceRecord` keeps up to each checkpoint (:func:`kept_figures`).
FIGURES = ("runtime_s", "train_runtime_s", "documents_trained", "runtime_from_step")


def kept_figures(state: Any) -> dict[str, Any]:
    """The run's figures up to the step ``state`` (a ``TrainerState``) is at, as :class:`SourceRecord` kept them:
    ``runtime_s`` (wall seconds of its processes, each up to the checkpoint the next resumed from),
    ``train_runtime_s`` (of those, in transformers' training loop), ``documents_trained`` (all processes together),
    each counted from ``runtime_from_step``: 0, or the step of a checkpoint written before the record, whose earlier
    figures are unknown. A fresh state: zeros from step 0."""
    attributes = record_attributes(getattr(state, "stateful_callbacks", None)) or {}
    if state.global_step > 0 and all(isinstance(attributes.get(name), int | float) for name in FIGURES):
        return {name: attributes[name] for name in FIGURES}
    return counted_from(state.global_step)


def counted_from(step: int) -> dict[str, Any]:
    """Figures (:data:`FIGURES`) that start at ``step``: nothing counted yet."""
    return {"runtime_s": 0.0, "train_runtime_s": 0.0, "documents_trained": 0, "runtime_from_step": step}


class SourceRecord(TrainerCallback, ExportableState):
    """Keeps :func:`trained_by` in the ``TrainerState``, so every checkpoint's ``trainer_state.json`` lists the code
    digests that trained up to it and a resumed run's summary names them all (a checkpoint written before this
    record: ``unknown``, then the code that resumed it), and so the git revisions (``source_git``,
    :func:`~biohicl.provenance.git_revision`) and library ``versions`` that trained it (:func:`trained_with`); the
    :func:`dataset_sha256` of the run's ``dataset_path`` and the :func:`mesh_sha256` of its ``mesh_path``, hashed
    once as this process's training begins (a resume hashes them again, after
    :func:`~biohicl.training.resume_inputs.check_resume_data` found them unchanged); and the run's figures up to each
    save (:func:`kept_figures`): those its checkpoint kept (:attr:`before`) plus this process's since ``started``
    (default: as training begins), its documents those of the trainer it follows (:meth:`follow`; summed over the
    processes at each step that may save or evaluate, a collective every process reaches)."""

    def __init__(self, sources: Sequence[str] = (), dataset_sha256: str | None = None, started: float | None = None):
        self.sources = list(sources)
        self.dataset_sha256 = dataset_sha256
        self.mesh_sha256: str | None = None
        self.source_git: list[Any] = []
        self.versions: list[Any] = []
        self.started = started
        self.before: dict[str, Any] | None = None  # the figures of the steps its checkpoint holds, as training begins
        self.train_began: float | None = None
        self.trainer: Any = None
        self.documents = 0  # all processes' as of the last step that may save (one process: read when saving)

    def follow(self, trainer: Any) -> SourceRecord:
        """Count the documents ``trainer`` (a :class:`~biohicl.training.trainer.BioHiCLTrainer`) trains on."""
        self.trainer = trainer
        return self

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.sources = trained_by(state)
        self.source_git = trained_with(state, "source_git", git_revision)  # taken now: a commit made later trains none
        self.versions = trained_with(state, "versions", library_versions)
        self.dataset_sha256 = dataset_sha256(getattr(args, "dataset_path", None))
        self.mesh_sha256 = mesh_sha256(getattr(args, "mesh_path", None))
        self.before, self.train_began, self.documents = kept_figures(state), time.time(), 0
        self.started = self.train_began if self.started is None else self.started
        state.stateful_callbacks[SOURCE_RECORD] = self.state()  # an older checkpoint has no entry to update

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._count(control)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._count(control)

    def _count(self, control: Any) -> None:
        trainer = self.trainer
        if trainer is None or trainer.accelerator.num_processes == 1:
            return
        if control.should_save or control.should_evaluate:  # every process: a save_strategy "best" saves after one
            count = torch.tensor(trainer.documents_trained, device=trainer.args.device)
            self.documents = int(trainer.accelerator.reduce(count, reduction="sum"))

    def figures(self) -> dict[str, Any]:
        """The run's figures now: :attr:`before` plus this process's (nothing before training begins; no documents
        counted without a trainer followed, so a resume counts them from its checkpoint's step)."""
        before = self.before or counted_from(0)
        if self.train_began is None or self.started is None:
            return before
        trainer, now = self.trainer, time.time()
        if trainer is None:
            documents = None
        else:
            documents = trainer.documents_trained if trainer.accelerator.num_processes == 1 else self.documents
        return {
            "runtime_s": round(before["runtime_s"] + now - self.started, 1),
            "train_runtime_s": round(before["train_runtime_s"] + now - self.train_began, 3),
            "documents_trained": None if documents is None else before["documents_trained"] + documents,
            "runtime_from_step": before["runtime_from_step"],
        }

    def state(self) -> dict[str, Any]:
        software = {"source_git": list(self.source_git), "versions": list(self.versions)}
        inputs = {"dataset_sha256": self.dataset_sha256, "mesh_sha256": self.mesh_sha256}
        attributes = {"sources": list(self.sources), **software, **inputs, **self.figures()}
        return {"args": {}, "attributes": attributes}


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
    attributes = record_attributes(getattr(state, "stateful_callbacks", None))
    if attributes is not None and "dataset_sha256" in attributes:
        return attributes["dataset_sha256"]
    return dataset_sha256(getattr(args, "dataset_path", None))


def recorded_sources(state: Any) -> list[str]:
    """The digests :class:`SourceRecord` kept when this process's training began (:func:`trained_by` if it kept
    none)."""
    sources = (record_attributes(getattr(state, "stateful_callbacks", None)) or {}).get("sources")
    return list(sources) if isinstance(sources, list) else trained_by(state)


def recorded_software(state: Any, name: str, now: Callable[[], Any]) -> Any:
    """The summary's ``source_git`` or ``versions`` (``name``), each process's as its training began (a commit made
    in the checkout later is not named): the one value :class:`SourceRecord` kept when every process that trained the
    run had it, else the list of them in the order they trained (a resume under another commit, a dirty checkout or
    other libraries), so no one commit is named for a run several trained; :func:`trained_with` where it kept none."""
    values = (record_attributes(getattr(state, "stateful_callbacks", None)) or {}).get(name)
    values = values if isinstance(values, list) and values else trained_with(state, name, now)
    return values[0] if len(values) == 1 else values


def run_figures(trainer: Any, result: Any, start: float) -> dict[str, Any]:
    """The whole run's ``runtime_s``, ``documents_trained`` and ``documents_per_second`` (over its training time),
    counted from ``runtime_from_step``: the figures of the steps its checkpoint held (:class:`SourceRecord`'s
    :attr:`~SourceRecord.before`; a resume at the last step, which trains nothing and calls no callback, the
    checkpoint's own) plus this process's since ``start``, so a resume keeps its first part's."""
    record = next((cb for cb in trainer.callback_handler.callbacks if isinstance(cb, SourceRecord)), None)
    before = record.before if record is not None and record.before is not None else kept_figures(trainer.state)
    documents = before["documents_trained"] + trainer.documents_trained  # this call's, all processes together
    train_runtime = before["train_runtime_s"] + float(result.metrics.get("train_runtime") or 0)
    return {
        "runtime_s": round(before["runtime_s"] + time.time() - start, 1),
        "documents_trained": documents,
        "documents_per_second": documents_per_second(documents, train_runtime),
        "runtime_from_step": before["runtime_from_step"],
    }


def run_summary(
    trainer: Any, model: Any, sampler: torch.utils.data.Sampler, data_stats: dict[str, Any], result: Any, start: float
) -> dict[str, Any]:
    """The ``training_summary.json`` record of a run ``trainer`` finished with ``result``: data and batch statistics
    (:func:`batch_scale`), the loss that trained (its class and ``get_config_dict()``, not the arguments'),
    ``model``'s parameter counts, steps, the model selection, the whole run's runtime and documents
    (:func:`run_figures`; this process's began at ``start``), ``biohicl_source``: the code digests that trained it
    (:func:`trained_by`), ``dataset_sha256``: the sha256 of its dataset's files as training began
    (:func:`dataset_sha256`; None without a ``dataset_path``), and the software that trained it, as each process's
    training began (:func:`recorded_software`): ``versions`` (:func:`~biohicl.provenance.library_versions`) and
    ``source_git`` (:func:`~biohicl.provenance.git_revision`: the commit of a checkout, None for an installed
    package)."""
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
        **run_figures(trainer, result, start),  # the whole run's, its resumed parts' kept in their checkpoints
        "resumed_at_step": trainer.resumed_at_step,  # read before training: the checkpoint may be gone now
        "biohicl_source": recorded_sources(trainer.state),
        "dataset_sha256": recorded_dataset(trainer.state, trainer.args),
        "versions": recorded_software(trainer.state, "versions", library_versions),
        "source_git": recorded_software(trainer.state, "source_git", git_revision),
    }

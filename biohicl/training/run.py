"""One training run, as ``biohicl train``, the demo and the study do it: data, batches, model, trainer, save.

:func:`train_biohicl` reads the training documents (:func:`load_training_data`), builds the batch sampler
(:func:`build_batch_sampler`), the model with LoRA (:func:`build_model`), the loss, the collator
(:func:`~biohicl.training.assembly.build_collator`) and the :class:`~biohicl.training.trainer.BioHiCLTrainer`,
trains (resuming when asked, from a checkpoint of this run's settings and objective:
:mod:`~biohicl.training.run_settings`) and writes the run folder.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from biohicl.atomic import atomic_write_json, atomic_write_text
from biohicl.data.columns import column_array, column_list, in_memory_dataset
from biohicl.data.documents import (
    document_text,
    label_column,
    other_hierarchy,
    parquet_files,
    read_documents,
    read_parquet,
)
from biohicl.data.records import INDEXING
from biohicl.data.samplers import MeshPairBatchSampler, RandomBatchSampler, mine_negatives
from biohicl.errors import ConfigError, DataError
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.mesh.label_groups import check_tag_uis, siml_label_weights
from biohicl.models.config import shown_base
from biohicl.training.arg_checks import check_output_folder
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.assembly import build_collator, build_model, training_mesh
from biohicl.training.checkpoint import TRAINING_ARGS_JSON, check_resume_point, checkpoint_step, resolve_resume
from biohicl.training.document_file import clean_document_file, mesh_path_hint, pubmedqa_dev_task
from biohicl.training.objective import build_loss, objective_record
from biohicl.training.reporting import record_tensorboard_folder, resume_tensorboard_folder
from biohicl.training.resume_inputs import check_resume_base
from biohicl.training.run_lock import run_folder_lock
from biohicl.training.run_settings import check_run_folder, dev_selection_notice
from biohicl.training.selection import EVALUATIONS_NAME, evaluation_rows
from biohicl.training.summary import ObjectiveRecord, SourceRecord, run_summary
from biohicl.training.trainer import BioHiCLTrainer, Evaluator, check_evaluation

logger = logging.getLogger(__name__)

CURVES_NAME = "training_curves.png"
SUMMARY_NAME = "training_summary.json"


@dataclass
class TrainingData:
    """Training documents (``text`` and ``labels`` columns) and, when the dataset has them, their mined pairs."""

    documents: Any  # datasets.Dataset
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # anchor, partner, siml (indices into documents)
    stats: dict[str, Any]


def check_pubmedqa_dev(args: BioHiCLTrainingArguments, path: Path) -> None:
    """A :class:`ConfigError` when ``pubmedqa:dev`` (or ``pubmedqa-context:dev``) is an evaluation task but the
    dataset drew its dev split with other settings than the evaluation's (``--dev_seed``, ``--pubmedqa_dev_size``):
    some of the questions it would score on are then training documents."""
    from biohicl.data.splits import DEV_SEED, PUBMEDQA_DEV_SIZE
    from biohicl.data.storage import read_build_summary

    task = pubmedqa_dev_task(args.eval_tasks)
    if task is None:
        return
    dev = (read_build_summary(path) or {}).get("dev") or {}
    drawn = (dev.get("seed", DEV_SEED), dev.get("pubmedqa_size", PUBMEDQA_DEV_SIZE))
    if drawn != (DEV_SEED, PUBMEDQA_DEV_SIZE):
        raise ConfigError(
            f"eval_tasks: {task} scores the {PUBMEDQA_DEV_SIZE} PubMedQA dev questions of seed {DEV_SEED}, but "
            f"{path} drew its dev split with seed {drawn[0]} and {drawn[1]} questions, so some of them are training "
            f"documents; rebuild it with the default --dev_seed and --pubmedqa_dev_size, or leave {task} out"
        )


def warn_other_hierarchy(path: Path, mesh: MeshHierarchy) -> None:
    """A warning when the dataset's ``summary.json`` records another hierarchy (``mesh_version``/``mesh_source``)
    than the run's: not refused (it may be meant), but labels of the other hierarchy are dropped."""
    if built := other_hierarchy(path, mesh.version, mesh.source):
        logger.warning(
            "%s was built with MeSH %s (%s), this run computes SimL with MeSH %s (%s); give the dataset's hierarchy "
            "with --mesh_path unless that is meant", path, built[0], built[1], mesh.version, Path(mesh.source).name,
        )  # fmt: skip


def load_training_data(args: BioHiCLTrainingArguments, mesh: MeshHierarchy, titles: bool | None = None) -> TrainingData:
    """Read the documents of ``args.train_splits`` (and their mined pairs) from ``args.dataset_path``.

    ``dataset_path`` is a ``biohicl build-dataset`` folder (parquet configs ``documents`` and ``pairs``) or a single
    ``.jsonl``/``.json``/``.parquet`` file of documents (``title``, ``abstract`` or ``text``, MeSH UIs or names).
    Documents of other splits (PubMedQA's test abstracts among them) are dropped, as are labels the MeSH hierarchy
    cannot place (with a warning, as for a dataset built with another hierarchy); pairs are re-indexed to the kept
    documents. A file is first cleaned as the build cleans a corpus (:func:`clean_document_file`). ``title`` and
    ``abstract`` columns come along for the title InfoNCE term when ``titles`` (default: ``args.title_weight > 0``).
    """
    titles = args.title_weight > 0 if titles is None else titles
    if not args.dataset_path:
        raise ConfigError("dataset_path: required (a `biohicl build-dataset` folder or a documents file)")
    path = Path(args.dataset_path).expanduser()
    check_pubmedqa_dev(args, path)
    warn_other_hierarchy(path, mesh)
    documents = read_documents(path)
    pairs_table = None
    if path.is_dir() and (pairs_files := parquet_files(path, "pairs")):
        pairs_table = read_parquet(pairs_files, path / "pairs")
    column = label_column(documents, path)
    total, file_stats = len(documents), {}
    if path.is_file():  # deduplicated and decontaminated here, where a built dataset was when it was built
        documents, file_stats = clean_document_file(documents, path, args, mesh)
    if "split" in documents.column_names:
        wanted = set(args.train_splits)
        keep = [i for i, s in enumerate(column_list(documents, "split")) if s in wanted]
    else:
        keep = list(range(len(documents)))
    if args.max_train_documents is not None:
        keep = keep[: args.max_train_documents]
    if not keep:
        raise ConfigError(f"{path}: no documents in split(s) {', '.join(args.train_splits)}")
    if len(keep) < 2:
        raise DataError(
            f"1 training document (split {', '.join(args.train_splits)}); the BioHiCL losses compare documents "
            "within a batch and need at least 2",
            path,
        )

    rows = documents.select(keep)
    # whole columns through arrow: iterating a datasets 5 Column formats every row (seconds per 100k rows)
    parts = {name: column_list(rows, name) for name in ("text", "title", "abstract") if name in rows.column_names}
    texts = [document_text({name: values[i] for name, values in parts.items()}) for i in range(len(rows))]
    raw_labels = column_list(rows, column)  # a file's read as the build reads them (clean_document_file)
    labels = [mesh.known_labels(labs) for labs in raw_labels]
    dropped = sum(len(r or ()) for r in raw_labels) - sum(len(lab) for lab in labels)
    # of those, descriptors MeSH knows but places nowhere in the tree (Male, Female): not unknown, just not in SimL
    treeless = sum(1 for r in raw_labels for label in r or () if label in mesh.trees and not mesh.trees[label])
    if not any(labels):
        raise DataError(
            f"no training document has a MeSH label this hierarchy places in the tree ({dropped} labels dropped)", path
        )
    if len({frozenset(lab) for lab in labels}) == 1:
        raise DataError(
            f"all {len(labels)} training documents have the same MeSH label set, so SimL = 1 for every pair: "
            "no negatives, and the regression would pull every embedding together; nothing to learn",
            path,
        )
    check_tags_dropped = 0
    if args.drop_check_tags:
        tags = check_tag_uis(mesh)
        before = sum(len(lab) for lab in labels)
        labels = [[u for u in lab if u not in tags] for lab in labels]
        check_tags_dropped = before - sum(len(lab) for lab in labels)
    columns = {"text": texts, "labels": labels}
    if titles and "text" not in rows.column_names:  # the title InfoNCE term's, only for it (MBs at 80k documents)
        columns |= {name: [str(t or "") for t in parts[name]] for name in ("title", "abstract") if name in parts}
    if "label_kind" in rows.column_names:
        columns["label_kind"] = [str(k or INDEXING) for k in column_list(rows, "label_kind")]
    train = in_memory_dataset(columns)
    unlabelled = sum(1 for lab in labels if not lab)
    if dropped - treeless:  # labels this hierarchy cannot place (tree-less Male/Female and check tags are meant)
        logger.warning(
            "%d label(s) of the training documents unknown to MeSH %s (%s) dropped; %d of %d training documents "
            "have no label left (%s)",
            dropped - treeless, mesh.version, Path(mesh.source).name, unlabelled, len(labels),
            mesh_path_hint(path),
        )  # fmt: skip

    pairs = None
    if pairs_table is not None and len(pairs_table):
        where = path / "pairs"
        remap = np.full(total, -1, dtype=np.int64)
        remap[np.asarray(keep)] = np.arange(len(keep))
        anchors = remap[_pair_indices(pairs_table, ("anchor", "anchor_idx", "anchor_index"), total, where)]
        partners = remap[
            _pair_indices(pairs_table, ("partner", "partner_idx", "partner_index", "positive"), total, where)
        ]
        siml = _pair_siml(pairs_table, where)
        inside = (anchors >= 0) & (partners >= 0)
        pairs = (anchors[inside], partners[inside], siml[inside])
    stats = {
        "documents": len(train),
        "documents_in_dataset": total,
        "splits": list(args.train_splits),
        "labels_dropped_unknown": int(dropped - treeless),
        "labels_without_tree_position": int(treeless),
        "check_tags_dropped": int(check_tags_dropped),
        "documents_without_labels": unlabelled,
        "mined_pairs": None if pairs is None else len(pairs[0]),
        "label_kinds": dict(Counter(columns["label_kind"])) if "label_kind" in columns else None,
        **file_stats,
    }
    return TrainingData(train, pairs, stats)


def _pair_indices(table: Any, names: tuple[str, ...], total: int, where: Path) -> np.ndarray:
    """The first of ``names`` among the pairs table's columns, as document indices in ``[0, total)``."""
    column = next((c for c in names if c in table.column_names), None)
    if column is None:
        raise DataError(
            f"no {names[0]} column (one of {', '.join(names)}; it has {', '.join(table.column_names)})", where
        )
    values = column_array(table, column)
    if values.dtype.kind not in "iu":
        raise DataError(f"{column}: expected integer document indices, got {values.dtype}", where)
    bad = np.flatnonzero((values < 0) | (values >= total))
    if len(bad):
        raise DataError(
            f"{column} {values[bad[0]]} is not a document index (the dataset has {total} documents)",
            where,
            int(bad[0]) + 1,
        )
    return values.astype(np.int64)


def _pair_siml(table: Any, where: Path) -> np.ndarray:
    """The pairs table's ``siml`` column as finite floats."""
    if "siml" not in table.column_names:
        raise DataError(f"no siml column (it has {', '.join(table.column_names)})", where)
    values = column_array(table, "siml")
    if values.dtype.kind not in "iuf":
        raise DataError(f"siml: expected numbers, got {values.dtype}", where)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise DataError(f"siml {values[bad[0]]} is not a finite number", where, int(bad[0]) + 1)
    return values.astype(np.float64)


def build_batch_sampler(
    args: BioHiCLTrainingArguments, data: TrainingData, mesh: MeshHierarchy
) -> torch.utils.data.Sampler:
    """The batch sampler ``args.batch_sampler`` names, seeded with ``args.data_seed`` (or ``args.seed``).

    Documents of different label kinds never share a batch; with ``batch_negatives`` each anchor also brings one
    of its negatives (``args.negative``) when the batch has none of them yet.
    """
    seed = args.data_seed if args.data_seed is not None else args.seed
    size = args.per_device_train_batch_size
    n = len(data.documents)
    groups = column_list(data.documents, "label_kind") if "label_kind" in data.documents.column_names else None
    if args.batch_sampler == "random":
        return RandomBatchSampler(n, size, seed, groups=groups)
    label_weights = siml_label_weights(mesh, args.check_tag_weight, args.study_design_weight)
    labels = column_list(data.documents, "labels")
    negatives = None
    if args.batch_negatives:
        negatives = mine_negatives(
            labels, mesh, args.negative, args.beta, args.use_ancestors, args.use_depth_weight,
            label_weights, groups=groups, seed=seed, progress=not args.disable_tqdm,
        )  # fmt: skip
    default_siml = args.use_ancestors and args.use_depth_weight and not args.drop_check_tags and not label_weights
    if data.pairs is not None and default_siml:
        anchors, partners, siml = data.pairs
        if args.max_partners is not None:
            logger.warning(
                "max_partners=%d is not applied: the built dataset's pairs (its top_k pairs per document) are used "
                "as they are; max_partners caps only the partners training mines itself",
                args.max_partners,
            )
        return MeshPairBatchSampler.from_pairs(
            anchors, partners, siml, n, size, beta=args.beta, seed=seed, groups=groups, negatives=negatives
        )
    # no mined pairs (or SimL switched to another variant): mine them here with the run's own SimL
    return MeshPairBatchSampler.from_labels(
        labels,
        mesh,
        size,
        beta=args.beta,
        ancestors=args.use_ancestors,
        depth_weight=args.use_depth_weight,
        seed=seed,
        label_weights=label_weights,
        groups=groups,
        negatives=negatives,
        max_partners=args.max_partners,
        progress=not args.disable_tqdm,
    )


def training_inputs(args: BioHiCLTrainingArguments, loss: Any) -> tuple[MeshHierarchy, TrainingData]:
    """The hierarchy and the data a run of the objective ``loss`` trains on (it says whether the data need titles),
    read before the model."""
    mesh = training_mesh(args)
    return mesh, load_training_data(args, mesh, titles="title_embeddings" in getattr(loss, "extra_inputs", ()))


def train_biohicl(
    args: BioHiCLTrainingArguments,
    callbacks: Sequence[TrainerCallback] | None = None,
    *,
    evaluator: Evaluator | None = None,
    peft_config: Any = None,
    loss: torch.nn.Module | None = None,
    selection_notice: Callable[[BioHiCLTrainingArguments], str | None] = dev_selection_notice,
) -> Path:
    """Train BioHiCL as ``args`` says and save the run; returns the run directory (``args.output_dir``).

    ``evaluator`` (``model -> {metric: value}``, e.g. :func:`biohicl.evaluation.evaluator.evaluator_from_args`)
    runs at each evaluation and is required with an ``eval_strategy``; ``peft_config`` replaces the LoRA settings of
    ``args`` (:func:`build_model`); ``loss`` replaces the objective ``args`` describe (any loss returning a tensor
    or a dict of components); ``selection_notice`` gives the warning line of a run that keeps its last step (the
    study's names its config's keys, not options).

    The run directory gets the final model (``save_pretrained``: adapter + tokenizer + ``biohicl_config.json``),
    ``trainer_state.json``, ``biohicl_training_args.json``, ``training_summary.json`` (data and batch statistics,
    the processes and documents per optimizer step (:func:`~biohicl.training.summary.batch_scale`), the loss
    trained (its class and ``get_config_dict()``), model selection, runtime), ``training_curves.png`` and, when it
    evaluated during training, ``dev_evaluations.json`` (each evaluated step's metrics,
    :func:`~biohicl.training.selection.evaluation_rows`).
    """
    check_output_folder(args)  # again: a caller may have changed output_dir since; before anything is read
    check_evaluation(args, evaluator)  # before any slow work
    loss = loss if loss is not None else build_loss(args)  # the whole objective: refused here when it has no term
    with run_folder_lock(args.output_dir, main=args.process_index == 0):  # another run writing there: refused
        return _train_and_save(args, callbacks or [], evaluator, peft_config, loss, selection_notice)


def _train_and_save(
    args: BioHiCLTrainingArguments, callbacks: Sequence[TrainerCallback], evaluator: Evaluator | None,
    peft_config: Any, loss: torch.nn.Module, selection_notice: Callable[[BioHiCLTrainingArguments], str | None],
) -> Path:  # fmt: skip
    """:func:`train_biohicl` once its run folder is locked: the folder's checkpoints checked, the run trained, saved."""
    from transformers import set_seed

    from biohicl.training.curves import plot_training_curves

    resume = resolve_resume(args.resume_from_checkpoint, args.output_dir)
    check_run_folder(args, resume, objective_record(loss))  # a checkpoint of other settings or objective
    start = time.time()
    set_seed(args.seed)  # before the model: LoRA's A matrices are drawn at add_lora
    mesh, data = training_inputs(args, loss)
    model = build_model(args, peft_config)
    if resume is not None:  # its base by signature, before its weights load: a base folder rewritten in place
        check_resume_base(model, resume, args.base_model)
    collator = build_collator(args, model, mesh, loss)
    sampler = build_batch_sampler(args, data, mesh)
    sources = SourceRecord(started=start)  # code, data and the run's figures in each checkpoint
    trainer = BioHiCLTrainer(
        model=model,
        args=args,
        train_dataset=data.documents,
        data_collator=collator,
        batch_sampler=sampler,
        loss=loss,
        evaluator=evaluator,
        callbacks=[*callbacks, sources, ObjectiveRecord(objective_record(loss))],  # in each checkpoint
    )
    sources.follow(trainer)  # the documents it trains on
    record_tensorboard_folder(trainer)  # each checkpoint names its events folder
    resume_tensorboard_folder(trainer, args.output_dir, resume)  # a resume appends to the folder its checkpoint names
    if resume is not None:  # a damaged file the resume reads: one line naming it, before the run says anything
        check_resume_point(resume, checkpoint_step(resume), trainer.total_steps())
    if args.should_log and (notice := selection_notice(args)):  # no dev selection, the inputs good: said once
        logger.warning(notice)
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    except pickle.UnpicklingError as err:  # torch.load(weights_only=True) refused a file of the checkpoint
        if resume is None:
            raise
        reason = str(err).strip().splitlines()[-1]
        raise DataError(
            f"refusing to resume: a file here is not one a training run wrote ({reason}); never load it with "
            "weights_only=False",
            resume,
        ) from None

    run_dir = Path(args.output_dir)
    if args.should_save:
        model.save_pretrained(run_dir)
        trainer.save_state()
        # written by renaming a new file into place, never through a link planted in the folder
        atomic_write_text(run_dir / TRAINING_ARGS_JSON, args.to_json_string())
        summary = run_summary(trainer, model, sampler, data.stats, result, start)
        atomic_write_json(run_dir / SUMMARY_NAME, summary)  # strict JSON: a NaN score is null
        if evaluations := evaluation_rows(trainer.state.log_history):
            atomic_write_json(run_dir / EVALUATIONS_NAME, evaluations, indent=1)
        try:
            title = f"BioHiCL: {shown_base(model.config.base_model)}"  # the Hub id, or a folder's name: no path
            plot_training_curves(trainer.state.log_history, run_dir / CURVES_NAME, title, selection=trainer.selection)
        except Exception as err:  # a run with no logged step has no curve; never lose the model
            logger.warning("no training curve drawn: %s", err)
    return run_dir

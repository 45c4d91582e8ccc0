"""``biohicl train --dry_run``: a run checked as ``biohicl train`` checks it before it trains, and its plan printed;
nothing trained, no model weights loaded, nothing left in the output folder.

The arguments are parsed and refused as a real run's are (:func:`~biohicl.cli.train.parse_command_line`, the
output folder's write probe in :func:`~biohicl.cli.train.main`); then, in the real run's order, the evaluation tasks
(``evaluator_from_args``), each task's data (:func:`~biohicl.study.preflight.task_check`), the evaluation settings
(``check_evaluation``), the resumed checkpoint or the fresh run's folder (:mod:`~biohicl.training.run_settings`),
the training data read as training reads it (:func:`~biohicl.training.run.training_inputs`), the base model's
sentence-transformers files read as the run reads them (:func:`check_base_encoding`), the data batched
(:func:`~biohicl.training.run.build_batch_sampler`), and the resumed checkpoint's step against the run's last
(:func:`~biohicl.training.checkpoint.at_last_step`); the plan names the objective that would train
(:func:`objective_plan`), whether it selects a step on dev (:func:`evaluation_plan`) and the device it trains on
(:func:`device_plan`). The base model is resolved offline first
(:func:`~biohicl.study.preflight.model_check`, an adapter's recorded base included), reading nothing the run would
refuse. A missing dataset, base model or task data is listed, not raised: the command exits 1 naming each, as
``biohicl reproduce --dry_run`` does; any other refusal is the real run's one line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

#: what a dry run does not do, printed with its checks
NOTHING_DONE = "nothing trained, no model loaded, nothing written"


def optimizer_steps(args: Any, batches_per_epoch: int) -> tuple[int, int]:
    """``(optimizer steps per epoch, optimizer steps in all)`` as the Trainer counts them: an epoch's batches of one
    process over ``gradient_accumulation_steps``, rounded up (at least 1); ``max_steps``, else ``num_train_epochs``
    epochs of them, rounded up."""
    per_epoch = max(math.ceil(batches_per_epoch / args.gradient_accumulation_steps), 1)
    total = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * per_epoch)
    return per_epoch, total


def evaluation_plan(args: Any, per_epoch: int | None, total: int | None) -> str:
    """When the run evaluates and on which tasks: ``every 50 steps and at step 0 on biosses, pubmedqa:dev``
    (an ``eval_steps`` below 1 is that share of the run's steps, as the Trainer reads it); for a run that keeps its
    last step, without evaluation or without ``--load_best_model_at_end``, that it does and how to select on dev, as
    the run's warning says (:func:`~biohicl.training.run_settings.dev_selection_notice`)."""
    from biohicl.training.run_settings import last_step_notice, option_value

    strategy = option_value(args.eval_strategy)
    kept = last_step_notice(args)
    if strategy == "no":
        return f"none (no --eval_tasks): {kept}"
    start = " and at step 0" if args.eval_on_start else ""
    tasks = ", ".join(args.eval_tasks)
    kept = "" if kept is None else f" (no --load_best_model_at_end): {kept}"
    if strategy == "epoch":
        return (
            f"at each epoch's end{'' if per_epoch is None else f' (every {per_epoch} steps)'}{start} on {tasks}{kept}"
        )
    every: Any = args.eval_steps
    if every < 1:
        every = f"{every:g} of the run's steps" if total is None else math.ceil(total * every)
    else:
        every = int(every)
    return f"every {every} steps{start} on {tasks}{kept}"


def device_plan(args: Any) -> str:
    """The device the run trains on: the CPU under ``use_cpu`` (saying so, and that ``--use_cpu false`` trains on
    this machine's GPU when it has one), else ``args.device`` as transformers' ``TrainingArguments`` decides it (set
    up when the arguments were made: a launched process's own GPU, else ``cuda:0``, MPS, ..., else the CPU)."""
    import torch

    if args.use_cpu:
        spare = "; this machine has a GPU: --use_cpu false trains on it" if torch.cuda.is_available() else ""
        return f"cpu (use_cpu{spare})"
    return str(args.device)


def output_plan(output_dir: str, resume: str | None, total: int | None = None) -> str:
    """The output folder, and whether the run creates it, trains afresh in it or resumes a checkpoint there; a
    checkpoint at the run's last step (``total``, when counted) leaves nothing to train, one past it is refused as the
    run refuses it (:func:`~biohicl.training.checkpoint.at_last_step`)."""
    from biohicl.training.checkpoint import at_last_step, checkpoint_step

    if resume is not None:
        step = checkpoint_step(resume)
        if total is not None and at_last_step(resume, step, total):
            return f"{output_dir} ({resume}, step {step}, is at the last step: nothing left to train)"
        return f"{output_dir} (resumes {resume} at step {step})"
    return f"{output_dir} ({'a fresh run in this folder' if Path(output_dir).is_dir() else 'created by the run'})"


def _term_plan(record: dict[str, Any], key: str, name: str, term: dict[str, Any]) -> str:
    """One term of the BioHiCL ``record`` that trains, as the objective line shows it (``term``: its entry)."""
    if key == "regression":
        return f"mse({term['pair_filter']} pairs)"
    if key == "contrastive":
        settings = [term["form"], f"β {term['beta']:g}"]
        settings += [f"τ {term['temperature']:g}"] if term["form"] == "infonce" else []
        settings += [f"negative {term['negative']}"]
        settings += ["positives unweighted"] if term["form"] == "infonce" and not term["weighted"] else []
        settings += [f"mean over {term['mean']}"] if term.get("mean", "positives") != "positives" else []
        return f"{record['lambda_con']:g}·contrastive({', '.join(settings)})"
    if key == "distillation":
        return f"{record['distill_weight']:g}·distill"
    if key == "title":
        return f"{record['title_weight']:g}·title(τ {term['temperature']:g})"
    return f"{term['weight']:g}·{name}({term['class']})"  # an extra term


def objective_plan(loss: Any) -> str:
    """The objective ``loss`` trains, from what a run records of it (its ``get_config_dict()``): each term that
    trains and its weight, e.g. ``mse(zero_or_positive pairs) + 0.1·contrastive(infonce, β 0.3, τ 0.05, negative
    zero) + 0.5·distill + 0.5·margin(Margin)``, a term off or of weight 0 left out as the model card leaves it out
    (:func:`~biohicl.training.loss_record.trained_terms`); a loss other than ``BioHiCLLoss``: its class and its
    config."""
    from biohicl.training.loss_record import is_biohicl_record, trained_terms
    from biohicl.training.objective import objective_record

    record = objective_record(loss)
    if not is_biohicl_record(record):
        config = {key: value for key, value in record.items() if key != "class"}
        return f"{record['class']} {json.dumps(config)}" if config else record["class"]
    terms = [_term_plan(record, key, name, term) for key, name, term in trained_terms(record)]
    return " + ".join(terms) or "no term trains (each term on weighs 0)"


def positive_pairs(sampler: Any) -> int | None:
    """The document pairs the sampler builds batches around (each once), None for a sampler without pairs."""
    import numpy as np

    partners = getattr(sampler, "partners", None)
    if partners is None:
        return None
    anchors = np.repeat(np.arange(len(partners)), [len(p) for p in partners])
    others = np.concatenate([np.asarray(p, dtype=np.int64) for p in partners]) if len(anchors) else anchors
    low, high = np.minimum(anchors, others), np.maximum(anchors, others)
    return int(np.unique(low * len(partners) + high).size)


def data_plan(args: Any, dataset: Path, mesh: Any, data: Any) -> tuple[list[str], int, int]:
    """The training data (``mesh`` and ``data``, read by :func:`~biohicl.training.run.training_inputs`) batched as a
    run batches them: the plan's lines, steps per epoch and in all."""
    from biohicl.training.run import build_batch_sampler
    from biohicl.training.summary import batch_scale

    sampler = build_batch_sampler(args, data, mesh)
    scale = batch_scale(sampler, args, args.world_size, args.process_index)
    per_epoch, total = optimizer_steps(args, scale["batches_per_epoch_per_process"])
    pairs = positive_pairs(sampler)
    pool = getattr(sampler, "pair_pool", None)  # the build's pairs, or mined again with the run's own SimL
    paired = (
        f"batches built around {pairs:,} positive pairs (SimL > {args.beta:g}{f'; {pool}' if pool else ''})"
        if pairs is not None
        else "no pairs"
    )
    processes = f" × {scale['world_size']} processes" if scale["world_size"] > 1 else ""
    length = f"max_steps {args.max_steps}" if args.max_steps > 0 else _count(args.num_train_epochs, "epoch")
    lines = [
        f"documents: {data.stats['documents']:,} of {data.stats['documents_in_dataset']:,} in {dataset} "
        f"(split {', '.join(args.train_splits)}); {paired}",
        f"batches: {getattr(sampler, 'batch_size', args.per_device_train_batch_size)} documents, "
        f"{scale['batches_per_epoch']} per epoch; {scale['documents_per_optimizer_step']} documents per optimizer "
        f"step ({_count(args.gradient_accumulation_steps, 'accumulation step')}{processes})",
        f"optimizer steps: {per_epoch} per epoch, {total} in all ({length})",
    ]
    return lines, per_epoch, total


def check_base_encoding(args: Any, path: Path) -> None:
    """Refuse the base model, resolved to ``path`` (:func:`~biohicl.study.preflight.model_check`), as the run's
    ``build_model`` does before it loads a weight: ``BioHiCL.from_base``'s
    :func:`~biohicl.models.backbone.base_encoding_settings`, given the run's pooling, max length and prompts (a
    BioHiCL folder's own where the run leaves them unset), reads the base's sentence-transformers files and refuses
    a module biohicl does not apply, a similarity other than cosine, or a prompt the pooling leaves out."""
    from biohicl.models.backbone import base_settings

    given = {"pooling": args.pooling, "normalize": None, "max_length": args.max_length}
    given.update(query_prompt=args.query_prompt, document_prompt=args.document_prompt)
    base_settings(args.base_model, path, args.base_model_hub_id, **given)  # as from_base reads them


def _count(number: float, noun: str) -> str:
    return f"{number:g} {noun}{'' if number == 1 else 's'}"


def dry_run(args: Any, loss: Any) -> int:
    """Check the run ``args`` describe without training (``loss``: its objective), print its plan and checks; 0 when
    everything it needs is there, else 1 with what is missing named on stderr."""
    from biohicl.evaluation.evaluator import evaluator_from_args
    from biohicl.study.preflight import Check, model_check, task_check
    from biohicl.training.checkpoint import resolve_resume
    from biohicl.training.evaluator_checks import check_evaluation
    from biohicl.training.objective import objective_record
    from biohicl.training.run import training_inputs
    from biohicl.training.run_settings import check_run_folder

    dataset = Path(args.dataset_path).expanduser() if args.dataset_path else None
    evaluator = evaluator_from_args(args)
    resolved = evaluator.tasks if evaluator is not None else []
    tasks = [
        dataclasses.replace(task_check(spec, dataset), what=f"task {given}")
        for given, spec in zip(args.eval_tasks, resolved, strict=True)
    ]
    # the selection metrics are checked against the tasks' metrics, which need their data: with a task missing,
    # the checks that need none (a plain callable has no metric_names())
    check_evaluation(args, evaluator if all(c.ok for c in tasks) else (lambda model: {}))
    resume = resolve_resume(args.resume_from_checkpoint, args.output_dir)
    check_run_folder(args, resume, objective_record(loss))  # a checkpoint of other settings or objective
    model = model_check("model base_model", args.base_model, args.base_revision, starts="training")
    lines, per_epoch, total, mesh, read = [], None, None, None, None
    if dataset is None or not dataset.exists():
        given = "no dataset_path given" if dataset is None else f"{dataset}: no such file or folder"
        data = Check("dataset", False, given)
        lines = ["documents, batches, optimizer steps: counted once the dataset is found"]
        total = args.max_steps if args.max_steps > 0 else None  # the run's last step, whatever its data
    else:
        mesh, read = training_inputs(args, loss)  # the run reads its data before it builds the model
        kind = "a documents file" if dataset.is_file() else "a dataset folder"
        data = Check("dataset", True, f"{dataset}: {kind}, read and batched")
    if model.path is not None and data.ok:  # a base not here is not read (the model check names it); nor one the
        check_base_encoding(args, model.path)  # run would not reach, its data missing (listed, as the run refuses it)
    if read is not None:
        lines, per_epoch, total = data_plan(args, dataset, mesh, read)
    lines += [
        f"objective: {objective_plan(loss)}",
        f"evaluation: {evaluation_plan(args, per_epoch, total)}",
        f"output: {output_plan(args.output_dir, resume, total)}",
        f"device: {device_plan(args)}",
    ]
    checks = [data, model, *tasks]
    print(f"biohicl train --dry_run ({NOTHING_DONE}):\n" + "\n".join(f"  {line}" for line in lines))
    print("pre-flight:\n" + "\n".join(check.format() for check in checks))
    if missing := [check.what for check in checks if not check.ok]:
        print(f"missing before the run can train: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0

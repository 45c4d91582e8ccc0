"""``biohicl train``: LoRA-tune a dense retriever with the BioHiCL loss on a MeSH-pair dataset.

Options are the fields of :class:`~biohicl.training.args.BioHiCLTrainingArguments` (``--help`` lists them all).
They can also come from a YAML or JSON file with the same keys (``--config run.yaml``); options on the command
line override its values::

    biohicl train --dataset_path data/mesh-pairs --output_dir runs/minilm --max_steps 150 --report_to tensorboard
    biohicl train --config configs/biohicl_minilm.yaml --learning_rate 1e-4
    biohicl train --config configs/biohicl_minilm.yaml --dry_run   # check it all and print the plan; train nothing
"""

from __future__ import annotations

from dataclasses import dataclass, field

HELP = "LoRA-tune a retriever with the BioHiCL loss (options = BioHiCLTrainingArguments fields)."
#: inherited ``TrainingArguments`` options that ``--help`` leaves out: refused when given (``training.arg_checks``)
HIDDEN = ("enable_jit_checkpoint", "neftune_noise_alpha")


@dataclass
class TrainCommandArguments:
    """Options of the command, not of the run: never in its recorded ``biohicl_training_args.json``."""

    dry_run: bool = field(
        default=False,
        metadata={
            "help": "Check the run as it would start (arguments, output folder, dataset read and batched, base model "
            "offline, evaluation tasks' data), print its plan (documents, batches, optimizer steps, objective, "
            "evaluations) and exit: nothing trained, no model loaded, nothing written. Exits 1 naming what is missing."
        },
    )


def parse_command_line(argv: list[str]):
    """``argv`` → ``(BioHiCLTrainingArguments, TrainCommandArguments)`` (``--config FILE`` supplies defaults)."""
    from biohicl.cli.parser import parse_command
    from biohicl.training.args import BioHiCLTrainingArguments

    types = (BioHiCLTrainingArguments, TrainCommandArguments)
    return parse_command(types, argv, prog="biohicl train", description=__doc__, hidden=HIDDEN)


def parse_args(argv: list[str]):
    """``argv`` → :class:`BioHiCLTrainingArguments` (``--config FILE`` supplies defaults)."""
    return parse_command_line(argv)[0]


def main(argv: list[str]) -> int:
    args, command = parse_command_line(argv)
    from biohicl.atomic import check_writable_folder
    from biohicl.training.objective import build_loss

    loss = build_loss(args)  # the command line's whole objective (no extra terms): refused now if it has no term
    if args.output_dir:  # a file in the way fails now, not after the model loads (a probe file, removed at once)
        check_writable_folder(args.output_dir, "--output_dir")
    if command.dry_run:
        from biohicl.cli.train_plan import dry_run

        return dry_run(args, loss)
    from biohicl.cli.progress import library_bars
    from biohicl.evaluation.evaluator import evaluator_from_args
    from biohicl.training.run import CURVES_NAME, SUMMARY_NAME, train_biohicl
    from biohicl.training.selection import EVALUATIONS_NAME

    with library_bars(not args.disable_tqdm):  # --disable_tqdm hides transformers' loading/saving bars too
        run_dir = train_biohicl(args, evaluator=evaluator_from_args(args), loss=loss)
    if not args.should_save:
        return 0
    # name only what was written (no curve when no training step was logged)
    outputs = ("trainer_state.json", SUMMARY_NAME, EVALUATIONS_NAME, CURVES_NAME)
    written = [name for name in outputs if (run_dir / name).is_file()]
    print(f"saved the trained model, {', '.join(written)} to {run_dir}")
    return 0

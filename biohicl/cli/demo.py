"""``biohicl demo``: the whole pipeline on the embedded default, on CPU, in minutes.

Builds the MeSH-pair dataset, trains a short dev-selected LoRA run of all-MiniLM-L6-v2, evaluates base and tuned
model on BIOSSES and PubMedQA and prints the table. The options below are the fields of ``DemoArguments``
(``biohicl.study.demo``, which runs the same steps from Python). ``--training_config FILE`` trains the run of a
``biohicl train`` config instead of the short one, read exactly as ``biohicl train --config FILE`` reads it (a file
setting ``dry_run``, an option of that command, is refused: the demo would train the run it was meant to check)::

    biohicl demo --training_config configs/biohicl_minilm.yaml --output_dir runs/demo-minilm
"""

from __future__ import annotations

HELP = "Build the MeSH-pair dataset, train a short BioHiCL run and compare it with its base (CPU, minutes)."


def main(argv: list[str]) -> int:
    from biohicl.atomic import check_writable_folder
    from biohicl.cli.parser import parse_command
    from biohicl.errors import ConfigError
    from biohicl.study.demo import DemoArguments, demo_paths, run_demo

    (args,) = parse_command(
        DemoArguments,
        argv,
        prog="biohicl demo",
        description=__doc__,
        comma_lists=["tasks"],  # tasks: [a, b] in a file
    )
    check_writable_folder(args.output_dir, "--output_dir")  # a file in the way fails now, not in the dataset step
    training_args = None
    if args.training_config:
        from biohicl.cli import train

        dataset_dir, run_dir = demo_paths(args)
        training_args, command = train.parse_command_line(
            ["--config", args.training_config, "--output_dir", str(run_dir), "--dataset_path", str(dataset_dir)]
        )
        if command.dry_run:  # a check of the run in `biohicl train`: the demo would train it
            raise ConfigError(
                f"{args.training_config}: dry_run is an option of `biohicl train` (biohicl train --config "
                f"{args.training_config} --dry_run), not of the demo; remove it to train this run in the demo"
            )
    print(run_demo(args, training_args))
    return 0

"""``biohicl train``: LoRA-tune a dense retriever with the BioHiCL loss on a MeSH-pair dataset.

Options are the fields of :class:`~biohicl.training.args.BioHiCLTrainingArguments` (``--help`` lists them all).
Instead of options, one YAML or JSON file with the same keys can be given (``biohicl train run.yaml``); options
after it override its values::

    biohicl train --dataset_path data/mesh-pairs --output_dir runs/minilm --max_steps 150 --report_to tensorboard
    biohicl train configs/minilm.yaml --learning_rate 1e-4
"""

from __future__ import annotations

import json
from pathlib import Path

from biohicl.errors import ConfigError

HELP = "LoRA-tune a retriever with the BioHiCL loss (options = BioHiCLTrainingArguments fields)"


def parse_args(argv: list[str]):
    """``argv`` → :class:`BioHiCLTrainingArguments` (a leading ``.yaml``/``.yml``/``.json`` file supplies defaults)."""
    from transformers import HfArgumentParser

    from biohicl.training.args import BioHiCLTrainingArguments

    parser = HfArgumentParser(BioHiCLTrainingArguments, prog="biohicl train", description=HELP)
    if argv and argv[0].endswith((".yaml", ".yml", ".json")) and not argv[0].startswith("-"):
        values = _read_config(Path(argv[0]))
        known = {f.name for f in BioHiCLTrainingArguments.__dataclass_fields__.values() if f.init}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{argv[0]}: unknown field(s) {', '.join(unknown)}")
        parser.set_defaults(**values)
        # fields without a default must still be satisfiable from the file
        for action in parser._actions:
            if action.dest in values:
                action.required = False
        argv = argv[1:]
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    return args


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError) as err:
        raise ConfigError(f"{path}: cannot parse ({err})") from None
    except Exception as err:  # yaml.YAMLError and friends
        raise ConfigError(f"{path}: cannot parse ({err})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values")
    return values


def main(argv: list[str]) -> int:
    from biohicl.evaluation.evaluator import evaluator_from_args
    from biohicl.training.run import train_biohicl

    args = parse_args(argv)
    run_dir = train_biohicl(args, evaluator=evaluator_from_args(args))
    if not args.should_save:
        return 0
    # name only what was written (no curve when no training step was logged)
    written = [name for name in ("trainer_state.json", "training_summary.json", "training_curves.png")
               if (run_dir / name).is_file()]  # fmt: skip
    print(f"saved the trained model, {', '.join(written)} to {run_dir}")
    return 0

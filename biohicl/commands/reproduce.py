"""``biohicl reproduce``: the paper's study (base vs BioHiCL, the ablations, several base models) from one config.

    biohicl reproduce --config configs/reproduce_minilm.yaml
    biohicl reproduce --config configs/reproduce_minilm.yaml --only full,no_mse --seeds 0,1,2
    biohicl reproduce --config configs/reproduce_minilm.yaml --dry-run      # print the plan, compute nothing

Runs resume: an evaluated run is skipped, an interrupted training continues from its last checkpoint. See
``docs/reproduce.md``.
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError

HELP = "Run the paper's study (base vs BioHiCL, ablations) from a YAML config; resumable"


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="biohicl reproduce", description=HELP)
    parser.add_argument("--config", required=True, help="Study config (YAML), e.g. configs/reproduce_minilm.yaml.")
    parser.add_argument("--only", type=_csv, default=None, help="Comma-separated variants to run (e.g. full,no_mse).")
    parser.add_argument("--seeds", type=_seeds, default=None, help="Comma-separated seeds for every variant.")
    parser.add_argument("--models", type=_csv, default=None, help="Comma-separated model names of the config.")
    parser.add_argument("--output_dir", default=None, help="Override the config's output_dir.")
    parser.add_argument("--dry-run", dest="dry_run", action="store_true", help="Print the plan and exit.")
    parser.add_argument(
        "--report-only", dest="report_only", action="store_true",
        help="Train/evaluate nothing: rewrite results, plots and cards from the runs already evaluated.",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    return parser


def main(argv: list[str]) -> int:
    from ..reproduce import ReproduceConfig, describe_plan, plan_study, run_study

    args = build_parser().parse_args(argv)
    config = ReproduceConfig.from_yaml(args.config).select(only=args.only, seeds=args.seeds, models=args.models)
    if args.output_dir:
        config.output_dir = args.output_dir
    if args.dry_run:
        print(f"study {config.title!r} → {config.output_dir}")
        print(describe_plan(plan_study(config)))
        return 0
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads: must be positive, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    results = run_study(config, report_only=args.report_only)
    print(f"wrote results.json, results.md and plots to {config.output_dir}")
    for target in results["targets"]:
        if isinstance(target["target"], float):
            status = "met" if target["met"] else "MISSED"
            print(f"  {target['model']} {target['metric']}: Δ {100 * target['delta']:+.2f} "
                  f"(target {100 * target['target']:+.1f}) {status}")
    return 0

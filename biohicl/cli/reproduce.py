"""``biohicl reproduce``: the paper's study (base vs BioHiCL, the ablations, several base models) from one config.

    biohicl reproduce --config configs/reproduce_minilm.yaml
    biohicl reproduce --config configs/reproduce_minilm.yaml --only full,no_mse --seeds 0,1,2
    biohicl reproduce --config configs/reproduce_minilm.yaml --dry-run      # print the plan, compute nothing
    biohicl reproduce --config configs/reproduce_minilm_gpu.yaml --workers 5  # 5 processes share one GPU

Runs resume: an evaluated run is skipped, an interrupted training continues from its last checkpoint. See
``docs/reproduce.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from biohicl.errors import ConfigError

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
        "--report-only",
        dest="report_only",
        action="store_true",
        help="Train/evaluate nothing: rewrite results, plots and cards from the runs already evaluated.",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    parser.add_argument(
        "--workers", type=int, default=1,
        help="Worker processes sharing the study through its run locks (small models leave a GPU mostly idle: "
        "several fill it); each logs to <output_dir>/logs/worker<i>.log, then one combined report is written.",
    )  # fmt: skip
    return parser


def _without_workers(argv: list[str]) -> list[str]:
    """``argv`` minus ``--workers N`` / ``--workers=N`` (what each worker process is started with)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def run_workers(argv: list[str], workers: int, output_dir: str, threads: int | None) -> list[tuple[int, int, Path]]:
    """Start ``workers`` processes of ``biohicl reproduce argv`` and wait for all; returns ``(worker, rc, log)``.
    Without ``--threads``, the CPU cores are split between them."""
    logs = Path(output_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    argv = _without_workers(argv)
    if threads is None:
        argv += ["--threads", str(max(1, (os.cpu_count() or 1) // workers))]
    children = []
    for i in range(1, workers + 1):
        log = logs / f"worker{i}.log"
        with open(log, "w", encoding="utf-8") as handle:
            command = [sys.executable, "-m", "biohicl.cli.main", "reproduce", *argv]
            children.append((i, subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT), log))
    print(f"{workers} workers started; logs in {logs}", flush=True)
    try:
        return [(i, child.wait(), log) for i, child, log in children]
    except KeyboardInterrupt:
        for _, child, _ in children:
            child.terminate()
        raise


def main(argv: list[str]) -> int:
    from biohicl.study.reproduce import ReproduceConfig, describe_plan, plan_study, run_study

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
    if args.workers < 1:
        raise ConfigError(f"--workers: must be positive, got {args.workers}")
    failed = []
    if args.workers > 1 and not args.report_only:
        from biohicl.study.reproduce import prepare_dataset

        prepare_dataset(config)  # once, before the workers: they would all build it at the same time
        for worker, code, log in run_workers(argv, args.workers, config.output_dir, args.threads):
            print(f"worker {worker}: {'done' if code == 0 else f'exit code {code}'} ({log})", flush=True)
            if code != 0:
                failed.append(worker)
    results = run_study(config, report_only=args.report_only or args.workers > 1)
    print(f"wrote results.json, results.md and plots to {config.output_dir}")
    for target in results["targets"]:
        if isinstance(target["target"], float):
            status = "met" if target["met"] else "MISSED"
            print(
                f"  {target['model']} {target['metric']}: Δ {100 * target['delta']:+.2f} "
                f"(target {100 * target['target']:+.1f}) {status}"
            )
    if results.get("missing"):
        print(f"not finished: {', '.join(results['missing'])}")
    if failed:
        print(f"worker(s) {', '.join(map(str, failed))} failed: see their logs", file=sys.stderr)
        return 1
    return 0

"""``biohicl reproduce``: the paper's study (base vs BioHiCL, the ablations, several base models) from one config.

    biohicl reproduce --config configs/reproduce_minilm.yaml
    biohicl reproduce --config configs/reproduce_minilm.yaml --only full,no_mse --seeds 0,1,2
    biohicl reproduce --config configs/reproduce_minilm.yaml --dry_run      # print the plan, compute nothing
    biohicl reproduce --config configs/reproduce_minilm.yaml --dataset_only # build the study's dataset only
    biohicl reproduce --config configs/reproduce_minilm_gpu.yaml --workers 5  # 5 processes share one GPU

Runs resume: an evaluated run is skipped, an interrupted training continues from its last checkpoint. Here
``--config`` is the study file (a nested YAML), not a file of options as in the other commands. See
``docs/reproduce.md``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from biohicl.atomic import open_regular_file
from biohicl.errors import ConfigError, DataError

HELP = "Run the paper's study (base vs BioHiCL, ablations) from a YAML config; resumable."


@dataclass
class ReproduceArguments:
    """Options of ``biohicl reproduce``. Unlike the other commands' ``--config`` (a file of options), here
    ``--config`` is the study file itself: a nested YAML (models, variants, seeds, tasks; docs/reproduce.md)."""

    config: str = field(
        metadata={
            "help": "The study file (a nested YAML, e.g. configs/reproduce_minilm.yaml; docs/reproduce.md), not a "
            "file of options as in the other commands."
        }
    )
    only: str | None = field(default=None, metadata={"help": "Comma-separated variants to run (e.g. full,no_mse)."})
    seeds: str | None = field(default=None, metadata={"help": "Comma-separated seeds for every variant."})
    models: str | None = field(default=None, metadata={"help": "Comma-separated model names of the config."})
    output_dir: str | None = field(default=None, metadata={"help": "Override the config's output_dir."})
    dry_run: bool = field(default=False, metadata={"help": "Print the plan and exit."})
    dataset_only: bool = field(
        default=False,
        metadata={
            "help": "Build the study's dataset as its config says (or check and reuse the one built there), then exit: "
            "nothing trained or evaluated (what a GPU session stages)."
        },
    )
    report_only: bool = field(
        default=False,
        metadata={"help": "Train/evaluate nothing: rewrite results, plots and cards from the runs already evaluated."},
    )
    threads: int | None = field(default=None, metadata={"help": "torch threads (default: torch's choice)."})
    workers: int = field(
        default=1,
        metadata={
            "help": "Worker processes sharing the study through its run locks (small models leave a GPU mostly "
            "idle: several fill it); each logs to <output_dir>/logs/worker<i>.log, then one combined report is "
            "written."
        },
    )

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads: must be positive, got {self.threads}")
        if self.workers < 1:
            raise ConfigError(f"--workers: must be positive, got {self.workers}")
        if self.dataset_only and (self.dry_run or self.report_only):
            raise ConfigError("--dataset_only: builds the dataset only; not with --dry_run or --report_only")
        from biohicl.study.execute import run_locks_available

        if self.workers > 1 and not run_locks_available():
            raise ConfigError("--workers: several workers need file locks (fcntl), which this platform lacks; use 1")
        self.seed_list()  # a malformed --seeds fails here

    def variant_list(self) -> list[str] | None:
        from biohicl.cli.parser import csv_items

        return csv_items(self.only) if self.only is not None else None

    def model_list(self) -> list[str] | None:
        from biohicl.cli.parser import csv_items

        return csv_items(self.models) if self.models is not None else None

    def seed_list(self) -> list[int] | None:
        from biohicl.cli.parser import csv_numbers

        return csv_numbers(self.seeds, int, "--seeds", "integers") if self.seeds is not None else None


def parse_args(argv: list[str]) -> ReproduceArguments:
    from biohicl.cli.parser import parse_command

    (args,) = parse_command(ReproduceArguments, argv, prog="biohicl reproduce", description=__doc__, config_file=False)
    return args


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


#: Set in each worker process of `--workers N` (its number).
WORKER_ENV = "BIOHICL_STUDY_WORKER"


def _worker_argv(argv: list[str]) -> list[str]:
    """What each worker process is started with: ``argv`` minus ``--workers N``, then ``--workers 1`` (the last
    occurrence wins, also over an abbreviated ``--work N``, so a worker never starts workers of its own)."""
    return [*_without_workers(argv), "--workers", "1"]


def _append_to_log(path: Path) -> TextIO:
    """Open a worker's log for appending, never through a symlink (``O_NOFOLLOW`` where the OS has it):
    :class:`DataError` when the path is a symlink or anything but a regular file."""
    refused = DataError("a worker log must be a regular file (a symlink or other file is there); remove it", path)
    fd = open_regular_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666, refused)  # 0666 less the umask
    return os.fdopen(fd, "a", encoding="utf-8")


#: ``prctl``'s option that has the kernel signal the calling process when its parent dies (``linux/prctl.h``).
PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for a child of this process that has the kernel send it SIGTERM when this process dies, by
    SIGKILL or an OOM kill too (Linux's ``prctl(PR_SET_PDEATHSIG)``, through libc); a child whose parent died before
    that call exits at once. None where there is no ``prctl`` (not Linux, or a libc without it): the child then
    outlives a killed parent, as it always did. Call it in the process that starts the child, in the thread that
    starts it (the signal comes when that thread ends)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None).prctl  # the running program's libc
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent, signum = os.getpid(), int(signal.SIGTERM)

    def set_parent_death_signal() -> None:  # in the child, between fork and exec: no imports, no lookups
        if prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0 and os.getppid() != parent:
            os._exit(1)  # the parent died before prctl ran: no signal will come for it

    return set_parent_death_signal


def run_workers(argv: list[str], workers: int, output_dir: str, threads: int | None) -> list[tuple[int, int, Path]]:
    """Start ``workers`` processes of ``biohicl reproduce argv`` and wait for all; returns ``(worker, rc, log)``.
    Without ``--threads``, the CPU cores are split between them. Each log is appended to, after a dated header line
    per attempt, so a rerun keeps what the earlier ones wrote."""
    logs = Path(output_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    argv = _worker_argv(argv)
    if threads is None:
        argv += ["--threads", str(max(1, (os.cpu_count() or 1) // workers))]
    children = []
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    preexec = die_with_parent()  # a SIGKILL of this process must not leave them running, holding their runs' locks
    with ExitStack() as stack:  # every log opened before any worker starts: a refused one starts none
        handles = [stack.enter_context(_append_to_log(logs / f"worker{i}.log")) for i in range(1, workers + 1)]
        for i, handle in enumerate(handles, start=1):  # a rerun appends: it keeps the earlier attempts' lines
            log = logs / f"worker{i}.log"
            command = [sys.executable, "-m", "biohicl.cli.main", "reproduce", *argv]
            handle.write(f"=== {started}: worker {i} of {workers}: biohicl reproduce {' '.join(argv)}\n")
            handle.flush()
            env = {**os.environ, WORKER_ENV: str(i)}  # a worker's unfinished runs are the others' share, not a failure
            child = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec)
            children.append((i, child, log))
    print(f"{workers} workers started; logs in {logs}", flush=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM of this process alone (kill PID) stops them too
    try:
        return [(i, child.wait(), log) for i, child, log in children]
    except KeyboardInterrupt:  # else they would run on, holding their runs' locks, and a rerun would skip those runs
        for _, child, _ in children:
            child.terminate()
        for _, child, _ in children:
            child.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _counted(target: dict, results: dict) -> str:
    """What a judged report's console line adds to a target row: the dev pick's counts, a row of a model with a dev
    pick that is not the pick does not (results.md's table says so in its closing line)."""
    if target.get("dev_pick"):
        return " (the dev pick)"
    return " (not counted: not the dev pick)" if (results["models"].get(target["model"]) or {}).get("dev_pick") else ""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    from biohicl.evaluation.results import signed
    from biohicl.study import (
        ReproduceConfig,
        describe_plan,
        evaluate_step0_once,
        plan_study,
        prepare_dataset,
        run_study,
    )
    from biohicl.study.report import incomplete_groups

    args = parse_args(argv)
    config = ReproduceConfig.from_yaml(args.config).select(
        only=args.variant_list(), seeds=args.seed_list(), models=args.model_list()
    )
    if args.output_dir:
        config.output_dir = args.output_dir
    if args.workers > 1 and not args.report_only:  # before anything runs: workers fail on a task only we know
        from biohicl.study.preflight import check_workers_see_tasks

        check_workers_see_tasks(config)
    if args.dry_run:
        from biohicl.study.preflight import preflight

        print(f"study {config.title!r} → {config.output_dir}")
        print(describe_plan(plan_study(config)))
        checks = preflight(config)
        print("pre-flight (nothing trained or encoded):\n" + "\n".join(check.format() for check in checks))
        if missing := [check.what for check in checks if not check.ok]:
            print(f"missing before the study can run: {', '.join(missing)}", file=sys.stderr)
            return 1
        return 0
    from biohicl.atomic import check_writable_folder

    check_writable_folder(config.output_dir, "--output_dir" if args.output_dir else "output_dir")
    if args.dataset_only:
        dataset_path, summary = prepare_dataset(config)
        print(f"dataset: {dataset_path} ({summary.get('documents')} documents); nothing trained or evaluated")
        return 0
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    failed = []
    if args.workers > 1 and not args.report_only:
        dataset_path, _ = prepare_dataset(config)  # once, before the workers: they would all build it at the same time
        evaluate_step0_once(config, dataset_path)  # and their shared step 0, which each would evaluate again
        for worker, code, log in run_workers(argv, args.workers, config.output_dir, args.threads):
            print(f"worker {worker}: {'done' if code == 0 else f'exit code {code}'} ({log})", flush=True)
            if code != 0:
                failed.append(worker)
    results = run_study(config, report_only=args.report_only or args.workers > 1)
    print(f"wrote results.json, results.md and plots to {config.output_dir}")
    for name, model in results["models"].items():
        if pick := model.get("dev_pick"):
            score = {c["variant"]: c["score"] for c in pick["candidates"]}.get(pick["picked"])
            among = (
                f"; among this selection only, {', '.join(pick['left_out'])} left out" if pick.get("left_out") else ""
            )
            print(
                f"  {name}: picked on dev: {pick['picked']} (mean dev selection score {score:.4f}{among})"
                if pick["picked"]
                else f"  {name}: no variant picked on dev (each is out: see results.md{among})"
            )
    targets = [t for t in results["targets"] if not isinstance(t["target"], str)]  # "full ≥ no_mse": results.md
    verdict = results.get("verdict") or {}  # not judged: no target is met or missed, and no row is the dev pick's
    if targets and not (judged := verdict.get("judged", True)):
        print(f"  targets not judged: {'; '.join(verdict['why_not'])}")
    for target in targets:
        status = ("met" if target["met"] else "MISSED") if judged else "not judged"
        share = "" if target.get("p_target") is None else f"; P(Δ ≥ target) {target['p_target']:.3f}"
        delta = target["delta"]  # None (null in results.json) or NaN: a collapsed seed's undefined score
        shown = "– (undefined: see results.md)" if delta is None or delta != delta else signed(100 * delta)
        print(
            f"  {target['model']}/{target['variant']} {target['metric']}: "
            f"Δ {shown} (target {signed(100 * target['target'], 1)}) {status}{share}"
            + (_counted(target, results) if judged else "")
        )
    if results.get("missing"):
        print(f"not finished: {', '.join(results['missing'])}")
    for lacks, runs in incomplete_groups(results).items():  # tabulated as evaluated, without what they lack
        print(f"evaluated without {lacks}: {', '.join(runs)}")
    if failed:
        print(f"worker(s) {', '.join(map(str, failed))} failed: see their logs", file=sys.stderr)
        return 1
    if results.get("missing") and not args.report_only and WORKER_ENV not in os.environ:  # e.g. runs held elsewhere
        print(f"{len(results['missing'])} run(s) not finished: rerun the same command to resume", file=sys.stderr)
        return 1
    return 0

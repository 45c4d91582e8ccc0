#!/usr/bin/env python
"""Run a ``biohicl reproduce`` study in one lent GPU session: carry what it needs in pieces, run it under a deadline,
and bring its folder back in pieces, whatever happened.

The lent machine has no network and no Hugging Face cache; each ``run`` call carries at most 64 MiB (the working tree
included), and at most 8 files of 16 MiB (64 MiB together, no deeper than ``$OUT/a/b/file``) come back from ``$OUT``.

``stage`` (here): pack the study's model(s) (``scripts/pack_model.py``), its built dataset, the ``BIOHICL_DATA_DIR``
folders its tasks read, the wheels pyproject.toml's floors need that the GPU image lacks (:data:`DEFAULT_WHEELS`) and
the study config into one bundle, cut it into the fewest parts, one per call (``runs/gpu_carry/cK/``, git-ignored), and
print the device calls: ``status()`` first, each within the machine's 30 s warm window, the run's ``--device-left`` from
the reply before it (:func:`device_left_rule`), ``give_back()`` after it, no kind unless one worker needs more than an
H100; without wheels it warns that the run would be refused on the image as recorded. It first refuses, here, a dataset
the study would refuse there (none built, or a build of other settings than the config's ``dataset``), naming the
command that builds the config's (:func:`dataset_command`)::

    python scripts/gpu_session.py stage --config configs/study_mpnet_gpu_guarded.yaml --download-wheels \\
        --phase "--only two_pass_distill2,one_pass_distill2 --seeds 3 --workers 2" --phase "--workers 9"

``receive`` (there, every call but the last): move the call's part to the inbox (``biohicl_gpu_inbox`` in the system
temp folder) and say whether the versions there meet pyproject.toml's floors with the carried wheels, and what the
carried wheels require (``Requires-Dist``) that the image does not give. ``run`` (there, the last call): take the last
part, check and unpack the bundle, install the wheels offline (skipped when none were staged), refuse versions below
pyproject.toml's floors or a failing ``import transformers, peft, datasets, evaluate, biohicl`` in the phases'
environment (transformers' own requirements), cut each phase's ``--workers`` to what the GPU's free memory holds
(:data:`WORKER_GIB`, an estimate, or ``--worker-gib``), run each phase with ``python3 -m biohicl.cli.main reproduce``
until the deadline (``--device-left`` less :data:`DEVICE_MARGIN_S`, less the reserve for packing; a phase ending with a
configuration error, exit 2, stops the rest), copying the logs and each finished run into ``$OUT`` as it goes, then
tar+xz the study folder (``checkpoint-*`` left out) into pieces under ``$OUT`` with the logs beside them.
``collect`` (here): check and join the pieces (or the progress copy of a cut call) into the study folder and rewrite
the report (``--report_only``).

The pieces, archives and what goes back into ``$OUT`` are ``scripts/gpu_transfer.py``'s; the workers the GPU's memory
holds and the phases' processes, ``scripts/gpu_limits.py``'s. Standard library only at
import, so it runs on the GPU image before anything is installed; ``stage``, run here, imports ``biohicl`` and
``yaml``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

logger = logging.getLogger("gpu_session")

REPO = Path(__file__).resolve().parents[1]
MANIFEST = "manifest.json"
INBOX = Path(os.environ.get("BIOHICL_GPU_INBOX") or Path(tempfile.gettempdir()) / "biohicl_gpu_inbox")
#: What ``--download-wheels`` carries: the packages pyproject.toml's floors need that the GPU image lacks or holds below
#: them (as the device tool recorded it, 2026-11: transformers 5.17.0 and huggingface_hub 1.33.0 under the floors 5.23
#: and 2.2; no datasets or evaluate), at the versions the dev environment tests them with, peft with them, and what
#: they need that the image lacks (huggingface_hub 2 speaks HTTP through httpx2: httpcore2, truststore; datasets: dill,
#: multiprocess) or holds at versions not recorded (anyio, idna, h11, typing_extensions, fsspec, which datasets caps;
#: regex, which transformers checks on import against a recent floor). Not carried: pyarrow (datasets' floor 24; 53 MB,
#: a call of its own), click and hf-xet (huggingface_hub's, not imported offline); ``run``'s import check names a
#: failure before any phase. 17.5 MB as wheels, about 6.4 MiB in the bundle (:func:`gpu_transfer.wheels_archive`).
#: ``run`` checks the floors there before any phase (:func:`gpu_limits.below_floors`), and ``receive`` says on the
#: first call whether they will be met.
DEFAULT_WHEELS = [
    "transformers==5.23.0", "huggingface_hub==2.4.0", "peft==0.21.2", "datasets==5.2.0", "evaluate==0.4.6",
    "dill==0.4.1", "multiprocess==0.70.19", "fsspec==2026.9.0", "httpx2==2.16.2", "httpcore2==2.16.2",
    "truststore==0.10.5", "anyio==4.16.0", "idna==3.20", "h11==0.16.0", "typing_extensions==4.16.0",
    "regex==2026.11.19",
]  # fmt: skip
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"]
#: What each phase runs, before ``--config CONFIG`` and the phase's arguments (``run --phase-command`` replaces it).
REPRODUCE = (sys.executable, "-m", "biohicl.cli.main", "reproduce")
#: The exit code of ``biohicl`` for its one-line errors (a config, data or model error, an argument ``reproduce``
#: refuses): the phases after one that ends so are skipped, as they would meet it again. A run that crashed in a
#: worker ends its phase with 1 (the other runs kept), and the next phase still runs.
CONFIG_ERROR = 2
#: Of the device time the reply before the run call says is left (``run --device-left``), the seconds the run step
#: leaves unused: from that reply to the command's start (the operator's turn, the call's upload) and the transfers
#: back after it.
DEVICE_MARGIN_S = 45
#: The plan's estimates of device time (the device README: a start takes "a minute or more"): not measured here.
START_S, RECEIVE_S = 90, 20


def load_script(name: str):
    """``scripts/<name>.py`` as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_pack_model():
    return load_script("pack_model")


transfer = load_script("gpu_transfer")
MIB, BACK, CARRY_MIB, COMMAND_CHARS = transfer.MIB, transfer.BACK, transfer.CARRY_MIB, transfer.COMMAND_CHARS
Session, sha256, split_file, join_pieces = transfer.Session, transfer.sha256, transfer.split_file, transfer.join_pieces
tar_xz, extract, pack_back = transfer.tar_xz, transfer.extract, transfer.pack_back
limits = load_script("gpu_limits")
WORKER_GIB, PARENT_GIB, H100_FREE_GIB = limits.WORKER_GIB, limits.PARENT_GIB, limits.H100_FREE_GIB
run_phase, gpu_memory_gib, capped_phases, device_kind = (
    limits.run_phase,
    limits.gpu_memory_gib,
    limits.capped_phases,
    limits.device_kind,
)
cap_workers, phase_workers, worker_estimate = limits.cap_workers, limits.phase_workers, limits.worker_estimate


# ------------------------------------------------------------------------------------------------------------- stage
def study_needs(config_path: Path) -> dict:
    """From a study config: its output folder, dataset folder, Hub model ids and the data folders its tasks read."""
    import yaml

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))

    from biohicl.evaluation.tasks import DATA_FOLDERS, DATASET_TASKS, parse_task_spec

    raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    output_dir = str(raw.get("output_dir") or "")
    dataset = str((raw.get("dataset") or {}).get("path") or Path(output_dir) / "dataset")
    specs = list(raw.get("tasks") or []) + list((raw.get("training") or {}).get("eval_tasks") or [])
    for model in raw.get("models") or []:
        specs += list(model.get("tasks") or []) + list((model.get("training") or {}).get("eval_tasks") or [])
    for variant in (raw.get("variants") or {}).values():
        specs += list((variant or {}).get("eval_tasks") or [])
    for listed in (raw.get("tasks_per_variant") or {}).values():
        specs += list(listed or [])
    folders = set()
    for spec in specs:
        name = parse_task_spec(str(spec))[0]
        if name.partition("@")[0] in DATASET_TASKS:
            continue  # siml-agreement@<dataset>: the dataset travels anyway
        if name not in DATA_FOLDERS:
            raise SystemExit(
                f"{config_path}: task {spec!r} reads no known BIOHICL_DATA_DIR folder; stage cannot carry it"
            )
        folders.add(DATA_FOLDERS[name])
    models = [str(m["model"]) for m in raw.get("models") or []]
    return {"output_dir": output_dir, "dataset": dataset, "models": models, "data_folders": sorted(folders)}


def tree_mib(repo: Path) -> float:
    """Size of what travels without ``carry``: tracked and untracked-not-ignored files (and ``shared/``)."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z", "-c", "-o", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        logger.warning("%s is not a git checkout: assuming an empty working tree", repo)
        return 0.0
    total = sum((repo / os.fsdecode(p)).stat().st_size for p in listed if p and (repo / os.fsdecode(p)).is_file())
    return total / MIB


def model_source(repo_id: str, given: dict[str, Path]) -> Path:
    """The model folder (or pack folder) to carry for ``repo_id``: given with --model, else the local HF cache."""
    if repo_id in given:
        return given[repo_id]
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as error:
        raise SystemExit(
            f"{repo_id}: not in the local Hugging Face cache ({type(error).__name__}); pass "
            f"--model {repo_id}=FOLDER (a model folder or a scripts/pack_model.py pack)"
        ) from None


def download_wheels(folder: Path, names: list[str]) -> None:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *platforms,
            "-d",
            str(folder),
            *names,
        ],
        check=True,
    )


def dataset_command(config_path: Path) -> str:
    """The command that builds the study's dataset as its config's ``dataset`` says (path, inputs, ``top_k``,
    ``limit``, ``mix_label_kinds``, ...) and trains nothing: ``biohicl reproduce --dataset_only``."""
    return f"biohicl reproduce --config {shlex.quote(str(config_path))} --dataset_only"


def check_study_dataset(config_path: Path, dataset: Path) -> None:
    """Exit with one line, before anything is packed, where the study would refuse its dataset on the GPU: no build
    in ``dataset``, or a build the config's ``dataset`` settings would not make
    (:func:`biohicl.study.reuse.check_reused_dataset`: ``top_k``, ``limit``, inputs, ...). Imports ``biohicl``
    (installed here; :func:`study_needs` put the checkout on ``sys.path``), as only ``stage`` does."""
    from biohicl.errors import BioHiCLError
    from biohicl.study import ReproduceConfig
    from biohicl.study.reuse import check_reused_dataset

    try:
        config = ReproduceConfig.from_yaml(config_path)  # a config error is the config's, not the dataset's
    except BioHiCLError as error:
        raise SystemExit(str(error)) from None
    build = f"build it as the study would: {dataset_command(config_path)}"
    if not ((dataset / "documents").is_dir() and (dataset / "pairs").is_dir()):
        raise SystemExit(f"{dataset}: no built dataset; {build}")
    try:
        check_reused_dataset(config)
    except BioHiCLError as error:
        raise SystemExit(f"{error} (once it is moved away, {build})") from None


def stage(args: argparse.Namespace) -> int:
    config = args.config
    needs = study_needs(config)
    check_study_dataset(config, Path(needs["dataset"]))  # here, not minutes into the lent GPU's budget
    carry = args.carry
    try:
        carry.resolve().relative_to(REPO)
    except ValueError:
        logger.warning("%s is outside %s: a call's carry cannot name it (use a git-ignored folder inside)", carry, REPO)
    if carry.exists():
        shutil.rmtree(carry)
    build = carry / "build"
    build.mkdir(parents=True)
    given = dict(item.split("=", 1) for item in args.model)
    members: list[tuple[Path, str]] = [(config, "config.yaml")]
    models = []
    for index, repo_id in enumerate(needs["models"]):
        if Path(repo_id).exists():
            raise SystemExit(f"{config}: model {repo_id!r} is a local folder; stage carries Hub ids (give it hub ids)")
        source = Path(model_source(repo_id, {k: Path(v) for k, v in given.items()}))
        pack = build / f"model{index}"
        if (source / "pack.json").is_file():
            shutil.copytree(source, pack)
        else:
            load_pack_model().pack(source, pack, piece_mb=1e6)  # one piece: the bundle is cut into parts anyway
        members.append((pack, f"model{index}"))
        models.append({"repo_id": repo_id, "pack": f"model{index}"})
    dataset = Path(needs["dataset"])
    members.append((tar_xz(build / "dataset.tar.xz", [(dataset, ".")]), "dataset.tar.xz"))
    data_dir = Path(args.data_dir or os.environ.get("BIOHICL_DATA_DIR") or REPO.parent / "shared" / "data")
    data = [(data_dir / name, name) for name in needs["data_folders"]]
    members.append((tar_xz(build / "data.tar.xz", data), "data.tar.xz"))
    wheels = build / "wheels"
    wheels.mkdir()
    if args.download_wheels:
        download_wheels(wheels, DEFAULT_WHEELS + (args.wheel or []))
    for folder in args.wheels or []:
        for wheel in sorted(Path(folder).glob("*.whl")):
            shutil.copyfile(wheel, wheels / wheel.name)
    carried = sorted(wheels.glob("*.whl"))
    members.append((transfer.wheels_archive(carried, build / "wheels.tar.xz"), "wheels.tar.xz"))
    wheel_count = len(carried)
    bundle = carry / "bundle.tar"
    with tarfile.open(bundle, "w") as tar:
        for path, name in members:
            tar.add(path, arcname=name)
    tree = tree_mib(REPO) if args.tree_mib is None else args.tree_mib
    part_mib = args.call_mib or float(int(CARRY_MIB - tree - 3))  # what the working tree leaves of a call, less 3 MiB
    if tree + part_mib + 1 > CARRY_MIB:
        raise SystemExit(f"--call-mib {part_mib} + the working tree ({tree:.1f} MiB) exceeds {CARRY_MIB} MiB per call")
    total = bundle.stat().st_size
    calls = max(1, -(-total // int(part_mib * MIB)))
    folders = [carry / f"c{k + 1}" for k in range(calls)]
    pieces = split_file(bundle, int(part_mib * MIB), folders, "bundle.tar")
    bundle.unlink()
    shutil.rmtree(build)
    manifest = {
        "format": 1,
        "bundle_bytes": total,
        "pieces": pieces,
        "models": models,
        "phases": args.phase or [""],
        "output_dir": needs["output_dir"],
        "dataset": needs["dataset"],
        "data_folders": needs["data_folders"],
        "budget_s": args.budget,
        "reserve_s": args.reserve,
        "worker_gib": args.worker_gib,
        "wheels": [wheel.name for wheel in carried],
        "requires": {wheel.name: limits.wheel_requirements(wheel) for wheel in carried},
    }
    for folder in folders:
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    script = "scripts/gpu_session.py"
    plan = [{"carry": [str(f)], "timeout_s": 120, "command": f"python3 {script} receive {f}"} for f in folders[:-1]]
    last = f"PYTHONUNBUFFERED=1 python3 {script} run {folders[-1]} --device-left B"
    plan.append({"carry": [str(folders[-1])], "timeout_s": min(600, args.budget + 30), "command": last,
                 "device_left": device_left_rule(len(plan) + 1), "after": "give_back()"})  # fmt: skip
    kind = device_kind(manifest)
    for call in plan:
        assert len(call["command"]) < COMMAND_CHARS, call
        if kind:  # every call: one naming another kind gives the warm machine back, and the parts with it
            call["kind"] = kind
    (carry / "calls.json").write_text(json.dumps(plan, indent=1), encoding="utf-8")
    print(
        f"staged {total / MIB:.1f} MiB in {calls} part(s) of at most {part_mib} MiB (+ {tree:.1f} MiB working tree "
        f"per call: {calls} is the fewest calls that carry it); wheels: {wheel_count}; data: "
        f"{', '.join(needs['data_folders']) or 'none'}."
    )
    if not wheel_count:
        print(
            "warning: no wheels staged: the GPU image as recorded (transformers 5.17.0, huggingface_hub 1.33.0, no "
            "datasets or evaluate) is below pyproject.toml's floors, so run will refuse it before any phase; stage "
            "with --download-wheels (or --wheels DIR) unless the image changed"
        )
    print_plan(plan, kind, args)
    print(f"then: python {script} collect DIR --config {config}   (DIR: where the last call's files came back)")
    return 0


def device_left_rule(calls: int) -> str:
    """How the run call's ``--device-left B`` is read, for a plan of ``calls`` calls: from the reply before it, so no
    ``status()`` spends the 30 s warm window (every ``run`` reply carries ``lease.budget_left_s``); a one-call plan's
    run call starts the machine, so its B is the first ``status()``'s less the start (:data:`START_S`, an estimate)."""
    if calls == 1:
        return f"B = status()'s budget_left_s less {START_S} s (the machine's start, an estimate)"
    return "B = the last reply's lease.budget_left_s"


def print_plan(plan: list[dict], kind: str | None, args: argparse.Namespace) -> None:
    """The device calls, as made: ``status()`` first, each call within the machine's 30 s warm window of the last
    reply, the run call's ``--device-left`` by :func:`device_left_rule`, ``give_back()`` after it, and the device
    time."""
    print(
        "Device calls, each within 30 s of the last reply (the machine goes back after 30 s idle, and the parts with "
        "it: a reply with warm: false before the last call means starting again at call 1); status() first, whose "
        "can_start_another must be true:"
    )
    named = f", kind={json.dumps(kind)}" if kind else ""
    for number, call in enumerate(plan, 1):
        rule = f"{device_left_rule(len(plan))}; " if number == len(plan) else ""
        print(
            f"{number}. {rule}run(carry={json.dumps(call['carry'])}, timeout_s={call['timeout_s']}, "
            f"command={json.dumps(call['command'])}{named})"
        )
    print(f"{len(plan) + 1}. give_back()   (at once: a warm machine's idle time counts)")
    if kind:
        print(f"{kind} named: one worker needs more GPU memory than an H100 holds at the estimate")
    before = START_S + RECEIVE_S * (len(plan) - 1)
    print(
        f"device time in all: about {before} s before the run call (a start of about {START_S} s, {RECEIVE_S} s a "
        f"receive call), then the run call: {args.budget} s or B less {DEVICE_MARGIN_S} s, whichever is less, and "
        f"its transfers; the phases get that less the {args.reserve} s reserve and the set-up (estimates, not "
        "measured on a device)"
    )


# --------------------------------------------------------------------------------------------------- receive, run
def receive(parts: list[Path], inbox: Path) -> dict | None:
    """Move each part folder's files into ``inbox``; returns the manifest (None when none arrived yet)."""
    inbox.mkdir(parents=True, exist_ok=True)
    for folder in parts:
        for path in sorted(folder.glob("*")):
            if path.is_file():
                shutil.copyfile(path, inbox / path.name)
    if not (inbox / MANIFEST).is_file():
        return None
    manifest = json.loads((inbox / MANIFEST).read_text(encoding="utf-8"))
    have = [p["name"] for p in manifest["pieces"] if (inbox / p["name"]).is_file()]
    print(f"inbox {inbox}: {len(have)} of {len(manifest['pieces'])} part(s): {', '.join(have)}", flush=True)
    return manifest


def versions_outlook(manifest: dict) -> str:
    """Whether ``run`` will find pyproject.toml's floors met here, with the wheels the bundle carries: the ``receive``
    calls say so before the last call spends its minutes."""
    wheels = manifest.get("wheels") or []
    carried = limits.wheel_versions(wheels)
    paths = limits.import_paths(dict(os.environ))
    problems = limits.below_floors(REPO / "pyproject.toml", paths, carried)
    problems += limits.unmet_requirements(manifest.get("requires") or {}, paths, carried)
    return f"versions here with the {len(wheels)} carried wheel(s): " + (
        f"below pyproject.toml's floors: {', '.join(problems)}; run will refuse them: give_back() and stage again "
        "with wheels that meet them (--wheel NAME==VERSION)"
        if problems
        else "pyproject.toml's floors met"
    )


def setup(manifest: dict, inbox: Path, work: Path, say) -> dict:
    """Join, check and unpack the bundle; install the wheels; returns the environment for the study."""
    bundle = inbox / "bundle.tar"
    problems = join_pieces(manifest["pieces"], [inbox], bundle)
    if problems:
        raise RuntimeError("bundle incomplete: " + "; ".join(problems))
    unpacked = work / "bundle"
    extract(bundle, unpacked)
    bundle.unlink()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }
    if manifest["models"]:
        cache = work / "hf-cache"
        for model in manifest["models"]:
            load_pack_model().unpack([unpacked / model["pack"]], model["repo_id"], cache)
            say(f"model {model['repo_id']} unpacked into {cache}")
        env["HF_HUB_CACHE"] = str(cache)
    extract(unpacked / "dataset.tar.xz", Path(manifest["dataset"]))
    extract(unpacked / "data.tar.xz", work / "data")
    env["BIOHICL_DATA_DIR"] = str(work / "data")
    say(f"dataset in {manifest['dataset']}; BIOHICL_DATA_DIR={work / 'data'} ({', '.join(manifest['data_folders'])})")
    paths = [str(REPO)]
    extract(unpacked / "wheels.tar.xz", unpacked / "wheels")
    wheels = sorted((unpacked / "wheels").glob("*.whl"))
    if wheels:
        site = work / "site"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--no-deps",
                "--no-compile",
                "--no-cache-dir",
                "--upgrade",
                "--target",
                str(site),
                *map(str, wheels),
            ],
            check=True,
        )
        paths.insert(0, str(site))
        say(f"installed {len(wheels)} wheel(s) offline into {site}: {', '.join(w.name for w in wheels)}")
    else:
        say("no wheels staged: using the packages already installed")
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env["BIOHICL_GPU_CONFIG"] = str(unpacked / "config.yaml")
    return env


def run(args: argparse.Namespace) -> int:
    start = time.monotonic()
    out = Path(args.out or os.environ.get("OUT") or "gpu_out")
    inbox, work = args.inbox, args.inbox / "work"
    manifest = receive(args.parts, inbox)
    output_dir = Path(manifest["output_dir"]) if manifest else Path("gpu_session_failed")
    session = Session(output_dir / "logs" / "gpu_session.log")
    budget, said = run_budget(args, manifest or {})
    session.say(said)
    reserve = args.reserve or (manifest or {}).get("reserve_s", 60)
    deadline = start + budget - reserve
    state: dict = {"phases": [], "error": None, "budget_s": budget}
    progress = transfer.Progress(output_dir, out, session, state)
    try:
        if manifest is None:
            raise RuntimeError(f"no {MANIFEST} in {inbox}: no part arrived (was the machine given back between calls?)")
        env = setup(manifest, inbox, work, session.say)
        progress()
        problems = limits.below_floors(REPO / "pyproject.toml", limits.import_paths(env))
        if problems:  # before any GPU minute goes to a run that would fail minutes in
            raise RuntimeError(
                f"below pyproject.toml's floors: {', '.join(problems)}; no phase run: stage again with wheels that "
                "meet them (--download-wheels, --wheel NAME==VERSION)"
            )
        session.say(f"versions: pyproject.toml's {len(limits.floors(REPO / 'pyproject.toml'))} floors met")
        refused = limits.import_problem(env)  # transformers checks its own requirements (regex, tokenizers) on import
        if refused:
            raise RuntimeError(f"import {limits.IMPORTS} failed in the phases' environment: {refused}; no phase run")
        session.say(f"import {limits.IMPORTS}: ok")
        session.say(
            f"set up in {time.monotonic() - start:.0f} s; study deadline in {deadline - time.monotonic():.0f} s"
        )
        phases = args.phase or manifest["phases"]
        capped = capped_phases(phases, manifest, env, args.worker_gib, session.say)
        stop = None  # why the phases left are skipped
        for number, (asked, phase) in enumerate(zip(phases, capped, strict=True), 1):
            left = deadline - time.monotonic()
            if stop is None and left < 5:
                stop = "no time left"
            if stop is not None:
                session.say(f"phase {phase!r} skipped: {stop}")
                state["phases"].append({"args": asked, "ran": phase, "skipped": stop})
                continue
            command = shlex.split(args.phase_command) if args.phase_command else [*REPRODUCE]
            argv = [*command, "--config", env["BIOHICL_GPU_CONFIG"], *phase.split()]
            session.say(f"phase {' '.join(argv[len(command) - 1 :])} (at most {left:.0f} s)")
            began = time.monotonic()
            code, timed_out = run_phase(argv, env, session.path, left, tick=progress, poll=args.poll)
            took = time.monotonic() - began
            state["phases"].append(
                {"args": asked, "ran": phase, "exit": code, "timed_out": timed_out, "seconds": round(took)}
            )
            progress()
            session.say(
                f"phase ended: exit {code}{' (stopped at the deadline)' if timed_out else ''} after {took:.0f} s"
            )
            if timed_out:
                stop = f"phase {number} was stopped at the deadline"
            elif code == CONFIG_ERROR:  # biohicl's one-line error: the next phase would meet it again
                stop = f"after phase {number}'s configuration error (exit {code})"
                session.say(f"phases after it skipped: exit {code} is a configuration error (see the log above)")
    except Exception as error:  # whatever failed, the folder and logs still go back
        state["error"] = f"{type(error).__name__}: {error}"
        session.say(f"failed: {state['error']}")
    finally:
        pack_back(output_dir, out, state, session)
    ok = state["error"] is None and all(p.get("exit") == 0 for p in state["phases"])
    return 0 if ok else 1


def run_budget(args: argparse.Namespace, manifest: dict) -> tuple[int, str]:
    """The run step's seconds (its phases' deadline is this less the reserve for packing) and the log line saying
    where they came from: ``--budget`` or the staged one (570), cut to ``--device-left`` (the budget_left_s of the
    reply before the call, :func:`device_left_rule`) less :data:`DEVICE_MARGIN_S`, so the phases stop and the study
    is packed before the device's own limit ends the call."""
    staged = args.budget or manifest.get("budget_s", 570)
    if args.device_left is None:
        return staged, (
            f"budget {staged} s (staged; no --device-left: a call the device gives less time is cut before its final "
            f"pack, and only the progress copies in $OUT come back)"
        )
    left = args.device_left - DEVICE_MARGIN_S
    budget = min(staged, left)
    return budget, (
        f"budget {budget} s, the less of the staged {staged} s and --device-left {args.device_left} less "
        f"{DEVICE_MARGIN_S} s for the call's start and transfers ({left} s)"
    )


# ------------------------------------------------------------------------------------------------------- collect
def collect(args: argparse.Namespace) -> int:
    record = json.loads((args.back / BACK).read_text(encoding="utf-8"))
    output_dir = Path(args.output_dir or record["output_dir"])
    print(f"back: {record['kept']}; phases: {json.dumps(record['phases'])}; error: {record['error']}")
    if record["pieces"]:
        archive = args.back.parent / f".{args.back.name}-study.tar.xz"
        problems = join_pieces(record["pieces"], [args.back], archive)
        if problems:
            raise SystemExit(f"{args.back / BACK}: " + "; ".join(problems))
        extract(archive, output_dir)
        archive.unlink()
        print(f"study folder restored into {output_dir}")
    elif (args.back / transfer.PROGRESS).is_file():  # the call was cut before its final pack
        extract(args.back / transfer.PROGRESS, output_dir)
        runs = len(transfer.finished_runs(output_dir))
        print(f"the call was cut before its final pack: its last progress copy ({runs} run(s)) is in {output_dir}")
    if args.no_report:
        return 0
    command = [
        sys.executable,
        "-m",
        "biohicl.cli.main",
        "reproduce",
        "--config",
        str(args.config),
        "--report_only",
        "--output_dir",
        str(output_dir),
    ]
    return subprocess.run(command, env={**os.environ, "PYTHONPATH": str(REPO)}).returncode


WORKER_HELP = (
    "GPU memory per reproduce worker, GiB: run cuts each phase's --workers to what the GPU's free memory holds "
    "(default: WORKER_GIB's CPU estimate for the study's model, 13 for all-mpnet-base-v2; none: not capped)"
)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("stage", help="here: pack the carry into one part per call and print the calls")
    s.add_argument("--config", type=Path, required=True, help="the study config (YAML)")
    s.add_argument("--model", action="append", default=[], help="HUB_ID=FOLDER: a model folder or pack for a Hub id")
    s.add_argument("--data-dir", help="BIOHICL_DATA_DIR to take the tasks' folders from (default: the environment's)")
    s.add_argument("--wheels", action="append", help="a folder of wheels to carry (repeatable)")
    s.add_argument(
        "--download-wheels",
        action="store_true",
        help="pip download DEFAULT_WHEELS (transformers, huggingface_hub, datasets, ...: what pyproject's floors need "
        "that the GPU image lacks) and each --wheel, for CPython 3.12 manylinux x86-64",
    )
    s.add_argument("--wheel", action="append", help="NAME==VERSION to download too (repeatable)")
    s.add_argument("--carry", type=Path, default=Path("runs/gpu_carry"), help="git-ignored folder for the parts")
    s.add_argument("--call-mib", type=float, help="largest part per call, MiB (default: 61 less the working tree)")
    s.add_argument("--tree-mib", type=float, help="working-tree size per call (default: measured with git)")
    s.add_argument("--phase", action="append", help="extra reproduce arguments of one phase, in priority order")
    s.add_argument("--budget", type=int, default=570, help="seconds for the whole run step (default 570)")
    s.add_argument("--reserve", type=int, default=60, help="of which kept for packing the results (default 60)")
    s.add_argument("--worker-gib", type=float, help=WORKER_HELP)
    r = commands.add_parser("receive", help="there: move a carried part into the inbox")
    r.add_argument("parts", type=Path, nargs="+")
    r.add_argument("--inbox", type=Path, default=INBOX)
    u = commands.add_parser("run", help="there: unpack, install, run the phases, always pack the study into $OUT")
    u.add_argument("parts", type=Path, nargs="*", help="the part(s) this call carried")
    u.add_argument("--inbox", type=Path, default=INBOX)
    u.add_argument("--out", help="default: $OUT")
    u.add_argument("--phase", action="append", help="replace the staged phases")
    u.add_argument("--budget", type=int, help="replace the staged budget (seconds)")
    u.add_argument(
        "--device-left",
        type=int,
        help="the device time left by the reply before this call (device_left_rule): the budget is cut to it less "
        f"{DEVICE_MARGIN_S} s, so the phases stop and the study is packed before the device ends the call",
    )
    u.add_argument("--poll", type=float, default=5.0, help="seconds between the copies of finished runs into $OUT")
    u.add_argument("--reserve", type=int, help="replace the staged reserve (seconds)")
    u.add_argument("--worker-gib", type=float, help=WORKER_HELP)
    u.add_argument(
        "--phase-command",
        help="what each phase runs, before --config CONFIG and its arguments (default: python3 -m biohicl.cli.main "
        "reproduce); a rehearsal's stand-in",
    )
    c = commands.add_parser("collect", help="here: join the pieces into the study folder and rewrite the report")
    c.add_argument("back", type=Path, help="the folder holding back.json and study.tar.xz.NNN")
    c.add_argument("--config", type=Path, required=True)
    c.add_argument("--output_dir", help="restore here instead of the study's output_dir")
    c.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "receive":
        manifest = receive(args.parts, args.inbox)
        if manifest:
            print(versions_outlook(manifest), flush=True)
        return 0 if manifest else 1
    return {"stage": stage, "run": run, "collect": collect}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""What a lent GPU machine allows a ``scripts/gpu_session.py`` study: the package versions it runs with (checked against
pyproject.toml's floors before any phase), the workers its memory holds (each phase's ``--workers`` cut to the GPU's
free memory at a per-worker estimate) and the time it gives (a phase stopped, with its whole process group, at the
deadline).

Standard library only at import, so it runs on the GPU image before anything is installed; the carried wheels'
requirements are checked with ``packaging`` where the image has it (:func:`unmet_requirements`).
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

GIB = 1 << 30
#: ``name>=version`` at the start of a requirement (extras allowed): every pyproject.toml dependency gives its floor so.
FLOOR = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][0-9.]*)")
#: GPU memory one ``reproduce`` worker of a model's study is taken to need, GiB: ESTIMATED ON THE CPU, not measured on
#: a GPU. all-mpnet-base-v2 (eager attention only in transformers 5.x, LoRA on q/v, 384 tokens, batch 32, bf16
#: autocast): the tensors its forward saves for backward, counted with a saved-tensor hook at batches 2 and 4
#: (``python benchmarks/bench_saved_tensors.py``: 160 MiB fixed + 247 MiB a row), are 7.9 GiB at batch 32; the CUDA
#: context, the weights, backward's transients and the allocator's slack come on top, so 13 is taken as a margin. A
#: model not listed has no estimate (its phases are not capped) unless ``--worker-gib`` gives one.
WORKER_GIB = {"sentence-transformers/all-mpnet-base-v2": 13.0}
#: What the ``reproduce`` parent keeps on the GPU beside its workers (its CUDA context after the step-0 pre-pass,
#: whose cached blocks it releases), GiB; also an estimate.
PARENT_GIB = 2.0
#: About what an H100 the device tool lends has free, GiB (its README: about 78).
H100_FREE_GIB = 78.0


def _libc_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # Linux; None elsewhere
    except (OSError, AttributeError):
        return None


PRCTL = _libc_prctl()
PR_SET_PDEATHSIG = 1


def own_group_ended_with(parent: int):
    """What a phase's process runs before the study command: its own process group (so the deadline stops it with
    its workers), not its own session (so the device ends it with the call), and SIGTERM when ``parent`` (``run``)
    dies, SIGKILL by the device's limit included (Linux ``PR_SET_PDEATHSIG``; the study's workers have their own)."""

    def child() -> None:
        os.setpgid(0, 0)
        if PRCTL is not None:
            PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # run died before the line above
            os._exit(143)

    return child


def run_phase(
    argv: list[str], env: dict, log: Path, seconds: float, tick=None, poll: float = 5.0
) -> tuple[int | None, bool]:
    """Run one study command until it ends or ``seconds`` pass (then its whole process group is stopped), calling
    ``tick()`` every ``poll`` seconds meanwhile (the progress copies); returns (exit code, timed out)."""
    end = time.monotonic() + max(1.0, seconds)
    with log.open("a", encoding="utf-8") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=own_group_ended_with(os.getpid())
        )
        while True:
            try:
                return process.wait(timeout=max(0.05, min(poll, end - time.monotonic()))), False
            except subprocess.TimeoutExpired:
                if time.monotonic() >= end:
                    break
                if tick is not None:
                    tick()
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        return process.returncode, True


def gpu_memory_gib(env: dict) -> tuple[float, float] | None:
    """(free, total) GiB of the GPU, from ``torch.cuda.mem_get_info`` in a child process (so this one holds no CUDA
    context for the whole session); None when it cannot tell (no torch, no GPU)."""
    code = "import torch; print(*torch.cuda.mem_get_info())"
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
        free, total = (int(n) for n in done.stdout.split())
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return free / GIB, total / GIB


def workers_option(token: str) -> str | None:
    """``"name"`` when ``token`` is ``--workers`` or a prefix argparse takes for it (``--w``, ``--work``: no other
    ``reproduce`` option begins ``--w``), ``"name=value"`` for ``--work=N``; None for anything else."""
    name, equals, _ = token.partition("=")
    if len(name) < 3 or not "--workers".startswith(name):
        return None
    return "name=value" if equals else "name"


def phase_workers(phase: str) -> int:
    """The ``--workers N`` (or ``--workers=N``, or an abbreviation ``--work N``) a phase gives, the last one winning;
    1 when none."""
    tokens, workers = phase.split(), 1
    for index, token in enumerate(tokens):
        form = workers_option(token)
        if form == "name" and index + 1 < len(tokens):
            workers = int(tokens[index + 1])
        elif form == "name=value":
            workers = int(token.partition("=")[2])
    return workers


def cap_workers(phase: str, free_gib: float, worker_gib: float) -> tuple[str, int]:
    """``phase`` with its workers cut to what ``free_gib`` holds at ``worker_gib`` each beside the parent's
    :data:`PARENT_GIB` (at least 1); returns (phase, workers that fit)."""
    fits = max(1, int((free_gib - PARENT_GIB) // worker_gib))
    if phase_workers(phase) <= fits:
        return phase, fits
    tokens, kept, skip = phase.split(), [], False
    for index, token in enumerate(tokens):
        if skip:
            skip = False
        elif workers_option(token) == "name":
            skip = index + 1 < len(tokens)
        elif workers_option(token) is None:
            kept.append(token)
    return " ".join([*kept, "--workers", str(fits)]), fits


def worker_estimate(manifest: dict, given: float | None) -> tuple[float | None, str]:
    """The per-worker GiB to cap phases by (``--worker-gib`` at run, then at stage, then :data:`WORKER_GIB`'s
    largest for the study's models) and where it came from."""
    if given:
        return given, "--worker-gib"
    if manifest.get("worker_gib"):
        return float(manifest["worker_gib"]), "--worker-gib at stage"
    known = [WORKER_GIB[m["repo_id"]] for m in manifest.get("models") or [] if m["repo_id"] in WORKER_GIB]
    return (max(known), "WORKER_GIB, estimated on the CPU") if known else (None, "")


def device_kind(manifest: dict) -> str | None:
    """``nvidia-h200`` only when one worker and the parent need more than an H100 holds at the estimate, else None:
    the device tool lends an H100 unless a call names another kind (naming the H200 rules out a free H100), and on an
    H100 ``run`` cuts a phase's workers to what fits (:func:`cap_workers`): the same runs, fewer at once."""
    worker_gib = worker_estimate(manifest, None)[0]
    if worker_gib is None:
        return None
    return "nvidia-h200" if worker_gib + PARENT_GIB > H100_FREE_GIB else None


def capped_phases(phases: list[str], manifest: dict, env: dict, given: float | None, say) -> list[str]:
    """Each phase with its ``--workers`` cut to what the GPU's free memory holds (logged); unchanged when the
    models have no estimate or the memory cannot be read."""
    worker_gib, source = worker_estimate(manifest, given)
    if worker_gib is None:
        say("no per-worker GPU memory estimate for these models (--worker-gib): workers not capped")
        return phases
    memory = gpu_memory_gib(env)
    if memory is None:
        say("GPU memory unknown (torch.cuda.mem_get_info failed): workers not capped")
        return phases
    free, total = memory
    capped = []
    for phase in phases:
        new, fits = cap_workers(phase, free, worker_gib)
        if new != phase:
            say(
                f"workers capped: phase {phase!r} asks {phase_workers(phase)}, {fits} fit in {free:.1f} GiB free "
                f"(of {total:.1f} GiB) at {worker_gib:g} GiB each ({source}) + {PARENT_GIB:g} GiB for the parent: "
                f"running {new!r} (the runs left wait for a free worker: longer, same results)"
            )
        else:
            say(f"GPU {free:.1f} GiB free of {total:.1f}: phase {phase!r} fits at {worker_gib:g} GiB per worker")
        capped.append(new)
    return capped


# ----------------------------------------------------------------------------------------------- package versions
def normal(name: str) -> str:
    """A distribution name as packaging compares it (``huggingface_hub`` and ``huggingface-hub`` alike)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def floors(pyproject: Path) -> list[tuple[str, str]]:
    """pyproject.toml's dependencies as (name, lowest version), from their ``>=``."""
    import tomllib

    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return [match.groups() for match in map(FLOOR.match, dependencies) if match]


#: A version as PEP 440 spells it, enough to compare it with a floor: ``[N!]N(.N)*`` then what follows (a
#: pre-release ``a``/``b``/``rc``, ``.postN``, ``.devN``, a local ``+label``).
VERSION = re.compile(r"\s*v?(?:(\d+)!)?(\d+(?:\.\d+)*)(.*)", re.IGNORECASE)
#: What makes a version come before its release (``5.23.0rc1``, ``5.23.0.dev0``, ``2.6.0a0+git123``), unless a
#: ``.post`` comes first (``5.23.0.post1.dev0`` is after 5.23.0).
PRE_RELEASE = re.compile(r"[-_.]?(a|b|c|rc|alpha|beta|pre|preview|dev)(?![a-z])", re.IGNORECASE)


def release(version: str) -> tuple[int, tuple[int, ...], bool]:
    """(epoch, release numbers, whether it comes before that release) of a version: ``2.11.0+cu130`` → (0, (2, 11,
    0), False), ``5.23.0rc1`` → (0, (5, 23, 0), True), ``1!2.0`` → (1, (2, 0), False); (0, (), True) when it is no
    version at all. Enough for floors (``>=`` a plain release), not the whole of PEP 440's ordering."""
    match = VERSION.fullmatch(version)
    if match is None:
        return 0, (), True
    epoch, numbers, rest = match.groups()
    return int(epoch or 0), tuple(int(n) for n in numbers.split(".")), bool(PRE_RELEASE.match(rest))


def below(version: str, floor: str) -> bool:
    """Whether ``version`` is below ``floor`` (a plain release, as pyproject.toml's ``>=`` give them), as
    ``packaging`` orders them: a pre-release or development release of the floor's release is below it (``>=5.23``
    refuses ``5.23.0rc1``), a post-release or local build of it is not, and a later epoch is above any floor."""
    (epoch, have, early), (need_epoch, need, _) = release(version), release(floor)
    if epoch != need_epoch:
        return epoch < need_epoch
    width = max(len(have), len(need))
    have, need = have + (0,) * (width - len(have)), need + (0,) * (width - len(need))
    return have < need or (have == need and early)


def import_paths(env: dict) -> list[str]:
    """Where the phases' Python finds packages, first first: ``env``'s PYTHONPATH (the carried wheels lead it), then
    this interpreter's own path."""
    return [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p] + sys.path


def wheel_versions(names: list[str]) -> dict[str, str]:
    """{normal name: version} of wheel file names (``huggingface_hub-2.4.0-py3-none-any.whl``)."""
    return {normal(name.split("-")[0]): name.split("-")[1] for name in names if name.count("-") >= 4}


def below_floors(pyproject: Path, paths: list[str], carried: dict[str, str] | None = None) -> list[str]:
    """Each of pyproject.toml's floors the first distribution of its name on ``paths`` (the one Python imports) does
    not meet, as ``NAME VERSION (needs >=FLOOR)`` or ``NAME missing (...)``; ``carried``: versions of wheels not
    installed yet, which will come first."""
    problems = []
    for name, floor in floors(pyproject):
        version = (carried or {}).get(normal(name))
        if version is None:
            found = next(iter(metadata.distributions(name=name, path=paths)), None)
            version = found.version if found is not None else None
        if version is None or below(version, floor):
            problems.append(f"{name} {version or 'missing'} (needs >={floor})")
    return problems


def wheel_requirements(wheel: Path) -> list[str]:
    """A wheel's ``Requires-Dist`` lines, those of its extras left out (what it needs installed to import)."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        header = archive.read(name).decode("utf-8", errors="replace").split("\n\n")[0]
    found = [line.partition(":")[2].strip() for line in header.splitlines() if line.startswith("Requires-Dist:")]
    return [line for line in found if not re.search(r"\bextra\s*==", line)]


def unmet_requirements(requires: dict[str, list[str]], paths: list[str], carried: dict[str, str]) -> list[str]:
    """What the carried wheels (``{wheel file name: requirements}``) need that the versions here do not give, each as
    ``NAME VERSION needs REQUIREMENT (here VERSION)``: transformers refuses on import a regex or tokenizers outside its
    own bounds, whatever pyproject.toml's floors say. Needs ``packaging`` (every transformers image has it): without
    it, nothing is said."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return []
    unmet = []
    for wheel, lines in requires.items():
        owner, version = wheel.split("-")[:2]
        for line in lines:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            have = carried.get(normal(requirement.name))
            if have is None:
                found = next(iter(metadata.distributions(name=requirement.name, path=paths)), None)
                have = found.version if found is not None else None
            if have is None or not requirement.specifier.contains(have, prereleases=True):
                unmet.append(
                    f"{owner} {version} needs {requirement.name}{requirement.specifier} (here {have or 'missing'})"
                )
    return unmet


#: What the phases import first: an import that fails here fails every run, minutes in.
IMPORTS = "transformers, peft, datasets, evaluate, biohicl"


def import_problem(env: dict) -> str | None:
    """None when ``python -c "import {IMPORTS}"`` succeeds in ``env`` (the phases' environment), else one line: the
    error's type and the first line of its message (transformers' "regex>=2025.10.22 is required ... but found
    regex==2024.11.6." is followed by a "Try: pip install" line)."""
    code = (
        "import sys\ntry:\n    import " + IMPORTS + "\nexcept BaseException as error:\n"
        "    print(f'{type(error).__name__}: {(str(error).splitlines() or [\"\"])[0]}', file=sys.stderr)\n"
        "    sys.exit(1)\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "the import took over 300 s"
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"

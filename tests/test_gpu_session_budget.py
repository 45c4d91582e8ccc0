"""``scripts/gpu_session.py run`` under its limits, rehearsed on the CPU with a stand-in phase (``--phase-command``):
what stops the phases early, and what still comes back into ``$OUT`` when the run is cut short. One tiny study is
staged once (the real ``stage``: a random BERT under a Hub id, 24 abstracts, no wheels); each test runs a copy."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import load_script, tiny_study_values

REPO = Path(__file__).resolve().parents[1]

#: The stand-in phase: ``--config CONFIG [--runs N] [--exit CODE] [--hang]``. It records its pid and arguments in
#: ``phases.log``, writes N finished run folders (``eval.json``) into the study's output folder one after another,
#: then exits with CODE, or with ``--hang`` writes ``hanging`` and sleeps until it is stopped.
FAKE_PHASE = """
import argparse, json, os, sys, time
from pathlib import Path
p = argparse.ArgumentParser()
p.add_argument("--config"); p.add_argument("--runs", type=int, default=0); p.add_argument("--exit", type=int, default=0)
p.add_argument("--hang", action="store_true")
a = p.parse_args()
with open("phases.log", "a") as log:
    log.write(json.dumps({"pid": os.getpid(), "argv": sys.argv[1:]}) + "\\n")
for seed in range(a.runs):
    run = Path("study/out/tiny/full") / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    (run / "adapter_model.safetensors").write_bytes(b"w" * 1000)
    (run / "eval.json").write_text(json.dumps({"summary": {"biosses/spearman": 0.1 * seed}}))
    time.sleep(0.2)
if a.hang:
    Path("hanging").write_text(str(os.getpid()))
    time.sleep(600)
sys.exit(a.exit)
"""


@pytest.fixture(scope="module")
def staged(tmp_path_factory, tiny_bert_dir) -> Path:
    """A folder holding ``carry/`` (the staged parts) and ``fake_phase.py``; the tests copy it."""
    from biohicl.study import ReproduceConfig, prepare_dataset

    folder = tmp_path_factory.mktemp("staged")
    config = tiny_study_values("study/out", "study/dataset", model="test-org/tiny-bert")
    config |= {"variants": {"full": {}}, "tasks": ["biosses"], "eval_device": "cpu"}
    (folder / "study.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (folder / "fake_phase.py").write_text(FAKE_PHASE, encoding="utf-8")
    here = Path.cwd()
    os.chdir(folder)
    try:
        prepare_dataset(ReproduceConfig.from_yaml(folder / "study.yaml"), progress=False)
        stage = ["stage", "--config", "study.yaml", "--model", f"test-org/tiny-bert={tiny_bert_dir}"]
        assert load_script("gpu_session").main([*stage, "--carry", "carry", "--tree-mib", "0"]) == 0
    finally:
        os.chdir(here)
    shutil.rmtree(folder / "study")  # "there" starts without the study or its dataset
    return folder


def _there(staged: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the staged folder to run in, and the ``run`` arguments every test gives."""
    there = tmp_path / "there"
    shutil.copytree(staged, there)
    parts = sorted(str(p) for p in (there / "carry").glob("c*"))
    fake = f"{sys.executable} {there / 'fake_phase.py'}"
    return there, [*parts, "--inbox", str(tmp_path / "inbox"), "--out", str(tmp_path / "out"), "--phase-command", fake]


def _phases_run(there: Path) -> list[list[str]]:
    log = there / "phases.log"
    lines = log.read_text().splitlines() if log.is_file() else []
    return [json.loads(line)["argv"][2:] for line in lines]  # after --config CONFIG


def test_a_configuration_error_stops_the_phases_and_a_crashed_run_does_not(staged, tmp_path, monkeypatch):
    gpu_session = load_script("gpu_session")
    there, run = _there(staged, tmp_path)
    monkeypatch.chdir(there)
    # exit 2 (biohicl's one-line error: a config, data or model error the next phase would meet again): stop
    assert gpu_session.main(["run", *run, "--phase", "--exit 2", "--phase", "--runs 1"]) == 1
    back = json.loads((tmp_path / "out" / "back.json").read_text())
    assert _phases_run(there) == [["--exit", "2"]]
    assert [(p["args"], p.get("exit"), p.get("skipped")) for p in back["phases"]] == [
        ("--exit 2", 2, None),
        ("--runs 1", None, "after phase 1's configuration error (exit 2)"),
    ]
    assert "phases after it skipped: exit 2 is a configuration error" in (tmp_path / "out" / "session.log").read_text()

    # exit 1 (a run crashed in a worker; the others' runs are kept): the next phase still runs
    shutil.rmtree(tmp_path / "out")
    (there / "phases.log").unlink()
    assert gpu_session.main(["run", *run, "--phase", "--exit 1", "--phase", "--runs 1"]) == 1
    back = json.loads((tmp_path / "out" / "back.json").read_text())
    assert _phases_run(there) == [["--exit", "1"], ["--runs", "1"]]
    assert [p["exit"] for p in back["phases"]] == [1, 0]


def _dist_info(folder: Path, name: str, version: str) -> None:
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")


def test_versions_below_pyprojects_floors_refuse_the_run_before_any_phase(staged, tmp_path, monkeypatch, capsys):
    gpu_session = load_script("gpu_session")
    there, run = _there(staged, tmp_path)
    monkeypatch.chdir(there)
    # the GPU image as recorded (2026-11): transformers 5.17.0 and huggingface_hub 1.33.0, under pyproject's floors
    image = tmp_path / "image-site"
    _dist_info(image, "transformers", "5.17.0")
    _dist_info(image, "huggingface_hub", "1.33.0")
    monkeypatch.setenv("PYTHONPATH", str(image))
    expected = "below pyproject.toml's floors: transformers 5.17.0 (needs >=5.23), huggingface_hub 1.33.0 (needs >=2.2)"

    # the first call already says so, from the image's versions and the wheels the manifest lists (none here)
    assert gpu_session.main(["receive", run[0], "--inbox", str(tmp_path / "inbox")]) == 0
    said = capsys.readouterr().out.splitlines()[-1]
    assert said.startswith(f"versions here with the 0 carried wheel(s): {expected}; run will refuse them")
    # the last call refuses before any phase: one line, exit 1, nothing trained
    assert gpu_session.main(["run", *run, "--phase", "--runs 1"]) == 1
    assert _phases_run(there) == []
    back = json.loads((tmp_path / "out" / "back.json").read_text())
    assert back["phases"] == [] and back["error"].startswith(f"RuntimeError: {expected}; no phase run")
    log = (tmp_path / "out" / "session.log").read_text()
    assert sum(expected in line for line in log.splitlines()) == 1

    # a carried wheel comes first on the path, so a version there meets the floor
    shutil.rmtree(tmp_path / "out")
    _dist_info(tmp_path / "carried", "huggingface_hub", "2.4.0")
    _dist_info(tmp_path / "carried", "transformers", "5.23.0")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path / 'carried'}{os.pathsep}{image}")
    assert gpu_session.main(["run", *run, "--phase", "--runs 1"]) == 0
    assert _phases_run(there) == [["--runs", "1"]]


def _alive(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat")
    try:
        return state.read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait(condition, seconds: float = 30.0) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass (a bound on a wait, not a timing assertion)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _finished_in_out(out: Path) -> list[str]:
    try:
        return json.loads((out / "back.json").read_text()).get("progress", {}).get("runs", [])
    except (OSError, ValueError):
        return []


def _restored(gpu_session, out: Path, folder: Path) -> list[str]:
    assert (
        gpu_session.main(["collect", str(out), "--config", "study.yaml", "--no-report", "--output_dir", str(folder)])
        == 0
    )
    return sorted(str(p.parent.relative_to(folder)) for p in folder.rglob("eval.json"))


def test_a_call_cut_by_the_device_leaves_its_finished_runs_and_logs_in_out_and_no_phase_behind(
    staged, tmp_path, monkeypatch
):
    """The device stops a call at its limit (SIGKILL, no ``finally``): what $OUT held by then is all that comes back."""
    gpu_session = load_script("gpu_session")
    there, run = _there(staged, tmp_path)
    out = tmp_path / "out"
    command = [sys.executable, str(REPO / "scripts" / "gpu_session.py"), "run", *run, "--phase", "--runs 2 --hang"]
    call = subprocess.Popen(command, cwd=there, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # the set-up (unpacking, the import check) comes first: a bound, generous for a loaded machine
        copied = _wait(lambda: len(_finished_in_out(out)) == 2 and (there / "hanging").is_file(), 120)
    finally:
        call.kill()  # the device's limit
        call.wait()
    phase = int((there / "hanging").read_text())
    ended = _wait(lambda: not _alive(phase), 15)
    if not ended:
        os.kill(phase, signal.SIGKILL)  # not left behind by a failing test
    assert ended  # no phase left holding the GPU and the study's run locks
    assert copied and _finished_in_out(out) == ["tiny/full/seed0", "tiny/full/seed1"]
    back = json.loads((out / "back.json").read_text())
    assert back["final"] is False and back["kept"] == "whole (no checkpoints)"
    assert "phase " in (out / "session.log").read_text()
    files = {p.name for p in out.iterdir()}
    assert files <= {"back.json", "session.log", "workers.log", "progress.tar.xz"} and len(files) <= 8
    # collect restores the two finished runs from the progress copy
    monkeypatch.chdir(there)
    assert _restored(gpu_session, out, tmp_path / "restored") == ["tiny/full/seed0", "tiny/full/seed1"]


def test_the_budget_comes_from_the_devices_time_left_and_the_phase_is_stopped_before_it(staged, tmp_path, monkeypatch):
    gpu_session = load_script("gpu_session")
    there, run = _there(staged, tmp_path)
    monkeypatch.chdir(there)
    margin = gpu_session.DEVICE_MARGIN_S
    # the set-up's seconds on this machine, from a run with nothing to do: the budget below leaves the phase room
    assert gpu_session.main(["run", *run, "--phase", "--runs 0", "--inbox", str(tmp_path / "inbox0")]) == 0
    log = (tmp_path / "out" / "session.log").read_text()
    setup = int(re.search(r"set up in (\d+) s", log).group(1))
    budget = 3 * setup + 10
    shutil.rmtree(tmp_path / "out")
    shutil.rmtree(there / "study" / "out")  # its log too: the run below starts the study afresh
    # the device said margin + budget s were left: the run step takes budget s, 2 of them kept for packing
    left = str(margin + budget)
    assert gpu_session.main(["run", *run, "--phase", "--runs 2 --hang", "--device-left", left, "--reserve", "2"]) == 1
    phase = int((there / "hanging").read_text())
    assert not _alive(phase)
    back = json.loads((tmp_path / "out" / "back.json").read_text())
    assert back["final"] is True and back["phases"][0]["timed_out"] is True and back["budget_s"] == budget
    log = (tmp_path / "out" / "session.log").read_text()
    said = f"the staged 570 s and --device-left {left} less {margin} s for the call's start and transfers ({budget} s)"
    assert f"budget {budget} s, the less of {said}" in log
    assert _restored(gpu_session, tmp_path / "out", tmp_path / "restored") == ["tiny/full/seed0", "tiny/full/seed1"]


def test_a_setup_transformers_refuses_on_import_stops_the_run_before_any_phase(staged, tmp_path, monkeypatch):
    """Versions that meet pyproject.toml's floors can still be refused by transformers' own requirements on import
    (regex, tokenizers): ``run`` imports what the phases import, in their environment, before any phase."""
    gpu_session = load_script("gpu_session")
    there, run = _there(staged, tmp_path)
    monkeypatch.chdir(there)
    image = tmp_path / "image-site"
    (image / "transformers").mkdir(parents=True)
    (image / "transformers" / "__init__.py").write_text(
        "raise ImportError('regex>=2025.10.22 is required for a normal functioning of this module, but found "
        "regex==2024.11.6.\\nTry: `pip install transformers -U`')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(image))
    assert gpu_session.main(["run", *run, "--phase", "--runs 1"]) == 1
    assert _phases_run(there) == []
    back = json.loads((tmp_path / "out" / "back.json").read_text())
    assert back["phases"] == []
    assert back["error"] == (
        "RuntimeError: import transformers, peft, datasets, evaluate, biohicl failed in the phases' environment: "
        "ImportError: regex>=2025.10.22 is required for a normal functioning of this module, but found "
        "regex==2024.11.6.; no phase run"
    )

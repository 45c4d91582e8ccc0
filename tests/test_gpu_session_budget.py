"""``scripts/gpu_session.py run`` under its limits, rehearsed on the CPU with a stand-in phase (``--phase-command``):
what stops the phases early, and what still comes back into ``$OUT`` when the run is cut short. One tiny study is
staged once (the real ``stage``: a random BERT under a Hub id, 24 abstracts, no wheels); each test runs a copy."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import load_script, tiny_study_values

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

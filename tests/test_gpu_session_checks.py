"""``scripts/gpu_session.py``'s checks and copies, one at a time on the CPU: the run call's device budget rule in the
printed plan, versions against pyproject.toml's floors (pre-releases, epochs) and against what the carried wheels
require, and the progress copies kept in ``$OUT`` while the phases run."""

from __future__ import annotations

import argparse
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import load_script


def _plan(calls: int) -> list[dict]:
    plan = [{"carry": [f"carry/c{k}"], "timeout_s": 120, "command": f"receive carry/c{k}"} for k in range(1, calls)]
    return [*plan, {"carry": [f"carry/c{calls}"], "timeout_s": 600, "command": f"run carry/c{calls} --device-left B"}]


@pytest.mark.parametrize("calls", [1, 3])
def test_the_run_calls_device_left_comes_from_the_reply_before_it_less_the_start_when_cold(calls, capsys):
    gpu_session = load_script("gpu_session")
    args = argparse.Namespace(budget=570, reserve=60)
    gpu_session.print_plan(_plan(calls), None, args)
    plan = capsys.readouterr().out
    lines = plan.splitlines()
    run_line = next(line for line in lines if line.startswith(f"{calls}. "))
    if calls == 1:  # a cold call: status() is the reply before it, and the machine's start comes out of B
        rule = f"B = status()'s budget_left_s less {gpu_session.START_S} s (the machine's start, an estimate)"
    else:  # a warm call: the last receive reply's lease says what is left; no status() in the warm window
        rule = "B = the last reply's lease.budget_left_s"
    assert run_line.startswith(f"{calls}. {rule}; run(carry=")
    assert sum("status()" in line for line in lines) == (2 if calls == 1 else 1)  # the first, and (K=1) B's
    assert not any(line.startswith(f"{k}. status()") for k in range(2, calls + 1) for line in lines)


def test_prereleases_and_epochs_meet_a_floor_as_packaging_says():
    from packaging.version import Version

    limits = load_script("gpu_limits")
    versions = ["5.23.0rc1", "5.23.0.dev0", "5.23.0-rc.1", "5.23.0b2", "2.6.0a0+git123", "5.23.0", "5.23.0.post1",
                "5.23.1.dev0", "5.22.9", "1!2.0", "0!5.23", "5.23.0+cu130", "2.11.0+cu130",
                "5.23.0.post1.dev0"]  # fmt: skip
    for floor in ["5.23", "2.6", "2.2.0"]:
        for version in versions:
            assert limits.below(version, floor) == (Version(version) < Version(floor)), (version, floor)
    assert limits.below("unknown", "1.0")


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", metadata)
    return wheel


def _dist_info(folder: Path, name: str, version: str) -> None:
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")


def test_receive_says_which_requirement_of_a_carried_wheel_the_image_does_not_meet(tmp_path, monkeypatch):
    gpu_session = load_script("gpu_session")
    limits = gpu_session.limits
    # what stage records: each carried wheel's requirements, from its METADATA (extras' left out there)
    transformers = _wheel(
        tmp_path / "w",
        "transformers",
        "5.23.0",
        ["regex>=2025.10.22", "tokenizers<0.24,>=0.22", "huggingface-hub<3.0,>=2.2", "torch>=2.4; extra == 'torch'"],
    )
    hub = _wheel(
        tmp_path / "w", "huggingface_hub", "2.4.0", ["click>=8.4.2", "hf-xet<2,>=1.6; platform_machine=='x86_64'"]
    )
    requires = {w.name: limits.wheel_requirements(w) for w in (transformers, hub)}
    assert requires[transformers.name] == ["regex>=2025.10.22", "tokenizers<0.24,>=0.22", "huggingface-hub<3.0,>=2.2"]
    # the image: regex and click older than the carried wheels need, tokenizers within, no hf-xet
    image = tmp_path / "image"
    for name, version in [("regex", "2024.11.6"), ("tokenizers", "0.23.2"), ("click", "8.1.7"), ("torch", "2.0")]:
        _dist_info(image, name, version)
    unmet = limits.unmet_requirements(requires, [str(image)], limits.wheel_versions(list(requires)))
    assert unmet == [
        "transformers 5.23.0 needs regex>=2025.10.22 (here 2024.11.6)",
        "huggingface_hub 2.4.0 needs click>=8.4.2 (here 8.1.7)",
        "huggingface_hub 2.4.0 needs hf-xet<2,>=1.6 (here missing)",
    ]
    monkeypatch.setenv("PYTHONPATH", str(image))
    said = gpu_session.versions_outlook({"wheels": list(requires), "requires": requires})
    assert "transformers 5.23.0 needs regex>=2025.10.22 (here 2024.11.6)" in said and "run will refuse" in said


def _progress(tmp_path: Path):
    transfer = load_script("gpu_transfer")
    study, out = tmp_path / "study", tmp_path / "box" / "out"
    (study / "m" / "v" / "seed0").mkdir(parents=True)
    (study / "m" / "v" / "seed0" / "eval.json").write_text("{}")
    session = transfer.Session(study / "logs" / "gpu_session.log")
    session.say("set up")  # run says where its budget came from first
    state = {"phases": [], "error": None}
    return transfer, study, out, session, state, transfer.Progress(study, out, session, state)


def _held(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return sorted(str(Path(n).parent) for n in tar.getnames() if n.endswith("eval.json"))


def test_progress_copies_stay_inside_out_and_back_json_says_what_the_copy_holds(tmp_path, monkeypatch):
    transfer, study, out, session, state, progress = _progress(tmp_path)
    replace = Path.replace

    def one_filesystem(self, target):  # $OUT as its own mount: a rename from outside it fails
        if Path(self).parent != Path(target).parent:
            raise OSError(18, "Invalid cross-device link")
        return replace(self, target)

    monkeypatch.setattr(Path, "replace", one_filesystem)
    progress()
    assert [p.name for p in out.parent.iterdir()] == ["out"]  # staged in $OUT itself: its own mount renames in place
    back = json.loads((out / "back.json").read_text())
    assert back["progress"]["runs"] == ["m/v/seed0"] == _held(out / "progress.tar.xz")
    # a finished run too large for one copy: the copy in $OUT stays, and back.json says what it holds
    (study / "m" / "v" / "seed1").mkdir(parents=True)
    progress.room = 256 << 10  # 15 MiB on the device; less here, so the test compresses less
    (study / "m" / "v" / "seed1" / "per_item.json").write_bytes(os.urandom(300 << 10))
    (study / "m" / "v" / "seed1" / "eval.json").write_text("{}")
    progress()
    back = json.loads((out / "back.json").read_text())
    assert back["progress"]["runs"] == ["m/v/seed0"] == _held(out / "progress.tar.xz")
    assert back["kept"] == "whole (no checkpoints)"
    # a phase ended and no run finished since: back.json still says so
    state["phases"].append({"args": "--runs 2", "exit": 0})
    progress()
    assert json.loads((out / "back.json").read_text())["phases"] == [{"args": "--runs 2", "exit": 0}]
    assert sorted(p.name for p in out.iterdir()) == ["back.json", "progress.tar.xz", "session.log", "workers.log"]
    # the final pack leaves no staging file behind, even one a cut copy left
    (study / "m" / "v" / "seed1" / "per_item.json").unlink()
    (out / transfer.PROGRESS_STAGING).write_bytes(b"partial")
    transfer.pack_back(study, out, state, session)
    assert not any(p.name.startswith(".") for p in out.iterdir())
    assert [p.name for p in out.parent.iterdir()] == ["out"]


def test_a_failed_progress_copy_is_tried_again_only_when_another_run_finishes(tmp_path, monkeypatch):
    transfer, study, out, session, _, progress = _progress(tmp_path)
    tried = []

    def failing(*args, **kwargs):
        tried.append(args)
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(transfer, "archive_study", failing)
    for _ in range(3):
        progress()
    assert len(tried) == 1
    assert session.path.read_text().count("progress copy failed") == 1
    back = json.loads((out / "back.json").read_text())
    assert back["progress"]["runs"] == [] and back["kept"] == "nothing"  # no copy in $OUT holds a run
    (study / "m" / "v" / "seed1").mkdir(parents=True)
    (study / "m" / "v" / "seed1" / "eval.json").write_text("{}")
    progress()
    assert len(tried) == 2

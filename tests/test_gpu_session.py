"""``scripts/gpu_session.py`` rehearsed on the CPU: a tiny study (random 2-layer BERT filed under a Hub id, 24
PubMedQA abstracts, BIOSSES, 2 steps) is staged into parts, carried call by call into another folder, run there by
the printed commands, packed back within $OUT's limits and collected into a report. No GPU and no wheels here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import load_script, tiny_study_values

REPO = Path(__file__).resolve().parents[1]

#: The GPU image's Python packages as recorded by the device tool's KINDS.md ('cuda' image, 2026-11): the names it
#: holds (those this project's dependencies and their wheels need), and the versions one session's pip list gave.
#: Nothing else about its versions is recorded; ``run`` checks pyproject's floors there before any phase.
IMAGE_PACKAGES = {
    "accelerate", "anyio", "certifi", "click", "filelock", "fsspec", "h11", "hf-xet", "httpcore", "httpx",
    "huggingface-hub", "idna", "jinja2", "matplotlib", "numpy", "packaging", "pandas", "peft", "pyarrow", "pyyaml",
    "regex", "requests", "safetensors", "scipy", "sentence-transformers", "tokenizers", "torch", "tqdm",
    "transformers", "typing-extensions", "xxhash",
}  # fmt: skip
IMAGE_VERSIONS = {"accelerate": "1.15.0", "huggingface-hub": "1.33.0", "numpy": "2.5.2", "safetensors": "0.8.0",
                  "tokenizers": "0.23.2", "torch": "2.11.0", "transformers": "5.17.0"}  # fmt: skip


def _write_config(folder: Path) -> Path:
    config = tiny_study_values("study/out", "study/dataset", model="test-org/tiny-bert")
    config |= {
        "title": "tiny gpu-session rehearsal",
        "variants": {"full": {}},
        "tasks": ["biosses", "siml-agreement@study/dataset"],
        "eval_device": "cpu",
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _out_within_limits(out: Path) -> list[Path]:
    """The files under ``out``, asserting the device README's limits on what comes back."""
    files = [p for p in out.rglob("*") if p.is_file()]
    assert 0 < len(files) <= 8
    assert all(p.stat().st_size <= 16 << 20 for p in files)
    assert sum(p.stat().st_size for p in files) <= 64 << 20
    assert all(len(p.relative_to(out).parts) <= 3 for p in files)  # $OUT/a/b/file at most
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", part) for p in files for part in p.relative_to(out).parts)
    return files


def test_stage_carry_run_and_collect_a_tiny_study(tmp_path, tiny_bert_dir, monkeypatch, capsys):
    from biohicl.study import ReproduceConfig, prepare_dataset

    here, there, out = tmp_path / "here", tmp_path / "there", tmp_path / "out"
    here.mkdir()
    config = _write_config(here)
    monkeypatch.chdir(here)
    prepare_dataset(ReproduceConfig.from_yaml(config), progress=False)
    gpu_session = load_script("gpu_session")
    assert (
        gpu_session.main(
            [
                "stage",
                "--config",
                "study.yaml",
                "--model",
                f"test-org/tiny-bert={tiny_bert_dir}",
                "--carry",
                "carry",
                "--call-mib",
                "0.25",
                "--tree-mib",
                "0",
                "--budget",
                "300",
                "--reserve",
                "40",
                "--phase",
                "--workers 1",
            ]
        )
        == 0
    )
    plan = capsys.readouterr().out
    calls = json.loads((here / "carry" / "calls.json").read_text())
    manifest = json.loads((here / "carry" / "c1" / "manifest.json").read_text())
    # the printed plan: every call within the warm window of the last reply, B from the last receive reply's lease
    # (no status() call in the window), give_back() after it, the device time in all, and no kind (none needs an H200)
    last = len(calls)
    assert "kind" not in plan and f"{last + 1}. give_back()" in plan
    rule = "B = the last reply's lease.budget_left_s"
    assert f'{last}. {rule}; run(carry=["carry/c{last}"], timeout_s=330, ' in plan
    assert f'run carry/c{last} --device-left B")' in plan
    assert re.search(r"device time in all: about \d+ s before the run call", plan)
    assert calls[-1]["command"].endswith(" --device-left B") and calls[-1]["device_left"] == rule
    # no wheels: the run would be refused on the GPU image as recorded, and stage says so in one line
    warned = [line for line in plan.splitlines() if line.startswith("warning: no wheels staged")]
    assert len(warned) == 1 and "run will refuse" in warned[0] and "--download-wheels" in warned[0]
    assert len(calls) >= 2 and len(calls) == len(manifest["pieces"])  # one part per call
    assert manifest["data_folders"] == ["biosses"]  # the tasks' folders only (siml-agreement reads the dataset)
    assert manifest["models"] == [{"repo_id": "test-org/tiny-bert", "pack": "model0"}]
    assert all(len(c["command"]) < 2000 and len(c["carry"]) <= 8 and "kind" not in c for c in calls)
    assert all(p.stat().st_size <= 0.25 * (1 << 20) for p in (here / "carry").rglob("bundle.tar.*"))

    # "there": a bare copy of the repo's scripts, no dataset, no HF cache; each call carries its own part folder
    there.mkdir()
    (there / "scripts").symlink_to(REPO / "scripts")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "OUT": str(out), "BIOHICL_GPU_INBOX": str(tmp_path / "inbox"), "PATH": path}
    env["HF_HUB_CACHE"] = str(tmp_path / "no-cache")  # the model comes from the carried pack alone
    env.pop("BIOHICL_DATA_DIR", None)
    for call in calls:
        for path in call["carry"]:
            shutil.copytree(here / path, there / path)
        if out.exists():
            shutil.rmtree(out)  # $OUT starts empty on each call
        command = call["command"].replace("--device-left B", "--device-left 900")  # status's budget_left_s
        done = subprocess.run(["bash", "-c", command], cwd=there, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no wheels staged" in done.stdout and "phase ended: exit 0" in done.stdout

    files = _out_within_limits(out)
    assert {"back.json", "session.log", "workers.log", "results.md"} <= {p.name for p in files}
    back = json.loads((out / "back.json").read_text())
    assert back["error"] is None and back["kept"] == "whole (no checkpoints)"
    assert [p["exit"] for p in back["phases"]] == [0]
    assert (there / "study" / "out" / "tiny" / "full" / "seed0" / "eval.json").is_file()

    # collect here: the study folder comes back from the pieces and the report is rewritten from it
    assert gpu_session.main(["collect", str(out), "--config", "study.yaml"]) == 0
    run = here / "study" / "out" / "tiny" / "full" / "seed0"
    record = json.loads((run / "eval.json").read_text())
    results = json.loads((here / "study" / "out" / "results.json").read_text())
    rows = results["models"]["tiny"]["rows"]
    assert list(rows) == ["base", "full"]
    assert rows["full"]["values"]["biosses/spearman"] == [record["summary"]["biosses/spearman"]]
    assert "siml-agreement/spearman" in rows["full"]["mean"]
    table = (here / "study" / "out" / "results.md").read_text()
    assert "| base |" in table and "| full |" in table
    assert (here / "study" / "out" / "logs" / "gpu_session.log").is_file()
    print(sorted((p.name, p.stat().st_size) for p in files))


def test_a_missing_part_still_sends_back_the_logs_and_says_which(tmp_path, monkeypatch):
    gpu_session = load_script("gpu_session")
    part = tmp_path / "c2"
    part.mkdir()
    manifest = {
        "format": 1,
        "pieces": [
            {"name": "bundle.tar.000", "bytes": 3, "sha256": "0" * 64},
            {"name": "bundle.tar.001", "bytes": 3, "sha256": "1" * 64},
        ],
        "models": [],
        "phases": [""],
        "output_dir": "study/out",
        "dataset": "study/dataset",
        "data_folders": [],
        "budget_s": 60,
        "reserve_s": 10,
    }
    (part / "manifest.json").write_text(json.dumps(manifest))
    (part / "bundle.tar.001").write_bytes(b"abc")
    monkeypatch.chdir(tmp_path)
    code = gpu_session.main(["run", str(part), "--inbox", str(tmp_path / "inbox"), "--out", str(tmp_path / "out")])
    assert code == 1
    _out_within_limits(tmp_path / "out")
    back = json.loads((tmp_path / "out" / "back.json").read_text())
    assert "bundle.tar.000: missing" in back["error"] and "bundle.tar.001: sha256 differs" in back["error"]
    assert back["phases"] == [] and back["kept"] == "whole (no checkpoints)" and len(back["pieces"]) == 1
    assert "bundle incomplete" in (tmp_path / "out" / "session.log").read_text()


def test_a_phase_past_its_deadline_is_stopped_with_its_children(tmp_path):
    gpu_session = load_script("gpu_session")
    child = tmp_path / "child.pid"
    script = (
        f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; "
        f"time.sleep(60)']); open({str(child)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    began = time.monotonic()
    code, timed_out = gpu_session.run_phase([sys.executable, "-c", script], dict(os.environ), tmp_path / "log", 2)
    assert timed_out and code is not None and time.monotonic() - began < 30
    pid = int(child.read_text())
    time.sleep(0.5)
    state = Path(f"/proc/{pid}/stat")
    assert not state.exists() or state.read_text().split()[2] == "Z"  # the grandchild went with its group


def test_workers_are_cut_to_what_the_gpus_free_memory_holds_at_the_estimate():
    gpu_session = load_script("gpu_session")
    assert gpu_session.WORKER_GIB["sentence-transformers/all-mpnet-base-v2"] == 13.0 and gpu_session.PARENT_GIB == 2.0
    # an H100 (78.5 GiB free): (78.5 - 2) // 13 = 5 workers; an H200 (139.3 GiB free): 10, so 9 run as asked
    assert gpu_session.cap_workers("--workers 9", 78.5, 13.0) == ("--workers 5", 5)
    assert gpu_session.cap_workers("--workers 9", 139.3, 13.0) == ("--workers 9", 10)
    assert gpu_session.cap_workers("--workers=9 --seeds 3", 78.5, 13.0) == ("--seeds 3 --workers 5", 5)
    assert (
        gpu_session.cap_workers("--only a,b --seeds 3 --workers 2", 78.5, 13.0)[0] == "--only a,b --seeds 3 --workers 2"
    )
    assert gpu_session.cap_workers("--workers 4", 10.0, 13.0) == ("--workers 1", 1)  # never below one
    assert gpu_session.phase_workers("--seeds 3") == 1 and gpu_session.phase_workers("--workers 2 --workers=7") == 7
    # stage names no kind while one worker fits an H100 (the run step caps the rest: 9 x 13 + 2 = 119 GiB asked, 5
    # run at once there), so a free H100 is not ruled out; the H200 only when a single worker needs more than an H100
    mpnet = [{"repo_id": "sentence-transformers/all-mpnet-base-v2", "pack": "model0"}]
    assert gpu_session.device_kind({"models": mpnet, "phases": ["--workers 2", "--workers 9"]}) is None
    assert gpu_session.device_kind({"models": mpnet, "phases": ["--workers 5"]}) is None
    tiny = [{"repo_id": "test-org/tiny-bert", "pack": "model0"}]
    assert gpu_session.device_kind({"models": tiny, "phases": ["--workers 9"]}) is None  # no estimate
    assert gpu_session.device_kind({"models": tiny, "phases": ["--workers 9"], "worker_gib": 9.0}) is None
    assert gpu_session.device_kind({"models": tiny, "phases": ["--workers 1"], "worker_gib": 77.0}) == "nvidia-h200"


def test_an_abbreviated_workers_option_is_capped_and_counted_like_the_full_one():
    from biohicl.cli.reproduce import parse_args

    gpu_session = load_script("gpu_session")
    # reproduce's parser takes every prefix of --workers down to --w (no other option begins --w), the last one winning
    given = ("--w 3", "--work=4", "--workers 2 --wo 6")
    assert [parse_args(["--config", "c.yaml", *a.split()]).workers for a in given] == [3, 4, 6]
    assert gpu_session.cap_workers("--work 9 --only a", 78.0, 13.0) == ("--only a --workers 5", 5)
    assert gpu_session.cap_workers("--worker=9", 78.0, 13.0) == ("--workers 5", 5)
    assert gpu_session.cap_workers("--workers 2 --w 9", 78.0, 13.0) == ("--workers 5", 5)
    assert gpu_session.phase_workers("--w 7") == 7 and gpu_session.phase_workers("--work=8 --seeds 3") == 8
    assert gpu_session.phase_workers("--wrong 9") == 1 and gpu_session.phase_workers("--threads 9") == 1
    mpnet = [{"repo_id": "sentence-transformers/all-mpnet-base-v2", "pack": "model0"}]
    assert gpu_session.device_kind({"models": mpnet, "phases": ["--work 9"]}) is None


def _run_step(tmp_path, monkeypatch, models, extra=()) -> tuple[list[list[str]], dict, str]:
    """The run step on a staged manifest, its set-up and phases replaced (the phases' argv recorded), the GPU's
    memory read from a stand-in ``torch`` (an H100: 78.5 of 79.2 GiB free) in the child process it asks."""
    gpu_session = load_script("gpu_session")
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "class cuda:\n    mem_get_info = staticmethod(lambda: (84_289_994_752, 85_029_158_912))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(fake.parent), "BIOHICL_GPU_CONFIG": "config.yaml"}
    monkeypatch.setattr(gpu_session, "setup", lambda manifest, inbox, work, say: env)
    monkeypatch.setattr(gpu_session.limits, "import_problem", lambda env: None)  # the stand-in torch imports nothing
    argvs = []
    monkeypatch.setattr(gpu_session, "run_phase", lambda argv, env, log, seconds, **_: argvs.append(argv) or (0, False))
    part = tmp_path / "c1"
    part.mkdir()
    manifest = {"format": 1, "pieces": [], "models": models, "output_dir": "study/out", "dataset": "study/dataset",
                "phases": ["--only x --seeds 3 --workers 2", "--workers 9"], "data_folders": [], "budget_s": 300,
                "reserve_s": 30}  # fmt: skip
    (part / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    code = gpu_session.main(["run", str(part), "--inbox", str(tmp_path / "inbox"), "--out", str(out), *extra])
    assert code == 0
    return argvs, json.loads((out / "back.json").read_text()), (out / "session.log").read_text()


def test_the_run_step_caps_an_mpnet_phases_workers_on_an_h100_and_logs_why(tmp_path, monkeypatch):
    mpnet = [{"repo_id": "sentence-transformers/all-mpnet-base-v2", "pack": "model0"}]
    argvs, back, log = _run_step(tmp_path, monkeypatch, mpnet)
    assert [argv[6:] for argv in argvs] == [["--only", "x", "--seeds", "3", "--workers", "2"], ["--workers", "5"]]
    assert [(p["args"], p["ran"]) for p in back["phases"]] == [
        ("--only x --seeds 3 --workers 2", "--only x --seeds 3 --workers 2"),
        ("--workers 9", "--workers 5"),
    ]
    assert (
        "workers capped: phase '--workers 9' asks 9, 5 fit in 78.5 GiB free (of 79.2 GiB) at 13 GiB each "
        "(WORKER_GIB, estimated on the CPU) + 2 GiB for the parent: running '--workers 5'" in log
    )
    # --worker-gib replaces the estimate: (78.5 - 2) // 20 = 3
    argvs, back, log = _run_step(tmp_path / "given", monkeypatch, mpnet, ["--worker-gib", "20"])
    assert argvs[1][6:] == ["--workers", "3"] and "at 20 GiB each (--worker-gib)" in log
    # a model with no estimate: the phases run as staged, and the log says so
    other = [{"repo_id": "test-org/tiny-bert", "pack": "model0"}]
    argvs, back, log = _run_step(tmp_path / "other", monkeypatch, other)
    assert argvs[1][6:] == ["--workers", "9"] and "workers not capped" in log


def test_stage_refuses_here_a_dataset_the_study_would_refuse_on_the_gpu_and_says_how_to_build_it(
    tmp_path, tiny_bert_dir, monkeypatch
):
    from biohicl.study import ReproduceConfig, prepare_dataset

    gpu_session = load_script("gpu_session")
    config = _write_config(tmp_path)  # dataset: study/dataset, 24 PubMedQA abstracts, top_k 3
    monkeypatch.chdir(tmp_path)
    model = f"test-org/tiny-bert={tiny_bert_dir}"
    stage = ["stage", "--config", "study.yaml", "--model", model, "--carry", "carry", "--tree-mib", "0"]
    command = "biohicl reproduce --config study.yaml --dataset_only"

    # a build at another top_k (2) where the config asks 3 (the study refuses it): refused here, by name, before
    # anything is packed, with the command that builds the config's dataset
    other = yaml.safe_load(config.read_text())
    other["dataset"] = {**other["dataset"], "top_k": 2}
    prepare_dataset(ReproduceConfig.from_dict(other), progress=False)
    assert json.loads((tmp_path / "study" / "dataset" / "summary.json").read_text())["top_k"] == 2
    with pytest.raises(SystemExit) as refused:
        gpu_session.main(stage)
    message = str(refused.value)
    assert message.startswith("study/dataset: a built dataset the config's dataset settings would not build")
    assert "top_k 2 → 3" in message
    assert message.endswith(f"(once it is moved away, build it as the study would: {command})")
    assert "\n" not in message and not (tmp_path / "carry").exists()

    # no build: the hint is that same command, not build-dataset's defaults (top_k 10, no limit, default corpora)
    shutil.rmtree(tmp_path / "study" / "dataset")
    with pytest.raises(SystemExit) as missing:
        gpu_session.main(stage)
    assert str(missing.value) == f"study/dataset: no built dataset; build it as the study would: {command}"
    assert not (tmp_path / "carry").exists()

    # the command, run as printed, builds the config's dataset (24 documents, top_k 3), which stage then packs
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path}
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "study" / "dataset" / "summary.json").read_text())
    assert (summary["top_k"], summary["documents"]) == (3, 24)
    assert gpu_session.main(stage) == 0 and (tmp_path / "carry" / "calls.json").is_file()


def test_stage_says_a_config_error_as_the_configs_not_as_the_datasets(tmp_path, tiny_bert_dir, monkeypatch):
    from biohicl.study import ReproduceConfig, prepare_dataset

    gpu_session = load_script("gpu_session")
    config = _write_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    prepare_dataset(ReproduceConfig.from_yaml(config), progress=False)  # the dataset is fine
    config.write_text(config.read_text().replace("seeds:\n- 0", "seeds: zero"), encoding="utf-8")
    with pytest.raises(SystemExit) as refused:
        gpu_session.main(["stage", "--config", "study.yaml", "--model", f"test-org/tiny-bert={tiny_bert_dir}"])
    assert str(refused.value).startswith("study.yaml: seeds:") and "moved away" not in str(refused.value)


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def test_the_staged_wheels_meet_every_pyproject_floor_the_gpu_image_does_not():
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    gpu_session = load_script("gpu_session")
    carried = {_name(n): Version(v) for n, _, v in (w.partition("==") for w in gpu_session.DEFAULT_WHEELS)}
    # each pinned (NAME==VERSION) to a release (no pre-release, local build or epoch), once
    assert [w for w in gpu_session.DEFAULT_WHEELS if w.count("==") != 1] == []
    assert not [v for v in carried.values() if v.is_prerelease or v.local or v.epoch]
    assert len(carried) == len(gpu_session.DEFAULT_WHEELS)
    floors = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    unmet = []
    for requirement in map(Requirement, floors):
        name = _name(requirement.name)
        image = IMAGE_VERSIONS.get(name)
        if name not in IMAGE_PACKAGES or (image and not requirement.specifier.contains(image)):
            unmet.append(name)
        if name in carried:  # a carried wheel meets its floor
            assert requirement.specifier.contains(carried[name]), (name, carried[name])
    assert unmet == ["transformers", "datasets", "huggingface-hub", "evaluate"]
    assert set(unmet) <= set(carried)
    # what they pull that the image lacks: huggingface_hub 2 speaks HTTP through httpx2 (httpcore2, truststore)
    assert {"httpx2", "httpcore2", "truststore", "dill", "multiprocess"} <= set(carried) - IMAGE_PACKAGES


def test_regex_is_carried_since_transformers_checks_it_on_import_and_its_version_there_is_not_recorded():
    """transformers refuses to import when a package it checks at import (``dependency_versions_check``) is below its
    requirement; regex's floor is recent (calendar versions) and the image's regex version is not recorded, so the
    bundle carries one that meets the carried transformers' requirement (0.8 MB; tokenizers' recorded 0.23.2 meets
    it). pyarrow (datasets' floor) is not carried: 53 MB, a call of its own."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement
    from packaging.version import Version
    from transformers.dependency_versions_check import pkgs_to_check_at_runtime

    gpu_session = load_script("gpu_session")
    carried = {_name(n): Version(v) for n, _, v in (w.partition("==") for w in gpu_session.DEFAULT_WHEELS)}
    assert version("transformers") == str(carried["transformers"])  # the carried transformers' own requirements
    wanted = {_name(r.name): r for r in map(Requirement, requires("transformers")) if not r.marker}
    assert "regex" in pkgs_to_check_at_runtime and "regex" not in IMAGE_VERSIONS
    assert wanted["regex"].specifier.contains(carried["regex"])
    assert wanted["tokenizers"].specifier.contains(IMAGE_VERSIONS["tokenizers"]) and "tokenizers" not in carried


def test_carried_wheels_travel_uncompressed_inside_xz_and_still_install(tmp_path):
    import zipfile

    gpu_session = load_script("gpu_session")
    wheel = tmp_path / "wheels" / "tiny_pkg-1.2.0-py3-none-any.whl"
    wheel.parent.mkdir()
    files = {
        "tiny_pkg/__init__.py": "VALUE = 'carried'\n" * 200,
        "tiny_pkg-1.2.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tiny_pkg\nVersion: 1.2.0\n",
        "tiny_pkg-1.2.0.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "tiny_pkg-1.2.0.dist-info/RECORD": "",
    }
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    bundle = gpu_session.transfer.wheels_archive([wheel], tmp_path / "wheels.tar.xz")
    gpu_session.extract(bundle, tmp_path / "there")
    carried = tmp_path / "there" / wheel.name
    with zipfile.ZipFile(carried) as archive:  # the same files, stored: xz compresses them, not deflate's output
        assert {i.filename: archive.read(i).decode() for i in archive.infolist()} == files
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(site)]
    subprocess.run([*install, str(carried)], check=True, capture_output=True)
    assert (site / "tiny_pkg" / "__init__.py").read_text() == files["tiny_pkg/__init__.py"]
    from importlib import metadata

    assert next(iter(metadata.distributions(name="tiny_pkg", path=[str(site)]))).version == "1.2.0"

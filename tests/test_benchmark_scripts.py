"""The issue #18 benchmark scripts run end to end at tiny sizes on CPU (the GPU script's --smoke mode included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(*args: str, timeout: int = 900, returncode: int = 0) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == returncode, out.stderr[-3000:]
    return out.stdout if returncode == 0 else out.stderr


def test_bench_gpu_smoke_runs_on_cpu(tmp_path):
    figures = tmp_path / "gpu.json"
    out = run("benchmarks/bench_gpu.py", "--smoke", "--json", str(figures))
    assert "[encode]" in out and "[topk]" in out and "ratio search / copy" in out and "one epoch over 80,000" in out
    written = json.loads(figures.read_text())  # smoke figures say so: they must not pass for GPU figures
    assert written["smoke"] is True and written["device"] == "cpu" and "epoch_minutes" in written


def test_bench_gpu_cuda_without_a_gpu_is_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    err = run("benchmarks/bench_gpu.py", "--device", "cuda", "--only", "topk", timeout=120, returncode=1)
    assert "no CUDA GPU" in err and "Traceback" not in err


def test_bench_compressed_search_synthetic_tiny(tmp_path):
    out = run(
        "benchmarks/bench_compressed_search.py",
        "synthetic",
        "--dir",
        str(tmp_path / "s"),
        "--rows",
        "5000",
        "--dim",
        "32",
        "--shard-size",
        "2000",
    )
    assert "int8" in out and "binary" in out and "search / copy" in out
    # the same --dir with other sizes is refused in one line, not silently measured at the old sizes
    err = run(
        "benchmarks/bench_compressed_search.py",
        "synthetic",
        "--dir",
        str(tmp_path / "s"),
        "--rows",
        "6000",
        "--dim",
        "32",
        timeout=120,
        returncode=1,
    )
    assert "already holds 5,000 × 32 rows" in err and "Traceback" not in err


def test_bench_onnx_encode_tiny():
    pytest.importorskip("onnxruntime")
    out = run("benchmarks/bench_onnx_encode.py", "--tiny")
    assert "ratio biohicl onnx int8 / ST torch throughput" in out


def test_build_mesh_table_needs_an_explicit_output(tmp_path):
    err = run("scripts/build_mesh_table.py", timeout=60, returncode=2)  # no arguments: usage, nothing written
    assert "--output" in err and "Traceback" not in err
    assert "usage" in run("scripts/build_mesh_table.py", "--help", timeout=60)
    source = tmp_path / "mesh.tsv"
    source.write_text("D000001\tCalcimycin\tA-23187|A23187\tD03.633\tNCBITaxon:1\n", encoding="utf-8")
    out = tmp_path / "mesh.tsv.gz"
    run("scripts/build_mesh_table.py", str(source), "--output", str(out), timeout=60)
    import gzip

    text = gzip.decompress(out.read_bytes()).decode()
    assert text.endswith("D000001\tCalcimycin\tA-23187|A23187\tD03.633\n") and "NCBITaxon" not in text
    err = run("scripts/build_mesh_table.py", str(tmp_path / "missing.tsv"), "--output", str(out), returncode=2)
    assert "cannot read" in err and "Traceback" not in err


def test_build_mesh_table_header_names_the_release_and_source(tmp_path, data_dir):
    import gzip
    import hashlib

    source = tmp_path / "mesh.tsv"
    source.write_text("D000001\tCalcimycin\tA23187\tD03.633\n", encoding="utf-8")
    out = tmp_path / "mesh.tsv.gz"
    run("scripts/build_mesh_table.py", str(source), "--output", str(out), "--release", "2025",
        "--derived_from", "NLM desc2025.xml via my_export.py", timeout=60)  # fmt: skip
    header = gzip.decompress(out.read_bytes()).decode().splitlines()[:2]
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    assert header == [
        "# MeSH descriptors (2025 release) with entry terms and tree numbers.",
        f"# Derived from NLM desc2025.xml via my_export.py, sha256 {sha}.",
    ]
    # the defaults are the packaged table's header: rebuilt from its input, it is the same table. The deflate stream
    # is zlib's (another build, e.g. zlib-ng, compresses the same text to other bytes); the gzip header is Python's:
    # no file name and mtime 0, so that a rebuild does not differ by when or where it was written
    packaged = (ROOT / "biohicl" / "resources" / "mesh2024.tsv.gz").read_bytes()
    run("scripts/build_mesh_table.py", str(data_dir / "mesh" / "mesh_id_label_mappings.tsv"), "--output", str(out),
        timeout=120)  # fmt: skip
    rebuilt = out.read_bytes()
    assert gzip.decompress(rebuilt) == gzip.decompress(packaged)
    # gzip, deflate, no flags (no file name), mtime 0, level 9, no OS
    assert rebuilt[:10] == packaged[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


def test_bench_saved_tensors_splits_the_count_into_fixed_and_per_row_parts():
    """The GPU session's per-worker estimate rests on this count: fixed (autocast's weight copies) plus per row."""
    out = run("benchmarks/bench_saved_tensors.py", "--model", "minilm-l6", "--batch", "1", "--seq", "32", timeout=300)
    numbers = [float(part.split(" MiB")[0].split()[-1]) for part in out.split(" MiB")[:4] for part in [part + " MiB"]]
    one, two, fixed, per_row = numbers
    assert fixed > 0 and per_row > 0
    assert abs(fixed + per_row - one) < 0.2 and abs(fixed + 2 * per_row - two) < 0.2  # the split adds up
    assert "-> batch 32:" in out

"""Test helpers and the benchmark's smoke mode leave nothing behind in the temp folder (``TMPDIR``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_torchrun

ROOT = Path(__file__).resolve().parents[1]


def test_torchrun_gets_a_temp_folder_of_its_own_removed_when_it_ends(tmp_path):
    seen = tmp_path / "tmpdir.txt"
    script = tmp_path / "where.py"
    script.write_text(f"import tempfile\nopen({str(seen)!r}, 'w').write(tempfile.gettempdir())\n", encoding="utf-8")
    proc = run_torchrun([str(script)], timeout=120, processes=1)
    assert proc.returncode == 0, proc.stderr[-2000:]
    used = Path(seen.read_text(encoding="utf-8"))
    assert used.name.startswith("biohicl-torchrun-") and not used.exists()  # torchelastic_* went with it


def test_bench_gpu_smoke_model_folder_is_removed_at_exit(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    code = "import sys; sys.path.insert(0, 'benchmarks'); import bench_gpu; print(bench_gpu.tiny_model_folder())"
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    folder = Path(out.stdout.strip().splitlines()[-1])
    assert folder.is_relative_to(tmpdir) and folder.name == "merged"
    assert folder.parent.name.startswith("bench-gpu-")
    assert not folder.parent.exists() and not list(tmpdir.glob("bench-gpu-*"))  # tiny BERT and merged model: gone

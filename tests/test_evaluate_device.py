"""``biohicl evaluate --device``: the model goes to the GPU when there is one (as encode/search/index do), stays on
the CPU when asked, and the results record says where it was encoded. CUDA is pretended (``torch.cuda.is_available``
patched) and ``BioHiCL.to`` only recorded, so these run on a CPU-only machine."""

from __future__ import annotations

import json

import pytest
import torch

from biohicl.cli import evaluate
from biohicl.errors import ConfigError
from biohicl.models.model import BioHiCL


@pytest.fixture
def moves(monkeypatch) -> list[str]:
    """Where ``BioHiCL.to`` was asked to move a model (as strings); nothing really moves."""
    calls: list[str] = []

    def to(self, *args, **kwargs):
        calls.append(str(args[0] if args else kwargs.get("device")))
        return self

    monkeypatch.setattr(BioHiCL, "to", to)
    return calls


@pytest.fixture(autouse=True)
def _biosses(data_dir):
    if not (data_dir / "biosses").is_dir():
        pytest.skip("BIOSSES is not in the data folder")


def run(tmp_path, tiny_bert_dir, *options: str) -> dict:
    out = tmp_path / "results.json"
    argv = [str(tiny_bert_dir), "--tasks", "biosses", "--output", str(out), "--no_progress", *options]
    assert evaluate.main(argv) == 0
    return json.loads(out.read_text())


def test_default_device_is_the_gpu_when_cuda_sees_one(tmp_path, tiny_bert_dir, moves, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    record = run(tmp_path, tiny_bert_dir)
    assert moves == ["cuda"]  # it used to stay on the CPU: no move at all
    assert record["settings"]["device"] == "cuda"


def test_default_device_is_the_cpu_without_cuda(tmp_path, tiny_bert_dir, moves, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    record = run(tmp_path, tiny_bert_dir)
    assert all(not move.startswith("cuda") for move in moves)
    assert record["settings"]["device"] == "cpu"


def test_device_cpu_keeps_the_model_off_the_gpu(tmp_path, tiny_bert_dir, moves, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    record = run(tmp_path, tiny_bert_dir, "--device", "cpu")
    assert moves == ["cpu"]
    assert record["settings"]["device"] == "cpu"


def test_explicit_gpu_index_is_recorded(tmp_path, tiny_bert_dir, moves, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # cuda:1 is checked against the GPUs there are
    record = run(tmp_path, tiny_bert_dir, "--device", "cuda:1")
    assert moves == ["cuda:1"] and record["settings"]["device"] == "cuda:1"


def test_onnx_backend_encodes_on_the_cpu_and_says_so(tmp_path, tiny_bert_dir, moves, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    monkeypatch.setenv("BIOHICL_ONNX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    record = run(tmp_path, tiny_bert_dir, "--backend", "onnx")  # ONNX Runtime runs here on the CPU provider
    assert moves == ["cpu"] and record["settings"]["device"] == "cpu" and record["settings"]["backend"] == "onnx"


@pytest.mark.parametrize(
    ("device", "message"),
    [("cuda", "device: 'cuda' asked for, but CUDA sees no GPU"), ("gpu", "device: 'gpu' is not a torch device")],
)
def test_unusable_device_fails_before_the_model_loads(tmp_path, tiny_bert_dir, monkeypatch, device, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded although the device cannot be used")

    monkeypatch.setattr("biohicl.models.model.load_model", no_work)
    out = tmp_path / "results.json"
    with pytest.raises(ConfigError, match=message):
        evaluate.main([str(tiny_bert_dir), "--tasks", "biosses", "--output", str(out), "--device", device])
    assert not out.exists()

"""The ONNX export cache is not trusted blindly: a cached graph is reused only while its sha256 is the one its
``export.json`` recorded when biohicl wrote it, a model folder's own ``onnx/`` (shipped by someone else) is never
read, and the log line says what this load checked (the reviewer's poisoned-cache reproduction)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import biohicl.models.onnx_backend as onnx_backend
from biohicl.models.model import BioHiCL
from biohicl.models.onnx_backend import load_onnx_encoder
from biohicl.models.onnx_export import EXPORT_INFO, FP32_FILE, INT8_FILE, default_cache_dir, model_fingerprint
from biohicl.provenance import files_sha256
from tests.conftest import build_tiny_bert

TEXTS = ["insulin resistance in type 2 diabetes", "brain cancer cells"]


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx-trust")
    return build_tiny_bert(root / "m1", seed=0), build_tiny_bert(root / "m2", seed=1)


def agreement(model, encoder) -> float:
    """The lowest cosine between the torch and the ONNX embeddings of :data:`TEXTS`."""
    reference = torch.as_tensor(model.encode(TEXTS, show_progress_bar=False))
    exported = torch.as_tensor(encoder.encode(TEXTS, show_progress_bar=False))
    return float(torch.nn.functional.cosine_similarity(reference, exported).min())


def counting(monkeypatch, *names: str) -> list[str]:
    calls: list[str] = []
    for name in names:
        original = getattr(onnx_backend, name)
        monkeypatch.setattr(onnx_backend, name, lambda *a, _n=name, _f=original, **k: calls.append(_n) or _f(*a, **k))
    return calls


def check_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("ONNX ")]


def test_a_cached_graph_swapped_for_another_models_is_exported_again(two_models, tmp_path, monkeypatch, caplog):
    # the reviewer's poison: m1's cache folder holding m2's graph was used, logged as "max |Δ| 1.19e-07 (checked on
    # cpu)" while the embeddings reached cosine 0.2 to torch's
    m1, m2 = (BioHiCL.from_pretrained(folder) for folder in two_models)
    first, other = load_onnx_encoder(m1, cache_dir=tmp_path), load_onnx_encoder(m2, cache_dir=tmp_path)
    info = json.loads((first.path.parent / EXPORT_INFO).read_text())
    assert info["sha256"] == {FP32_FILE: files_sha256([first.path])}  # recorded when written
    shutil.copyfile(other.path, first.path)
    calls = counting(monkeypatch, "export_onnx", "verify_export")
    with caplog.at_level(logging.INFO, logger=onnx_backend.__name__):
        encoder = load_onnx_encoder(m1, cache_dir=tmp_path)
    assert calls == ["export_onnx", "verify_export"] and agreement(m1, encoder) > 0.9999
    assert json.loads((first.path.parent / EXPORT_INFO).read_text())["sha256"][FP32_FILE] == files_sha256([first.path])
    assert any("is not the one" in m and str(first.path) in m and "exporting it again" in m for m in caplog.messages)
    assert check_lines(caplog)[-1].endswith(" (checked on cpu)")  # what this load checked, now


def test_an_export_json_without_the_files_sha256_is_not_trusted(two_models, tmp_path, monkeypatch):
    # a cache written before the hash was recorded (or by hand): nothing says its graph is the one checked
    model = BioHiCL.from_pretrained(two_models[0])
    encoder = load_onnx_encoder(model, cache_dir=tmp_path)
    info_path = encoder.path.parent / EXPORT_INFO
    info = json.loads(info_path.read_text())
    del info["sha256"]
    info_path.write_text(json.dumps(info))
    calls = counting(monkeypatch, "export_onnx", "verify_export")
    load_onnx_encoder(model, cache_dir=tmp_path)
    assert calls == ["export_onnx", "verify_export"]


def test_a_swapped_int8_graph_is_quantised_again(two_models, tmp_path, monkeypatch):
    m1, m2 = (BioHiCL.from_pretrained(folder) for folder in two_models)
    first, other = load_onnx_encoder(m1, "int8", cache_dir=tmp_path), load_onnx_encoder(m2, "int8", cache_dir=tmp_path)
    assert set(json.loads((first.path.parent / EXPORT_INFO).read_text())["sha256"]) == {FP32_FILE, INT8_FILE}
    shutil.copyfile(other.path, first.path)
    calls = counting(monkeypatch, "export_onnx", "quantize_int8", "verify_export")
    encoder = load_onnx_encoder(m1, "int8", cache_dir=tmp_path)
    assert calls == ["quantize_int8", "verify_export"] and agreement(m1, encoder) > 0.98


def test_a_reused_graph_says_its_hash_was_checked_now_and_its_figures_then(two_models, tmp_path, monkeypatch, caplog):
    model = BioHiCL.from_pretrained(two_models[0])
    load_onnx_encoder(model, cache_dir=tmp_path)
    calls = counting(monkeypatch, "export_onnx", "verify_export")
    with caplog.at_level(logging.INFO, logger=onnx_backend.__name__):
        encoder = load_onnx_encoder(model, cache_dir=tmp_path)
    assert calls == [] and agreement(model, encoder) > 0.9999
    assert check_lines(caplog)[-1].endswith(
        " (checked on cpu when the graph was first used; this load checked that the file's sha256 is the one "
        "recorded then)"
    )


def test_a_model_folders_own_onnx_folder_is_never_read(two_models, tmp_path, monkeypatch):
    # a folder shipped with onnx/<fingerprint>/ holding another graph and an export.json made to match it (its
    # fingerprint is computable from the weights, its sha256 from the graph): the default cache is the user's own
    folder = tmp_path / "shipped"
    shutil.copytree(two_models[0], folder)
    monkeypatch.delenv("BIOHICL_ONNX_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    model, other = BioHiCL.from_pretrained(folder), BioHiCL.from_pretrained(two_models[1])
    assert default_cache_dir() == tmp_path / "xdg" / "biohicl" / "onnx"
    forged = load_onnx_encoder(other, cache_dir=tmp_path / "attacker")
    fingerprint = model_fingerprint(model)
    planted = folder / "onnx" / fingerprint[:16]
    planted.mkdir(parents=True)
    shutil.copyfile(forged.path, planted / FP32_FILE)
    info = json.loads((forged.path.parent / EXPORT_INFO).read_text())
    info.update(fingerprint=fingerprint, sha256={FP32_FILE: files_sha256([planted / FP32_FILE])})
    (planted / EXPORT_INFO).write_text(json.dumps(info))
    encoder = load_onnx_encoder(model)
    assert Path(encoder.path).is_relative_to(tmp_path / "xdg") and agreement(model, encoder) > 0.9999

"""ONNX Runtime backend: export ≈ torch, int8 quantisation, cache, CLI flags (tiny random BERT, CPU)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from biohicl.errors import ConfigError, ModelLoadError
from biohicl.models.model import BioHiCL
from biohicl.models.onnx_backend import OnnxEncoder, check_backend, load_onnx_encoder, with_backend
from biohicl.models.onnx_export import EXPORT_INFO, FP32_FILE, model_fingerprint
from tests.conftest import randomize_lora_b

TEXTS = ["cancer cells in the heart", "diabetes", "the brain of patients with heart disease and diabetes " * 3, "x"]


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    return BioHiCL.from_base(str(tiny_bert_dir), query_prompt="query: ").eval()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


def test_export_matches_torch_and_is_cached(model, cache):
    encoder = load_onnx_encoder(model, cache_dir=cache)
    assert isinstance(encoder, OnnxEncoder) and encoder.verification["max_abs_diff"] <= 1e-5
    for kind in ("document", "query"):
        reference = model.encode(TEXTS, kind=kind, batch_size=3)
        exported = encoder.encode(TEXTS, kind=kind, batch_size=3)
        assert exported.shape == reference.shape and exported.dtype == np.float32
        np.testing.assert_allclose(exported, reference, atol=1e-5)
    single = encoder.encode("diabetes", convert_to="torch")
    assert single.shape == (model.embedding_dim,)
    folder = cache / model_fingerprint(model)[:16]
    info = json.loads((folder / EXPORT_INFO).read_text())
    assert info["fp32"]["max_abs_diff"] == encoder.verification["max_abs_diff"]
    stamp = (folder / FP32_FILE).stat().st_mtime_ns
    load_onnx_encoder(model, cache_dir=cache)
    assert (folder / FP32_FILE).stat().st_mtime_ns == stamp  # reused, not re-exported


def test_the_onnx_backend_checks_its_inputs_as_the_torch_one_does(model, cache):
    encoder = load_onnx_encoder(model, cache_dir=cache)
    for backend in (model, encoder):
        chunks = list(backend.iter_encode("diabetes"))  # a single str is one text, not one per character
        assert [tuple(c.shape) for c in chunks] == [(1, model.embedding_dim)]
        for texts, batch_size, kind, message in [
            (None, 8, "document", "iter_encode: texts is NoneType, not a str or an iterable of str"),
            ({"a": 1}, 8, "document", "iter_encode: texts is dict, not a str or an iterable of str"),
            (["x"], "8", "document", "batch_size: '8' is not a positive number of texts"),
            (["x"], 0, "document", "batch_size: 0 is not a positive number of texts"),
            ([], 8, "passage", "kind"),
        ]:
            with pytest.raises(ConfigError, match=re.escape(message)):
                list(backend.iter_encode(texts, batch_size=batch_size, kind=kind))


def test_int8_quantisation_is_close_and_reported(model, cache):
    encoder = load_onnx_encoder(model, "int8", cache_dir=cache)
    assert encoder.quantize == "int8" and encoder.path.name == "model.int8.onnx"
    reference = torch.as_tensor(model.encode(TEXTS))
    quantised = torch.as_tensor(encoder.encode(TEXTS))
    assert torch.nn.functional.cosine_similarity(reference, quantised).min() > 0.98
    assert encoder.verification["min_cosine"] > 0.98 and encoder.verification["max_abs_diff"] > 0


def test_an_int8_only_cache_is_reused(model, tmp_path, monkeypatch):
    # the export was redone on every int8 load: the cache had no "fp32" report, so it did not count as exported
    import biohicl.models.onnx_backend as backend

    calls = []

    def counted(name):
        original = getattr(backend, name)

        def wrapper(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)

        return wrapper

    for name in ("export_onnx", "quantize_int8"):
        monkeypatch.setattr(backend, name, counted(name))
    for _ in range(3):
        encoder = load_onnx_encoder(model, "int8", cache_dir=tmp_path)
    assert calls == ["export_onnx", "quantize_int8"] and encoder.verification["min_cosine"] > 0.98
    fp32 = load_onnx_encoder(model, cache_dir=tmp_path)  # verified on first use, from the same export
    assert calls == ["export_onnx", "quantize_int8"] and fp32.verification["max_abs_diff"] <= 1e-5
    info = json.loads((tmp_path / model_fingerprint(model)[:16] / EXPORT_INFO).read_text())
    assert {"fp32", "int8"} <= set(info) and info["fingerprint"] == model_fingerprint(model)


def test_a_changed_model_gets_a_new_export(model, tiny_bert_dir, cache):
    other = BioHiCL.from_base(str(tiny_bert_dir)).eval()
    with torch.no_grad():
        next(other.backbone.parameters()).add_(0.01)
    assert model_fingerprint(other) != model_fingerprint(model)
    encoder = load_onnx_encoder(other, cache_dir=cache)
    np.testing.assert_allclose(encoder.encode(TEXTS), other.encode(TEXTS), atol=1e-5)


def test_export_leaves_the_callers_lora_model_alone(tiny_bert_dir, cache):
    lora = BioHiCL.from_base(str(tiny_bert_dir))
    lora.add_lora(r=4, verbose=False)
    randomize_lora_b(lora, generator=torch.Generator().manual_seed(0))
    lora = lora.to(torch.bfloat16).eval()
    before = {k: v.clone() for k, v in lora.state_dict().items() if "lora_" in k}
    encoder = load_onnx_encoder(lora, cache_dir=cache, verify=False)
    after = {k: v for k, v in lora.state_dict().items() if "lora_" in k}
    assert lora.is_peft and lora.config.kind != "merged" and next(lora.parameters()).dtype == torch.bfloat16
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert encoder.encode(TEXTS).shape[0] == len(TEXTS)


def test_a_bad_export_is_refused(model, cache, monkeypatch):
    import biohicl.models.onnx_backend as backend

    folder = cache / "bad"
    monkeypatch.setattr(backend, "verify_export", lambda *a, **k: {"max_abs_diff": 0.5, "min_cosine": 0.1, "texts": 1})
    with pytest.raises(ModelLoadError, match="differs from the torch model"):
        load_onnx_encoder(model, cache_dir=folder)


def test_corrupt_onnx_file_is_a_one_line_error(tmp_path, model):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not an onnx model")
    with pytest.raises(ModelLoadError, match=r"model\.onnx"):
        OnnxEncoder(model, path)


def test_backend_flags_are_checked(model):
    assert check_backend("torch") == ("torch", None) and check_backend("onnx", "int8") == ("onnx", "int8")
    assert with_backend(model, "torch") is model
    with pytest.raises(ConfigError, match="backend"):
        check_backend("tensorrt")
    with pytest.raises(ConfigError, match="needs --backend onnx"):
        check_backend("torch", "int8")
    with pytest.raises(ConfigError, match="quantize"):
        check_backend("onnx", "int4")


def test_encode_and_index_commands_take_the_onnx_backend(tiny_bert_dir, tmp_path, monkeypatch, capsys):
    from safetensors.torch import load_file

    from biohicl.cli.main import main
    from biohicl.search.index import Index

    monkeypatch.setenv("BIOHICL_ONNX_CACHE", str(tmp_path / "cache"))
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    for backend in (["--backend", "torch"], ["--backend", "onnx"]):
        out = tmp_path / f"{backend[1]}.safetensors"
        assert (
            main(["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(out), *backend]) == 0
        )
    from safetensors import safe_open

    int8_out = tmp_path / "int8.safetensors"
    argv = ["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(int8_out)]
    assert main([*argv, "--backend", "onnx", "--quantize", "int8"]) == 0
    recorded = {}
    for name in ("torch", "onnx", "int8"):
        with safe_open(str(tmp_path / f"{name}.safetensors"), framework="pt") as handle:
            recorded[name] = (handle.metadata()["backend"], handle.metadata()["quantize"])
    assert recorded == {"torch": ("torch", "none"), "onnx": ("onnx", "none"), "int8": ("onnx", "int8")}
    torch.testing.assert_close(
        load_file(str(tmp_path / "onnx.safetensors"))["embeddings"],
        load_file(str(tmp_path / "torch.safetensors"))["embeddings"],
        atol=1e-5,
        rtol=0,
    )
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": str(i), "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    args = ["index", str(corpus), "--model", str(tiny_bert_dir), "--no_progress", "--backend", "onnx"]
    args += ["--quantize", "int8"]
    assert main([*args, "--output", str(tmp_path / "idx")]) == 0
    rows = Index.load(tmp_path / "idx").embeddings()
    reference = load_file(str(tmp_path / "torch.safetensors"))["embeddings"]
    assert torch.nn.functional.cosine_similarity(rows, reference).min() > 0.98
    capsys.readouterr()
    # searching it with the (torch) query encoder: the int8 probe rows are within the int8 tolerance, no warning
    # that it was built with other weights (the fp32 threshold, 0.999, warned on every search)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["search", str(tmp_path / "idx"), "diabetes", "--model", str(tiny_bert_dir), "--top_k", "2"]) == 0
    assert not [w for w in caught if "other weights" in str(w.message)], [str(w.message) for w in caught]
    capsys.readouterr()
    bad = ["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(tmp_path / "x")]
    assert main([*bad, "--quantize", "int8"]) == 2
    assert "needs --backend onnx" in capsys.readouterr().err


def test_evaluate_command_takes_the_onnx_backend(tiny_bert_dir, tmp_path, monkeypatch, data_dir):
    from biohicl.cli.main import main

    if not (data_dir / "biosses").is_dir():
        pytest.skip("BIOSSES is not in the data folder")
    monkeypatch.setenv("BIOHICL_ONNX_CACHE", str(tmp_path / "cache"))
    results = {}
    for name, extra in (("torch", []), ("onnx", ["--backend", "onnx"])):
        out = tmp_path / f"{name}.json"
        assert (
            main(["evaluate", str(tiny_bert_dir), "--tasks", "biosses", "--output", str(out), "--no_progress", *extra])
            == 0
        )
        results[name] = json.loads(out.read_text())
    assert results["onnx"]["settings"]["backend"] == "onnx"
    spearman = [r["tasks"]["biosses"]["metrics"]["spearman"] for r in results.values()]
    assert abs(spearman[0] - spearman[1]) < 1e-4


def test_device_cuda_is_refused_by_a_cpu_only_onnxruntime(tiny_bert_dir, tmp_path, monkeypatch, capsys):
    import onnxruntime

    from biohicl.cli.main import main

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA's provider")
    monkeypatch.setenv("BIOHICL_ONNX_CACHE", str(tmp_path / "cache"))
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    out = tmp_path / "onnx.safetensors"
    argv = ["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(out), "--backend", "onnx"]
    capsys.readouterr()
    assert main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(
        r"biohicl encode: error: --device cuda: onnxruntime here has no CUDAExecutionProvider \(only [A-Za-z, ]*"
        r"CPUExecutionProvider[A-Za-z, ]*\); install onnxruntime-gpu or use --device cpu",
        err,
    ), err
    assert not out.exists()  # refused before the model loaded, nothing written
    assert main([*argv, "--device", "auto"]) == 0 and out.is_file()  # the default (and auto) stay on the CPU
    from biohicl.models.onnx_backend import onnx_providers

    for device in (None, "auto", "cpu", "CPU", "cpu:0", torch.device("cpu", 1)):  # any cpu index, as torch takes
        assert onnx_providers(device) == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match=r"^--device mps: the onnx backend runs on cpu or cuda"):
        onnx_providers("mps")


class RecordingSession:
    """onnxruntime's InferenceSession as an onnxruntime with CUDA's provider would open it: the providers the
    encoder's session was given are recorded (and reported by ``get_providers``), the graph runs on a real CPU session
    (the export's own optimizer sessions are not recorded)."""

    calls: ClassVar[list[list]] = []

    def __init__(self, path, options=None, providers=None, **kwargs):
        providers = list(providers or ["CPUExecutionProvider"])
        if Path(path).name == FP32_FILE:
            type(self).calls.append(providers)
        self._providers = [p if isinstance(p, str) else p[0] for p in providers]
        self._session = REAL_SESSION[0](path, options, providers=["CPUExecutionProvider"], **kwargs)

    def get_providers(self):
        return self._providers

    def __getattr__(self, name):
        return getattr(self._session, name)


REAL_SESSION: list = []


@pytest.fixture
def cuda_onnxruntime(monkeypatch):
    import onnxruntime

    REAL_SESSION[:] = [onnxruntime.InferenceSession]
    RecordingSession.calls = []
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(onnxruntime, "InferenceSession", RecordingSession)
    return RecordingSession


def test_device_cuda_runs_on_cudas_provider_when_onnxruntime_has_it(model, cache, cuda_onnxruntime):
    from biohicl.models.onnx_backend import onnx_providers

    assert onnx_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_providers("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    encoder = load_onnx_encoder(model, cache_dir=cache, device="cuda")
    assert cuda_onnxruntime.calls == [["CUDAExecutionProvider", "CPUExecutionProvider"]]
    assert encoder.device == torch.device("cuda")
    np.testing.assert_allclose(encoder.encode(TEXTS), model.encode(TEXTS), atol=1e-5)
    assert load_onnx_encoder(model, cache_dir=cache, device="cuda:1").device == torch.device("cuda", 1)
    assert load_onnx_encoder(model, cache_dir=cache).device == torch.device("cpu")
    assert cuda_onnxruntime.calls[1:] == [
        [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"],
        ["CPUExecutionProvider"],
    ]


def test_the_check_line_names_the_device_the_figures_were_measured_on(
    model, tmp_path, cuda_onnxruntime, monkeypatch, caplog
):
    import biohicl.models.onnx_backend as onnx_backend

    checks = []
    verify = onnx_backend.verify_export
    monkeypatch.setattr(onnx_backend, "verify_export", lambda *a, **k: checks.append(1) or verify(*a, **k))
    with caplog.at_level("INFO", logger=onnx_backend.__name__):
        cpu = load_onnx_encoder(model, cache_dir=tmp_path)  # first use: checked on the CPU
        cuda = load_onnx_encoder(model, cache_dir=tmp_path, device="cuda")  # the CPU's figures reused
    assert len(checks) == 1 and cpu.verification["device"] == "cpu" and cuda.verification == cpu.verification
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ONNX fp32 encoder")]
    diff = cpu.verification["max_abs_diff"]
    assert lines[0].startswith(f"ONNX fp32 encoder {cpu.path} on cpu: max |Δ| to torch {diff:.2e}, min cosine ")
    assert lines[0].endswith(" (checked on cpu)")
    assert lines[1].startswith(f"ONNX fp32 encoder {cuda.path} on cuda: max |Δ| to torch {diff:.2e}, min cosine ")
    assert lines[1].endswith(" (checked on cpu when the graph was first used; this load checked that the file's "
                             "sha256 is the one recorded then)")  # fmt: skip
    info_path = cpu.path.parent / EXPORT_INFO  # a report written before the device was recorded
    info = json.loads(info_path.read_text())
    del info["fp32"]["device"]
    info_path.write_text(json.dumps(info))
    caplog.clear()
    with caplog.at_level("INFO", logger=onnx_backend.__name__):
        load_onnx_encoder(model, cache_dir=tmp_path, device="cuda")
    assert len(checks) == 1
    reused = " when the graph was first used; this load checked that the file's sha256 is the one recorded then)"
    assert caplog.records[-1].getMessage().endswith(" (checked on an unrecorded device" + reused)
    first_on_cuda = load_onnx_encoder(model, cache_dir=tmp_path / "cuda-first", device="cuda")
    assert len(checks) == 2 and first_on_cuda.verification["device"] == "cuda"  # checked on the session it opened


def test_a_cuda_provider_that_falls_back_to_the_cpu_is_refused(model, cache, cuda_onnxruntime, monkeypatch):
    monkeypatch.setattr(RecordingSession, "get_providers", lambda self: ["CPUExecutionProvider"])
    with pytest.raises(ConfigError, match=r"^--device cuda: onnxruntime could not start CUDAExecutionProvider"):
        load_onnx_encoder(model, cache_dir=cache, device="cuda")


def test_evaluate_records_the_device_onnx_ran_on(tiny_bert_dir, tmp_path, monkeypatch, data_dir, cuda_onnxruntime):
    from biohicl.cli.main import main

    if not (data_dir / "biosses").is_dir():
        pytest.skip("BIOSSES is not in the data folder")
    monkeypatch.setenv("BIOHICL_ONNX_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "onnx.json"
    argv = ["evaluate", str(tiny_bert_dir), "--tasks", "biosses", "--output", str(out), "--no_progress"]
    assert main([*argv, "--backend", "onnx", "--device", "cuda"]) == 0
    assert cuda_onnxruntime.calls == [["CUDAExecutionProvider", "CPUExecutionProvider"]]
    assert json.loads(out.read_text())["settings"]["device"] == "cuda"

"""The command line shows the library's output lines (``biohicl.cli.progress``): what a publish leaves out, what a
save or an ONNX export wrote, and each line once."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from biohicl.cli.progress import PROGRESS_LOGGERS, show_progress


def test_no_progress_logger_is_under_another():
    """A record reaches every handler up its logger's chain: a module under a listed package would print twice."""
    for name in PROGRESS_LOGGERS:
        parents = [other for other in PROGRESS_LOGGERS if name.startswith(other + ".")]
        assert parents == [], f"{name} is under {parents}"


def test_a_line_is_shown_once_on_stdout(capsys):
    show_progress()
    show_progress()  # the CLI calls it per command: still one handler per logger
    logging.getLogger("biohicl.hub.publish").info("uploaded %d files to %s (%s)", 3, "me/tiny", "model")
    captured = capsys.readouterr()
    assert captured.out == "uploaded 3 files to me/tiny (model)\n" and captured.err == ""


def _dora_adapter_folder(folder):
    folder.mkdir()
    (folder / "biohicl_config.json").write_text(json.dumps({"kind": "adapter"}))
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "use_dora": True}))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    (folder / "modules.json").write_text("[]")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text("{}")
    return folder


def test_publish_shows_the_dora_files_it_leaves_out(tmp_path, capsys):
    from biohicl.hub.run_sources import model_files

    folder = _dora_adapter_folder(tmp_path / "model")
    show_progress()
    staged = [p.relative_to(folder).as_posix() for p in model_files(folder)]
    assert staged == ["adapter_config.json", "adapter_model.safetensors", "biohicl_config.json"]
    out = capsys.readouterr().out
    assert out == (
        f"{folder}: a DORA adapter, which sentence-transformers does not load as trained: its sentence-transformers "
        "module files (1_Pooling/config.json, modules.json) are not staged (an earlier biohicl wrote them); its "
        "sentence-transformers route is --merge\n"
    )


def test_publish_shows_the_stale_signature_entries_it_drops(tmp_path, capsys):
    from biohicl.hub.run_sources import drop_recorded_peft_weights

    config = {"base_signature": {"weights": {"encoder.layer.0.query.weight": [0.5], "encoder.ia3_l.default": [1.0]}}}
    show_progress()
    assert drop_recorded_peft_weights(config, tmp_path / "run")
    assert config["base_signature"]["weights"] == {"encoder.layer.0.query.weight": [0.5]}
    assert capsys.readouterr().out == (
        f"{tmp_path / 'run'}: saved before biohicl left peft weights out of base signatures: the adapter's own "
        "encoder.ia3_l.default dropped from the staged base_signature (the other recorded weights identify the base)\n"
    )


def test_saving_a_dora_adapter_shows_that_no_sentence_transformers_files_were_written(tmp_path, capsys):
    from biohicl.models.config import BioHiCLConfig
    from biohicl.models.export import write_loading_files

    (tmp_path / "modules.json").write_text("[]")  # an earlier save's
    show_progress()
    write_loading_files(tmp_path, BioHiCLConfig(base_model="a/b"), 8, SimpleNamespace(peft_type="LORA", use_dora=True))
    assert not (tmp_path / "modules.json").exists()
    assert capsys.readouterr().out == (
        f"{tmp_path}: a DORA adapter: no sentence-transformers module files written (SentenceTransformer would not "
        "load it as trained); its sentence-transformers route is the merged export (BioHiCL.save_merged, biohicl "
        "publish --merge)\n"
    )


def test_the_onnx_export_and_its_device_are_shown(tiny_bert_dir, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from biohicl.models.model import BioHiCL
    from biohicl.models.onnx_backend import load_onnx_encoder

    model = BioHiCL.from_base(str(tiny_bert_dir)).eval()
    capsys.readouterr()
    show_progress()
    encoder = load_onnx_encoder(model, cache_dir=tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("exported BertModel to ONNX in ")
    assert lines[0].endswith(f"s: {encoder.path}")
    diff = encoder.verification["max_abs_diff"]
    assert lines[1].startswith(f"ONNX fp32 encoder {encoder.path} on cpu: max |Δ| to torch {diff:.2e}, min cosine ")

"""The int8 export prints its one line: onnxruntime's quantiser logs through the root logger (``logging.warning``,
which gives a root logger with no handler a stderr one), so the first ``--quantize int8`` printed ``WARNING:root:
Please consider to run pre-processing before quantization...`` and every later log line twice (the second time as
``INFO:biohicl.models.onnx_backend:...``). Tiny random BERT, CPU."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest

pytest.importorskip("onnxruntime.quantization")
pytest.importorskip("onnx")

from biohicl.models.model import BioHiCL
from biohicl.models.onnx_export import export_onnx, quantize_int8

TEXTS = ["cancer cells in the heart", "diabetes", "x"]


@contextlib.contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger as a plain script has it inside the block: no handler (pytest's capturing ones set aside),
    level WARNING; put back as it was after it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    try:
        yield root
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_quantising_leaves_the_root_logger_as_it_was_and_passes_no_record_to_it(tiny_bert_dir, tmp_path, caplog):
    model = BioHiCL.from_base(str(tiny_bert_dir)).eval()
    source = export_onnx(model, tmp_path / "model.onnx")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with caplog.at_level(logging.DEBUG):  # a user's root handler, taking every level
        caplog.clear()
        assert quantize_int8(source, tmp_path / "model.int8.onnx").is_file()
    assert [(r.name, r.getMessage()[:40]) for r in caplog.records if r.levelno < logging.ERROR] == []
    assert (root.handlers, root.level) == (handlers, level)


def test_exporting_and_quantising_under_a_bare_root_logger_print_nothing_and_add_no_handler(
    tiny_bert_dir, tmp_path, capfd
):
    model = BioHiCL.from_base(str(tiny_bert_dir)).eval()
    capfd.readouterr()
    with bare_root() as root:
        source = export_onnx(model, tmp_path / "model.onnx")  # the optimizer's loggers warn about the tiny vocabulary
        quantize_int8(source, tmp_path / "model.int8.onnx")
        assert (root.handlers, root.level) == ([], logging.WARNING)
    assert capfd.readouterr() == ("", "")


def test_the_first_int8_encode_prints_its_encoder_line_once(tiny_bert_dir, tmp_path, monkeypatch, capsys):
    from biohicl.cli.main import main

    monkeypatch.setenv("BIOHICL_ONNX_CACHE", str(tmp_path / "cache"))  # a fresh cache: the export runs
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    argv = ["encode", "--model", str(tiny_bert_dir), "--input", str(texts), "--output", str(tmp_path / "e.safetensors")]
    with bare_root() as root:
        assert main([*argv, "--backend", "onnx", "--quantize", "int8"]) == 0
        assert root.handlers == []
    out, err = capsys.readouterr()
    assert [line for line in (out + err).splitlines() if "ONNX int8 encoder" in line and "INFO:" in line] == []
    assert len([line for line in out.splitlines() if line.startswith("ONNX int8 encoder")]) == 1
    assert "WARNING:root" not in err and "pre-processing" not in err, err

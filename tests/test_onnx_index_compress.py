"""docs/inference.md's compress command over an index built with ``--backend onnx --quantize int8``: without the
build's encoder options it is refused naming them (it said "built with other weights" for the same weights, whose
int8 probe rows were compared at the fp32 tolerance), and with them it only compresses. Tiny random BERT, CPU."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime.quantization")
pytest.importorskip("onnx")

TEXTS = ["cancer cells in the heart", "diabetes", "the brain of patients with heart disease", "x"]


def test_compressing_an_int8_onnx_index_repeats_its_encoder_options(tiny_bert_dir, tmp_path, monkeypatch, capsys):
    from biohicl.cli.main import main

    monkeypatch.setenv("BIOHICL_ONNX_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": str(i), "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    output = tmp_path / "idx"
    build = ["index", str(corpus), "--model", str(tiny_bert_dir), "--output", str(output), "--no_progress"]
    assert main([*build, "--backend", "onnx", "--quantize", "int8"]) == 0
    capsys.readouterr()

    assert main([*build, "--compress", "int8"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"biohicl index: error: {output}: built with other settings (backend: 'onnx' → 'torch', quantize: 'int8' → "
        "None); rerun with --backend onnx --quantize int8, or use a new output folder"
    )
    assert not list(output.glob("compressed-*"))

    assert main([*build, "--backend", "onnx", "--quantize", "int8", "--compress", "int8"]) == 0
    assert "resuming: kept 1 of 1 shards" in capsys.readouterr().out
    assert json.loads((output / "compressed-int8.json").read_text())["kind"] == "int8"

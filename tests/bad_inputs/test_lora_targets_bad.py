"""``--lora_target_modules`` naming a module LoRA cannot wrap (an attention block, not one of its linear layers): one
line naming the field, the module's type and the linear layers in it, before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def write_docs(path: Path) -> Path:
    labels = [["D003920"], ["D003924"], ["D009203"], ["D001927"]]
    rows = [{"pmid": str(i), "title": f"t{i}", "abstract": "the cells of patients", "mesh": lab}
            for i, lab in enumerate(labels)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        # BERT's layer.N.attention is a BertAttention: self.{query,key,value} and output.dense inside
        (["attention"], "'attention' names a BertAttention, not a linear layer; its linear modules: query, key, value, "
                        "dense"),
        (["query", "LayerNorm"], "'LayerNorm' names a LayerNorm, not a linear layer; it holds no linear layer (the "
                                 "model's linear modules: query, key, value, dense)"),
    ],
)  # fmt: skip
def test_a_target_that_is_no_linear_layer_is_one_line_naming_the_field(
    tiny_bert_dir, tmp_path, run_cli, targets, expected
):
    docs = write_docs(tmp_path / "docs.jsonl")
    out = tmp_path / "run"
    argv = ["train", "--dataset_path", str(docs), "--output_dir", str(out), "--base_model", str(tiny_bert_dir),
            "--base_model_hub_id", "test/tiny-bert", "--max_steps", "1", "--per_device_train_batch_size", "4",
            "--max_length", "16", "--report_to", "none", "--use_cpu", "--disable_tqdm", "true", "--save_strategy",
            "no", "--lora_target_modules", *targets]  # fmt: skip
    result = run_cli(argv)
    assert f"biohicl train: error: lora_target_modules: {expected}\n" in result.err
    assert not out.exists()

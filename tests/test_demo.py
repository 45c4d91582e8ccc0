"""The demo's comparison: base and tuned model evaluated at one length."""

from __future__ import annotations

from biohicl.models.model import BioHiCL
from biohicl.study.demo import evaluation_models


def test_base_and_tuned_model_are_evaluated_at_one_length(tiny_bert_dir, tmp_path):
    tuned = BioHiCL.from_base(str(tiny_bert_dir), max_length=16)  # trained at 16 tokens
    tuned.add_lora(r=2, verbose=False)
    tuned.save_pretrained(tmp_path / "run")
    assert BioHiCL.from_pretrained(tmp_path / "run").config.max_length == 16  # what it would keep by itself
    loaded = {label: load() for label, load in evaluation_models(str(tiny_bert_dir), tmp_path / "run", 48)}
    assert sorted(loaded) == ["base", "biohicl"]
    assert {label: model.config.max_length for label, model in loaded.items()} == {"base": 48, "biohicl": 48}
    batch = loaded["biohicl"].tokenize(["word " * 100])
    assert batch["input_ids"].shape[1] == 48  # the length is what tokenization uses

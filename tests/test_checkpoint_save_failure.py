"""A checkpoint save that fails (a full disk, a file-size limit) leaves no peft model card in the checkpoint: the
card peft writes first names the base's local folder (a machine path), and is removed on success as on failure."""

from __future__ import annotations

import pytest
from test_trainer import make_args

from biohicl.models.model import BioHiCL
from biohicl.training.trainer import BioHiCLTrainer


def test_a_failed_checkpoint_save_leaves_no_generated_card(tiny_bert_dir, tmp_path, monkeypatch):
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    args = make_args(tiny_bert_dir, tmp_path / "unused.jsonl", tmp_path / "run")
    trainer = BioHiCLTrainer(model=model, args=args)
    checkpoint = tmp_path / "run" / "checkpoint-2"

    def card_then_full_disk(self, directory):  # as peft: the card first, then the weights, which fail
        (directory := checkpoint).mkdir(parents=True, exist_ok=True)
        (directory / "README.md").write_text("---\nbase_model: /models/tiny\n---\n", encoding="utf-8")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(BioHiCL, "save_pretrained", card_then_full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        trainer._save(str(checkpoint))
    assert sorted(p.name for p in checkpoint.iterdir()) == []


def test_a_card_that_was_there_is_kept_when_a_save_fails(tiny_bert_dir, tmp_path, monkeypatch):
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    folder = tmp_path / "run"
    trainer = BioHiCLTrainer(model=model, args=make_args(tiny_bert_dir, tmp_path / "unused.jsonl", folder))
    folder.mkdir(exist_ok=True)
    (folder / "README.md").write_text("my card\n", encoding="utf-8")

    def full_disk(self, directory):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(BioHiCL, "save_pretrained", full_disk)
    with pytest.raises(OSError):
        trainer._save(str(folder))
    assert (folder / "README.md").read_text(encoding="utf-8") == "my card\n"

"""A save that fails (a full disk, a file-size limit) leaves no peft model card behind: peft writes its card first,
naming the base's local folder (a machine path); ``BioHiCL.save_pretrained`` removes it on success as on failure,
for a checkpoint (``BioHiCLTrainer._save``) and the run folder's own save alike, and keeps a card that was there."""

from __future__ import annotations

from pathlib import Path

import pytest
from peft import PeftModel
from test_trainer import make_args

from biohicl.models.model import BioHiCL
from biohicl.training.trainer import BioHiCLTrainer


def _card_then_full_disk(self, directory, **kwargs):  # as peft: the card first, then the weights, which fail
    Path(directory, "README.md").write_text("---\nbase_model: /models/tiny\n---\n", encoding="utf-8")
    raise OSError(28, "No space left on device")


@pytest.fixture
def adapter(tiny_bert_dir, monkeypatch):
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    model.add_lora(r=2)
    monkeypatch.setattr(PeftModel, "save_pretrained", _card_then_full_disk)
    return model


def test_a_failed_save_leaves_no_generated_card(adapter, tmp_path):
    folder = tmp_path / "run"
    with pytest.raises(OSError, match="No space left on device"):
        adapter.save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == []


def test_a_failed_checkpoint_save_leaves_no_generated_card(adapter, tiny_bert_dir, tmp_path):
    trainer = BioHiCLTrainer(model=adapter, args=make_args(tiny_bert_dir, tmp_path / "unused.jsonl", tmp_path / "r"))
    checkpoint = tmp_path / "r" / "checkpoint-2"
    with pytest.raises(OSError, match="No space left on device"):
        trainer._save(str(checkpoint))
    assert sorted(p.name for p in checkpoint.iterdir()) == []


def test_a_card_that_was_there_is_kept_when_a_save_fails(adapter, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "README.md").write_text("my card\n", encoding="utf-8")
    with pytest.raises(OSError):
        adapter.save_pretrained(folder)
    assert (folder / "README.md").read_text(encoding="utf-8") == "my card\n"

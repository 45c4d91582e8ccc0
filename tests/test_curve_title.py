"""The training curve's title names the base as the Hub sees it: ``training_curves.png`` is uploaded with the run
(``biohicl publish``) and shown on its card, so a base trained from a folder of this machine is named by its Hub id
(``--base_model_hub_id``) or by the folder's last name, never by its path. Tiny BERT, 24 synthetic documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biohicl.models.config import shown_base
from biohicl.training.args import BioHiCLTrainingArguments
from tests.conftest import synthetic_documents


@pytest.mark.parametrize(
    ("recorded", "shown"),
    [
        ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
        ("/home/someone/ward7/models/tiny-bert", "tiny-bert"),
        ("/home/someone/ward7/models/tiny-bert/", "tiny-bert"),
        ("./org/bert", "bert"),
        ("tinybert", "tinybert"),
    ],
)
def test_a_recorded_base_is_shown_by_its_hub_id_or_its_folders_name(recorded, shown):
    assert shown_base(recorded) == shown


def test_a_run_from_a_local_folder_titles_its_curve_with_the_folders_name_not_its_path(
    tiny_bert_dir, tmp_path, monkeypatch
):
    import biohicl.training.curves as curves
    import biohicl.training.run as run

    documents = tmp_path / "docs.jsonl"
    documents.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    titles: list[str] = []
    monkeypatch.setattr(curves, "plot_training_curves", lambda history, path, title, **kw: titles.append(title))
    args = BioHiCLTrainingArguments(
        output_dir=str(tmp_path / "run"), dataset_path=str(documents), base_model=str(tiny_bert_dir), max_steps=1,
        per_device_train_batch_size=4, use_cpu=True, report_to="none", disable_tqdm=True,
    )  # fmt: skip
    run.train_biohicl(args)
    assert titles == [f"BioHiCL: {Path(tiny_bert_dir).name}"]
    assert str(Path(tiny_bert_dir).parent) not in titles[0]

"""A base given as a local folder: recorded by its absolute path (a relative one named another folder, or a Hub
repo, once the working directory changed), and its pooling, when it has none of its own, guessed from its name
with one log line."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import build_tiny_bert, randomize_lora_b

from biohicl.errors import ConfigError, PublishError
from biohicl.models.model import BioHiCL

TEXTS = ["the cancer of patients", "heart disease"]
MEAN_GUESS = (
    "; using 'mean' (for a CLS-trained encoder such as bge or MedCPT: BioHiCL.from_base(..., pooling='cls'), or "
    "`biohicl train --pooling cls`)"
)
CLS_GUESS = (
    "; using 'cls' (its name reads as a CLS-trained encoder; for a mean-pooled one: BioHiCL.from_base(..., "
    "pooling='mean'), or `biohicl train --pooling mean`)"
)


def pooling_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "biohicl.models.config"]


@pytest.fixture
def relative_run(tiny_bert_dir, tmp_path, monkeypatch):
    """`cd work && biohicl train --base_model models/tiny --output_dir runs/tiny`, as from_base + save does it."""
    work = tmp_path / "work"
    shutil.copytree(tiny_bert_dir, work / "models" / "tiny")
    monkeypatch.chdir(work)
    model = BioHiCL.from_base("models/tiny", pooling="mean")
    model.add_lora(r=4, verbose=False)
    randomize_lora_b(model, std=0.4)
    model.save_pretrained("runs/tiny")
    return work, model.encode(TEXTS, show_progress_bar=False)


def test_a_relative_base_folder_is_recorded_by_its_absolute_path(relative_run):
    work, _ = relative_run
    base = str((work / "models" / "tiny").resolve())
    assert json.loads((work / "runs/tiny/biohicl_config.json").read_text())["base_model"] == base
    assert json.loads((work / "runs/tiny/adapter_config.json").read_text())["base_model_name_or_path"] == base
    # a Hub id given for the folder (--base_model_hub_id) is what is recorded, as before
    assert BioHiCL.from_base("models/tiny", hub_id="org/tiny", pooling="mean").config.base_model == "org/tiny"


def test_a_run_over_a_relative_base_loads_from_another_directory(relative_run, tmp_path, monkeypatch):
    """Before: `models/tiny at revision main is not in the Hugging Face cache ... hf download models/tiny`."""
    work, trained = relative_run
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = BioHiCL.from_pretrained(work / "runs" / "tiny")
    assert loaded.config.kind == "adapter"
    np.testing.assert_allclose(loaded.encode(TEXTS, show_progress_bar=False), trained, atol=1e-6)


def test_publish_refuses_a_run_over_a_relative_base_folder_by_its_name(relative_run, tmp_path):
    """`models/tiny` read as a Hub id (owner/name): the card would have named a repo no one can download."""
    from biohicl.hub.publish import build_model_repo_folder

    work, _ = relative_run
    with pytest.raises(PublishError, match=r"its base is the local folder 'tiny'") as err:
        build_model_repo_folder(work / "runs" / "tiny", tmp_path / "repo", repo_id="me/tiny")
    assert str(work / "models") not in str(err.value)


def test_a_hub_id_given_for_a_folder_of_that_name_is_recorded(tiny_bert_dir, tmp_path, monkeypatch):
    """After `hf download org/tiny --local-dir org/tiny`, `--base_model org/tiny --base_model_hub_id org/tiny`:
    before, the folder's absolute path was recorded, and publish refused the run asking for --base_model_hub_id."""
    from biohicl.hub.publish import build_model_repo_folder

    shutil.copytree(tiny_bert_dir, tmp_path / "work" / "org" / "tiny")
    monkeypatch.chdir(tmp_path / "work")
    model = BioHiCL.from_base("org/tiny", hub_id="org/tiny", pooling="mean")
    assert model.config.base_model == "org/tiny"
    model.add_lora(r=4, verbose=False)
    model.save_pretrained("runs/tiny")
    assert json.loads(Path("runs/tiny/adapter_config.json").read_text())["base_model_name_or_path"] == "org/tiny"
    repo = build_model_repo_folder("runs/tiny", tmp_path / "repo", repo_id="me/tiny")
    assert json.loads((repo / "biohicl_config.json").read_text())["base_model"] == "org/tiny"
    # loaded as a model, not named as a base: nothing says the folder is that Hub repo, so its absolute path
    folder = str((tmp_path / "work" / "org" / "tiny").resolve())
    assert BioHiCL.from_pretrained("org/tiny").config.base_model == folder


def test_a_guessed_pooling_is_logged_once(tiny_bert_dir, caplog):
    with caplog.at_level(logging.INFO, logger="biohicl.models.config"):
        model = BioHiCL.from_base(str(tiny_bert_dir))
    assert model.config.pooling == "mean"
    folder = str(Path(tiny_bert_dir).resolve())
    assert pooling_lines(caplog) == [f"pooling: {folder} has no sentence-transformers pooling config{MEAN_GUESS}"]


def test_a_medcpt_folder_is_guessed_cls_by_its_name_only(tiny_bert_dir, tmp_path, caplog):
    """MedCPT's encoders are CLS-pooled; a `bge` in a parent folder's name says nothing of the model (before: cls)."""
    medcpt = shutil.copytree(tiny_bert_dir, tmp_path / "MedCPT-Article-Encoder")
    plain = shutil.copytree(tiny_bert_dir, tmp_path / "bge-runs" / "tiny")
    with caplog.at_level(logging.INFO, logger="biohicl.models.config"):
        assert BioHiCL.from_base(str(medcpt)).config.pooling == "cls"
        assert BioHiCL.from_base(str(plain)).config.pooling == "mean"
    assert pooling_lines(caplog) == [
        f"pooling: {medcpt.resolve()} has no sentence-transformers pooling config{CLS_GUESS}",
        f"pooling: {plain.resolve()} has no sentence-transformers pooling config{MEAN_GUESS}",
    ]


def test_no_pooling_line_when_the_folder_or_the_caller_gives_it(tiny_bert_dir, tmp_path, caplog):
    st_folder = tmp_path / "st-tiny"
    BioHiCL.from_base(str(tiny_bert_dir), pooling="cls").save_merged(st_folder)
    (st_folder / "biohicl_config.json").unlink()  # a plain sentence-transformers folder: 1_Pooling/config.json
    assert json.loads((st_folder / "1_Pooling" / "config.json").read_text())["pooling_mode_cls_token"] is True
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="biohicl.models.config"):
        assert BioHiCL.from_base(str(st_folder)).config.pooling == "cls"
        assert BioHiCL.from_base(str(tiny_bert_dir), pooling="cls").config.pooling == "cls"
        assert BioHiCL.from_base(str(build_tiny_bert(tmp_path / "bert")), pooling="mean").config.pooling == "mean"
    assert pooling_lines(caplog) == []


@pytest.mark.parametrize("hub_id", ["not a repo id!", "../tiny", "/abs/org/tiny"])
def test_a_base_model_hub_id_that_is_no_hub_id_is_refused_in_one_line(tiny_bert_dir, hub_id):
    """It was recorded as typed and failed only when the run was loaded, with a download error."""
    with pytest.raises(
        ConfigError, match=rf"^base_model_hub_id: {re.escape(repr(hub_id))} is not an owner/name Hub id$"
    ):
        BioHiCL.from_base(str(tiny_bert_dir), hub_id=hub_id)

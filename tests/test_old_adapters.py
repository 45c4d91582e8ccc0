"""Adapters saved by an earlier biohicl: an IA3 adapter whose ``base_signature`` records its own ``ia3_l`` weight
(before base signatures left peft weights out) loads onto its base unforced and publishes without that weight, a DoRA
folder that still has sentence-transformers' module files publishes without them, and ``biohicl evaluate`` names each
adapter's peft method."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from conftest import build_tiny_bert
from test_peft_methods import _adapted

from biohicl.cli.evaluate import model_identity
from biohicl.cli.main import main as cli_main
from biohicl.errors import ModelLoadError
from biohicl.models.config import BioHiCLConfig
from biohicl.models.export import write_sentence_transformers_files
from biohicl.models.model import BioHiCL
from biohicl.models.signature import SIGNATURE_SAMPLES, base_signature

TEXTS = ["the cancer of patients", "heart disease and diabetes", "brain cells 3"]
HUB_ID = "org/tiny-bert"
IA3_WEIGHT = "encoder.layer.1.output.dense.ia3_l.default"
ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json")


def _saved(tiny_bert_dir: Path, folder: Path, method: str) -> BioHiCL:
    """The tiny BERT with a ``method`` adapter, every trainable weight moved, saved to ``folder``."""
    model = _adapted(tiny_bert_dir, method, hub_id=HUB_ID)
    model.save_pretrained(folder)
    return model


def _as_saved_before(folder: Path) -> list[float]:
    """Make ``folder``'s signature what biohicl wrote before it left peft weights out: the last matrix it sampled was
    IA3's own ``ia3_l`` of ``encoder.layer.1.output.dense`` (its first 16 values; [1, 64], seeded positions), not the
    base's weight of that module. Returns the recorded values."""
    file = folder / "biohicl_config.json"
    config = json.loads(file.read_text())
    weights = config["base_signature"]["weights"]
    assert weights.pop("encoder.layer.1.output.dense.weight")
    weights[IA3_WEIGHT] = values = [1.0 + 0.01 * k for k in range(SIGNATURE_SAMPLES)]
    file.write_text(json.dumps(config, indent=2) + "\n")
    return values


def test_the_peft_weight_rule_names_each_methods_own_weights_and_no_base_weight():
    from biohicl.models.signature import is_peft_weight

    for name in (
        IA3_WEIGHT,
        "encoder.layer.0.attention.self.query.lora_A.default.weight",
        "encoder.layer.0.attention.self.query.lora_magnitude_vector.default.weight",
        "encoder.layer.0.attention.self.query.hada_w1_a",
        "encoder.layer.0.attention.self.query.lokr_w1",
        "pooler.dense.modules_to_save.default.weight",
        "encoder.layer.0.attention.self.query.vera_lambda_b.default",  # another method: its adapter's name
    ):
        assert is_peft_weight(name), name
    for name in (
        "embeddings.word_embeddings.weight",
        "encoder.layer.1.output.dense.weight",
        "encoder.layer.0.attention.self.query.weight",
        "layers.0.self_attn.q_proj.weight",
    ):
        assert not is_peft_weight(name), name


def test_an_ia3_adapter_whose_signature_records_its_own_weight_loads_onto_its_base_unforced(
    tiny_bert_dir, tmp_path, caplog
):
    folder = tmp_path / "ia3"
    expected = _saved(tiny_bert_dir, folder, "ia3").encode(TEXTS, convert_to="torch")
    _as_saved_before(folder)
    with caplog.at_level(logging.INFO, logger="biohicl.models.adapter_fit"):
        reloaded = BioHiCL.from_pretrained(folder, base_model_path=tiny_bert_dir)  # not force_base
    assert torch.equal(reloaded.encode(TEXTS, convert_to="torch"), expected)
    assert [r.getMessage() for r in caplog.records if r.name == "biohicl.models.adapter_fit"] == [
        f"{folder}: saved before biohicl left peft weights out of base signatures: its base_signature records the "
        f"adapter's own {IA3_WEIGHT}, skipped (the other recorded weights are checked); "
        "BioHiCL.from_pretrained(DIR).save_pretrained(DIR) re-records it"
    ]
    # the re-save the line names records the base's own weights, as a fresh save does
    reloaded.save_pretrained(folder)
    recorded = json.loads((folder / "biohicl_config.json").read_text())["base_signature"]
    assert recorded == base_signature(BioHiCL.from_base(str(tiny_bert_dir)).backbone)
    assert "encoder.layer.1.output.dense.weight" in recorded["weights"]


def test_the_other_recorded_weights_still_refuse_another_base_of_the_same_shape(tiny_bert_dir, tmp_path):
    folder = tmp_path / "ia3"
    _saved(tiny_bert_dir, folder, "ia3")
    _as_saved_before(folder)
    other = build_tiny_bert(tmp_path / "other-bert", seed=1)
    with pytest.raises(ModelLoadError, match=r"\(other weights in embeddings\.word_embeddings\.weight\)"):
        BioHiCL.from_pretrained(folder, base_model_path=other)


def test_publishing_an_old_ia3_adapter_stages_its_signature_without_the_adapters_weight(
    tiny_bert_dir, tmp_path, caplog, capsys
):
    folder = tmp_path / "ia3"
    _saved(tiny_bert_dir, folder, "ia3")
    _as_saved_before(folder)
    recorded = json.loads((folder / "biohicl_config.json").read_text())["base_signature"]["weights"]
    out = tmp_path / "repo"
    with caplog.at_level(logging.INFO, logger="biohicl.hub.run_sources"):
        assert cli_main(["publish", str(folder), "--repo_id", "me/tiny-ia3", "--dry_run", "--out", str(out)]) == 0
    staged = json.loads((out / "biohicl_config.json").read_text())["base_signature"]["weights"]
    assert staged == {name: values for name, values in recorded.items() if name != IA3_WEIGHT}
    assert set(staged) == {"embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight"}
    assert [r.getMessage() for r in caplog.records if r.name == "biohicl.hub.run_sources"] == [
        f"{folder / 'biohicl_config.json'}: saved before biohicl left peft weights out of base signatures: the "
        f"adapter's own {IA3_WEIGHT} dropped from the staged base_signature (the other recorded weights identify "
        "the base)"
    ]
    assert IA3_WEIGHT in json.loads((folder / "biohicl_config.json").read_text())["base_signature"]["weights"]


def test_publishing_an_old_dora_folder_stages_no_sentence_transformers_files(tiny_bert_dir, tmp_path, caplog):
    from biohicl.hub.publish import build_model_repo_folder

    folders = {method: tmp_path / method for method in ("dora", "lora")}
    for method, folder in folders.items():
        _saved(tiny_bert_dir, folder, method)
    # a DoRA folder saved before save_pretrained stopped writing them
    config = BioHiCLConfig.from_dict(json.loads((folders["dora"] / "biohicl_config.json").read_text()))
    write_sentence_transformers_files(folders["dora"], config, hidden_size=32)
    assert all((folders["dora"] / name).is_file() for name in ST_FILES)
    with caplog.at_level(logging.INFO, logger="biohicl.hub.run_sources"):
        dora = build_model_repo_folder(folders["dora"], tmp_path / "repo-dora")
    assert not [name for name in ST_FILES if (dora / name).exists()]
    assert not (dora / "1_Pooling").exists()
    assert (dora / "adapter_model.safetensors").is_file() and (dora / "adapter_config.json").is_file()
    assert [r.getMessage() for r in caplog.records if r.name == "biohicl.hub.run_sources"] == [
        f"{folders['dora']}: a DORA adapter, which sentence-transformers does not load as trained: its "
        "sentence-transformers module files (1_Pooling/config.json, config_sentence_transformers.json, modules.json, "
        "sentence_bert_config.json) are not staged (an earlier biohicl wrote them); its sentence-transformers route "
        "is --merge"
    ]
    # a LoRA adapter's still are: sentence-transformers loads it as trained
    lora = build_model_repo_folder(folders["lora"], tmp_path / "repo-lora")
    assert all((lora / name).is_file() for name in ST_FILES)


@pytest.mark.parametrize("method, words", [("lora", "LoRA"), ("dora", "DoRA"), ("ia3", "IA3")])
def test_evaluate_names_an_adapters_peft_method(tiny_bert_dir, tmp_path, method, words):
    folder = tmp_path / f"run-{method}"
    _saved(tiny_bert_dir, folder, method)
    model = BioHiCL.from_pretrained(folder, base_model_path=tiny_bert_dir)
    assert model_identity(str(folder), model, None) == (f"run-{method} ({words} over {HUB_ID})", None)


def test_evaluate_records_a_merged_folder_under_its_base_and_another_folder_by_its_name(tmp_path):
    from types import SimpleNamespace

    merged = tmp_path / "run-merged"
    merged.mkdir()
    config = SimpleNamespace(base_model=HUB_ID, kind="full", base_revision="abc123")
    assert model_identity(str(merged), SimpleNamespace(config=config, resolved=None), None) == (HUB_ID, "abc123")
    local_base = SimpleNamespace(base_model=str(merged), kind="full", base_revision=None)  # a base that is a folder
    assert model_identity(str(merged), SimpleNamespace(config=local_base, resolved=None), None) == ("run-merged", None)
    gone = SimpleNamespace(base_model=str(tmp_path / "moved" / "base"), kind="merged", base_revision=None)  # not here
    assert model_identity(str(merged), SimpleNamespace(config=gone, resolved=None), None) == ("run-merged", None)


def test_an_adapter_over_a_local_base_folder_is_named_without_the_machine_path(tiny_bert_dir, tmp_path):
    folder = tmp_path / "run-local"
    model = BioHiCL.from_base(tiny_bert_dir, max_length=16)  # no hub id: the base is recorded by its absolute path
    model.add_lora(r=2, alpha=4, target_modules=["query", "value"], verbose=False)
    model.save_pretrained(folder)
    loaded = BioHiCL.from_pretrained(folder)
    assert Path(loaded.config.base_model).is_absolute()
    assert model_identity(str(folder), loaded, None)[0] == f"run-local (LoRA over {Path(tiny_bert_dir).name})"


def test_a_merged_folders_hub_base_is_recorded_from_any_working_directory(tmp_path, monkeypatch):
    """Decided by the record, not by whether a folder of that name happens to exist where evaluate runs."""
    from types import SimpleNamespace

    merged = tmp_path / "run-merged"
    merged.mkdir()
    (tmp_path / "org" / "bert").mkdir(parents=True)  # as after `hf download org/bert --local-dir org/bert`
    config = SimpleNamespace(base_model="org/bert", kind="merged", base_revision=None)
    for where in (tmp_path, merged):
        monkeypatch.chdir(where)
        assert model_identity(str(merged), SimpleNamespace(config=config, resolved=None), None) == ("org/bert", None)

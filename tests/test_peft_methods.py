"""Adapters of other peft methods than LoRA (``add_lora(peft_config=...)``, ``train_biohicl(peft_config=...)``): they
record their base's signature from the base's own weights, reload onto it unforced, get sentence-transformers' module
files only when ``SentenceTransformer`` loads them as trained, and their card says which method trained."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from test_trainer import docs_file, make_args  # noqa: F401  (docs_file is a fixture)

from biohicl.hub.model_card import BioHiCLModelCardData, render_model_card
from biohicl.hub.publish import build_model_repo_folder
from biohicl.models.model import BioHiCL
from biohicl.models.signature import base_signature
from biohicl.training.run import train_biohicl

TEXTS = ["the cancer of patients", "heart disease and diabetes", "brain cells 3"]
HUB_ID = "org/tiny-bert"


def _config(method: str):
    from peft import IA3Config, LoHaConfig, LoKrConfig, LoraConfig

    return {
        "lora": lambda: LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]),
        "dora": lambda: LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], use_dora=True),
        "ia3": lambda: IA3Config(),  # key, value and output.dense (a feed-forward module: its ia3_l is [1, 64])
        "loha": lambda: LoHaConfig(r=4, alpha=6, target_modules=["query", "value", "dense"]),
        "lokr": lambda: LoKrConfig(r=4, target_modules=["query", "value"]),
    }[method]()


def _adapted(tiny_bert_dir, method: str, hub_id: str | None = None) -> BioHiCL:
    """The tiny BERT wrapped with ``method``, every trainable weight moved (peft starts some at the identity)."""
    model = BioHiCL.from_base(str(tiny_bert_dir), hub_id=hub_id, max_length=64)
    model.add_lora(peft_config=_config(method), verbose=False)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.backbone.parameters():
            if param.requires_grad:
                param.add_(0.3 * torch.randn(param.shape, generator=generator))
    return model


@pytest.mark.parametrize("method", ["lora", "dora", "ia3", "loha", "lokr"])
def test_an_adapter_records_its_bases_signature_and_reloads_onto_it_unforced(tiny_bert_dir, tmp_path, method):
    plain = BioHiCL.from_base(str(tiny_bert_dir), hub_id=HUB_ID, max_length=64)
    model = _adapted(tiny_bert_dir, method, hub_id=HUB_ID)
    expected = model.encode(TEXTS, convert_to="torch")
    assert not torch.allclose(expected, plain.encode(TEXTS, convert_to="torch"), atol=1e-3)  # the adapter acts
    model.save_pretrained(tmp_path / "run")
    recorded = json.loads((tmp_path / "run" / "biohicl_config.json").read_text())["base_signature"]
    # the base's own weights, whatever the method: IA3's 2-D ia3_l (output.dense's is the last matrix) is not one;
    # for LoRA this is the signature adapters saved before recorded
    assert recorded == base_signature(plain.backbone)
    assert set(recorded["weights"]) == {
        "embeddings.word_embeddings.weight",
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.1.output.dense.weight",
    }
    reloaded = BioHiCL.from_pretrained(tmp_path / "run", base_model_path=tiny_bert_dir)  # not force_base
    assert torch.equal(reloaded.encode(TEXTS, convert_to="torch"), expected)


@pytest.mark.parametrize("method", ["lora", "ia3", "loha", "lokr"])
def test_sentence_transformers_loads_the_adapters_whose_folder_has_its_module_files(tiny_bert_dir, tmp_path, method):
    from sentence_transformers import SentenceTransformer

    model = _adapted(tiny_bert_dir, method)  # base recorded as its folder: sentence-transformers loads it offline
    model.save_pretrained(tmp_path / "run")
    assert (tmp_path / "run" / "modules.json").is_file()
    got = SentenceTransformer(str(tmp_path / "run")).encode(TEXTS, convert_to_tensor=True)
    torch.testing.assert_close(got, model.encode(TEXTS, convert_to="torch"), rtol=0, atol=1e-6)


def test_a_dora_folder_has_no_sentence_transformers_files_and_says_where_to_go(tiny_bert_dir, tmp_path, caplog):
    # sentence-transformers (transformers' peft loading) drops DoRA's magnitude vectors: 0.024 off on these texts
    folder = tmp_path / "run"
    _adapted(tiny_bert_dir, "lora").save_pretrained(folder)  # an earlier save's files are not left behind
    model = _adapted(tiny_bert_dir, "dora")
    with caplog.at_level(logging.INFO, logger="biohicl.models.export"):
        model.save_pretrained(folder)
    for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        assert not (folder / name).exists()
    assert not (folder / "1_Pooling").exists() and not (folder / "2_Normalize").exists()  # the module folders too
    lines = [r.getMessage() for r in caplog.records if r.name == "biohicl.models.export"]
    assert lines == [
        f"{folder}: a DORA adapter: no sentence-transformers module files written (SentenceTransformer would not "
        "load it as trained); its sentence-transformers route is the merged export (BioHiCL.save_merged, "
        "biohicl publish --merge)"
    ]
    reloaded = BioHiCL.from_pretrained(folder)  # biohicl loads it as trained
    assert torch.equal(reloaded.encode(TEXTS, convert_to="torch"), model.encode(TEXTS, convert_to="torch"))


def test_a_published_dora_adapter_stages_no_module_files_and_its_card_no_sentence_transformers(tiny_bert_dir, tmp_path):
    _adapted(tiny_bert_dir, "dora", hub_id=HUB_ID).save_pretrained(tmp_path / "run")
    out = build_model_repo_folder(tmp_path / "run", tmp_path / "repo")
    assert (out / "adapter_model.safetensors").is_file() and not (out / "modules.json").exists()
    card = (out / "README.md").read_text()
    assert "This repository holds a **DoRA adapter** (peft)" in card
    assert "sentence-transformers" not in card.split("---")[1]  # the YAML header: no such tag
    assert "SentenceTransformer(" not in card


def test_the_card_of_an_ia3_run_shows_ia3_and_no_lora_settings(tiny_bert_dir, docs_file, tmp_path):  # noqa: F811
    from peft import IA3Config

    run = train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "ia3", max_steps=1), peft_config=IA3Config())
    BioHiCL.from_pretrained(run, base_model_path=tiny_bert_dir)  # the review's reproduction: it was refused
    data = BioHiCLModelCardData.from_run_dir(run, "M")
    rows = data.hyperparameters
    # the arguments' lora_r 8, alpha 16, dropout 0.1, query/value never trained
    assert not {"lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "use_dora"} & set(rows)
    assert rows["peft_type"] == "IA3" and data.peft_type == "IA3"
    assert rows["target_modules"] == ["key", "output.dense", "value"]  # peft's BERT defaults
    assert rows["feedforward_modules"] == ["output.dense"]
    keys = list(rows)
    assert keys.index("peft_type") < keys.index("target_modules") < keys.index("learning_rate")
    text = render_model_card(data)
    assert "This repository holds an **IA3 adapter** (peft)" in text and "| Weights | IA3 adapter (peft) |" in text
    assert "LoRA" not in text and "lora" not in text
    header = text.split("---")[1]
    assert "- ia3\n" in header and "- peft\n" in header and "- sentence-transformers\n" in header


def test_the_card_of_a_loha_adapter_shows_its_rank_and_alpha():
    from biohicl.hub.model_card import trained_hyperparameters

    args = {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "lora_target_modules": ["query"], "seed": 7}
    adapter = {"peft_type": "LOHA", "r": 4, "alpha": 6, "rank_dropout": 0.0, "target_modules": ["value", "query"]}
    rows = trained_hyperparameters(args, None, adapter)
    assert rows == {
        "peft_type": "LOHA", "r": 4, "alpha": 6, "rank_dropout": 0.0, "target_modules": ["query", "value"], "seed": 7
    }  # fmt: skip
    data = BioHiCLModelCardData(model_name="M", base_model="org/base", peft_type="LOHA", hyperparameters=rows)
    text = render_model_card(data)
    assert "This repository holds a **LoHa adapter** (peft)" in text
    assert "- loha\n" in text.split("---")[1] and "- lora\n" not in text.split("---")[1]


@pytest.mark.parametrize(("method", "expected"), [("lora", "LORA"), ("dora", "DORA"), ("ia3", "IA3"), ("loha", "LOHA")])
def test_a_config_and_its_saved_adapter_config_name_one_method_for_the_folder_and_the_card(method, expected):
    from biohicl.hub.card_adapter import PEFT_NAMES, peft_name, sentence_transformers_loads
    from biohicl.models.export import SENTENCE_TRANSFORMERS_PEFT_TYPES, peft_method

    config = _config(method)
    saved = config.to_dict()  # what adapter_config.json holds: peft_type a string, use_dora a row
    assert peft_method(config) == expected
    assert peft_name(saved["peft_type"], saved) == PEFT_NAMES[expected]
    loads = sentence_transformers_loads("adapter", saved["peft_type"], saved)
    assert loads is (expected in SENTENCE_TRANSFORMERS_PEFT_TYPES) is (expected != "DORA")

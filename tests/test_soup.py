"""Adapter soups: the averaged adapter's weights against peft's own merges, weights, and one-line refusals."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import build_tiny_bert, randomize_lora_b

from biohicl.cli import main as cli
from biohicl.errors import ConfigError, ModelLoadError
from biohicl.models.base_identity import same_base
from biohicl.models.model import BioHiCL
from biohicl.models.soup import soup_adapters

TEXTS = ["diabetes in the heart", "cancer cells of the brain", "patients and disease"]
HUB_ID = "org/tiny-bert"
PEFT_HAS_LORA_BIAS = "lora_bias" in __import__("peft").LoraConfig.__dataclass_fields__  # `make test-min`: peft 0.12


def _adapter(tiny_bert_dir, folder, seed: int, r: int = 4, alpha: int = 8, hub_id: str = HUB_ID, **kwargs):
    model = BioHiCL.from_base(str(tiny_bert_dir), hub_id=hub_id)
    torch.manual_seed(seed)  # LoRA A is drawn at random, B made non-zero: every adapter differs
    model.add_lora(r=r, alpha=alpha, verbose=False, **kwargs)
    randomize_lora_b(model, generator=torch.Generator().manual_seed(seed))
    model.save_pretrained(folder)
    return folder


def _merged_weights(folder, tiny_bert_dir) -> dict[str, torch.Tensor]:
    model = BioHiCL.from_pretrained(folder, base_model_path=tiny_bert_dir, merge=True)
    return {k: v.detach().clone() for k, v in model.backbone.state_dict().items()}


@pytest.fixture(scope="module")
def adapters(tiny_bert_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("soup")
    return [
        _adapter(tiny_bert_dir, root / "a", seed=1, r=4, alpha=8),
        _adapter(tiny_bert_dir, root / "b", seed=2, r=2, alpha=16),  # another rank and scaling
        _adapter(tiny_bert_dir, root / "c", seed=3, r=4, alpha=4),
    ]


def test_soup_changes_each_weight_by_the_weighted_mean_of_the_adapters_changes(adapters, tiny_bert_dir, tmp_path):
    base = BioHiCL.from_base(str(tiny_bert_dir), hub_id=HUB_ID).backbone.state_dict()
    merged = [_merged_weights(folder, tiny_bert_dir) for folder in adapters]  # peft's merge_and_unload of each
    weights = [0.5, 0.3, 0.2]
    soup = soup_adapters(adapters, tmp_path / "soup", weights)
    ours = _merged_weights(soup, tiny_bert_dir)
    changed = 0
    for key, value in base.items():
        expected = value + sum(w * (m[key] - value) for w, m in zip(weights, merged, strict=True))
        torch.testing.assert_close(ours[key], expected, rtol=0, atol=1e-6)
        changed += int(not torch.equal(value, expected))
    assert changed == 2 * 2  # query and value of both layers of the tiny BERT
    config = json.loads((soup / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["use_rslora"]) == (10, 10, False)
    record = json.loads((soup / "soup.json").read_text())
    assert record["weights"] == weights and record["ranks"] == [4, 2, 4]


def test_soup_with_all_weight_on_one_adapter_encodes_as_that_adapter(adapters, tiny_bert_dir, tmp_path):
    import shutil

    reordered = shutil.copytree(adapters[1], tmp_path / "b")  # peft saves target_modules in any order
    config = json.loads((reordered / "adapter_config.json").read_text())
    config["target_modules"] = sorted(config["target_modules"], reverse=True)
    (reordered / "adapter_config.json").write_text(json.dumps(config))
    soup = soup_adapters([adapters[0], reordered], tmp_path / "soup", [1.0, 0.0])
    alone = BioHiCL.from_pretrained(adapters[0], base_model_path=tiny_bert_dir).encode(TEXTS, show_progress_bar=False)
    loaded = BioHiCL.from_pretrained(soup, base_model_path=tiny_bert_dir)
    assert loaded.is_peft and loaded.config.pooling == "mean"
    np.testing.assert_allclose(loaded.encode(TEXTS, show_progress_bar=False), alone, rtol=0, atol=1e-6)


def test_soup_command_writes_an_equal_average(adapters, tiny_bert_dir, tmp_path, capsys):
    folders = ",".join(str(a) for a in adapters[:2])
    assert cli.main(["soup", "--adapters", folders, "--output", str(tmp_path / "soup")]) == 0
    out = capsys.readouterr().out
    assert out.count("soup of 2 adapters") == 1 and out.count(str(tmp_path / "soup")) == 1  # one line, not two
    assert json.loads((tmp_path / "soup" / "soup.json").read_text())["weights"] == [0.5, 0.5]
    assert cli.main(["soup", "--adapters", folders, "--output", str(tmp_path / "soup"), "--weights", "0.9,x"]) == 2
    assert "--weights: expected comma-separated numbers" in capsys.readouterr().err
    assert json.loads((tmp_path / "soup" / "soup.json").read_text())["weights"] == [0.5, 0.5]  # the soup is kept


def test_soup_command_refuses_an_output_that_is_a_file(adapters, tiny_bert_dir, tmp_path, capsys):
    folders = ",".join(str(a) for a in adapters[:2])
    texts = tmp_path / "texts.txt"
    texts.write_text("Insulin resistance in type 2 diabetes")
    assert cli.main(["soup", "--adapters", folders, "--output", str(texts)]) == 2
    err = capsys.readouterr().err
    assert f"--output {texts} is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    assert texts.read_text() == "Insulin resistance in type 2 diabetes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["texts.txt"]


def test_soup_refuses_adapters_that_do_not_add_up(adapters, tiny_bert_dir, tmp_path):
    import shutil

    a, b, _ = adapters
    with pytest.raises(ConfigError, match=r"^adapters: a soup needs at least two adapters, got 1$"):
        soup_adapters([a], tmp_path / "s")
    with pytest.raises(ConfigError, match=r"^weights: 3 given for 2 adapters$"):
        soup_adapters([a, b], tmp_path / "s", [0.2, 0.3, 0.5])
    with pytest.raises(ConfigError, match=r"weights: must be non-negative and sum to 1"):
        soup_adapters([a, b], tmp_path / "s", [0.7, 0.7])
    with pytest.raises(ConfigError, match=r"is one of the adapters being averaged"):
        soup_adapters([a, b], a)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"exists and is not a soup"):
        soup_adapters([a, b], tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"

    cls_pooled = tmp_path / "cls"
    model = BioHiCL.from_pretrained(b, base_model_path=tiny_bert_dir)
    model.config.pooling = "cls"
    model.save_pretrained(cls_pooled)
    with pytest.raises(ConfigError, match=r"cls/biohicl_config.json: pooling differs from .*/a's"):
        soup_adapters([a, cls_pooled], tmp_path / "s")

    dora = _adapter(tiny_bert_dir, tmp_path / "dora", seed=4, peft_config=_dora_config())
    with pytest.raises(ConfigError, match=r"dora: use_dora is set; a soup averages plain LoRA adapters only"):
        soup_adapters([a, dora], tmp_path / "s")

    broken = tmp_path / "broken"
    shutil.copytree(b, broken)
    config = json.loads((broken / "adapter_config.json").read_text())
    del config["r"]
    (broken / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"broken/adapter_config.json: r and lora_alpha must be numbers$"):
        soup_adapters([a, broken], tmp_path / "s")

    (tmp_path / "nothing").mkdir()
    with pytest.raises(
        ModelLoadError, match=r"nothing/biohicl_config\.json: missing \(a soup averages saved biohicl LoRA adapters\)$"
    ):
        soup_adapters([a, tmp_path / "nothing"], tmp_path / "s")
    assert not (tmp_path / "s").exists()  # nothing half-written


def _dora_config():
    from peft import LoraConfig

    return LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], use_dora=True)


def _lora_config(**kwargs):
    from peft import LoraConfig

    return LoraConfig(**{"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"], **kwargs})


PLAIN_ONLY = "{odd}: {field} is set; a soup averages plain LoRA adapters only"
ONE_RANK = "{odd}: {field} is set; a soup needs one rank and alpha per adapter"
SAME_ADAPTER = "{odd}/adapter_config.json: {field} differs from {first}'s; a soup's adapters must match"
SAME_ENCODER = "{odd}/biohicl_config.json: {field} differs from {first}'s; a soup's adapters must match"


@pytest.mark.parametrize(
    ("odd", "field", "message"),
    [
        pytest.param(
            {"lora_bias": True},
            "lora_bias",
            PLAIN_ONLY,
            marks=[
                pytest.mark.filterwarnings("ignore:Adapter 'default'.*invalid shape"),  # peft on lora_B.bias
                pytest.mark.skipif(not PEFT_HAS_LORA_BIAS, reason="LoraConfig(lora_bias=) arrived in peft 0.14"),
            ],
        ),
        ({"rank_pattern": {"query": 2}}, "rank_pattern", ONE_RANK),
        ({"alpha_pattern": {"value": 32}}, "alpha_pattern", ONE_RANK),
        ({"target_modules": ["query"]}, "target_modules", SAME_ADAPTER),
        ({"base": "another"}, "base_signature", SAME_ENCODER),  # other weights under the same Hub id
        ({"hub_id": "org/other-bert"}, "base_model", SAME_ENCODER),
    ],
    ids=["lora_bias", "rank_pattern", "alpha_pattern", "target_modules", "another_base", "another_base_id"],
)
def test_soup_refuses_an_adapter_it_cannot_add_up(adapters, tiny_bert_dir, tmp_path, odd, field, message):
    odd = dict(odd)
    base = build_tiny_bert(tmp_path / "another", seed=7) if odd.pop("base", None) else tiny_bert_dir
    hub_id = odd.pop("hub_id", HUB_ID)
    folder = _adapter(base, tmp_path / "odd", seed=5, hub_id=hub_id, peft_config=_lora_config(**odd))
    saved = json.loads((folder / "adapter_config.json").read_text())
    assert all(saved[key] == value for key, value in odd.items())  # peft saved what makes the adapter odd
    expected = message.format(odd=folder, field=field, first=adapters[0])
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        soup_adapters([adapters[0], folder], tmp_path / "soup")
    assert not (tmp_path / "soup").exists()


def test_same_base_matches_one_folder_in_its_forms_never_two_hub_ids(tmp_path, monkeypatch):
    (tmp_path / "bert").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "bert")
    monkeypatch.chdir(tmp_path)
    assert same_base("org/bert", "org/bert") and same_base(None, None)
    assert same_base("bert", str(tmp_path / "bert")) and same_base(str(tmp_path / "bert"), "./bert")
    assert same_base("gone", str(tmp_path / "gone"))  # the relative form of that absolute path, folder or not
    assert same_base(str(tmp_path / "link"), str(tmp_path / "bert"))  # one existing folder
    assert not same_base("org/bert", "org/other-bert") and not same_base("bert", "link-to-nothing")
    assert not same_base("bert", str(tmp_path / "sub" / "bert")) and not same_base(None, "bert")


def test_soup_takes_a_base_folder_recorded_as_typed_or_by_absolute_path(tiny_bert_dir, tmp_path, monkeypatch):
    # seeds of one recipe over one folder, trained before session 28 (base recorded as typed: "tiny-bert0") and after
    # (by absolute path): one base; another base is still refused
    folders = [_adapter(tiny_bert_dir, tmp_path / name, seed=seed, hub_id=None) for name, seed in (("a", 1), ("b", 2))]
    absolute = json.loads((folders[0] / "biohicl_config.json").read_text())["base_model"]
    assert absolute == str(tiny_bert_dir.resolve())
    reference = soup_adapters(folders, tmp_path / "reference")
    monkeypatch.chdir(tiny_bert_dir.parent)
    older = tmp_path / "older"
    shutil.copytree(folders[0], older)
    config = json.loads((older / "biohicl_config.json").read_text())
    (older / "biohicl_config.json").write_text(json.dumps({**config, "base_model": tiny_bert_dir.name}))
    adapter = json.loads((older / "adapter_config.json").read_text())
    (older / "adapter_config.json").write_text(json.dumps({**adapter, "base_model_name_or_path": tiny_bert_dir.name}))
    soup = soup_adapters([older, folders[1]], tmp_path / "soup")
    assert json.loads((soup / "biohicl_config.json").read_text())["base_model"] == absolute  # loads from anywhere
    assert json.loads((soup / "adapter_config.json").read_text())["base_model_name_or_path"] == absolute
    assert (soup / "adapter_model.safetensors").read_bytes() == (reference / "adapter_model.safetensors").read_bytes()
    monkeypatch.chdir(tmp_path)  # where "tiny-bert0" names nothing
    texts = ["the cancer of patients", "heart disease"]
    expected = BioHiCL.from_pretrained(reference).encode(texts, show_progress_bar=False)
    assert BioHiCL.from_pretrained(soup).encode(texts, show_progress_bar=False) == pytest.approx(expected, abs=1e-6)
    monkeypatch.chdir(tiny_bert_dir.parent)
    (older / "biohicl_config.json").write_text(json.dumps({**config, "base_model": "other-bert"}))
    expected = SAME_ENCODER.format(odd=folders[1], field="base_model", first=older)
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        soup_adapters([older, folders[1]], tmp_path / "other")


def test_soup_scales_rslora_adapters_by_alpha_over_sqrt_r(adapters, tiny_bert_dir, tmp_path):
    rs4 = _adapter(tiny_bert_dir, tmp_path / "rs4", seed=5, peft_config=_lora_config(use_rslora=True))
    rs2 = _adapter(tiny_bert_dir, tmp_path / "rs2", seed=6, peft_config=_lora_config(r=2, use_rslora=True))
    folders = [rs4, rs2, adapters[0]]  # two rsLoRA adapters of other ranks beside a plain one
    assert [json.loads((f / "adapter_config.json").read_text())["use_rslora"] for f in folders] == [True, True, False]
    base = BioHiCL.from_base(str(tiny_bert_dir), hub_id=HUB_ID).backbone.state_dict()
    merged = [_merged_weights(folder, tiny_bert_dir) for folder in folders]  # peft's merge_and_unload of each
    weights = [0.5, 0.3, 0.2]
    ours = _merged_weights(soup_adapters(folders, tmp_path / "soup", weights), tiny_bert_dir)
    changed = 0
    for key, value in base.items():
        expected = value + sum(w * (m[key] - value) for w, m in zip(weights, merged, strict=True))
        torch.testing.assert_close(ours[key], expected, rtol=0, atol=1e-6)
        changed += int(not torch.equal(value, expected))
    assert changed == 2 * 2  # query and value of both layers


@pytest.mark.skipif(
    importlib.util.find_spec("peft.utils.transformers_weight_conversion") is None,
    reason="SentenceTransformer(adapter folder) needs a peft with utils.transformers_weight_conversion",
)
def test_a_soup_loads_in_sentence_transformers_as_biohicl_encodes_it(tiny_bert_dir, tmp_path):
    """A soup folder had no modules.json, 1_Pooling or 2_Normalize, so SentenceTransformer(soup) pooled without
    normalising (row norms 5.6 and 7.1 on all-MiniLM-L6-v2) though its card is tagged sentence-transformers."""
    from sentence_transformers import SentenceTransformer

    folders = [_adapter(tiny_bert_dir, tmp_path / name, seed=seed, hub_id=None) for name, seed in (("a", 1), ("b", 2))]
    soup = soup_adapters(folders, tmp_path / "soup")
    expected = BioHiCL.from_pretrained(soup).encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1.0, atol=1e-6)
    got = SentenceTransformer(str(soup), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_soup_of_one_folder_recorded_by_hub_id_and_by_path_keeps_the_hub_id(tiny_bert_dir, tmp_path, monkeypatch):
    """`--base_model_hub_id org/bert` over the folder org/bert beside a seed trained without it (absolute path): one
    base, recorded by its Hub id in both config files, so the soup publishes."""
    shutil.copytree(tiny_bert_dir, tmp_path / "org" / "bert")
    monkeypatch.chdir(tmp_path)
    with_id = _adapter("org/bert", tmp_path / "h1", seed=1, hub_id="org/bert")
    without = _adapter("org/bert", tmp_path / "h2", seed=2, hub_id=None)
    assert json.loads((without / "biohicl_config.json").read_text())["base_model"] == str(tmp_path / "org" / "bert")
    soup = soup_adapters([without, with_id], tmp_path / "soup")
    assert json.loads((soup / "biohicl_config.json").read_text())["base_model"] == "org/bert"
    assert json.loads((soup / "adapter_config.json").read_text())["base_model_name_or_path"] == "org/bert"

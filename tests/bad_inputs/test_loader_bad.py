"""Loading on bad input: corrupt or truncated safetensors, an adapter for another base, unknown or misspelled model
names, a revision missing from the cache, pickle-only checkpoints, broken or misspelled configs. Each is one
:class:`ModelLoadError`/:class:`ConfigError` naming the file, repo or field; at the CLI one line and no output."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import types
import warnings
from pathlib import Path

import pytest
import torch
from conftest import build_tiny_bert

from biohicl.errors import ConfigError, ModelLoadError
from biohicl.models.model import BioHiCL
from biohicl.models.registry import Registry

SHA_A, SHA_B = "a" * 40, "b" * 40


def add_to_hub_cache(cache: Path, repo_id: str, folder: Path, commit: str) -> None:
    """huggingface_hub's cache layout: blobs/, snapshots/<sha>/ symlinks, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-loader")
    base = build_tiny_bert(root / "base")
    other = build_tiny_bert(root / "other-48", hidden_size=48, seed=1)
    model = BioHiCL.from_base(str(base), hub_id="org/tiny-bert", pooling="mean", max_length=64)
    model.add_lora(r=4, target_modules=["query", "value"], verbose=False)
    model.save_pretrained(root / "adapter")
    model.save_merged(root / "merged")
    (root / "texts.txt").write_text("insulin resistance\nheart disease\n")
    return types.SimpleNamespace(root=root, base=base, other=other, adapter=root / "adapter", merged=root / "merged",
                                 texts=root / "texts.txt")  # fmt: skip


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, models):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    add_to_hub_cache(cache, "org/tiny-merged", models.merged, SHA_A)
    return cache


def copy_with(folder: Path, dest: Path, name: str, data: bytes) -> Path:
    shutil.copytree(folder, dest)
    (dest / name).write_bytes(data)
    return dest


def encode_argv(model: str, out: Path, texts: Path) -> list[str]:
    return ["encode", "--model", model, "--input", str(texts), "--output", str(out), "--device", "cpu"]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_adapter_safetensors(models, tmp_path, run_cli, damage):
    data = (models.adapter / "adapter_model.safetensors").read_bytes()
    bad = data[: len(data) // 2] if damage == "truncated" else b"\x00" * 64
    folder = copy_with(models.adapter, tmp_path / "adapter", "adapter_model.safetensors", bad)
    with pytest.raises(ModelLoadError, match=r"adapter/adapter_model\.safetensors: unreadable safetensors file"):
        BioHiCL.from_pretrained(folder, base_model_path=models.base)
    config = json.loads((folder / "biohicl_config.json").read_text())
    (folder / "biohicl_config.json").write_text(json.dumps(dict(config, base_model=str(models.base))))
    out = tmp_path / "emb.safetensors"
    result = run_cli(encode_argv(str(folder), out, models.texts))
    assert "adapter_model.safetensors: unreadable safetensors file" in result.err
    assert not out.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_full_model_weights(models, tmp_path, run_cli, damage):
    data = (models.merged / "model.safetensors").read_bytes()
    bad = data[: len(data) // 2] if damage == "truncated" else b"garbage" * 8
    folder = copy_with(models.merged, tmp_path / "merged", "model.safetensors", bad)
    with pytest.raises(ModelLoadError, match=r"merged: unreadable safetensors weights model\.safetensors"):
        BioHiCL.from_pretrained(folder)
    out = tmp_path / "emb.safetensors"
    result = run_cli(encode_argv(str(folder), out, models.texts))
    assert "unreadable safetensors weights model.safetensors" in result.err and not out.exists()


def test_adapter_onto_a_base_of_another_size(models):
    with pytest.raises(ModelLoadError, match=r"hidden size 32, but .* has hidden size 48"):
        BioHiCL.from_pretrained(models.adapter, base_model_path=models.other)


def test_adapter_whose_configs_disagree_on_the_base(models, tmp_path):
    folder = tmp_path / "adapter"
    shutil.copytree(models.adapter, folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "BAAI/bge-base-en-v1.5"
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"adapter_config\.json says base 'BAAI/bge-base-en-v1\.5'"):
        BioHiCL.from_pretrained(folder, base_model_path=models.base)


def test_adapter_for_another_registered_base(models, hub_cache):
    add_to_hub_cache(hub_cache, "org/tiny-adapter", models.adapter, SHA_B)
    registry = Registry.from_data({"models": [{"name": "Tiny", "repo_id": "org/tiny-adapter", "kind": "adapter",
                                               "base_model": "org/other-base"}]})  # fmt: skip
    with pytest.raises(ModelLoadError, match="adapter was trained on 'org/tiny-bert' but the registry entry Tiny"):
        BioHiCL.from_pretrained("Tiny", registry=registry)


def test_broken_adapter_config_json(models, tmp_path):
    folder = copy_with(models.adapter, tmp_path / "adapter", "adapter_config.json", b'{"r": 4,')
    with pytest.raises(ModelLoadError, match=r"adapter_config\.json: line 1: not valid JSON \(.* at column 9\)$"):
        BioHiCL.from_pretrained(folder, base_model_path=models.base)


def test_misspelled_field_in_biohicl_config(models, tmp_path):
    config = json.loads((models.adapter / "biohicl_config.json").read_text())
    config["poolling"] = config.pop("pooling")
    folder = copy_with(models.adapter, tmp_path / "adapter", "biohicl_config.json", json.dumps(config).encode())
    with pytest.raises(ConfigError, match=r"biohicl_config\.json: unknown field\(s\) poolling"):
        BioHiCL.from_pretrained(folder, base_model_path=models.base)


def test_bad_value_in_biohicl_config(models, tmp_path):
    config = json.loads((models.adapter / "biohicl_config.json").read_text())
    folder = copy_with(models.adapter, tmp_path / "adapter", "biohicl_config.json",
                       json.dumps(dict(config, pooling="max")).encode())  # fmt: skip
    with pytest.raises(ConfigError, match="pooling: 'max' is not one of cls, mean"):
        BioHiCL.from_pretrained(folder, base_model_path=models.base)


def test_missing_adapter_weights(models, tmp_path):
    folder = tmp_path / "adapter"
    shutil.copytree(models.adapter, folder)
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"adapter_model\.safetensors is missing"):
        BioHiCL.from_pretrained(folder, base_model_path=models.base)


def test_broken_model_config_json(models, tmp_path):
    folder = copy_with(models.merged, tmp_path / "merged", "config.json", b"{not json")
    with pytest.raises(ModelLoadError, match=r"config\.json' is not a valid JSON file"):
        BioHiCL.from_pretrained(folder)


def test_unknown_and_misspelled_model_names(hub_cache, tmp_path, run_cli, models):
    with pytest.raises(ModelLoadError, match=r"unknown model name 'BioHiCL-Bse' \(did you mean BioHiCL-Base"):
        BioHiCL.from_pretrained("BioHiCL-Bse")
    out = tmp_path / "emb.safetensors"
    result = run_cli(encode_argv("BioHiCL-Lrge", out, models.texts))
    assert "unknown model name 'BioHiCL-Lrge' (did you mean BioHiCL-Large" in result.err and not out.exists()
    result = run_cli(encode_argv("no-such-org/no-such-model", out, models.texts))
    assert "no-such-org/no-such-model at revision main is not in the Hugging Face cache" in result.err


def test_revision_not_in_the_cache(hub_cache, tmp_path, run_cli, models):
    assert BioHiCL.from_pretrained("org/tiny-merged").resolved.commit == SHA_A
    with pytest.raises(ModelLoadError, match=f"org/tiny-merged at revision {SHA_B} is not in the Hugging Face cache"):
        BioHiCL.from_pretrained("org/tiny-merged", revision=SHA_B)
    out = tmp_path / "emb.safetensors"
    result = run_cli(encode_argv(f"org/tiny-merged@{SHA_B}", out, models.texts))
    assert f"at revision {SHA_B} is not in the Hugging Face cache" in result.err and not out.exists()
    result = run_cli(encode_argv("org/tiny-merged@v9.9", out, models.texts))
    assert "at revision v9.9 is not in the Hugging Face cache" in result.err


def test_pickle_only_checkpoint_is_refused(models, tmp_path, run_cli):
    folder = tmp_path / "pickled"
    shutil.copytree(models.merged, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"weight": torch.zeros(2)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"only pickle weights \(\*\.bin\) found; biohicl loads safetensors only"):
        BioHiCL.from_pretrained(folder)
    out = tmp_path / "emb.safetensors"
    result = run_cli(encode_argv(str(folder), out, models.texts))
    assert "biohicl loads safetensors only" in result.err and not out.exists()


def test_a_file_where_a_model_folder_is_expected(models, tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file; expected a model directory"):
        BioHiCL.from_pretrained(str(file))


# ---------------------------------------------------------------------- the base an adapter records (issue #16)
def tiny_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "title": "", "text": "insulin resistance"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "insulin"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return folder


def test_adapter_onto_another_base_of_the_same_shape_is_refused(models, tmp_path, run_cli):
    same_shape = build_tiny_bert(tmp_path / "same-shape", seed=7)  # same config, other weights
    with pytest.raises(ModelLoadError, match=r"this base is not org/tiny-bert, the one the adapter was trained on"):
        BioHiCL.from_pretrained(models.adapter, base_model_path=same_shape)
    with pytest.raises(ModelLoadError, match=r"force it with force_base=True \(biohicl evaluate --force_base\)$"):
        BioHiCL.from_pretrained(models.adapter, base_model_path=same_shape)
    out = tmp_path / "results.json"
    argv = ["evaluate", str(models.adapter), "--base_model_path", str(same_shape), "--tasks",
            str(tiny_beir(tmp_path / "beir")), "--output", str(out), "--no_progress"]  # fmt: skip
    result = run_cli(argv)
    assert "the one the adapter was trained on" in result.err and not out.exists()


def test_a_base_model_path_that_does_not_exist_is_named_not_called_another_base(models, tmp_path, run_cli):
    missing = tmp_path / "nonexistent"
    with pytest.raises(ModelLoadError, match=rf"^base_model_path: {re.escape(str(missing))} does not exist$"):
        BioHiCL.from_pretrained(models.adapter, base_model_path=missing)
    out = tmp_path / "results.json"
    argv = ["evaluate", str(models.adapter), "--base_model_path", str(missing), "--tasks",
            str(tiny_beir(tmp_path / "beir")), "--output", str(out), "--no_progress"]  # fmt: skip
    result = run_cli(argv)
    assert f"base_model_path: {missing} does not exist" in result.err and not out.exists()


def test_adapter_onto_a_base_with_more_layers_is_refused(models, tmp_path):
    from transformers import BertConfig, BertModel

    deeper = tmp_path / "deeper"
    shutil.copytree(models.base, deeper)
    config = BertConfig.from_pretrained(models.base)
    config.num_hidden_layers = 4
    BertModel(config).save_pretrained(deeper)
    with pytest.raises(ModelLoadError, match="num_hidden_layers 4 where the adapter's base has 2"):
        BioHiCL.from_pretrained(models.adapter, base_model_path=deeper)
    # an adapter saved before biohicl recorded base_signature: its LoRA layers are counted
    old = tmp_path / "old-adapter"
    shutil.copytree(models.adapter, old)
    values = json.loads((old / "biohicl_config.json").read_text())
    del values["base_signature"]
    (old / "biohicl_config.json").write_text(json.dumps(values))
    with pytest.raises(ModelLoadError, match="adapter has LoRA weights for 2 layers, but the base has 4"):
        BioHiCL.from_pretrained(old, base_model_path=deeper)


def test_force_base_loads_onto_another_base_with_a_warning(models, tmp_path):
    same_shape = build_tiny_bert(tmp_path / "same-shape", seed=7)
    with pytest.warns(UserWarning, match=r"loading it anyway \(force_base\)"):
        model = BioHiCL.from_pretrained(models.adapter, base_model_path=same_shape, force_base=True)
    assert model.is_peft
    # the base it was trained on loads without a word, also in another dtype
    BioHiCL.from_pretrained(models.adapter, base_model_path=models.base, dtype=torch.bfloat16)


def test_force_base_still_refuses_a_base_of_another_hidden_size(models):
    # docs/hub.md: shapes that cannot load are refused even with force_base, in one line and without the warning
    # that force_base gives a base of the right shape
    expected = (
        f"{models.adapter}: adapter was trained for a base with hidden size 32, but org/tiny-bert has hidden size 48 "
        "(encoder.layer.0.attention.self.query)"
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*force_base")
        with pytest.raises(ModelLoadError) as raised:
            BioHiCL.from_pretrained(models.adapter, base_model_path=models.other, force_base=True)
    assert str(raised.value) == expected

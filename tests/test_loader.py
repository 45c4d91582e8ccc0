"""BioHiCL.from_pretrained by name, repo id and path, offline through a temporary Hugging Face cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build_tiny_bert, randomize_lora_b

from biohicl.errors import ModelLoadError
from biohicl.models.model import BioHiCL, load_model
from biohicl.models.registry import Registry, RegistryEntry
from biohicl.models.resolver import resolve, split_revision

SHA_A = "a" * 40
SHA_B = "b" * 40
SHA_C = "c" * 40
TEXTS = ["insulin resistance in diabetes", "heart disease and the brain", "cancer cells"]


def add_to_hub_cache(cache: Path, repo_id: str, folder: Path, commit: str, ref: str | None = "main") -> Path:
    """Lay ``folder`` out exactly as huggingface_hub's cache does: blobs/, snapshots/<sha>/ symlinks, refs/<ref>."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if ref is not None:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A tiny base, a LoRA adapter trained on it (non-zero B), its merged export and the reference embeddings."""
    root = tmp_path_factory.mktemp("loader-artifacts")
    base_dir = build_tiny_bert(root / "tiny-bert")
    other_dir = build_tiny_bert(root / "tiny-bert-48", hidden_size=48, seed=1)
    model = BioHiCL.from_base(str(base_dir), hub_id="org/tiny-bert", pooling="mean", max_length=64)
    model.add_lora(r=4, alpha=8, target_modules=["query", "value"], verbose=False)
    torch.manual_seed(3)
    randomize_lora_b(model, std=0.5)
    model.eval()
    adapter_dir = root / "adapter"
    model.save_pretrained(adapter_dir)
    merged_dir = root / "merged"
    model.save_merged(merged_dir)
    return types.SimpleNamespace(
        base=base_dir,
        other=other_dir,
        adapter=adapter_dir,
        merged=merged_dir,
        expected=model.encode(TEXTS, show_progress_bar=False),
    )


@pytest.fixture
def cached(hub_cache, artifacts):
    """The hub cache holding org/tiny-bert (base), org/tiny-adapter (two commits) and org/tiny-merged."""
    add_to_hub_cache(hub_cache, "org/tiny-bert", artifacts.base, SHA_A)
    add_to_hub_cache(hub_cache, "org/tiny-adapter", artifacts.adapter, SHA_B)
    add_to_hub_cache(hub_cache, "org/tiny-merged", artifacts.merged, SHA_C)
    return hub_cache


def _registry(**overrides) -> Registry:
    entries = [
        {"name": "Tiny-Adapter", "repo_id": "org/tiny-adapter", "kind": "adapter", "base_model": "org/tiny-bert"},
        {
            "name": "Tiny-Merged",
            "repo_id": "org/tiny-merged",
            "kind": "merged",
            "base_model": "org/tiny-bert",
            "pooling": "mean",
            "max_length": 64,
        },
    ]
    entries[0].update(overrides)
    return Registry.from_data({"models": entries})


def test_resolve_by_path(artifacts):
    resolved = resolve(artifacts.adapter)
    assert (resolved.source, resolved.path, resolved.repo_id) == ("path", artifacts.adapter, None)
    model = BioHiCL.from_pretrained(str(artifacts.adapter), base_model_path=artifacts.base)
    assert isinstance(model, BioHiCL)
    np.testing.assert_allclose(model.encode(TEXTS, show_progress_bar=False), artifacts.expected, atol=1e-6)


def test_revision_on_a_local_folder_is_refused(artifacts):
    with pytest.raises(ModelLoadError, match="only applies to Hub repos"):
        resolve(artifacts.adapter, SHA_A)


def test_resolve_adapter_by_repo_id_offline_from_the_cache(cached, artifacts):
    resolved = resolve("org/tiny-adapter")
    assert resolved.source == "repo"
    assert resolved.path == cached / "models--org--tiny-adapter" / "snapshots" / SHA_B
    assert resolved.commit == SHA_B
    # the base (org/tiny-bert) is also read from the cache, via the Hub id recorded in the adapter
    model = BioHiCL.from_pretrained("org/tiny-adapter")
    assert model.resolved.commit == SHA_B
    assert model.config.kind == "adapter" and model.config.base_model == "org/tiny-bert"
    np.testing.assert_allclose(model.encode(TEXTS, show_progress_bar=False), artifacts.expected, atol=1e-6)
    merged = BioHiCL.from_pretrained("org/tiny-adapter", merge=True)
    np.testing.assert_allclose(merged.encode(TEXTS, show_progress_bar=False), artifacts.expected, atol=1e-5)


def test_resolve_by_registered_name_is_case_insensitive(cached, artifacts):
    registry = _registry()
    with pytest.warns(UserWarning, match=f"pins no commit for org/tiny-adapter; loaded branch main at {SHA_B}"):
        model = BioHiCL.from_pretrained("tiny-ADAPTER", registry=registry)
    assert model.resolved.source == "name" and model.resolved.repo_id == "org/tiny-adapter"
    np.testing.assert_allclose(model.encode(TEXTS, show_progress_bar=False), artifacts.expected, atol=1e-6)


def test_registry_settings_apply_to_a_merged_checkpoint_without_biohicl_config(cached, artifacts, hub_cache):
    # A merged repo as the paper released it: transformers files only, no biohicl_config.json, no 1_Pooling.
    plain = hub_cache.parent / "plain"
    shutil.copytree(artifacts.merged, plain)
    st_files = ["modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"]
    for extra in ["biohicl_config.json", *st_files]:
        (plain / extra).unlink()
    shutil.rmtree(plain / "1_Pooling")
    shutil.rmtree(plain / "2_Normalize", ignore_errors=True)
    add_to_hub_cache(hub_cache, "org/plain-merged", plain, SHA_A)
    registry = Registry.from_data(
        {
            "models": [
                {
                    "name": "Plain",
                    "repo_id": "org/plain-merged",
                    "kind": "merged",
                    "base_model": "org/tiny-bert",
                    "revision": SHA_A,
                    "pinned": True,
                    "pooling": "cls",
                    "max_length": 64,
                    "query_prompt": "q: ",
                }
            ]
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pinned: no warning
        model = BioHiCL.from_pretrained("plain", registry=registry)
    assert model.resolved.commit == SHA_A
    cfg = model.config
    assert (cfg.pooling, cfg.query_prompt, cfg.kind, cfg.base_model) == ("cls", "q: ", "merged", "org/tiny-bert")
    # CLS pooling of the query-prompted text, computed by hand from the transformers model
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(plain)
    reference = AutoModel.from_pretrained(plain).eval()
    batch = tokenizer(["q: " + t for t in TEXTS], padding=True, return_tensors="pt")
    with torch.no_grad():
        cls = reference(**batch).last_hidden_state[:, 0]
    cls = torch.nn.functional.normalize(cls, dim=-1).numpy()
    np.testing.assert_allclose(model.encode(TEXTS, kind="query", show_progress_bar=False), cls, atol=1e-5)
    # the same snapshot loaded by its folder encodes as the registered name does (it fell back to mean pooling)
    by_folder = BioHiCL.from_pretrained(model.resolved.path, registry=registry)
    assert (by_folder.config.pooling, by_folder.config.query_prompt) == ("cls", "q: ")
    np.testing.assert_allclose(by_folder.encode(TEXTS, kind="query", show_progress_bar=False), cls, atol=1e-5)


def test_repo_id_of_a_registered_model_uses_its_registry_entry(cached):
    with pytest.warns(UserWarning, match="Tiny-Merged"):
        resolved = resolve("ORG/tiny-merged", registry=_registry())
    assert resolved.entry is not None and resolved.entry.name == "Tiny-Merged"


def test_pinned_revision_selects_that_snapshot(cached, artifacts, hub_cache):
    # main now points at a newer commit; the registry pins the older one.
    newer = hub_cache.parent / "newer"
    build_tiny_bert(newer, seed=7)
    add_to_hub_cache(hub_cache, "org/tiny-bert", newer, SHA_C)
    registry = Registry.from_data(
        {
            "models": [
                {"name": "Base", "repo_id": "org/tiny-bert", "kind": "merged", "base_model": "org/tiny-bert"},
                {
                    "name": "Base-Pinned",
                    "repo_id": "org/tiny-bert",
                    "kind": "merged",
                    "base_model": "org/tiny-bert",
                    "revision": SHA_A,
                    "pinned": True,
                },
            ]
        }
    )
    assert resolve("base-pinned", registry=registry).commit == SHA_A
    with pytest.warns(UserWarning):
        assert resolve("base", registry=registry).commit == SHA_C
    assert resolve("base", SHA_A, registry=registry).commit == SHA_A  # an explicit revision wins
    assert resolve("org/tiny-bert", SHA_A).path.name == SHA_A


def test_a_revision_is_what_follows_the_first_at_sign(tmp_path):
    """A Hub repo id has no ``@`` (huggingface_hub's validate_repo_id: letters, digits, ``-_.``) while a git branch
    may (``git check-ref-format --branch feat@x``): ``org/model@feat@x`` is branch ``feat@x`` of ``org/model``, not
    branch ``x`` of a repo ``org/model@feat`` that cannot exist."""
    from biohicl.errors import ModelLoadError
    from biohicl.models.resolver import resolve_base

    assert split_revision("org/model@feat@x") == ("org/model", "feat@x")
    assert split_revision("BioHiCL-Base@v1@rc") == ("BioHiCL-Base", "v1@rc")
    assert split_revision("org/model@main") == ("org/model", "main")
    for spec in ("org/model", "org/model@", "@main"):
        assert split_revision(spec) == (spec, None)
    folder = tmp_path / "runs@2" / "model@v1"  # an existing path is never split, whatever its @ signs
    folder.mkdir(parents=True)
    assert split_revision(str(folder)) == (str(folder), None)
    with pytest.raises(ModelLoadError) as raised:
        resolve_base("org/model@feat@x")
    assert str(raised.value) == (
        "org/model@feat@x: a base model takes its revision apart: --base_model org/model --base_revision feat@x "
        '(revision="feat@x" in Python)'
    )


def test_load_model_accepts_name_at_revision(cached, artifacts):
    assert split_revision("org/tiny-adapter@" + SHA_B) == ("org/tiny-adapter", SHA_B)
    assert split_revision(str(artifacts.adapter)) == (str(artifacts.adapter), None)
    model = load_model("org/tiny-adapter@" + SHA_B)
    assert model.resolved.commit == SHA_B
    np.testing.assert_allclose(model.encode(TEXTS, show_progress_bar=False), artifacts.expected, atol=1e-6)


def test_missing_from_cache_offline_says_what_and_how_to_fetch(hub_cache):
    with pytest.raises(ModelLoadError) as info:
        BioHiCL.from_pretrained("org/not-cached", revision=SHA_A)
    message = str(info.value)
    assert f"org/not-cached at revision {SHA_A} is not in the Hugging Face cache ({hub_cache})" in message
    assert "HF_HUB_OFFLINE is set" in message
    assert f"hf download org/not-cached --revision {SHA_A}" in message


def test_revision_missing_from_cache_is_named(cached):
    with pytest.raises(ModelLoadError, match=f"org/tiny-adapter at revision {SHA_C} is not in the Hugging Face cache"):
        resolve("org/tiny-adapter", SHA_C)


def test_registered_name_not_cached_names_the_repo(hub_cache):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the unpinned-branch warning comes once a commit is loaded, not before
        with pytest.raises(ModelLoadError, match="LunaLan07/BioHiCL-Base at revision "):
            BioHiCL.from_pretrained("BioHiCL-Base")


@pytest.mark.parametrize(("spec", "revision"), [("biohicl-minilm", None), ("BioHiCL-MiniLM", SHA_C)])
def test_unpublished_registered_model_says_so(hub_cache, spec, revision):
    # it used to warn about the unpinned branch, look in the cache, and end with "fetch it once with `hf download
    # biohicl/BioHiCL-MiniLM-L6`", a repo the same message had just said does not exist (its repo id, which an
    # installed registry may list as unpublished after the upload, loads: tests/test_unpublished_repo.py)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ModelLoadError) as err:
            BioHiCL.from_pretrained(spec, revision=revision)
    assert str(err.value) == (
        "BioHiCL-MiniLM (biohicl/BioHiCL-MiniLM-L6) has not been published to the Hub yet; train it (`biohicl "
        "build-dataset --output runs/study/dataset`, then `biohicl train --config configs/biohicl_minilm.yaml`, see "
        "docs/training.md) and load the run folder by path (if it has since been uploaded, load "
        "biohicl/BioHiCL-MiniLM-L6)"
    )
    assert (Path(__file__).parents[1] / "configs/biohicl_minilm.yaml").is_file()


def test_unpublished_entry_without_a_config_says_so_without_one():
    entry = RegistryEntry(name="X", repo_id="org/x", kind="adapter", base_model="org/base", uploaded=False)
    with pytest.raises(ModelLoadError) as err:
        resolve("x", registry=Registry([entry]))
    assert str(err.value) == (
        "X (org/x) has not been published to the Hub yet; train it (see docs/training.md) "
        "and load the run folder by path (if it has since been uploaded, load org/x)"
    )


def test_shipped_names_resolve_through_the_cache(hub_cache, artifacts):
    add_to_hub_cache(hub_cache, "LunaLan07/BioHiCL-Base", artifacts.merged, SHA_C)
    with pytest.warns(UserWarning, match="BioHiCL-Base"):
        resolved = resolve("biohicl-base")
    assert (resolved.repo_id, resolved.commit, resolved.entry.pooling) == ("LunaLan07/BioHiCL-Base", SHA_C, "cls")


def test_unknown_name_lists_known_names(hub_cache):
    with pytest.raises(ModelLoadError, match=r"'BioHiCL-Lage' \(did you mean BioHiCL-Large.*known names: BioHiCL-Base"):
        BioHiCL.from_pretrained("BioHiCL-Lage")


def test_missing_local_path_is_not_sent_to_the_hub(hub_cache):
    with pytest.raises(ModelLoadError, match="no such directory"):
        resolve("./runs/does-not-exist")
    with pytest.raises(ModelLoadError, match="no local directory 'runs/missing' either"):
        resolve("runs/missing")


def test_adapter_onto_a_base_of_another_hidden_size_fails_clearly(artifacts):
    with pytest.raises(ModelLoadError, match=r"hidden size 32, but .* has hidden size 48"):
        BioHiCL.from_pretrained(str(artifacts.adapter), base_model_path=artifacts.other)


def test_adapter_onto_another_base_id_fails_clearly(cached, artifacts):
    with pytest.raises(ModelLoadError, match="trained on base 'org/tiny-bert', not 'org/other-bert'"):
        BioHiCL.from_pretrained("org/tiny-adapter", base_model_path="org/other-bert")


def test_registry_base_mismatch_fails_clearly(cached):
    registry = _registry(base_model="sentence-transformers/all-MiniLM-L6-v2")
    with (
        pytest.warns(UserWarning),
        pytest.raises(ModelLoadError, match="trained on 'org/tiny-bert' but the registry entry Tiny-Adapter says"),
    ):
        BioHiCL.from_pretrained("tiny-adapter", registry=registry)


def test_registry_adapter_kind_without_adapter_files_fails(cached):
    registry = _registry(repo_id="org/tiny-merged", name="Wrong")
    with pytest.warns(UserWarning), pytest.raises(ModelLoadError, match="registry lists an adapter"):
        BioHiCL.from_pretrained("wrong", registry=registry)


def test_pickle_only_checkpoints_are_refused(tmp_path, artifacts):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(artifacts.base / "config.json", folder / "config.json")
    torch.save({"x": torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors only"):
        BioHiCL.from_pretrained(folder)


def test_from_base_on_a_registered_model_takes_its_registry_settings(hub_cache, artifacts):
    # `biohicl train --base_model LunaLan07/BioHiCL-Base`: from_base read only the folder (mean pooling, no prompt)
    # while from_pretrained applies the registry entry (cls pooling, the query prompt); a registered NAME was looked
    # up on the Hub as a repo id of its own
    folder = hub_cache.parent / "st-merged"
    shutil.copytree(artifacts.merged, folder)
    (folder / "biohicl_config.json").unlink()  # the sentence-transformers files say: mean, 64 tokens, no prompts
    add_to_hub_cache(hub_cache, "org/tiny-merged", folder, SHA_C)
    entry = {"name": "Tiny-Merged", "repo_id": "org/tiny-merged", "kind": "merged", "base_model": "org/tiny-bert"}
    entry.update(revision=SHA_C, pinned=True, pooling="cls", max_length=32, query_prompt="q: ", normalize=False)
    registry = Registry.from_data({"models": [entry]})
    reference = BioHiCL.from_pretrained("Tiny-Merged", registry=registry)
    settings = ("cls", 32, "q: ", "", False)
    for spec in ("org/tiny-merged", "tiny-merged", "Tiny-Merged"):
        model = BioHiCL.from_base(spec, registry=registry)
        cfg = model.config
        assert (cfg.pooling, cfg.max_length, cfg.query_prompt, cfg.document_prompt, cfg.normalize) == settings, spec
        assert cfg.base_model == "org/tiny-merged"
        np.testing.assert_array_equal(model.encode(TEXTS, kind="query"), reference.encode(TEXTS, kind="query"))
    explicit = BioHiCL.from_base("Tiny-Merged", registry=registry, pooling="mean", query_prompt="", max_length=16)
    assert (explicit.config.pooling, explicit.config.query_prompt, explicit.config.max_length) == ("mean", "", 16)


def test_from_base_resolves_a_registered_name_to_its_repo_id(hub_cache):
    with pytest.raises(ModelLoadError, match=r"^LunaLan07/BioHiCL-Base at revision main is not in the Hugging Face"):
        BioHiCL.from_base("BioHiCL-Base")  # it asked for `hf download BioHiCL-Base`, a repo id that does not exist
    with pytest.raises(ModelLoadError, match=r"^BioHiCL-MiniLM \(biohicl/BioHiCL-MiniLM-L6\) has not been published"):
        BioHiCL.from_base("biohicl-minilm")


def test_from_base_on_a_cached_hub_id_records_the_snapshot_commit(cached, artifacts):
    # it recorded base_revision None (or the branch asked for) although the snapshot it loaded is a known commit
    for spec, revision in [("org/tiny-bert", None), ("org/tiny-bert", "main"), ("org/tiny-bert", SHA_A)]:
        model = BioHiCL.from_base(spec, revision=revision)
        assert (model.config.base_model, model.config.base_revision) == ("org/tiny-bert", SHA_A), revision
    snapshot = cached / "models--org--tiny-bert" / "snapshots" / SHA_A
    assert BioHiCL.from_base(str(snapshot)).config.base_revision == SHA_A  # the snapshot folder itself
    model = BioHiCL.from_base("org/tiny-bert")
    model.add_lora(r=2, verbose=False)
    assert model.config.base_revision == SHA_A and model.backbone.peft_config["default"].base_model_name_or_path
    assert BioHiCL.from_base(str(artifacts.base)).config.base_revision is None  # a plain folder has no commit
    assert BioHiCL.from_base(str(snapshot), hub_id="org/other").config.base_revision is None  # named as another repo

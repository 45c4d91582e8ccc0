"""The shipped model registry and its validation."""

from __future__ import annotations

import json

import pytest

from biohicl.errors import ConfigError, ModelLoadError
from biohicl.models.registry import Registry, RegistryEntry, default_registry, get_entry, is_commit_sha, known_names

SHA = "0123456789abcdef0123456789abcdef01234567"


def _entry(**overrides):
    values = {"name": "X", "repo_id": "org/x", "kind": "adapter", "base_model": "org/base"}
    values.update(overrides)
    return values


def test_shipped_registry_has_the_paper_checkpoints_and_our_adapter():
    assert known_names() == ["BioHiCL-Base", "BioHiCL-Large", "BioHiCL-MiniLM"]
    base = get_entry("biohicl-base")
    assert base.repo_id == "LunaLan07/BioHiCL-Base"
    assert (base.kind, base.base_model, base.pooling, base.max_length) == (
        "merged",
        "BAAI/bge-base-en-v1.5",
        "cls",
        512,
    )
    assert base.query_prompt == "Represent this sentence for searching relevant passages: "
    assert get_entry("BIOHICL-LARGE").repo_id == "LunaLan07/BioHiCL-Large"
    assert "UNVERIFIED" in get_entry("BioHiCL-Large").notes
    minilm = get_entry("BioHiCL-MiniLM")
    assert (minilm.kind, minilm.base_model, minilm.pooling, minilm.uploaded) == (
        "adapter",
        "sentence-transformers/all-MiniLM-L6-v2",
        "mean",
        False,
    )


def test_shipped_registry_follows_the_revision_policy():
    for entry in default_registry():
        if entry.pinned:
            assert is_commit_sha(entry.revision), entry.name
            assert entry.default_revision == entry.revision
        else:
            assert entry.revision is None or is_commit_sha(entry.revision), entry.name
            assert entry.default_revision is None  # resolve `main` (and warn)


def test_commit_sha_validation():
    assert is_commit_sha(SHA)
    assert not is_commit_sha(SHA[:-1])
    assert not is_commit_sha(SHA.upper())
    assert not is_commit_sha("main")
    assert not is_commit_sha(None)


def test_pinned_entry_defaults_to_its_sha():
    entry = RegistryEntry(**_entry(revision=SHA, pinned=True))
    assert entry.default_revision == SHA
    # a known sha that is not yet marked pinned still resolves `main`
    assert RegistryEntry(**_entry(revision=SHA)).default_revision is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"revision": "main"}, "'revision'"),
        ({"revision": SHA[:12]}, "'revision'"),
        ({"pinned": True}, "'revision'"),
        ({"base_revision": "v1"}, "'base_revision'"),
        ({"kind": "lora"}, "'kind'"),
        ({"pooling": "max"}, "'pooling'"),
        ({"repo_id": "no-owner"}, "'repo_id'"),
        ({"base_model": "/home/me/models/bert"}, "'base_model'"),
        ({"max_length": 0}, "'max_length'"),
    ],
)
def test_invalid_entries_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        RegistryEntry.from_dict(_entry(**overrides))


def test_unknown_field_suggests_the_right_one():
    with pytest.raises(ConfigError, match=r"unknown field 'poolng' \(did you mean 'pooling'\?\)"):
        Registry.from_data({"models": [_entry(poolng="cls")]})


def test_duplicate_names_are_case_insensitive():
    with pytest.raises(ConfigError, match="duplicate name 'x'"):
        Registry.from_data({"models": [_entry(), _entry(name="x", repo_id="org/y")]})


def test_lookup_by_name_and_repo_id():
    registry = Registry.from_data({"models": [_entry(), _entry(name="Other", repo_id="Org/Other")]})
    assert registry.lookup("other").repo_id == "Org/Other"
    assert registry.by_repo_id("org/other").name == "Other"
    assert registry.by_repo_id("org/none") is None
    assert "OTHER" in registry and "none" not in registry
    assert len(registry) == 2


def test_unknown_name_lists_known_names_and_close_matches():
    with pytest.raises(ModelLoadError) as info:
        default_registry().get("BioHiCL-Bas")
    message = str(info.value)
    assert "unknown model name 'BioHiCL-Bas' (did you mean BioHiCL-Base" in message
    assert "known names: BioHiCL-Base, BioHiCL-Large, BioHiCL-MiniLM" in message
    with pytest.raises(ModelLoadError, match=r"unknown model name 'zzz'; known names"):
        default_registry().get("zzz")


def test_from_file_reports_bad_json(tmp_path):
    bad = tmp_path / "registry.json"
    bad.write_text('{"models": [')
    with pytest.raises(ConfigError, match=r"registry\.json: line 1: not valid JSON \(Expecting value at column 13\)$"):
        Registry.from_file(bad)
    good = tmp_path / "ok.json"
    good.write_text(json.dumps({"models": [_entry()]}))
    assert Registry.from_file(good).names() == ["X"]

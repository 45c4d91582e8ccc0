"""The dry run's model check (``biohicl.study.preflight.model_check``, of ``biohicl reproduce --dry_run`` and
``biohicl train --dry_run``) finds an adapter's base by the run's own rule: an adapter from the Hub (a snapshot of the
Hugging Face cache) names its base by Hub id only, never a folder of this machine
(``biohicl.models.resolver.adapter_base_finder``, ``check_hub_adapter_base``), so the dry run refuses what the run
refuses; a local adapter's folder base still passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from biohicl.errors import ModelLoadError
from biohicl.models.model import BioHiCL
from biohicl.study.preflight import model_check
from tests.conftest import build_tiny_bert, save_tiny_adapter_run
from tests.test_hub_adapter_bases import edit_json, plain_peft_adapter
from tests.test_loader import add_to_hub_cache

SHA = "e" * 40


def _hub_adapter(tmp_path: Path, hub_cache: Path, kind: str, base: str) -> Path:
    """A LoRA adapter over a tiny BERT in the Hub cache as ``owner/adapter``, its configs naming ``base``; a plain
    one is what peft's ``save_pretrained`` leaves (no biohicl or sentence-transformers files)."""
    run = save_tiny_adapter_run(tmp_path)
    if kind == "plain":
        plain_peft_adapter(run)
    else:
        edit_json(run / "biohicl_config.json", base_model=base)
    edit_json(run / "adapter_config.json", base_model_name_or_path=base)
    return add_to_hub_cache(hub_cache, "owner/adapter", run, SHA)


def _run_refusal(spec: str) -> str:
    with pytest.raises(ModelLoadError) as err:
        BioHiCL.from_pretrained(spec)
    return str(err.value)


@pytest.mark.parametrize("spelled", ["base", "work/base"])
@pytest.mark.parametrize("kind", ["biohicl", "plain"])
def test_a_hub_adapters_relative_base_is_a_hub_id_to_the_dry_run_too(tmp_path, hub_cache, monkeypatch, spelled, kind):
    # the dry run resolved the recorded base "base" (or "work/base") as the folder of the working directory and
    # passed ("ok ... its base base → base"), while the run reads it as a Hub id and refuses it offline
    snapshot = _hub_adapter(tmp_path, hub_cache, kind, spelled)
    monkeypatch.chdir(tmp_path)
    if not (tmp_path / spelled).is_dir():  # the name is a folder of the working directory (base: the adapter's)
        build_tiny_bert(tmp_path / spelled)
    refusal = _run_refusal("owner/adapter")
    assert f"{spelled} at revision main is not in the Hugging Face cache" in refusal
    for spec in ("owner/adapter", str(snapshot)):
        check = model_check("model m", spec)
        prefix = f"{spec} is an adapter; its base {spelled} cannot be loaded offline ("
        assert not check.ok and check.detail.startswith(prefix), check.detail
        assert check.detail.endswith(")") and check.detail[len(prefix) : -1] in refusal  # the run's reason


def test_a_hub_biohicl_adapters_local_path_base_is_refused_by_the_dry_run_as_by_the_run(tmp_path, hub_cache):
    # an absolute base_model in a Hub adapter's biohicl_config.json: the run refuses it in one line, the dry run
    # loaded that folder of this machine and passed
    snapshot = _hub_adapter(tmp_path, hub_cache, "biohicl", str(tmp_path / "base"))
    refusal = _run_refusal("owner/adapter")
    assert refusal.startswith(f"{snapshot / 'biohicl_config.json'}: field base_model is the local path")
    check = model_check("model m", "owner/adapter")
    assert (check.ok, check.detail) == (False, f"owner/adapter is an adapter; {refusal}")


def test_a_local_adapters_folder_base_still_passes(tmp_path, monkeypatch):
    run = save_tiny_adapter_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    edit_json(run / "biohicl_config.json", base_model="base")  # a local run's relative base: the folder, as it loads
    edit_json(run / "adapter_config.json", base_model_name_or_path="base")
    assert BioHiCL.from_pretrained(run).config.kind == "adapter"
    check = model_check("model m", str(run))
    assert check.ok and check.detail == f"{run} → {run} (an adapter; its base base → base)"

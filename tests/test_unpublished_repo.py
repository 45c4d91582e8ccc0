"""A registry that says ``uploaded: false`` (any biohicl installed before the upload) refuses the short name only:
the ``owner/name`` repo id loads from the Hugging Face cache like any repo id."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import randomize_lora_b
from test_loader import TEXTS, add_to_hub_cache

from biohicl.errors import ModelLoadError
from biohicl.models.model import BioHiCL
from biohicl.models.registry import default_registry
from biohicl.models.resolver import resolve_base

REPO = "biohicl/BioHiCL-MiniLM-L6"
SHA = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """What `biohicl publish` uploads for BioHiCL-MiniLM: a LoRA adapter over all-MiniLM-L6-v2 (packaged weights)."""
    assert not default_registry().get("BioHiCL-MiniLM").uploaded  # the stale registry this file is about
    model = BioHiCL.from_base("sentence-transformers/all-MiniLM-L6-v2", pooling="mean", max_length=256)
    model.add_lora(r=4, alpha=8, target_modules=["query", "value"], verbose=False)
    torch.manual_seed(5)
    randomize_lora_b(model, std=0.5)
    folder = tmp_path_factory.mktemp("published") / "minilm"
    model.eval().save_pretrained(folder)
    return folder


def _encode(model: BioHiCL) -> np.ndarray:
    return model.encode(TEXTS, show_progress_bar=False)


def test_repo_id_of_an_unpublished_entry_loads_from_the_cache(hub_cache, published):
    # it raised "BioHiCL-MiniLM (biohicl/BioHiCL-MiniLM-L6) has not been published to the Hub yet" with the repo in
    # the cache, with or without revision=
    snapshot = add_to_hub_cache(hub_cache, REPO, published, SHA)
    direct = _encode(BioHiCL.from_pretrained(snapshot))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "pins no commit sha" warning: the registry knew of no upload to pin
        for revision in (SHA, None):
            model = BioHiCL.from_pretrained(REPO, revision=revision)
            resolved = model.resolved
            assert (resolved.path, resolved.commit, resolved.source) == (snapshot, SHA, "repo")
            assert (resolved.entry.name, model.config.kind) == ("BioHiCL-MiniLM", "adapter")
            assert np.array_equal(_encode(model), direct)
        assert resolve_base(REPO, SHA) == resolve_base(REPO) == snapshot
    base = BioHiCL.from_base("sentence-transformers/all-MiniLM-L6-v2")
    assert np.abs(_encode(base) - direct).max() > 1e-2  # the adapter was applied, not just the base loaded


@pytest.mark.parametrize("revision", [None, SHA])
def test_short_name_of_an_unpublished_entry_is_still_refused(hub_cache, published, revision):
    add_to_hub_cache(hub_cache, REPO, published, SHA)
    message = (
        f"BioHiCL-MiniLM ({REPO}) has not been published to the Hub yet; train it (`biohicl build-dataset --output "
        f"runs/study/dataset`, then `biohicl train --config configs/biohicl_minilm.yaml`, see docs/training.md) and "
        f"load the run folder by path (if it has since been uploaded, load {REPO})"
    )
    with pytest.raises(ModelLoadError) as err:
        BioHiCL.from_pretrained("BioHiCL-MiniLM", revision=revision)
    assert str(err.value) == message
    with pytest.raises(ModelLoadError) as err:
        resolve_base("biohicl-minilm", revision)
    assert str(err.value) == message


@pytest.mark.parametrize("revision", [None, SHA])
def test_repo_id_of_an_unpublished_entry_not_cached_is_the_usual_error(hub_cache, revision):
    rev = revision or "main"
    message = (
        f"{REPO} at revision {rev} is not in the Hugging Face cache ({hub_cache}) and HF_HUB_OFFLINE is set; fetch it "
        f"once with `hf download {REPO} --revision {rev}` while online, then load "
        "it offline (the registry lists BioHiCL-MiniLM as not yet published)"
    )
    with pytest.raises(ModelLoadError) as err:
        BioHiCL.from_pretrained(REPO, revision=revision)
    assert str(err.value) == message
    with pytest.raises(ModelLoadError) as err:
        resolve_base(REPO, revision)
    assert str(err.value) == message

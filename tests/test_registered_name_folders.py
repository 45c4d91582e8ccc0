"""A folder in the working directory named as a registered model (``BioHiCL-Base``) is what a bare name loads, as
any folder wins over a name; that it is the folder, not the registered release, is said in one line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from biohicl.models.registry import default_registry
from biohicl.models.resolver import resolve, resolve_base
from tests.conftest import build_tiny_bert

RESOLVER_LOGGER = "biohicl.models.resolver"


@pytest.fixture
def folder_named_as_registered(tmp_path, monkeypatch):
    """The working directory holding a tiny BERT folder named ``BioHiCL-Base``; the registry's entry of that name."""
    monkeypatch.chdir(tmp_path)
    build_tiny_bert(tmp_path / "BioHiCL-Base")
    return default_registry().lookup("BioHiCL-Base")


def notes(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == RESOLVER_LOGGER and "registered model" in r.getMessage()
    ]


@pytest.mark.parametrize("spelled", ["BioHiCL-Base", "biohicl-base"])
def test_a_folder_named_as_a_registered_model_is_loaded_and_said_so(folder_named_as_registered, caplog, spelled):
    # it replaced the registered release silently: the record said id BioHiCL-Base, only its source "path" told
    entry = folder_named_as_registered
    if spelled != "BioHiCL-Base":  # the name is matched case-insensitively, as a registered name is
        Path("BioHiCL-Base").rename(spelled)
    with caplog.at_level(logging.INFO, logger=RESOLVER_LOGGER):
        resolved = resolve(spelled)
    assert (resolved.source, str(resolved.path), resolved.entry) == ("path", spelled, None)
    assert notes(caplog) == [
        f"{spelled}: a folder of the working directory named as the registered model {entry.name}; loading that "
        f"folder, not the registered release {entry.repo_id} (for the release, give its repo id {entry.repo_id} or "
        f"rename the folder; spell it ./{spelled} to load the folder without this note)"
    ]


def test_loading_it_says_so_once(folder_named_as_registered, caplog):
    from biohicl.models.model import BioHiCL

    with caplog.at_level(logging.INFO, logger=RESOLVER_LOGGER):
        model = BioHiCL.from_pretrained("BioHiCL-Base")
    assert model.resolved.source == "path" and len(notes(caplog)) == 1


def test_a_base_named_so_is_said_so_too(folder_named_as_registered, caplog):
    with caplog.at_level(logging.INFO, logger=RESOLVER_LOGGER):
        assert str(resolve_base("BioHiCL-Base")) == "BioHiCL-Base"
    assert len(notes(caplog)) == 1 and notes(caplog)[0].startswith("BioHiCL-Base: a folder of the working directory")


def test_a_folder_spelled_as_a_path_or_named_otherwise_is_no_note(folder_named_as_registered, tmp_path, caplog):
    build_tiny_bert(tmp_path / "my-model")
    with caplog.at_level(logging.INFO, logger=RESOLVER_LOGGER):
        for spec in ("./BioHiCL-Base", str(tmp_path / "BioHiCL-Base"), "my-model"):
            resolve(spec)
            resolve_base(spec)
    assert notes(caplog) == []


def test_loading_it_spelled_as_a_path_is_no_note(folder_named_as_registered, caplog):
    # the note says "spell it ./BioHiCL-Base to load the folder without this note"; from_pretrained read the folder
    # again as a base by str(Path("./BioHiCL-Base")), "BioHiCL-Base", and said it anyway
    from biohicl.models.model import BioHiCL

    with caplog.at_level(logging.INFO, logger=RESOLVER_LOGGER):
        model = BioHiCL.from_pretrained("./BioHiCL-Base")
    assert (model.resolved.source, notes(caplog)) == ("path", [])

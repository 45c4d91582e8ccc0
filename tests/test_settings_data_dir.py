"""The line a missing data directory gives: it names the data sets the folder holds, not mesh/ (the MeSH table is
packaged)."""

from __future__ import annotations

import pytest

import biohicl.settings as settings
from biohicl.errors import ConfigError


def test_no_data_directory_names_the_data_sets_not_the_packaged_mesh(tmp_path, monkeypatch):
    monkeypatch.delenv("BIOHICL_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/data beside the working directory
    monkeypatch.setattr(settings, "__file__", str(tmp_path / "src" / "biohicl" / "settings.py"))  # nor the package
    assert settings.data_dir(required=False) is None
    with pytest.raises(ConfigError) as raised:
        settings.data_dir()
    assert str(raised.value) == (
        "no data directory: set BIOHICL_DATA_DIR to the folder holding the data sets (pubmedqa/, biosses/, "
        "scifact/, ...: docs/data.md)"
    )

"""same_base compares recorded bases by data.files.resolved_path, the one rule by which a given folder is resolved
(the run's output check and the recorded base use it too): its spellings of one folder agree with same_base."""

from __future__ import annotations

from pathlib import Path

from biohicl.data.files import resolved_path
from biohicl.models.base_identity import same_base


def test_resolved_path_and_same_base_agree_on_every_spelling_of_one_folder(tmp_path, monkeypatch):
    bert = tmp_path / "deep" / "bert"
    bert.mkdir(parents=True)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "bert").symlink_to(bert)
    (tmp_path / "link").symlink_to(bert)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    spellings = ["deep/bert", "./deep/bert", str(bert), "~/bert", "link", str(tmp_path / "link"), "link/../bert"]
    assert {str(resolved_path(s)) for s in spellings} == {str(bert.resolve())}
    assert all(same_base(s, str(bert)) and same_base(str(bert), s) for s in spellings)


def test_a_link_then_dot_dot_is_the_links_target_parent_not_the_working_folder(tmp_path, monkeypatch):
    # link/../x is deep/x (the link followed first), as the file system reads it; os.path.normpath would say x
    (tmp_path / "deep" / "bert").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "deep" / "bert")
    monkeypatch.chdir(tmp_path)
    assert resolved_path("link/../x") == (tmp_path / "deep" / "x").resolve()
    assert same_base("link/../x", str((tmp_path / "deep" / "x").resolve()))  # the relative form of that path
    assert not same_base("link/../x", str((tmp_path / "x").resolve()))


def test_a_relative_name_matches_its_absolute_form_only_from_the_working_folder_it_was_given_in(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "a"))
    monkeypatch.chdir(tmp_path / "a")
    assert resolved_path("gone") == Path(tmp_path / "a" / "gone").resolve()
    assert same_base("gone", str(tmp_path / "a" / "gone")) and not same_base("gone", str(tmp_path / "gone"))
    assert not same_base("~/gone", str(tmp_path / "a" / "gone"))  # ~ is no relative form: no folder there, no match

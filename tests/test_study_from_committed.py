"""``scripts/study_from_committed.py`` copies only what a records folder itself holds into the study layout: no
symlinked folder or file, and no folder name that would land outside the model's folder."""

from __future__ import annotations

from conftest import load_script


def test_symlinks_and_dot_dot_names_are_not_copied(tmp_path):
    outside = tmp_path / "outside"
    (outside / "secrets").mkdir(parents=True)
    (outside / "secrets" / "key").write_text("k", encoding="utf-8")
    (outside / "note.txt").write_text("n", encoding="utf-8")
    source = tmp_path / "source"
    (source / "v_seed1").mkdir(parents=True)
    (source / "v_seed1" / "eval.json").write_text("{}", encoding="utf-8")
    (source / "v_seed1" / "notes.txt").symlink_to(outside / "note.txt")
    (source / "base").symlink_to(outside / "secrets")
    (source / ".._seed2").mkdir()
    (source / ".._seed2" / "eval.json").write_text("{}", encoding="utf-8")
    (source / "w_seed3").symlink_to(source / "v_seed1")
    out = tmp_path / "out" / "study"
    assert load_script("study_from_committed").lay_out(source, out, "minilm") == 1
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["study/minilm/v/seed1/eval.json"]

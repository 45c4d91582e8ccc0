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


def test_the_committed_study_reports_are_what_their_commands_give(tmp_path, monkeypatch):
    """``results_seeds3-5.md``, ``results_seeds3-8.md`` (``--per_item``, the pair of variants) and
    ``results_all_variants_seeds3-5.md`` are the reports the script's docstring commands write, but for the dataset
    line, which needs the dataset's build (not committed)."""
    from pathlib import Path

    from biohicl.cli import main as cli

    root = Path(__file__).resolve().parents[1]
    committed = root / "docs" / "results" / "study_minilm_cpu_guarded_256"
    script = load_script("study_from_committed")
    monkeypatch.chdir(tmp_path)  # the config's dataset path (runs/study/dataset) holds no build here
    pair = ["--only", "one_pass_distill2,one_pass_distill2_all"]
    for name, per_item, options in (
        ("results_seeds3-5.md", True, [*pair, "--seeds", "3,4,5"]),
        ("results_seeds3-8.md", True, [*pair, "--seeds", "3,4,5,6,7,8"]),
        ("results_all_variants_seeds3-5.md", False, ["--seeds", "3,4,5"]),
    ):
        out = tmp_path / name
        script.lay_out(committed, out, "minilm")
        if per_item:
            assert script.add_per_item(committed, out, "minilm") == 2 * (1 + 12)  # biosses, pubmedqa of 13 runs
        config = str(root / "configs" / "study_minilm_cpu_guarded_256.yaml")
        assert cli.main(["reproduce", "--config", config, "--output_dir", str(out), *options, "--report_only"]) == 0
        expected = (committed / name).read_text(encoding="utf-8").splitlines()
        if expected[2].startswith("MeSH-pair dataset:"):
            del expected[2:4]
        assert (out / "results.md").read_text(encoding="utf-8").splitlines() == expected, name

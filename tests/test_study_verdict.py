"""A study report judges its targets (met / missed, whose rows count as the dev pick's) only as the config set them
down: over its own seeds (at least three), every one evaluated, the dev pick among all of ``target_variants``. Any
other report (``--seeds``, ``--only``, runs not evaluated) shows the same numbers and says why they are no verdict.
Run over the committed records of ``study_minilm_cpu_guarded_256``, laid out by ``scripts/study_from_committed.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import load_script

from biohicl.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "results" / "study_minilm_cpu_guarded_256"
CONFIG = ROOT / "configs" / "study_minilm_cpu_guarded_256.yaml"
NARROWED = "--only narrowed the variants the dev pick chooses from"


@pytest.fixture(scope="module")
def laid_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("guarded256")
    load_script("study_from_committed").lay_out(COMMITTED, out, "minilm")
    return out


def _report(folder: Path, capsys, *options: str, config: Path = CONFIG) -> tuple[list[str], str, dict]:
    """``biohicl reproduce --report_only`` over ``folder``: its console lines, results.md and results.json."""
    capsys.readouterr()
    argv = ["reproduce", "--config", str(config), "--output_dir", str(folder), *options, "--report_only"]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    return lines, (folder / "results.md").read_text(encoding="utf-8"), results


def _target_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("  minilm/")]


def test_a_report_over_two_other_seeds_and_one_variant_is_no_verdict(laid_out, capsys):
    # `--only one_pass_distill2 --seeds 5,7` printed "Δ +1.18 (target +1.0) met ... (the dev pick)"
    lines, text, results = _report(laid_out, capsys, "--only", "one_pass_distill2", "--seeds", "5,7")
    left_out = "one_pass_distill4, one_pass_distill1, one_pass_distill1_5, one_pass_distill2_all, two_pass_distill2, "
    why = [
        "the seeds of minilm/one_pass_distill2 (5, 7) are not the config's (3, 4, 5)",
        f"{NARROWED} ({left_out}one_pass_distill2_neg left out)",
    ]
    assert results["verdict"] == {"judged": False, "why_not": why}
    assert f"  targets not judged: {'; '.join(why)}" in lines
    mean = _target_lines(lines)[-1]
    assert mean.startswith("  minilm/one_pass_distill2 mean of biosses/spearman, pubmedqa/recall@1: Δ +1.18 ")
    assert mean.endswith(" not judged") and " met" not in mean and "dev pick" not in mean
    assert f"**Not judged**: {'; '.join(why)}." in text
    assert "The targets count for the variant picked on dev" not in text
    assert "| Δ ≥ +1.0 | +1.18 | not judged |" in text


def test_a_report_over_more_seeds_than_the_config_set_down_is_no_verdict(laid_out, capsys):
    # seeds 3-8 of every variant: the registered recipe's +1.02 read "met" though the target was set on seeds 3-5
    lines, text, results = _report(laid_out, capsys, "--seeds", "3,4,5,6,7,8")
    assert results["models"]["minilm"]["dev_pick"]["picked"] == "one_pass_distill2"  # the others lack seeds 6-8
    assert results["verdict"]["why_not"] == [
        "the seeds of minilm/one_pass_distill2 (3, 4, 5, 6, 7, 8) are not the config's (3, 4, 5)"
    ]
    assert "| Δ ≥ +1.0 | +1.02 | not judged |" in text
    assert not [line for line in _target_lines(lines) if line.endswith(("met", "MISSED", "(the dev pick)"))]


def test_a_dev_pick_among_some_target_variants_is_no_verdict(laid_out, capsys):
    # `--only one_pass_distill2_all --seeds 3,4,5`: the pick of one variant "met" its target, as the dev pick
    lines, text, results = _report(laid_out, capsys, "--only", "one_pass_distill2_all", "--seeds", "3,4,5")
    (why,) = results["verdict"]["why_not"]
    assert why.startswith(f"{NARROWED} (one_pass_distill4, one_pass_distill2, ")
    assert "The targets count for the variant picked on dev: `minilm/one_pass_distill2_all`" not in text
    assert f"**Not judged**: {why}." in text
    assert _target_lines(lines)[-1].endswith("Δ +1.35 (target +1.0) not judged")


def test_the_config_as_set_down_is_judged_and_names_the_dev_pick(laid_out, capsys):
    for options in ((), ("--seeds", "3,4,5"), ("--seeds", "5,3,4")):  # the config's own seeds, in any order
        lines, text, results = _report(laid_out, capsys, *options)
        assert results["verdict"] == {"judged": True, "why_not": []}
        assert "targets not judged" not in "\n".join(lines) and "Not judged" not in text
        mean = "  minilm/two_pass_distill2 mean of biosses/spearman, pubmedqa/recall@1: Δ +0.98 (target +1.0) MISSED"
        assert f"{mean} (the dev pick)" in lines
        assert "The targets count for the variant picked on dev: `minilm/two_pass_distill2`" in text
        assert "| minilm | two_pass_distill2 | pubmedqa/recall@1 | Δ ≥ +0.0 | +0.87 | yes | yes |" in text


def test_fewer_than_three_seeds_set_down_or_a_seed_not_evaluated_is_no_verdict(tmp_path, capsys):
    load_script("study_from_committed").lay_out(COMMITTED, tmp_path, "minilm")
    values = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    two = tmp_path / "two_seeds.yaml"
    two.write_text(yaml.safe_dump({**values, "seeds": [3, 4]}), encoding="utf-8")
    _, text, results = _report(tmp_path, capsys, config=two)
    (why,) = results["verdict"]["why_not"]
    assert why == "minilm/two_pass_distill2 has 2 seeds in the config (3, 4), fewer than the 3 a verdict needs"
    assert "| not judged |" in text and "The targets count for the variant picked on dev" not in text

    path = tmp_path / "minilm" / "two_pass_distill2" / "seed3" / "eval.json"  # the dev pick, one seed lacking a task
    record = json.loads(path.read_text(encoding="utf-8"))
    del record["tasks"]["pubmedqa"]
    record["summary"] = {k: v for k, v in record["summary"].items() if not k.startswith("pubmedqa/")}
    path.write_text(json.dumps(record), encoding="utf-8")
    _, _, results = _report(tmp_path, capsys)
    assert results["verdict"]["why_not"] == ["minilm/two_pass_distill2 has pubmedqa/recall@1 from 2 of its 3 seeds"]


def test_a_selection_keeps_the_configs_seeds_and_writes_back_as_a_config():
    from biohicl.study import ReproduceConfig
    from biohicl.study.verdict import registered_seeds

    config = ReproduceConfig.from_yaml(CONFIG)
    selected = config.select(seeds=[5, 7]).select(only=["one_pass_distill2"])  # a selection of a selection
    spec = selected.models[0]
    assert selected.run_seeds(spec, "one_pass_distill2") == [5, 7]
    assert registered_seeds(selected, spec, "one_pass_distill2") == [3, 4, 5]
    assert registered_seeds(config, config.models[0], "one_pass_distill2") == [3, 4, 5]  # not selected: its own
    written = config.select(seeds=[5, 7]).to_dict()  # study_config.json reads back keeping the config's seeds
    assert written["registered_seeds"]["minilm"]["one_pass_distill2"] == [3, 4, 5]
    assert registered_seeds(ReproduceConfig.from_dict(written), spec, "one_pass_distill2") == [3, 4, 5]
    assert "registered_seeds" not in config.to_dict()  # not a selection: its seeds are its own
    assert ReproduceConfig.from_dict(config.select(seeds=[5, 7]).to_dict()).seeds == [5, 7]


def test_a_dev_pick_with_no_evaluated_seed_is_no_verdict(tmp_path, capsys):
    # every eval.json of the pick deleted: the report read {'judged': True, 'why_not': []}, the other rows a verdict
    load_script("study_from_committed").lay_out(COMMITTED, tmp_path, "minilm")
    for path in (tmp_path / "minilm" / "two_pass_distill2").glob("seed*/eval.json"):
        path.unlink()
    lines, _, results = _report(tmp_path, capsys)
    assert results["models"]["minilm"]["dev_pick"]["picked"] == "two_pass_distill2"
    assert results["verdict"] == {
        "judged": False,
        "why_not": ["the dev pick minilm/two_pass_distill2 has no evaluated seed"],
    }
    assert not [line for line in _target_lines(lines) if line.endswith(("met", "MISSED", "(the dev pick)"))]


def test_a_study_config_written_from_a_selection_keeps_the_configs_seeds(tmp_path, capsys):
    # study_config.json of `--seeds 6,7,8` passed back as --config printed "Δ +1.05 (target +1.0) met (the dev pick)"
    from biohicl.study import ReproduceConfig

    load_script("study_from_committed").lay_out(COMMITTED, tmp_path, "minilm")
    written = tmp_path / "study_config.json"
    selection = ReproduceConfig.from_yaml(CONFIG).select(seeds=[6, 7, 8])
    written.write_text(json.dumps(selection.to_dict()), encoding="utf-8")
    lines, _, results = _report(tmp_path, capsys, config=written)
    why = ["the seeds of minilm/one_pass_distill2 (6, 7, 8) are not the config's (3, 4, 5)"]
    assert results["models"]["minilm"]["dev_pick"]["picked"] == "one_pass_distill2"
    assert results["verdict"] == {"judged": False, "why_not": why}
    assert not [line for line in _target_lines(lines) if line.endswith(("met", "MISSED", "(the dev pick)"))]


def test_a_target_variant_that_is_not_the_dev_pick_does_not_void_the_verdict(tmp_path, capsys):
    # seeds_per_variant {one_pass_distill4: [3]} voided the verdict ("the config pre-registers 1 seed (3), ...")
    # though the pick, two_pass_distill2, has its three; the reason named no variant
    load_script("study_from_committed").lay_out(COMMITTED, tmp_path, "minilm")
    values = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    one = tmp_path / "one_seed.yaml"
    one.write_text(yaml.safe_dump({**values, "seeds_per_variant": {"one_pass_distill4": [3]}}), encoding="utf-8")
    _, _, results = _report(tmp_path, capsys, config=one)
    assert results["models"]["minilm"]["dev_pick"]["picked"] == "two_pass_distill2"
    assert results["verdict"] == {"judged": True, "why_not": []}
    two = tmp_path / "two_seeds_picked.yaml"  # the pick's own seeds too few: the reason names it
    two.write_text(yaml.safe_dump({**values, "seeds_per_variant": {"two_pass_distill2": [3, 4]}}), encoding="utf-8")
    _, _, results = _report(tmp_path, capsys, config=two)
    assert results["models"]["minilm"]["dev_pick"]["picked"] == "two_pass_distill2"
    why = "minilm/two_pass_distill2 has 2 seeds in the config (3, 4), fewer than the 3 a verdict needs"
    assert results["verdict"] == {"judged": False, "why_not": [why]}


def test_a_judged_reports_rows_other_than_the_dev_picks_say_they_do_not_count(laid_out, capsys):
    lines, _, results = _report(laid_out, capsys)
    assert results["verdict"]["judged"] is True
    others = [line for line in _target_lines(lines) if not line.startswith("  minilm/two_pass_distill2 ")]
    assert others and all(line.endswith(" (not counted: not the dev pick)") for line in others)
    assert all(line.endswith(" (the dev pick)") for line in _target_lines(lines) if line not in others)

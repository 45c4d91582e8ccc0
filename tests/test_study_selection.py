"""A selection of a study (``biohicl reproduce --only``) writes a ``study_config.json`` that reads back as a config,
and that config, passed back as ``--config``, is no more a verdict than the selection was: the target variants the
selection left out stay on record (``registered_target_variants``), whether the dev pick is made or not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import load_script

from biohicl.cli import main as cli
from biohicl.study import ReproduceConfig
from tests.conftest import tiny_study_values

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "results" / "study_minilm_cpu_guarded_256"
CONFIG = ROOT / "configs" / "study_minilm_cpu_guarded_256.yaml"
PAIR = ["one_pass_distill2", "one_pass_distill2_all"]
LEFT_OUT = "one_pass_distill4, one_pass_distill1, one_pass_distill1_5, two_pass_distill2, one_pass_distill2_neg"


@pytest.fixture(scope="module")
def laid_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("guarded256")
    load_script("study_from_committed").lay_out(COMMITTED, out, "minilm")
    return out


def _verdict(folder: Path, capsys, config: Path, *options: str) -> dict:
    """``results.json``'s verdict of ``biohicl reproduce --report_only`` over ``folder``."""
    capsys.readouterr()
    argv = ["reproduce", "--config", str(config), "--output_dir", str(folder), *options, "--report_only"]
    assert cli.main(argv) == 0
    return json.loads((folder / "results.json").read_text(encoding="utf-8"))["verdict"]


def test_a_written_selection_of_some_variants_reads_back_and_keeps_the_left_out_targets():
    # config.select(only=...).to_dict() named in target_variants the variants --only had left out of `variants`:
    # "target_variants: unknown variant(s) full" when read back
    values = {"output_dir": "s", "models": [{"name": "m", "model": "base"}],
              "variants": {"full": {}, "no_mse": {"use_mse": False}}}  # fmt: skip
    config = ReproduceConfig.from_dict(values)
    written = config.select(only=["no_mse"]).to_dict()
    again = ReproduceConfig.from_dict(json.loads(json.dumps(written)), source="study_config.json")
    assert list(again.variants) == ["no_mse"]
    assert again.target_variants == [] and again.registered_target_variants == ["full"]
    assert again.to_dict() == written
    assert "registered_target_variants" not in config.to_dict()  # not a selection: its targets are its own
    kept = config.select(only=["full"])
    assert (kept.target_variants, kept.registered_target_variants) == (["full"], ["full"])
    twice = ReproduceConfig.from_dict(written).select(only=["no_mse"])  # a selection of a written selection
    assert twice.registered_target_variants == ["full"]


def test_a_written_only_selection_passed_back_as_the_config_is_no_verdict(laid_out, tmp_path, capsys):
    # the study_config.json of `--only one_pass_distill2,one_pass_distill2_all --seeds 3,4,5` could not be read back
    selected = _verdict(laid_out, capsys, CONFIG, "--only", ",".join(PAIR), "--seeds", "3,4,5")
    why = [f"--only narrowed the variants the dev pick chooses from ({LEFT_OUT} left out)"]
    assert selected == {"judged": False, "why_not": why}
    written = tmp_path / "study_config.json"
    config = ReproduceConfig.from_yaml(CONFIG).select(only=PAIR, seeds=[3, 4, 5])
    written.write_text(json.dumps(config.to_dict()), encoding="utf-8")
    assert _verdict(laid_out, capsys, written) == selected


def test_only_leaving_out_a_target_variant_is_no_verdict_without_a_dev_pick(laid_out, tmp_path, capsys):
    # without pick_variant_on_dev every target variant counts: `--only one_pass_distill2` judged it alone
    # ({'judged': True}), as if the config's other target variant had not been set down
    values = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    values.update(pick_variant_on_dev=False, target_variants=PAIR)
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump(values), encoding="utf-8")
    assert _verdict(laid_out, capsys, both) == {"judged": True, "why_not": []}
    assert _verdict(laid_out, capsys, both, "--only", ",".join(PAIR)) == {"judged": True, "why_not": []}
    why = ["--only narrowed the target variants (one_pass_distill2_all left out)"]
    assert _verdict(laid_out, capsys, both, "--only", "one_pass_distill2") == {"judged": False, "why_not": why}
    written = tmp_path / "study_config.json"
    config = ReproduceConfig.from_yaml(both).select(only=["one_pass_distill2"])
    written.write_text(json.dumps(config.to_dict()), encoding="utf-8")
    assert _verdict(laid_out, capsys, written) == {"judged": False, "why_not": why}


def test_the_study_config_json_reproduce_only_writes_reads_back(tmp_path, tiny_bert_dir, capsys):
    """The file ``biohicl reproduce --only full`` writes, read back by ``--config``: the tiny study (1 step)."""
    values = tiny_study_values(str(tmp_path / "study"), str(tmp_path / "dataset"), model=str(tiny_bert_dir))
    values["training"] = values["training"] | {"max_steps": 1}
    values |= {"variants": {"full": {}, "no_mse": {"use_mse": False}}, "target_variants": ["full", "no_mse"]}
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(values), encoding="utf-8")
    assert cli.main(["reproduce", "--config", str(study), "--only", "full"]) == 0
    selected = json.loads((tmp_path / "study" / "results.json").read_text(encoding="utf-8"))["verdict"]
    written = tmp_path / "study" / "study_config.json"
    again = ReproduceConfig.from_yaml(written)
    assert (list(again.variants), again.target_variants) == (["full"], ["full"])
    assert again.registered_target_variants == ["full", "no_mse"]
    assert "--only narrowed the target variants (no_mse left out)" in selected["why_not"]
    assert _verdict(tmp_path / "study", capsys, written) == selected

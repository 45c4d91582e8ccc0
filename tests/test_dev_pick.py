"""The dev pick (``pick_variant_on_dev``) of a study run with ``--only``: the report says what the pick did not see."""

from __future__ import annotations

import json
from pathlib import Path

from biohicl.study.config import ReproduceConfig
from biohicl.study.dev_pick import pick_variant
from biohicl.study.report import _dev_pick_table

ROOT = Path(__file__).parents[1]


def _committed_summaries() -> dict:
    """The committed training summaries of the guarded 256-token study, by (model, variant, seed)."""
    summaries = {}
    for path in (ROOT / "docs" / "results" / "study_minilm_cpu_guarded_256").glob("*_seed*/training_summary.json"):
        variant, _, seed = path.parent.name.rpartition("_seed")
        summaries[("minilm", variant, int(seed))] = json.loads(path.read_text())
    return summaries


def test_a_pick_over_some_target_variants_says_so_and_names_the_ones_left_out():
    # `--only one_pass_distill2,one_pass_distill2_all` reported "**picked**: one_pass_distill2" with no caveat,
    # although the rule over all seven target variants names two_pass_distill2
    config = ReproduceConfig.from_yaml(ROOT / "configs" / "study_minilm_cpu_guarded_256.yaml")
    summaries = _committed_summaries()
    full = pick_variant(config, config.models[0], summaries)
    assert (full["picked"], full["left_out"]) == ("two_pass_distill2", [])
    assert "in this report only" not in "\n".join(_dev_pick_table(full))

    pair = config.select(only=["one_pass_distill2", "one_pass_distill2_all"])
    pick = pick_variant(pair, pair.models[0], summaries)
    assert pick["picked"] == "one_pass_distill2"
    left_out = ["one_pass_distill4", "one_pass_distill1", "one_pass_distill1_5", "two_pass_distill2"]
    assert pick["left_out"] == [*left_out, "one_pass_distill2_neg"]
    table = _dev_pick_table(pick)
    assert table[-1] == (
        "The pick is among the target variants in this report only: `one_pass_distill4`, `one_pass_distill1`, "
        "`one_pass_distill1_5`, `two_pass_distill2`, `one_pass_distill2_neg` were left out of this selection of the "
        "study (`--only`), and the rule over all `target_variants` may name another."
    )
    assert "| one_pass_distill2 | 3, 4, 5 | 209, 209, 209 | 0.5433 | **picked** |" in table

    six = config.select(only=[v for v in config.target_variants if v != "two_pass_distill2"])
    line = _dev_pick_table(pick_variant(six, six.models[0], summaries))[-1]
    assert line.startswith("The pick is among the target variants in this report only: `two_pass_distill2` was left")


def test_a_selection_without_the_default_target_full_names_it_left_out():
    # target_variants unset means `full` (if run): `--only no_mse` reported "no variant picked" and never said so
    values = {
        "output_dir": "study", "models": [{"name": "m", "model": "base"}], "pick_variant_on_dev": True,
        "variants": {"full": {}, "no_mse": {"use_mse": False}},
    }  # fmt: skip
    config = ReproduceConfig.from_dict(values)
    assert pick_variant(config, config.models[0], {})["left_out"] == []
    only = config.select(only=["no_mse"])
    assert pick_variant(only, only.models[0], {})["left_out"] == ["full"]
    assert pick_variant(config.select(only=["full"]), config.models[0], {})["left_out"] == []
    without_full = ReproduceConfig.from_dict({**values, "variants": {"a": {}, "b": {}}}).select(only=["a"])
    assert without_full.target_variants is None  # no default target to leave out


def test_to_dict_masks_training_tokens_and_keeps_variant_names_ending_in_token():
    values = {
        "output_dir": "study", "models": [{"name": "m", "model": "base", "training": {"hub_token": "hf_x"}}],
        "training": {"hub_token": "hf_y"}, "seeds_per_variant": {"mask_cls_token": [1, 2]},
        "variants": {"full": {}, "mask_cls_token": {"learning_rate": 2e-4, "hub_token": "hf_z"}},
    }  # fmt: skip
    data = ReproduceConfig.from_dict(values).to_dict()
    assert data["training"]["hub_token"] == data["models"][0]["training"]["hub_token"] == "<HUB_TOKEN>"
    assert data["variants"]["mask_cls_token"] == {"learning_rate": 2e-4, "hub_token": "<HUB_TOKEN>"}
    assert data["seeds_per_variant"] == {"mask_cls_token": [1, 2]}
    assert ReproduceConfig.from_dict(data).variants["mask_cls_token"]["learning_rate"] == 2e-4  # reads back

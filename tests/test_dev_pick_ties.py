"""The dev pick's ties (``pick_variant_on_dev``): a tie keeps the variant listed first in ``target_variants``, and
means equal mathematically tie whatever order their seeds' floats were summed in; an undefined mean shows –."""

from __future__ import annotations

from biohicl.study.config import ReproduceConfig
from biohicl.study.dev_pick import pick_variant
from biohicl.study.report import _dev_pick_table


def _summary(score: float | None, base: bool = False) -> dict:
    """A run's training summary: dev selection that picked step 10 at ``score`` (or kept its base, step 0)."""
    return {"best_step": 0 if base else 10, "best_metric": score, "selected_base": base, "step0_metric": 0.1}


def _config(tmp_path, seeds: list[int], target_variants: list[str]) -> ReproduceConfig:
    return ReproduceConfig.from_dict({
        "output_dir": str(tmp_path / "study"), "models": [{"name": "m", "model": "base"}], "seeds": seeds,
        "pick_variant_on_dev": True, "variants": {"a": {}, "b": {}}, "target_variants": target_variants,
    })  # fmt: skip


def test_a_tie_keeps_the_variant_listed_first_in_target_variants_not_in_variants(tmp_path):
    # `variants` lists a first, `target_variants` b first (the incumbent): the tie went to a
    config, summaries = _config(tmp_path, [1], ["b", "a"]), {("m", "a", 1): _summary(0.5), ("m", "b", 1): _summary(0.5)}
    pick = pick_variant(config, config.models[0], summaries)
    assert pick["picked"] == "b"
    assert [c["variant"] for c in pick["candidates"]] == ["b", "a"]
    assert "| a | 1 | 10 | 0.5000 | lower |" in _dev_pick_table(pick)
    config = _config(tmp_path, [1], ["a", "b"])  # listed the other way round: a
    assert pick_variant(config, config.models[0], summaries)["picked"] == "a"


def test_means_equal_mathematically_tie_whatever_order_the_seeds_sum_in(tmp_path):
    # 0.3 + 0.2 + 0.1 and 0.1 + 0.2 + 0.3 differ in floating point (0.19999999999999998 against 0.20000000000000004):
    # b, listed second, won by the last bit
    config = _config(tmp_path, [1, 2, 3], ["a", "b"])
    summaries = {}
    for seed, (a, b) in zip([1, 2, 3], [(0.3, 0.1), (0.2, 0.2), (0.1, 0.3)], strict=True):
        summaries[("m", "a", seed)], summaries[("m", "b", seed)] = _summary(a), _summary(b)
    pick = pick_variant(config, config.models[0], summaries)
    assert [c["score"] for c in pick["candidates"]] == [0.2, 0.2]
    assert pick["picked"] == "a"
    reverse = _config(tmp_path, [1, 2, 3], ["b", "a"])
    assert pick_variant(reverse, reverse.models[0], summaries)["picked"] == "b"


def test_a_variant_whose_seed_kept_a_nan_base_shows_no_mean_score(tmp_path):
    # seed 2 of b kept its base, whose dev score was NaN (null in the summary): the table printed `nan`
    config = _config(tmp_path, [1, 2], ["a", "b"])
    summaries = {("m", "a", 1): _summary(0.5), ("m", "a", 2): _summary(0.6), ("m", "b", 1): _summary(0.5)}
    summaries[("m", "b", 2)] = {**_summary(None, base=True), "selection": {"evaluations": [[0, None], [10, None]]}}
    pick = pick_variant(config, config.models[0], summaries)
    assert pick["picked"] == "a"
    table = _dev_pick_table(pick)
    assert "| a | 1, 2 | 10, 10 | 0.5500 | **picked** |" in table
    assert "| b | 1, 2 | 10, 0 | – | kept its base: seed 2 |" in table

"""Which target variant the dev data picks (``pick_variant_on_dev``), computed from dev data alone.

Each run already chose its step on dev (``load_best_model_at_end``; step 0, the base, a candidate). Between variants
the study applies the same data by one rule, :data:`DEV_PICK_RULE`, over each variant's training summaries
(``training_summary.json``: ``best_metric``, ``best_step``, ``selected_base``). Nothing held out enters its
computation, so the variant it names is the one whose targets count; the others are reported beside it, not chosen.
The choice of criterion is another matter: in issue #15 the mean dev selection score (there the SimE-SimL agreement)
was set down after held-out numbers of earlier variants had been seen (docs/results.md, "The study names its dev
pick").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from biohicl.jsonio import read_json
from biohicl.study.config import ModelSpec, ReproduceConfig
from biohicl.study.plan import TRAINING_DONE_NAME, RunKey, run_dir_for
from biohicl.training.selection import read_summary, score_mean

DEV_PICK_RULE = (
    "Computed from dev data alone (no held-out number enters it): a variant with a seed not trained yet, without dev "
    "selection, or that kept its base (no later step beat step 0 on dev) is out; of the rest, the highest mean dev "
    "selection score at the selected steps wins (a tie keeps the one listed first in target_variants)."
)

#: What a training summary says about a run's selection (its other keys stay in the run folder).
Summaries = Mapping[RunKey, Mapping[str, Any]]


def read_training_summaries(config: ReproduceConfig) -> dict[RunKey, dict[str, Any]]:
    """The ``training_summary.json`` of every trained run of the judged variants, by run."""
    summaries = {}
    for spec in config.models:
        for variant in config.judged_variants(spec):
            for seed in config.run_seeds(spec, variant):
                path = run_dir_for(config, spec.name, variant, seed) / TRAINING_DONE_NAME
                summary = read_json(path, default=None)
                if summary is not None:
                    summaries[(spec.name, variant, seed)] = summary
    return summaries


def _out(seeds: Mapping[int, Mapping[str, Any] | None]) -> str | None:
    """Why a variant with these runs (None: not trained) is out of the pick, or None when it is in."""
    for reason, failed in (
        ("not trained", [s for s, r in seeds.items() if r is None]),
        ("no dev selection", [s for s, r in seeds.items() if r is not None and r.get("best_metric") is None]),
        ("kept its base", [s for s, r in seeds.items() if r is not None and r.get("selected_base")]),
    ):
        if failed:
            return f"{reason}: seed{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))}"
    return None


def left_out_targets(config: ReproduceConfig) -> list[str]:
    """The target variants a selection of the study (``--only``) left out, of those the config it came from names
    (``registered_target_variants``, kept in the ``study_config.json`` it writes): the pick did not see them."""
    targets = config.registered_target_variants
    return [v for v in (config.target_variants if targets is None else targets) or [] if v not in config.variants]


def pick_variant(config: ReproduceConfig, spec: ModelSpec, summaries: Summaries) -> dict[str, Any]:
    """``{"rule", "candidates", "picked", "left_out"}`` for ``spec``'s judged variants, in ``target_variants``' order
    (the order a tie follows): each candidate with its seeds, selected steps, mean dev selection score
    (:func:`~biohicl.training.selection.score_mean`) and why it is out (None when in); ``picked`` is None when every
    one is out; ``left_out``: the target variants not in this selection of the study (:func:`left_out_targets`). A
    summary's ``null`` score of a measured step is the NaN it was written for
    (:func:`~biohicl.training.selection.read_summary`): a run that kept its NaN base kept its base, it did not go
    without dev selection."""
    candidates, picked, best = [], None, None
    judged = config.judged_variants(spec)  # in target_variants' order: a tie keeps the one listed first there
    for variant in [v for v in config.target_variants or judged if v in judged]:
        seeds = {s: read_summary(summaries.get((spec.name, variant, s))) for s in config.run_seeds(spec, variant)}
        scores = [float(r["best_metric"]) for r in seeds.values() if r is not None and r.get("best_metric") is not None]
        out = _out(seeds)
        score = score_mean(scores) if scores else None
        candidates.append({
            "variant": variant, "seeds": list(seeds), "score": score, "out": out,
            "selected_steps": [None if r is None else r.get("best_step") for r in seeds.values()],
        })  # fmt: skip
        if out is None and score is not None and (best is None or score > best):  # strict: a tie keeps the first
            picked, best = variant, score
    return {"rule": DEV_PICK_RULE, "candidates": candidates, "picked": picked, "left_out": left_out_targets(config)}

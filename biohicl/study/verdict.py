"""Whether a study report's targets are a verdict, or numbers only.

A report judges the targets (met or missed, and with ``pick_variant_on_dev`` whose rows count) only as the config
set them down: the variant(s) whose rows count (the dev pick; without one, every target variant) on the seeds the
config gives (at least :data:`MIN_SEEDS`; a ``--seeds`` list other than those is not them), every one evaluated on
every target, and with none of ``target_variants`` left out by ``--only`` (the dev pick made among all of them;
without one, each of them counts). Any other report shows the same numbers and says why they are no verdict: seeds or
variants chosen after held-out numbers were seen would be a choice on the test sets. The config's seeds and target
variants are what it says (a selection's ``study_config.json`` keeps them as ``registered_seeds`` and
``registered_target_variants``): nothing here can tell whether a YAML was edited after its numbers were seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from biohicl.study.config import ModelSpec, ReproduceConfig
from biohicl.study.dev_pick import left_out_targets

#: The fewest seeds a config must give a target variant for its report to judge the targets.
MIN_SEEDS = 3


def registered_seeds(config: ReproduceConfig, spec: ModelSpec, variant: str) -> list[int]:
    """The seeds the config itself gives ``spec``'s ``variant``: kept by :meth:`ReproduceConfig.select` when a
    selection (``--seeds``) replaced them, else the config's own."""
    kept = (config.registered_seeds or {}).get(spec.name, {})
    return list(kept[variant]) if variant in kept else config.run_seeds(spec, variant)


def _listed(seeds: Sequence[int]) -> str:
    return ", ".join(map(str, seeds))


def _seed_reasons(config: ReproduceConfig, spec: ModelSpec, variant: str) -> list[str]:
    """Why ``variant``'s seeds in this report are not the ones the config gives, or too few (none: they are)."""
    registered, seeds = registered_seeds(config, spec, variant), config.run_seeds(spec, variant)
    if sorted(seeds) != sorted(registered):
        return [f"the seeds of {spec.name}/{variant} ({_listed(seeds)}) are not the config's ({_listed(registered)})"]
    if len(registered) < MIN_SEEDS:
        count = f"{len(registered)} seed{'s' if len(registered) != 1 else ''}"
        return [
            f"{spec.name}/{variant} has {count} in the config ({_listed(registered)}), fewer than the {MIN_SEEDS} a "
            "verdict needs"
        ]
    return []


def why_not_judged(config: ReproduceConfig, models: Mapping[str, Any]) -> list[str]:
    """Why the report of ``config`` (a selection of the study, perhaps) over the aggregated ``models`` (model name →
    its ``rows`` and ``dev_pick``, as :func:`~biohicl.study.stats.aggregate` builds them) judges no target; empty
    when it judges them. Each reason once, in the order found."""
    reasons: list[str] = []
    for spec in config.models:
        model = models.get(spec.name) or {}
        rows = model.get("rows") or {}
        counted, pick_reasons = config.judged_variants(spec), []  # the rows that count: the dev pick's, else all
        pick = model.get("dev_pick")
        if pick is None and (left_out := left_out_targets(config)):  # every target variant counts: none left out
            pick_reasons.append(f"--only narrowed the target variants ({', '.join(left_out)} left out)")
        if pick is not None:
            if pick.get("left_out"):
                pick_reasons.append(f"--only narrowed the variants the dev pick chooses from "
                                    f"({', '.join(pick['left_out'])} left out)")  # fmt: skip
            if pick["picked"] is None:
                pick_reasons.append(f"the dev pick names no variant of {spec.name}")
            counted = [v for v in counted if v == pick["picked"]]
        reasons += [r for variant in counted for r in _seed_reasons(config, spec, variant)] + pick_reasons
        for variant in counted:
            if variant not in rows:  # not one seed evaluated: no row to judge, yet the verdict would be about it
                reasons.append(f"{'the dev pick ' if pick else ''}{spec.name}/{variant} has no evaluated seed")
                continue
            seeds = len(config.run_seeds(spec, variant))  # each of them evaluated on every target
            for metric in config.targets:
                if (evaluated := len(rows[variant]["values"].get(metric, ()))) < seeds:
                    reasons.append(f"{spec.name}/{variant} has {metric} from {evaluated} of its {seeds} seeds")
    return list(dict.fromkeys(reasons))


def verdict(config: ReproduceConfig, models: Mapping[str, Any]) -> dict[str, Any]:
    """``{"judged": bool, "why_not": [reasons]}`` (:func:`why_not_judged`): what ``results.json`` keeps, and what
    the report and the command say above the targets' numbers."""
    reasons = why_not_judged(config, models)
    return {"judged": not reasons, "why_not": reasons}

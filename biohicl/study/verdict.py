"""Whether a study report's targets are a verdict, or numbers only.

A report judges the targets (met or missed, and with ``pick_variant_on_dev`` whose rows count) only as the config
set them down: on the seeds the config gives (at least :data:`MIN_SEEDS`, a ``--seeds`` list other than those is not
them), every one evaluated on every target, and with the dev pick made among all of ``target_variants`` (no
``--only`` narrowing them). Any other report shows the same numbers and says why they are no verdict: seeds or
variants chosen after held-out numbers were seen would be a choice on the test sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from biohicl.study.config import ModelSpec, ReproduceConfig

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
    """Why ``variant``'s seeds in this report are not the ones the config set down, or too few (none: they are)."""
    registered, seeds = registered_seeds(config, spec, variant), config.run_seeds(spec, variant)
    if sorted(seeds) != sorted(registered):
        return [f"seeds {_listed(seeds)} are not the config's pre-registered {_listed(registered)}"]
    if len(registered) < MIN_SEEDS:
        count = f"{len(registered)} seed{'s' if len(registered) != 1 else ''}"
        return [f"the config pre-registers {count} ({_listed(registered)}), fewer than the {MIN_SEEDS} a verdict needs"]
    return []


def why_not_judged(config: ReproduceConfig, models: Mapping[str, Any]) -> list[str]:
    """Why the report of ``config`` (a selection of the study, perhaps) over the aggregated ``models`` (model name →
    its ``rows`` and ``dev_pick``, as :func:`~biohicl.study.stats.aggregate` builds them) judges no target; empty
    when it judges them. Each reason once, in the order found."""
    reasons: list[str] = []
    for spec in config.models:
        model = models.get(spec.name) or {}
        rows = model.get("rows") or {}
        judged = [v for v in config.judged_variants(spec) if v in rows]
        for variant in judged:
            reasons += _seed_reasons(config, spec, variant)
        pick = model.get("dev_pick")
        if pick is not None:
            if pick.get("left_out"):
                reasons.append(f"--only narrowed the variants the dev pick chooses from ({', '.join(pick['left_out'])}"
                               " left out)")  # fmt: skip
            if pick["picked"] is None:
                reasons.append(f"the dev pick names no variant of {spec.name}")
            judged = [v for v in judged if v == pick["picked"]]  # the rows that count: the pick's
        for variant in judged:  # each of its seeds evaluated (the seeds themselves are judged above)
            seeds = len(config.run_seeds(spec, variant))
            for metric in config.targets:
                if (evaluated := len(rows[variant]["values"].get(metric, ()))) < seeds:
                    reasons.append(f"{spec.name}/{variant} has {metric} from {evaluated} of its {seeds} seeds")
    return list(dict.fromkeys(reasons))


def verdict(config: ReproduceConfig, models: Mapping[str, Any]) -> dict[str, Any]:
    """``{"judged": bool, "why_not": [reasons]}`` (:func:`why_not_judged`): what ``results.json`` keeps, and what
    the report and the command say above the targets' numbers."""
    reasons = why_not_judged(config, models)
    return {"judged": not reasons, "why_not": reasons}

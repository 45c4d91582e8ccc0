"""A selection of a study: some of its variants or models, or other seeds (``biohicl reproduce --only``,
``--models``, ``--seeds``).

:func:`select` gives the copy of a :class:`~biohicl.study.config.ReproduceConfig` that runs the selection, keeping on
record what the config it came from sets down (``registered_seeds``, ``registered_target_variants``), so a report of
the selection, or of the ``study_config.json`` it writes read back as a config, can tell that it is no verdict
(:mod:`biohicl.study.verdict`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

from biohicl.errors import ConfigError
from biohicl.study.run_checks import check_seeds

if TYPE_CHECKING:
    from biohicl.study.config import ReproduceConfig


def select(
    config: ReproduceConfig,
    only: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    models: Sequence[str] | None = None,
) -> ReproduceConfig:
    """A copy of ``config`` restricted to some variants / models, or with other seeds (the CLI's
    --only/--seeds/--models), that keeps each variant's seeds as the config gives them (``registered_seeds``: a report
    on others is no verdict). ``only`` keeps the selected variants' specs alone, and of ``target_variants`` those it
    selects, the config's own (``full`` when it names none and has it) kept as ``registered_target_variants``: so the
    ``study_config.json`` a selection writes reads back as a config, and a report of it names the target variants
    left out (:func:`~biohicl.study.dev_pick.left_out_targets`)."""
    new = copy.deepcopy(config)
    new.registered_seeds = config.registered_seeds or {
        m.name: {v: config.run_seeds(m, v) for v in config.model_variants(m)} for m in config.models
    }
    if only:
        if unknown := sorted(set(only) - set(new.variants)):
            raise ConfigError(f"--only: unknown variant(s) {', '.join(unknown)}; known: {', '.join(new.variants)}")
        targets = new.target_variants
        if targets is None and "full" in new.variants:  # the default target, kept on record
            targets = ["full"]
        if targets is not None:  # the selection's own, and the config's on record: a report says which it left out
            if new.registered_target_variants is None:
                new.registered_target_variants = list(targets)
            new.target_variants = [v for v in targets if v in only]
        new.variants = {k: v for k, v in new.variants.items() if k in only}
        for model in new.models:
            if model.variants is not None:
                model.variants = [v for v in model.variants if v in only]
        new.seeds_per_variant = {k: v for k, v in new.seeds_per_variant.items() if k in only}
        new.tasks_per_variant = {k: v for k, v in new.tasks_per_variant.items() if k in only}
    if seeds:
        check_seeds(seeds, "--seeds")
        new.seeds = list(seeds)
        new.seeds_per_variant = {}
        for model in new.models:
            model.seeds = None
    if models:
        if unknown := sorted(set(models) - {m.name for m in new.models}):
            known = ", ".join(m.name for m in new.models)
            raise ConfigError(f"--models: unknown model(s) {', '.join(unknown)}; known: {known}")
        new.models = [m for m in new.models if m.name in models]
    return new

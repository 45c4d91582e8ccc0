"""The study's model cards: one ``README.md`` per evaluated run with its results (and the base's) in its table and
the held-out ones in its ``model-index`` (the default ``scifact:train``, this project's SciFact dev set, is in the table
only); the best ``full`` run's names its ``repo_id``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from biohicl.study.config import ModelSpec, ReproduceConfig
from biohicl.study.plan import BASE, PlannedRun, Records

logger = logging.getLogger(__name__)


def write_model_card(
    config: ReproduceConfig,
    model: ModelSpec,
    run: PlannedRun,
    record: Mapping[str, Any],
    base_record: Mapping[str, Any] | None,
    repo_id: str | None = None,
) -> Path:
    """Render the run's model card (README.md) with its results (and the base's), the held-out ones in the
    ``model-index`` (:attr:`~biohicl.hub.eval_rows.EvalRow.held_out`)."""
    from biohicl.hub.model_card import BioHiCLModelCardData, save_model_card

    prefix = model.card_name or f"BioHiCL-{model.name}"
    name = prefix if run.variant == "full" else f"{prefix}-{run.variant}"
    data = BioHiCLModelCardData.from_run_dir(run.run_dir, model_name=f"{name}-seed{run.seed}")
    if repo_id:
        data.repo_id = repo_id
    data.eval_results = []
    data.add_eval_results(dict(record), base=dict(base_record) if base_record else None, all_metrics=True)
    data.eval_source = (
        f"`biohicl reproduce` ({config.title}): {model.name}/{run.variant}/seed{run.seed}, evaluated with "
        f"`biohicl.evaluation` at max length {record.get('settings', {}).get('max_length')} "
        f"({record.get('settings', {}).get('dtype')}); base = the untrained {model.hub_id or model.model}."
    )
    return save_model_card(data, run.run_dir)


def write_cards(config: ReproduceConfig, runs: Sequence[PlannedRun], records: Records, results: dict[str, Any]) -> None:
    """A model card for every evaluated run; the best ``full`` run's names its ``repo_id``. A card that fails is
    logged and listed in ``results["card_errors"]``, never fatal."""
    specs = {m.name: m for m in config.models}
    for run in runs:
        if run.variant == BASE or run.key not in records:
            continue
        model = specs[run.model]
        best = results["models"][run.model].get("best_full_run")
        repo_id = model.repo_id if best and best.get("seed") == run.seed and run.variant == "full" else None
        try:
            write_model_card(
                config,
                model,
                run,
                records[run.key],
                records.get((run.model, BASE, None)),
                repo_id=repo_id,
            )
        except Exception as err:  # a card problem must not lose the study's results
            logger.warning("%s: no model card written (%s)", run.label, err)
            results.setdefault("card_errors", []).append(f"{run.label}: {type(err).__name__}: {err}")

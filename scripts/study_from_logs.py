#!/usr/bin/env python
"""Rebuild a `biohicl reproduce` results table from its workers' logs, when the run folders are gone.

Every finished run prints one line ``[i/n] MODEL/VARIANT/seedK: done in S s (task/metric=0.1234, ...)`` (the base:
``MODEL/base``). This script collects those lines from the given logs, turns each into a results record holding only
that summary (4 decimals, as printed), and writes ``results.json``, ``results.md`` and the grouped-bar PNG through the
study's own aggregation (mean ± std over seeds, Δ vs base and vs ``full``, noise marks, targets). Training curves and
model cards need the run folders and are not rebuilt. ``results.json`` says where its numbers came from.

    python scripts/study_from_logs.py --config configs/reproduce_mpnet_gpu.yaml \\
        --output docs/results/reproduce_mpnet_gpu docs/results/reproduce_mpnet_gpu/logs/*.log
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

from biohicl.errors import ConfigError
from biohicl.evaluation.results import split_summary_key
from biohicl.study import BASE, ReproduceConfig, aggregate, plan_study, write_results
from biohicl.study.plan import RunKey, run_label

DONE = re.compile(
    r"^\[\d+/\d+\] (?P<model>[^/\s]+)/(?P<run>base|[^/\s]+/seed\d+): done in [\d.]+ s \((?P<metrics>.*)\)\s*$"
)
METRIC = re.compile(r"(?P<name>[\w@.-]+/[\w@.-]+)=(?P<value>-?\d+(?:\.\d+)?)")


def parse_logs(paths: list[Path]) -> dict[RunKey, dict[str, Any]]:
    """``{(model, variant, seed): {"summary": {...}, "source": "file:line"}}``; a run seen twice must agree."""
    records: dict[RunKey, dict[str, Any]] = {}
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            match = DONE.match(line)
            if not match:
                continue
            if match["run"] == BASE:
                key: RunKey = (match["model"], BASE, None)
            else:
                variant, seed = match["run"].rsplit("/seed", 1)
                key = (match["model"], variant, int(seed))
            summary = {m["name"]: float(m["value"]) for m in METRIC.finditer(match["metrics"])}
            if not summary:
                raise ConfigError(f"{path}, line {number}: a finished run with no metrics")
            if key in records and records[key]["summary"] != summary:
                raise ConfigError(f"{path}, line {number}: {match['run']} disagrees with {records[key]['source']}")
            tasks: dict[str, dict[str, Any]] = {}
            for name, value in summary.items():  # each task prints its main metric first
                task, metric = split_summary_key(name)
                tasks.setdefault(task, {"main_metric": metric, "metrics": {}})["metrics"][metric] = value
            records.setdefault(key, {"summary": summary, "tasks": tasks, "source": f"{path.name}:{number}"})
    return records


def dataset_counts(config: ReproduceConfig, output: Path) -> dict[str, Any]:
    """The MeSH-pair dataset's counts: its ``summary.json`` when the dataset is here, else the ``dataset`` block of
    the ``results.json`` already in ``output`` (a fresh checkout has the committed results but not the dataset),
    else ``{}``; a log line says which."""
    summary_file = Path(config.dataset.path or "") / "summary.json"
    if config.dataset.path and summary_file.is_file():
        print(f"dataset counts from {summary_file}")
        return json.loads(summary_file.read_text(encoding="utf-8"))
    previous = output / "results.json"
    if previous.is_file():
        try:
            dataset = json.loads(previous.read_text(encoding="utf-8")).get("dataset") or {}
        except (json.JSONDecodeError, AttributeError):
            dataset = {}
        if dataset:
            print(f"dataset counts from the existing {previous} (no {summary_file} here)")
            return dataset
    print(f"no dataset counts: neither {summary_file} nor a results.json with them in {output}")
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", type=Path, help="worker logs of `biohicl reproduce`")
    parser.add_argument("--config", required=True, help="the study's YAML config")
    parser.add_argument("--output", required=True, type=Path, help="folder for results.json/.md and the bars PNG")
    args = parser.parse_args(argv)
    config = ReproduceConfig.from_yaml(args.config)
    config = dataclasses.replace(config, output_dir=str(args.output))
    records = parse_logs(args.logs)
    if not records:
        print("no finished runs in these logs", file=sys.stderr)
        return 1
    dataset = dataset_counts(config, args.output)
    results = aggregate(config, records, dataset)
    planned = {(run.model, run.variant, run.seed) for run in plan_study(config)}
    for model in results["models"].values():
        if model.get("best_full_run"):
            model["best_full_run"]["run_dir"] = "run folder not kept; numbers from the logs"
    results["missing"] = sorted(run_label(key) for key in planned - set(records))
    results["source"] = {
        "rebuilt_from_logs": sorted(p.name for p in args.logs),
        "runs": {run_label(key): record["source"] for key, record in records.items()},
        "note": "summaries as printed by the workers (4 decimals); the run folders were not kept",
    }
    args.output.mkdir(parents=True, exist_ok=True)
    write_results(config, results)
    print(
        f"{len(records)} runs → {args.output}/results.md"
        + (f"; missing: {', '.join(results['missing'])}" if results["missing"] else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Lay a study's committed records (flat, as under ``docs/results/``) out as ``biohicl reproduce`` keeps its runs, so
``--report_only`` can write the study's own report over them.

``SOURCE/base/*`` goes to ``OUTPUT/MODEL/base/``, ``SOURCE/<variant>_seed<k>/*`` to
``OUTPUT/MODEL/<variant>/seed<k>/`` (copies: the report writes into the run folders); other entries of SOURCE
(reports, plots, ``paired/``) are skipped. With ``--per_item`` the per-item values of ``SOURCE/paired/<run>.json``
(``base.json``, ``<variant>_seed<k>.json``: the held-out tasks evaluated again with ``biohicl evaluate --per_item``)
go into the laid-out run's ``eval.json``, task by task, where the two agree on the task's main metric, so the report
has its paired intervals and P(Δ ≥ target) column.

    python scripts/study_from_committed.py docs/results/study_minilm_cpu_guarded_256 DIR --model minilm
    biohicl reproduce --config configs/study_minilm_cpu_guarded_256.yaml --output_dir DIR \\
        --seeds 3,4,5 --report_only

gives ``results_all_variants_seeds3-5.md``; ``--per_item`` and ``--only one_pass_distill2,one_pass_distill2_all``
with ``--seeds 3,4,5`` or ``--seeds 3,4,5,6,7,8`` give ``results_seeds3-5.md`` and ``results_seeds3-8.md``, whose
dataset line needs the dataset's build at the config's ``dataset.path`` (``runs/study/dataset`` of the working
folder: ``biohicl build-dataset --output runs/study/dataset``, the MeSH-indexed corpora of ``BIOHICL_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
from pathlib import Path

logger = logging.getLogger("study_from_committed")
RUN = re.compile(r"^(?P<variant>[A-Za-z0-9][\w.-]*)_seed(?P<seed>\d+)$")  # a variant name, never `..`


def lay_out(source: Path, output: Path, model: str) -> int:
    """Copy every run folder of ``source`` into the study layout under ``output``; returns how many were copied.
    Symlinks (folders or files) are skipped: only what the records folder itself holds is copied."""
    copied = 0
    for folder in sorted(p for p in source.iterdir() if p.is_dir() and not p.is_symlink()):
        match = RUN.match(folder.name)
        if folder.name == "base":
            target = output / model / "base"
        elif match and (folder / "eval.json").is_file():
            target = output / model / match["variant"] / f"seed{match['seed']}"
        else:
            continue
        target.mkdir(parents=True, exist_ok=True)
        for file in folder.iterdir():
            if file.is_file() and not file.is_symlink():
                shutil.copy2(file, target / file.name)
        copied += 1
    return copied


def add_per_item(source: Path, output: Path, model: str) -> int:
    """Merge the per-item values of ``source/paired/<run>.json`` into the runs laid out under ``output`` (only tasks
    whose main metric is the same number in both records); returns how many tasks got them."""
    import json

    merged = 0
    for path in sorted((source / "paired").glob("*.json")) if (source / "paired").is_dir() else []:
        match = RUN.match(path.stem)
        if path.stem == "base":
            run = output / model / "base"
        elif match:
            run = output / model / match["variant"] / f"seed{match['seed']}"
        else:
            continue  # dev_base.json and the tables' other files
        if path.is_symlink() or not (run / "eval.json").is_file():
            continue  # dev_<run>.json (dev tasks: no such variant), or a run not laid out
        record, paired = (json.loads(p.read_text(encoding="utf-8")) for p in (run / "eval.json", path))
        for name, task in paired.get("tasks", {}).items():
            mine = record.get("tasks", {}).get(name)
            main = (mine or {}).get("main_metric")
            if mine is None or "per_item" not in task or mine["metrics"].get(main) != task["metrics"].get(main):
                logger.warning("%s: %s not merged (not in the run's record, or another %s)", path.name, name, main)
                continue
            mine["per_item"] = task["per_item"]
            merged += 1
        (run / "eval.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "source", type=Path, help="the committed records (e.g. docs/results/study_minilm_cpu_guarded_256)"
    )
    parser.add_argument("output", type=Path, help="the study folder to write (pass it as --output_dir)")
    parser.add_argument("--model", default="minilm", help="the config's model name (default: minilm)")
    parser.add_argument(
        "--per_item", action="store_true", help="add the per-item values of SOURCE/paired/<run>.json (see above)"
    )
    args = parser.parse_args()
    if not args.source.is_dir():
        parser.error(f"{args.source}: not a folder of committed run records")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    copied = lay_out(args.source, args.output, args.model)
    logger.info(
        "%d run folders laid out under %s as model %r (the config's model name)", copied, args.output, args.model
    )
    if args.per_item:
        logger.info("%d tasks given their per-item values", add_per_item(args.source, args.output, args.model))


if __name__ == "__main__":
    main()

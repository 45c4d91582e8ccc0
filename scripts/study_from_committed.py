#!/usr/bin/env python
"""Lay a study's committed records (flat, as under ``docs/results/``) out as ``biohicl reproduce`` keeps its runs, so
``--report_only`` can write the study's own report over them.

``SOURCE/base/*`` goes to ``OUTPUT/MODEL/base/``, ``SOURCE/<variant>_seed<k>/*`` to
``OUTPUT/MODEL/<variant>/seed<k>/`` (copies: the report writes into the run folders); other entries of SOURCE
(reports, plots, ``paired/``) are skipped.

    python scripts/study_from_committed.py docs/results/study_minilm_cpu_guarded_256 DIR --model minilm
    biohicl reproduce --config configs/study_minilm_cpu_guarded_256.yaml --output_dir DIR \\
        --seeds 3,4,5 --report_only
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "source", type=Path, help="the committed records (e.g. docs/results/study_minilm_cpu_guarded_256)"
    )
    parser.add_argument("output", type=Path, help="the study folder to write (pass it as --output_dir)")
    parser.add_argument("--model", default="minilm", help="the config's model name (default: minilm)")
    args = parser.parse_args()
    if not args.source.is_dir():
        parser.error(f"{args.source}: not a folder of committed run records")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    copied = lay_out(args.source, args.output, args.model)
    logger.info(
        "%d run folders laid out under %s as model %r (the config's model name)", copied, args.output, args.model
    )


if __name__ == "__main__":
    main()

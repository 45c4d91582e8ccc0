"""docs/evaluation.md's `--paired` example prints what its commands give: the table is the committed
paired/heldout.md (which tests/test_significance.py recomputes from the per-item records), and those records were
written by the commands the page shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAIRED = REPO / "docs/results/study_minilm_cpu_guarded_256/paired"


def _example() -> tuple[str, str]:
    """The page's ``--paired`` commands block and the output block right after it."""
    text = (REPO / "docs/evaluation.md").read_text(encoding="utf-8")
    match = re.search(r"```bash\n(biohicl evaluate [^`]*?--paired --plot [^`]*?)```\n\n```\n(.*?)```", text, re.S)
    assert match, "docs/evaluation.md: no --paired example followed by its output"
    return match.group(1), match.group(2)


def test_the_paired_example_table_is_the_committed_record():
    _, output = _example()
    table = [line for line in output.splitlines() if line.startswith("|")]
    committed = [
        line for line in (PAIRED / "heldout.md").read_text(encoding="utf-8").splitlines() if line.startswith("|")
    ]
    assert table == committed
    assert "0.8236 (mean of 3)" in output and "[-0.03, +2.13]" in output


def test_the_paired_example_commands_wrote_the_records():
    commands, _ = _example()
    names = ("base", "one_pass_distill2_seed3", "one_pass_distill2_seed4", "one_pass_distill2_seed5")
    records = {name: json.loads((PAIRED / f"{name}.json").read_text(encoding="utf-8"))["settings"]["command"]
               for name in names}  # fmt: skip
    base = records["base"].split()
    assert base[:3] == ["biohicl", "evaluate", "sentence-transformers/all-MiniLM-L6-v2"] and "--per_item" in base
    assert base[base.index("--max_length") + 1] == "256"
    assert (
        "biohicl evaluate sentence-transformers/all-MiniLM-L6-v2 --tasks biosses,pubmedqa --per_item --max_length 256"
        in commands
    )
    for seed in (3, 4, 5):
        words = records[f"one_pass_distill2_seed{seed}"].split()
        assert words[2] == f"runs/study/guarded256/minilm/one_pass_distill2/seed{seed}"
        assert words[3:6] == ["--tasks", "biosses,pubmedqa", "--per_item"] and "--max_length" not in words
    assert (
        "biohicl evaluate runs/study/guarded256/minilm/one_pass_distill2/seed3 --tasks biosses,pubmedqa --per_item"
        in commands
    )

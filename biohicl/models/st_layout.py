"""Where a saved sentence-transformers folder keeps each module (``modules.json``), and reading a model folder's JSON
files with one-line errors. Below :mod:`~biohicl.models.backbone`, :mod:`~biohicl.models.positions` and
:mod:`~biohicl.models.signature`, which all look inside such folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biohicl.errors import ModelLoadError
from biohicl.jsonio import read_json


def read_json_file(path: Path) -> Any:
    """The JSON value of a model folder's ``path``; a one-line :class:`ModelLoadError` naming the file (and the line
    of a syntax error) when it is unreadable or garbled (:func:`~biohicl.jsonio.read_json`)."""
    return read_json(path, error=ModelLoadError)


def sentence_transformers_module_folder(path: Path, kind: str, default: str = "") -> Path:
    """The folder of the ``kind`` module (``Transformer``, ``Pooling``) of the sentence-transformers folder ``path``,
    where sentence-transformers loads it from: the ``path`` its ``modules.json`` gives it (an older layout keeps the
    backbone's config, weights and tokenizer in ``0_Transformer``), else ``path / default``. A module path leading
    out of ``path`` is a one-line :class:`ModelLoadError`."""
    modules_file = path / "modules.json"
    modules = read_json_file(modules_file) if modules_file.is_file() else None
    for module in modules if isinstance(modules, list) else []:
        if isinstance(module, dict) and str(module.get("type", "")).rsplit(".", 1)[-1] == kind:
            relative = module.get("path") or ""
            if not isinstance(relative, str) or Path(relative).is_absolute() or ".." in Path(relative).parts:
                raise ModelLoadError(
                    f"{modules_file}: module {module.get('type')!r} has path {relative!r}, not a folder inside the "
                    "model's"
                )
            return path / relative
    return path / default

"""What a model repo folder is staged from: a run's saved model (an allowlist of its files), its evaluation records
and its curves, each refused when its real path lies outside the run (a symlink to a file elsewhere would be copied
and uploaded: the repo folder's own checks only see the copy)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from biohicl.errors import PublishError
from biohicl.jsonio import read_json

#: files copied from a model folder into the repo folder (an allowlist: no optimizer state, no pickles, no run logs)
MODEL_FILE_PATTERNS = (
    "biohicl_config.json",
    "adapter_config.json",
    "adapter_model.safetensors",
    "config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/*",
    "2_Normalize/*",
)
MODEL_SUBDIRS = ("final", "best", "model")


def find_model_dir(run_dir: str | Path) -> Path:
    """The saved model inside a run: the run folder itself, else ``final/``, ``best/`` or ``model/``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PublishError(f"{run_dir}: no such run folder")
    for candidate in (run_dir, *(run_dir / sub for sub in MODEL_SUBDIRS)):
        if (candidate / "biohicl_config.json").is_file():
            return candidate
    raise PublishError(
        f"{run_dir}: no saved model (biohicl_config.json) in it or in {', '.join(s + '/' for s in MODEL_SUBDIRS)}"
    )


def inside(path: Path, folder: Path) -> Path:
    """``path``, refused (:class:`PublishError`) when its real path (symlinks followed) lies outside ``folder``."""
    target = path.resolve()
    if not target.is_relative_to(folder.resolve()):
        raise PublishError(f"{path}: resolves outside {folder} ({target}); refusing to stage it")
    return path


def model_files(model_dir: Path) -> list[Path]:
    """The allowlisted files of ``model_dir``, each checked to lie in it (:func:`inside`)."""
    picked: set[Path] = set()
    for pattern in MODEL_FILE_PATTERNS:
        picked.update(p for p in model_dir.glob(pattern) if p.is_file())
    return [inside(path, model_dir) for path in sorted(picked)]


def curve_files(run_dir: Path) -> list[Path]:
    """The run's ``*.png`` and ``plots/*.png``, each checked to lie in the run folder."""
    return [inside(png, run_dir) for png in sorted([*run_dir.glob("*.png"), *run_dir.glob("plots/*.png")])]


def check_eval_record(path: Path) -> Path:
    """``path``, refused (:class:`PublishError`) unless it is a biohicl evaluation record as
    :func:`biohicl.evaluation.runner.evaluate_model` writes it (``biohicl evaluate``, a study's ``eval.json``):
    ``format`` the results format, ``tasks`` and ``model`` mappings. Any other JSON (a docker config ...) would be
    uploaded as the repo's ``eval_results.json``."""
    from biohicl.evaluation.runner import RESULTS_FORMAT

    record = read_json(path, error=PublishError)
    fields = record if isinstance(record, dict) else {}
    if fields.get("format") != RESULTS_FORMAT:
        wrong = f"`format` is {fields['format']!r}, not {RESULTS_FORMAT}" if "format" in fields else "no `format`"
    else:
        wrong = next((f"no `{key}` mapping" for key in ("tasks", "model") if not isinstance(fields.get(key), dict)), "")
    if wrong:
        raise PublishError(
            f"{path}: not a biohicl evaluation record ({wrong}; pass the JSON `biohicl evaluate` writes); "
            "refusing to publish it"
        )
    return path


_MACHINE_PATH = re.compile(r"^(?:~|/|[A-Za-z]:[\\/]|\\\\)|\.\.[\\/]")


def without_machine_paths(value: Any) -> Any:
    """``value`` (JSON) with each word of its strings that is an absolute path (or climbs with ``..``), alone or
    as ``--key=PATH``, reduced to the file or folder name: ``biohicl evaluate /home/me/runs/x`` → ``... x``."""
    if isinstance(value, dict):
        return {key: without_machine_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_machine_paths(item) for item in value]
    if not isinstance(value, str):
        return value
    words = []
    for word in value.split(" "):
        key, equals, path = word.partition("=") if word.startswith("-") and "=" in word else ("", "", word)
        if _MACHINE_PATH.search(path):
            path = re.split(r"[\\/]", path.rstrip("/\\"))[-1] or path
        words.append(key + equals + path)
    return " ".join(words)


def copy_without_machine_paths(src: Path, dest: Path) -> None:
    """Copy an evaluation record for upload without the local paths it holds (``settings.command`` records the raw
    command line); the local record is left as it is."""
    record = without_machine_paths(read_json(src, error=PublishError))
    dest.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

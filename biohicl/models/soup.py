"""Averaging LoRA adapters of one recipe (say, its seeds) into one adapter, exactly: a "model soup".

Adapter ``i`` (rank ``r_i``, LoRA scaling ``s_i = alpha_i / r_i``, or ``alpha_i / sqrt(r_i)`` with rsLoRA) changes a
target weight by ``s_i · B_i A_i``. The soup with weights ``c_i`` changes it by ``Σ c_i s_i B_i A_i``, which is one
LoRA adapter of rank ``Σ r_i`` with the adapters side by side: ``A = [c_1 s_1 A_1; …; c_n s_n A_n]``,
``B = [B_1 … B_n]`` and scaling 1 (``lora_alpha = rank``). That is peft's ``cat`` combination
(``add_weighted_adapter``), done here on the saved files, so no base model is loaded. The adapters must sit on the same
base, encode the same way (``biohicl_config.json``) and adapt the same modules.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from biohicl.atomic import atomic_directory, check_writable_folder
from biohicl.errors import ConfigError, ModelLoadError
from biohicl.jsonio import read_json
from biohicl.models.base_identity import same_base
from biohicl.models.config import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, CONFIG_NAME
from biohicl.models.resolver import is_hub_id

logger = logging.getLogger(__name__)

#: What the soup records about how it was made, beside the adapter.
SOUP_RECORD_NAME = "soup.json"
#: ``biohicl_config.json`` fields that may differ between the adapters (the soup takes the first one's).
_FREE_CONFIG_FIELDS = {"biohicl_version"}
#: ``adapter_config.json`` fields that must be equal for the adapters to add up.
_SAME_ADAPTER_FIELDS = ("peft_type", "target_modules", "bias", "modules_to_save", "fan_in_fan_out", "task_type")
#: Tokenizer files copied from the first adapter (whichever it has).
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt",
    "sentencepiece.bpe.model", "spiece.model", "added_tokens.json",
)  # fmt: skip
#: sentence-transformers' module files of an adapter (so ``SentenceTransformer(soup)`` encodes as BioHiCL does).
_SENTENCE_TRANSFORMERS_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


def _as_set(value: Any) -> Any:
    """A module list compared as a set (peft saves ``target_modules`` from a set, in any order)."""
    return frozenset(value) if isinstance(value, list) else value


def _scaling(folder: Path, config: dict[str, Any]) -> float:
    """LoRA's scaling of the adapter in ``folder`` (refusing what a plain sum of ``B A`` cannot express)."""
    if config.get("peft_type") != "LORA":
        raise ConfigError(f"{folder}: peft_type {config.get('peft_type')!r}; a soup averages LoRA adapters only")
    for name in ("use_dora", "lora_bias"):
        if config.get(name):
            raise ConfigError(f"{folder}: {name} is set; a soup averages plain LoRA adapters only")
    for name in ("rank_pattern", "alpha_pattern"):
        if config.get(name):
            raise ConfigError(f"{folder}: {name} is set; a soup needs one rank and alpha per adapter")
    if not isinstance(config.get("r"), int) or not isinstance(config.get("lora_alpha"), (int, float)):
        raise ConfigError(f"{folder / ADAPTER_CONFIG_NAME}: r and lora_alpha must be numbers")
    rank, alpha = config["r"], float(config["lora_alpha"])
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def soup_weights(n: int, weights: Sequence[float] | None) -> list[float]:
    """The soup's weight per adapter: equal (``1/n``) by default; given ones must be one per adapter and sum to 1."""
    if n < 2:
        raise ConfigError(f"adapters: a soup needs at least two adapters, got {n}")
    if weights is None:
        return [1.0 / n] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise ConfigError(f"weights: {len(weights)} given for {n} adapters")
    if any(w < 0 for w in weights) or not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
        raise ConfigError(f"weights: must be non-negative and sum to 1 (an average), got {weights}")
    return weights


def soup_adapters(folders: Sequence[str | Path], output: str | Path, weights: Sequence[float] | None = None) -> Path:
    """Write the weighted average of the LoRA adapters saved in ``folders`` as one adapter in ``output``.

    ``weights`` default to equal. The result loads like any adapter (``BioHiCL.from_pretrained(output)``) and its
    weight change is exactly the weighted mean of the adapters' (rank = the sum of their ranks). ``output`` is written
    whole or not at all, and records how it was made in ``soup.json``; an earlier soup there is replaced, any other
    non-empty folder is refused.
    """
    import torch
    from safetensors.torch import load_file, save_file

    paths = [Path(f) for f in folders]
    coefficients = soup_weights(len(paths), weights)
    if Path(output).resolve() in {p.resolve() for p in paths}:
        raise ConfigError(f"output: {output} is one of the adapters being averaged; write the soup elsewhere")
    target = check_writable_folder(output, "--output")
    if target.is_dir() and not (target / SOUP_RECORD_NAME).is_file() and any(target.iterdir()):
        raise ConfigError(f"output: {output} exists and is not a soup (no {SOUP_RECORD_NAME}); choose a new folder")
    missing = "missing (a soup averages saved biohicl LoRA adapters)"
    encoders = [read_json(p / CONFIG_NAME, missing=missing, error=ModelLoadError) for p in paths]
    adapters = [read_json(p / ADAPTER_CONFIG_NAME, missing=missing, error=ModelLoadError) for p in paths]
    first, first_adapter = encoders[0], adapters[0]
    for path, encoder, adapter in zip(paths[1:], encoders[1:], adapters[1:], strict=True):
        for key in sorted((set(encoder) | set(first)) - _FREE_CONFIG_FIELDS):
            same = same_base if key == "base_model" else operator.eq  # one folder, recorded as typed or absolute
            if not same(encoder.get(key), first.get(key)):
                raise ConfigError(
                    f"{path / CONFIG_NAME}: {key} differs from {paths[0]}'s; a soup's adapters must match"
                )
        for key in _SAME_ADAPTER_FIELDS:
            if _as_set(adapter.get(key)) != _as_set(first_adapter.get(key)):
                raise ConfigError(
                    f"{path / ADAPTER_CONFIG_NAME}: {key} differs from {paths[0]}'s; a soup's adapters must match"
                )
    bases = [e["base_model"] for e in encoders if isinstance(e.get("base_model"), str)]
    hub = [b for b in bases if is_hub_id(b)]
    absolute = [b for b in bases if Path(b).expanduser().is_absolute()]
    if (hub or absolute) and "base_model" in first:  # one base recorded in several forms (same_base)
        first = {**first, "base_model": (hub or absolute)[0]}  # a Hub id, else the path that works from anywhere
    scalings = [_scaling(p, a) for p, a in zip(paths, adapters, strict=True)]
    states = []
    for path in paths:
        if not (path / ADAPTER_WEIGHTS_NAME).is_file():
            raise ModelLoadError(f"{path}: {ADAPTER_WEIGHTS_NAME} is missing (only safetensors adapters load)")
        states.append(load_file(str(path / ADAPTER_WEIGHTS_NAME)))
    keys = sorted(states[0])
    for path, state in zip(paths[1:], states[1:], strict=True):
        if sorted(state) != keys:
            extra = sorted(set(state) ^ set(keys))[0]
            raise ConfigError(f"{path / ADAPTER_WEIGHTS_NAME}: its tensors differ from {paths[0]}'s (e.g. {extra})")

    soup: dict[str, torch.Tensor] = {}
    for key in keys:
        if ".lora_A." in key:
            parts = [c * s * state[key] for c, s, state in zip(coefficients, scalings, states, strict=True)]
            soup[key] = torch.cat(parts, dim=0).contiguous()
        elif ".lora_B." in key:
            soup[key] = torch.cat([state[key] for state in states], dim=1).contiguous()
        else:
            raise ConfigError(f"{paths[0] / ADAPTER_WEIGHTS_NAME}: {key} is neither LoRA A nor B; cannot average it")
    rank = sum(int(a["r"]) for a in adapters)
    adapter_config = {
        **first_adapter,
        **({"base_model_name_or_path": first["base_model"]} if "base_model" in first else {}),  # as biohicl_config
        "r": rank,
        "lora_alpha": rank,
        "use_rslora": False,
        "rank_pattern": {},
        "alpha_pattern": {},
    }
    record = {
        "adapters": [str(p) for p in paths],
        "weights": coefficients,
        "ranks": [int(a["r"]) for a in adapters],
        "rank": rank,
        "method": "LoRA adapters side by side (peft's `cat`): weight change = weighted mean of theirs",
    }
    with atomic_directory(output) as tmp:
        save_file(soup, str(tmp / ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / ADAPTER_CONFIG_NAME).write_text(json.dumps(adapter_config, indent=2) + "\n", encoding="utf-8")
        (tmp / CONFIG_NAME).write_text(json.dumps(first, indent=2) + "\n", encoding="utf-8")
        (tmp / SOUP_RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        for name in (*_TOKENIZER_FILES, *_SENTENCE_TRANSFORMERS_FILES):  # the adapters encode alike (checked)
            if (paths[0] / name).is_file():
                shutil.copyfile(paths[0] / name, tmp / name)
        for module in ("1_Pooling", "2_Normalize"):
            if (paths[0] / module).is_dir():
                shutil.copytree(paths[0] / module, tmp / module)
    logger.info("soup of %d adapters (rank %d, weights %s) written to %s", len(paths), rank, coefficients, output)
    return Path(output)

"""Checks that a LoRA adapter is loaded onto the base model it was trained on (shape, Hub id, weight signature).

Shapes that cannot load always fail; a base of the right shape that is not the recorded one fails unless
``force_base`` (then it warns and loads).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from biohicl.errors import ModelLoadError
from biohicl.jsonio import read_json
from biohicl.models.config import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, CONFIG_NAME, BioHiCLConfig
from biohicl.models.resolver import ResolvedModel, hub_id_from_folder, looks_like_path
from biohicl.models.signature import recorded_peft_weights, signature_mismatch

#: The adapter folders being loaded as bases, outermost first (an adapter over an adapter loads its base merged).
_BASES_LOADING: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar("biohicl_bases_loading", default=())


def adapter_loop(chain: tuple[Path, ...], folder: Path) -> str:
    """What is wrong when ``folder`` (resolved) comes back in ``chain``, the adapter folders loading as bases,
    outermost first: ``the adapters' bases form a loop (A → B → A); ...``."""
    loop = " → ".join(str(f) for f in (*chain[chain.index(folder) :], folder))
    return f"the adapters' bases form a loop ({loop}); give a base that is not an adapter"


@contextlib.contextmanager
def loading_adapter_base(path: Path) -> Iterator[None]:
    """Mark ``path`` as an adapter folder being loaded as a base; a base chain that comes back to a folder already
    being loaded (A's base is B, B's base is A) is one :class:`ModelLoadError` naming the chain, not a recursion."""
    chain, folder = _BASES_LOADING.get(), path.resolve()
    if folder in chain:
        raise ModelLoadError(f"{path}: {adapter_loop(chain, folder)}")
    token = _BASES_LOADING.set((*chain, folder))
    try:
        yield
    finally:
        _BASES_LOADING.reset(token)


logger = logging.getLogger(__name__)

_LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")


def _refuse_base(adapter_dir: Path, why: str, force_base: bool) -> None:
    message = f"{adapter_dir}: {why}"
    if force_base:
        warnings.warn(f"{message}; loading it anyway (force_base)", UserWarning, stacklevel=4)
        return
    raise ModelLoadError(
        f"{message}; load it onto the base it was trained on, or force it with force_base=True "
        "(biohicl evaluate --force_base)"
    )


def _in_features(base: nn.Module, name: str, hidden: int) -> int:
    """The input width of the base module a LoRA wraps (an FFN down-projection takes the intermediate size), or the
    hidden size when the module is not found or has no ``in_features``."""
    try:
        module = base.get_submodule(name)
    except AttributeError:
        return hidden
    return int(getattr(module, "in_features", hidden))


def check_adapter_fits(adapter_dir: Path, base: nn.Module, config: BioHiCLConfig, force_base: bool = False) -> None:
    """Fail clearly when an adapter is loaded onto a base model it was not trained for.

    Shapes that cannot load always fail; a base of the right shape that is not the recorded one (``base_signature``)
    or has more layers than the adapter covers fails unless ``force_base``.
    """
    from safetensors import safe_open

    hidden = int(base.config.hidden_size)
    layers = getattr(base.config, "num_hidden_layers", None)
    try:
        with safe_open(str(adapter_dir / ADAPTER_WEIGHTS_NAME), framework="pt") as handle:
            keys = list(handle.keys())
            for key in keys:
                if ".lora_A." not in key:
                    continue
                name = key.split(".lora_A.", 1)[0].removeprefix("base_model.model.")
                in_features = handle.get_slice(key).get_shape()[1]
                expected = _in_features(base, name, hidden)
                if in_features == expected:
                    continue
                if expected == hidden:
                    raise ModelLoadError(
                        f"{adapter_dir}: adapter was trained for a base with hidden size {in_features}, "
                        f"but {config.base_model} has hidden size {hidden} ({name})"
                    )
                raise ModelLoadError(
                    f"{adapter_dir}: adapter's LoRA on {name} takes {in_features} inputs, but that module of "
                    f"{config.base_model} takes {expected}"
                )
        indices = [int(m.group(1)) for m in map(_LAYER_INDEX.search, keys) if m]
        if layers is not None and indices and max(indices) >= layers:
            raise ModelLoadError(
                f"{adapter_dir}: adapter has weights for layer {max(indices)}, but the base model "
                f"{config.base_model} has only {layers} layers"
            )
    except ModelLoadError:
        raise
    except Exception as err:
        raise ModelLoadError(f"{adapter_dir / ADAPTER_WEIGHTS_NAME}: unreadable safetensors file ({err})") from None
    adapter_config = read_json(adapter_dir / ADAPTER_CONFIG_NAME, error=ModelLoadError)
    if not isinstance(adapter_config, dict):
        raise ModelLoadError(f"{adapter_dir / ADAPTER_CONFIG_NAME}: expected a JSON object")
    recorded = adapter_config.get("base_model_name_or_path")
    if recorded and recorded != config.base_model and not os.path.isdir(recorded):
        raise ModelLoadError(
            f"{adapter_dir}: adapter_config.json says base {recorded!r}, biohicl_config.json says {config.base_model!r}"
        )
    if config.base_signature:
        stale = recorded_peft_weights(config.base_signature)
        if stale:
            logger.info(
                "%s: saved before biohicl left peft weights out of base signatures: its base_signature records the "
                "adapter's own %s, skipped (the other recorded weights are checked); "
                "BioHiCL.from_pretrained(DIR).save_pretrained(DIR) re-records it",
                adapter_dir,
                ", ".join(stale),
            )
        why = signature_mismatch(config.base_signature, base)
        if why is not None:
            _refuse_base(
                adapter_dir,
                f"this base is not {config.base_model}, the one the adapter was trained on ({why})",
                force_base,
            )
    elif (
        layers is not None
        and indices
        and max(indices) + 1 < layers
        and adapter_config.get("layers_to_transform") is None
        and not isinstance(adapter_config.get("target_modules"), str)  # a regex may pick some layers on purpose
    ):
        _refuse_base(
            adapter_dir,
            f"adapter has LoRA weights for {max(indices) + 1} layers, but the base has {layers} "
            f"(it was trained on another base than this one)",
            force_base,
        )


def _recorded_base(folder: Path) -> str | None:
    """The base model id an adapter folder says it was trained on (biohicl_config.json, else adapter_config.json)."""
    for name, key in ((CONFIG_NAME, "base_model"), (ADAPTER_CONFIG_NAME, "base_model_name_or_path")):
        file = folder / name
        if file.is_file():
            values = read_json(file, error=ModelLoadError)
            if not isinstance(values, dict):
                raise ModelLoadError(f"{file}: expected a JSON object, got {type(values).__name__}")
            value = values.get(key)
            if value is not None and not isinstance(value, str):
                raise ModelLoadError(f"{file}: {key} must be a string, got {value!r}")
            if value:
                return value
    return None


def check_recorded_base(resolved: ResolvedModel, base_model_path: str | Path | None, force_base: bool = False) -> None:
    """Refuse an adapter whose recorded base differs from the registry's or from an explicitly given base id
    (``force_base``: warn and load it anyway); a registered adapter must be an adapter folder."""
    folder, name = resolved.path, resolved.repo_id or resolved.spec  # a folder given its registry entry: as typed
    if not (folder / ADAPTER_CONFIG_NAME).is_file():
        if resolved.entry is not None and resolved.entry.kind == "adapter":
            raise ModelLoadError(f"{name}: the registry lists an adapter but the repo has no {ADAPTER_CONFIG_NAME}")
        return
    given_path = None if base_model_path is None else Path(base_model_path).expanduser()
    if given_path is not None and looks_like_path(str(base_model_path)) and not given_path.exists():
        raise ModelLoadError(f"base_model_path: {base_model_path} does not exist")  # a path, not "another base"
    recorded = _recorded_base(folder)
    entry = resolved.entry
    if entry is not None and recorded is not None and recorded != entry.base_model:
        raise ModelLoadError(
            f"{name}: adapter was trained on {recorded!r} but the registry entry {entry.name} "
            f"says base {entry.base_model!r}"
        )
    if base_model_path is None or recorded is None:
        return
    given = str(base_model_path)
    base_dir = Path(given).expanduser()
    given_id = (hub_id_from_folder(base_dir) if base_dir.is_dir() else given) or None
    if given_id is not None and given_id != recorded:
        message = f"{folder}: adapter was trained on base {recorded!r}, not {given_id!r}"
        if force_base:
            warnings.warn(f"{message}; loading it anyway (force_base)", UserWarning, stacklevel=3)
            return
        raise ModelLoadError(
            f"{message}; load it onto the base it was trained for, or force it with force_base=True "
            "(biohicl evaluate --force_base)"
        )

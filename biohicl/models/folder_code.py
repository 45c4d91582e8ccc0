"""What a model folder's own files may not make biohicl run: a tokenizer's custom code (``auto_map`` in
``tokenizer_config.json``) and an attention kernel fetched from the Hub (``attn_implementation`` in ``config.json``).

A model folder is untrusted input (a Hub repo, a folder someone shared): its JSON names classes and kernels, and
transformers, left to its defaults, asks on the terminal whether to run a tokenizer's code ("Do you wish to run the
custom code? [y/N]", one ``y`` ran it) and downloads and loads the native code of a kernel a config names. biohicl
loads with ``trust_remote_code=False`` and refuses both in one :class:`~biohicl.errors.ModelLoadError` line naming
the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biohicl.errors import ModelLoadError
from biohicl.models.st_layout import read_json_file

TOKENIZER_CONFIG_NAME = "tokenizer_config.json"


def tokenizer_code_reference(folder: Path) -> str | None:
    """The class a folder's ``tokenizer_config.json`` maps ``AutoTokenizer`` to in ``auto_map`` (``evil.EvilTok``,
    ``owner/repo--module.Class``; the fast one first, as transformers picks it), else None."""
    config = folder / TOKENIZER_CONFIG_NAME
    values = read_json_file(config) if config.is_file() else {}
    auto_map = values.get("auto_map") if isinstance(values, dict) else None
    references = auto_map.get("AutoTokenizer") if isinstance(auto_map, dict) else auto_map  # a list: the old layout
    if isinstance(references, str):
        return references
    if isinstance(references, (list, tuple)):
        return next((str(ref) for ref in reversed(references) if ref), None)
    return None


def load_folder_tokenizer(folder: Path) -> Any:
    """``AutoTokenizer`` of ``folder`` with ``trust_remote_code=False``: transformers then never asks on the terminal
    and never runs a folder's code (a ``tokenizer_class`` it has loads as that class, the ``auto_map`` ignored). A
    tokenizer only custom code would load is a one-line :class:`ModelLoadError` naming ``tokenizer_config.json``,
    its ``auto_map`` and the class."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except ValueError:
        reference = tokenizer_code_reference(folder)
        if reference is None:
            raise
        values = read_json_file(folder / TOKENIZER_CONFIG_NAME)
        raise ModelLoadError(
            f"{folder / TOKENIZER_CONFIG_NAME}: field auto_map maps AutoTokenizer to custom code {reference!r} "
            f"(tokenizer_class {values.get('tokenizer_class')!r} is no transformers class); biohicl never runs a "
            "model folder's code (trust_remote_code is never set): save the tokenizer as a transformers class"
        ) from None


def builtin_attention_names() -> list[str]:
    """The attention implementations transformers has built in: ``eager`` and its attention interface's keys
    (``sdpa``, ``flash_attention_2``, ``flex_attention``, ``paged|eager``, ...)."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ["eager", *ALL_ATTENTION_FUNCTIONS.valid_keys()]


def attention_values(values: Any) -> list[Any]:
    """Every ``attn_implementation`` a config's JSON sets, at any depth (a sub-config's too); a per-sub-config
    mapping (``{"": "sdpa", "text_config": "eager"}``) gives each of its values."""
    found: list[Any] = []
    if isinstance(values, dict):
        for key, value in values.items():
            if key == "attn_implementation" and value is not None:
                found += list(value.values()) if isinstance(value, dict) else [value]
            else:
                found += attention_values(value)
    elif isinstance(values, list):
        for value in values:
            found += attention_values(value)
    return found


def check_attention_implementation(config: Path) -> None:
    """A one-line :class:`ModelLoadError` naming ``config`` (a model's ``config.json``) and its ``attn_implementation``
    when that is not one of transformers' built-in names (:func:`builtin_attention_names`): an ``owner/repo`` value is
    a kernel transformers would download from the Hub and load as native code, any other name one it cannot load.
    A folder without the field, or with a built-in name, loads as transformers loads it; so does a ``config.json``
    that is no JSON (transformers refuses it, naming the file)."""
    try:
        values = read_json_file(config) if config.is_file() else {}
    except ModelLoadError:
        return
    builtin = builtin_attention_names()
    for value in attention_values(values):
        name = value.removeprefix("paged|") if isinstance(value, str) else value
        if isinstance(name, str) and "/" not in name and name in builtin:
            continue
        whole = values.get("attn_implementation") if isinstance(values, dict) else None
        shown = whole if whole is not None else value
        hub = isinstance(name, str) and "/" in name
        kind = "a Hub kernel (native code biohicl does not load)" if hub else "no attention transformers has built in"
        raise ModelLoadError(
            f"{config}: field attn_implementation is {shown!r}, {kind}; biohicl "
            f"loads a model folder's attention only by transformers' built-in names ({', '.join(map(repr, builtin))}): "
            "remove the field or set one of them"
        )

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

"""What a saved model folder holds besides the weights: sentence-transformers' module files (so
``SentenceTransformer(folder)`` encodes like biohicl) and group-readable weight files."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from biohicl.atomic import shareable_mode
from biohicl.errors import ModelLoadError
from biohicl.field_types import is_count
from biohicl.jsonio import read_json
from biohicl.models.config import BioHiCLConfig

logger = logging.getLogger(__name__)

#: peft methods whose adapter folder ``SentenceTransformer(folder)`` loads as peft does (transformers' peft
#: integration; ``tests/test_peft_methods.py`` checks each): a DoRA adapter is not one of them (transformers drops its
#: ``lora_magnitude_vector`` weights), nor a method no test has checked
SENTENCE_TRANSFORMERS_PEFT_TYPES = ("LORA", "IA3", "LOHA", "LOKR")


def make_shareable(directory: str | Path, pattern: str = "*.safetensors") -> None:
    """Give the weight files of a saved folder the usual ``0666``-less-umask mode: safetensors writes through a
    temporary file and leaves them owner-only (``0600``), unreadable to the group a model is shared with."""
    mode = shareable_mode()
    for path in Path(directory).glob(pattern):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def folder_hidden_size(directory: Path) -> int:
    """The embedding width of the model whose ``config.json`` is in ``directory``, as transformers' config reads it
    (its ``hidden_size``, an alias where the family names it otherwise: DistilBERT's ``dim``); a one-line
    :class:`ModelLoadError` naming the file when it gives none."""
    from transformers import AutoConfig

    config_file = directory / "config.json"
    try:
        hidden = getattr(AutoConfig.from_pretrained(str(directory), trust_remote_code=False), "hidden_size", None)
    except Exception:  # an unknown model type (remote code), a value its config refuses: the file's own field
        values = read_json(config_file, error=ModelLoadError)
        hidden = values.get("hidden_size") if isinstance(values, dict) else None
    if not is_count(hidden):
        raise ModelLoadError(
            f"{config_file}: gives no embedding width (hidden_size, or its family's name for it), which "
            f"sentence-transformers' pooling config needs; got {hidden!r}"
        )
    return hidden


def write_sentence_transformers_files(directory: Path, config: BioHiCLConfig, hidden_size: int | None = None) -> None:
    """``modules.json`` + pooling config so ``SentenceTransformer(directory)`` reproduces ``BioHiCL.encode``;
    ``hidden_size`` defaults to the width the folder's ``config.json`` gives (:func:`folder_hidden_size`; an adapter
    folder has none: pass the model's)."""
    hidden = hidden_size or folder_hidden_size(directory)  # before any file: a refused folder gets none
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if config.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (directory / "2_Normalize").mkdir(exist_ok=True)
    (directory / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (directory / "1_Pooling").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": hidden,
        "pooling_mode_cls_token": config.pooling == "cls",
        "pooling_mode_mean_tokens": config.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
    (directory / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": config.max_length, "do_lower_case": False}, indent=2) + "\n"
    )
    prompts = {"query": config.query_prompt, "document": config.document_prompt}
    (directory / "config_sentence_transformers.json").write_text(
        json.dumps(  # BioHiCL.encode's default kind is the document: so is SentenceTransformer.encode's prompt
            {
                "prompts": prompts,
                "default_prompt_name": "document" if config.document_prompt else None,
                "similarity_fn_name": "cosine",
            },
            indent=2,
        )
        + "\n"
    )


def peft_method_name(peft_type: Any, use_dora: bool = False) -> str:
    """A peft method as ``adapter_config.json`` names it (``LORA``, ``IA3``, ``LOHA`` ...; a ``PeftType`` or its
    string, None: ``LORA``), ``DORA`` for LoRA with ``use_dora``: what an adapter's sentence-transformers files and
    its model card (``biohicl.hub.card_adapter``) both go by."""
    name = str(getattr(peft_type, "value", peft_type) or "LORA").upper()
    return "DORA" if name == "LORA" and use_dora else name


def peft_method(peft_config: Any) -> str:
    """A peft config's method (:func:`peft_method_name` of its ``peft_type`` and ``use_dora``)."""
    return peft_method_name(getattr(peft_config, "peft_type", None), bool(getattr(peft_config, "use_dora", False)))


def write_loading_files(directory: Path, config: BioHiCLConfig, hidden_size: int, peft_config: Any = None) -> None:
    """sentence-transformers' module files (:func:`write_sentence_transformers_files`) for a full model or an adapter
    of a method sentence-transformers loads right (:data:`SENTENCE_TRANSFORMERS_PEFT_TYPES`); for another adapter
    none (an earlier save's removed), so ``SentenceTransformer(directory)`` is not offered a folder it would load
    wrong, and one line says that the merged export is its sentence-transformers route."""
    method = None if peft_config is None else peft_method(peft_config)
    if method is None or method in SENTENCE_TRANSFORMERS_PEFT_TYPES:
        write_sentence_transformers_files(directory, config, hidden_size=hidden_size)
        return
    for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        (directory / name).unlink(missing_ok=True)  # an earlier save's into the same folder
    for module in ("1_Pooling", "2_Normalize"):
        shutil.rmtree(directory / module, ignore_errors=True)
    logger.info(
        "%s: a %s adapter: no sentence-transformers module files written (SentenceTransformer would not load it as "
        "trained); its sentence-transformers route is the merged export (BioHiCL.save_merged, biohicl publish --merge)",
        directory,
        method,
    )

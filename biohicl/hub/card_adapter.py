"""What a model card says about an adapter's peft method: its name (LoRA, DoRA, IA3, LoHa ...), its rows in the
hyperparameter table (from the saved ``adapter_config.json``, not the arguments' ``lora_*`` defaults) and whether
sentence-transformers loads it."""

from __future__ import annotations

from typing import Any

from biohicl.errors import PublishError
from biohicl.models.config import ADAPTER_CONFIG_NAME
from biohicl.models.export import SENTENCE_TRANSFORMERS_PEFT_TYPES, peft_method_name

LORA_KEYS = {"lora_r": "r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout"}
#: the arguments' LoRA rows, left out of the card of an adapter of another peft method (they never trained)
LORA_ARGS = frozenset({*LORA_KEYS, "lora_target_modules"})
#: the fields of another peft method's ``adapter_config.json`` the card shows (those it has)
PEFT_KEYS = ("r", "alpha", "rank_dropout", "module_dropout", "target_modules", "feedforward_modules", "modules_to_save")
#: how the card words a peft method (``adapter_config.json``'s ``peft_type``); another is shown as recorded
PEFT_NAMES = {"LORA": "LoRA", "DORA": "DoRA", "IA3": "IA3", "LOHA": "LoHa", "LOKR": "LoKr", "ADALORA": "AdaLoRA"}
#: the ``adapter_config.json`` fields that name modules: a name (peft reads a string as a regex) or a list of names
MODULE_FIELDS = ("target_modules", "feedforward_modules", "modules_to_save")


def check_adapter_config(adapter: Any) -> dict[str, Any]:
    """``adapter`` (an ``adapter_config.json``'s value) when it is a JSON object whose :data:`MODULE_FIELDS` are
    unset, a string or a list of strings; else a one-line :class:`PublishError` naming the file and field."""
    if not isinstance(adapter, dict):
        raise PublishError(f"{ADAPTER_CONFIG_NAME}: expected a JSON object, got {type(adapter).__name__}")
    for field in MODULE_FIELDS:
        value = adapter.get(field)
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
            raise PublishError(
                f"{ADAPTER_CONFIG_NAME}: field {field} must be a module name or a list of module names, got {value!r}"
            )
    return adapter


def adapter_rows(values: dict[str, Any], adapter: dict[str, Any]) -> dict[str, Any]:
    """``values`` (the card's hyperparameter rows) with the adapter's own: r, alpha, dropout, target modules and
    ``use_dora`` of a LoRA adapter; ``peft_type`` and :data:`PEFT_KEYS` of another, its ``lora_*`` rows dropped.
    An ``adapter`` that is not a JSON object, or names modules with anything but strings, is a one-line
    :class:`PublishError` (:func:`check_adapter_config`)."""
    adapter = check_adapter_config(adapter)
    values = dict(values)
    if adapter.get("peft_type", "LORA") == "LORA":
        values.update({key: adapter[name] for key, name in LORA_KEYS.items() if adapter.get(name) is not None})
        if adapter.get("target_modules") is not None:
            modules = adapter["target_modules"]
            values["lora_target_modules"] = modules if isinstance(modules, str) else sorted(modules)
        if adapter.get("use_dora"):
            values["use_dora"] = True
        return values
    values = {k: v for k, v in values.items() if k not in LORA_ARGS}
    values["peft_type"] = adapter["peft_type"]
    for key in PEFT_KEYS:
        value = adapter.get(key)
        if value is not None and value != []:
            values[key] = sorted(value) if isinstance(value, list) else value
    return values


def peft_name(peft_type: str | None, hyperparameters: dict[str, Any]) -> str:
    """The method as the card words it: ``LoRA``, ``DoRA``, ``IA3``, ``LoHa`` ... (another as recorded)."""
    method = peft_method_name(peft_type, bool(hyperparameters.get("use_dora")))
    return PEFT_NAMES.get(method, peft_type or "LoRA")


def sentence_transformers_loads(kind: str, peft_type: str | None, hyperparameters: dict[str, Any]) -> bool:
    """Whether ``SentenceTransformer(repo)`` loads the weights as trained: a merged or full model, or an adapter of a
    method whose folder gets sentence-transformers' module files (``biohicl.models.export.write_loading_files``)."""
    method = peft_method_name(peft_type, bool(hyperparameters.get("use_dora")))
    return kind != "adapter" or method in SENTENCE_TRANSFORMERS_PEFT_TYPES

"""What an adapter wraps: a peft method's default target modules for a backbone (peft's own table for that method,
else biohicl's for the encoder types peft has none for), and peft's target errors as one line naming the field the
user set (``lora_target_modules`` for LoRA settings, ``peft_config`` for a peft config)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from torch import nn

from biohicl.errors import ConfigError

#: LoRA targets for encoder types peft has no default for: the attention query/value projections, as peft picks for
#: BERT (``query``/``value``). MPNet (all-mpnet-base-v2) names them ``q``/``k``/``v``/``o``, DistilBERT
#: ``q_lin``/``k_lin``/``v_lin``/``out_lin``. ModernBERT fuses the query, key and value projections into one linear
#: layer, ``Wqkv``: there is no query or value layer of its own to pick, so the fused one is adapted.
EXTRA_LORA_TARGET_MODULES: dict[str, list[str]] = {
    "mpnet": ["q", "v"],
    "distilbert": ["q_lin", "v_lin"],
    "modernbert": ["Wqkv"],
}
#: peft methods :data:`EXTRA_LORA_TARGET_MODULES` is a default for: those that add a low-rank (LoRA, DoRA: LoRA with
#: ``use_dora``), Hadamard (LoHa) or Kronecker (LoKr) update to a linear layer and whose own peft table picks BERT's
#: query/value projections, as the table does (``tests/test_families.py`` trains each on DistilBERT and ModernBERT).
#: IA3 scales activations (its peft default is key, value and the feed-forward output), so it gets none.
EXTRA_TARGET_METHODS = ("LORA", "LOHA", "LOKR")


def peft_type_name(peft_config: Any) -> str:
    """A peft config's ``peft_type`` as its table name (``LORA``, ``IA3``, ``LOHA`` ...); LoRA for None (biohicl's
    LoRA settings)."""
    if peft_config is None:
        return "LORA"
    peft_type = getattr(peft_config, "peft_type", None)
    return str(getattr(peft_type, "value", peft_type) or "LORA").upper()


def peft_default_table(method: str) -> dict[str, Any] | None:
    """peft's default ``target_modules`` per model type for ``method``: the table its tuner fills an unset
    ``target_modules`` from (``target_module_mapping``), else ``peft.utils.constants``'
    ``TRANSFORMERS_MODELS_TO_<METHOD>_TARGET_MODULES_MAPPING`` (IA3's tuner reads that one itself); None where peft
    has none (a prompt method, or a peft that moved them): peft then decides."""
    try:
        from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING
        from peft.utils import constants
    except ImportError:
        return None
    table = getattr(PEFT_TYPE_TO_TUNER_MAPPING.get(method), "target_module_mapping", None)
    if table is None:
        table = getattr(constants, f"TRANSFORMERS_MODELS_TO_{method.replace('_', '')}_TARGET_MODULES_MAPPING", None)
    return table if isinstance(table, dict) else None


def model_type(backbone: nn.Module) -> str | None:
    """The transformers ``model_type`` of ``backbone`` (None without a config)."""
    return getattr(getattr(backbone, "config", None), "model_type", None)


def shown_names(names: list[str], limit: int = 12) -> str:
    """``names`` joined, the first ``limit`` only (``, ...`` after them), or ``none``."""
    return (", ".join(names[:limit]) or "none") + (", ..." if len(names) > limit else "")


def default_target_modules(backbone: nn.Module, peft_config: Any = None) -> list[str] | None:
    """The modules an adapter wraps when none are named: peft's own per-architecture choice for the method of
    ``peft_config`` (LoRA without one) (``None``: peft fills them in), else :data:`EXTRA_LORA_TARGET_MODULES` for a
    method of :data:`EXTRA_TARGET_METHODS` (LoHa and LoKr on a peft without tables for them, such as 0.12, take
    LoRA's table and these, as a recent peft's LoHa/LoKr tables are LoRA's); a :class:`ConfigError` naming the
    field the user sets when neither knows (``lora_target_modules``, or ``peft_config: target_modules``)."""
    method = peft_type_name(peft_config)
    table = peft_default_table(method)
    kind = model_type(backbone)
    if table is None and method in EXTRA_TARGET_METHODS:  # LoHa, LoKr before peft had tables for them (0.12)
        table = peft_default_table("LORA")
        if table is not None and kind in table:
            return list(table[kind])  # what a recent peft's LoHa/LoKr table (LoRA's) picks
    if table is None or kind in table:
        return None
    if method in EXTRA_TARGET_METHODS and kind in EXTRA_LORA_TARGET_MODULES:
        return list(EXTRA_LORA_TARGET_MODULES[kind])
    linear = shown_names(sorted(linear_module_names(backbone)))
    if peft_config is None:
        raise ConfigError(
            f"lora_target_modules: peft has no default for model type {kind!r}; name the attention projections to "
            f"adapt (this model's linear layers: {linear})"
        )
    raise ConfigError(
        f"peft_config: target_modules is unset and peft has no {method} default for model type {kind!r}; set "
        f"target_modules to the modules to adapt (this model's linear layers: {linear})"
    )


def check_feedforward_modules(backbone: nn.Module, peft_config: Any) -> None:
    """An IA3 config without ``feedforward_modules`` on a model type peft has no IA3 default for is a one-line
    :class:`ConfigError` naming the field (peft raised a bare ``ValueError`` when it wrapped the model)."""
    if peft_type_name(peft_config) != "IA3" or getattr(peft_config, "feedforward_modules", None) is not None:
        return
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as feedforward
    except ImportError:  # a peft that moved its table: let it decide
        return
    kind = model_type(backbone)
    if kind not in feedforward:
        raise ConfigError(
            f"peft_config: feedforward_modules is unset and peft has no IA3 default for model type {kind!r}; set it "
            "to those of target_modules that are feed-forward layers (IA3 scales their input, the others' output), "
            "or [] for none"
        )


def any_module_matches(model: nn.Module, targets: str | Iterable[str]) -> bool:
    """Whether ``targets`` (peft's ``target_modules``) name a module of ``model`` as peft matches them: a str is a
    regular expression over the full name, a list of names each matches a name or its last dotted segments."""
    return any(True for _ in matched_modules(model, targets))


def matched_modules(model: nn.Module, targets: str | Iterable[str]) -> Iterable[tuple[str, nn.Module]]:
    """``(target, module)`` for each module of ``model`` that ``targets`` name as peft matches them (a str: a regular
    expression over the full name; a list: each entry a name or its last dotted segments), in model order."""
    for name, module in model.named_modules():
        if not name:
            continue
        if isinstance(targets, str):
            if re.fullmatch(targets, name):
                yield targets, module
            continue
        for target in targets:
            if name == target or name.endswith(f".{target}"):
                yield target, module
                break


def linear_module_names(model: nn.Module) -> list[str]:
    """The last name segment of each linear layer of ``model``, once each, in model order (what LoRA targets)."""
    names = (name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear))
    return list(dict.fromkeys(names))


def target_error(err: Exception, model: nn.Module, peft_config: Any, field: str) -> ConfigError | None:
    """peft's error about the targets of ``peft_config`` on ``model`` as one line naming ``field``, None for any
    other error: no module matched (the model's linear module names listed; peft's own first line where targets
    match but ``layers_to_transform``, ``exclude_modules`` or the like removed them all), or a target names a module
    peft cannot wrap (an attention block, a ``ModuleList``: its type and the linear layers in it named)."""
    message = str(err).strip()
    first = message.splitlines()[0] if message else type(err).__name__
    targets = getattr(peft_config, "target_modules", None)
    if message.startswith("Target module") and "not supported" in message and targets:
        label = field if field == "lora_target_modules" else f"{field}: target_modules"
        unsupported = [(target, module) for target, module in matched_modules(model, targets)]
        named = [pair for pair in unsupported if type(pair[1]).__name__ in message] or [
            pair for pair in unsupported if not isinstance(pair[1], nn.Linear)
        ]
        if not named:
            return ConfigError(f"{label}: {first}")
        target, module = named[0]
        kind = type(module).__name__
        inside = linear_module_names(module)
        held = (
            f"its linear modules: {shown_names(inside)}"
            if inside
            else f"it holds no linear layer (the model's linear modules: {shown_names(linear_module_names(model))})"
        )
        article = "an" if kind[:1].upper() in "AEIOU" else "a"
        return ConfigError(f"{label}: {target!r} names {article} {kind}, not a linear layer; {held}")
    unmatched = type(err).__name__ == "NoMatchingPeftModuleError" or "not found in the base model" in message
    if not isinstance(err, ValueError) or not unmatched:
        return None
    if targets and any_module_matches(model, targets):  # peft's reason is another setting: keep it
        return ConfigError(f"{field}: {first}")
    shown = targets if isinstance(targets, str) else ", ".join(sorted(targets or []))
    return ConfigError(
        f"{field}: no module of the model matches {shown or 'none'} (its linear modules: "
        f"{shown_names(linear_module_names(model))})"
    )

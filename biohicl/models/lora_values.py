"""The one rule for an adapter's rank and alpha: a rank is a whole number of at least 1, an alpha is not 0 (the
update's scale alpha / r would be 0, so nothing trains; a negative alpha is peft's to allow). ``biohicl train``'s
``lora_r``/``lora_alpha`` (:mod:`biohicl.training.arg_checks`), ``add_lora(r=, alpha=)`` and a user's peft config,
its ``rank_pattern`` and ``alpha_pattern`` entries included, are checked by it, each one line naming its field."""

from __future__ import annotations

from typing import Any

from biohicl.errors import ConfigError
from biohicl.field_types import is_int

#: The rank fields of each peft method that has one (AdaLoRA's ``r`` is unused: ``init_r`` and ``target_r`` rank).
PEFT_RANK_FIELDS = {"LORA": ("r",), "ADALORA": ("init_r", "target_r"), "LOHA": ("r",), "LOKR": ("r",)}
#: The alpha field of each peft method that has one.
PEFT_ALPHA_FIELDS = {"LORA": "lora_alpha", "ADALORA": "lora_alpha", "LOHA": "alpha", "LOKR": "alpha"}
#: Methods whose ``rank_pattern``/``alpha_pattern`` give a layer its own rank/alpha (AdaLoRA's ``rank_pattern`` is
#: its rank allocator's state, not ranks).
PATTERN_METHODS = ("LORA", "LOHA", "LOKR")


def check_rank(field: str, value: Any) -> None:
    """Refuse a rank that is no whole number, or below 1, in one :class:`ConfigError` naming ``field``."""
    if not is_int(value):
        raise ConfigError(f"{field}: the adapter's rank must be a whole number, got {value!r}")
    if value < 1:
        raise ConfigError(f"{field}: the adapter's rank must be at least 1, got {value!r}")


def check_alpha(field: str, value: Any) -> None:
    """Refuse an alpha of 0 (the adapter's update scaled to nothing) in one :class:`ConfigError` naming ``field``."""
    if value == 0:
        raise ConfigError(
            f"{field}: 0 scales the adapter's update to nothing; give a nonzero value (e.g. twice the rank)"
        )


def check_peft_config_values(peft_config: Any) -> None:
    """:func:`check_rank` and :func:`check_alpha` on a LoRA, AdaLoRA, LoHa or LoKr config's rank and alpha fields and
    each ``rank_pattern``/``alpha_pattern`` entry, named ``peft_config: <field>``
    (``peft_config: rank_pattern['query']``); other methods (IA3, ...) have neither field."""
    kind = str(getattr(getattr(peft_config, "peft_type", None), "value", ""))
    for name in PEFT_RANK_FIELDS.get(kind, ()):
        check_rank(f"peft_config: {name}", getattr(peft_config, name, 1))
    if kind in PEFT_ALPHA_FIELDS:
        check_alpha(f"peft_config: {PEFT_ALPHA_FIELDS[kind]}", getattr(peft_config, PEFT_ALPHA_FIELDS[kind], 1))
    if kind not in PATTERN_METHODS:
        return
    for pattern, check in (("rank_pattern", check_rank), ("alpha_pattern", check_alpha)):
        for key, value in dict(getattr(peft_config, pattern, None) or {}).items():
            check(f"peft_config: {pattern}[{key!r}]", value)

"""The transformers backbone under an encoder: safetensors-only loading, sentence-transformers settings of a
folder, and what LoRA wraps (peft's defaults, plus the encoder types it has none for)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biohicl.errors import ConfigError, ModelLoadError

#: LoRA targets for encoder types peft has no default for: the attention query/value projections, as peft picks for
#: BERT (``query``/``value``). MPNet (all-mpnet-base-v2) names them ``q``/``k``/``v``/``o``.
EXTRA_LORA_TARGET_MODULES: dict[str, list[str]] = {"mpnet": ["q", "v"]}


def load_backbone(path: Path, dtype: torch.dtype | None = None) -> nn.Module:
    """``AutoModel`` from ``path``'s safetensors weights (pickle weights and remote code are refused)."""
    from transformers import AutoModel

    if not any(path.glob("*.safetensors")):
        if any(path.glob("*.bin")) or any(path.glob("*.pt")):
            raise ModelLoadError(
                f"{path}: only pickle weights (*.bin) found; biohicl loads safetensors only "
                "(convert them with `transformers` save_pretrained(safe_serialization=True))"
            )
        raise ModelLoadError(f"{path}: no *.safetensors weights found")
    kwargs: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": False}
    if dtype is not None:
        kwargs["dtype"] = dtype
    from safetensors import SafetensorError

    try:
        return AutoModel.from_pretrained(str(path), **kwargs)
    except SafetensorError as err:  # a truncated or garbled weights file
        weights = ", ".join(p.name for p in sorted(path.glob("*.safetensors")))
        raise ModelLoadError(f"{path}: unreadable safetensors weights {weights} ({err})") from None
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelLoadError(f"{path}: could not load the model ({err})") from None


def sentence_transformers_pooling(path: Path) -> str | None:
    """``cls`` or ``mean`` from a sentence-transformers folder's ``1_Pooling/config.json`` (None without one)."""
    pooling_config = path / "1_Pooling" / "config.json"
    if not pooling_config.is_file():
        return None
    values = json.loads(pooling_config.read_text())
    if values.get("pooling_mode_cls_token"):
        return "cls"
    if values.get("pooling_mode_mean_tokens"):
        return "mean"
    return None


def sentence_transformers_max_length(path: Path) -> int | None:
    """``max_seq_length`` of a sentence-transformers folder (None without ``sentence_bert_config.json``)."""
    config = path / "sentence_bert_config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("max_seq_length")
    return None


def sentence_transformers_prompts(path: Path) -> tuple[str | None, str | None]:
    """(query, document) prompts of a sentence-transformers folder's ``config_sentence_transformers.json``: the
    document's is ``default_prompt_name``'s, else ``document``'s or ``passage``'s (None where it names none)."""
    config = path / "config_sentence_transformers.json"
    values = json.loads(config.read_text()) if config.is_file() else {}
    prompts = values.get("prompts") if isinstance(values, dict) else None
    if not isinstance(prompts, dict):
        return None, None
    default = values.get("default_prompt_name")
    names = [default] if default else ["document", "passage"]
    document = next((prompts[name] for name in names if isinstance(prompts.get(name), str)), None)
    query = prompts.get("query")
    return query if isinstance(query, str) else None, document


def quiet_peft_wrap(function, *args: Any, **kwargs: Any):
    """Call a peft constructor without transformers' ``is_gradient_checkpointing`` FutureWarning.

    peft's ``PeftModel.__init__`` reads ``model.is_gradient_checkpointing`` (deprecated in transformers 5 for
    ``is_activation_checkpointing``) on every wrap and load; biohicl does not read it, so the warning is peft's,
    and only that one message is filtered, only around this call.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return function(*args, **kwargs)


def default_lora_target_modules(backbone: nn.Module) -> list[str] | None:
    """The modules LoRA wraps when none are named: peft's own per-architecture choice (``None``), else
    :data:`EXTRA_LORA_TARGET_MODULES`; a :class:`ConfigError` naming ``lora_target_modules`` when neither knows."""
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as peft_defaults
    except ImportError:  # a peft that moved its table: let it decide
        return None
    model_type = getattr(getattr(backbone, "config", None), "model_type", None)
    if model_type in peft_defaults:
        return None
    if model_type in EXTRA_LORA_TARGET_MODULES:
        return list(EXTRA_LORA_TARGET_MODULES[model_type])
    layers = backbone.named_modules()
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in layers if isinstance(module, nn.Linear)})
    raise ConfigError(
        f"lora_target_modules: peft has no default for model type {model_type!r}; name the attention projections "
        f"to adapt (this model's linear layers: {', '.join(linear[:12]) or 'none'})"
    )


def lora_config(
    backbone: nn.Module,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.1,
    target_modules: list[str] | str | None = None,
    peft_config: Any = None,
) -> Any:
    """The peft config that wraps ``backbone``: ``peft_config`` when given (any peft method, e.g.
    ``LoraConfig(use_dora=True)``; copied, with the feature-extraction task and the backbone's default targets filled
    in where it leaves them unset), else LoRA from ``r``/``alpha``/``dropout``/``target_modules``."""
    import copy

    from peft import LoraConfig, TaskType

    if peft_config is not None:
        config = copy.deepcopy(peft_config)
        if getattr(config, "task_type", None) is None:
            config.task_type = TaskType.FEATURE_EXTRACTION
        if hasattr(config, "target_modules") and config.target_modules is None:
            config.target_modules = default_lora_target_modules(backbone)
        config.inference_mode = False
        return config
    return LoraConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=default_lora_target_modules(backbone) if target_modules is None else target_modules,
        inference_mode=False,
    )

"""What identifies a base model, so an adapter is never silently loaded onto another base than its own, a digest
of a model's weights and settings (the ONNX export cache and the mteb metadata key on it), and the sha256 of a saved
model folder's weights files (an evaluation record's ``model.weights_sha256``, which ``biohicl publish`` compares)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biohicl.models.st_layout import sentence_transformers_module_folder
from biohicl.provenance import files_sha256

#: architecture fields of a base's ``config.json`` that an adapter's base must share
SIGNATURE_CONFIG_FIELDS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
SIGNATURE_SAMPLES = 16
#: a bfloat16/float16 load of the same base moves a weight by < 0.4% of its size; a fine-tune moves it by more
SIGNATURE_RTOL, SIGNATURE_ATOL = 1e-2, 1e-7
#: the name segments of peft's own weights (LoRA's, DoRA's magnitudes, IA3's, ``modules_to_save``'s trained copies)
PEFT_WEIGHT_SEGMENTS = frozenset(
    {"lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector", "ia3_l", "modules_to_save"}
)
#: the prefixes of other peft methods' weight segments (LoHa's ``hada_w1_a``, LoKr's ``lokr_w1`` ...)
PEFT_WEIGHT_PREFIXES = ("hada_", "lokr_")
#: the adapter name peft gives an adapter unless told another (biohicl never tells it another)
DEFAULT_ADAPTER_NAME = "default"


def unwrapped(backbone: nn.Module) -> nn.Module:
    """The base model under a peft wrapper (the backbone itself when it has none)."""
    get_base = getattr(backbone, "get_base_model", None)
    return get_base() if callable(get_base) else backbone


def weights_digest(config: Any, fields: Sequence[str], module: nn.Module) -> str:
    """sha256 (hex) over ``config``'s ``fields`` (``name=value;``) and every weight of ``module`` (name, shape,
    dtype and bytes, in name order)."""
    digest = hashlib.sha256()
    for key in fields:
        digest.update(f"{key}={getattr(config, key)!r};".encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def weights_files(folder: str | Path) -> list[Path]:
    """The weights files of a saved model folder: ``adapter_model.safetensors`` (an adapter), else
    ``model.safetensors``, else the shards ``model-*-of-*.safetensors`` in name order; none when it has none. A
    sentence-transformers folder keeping its backbone in a module sub-folder (``0_Transformer``) has them there."""
    folder = Path(folder)
    for where in dict.fromkeys((folder, sentence_transformers_module_folder(folder, "Transformer"))):
        for name in ("adapter_model.safetensors", "model.safetensors"):
            if (where / name).is_file():
                return [where / name]
        if shards := sorted(path for path in where.glob("model-*-of-*.safetensors") if path.is_file()):
            return shards
    return []


def folder_weights_sha256(folder: str | Path) -> str | None:
    """:func:`files_sha256` of :func:`weights_files` of ``folder``; None when it has no weights file."""
    files = weights_files(folder)
    return files_sha256(files) if files else None


def loaded_folder(model: Any) -> Path | None:
    """The folder ``model`` was loaded from (``model.resolved.path``, set by ``BioHiCL.from_pretrained`` and kept by
    the ONNX encoder; through a wrapper's ``.model``), whose weights files (:func:`folder_weights_sha256`) are what it
    encodes with as loaded. None for a model built in memory (``from_base``, one in training)."""
    for candidate in (model, getattr(model, "model", None)):
        path = getattr(getattr(candidate, "resolved", None), "path", None)
        if path is not None:
            return Path(path)
    return None


def _plain_name(name: str) -> str:
    """``name`` without peft's wrappers (``.base_layer.``, ``modules_to_save``'s ``.original_module.``)."""
    return name.replace(".base_layer.", ".").replace(".original_module.", ".")


def is_peft_weight(name: str, adapter_names: Collection[str] = (DEFAULT_ADAPTER_NAME,)) -> bool:
    """Whether the parameter ``name`` is a peft method's own weight, never a base's: a segment that is an adapter's
    name (peft names them ``<module>.<layer>.<adapter name>[.weight]``) or a peft layer's (:data:`PEFT_WEIGHT_SEGMENTS`,
    :data:`PEFT_WEIGHT_PREFIXES`)."""
    return any(
        part in adapter_names or part in PEFT_WEIGHT_SEGMENTS or part.startswith(PEFT_WEIGHT_PREFIXES)
        for part in name.split(".")
    )


def recorded_peft_weights(recorded: dict[str, Any]) -> list[str]:
    """The weights a recorded ``base_signature`` names that are a peft method's own (:func:`is_peft_weight`): an IA3
    or LoHa adapter saved before base signatures left them out recorded one; none is a base's."""
    return [name for name in recorded.get("weights") or {} if is_peft_weight(name)]


def _adapter_names(backbone: nn.Module) -> set[str]:
    """The names of the peft adapters attached to ``backbone`` (peft records its ``peft_config`` on the wrapper and
    on the base model it injects into); empty for a plain model."""
    names: set[str] = set()
    for module in (backbone, unwrapped(backbone)):
        configs = getattr(module, "peft_config", None)
        if isinstance(configs, dict):
            names.update(str(name) for name in configs)
    return names


def _base_matrices(backbone: nn.Module) -> dict[str, torch.Tensor]:
    """The base model's own 2-D weights by plain name, whatever the peft method: every adapter weight (peft names it
    ``<module>.<layer>.<adapter name>[.weight]``: LoRA's ``lora_A.default.weight``, IA3's ``ia3_l.default``,
    LoHa's ``hada_w1_a.default``, ``modules_to_save``'s trained copy ``modules_to_save.default.weight`` ...) left out,
    peft's wrappers folded back."""
    adapters = _adapter_names(backbone)
    return {
        _plain_name(name): param
        for name, param in unwrapped(backbone).named_parameters()
        if param.dim() == 2 and not is_peft_weight(name, adapters)
    }


def _sample(matrix: torch.Tensor, count: int) -> list[float]:
    """``count`` values of ``matrix`` at fixed pseudo-random positions."""
    flat = matrix.detach().reshape(-1)
    positions = [(k * 2654435761 + 40503) % flat.numel() for k in range(count)]
    return [float(v) for v in flat[positions].float().cpu()]


def base_signature(backbone: nn.Module) -> dict[str, Any]:
    """What identifies a base model: its architecture sizes and 16 weights at fixed positions of the input
    embeddings, the first query projection and the last weight matrix (so another base of the same shape, another
    checkpoint of the same architecture, or a merged LoRA of it does not match). Works on a plain backbone and on one
    wrapped by peft (the base's weights)."""
    base = unwrapped(backbone)
    config = getattr(base, "config", None)
    signature: dict[str, Any] = {name: getattr(config, name, None) for name in SIGNATURE_CONFIG_FIELDS}
    matrices = _base_matrices(backbone)
    picked: list[str] = []
    embeddings = base.get_input_embeddings() if hasattr(base, "get_input_embeddings") else None
    # by module name, not by tensor: under modules_to_save the wrapper's weight is the trained copy
    module_names = [_plain_name(f"{name}.weight") for name, module in base.named_modules() if module is embeddings]
    picked += [name for name in module_names if embeddings is not None and name in matrices][:1]
    # the last matrix of the encoder (not BERT's pooler: sentence-transformers fine-tunes never train it)
    encoder = [name for name in matrices if "pooler" not in name and name not in picked]
    picked += encoder[-1:]
    # an attention projection too: a merged LoRA (query/value by default) leaves the two above as they were
    picked += [name for name in encoder if any(f".{p}." in name for p in ("query", "q_proj", "q"))][:1]
    signature["weights"] = {
        name: [float(f"{v:.7g}") for v in _sample(matrices[name], SIGNATURE_SAMPLES)] for name in picked
    }
    return signature


def signature_mismatch(recorded: dict[str, Any], backbone: nn.Module) -> str | None:
    """Why ``backbone`` is not the base ``recorded`` describes (None when it is). A recorded weight that is a peft
    method's own (:func:`recorded_peft_weights`: an adapter saved before base signatures left them out) is no base's
    and is skipped; the others are checked."""
    actual = base_signature(backbone)
    for name in SIGNATURE_CONFIG_FIELDS:
        if name in recorded and recorded[name] != actual.get(name):
            return f"{name} {actual.get(name)} where the adapter's base has {recorded[name]}"
    matrices = _base_matrices(backbone)
    stale = set(recorded_peft_weights(recorded))
    for name, values in (recorded.get("weights") or {}).items():
        if name in stale:
            continue
        if name not in matrices:
            return f"no weight {name}"
        if not values or matrices[name].numel() == 0:
            continue
        observed = _sample(matrices[name], len(values))
        if not all(
            math.isclose(a, b, rel_tol=SIGNATURE_RTOL, abs_tol=SIGNATURE_ATOL)
            for a, b in zip(observed, values, strict=True)
        ):
            return f"other weights in {name}"
    return None

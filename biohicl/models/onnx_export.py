"""Export a merged BioHiCL encoder to one ONNX graph (transformer, pooling, normalisation), optionally int8.

``torch.onnx.export`` writes it (no ``optimum`` needed: the optimum-onnx releases pin ``transformers<4.58``),
``onnxruntime.transformers.optimizer`` fuses attention/LayerNorm/GELU, and ``onnxruntime.quantization
.quantize_dynamic`` makes the int8 variant (int8 weights, activations quantised per batch at run time). Exports are
cached under a folder named by :func:`model_fingerprint` (a digest of the merged weights and the pooling), so a
retrained model is never served a stale graph; :func:`default_cache_dir` says where, and the cache's
``export.json`` records each graph's sha256, checked whenever it is reused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biohicl.atomic import atomic_path
from biohicl.errors import ConfigError, ModelLoadError
from biohicl.models.encoding import pool_embeddings, tokenize_texts
from biohicl.models.signature import weights_digest
from biohicl.provenance import extra_install

logger = logging.getLogger(__name__)

EXPORT_INFO = "export.json"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
OPSET = 17
VERIFY_TEXTS = (
    "Insulin resistance and type 2 diabetes mellitus in obese adolescents.",
    "Statin use and the risk of dementia: a population-based cohort study of 12,000 patients.",
    "BRCA1",
    "Effect of aspirin on cardiovascular events in patients with chronic kidney disease: a randomized trial "
    "with long follow-up, measuring mortality, myocardial infarction and stroke as primary end points.",
)
#: ONNX Runtime's transformer fusions by model type (others are exported unfused)
FUSABLE = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "distilbert": "bert", "mpnet": "bert"}


def require_onnxruntime():
    """The ``onnxruntime`` module, or a :class:`ModelLoadError` saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ModelLoadError(
            f"the ONNX backend needs onnxruntime and onnx: {extra_install('onnx')} (onnx onnxruntime onnxscript)"
        ) from None
    return onnxruntime


class _Exportable(nn.Module):
    """Backbone + pooling + normalisation as one module with plain tensor inputs (what the exporter traces)."""

    def __init__(self, model: Any, with_token_types: bool):
        super().__init__()
        self.backbone = model.backbone
        self.pooling = model.config.pooling
        self.normalize = bool(model.config.normalize)
        self.with_token_types = with_token_types

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.with_token_types:
            kwargs["token_type_ids"] = rest[0]
        states = self.backbone(**kwargs).last_hidden_state
        return pool_embeddings(states, attention_mask, self.pooling, self.normalize)


def merged_backbone(model: Any) -> nn.Module:
    """``model``'s backbone; a :class:`ConfigError` while it still has an unmerged LoRA adapter."""
    if getattr(model, "is_peft", False):
        raise ConfigError("the ONNX export needs a merged model: load it with merge=True (or call merge_lora())")
    return model.backbone


def model_fingerprint(model: Any) -> str:
    """sha256 of the merged weights (names, shapes, bytes), pooling and normalisation: the export cache key (the
    graph ends at the embedding; prompts and truncation are tokenizer-side)."""
    return weights_digest(model.config, ("pooling", "normalize"), merged_backbone(model))


def default_cache_dir() -> Path:
    """``$BIOHICL_ONNX_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/biohicl/onnx``: a folder the user chose or owns,
    never the model's folder, whose ``onnx/`` may come with it from whoever shared it (a graph and an
    ``export.json`` made to match it, its fingerprint being computable from the weights)."""
    env = os.environ.get("BIOHICL_ONNX_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "biohicl" / "onnx"


def export_onnx(model: Any, path: str | Path) -> Path:
    """Write ``model`` (merged, on CPU, float32) as one ONNX graph to ``path``: inputs ``input_ids``,
    ``attention_mask`` [, ``token_type_ids``] [batch, seq], output ``sentence_embedding`` [batch, dim]."""
    merged_backbone(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = tokenize_texts(model.tokenizer, model.config, list(VERIFY_TEXTS[:2]), "document")
    with_types = "token_type_ids" in sample
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
    wrapper = _Exportable(model, with_types).eval()
    device = model.device
    dtype = next(model.parameters()).dtype
    if device.type != "cpu" or dtype != torch.float32:
        raise ConfigError(f"export: move the model to CPU float32 first (it is on {device}, {dtype})")
    args = tuple(sample[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"sentence_embedding": {0: "batch"}}
    start = time.perf_counter()
    with (
        atomic_path(path, fsync=True) as tmp,
        torch.inference_mode(False),
        torch.no_grad(),
        _eager_attention(model.backbone),
    ):
        tmp = Path(tmp)
        raw = tmp.with_name(tmp.name + ".raw.onnx")
        try:
            with warnings_silenced():
                torch.onnx.export(
                    wrapper,
                    args,
                    str(raw),
                    input_names=names,
                    output_names=["sentence_embedding"],
                    dynamic_axes=axes,
                    opset_version=OPSET,
                    do_constant_folding=True,
                    dynamo=False,
                )
            _optimize(raw, tmp, model)
        finally:
            raw.unlink(missing_ok=True)
    logger.info("exported %s to ONNX in %.1f s: %s", type(model.backbone).__name__, time.perf_counter() - start, path)
    return path


@contextlib.contextmanager
def _eager_attention(backbone: nn.Module) -> Iterator[None]:
    """Trace the plain (eager) attention: SDPA exports as masked Where/IsNaN chains that ONNX Runtime's fusions do
    not recognise, eager as MatMul-Softmax-MatMul, which they fuse into one ``Attention`` kernel."""
    setter = getattr(backbone, "set_attn_implementation", None)
    config = getattr(backbone, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    if setter is None or previous in (None, "eager"):
        yield
        return
    try:
        setter("eager")
    except Exception:  # a backbone without an eager path: export what it has
        yield
        return
    try:
        yield
    finally:
        setter(previous)


@contextlib.contextmanager
def warnings_silenced() -> Iterator[None]:
    """No warnings inside the block, Python's or logged below ERROR (the exporter, optimizer and quantiser are noisy
    about what they skip; the quantiser logs through the root logger, whose ``logging.warning`` gives a root logger
    without handlers a stderr one, which printed every later log line a second time). The root logger's handlers
    and level are as they were after it."""
    root = logging.getLogger()
    handlers, level, disabled = list(root.handlers), root.level, logging.root.manager.disable
    logging.disable(max(disabled, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)
        for handler in [h for h in root.handlers if h not in handlers]:  # what logging.basicConfig added
            root.removeHandler(handler)
        root.setLevel(level)


def _optimize(source: Path, target: Path, model: Any) -> None:
    """ONNX Runtime's transformer fusions (attention, LayerNorm, GELU) when the model type has them, else a copy."""
    config = getattr(merged_backbone(model), "config", None)
    model_type = getattr(config, "model_type", "")
    if model_type not in FUSABLE:
        source.replace(target)
        return
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        with warnings_silenced():
            optimized = optimize_model(
                str(source),
                model_type=FUSABLE[model_type],
                num_heads=int(getattr(config, "num_attention_heads", 0)),
                hidden_size=int(getattr(config, "hidden_size", 0)),
                opt_level=1,
            )
        optimized.save_model_to_file(str(target))
    except Exception as err:  # an optimizer gap must not block the export: the plain graph is still correct
        logger.warning("onnxruntime transformer fusions failed (%s); keeping the unfused graph", err)
        source.replace(target)


def quantize_int8(source: str | Path, target: str | Path) -> Path:
    """Dynamic int8 quantisation (``onnxruntime.quantization.quantize_dynamic``): int8 weights per output
    channel, uint8 activations quantised per batch; MatMul/Attention/Gather only, LayerNorm and softmax stay fp32."""
    require_onnxruntime()
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = Path(target)
    with atomic_path(target, fsync=True) as tmp, warnings_silenced():
        quantize_dynamic(
            str(source),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention", "Gather"],
            extra_options={"DefaultTensorType": TensorProto.FLOAT},  # fused (com.microsoft) ops defeat shape inference
        )
    return target

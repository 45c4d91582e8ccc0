"""ONNX Runtime encoding backend: export a (merged) BioHiCL encoder once, verify it, optionally quantise it to int8.

>>> model = BioHiCLModel.from_pretrained("runs/minilm/final", merge=True)
>>> encoder = load_onnx_encoder(model, quantize="int8")     # exported + checked on first use, then cached
>>> encoder.encode(["Insulin resistance in obesity"], kind="query")      # same signature as BioHiCLModel.encode
>>> encoder.verification                                                 # {"max_abs_diff": ..., "min_cosine": ...}

The graph holds the whole encoder: transformer, pooling (cls/mean) and L2 normalisation, so ONNX Runtime returns the
embeddings directly. ``torch.onnx.export`` writes it (no ``optimum`` needed: the optimum-onnx releases pin
``transformers<4.58``), ``onnxruntime.transformers.optimizer`` fuses attention/LayerNorm/GELU, and
``onnxruntime.quantization.quantize_dynamic`` makes the int8 variant (int8 weights, activations quantised per
batch at run time). Exports are cached under ``onnx/<fingerprint>/`` beside the model folder (or under
``$BIOHICL_ONNX_CACHE`` / ``~/.cache/biohicl/onnx`` when that folder is read-only or a package/Hub cache), keyed by
a digest of the merged weights and the encoder config, so a retrained model is never served a stale graph. Every
export is compared with the torch model on a few texts before first use; the measured max |Δ| and min cosine are
stored in ``export.json`` and logged, and an export outside the tolerance is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from biohicl.errors import ConfigError, ModelLoadError

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
QUANTIZATIONS = (None, "int8")
EXPORT_INFO = "export.json"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
OPSET = 17
#: Export checks: fp32 must match torch to float rounding; int8 is an approximation, judged by cosine.
FP32_MAX_ABS_DIFF = 1e-4
INT8_MIN_COSINE = 0.98
VERIFY_TEXTS = (
    "Insulin resistance and type 2 diabetes mellitus in obese adolescents.",
    "Statin use and the risk of dementia: a population-based cohort study of 12,000 patients.",
    "BRCA1",
    "Effect of aspirin on cardiovascular events in patients with chronic kidney disease: a randomized trial "
    "with long follow-up, measuring mortality, myocardial infarction and stroke as primary end points.",
)


def check_backend(backend: str, quantize: str | None = None) -> tuple[str, str | None]:
    """Validate ``--backend``/``--quantize`` (``quantize`` needs the onnx backend); returns them normalised."""
    backend = (backend or "torch").lower()
    if backend not in BACKENDS:
        raise ConfigError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    quantize = None if quantize in (None, "", "none", "fp32", "float32") else str(quantize).lower()
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"quantize: {quantize!r} is not `int8` (or none)")
    if quantize is not None and backend != "onnx":
        raise ConfigError("quantize: int8 needs --backend onnx")
    return backend, quantize


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise ModelLoadError(
            "the ONNX backend needs onnxruntime and onnx: `pip install biohicl[onnx]` (onnx onnxruntime onnxscript)"
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
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled


def _merged_backbone(model: Any) -> nn.Module:
    if getattr(model, "is_peft", False):
        raise ConfigError("the ONNX export needs a merged model: load it with merge=True (or call merge_lora())")
    return model.backbone


def model_fingerprint(model: Any) -> str:
    """sha256 of the merged weights (names, shapes, bytes), pooling and normalisation: the export cache key."""
    digest = hashlib.sha256()
    config = model.config
    for key in ("pooling", "normalize"):  # the graph ends at the embedding; prompts and truncation are tokenizer-side
        digest.update(f"{key}={getattr(config, key)!r};".encode())
    for name, tensor in sorted(_merged_backbone(model).state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _model_folder(model: Any) -> Path | None:
    resolved = getattr(model, "resolved", None)
    if resolved is not None and getattr(resolved, "path", None):
        return Path(resolved.path)
    source = getattr(model, "source_path", None)
    return Path(source) if source else None


def default_cache_dir(model: Any) -> Path:
    """``<model folder>/onnx`` when the model came from a writable folder of its own, else a user cache folder."""
    env = os.environ.get("BIOHICL_ONNX_CACHE")
    if env:
        return Path(env).expanduser()
    folder = _model_folder(model)
    if folder is not None:
        text = str(folder.resolve())
        shared = "site-packages" in text or "huggingface" in text or "/snapshots/" in text
        if not shared and os.access(folder, os.W_OK):
            return folder / "onnx"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "biohicl" / "onnx"


def _tokenize(model: Any, texts: list[str], kind: str, return_tensors: str) -> dict[str, Any]:
    prompt = model._prompt(kind)
    return model.tokenizer(
        [prompt + t for t in texts] if prompt else list(texts),
        padding=True,
        truncation=True,
        max_length=model.config.max_length,
        return_tensors=return_tensors,
    )


def export_onnx(model: Any, path: str | Path, opset: int = OPSET, optimize: bool = True) -> Path:
    """Write ``model`` (merged, on CPU, float32) as one ONNX graph to ``path``: inputs ``input_ids``,
    ``attention_mask`` [, ``token_type_ids``] [batch, seq], output ``sentence_embedding`` [batch, dim]."""
    from biohicl.atomic import atomic_path

    _merged_backbone(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = _tokenize(model, list(VERIFY_TEXTS[:2]), "document", "pt")
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
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
            if optimize:
                _optimize(raw, tmp, model)
            else:
                raw.replace(tmp)
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
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _optimize(source: Path, target: Path, model: Any) -> None:
    """ONNX Runtime's transformer fusions (attention, LayerNorm, GELU) when the model type has them, else a copy."""
    config = getattr(_merged_backbone(model), "config", None)
    model_type = getattr(config, "model_type", "")
    fusable = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "distilbert": "bert", "mpnet": "bert"}
    if model_type not in fusable:
        source.replace(target)
        return
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        with warnings_silenced():
            optimized = optimize_model(
                str(source),
                model_type=fusable[model_type],
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
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from biohicl.atomic import atomic_path

    _ort()
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


def _session(path: Path, threads: int | None, providers: list[str] | None):
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types on a corrupt file
        raise ModelLoadError(f"{path}: not a loadable ONNX model ({str(err).splitlines()[0][:200]})") from None


class OnnxEncoder:
    """An ONNX Runtime session with :class:`~biohicl.models.model.BioHiCLModel`'s ``encode``/``iter_encode``.

    ``config``, ``tokenizer``, ``embedding_dim`` and ``resolved`` are the torch model's, so indexes, searches and
    evaluations record the same model identity whichever backend encoded.
    """

    backend = "onnx"

    def __init__(
        self,
        model: Any,
        path: str | Path,
        *,
        quantize: str | None = None,
        threads: int | None = None,
        providers: list[str] | None = None,
        verification: dict[str, Any] | None = None,
    ):
        self.config = model.config
        self.tokenizer = model.tokenizer
        self.resolved = getattr(model, "resolved", None)
        self.path = Path(path)
        self.quantize = quantize
        self.verification = verification or {}
        self._prompt = model._prompt
        self._dim = int(model.embedding_dim)
        self.session = _session(self.path, threads, providers)
        self._inputs = [i.name for i in self.session.get_inputs()]

    # what build_index / search / evaluation read from a model
    @property
    def embedding_dim(self) -> int:
        return self._dim

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def is_peft(self) -> bool:
        return False

    def to(self, *_: Any, **__: Any) -> OnnxEncoder:
        return self

    def eval(self) -> OnnxEncoder:
        return self

    def tokenize(self, texts: list[str], kind: str = "document", max_length: int | None = None):
        prompt = self._prompt(kind)
        return self.tokenizer(
            [prompt + t for t in texts] if prompt else list(texts),
            padding=True,
            truncation=True,
            max_length=max_length or self.config.max_length,
            return_tensors="np",
        )

    def _run(self, texts: list[str], kind: str) -> np.ndarray:
        batch = self.tokenize(texts, kind=kind)
        feeds = {name: np.asarray(batch[name], dtype=np.int64) for name in self._inputs}
        return self.session.run(None, feeds)[0].astype(np.float32, copy=False)

    def iter_encode(
        self,
        texts: Iterable[str],
        batch_size: int = 32,
        kind: str = "document",
        dtype: torch.dtype | None = None,
        chunk_size: int = 8192,
        show_progress_bar: bool | None = None,
        total: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Stream embeddings chunk by chunk (input order kept), each chunk sorted by length; ``dtype`` is ignored
        (the graph is float32 or int8 as exported)."""
        from tqdm.auto import tqdm

        from biohicl.models.model import _chunks

        if show_progress_bar is None:
            show_progress_bar = total is None or total > 4 * batch_size
        bar = tqdm(total=total, desc="Encoding (onnx)", unit="text", disable=not show_progress_bar)
        try:
            for chunk in _chunks(texts, chunk_size):
                order = np.argsort([-len(t) for t in chunk], kind="stable")
                out = np.empty((len(chunk), self._dim), dtype=np.float32)
                for start in range(0, len(chunk), batch_size):
                    idx = order[start : start + batch_size]
                    out[idx] = self._run([chunk[i] for i in idx], kind)
                    bar.update(len(idx))
                yield torch.from_numpy(out)
        finally:
            bar.close()

    def encode(
        self,
        texts: Iterable[str] | str,
        batch_size: int = 32,
        kind: str = "document",
        convert_to: str = "numpy",
        show_progress_bar: bool | None = None,
        dtype: torch.dtype | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed texts ([n, dim], rows in input order); ``kind='query'`` adds the query prompt."""
        from biohicl.models.model import collect_embeddings

        return collect_embeddings(
            self.iter_encode, texts, self._dim, convert_to, batch_size=batch_size, kind=kind,
            show_progress_bar=show_progress_bar,
        )  # fmt: skip


def verify_export(model: Any, encoder: OnnxEncoder, texts: Iterable[str] = VERIFY_TEXTS) -> dict[str, Any]:
    """Embed ``texts`` (as documents and queries) with torch and ONNX: ``{"max_abs_diff", "min_cosine", "texts"}``."""
    texts = list(texts)
    diffs, cosines = [], []
    for kind in ("document", "query"):
        reference = model.encode(texts, kind=kind, convert_to="torch", show_progress_bar=False).float()
        exported = encoder.encode(texts, kind=kind, convert_to="torch", show_progress_bar=False)
        diffs.append(float((reference - exported).abs().max()))
        cosines.append(float(nn.functional.cosine_similarity(reference, exported, dim=-1).min()))
    return {"max_abs_diff": max(diffs), "min_cosine": min(cosines), "texts": len(texts)}


def _check_verification(report: dict[str, Any], quantize: str | None, path: Path) -> None:
    if quantize is None and not report["max_abs_diff"] <= FP32_MAX_ABS_DIFF:
        raise ModelLoadError(
            f"{path}: the ONNX export differs from the torch model by max |Δ| {report['max_abs_diff']:.2e} "
            f"(> {FP32_MAX_ABS_DIFF:.0e}); not used"
        )
    if quantize == "int8" and not report["min_cosine"] >= INT8_MIN_COSINE:
        raise ModelLoadError(
            f"{path}: the int8 model's embeddings reach only cosine {report['min_cosine']:.4f} to the torch "
            f"model's (< {INT8_MIN_COSINE}); not used"
        )


def load_onnx_encoder(
    model: Any,
    quantize: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
    providers: list[str] | None = None,
    verify: bool = True,
    optimize: bool = True,
) -> OnnxEncoder:
    """The ONNX Runtime encoder of ``model`` (a merged :class:`~biohicl.models.model.BioHiCLModel`).

    Exports (and, for ``quantize="int8"``, quantises) on first use into ``cache_dir/<fingerprint>/``, checks the
    result against the torch model (max |Δ| ≤ 1e-4 for fp32, cosine ≥ 0.98 for int8; the figures are logged and
    kept in ``export.json``), and reuses the cached files afterwards.
    """
    _, quantize = check_backend("onnx", quantize)
    _ort()
    if getattr(model, "is_peft", False):
        logger.info("merging the LoRA adapter into the weights before the ONNX export")
        model.merge_lora()
    model = model.to("cpu").eval()
    if next(model.parameters()).dtype != torch.float32:
        model = model.float()
    fingerprint = model_fingerprint(model)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir(model)
    folder = folder / fingerprint[:16]
    folder.mkdir(parents=True, exist_ok=True)
    info_path = folder / EXPORT_INFO
    info: dict[str, Any] = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            info = {}
        if info.get("fingerprint") != fingerprint:
            info = {}
    fp32 = folder / FP32_FILE
    if not fp32.is_file() or "fp32" not in info:
        export_onnx(model, fp32, optimize=optimize)
        info = {"fingerprint": fingerprint, "opset": OPSET}
    path = fp32
    if quantize == "int8":
        path = folder / INT8_FILE
        if not path.is_file() or "int8" not in info:
            quantize_int8(fp32, path)
            info.pop("int8", None)
    key = quantize or "fp32"
    encoder = OnnxEncoder(model, path, quantize=quantize, threads=threads, providers=providers)
    if key not in info:
        if verify:
            import onnxruntime

            report = verify_export(model, encoder)
            report.update(torch=torch.__version__, onnxruntime=onnxruntime.__version__)
            _check_verification(report, quantize, path)
        else:
            report = {"max_abs_diff": None, "min_cosine": None, "texts": 0}
        info[key] = report
        info["fingerprint"] = fingerprint
        from biohicl.atomic import atomic_write_text

        atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")  # ranks of a launch may race here
    encoder.verification = info[key]
    logger.info(
        "ONNX %s encoder %s: max |Δ| to torch %s, min cosine %s",
        key,
        path,
        _fmt(info[key].get("max_abs_diff"), ".2e"),
        _fmt(info[key].get("min_cosine"), ".6f"),
    )
    return encoder


def _fmt(value: float | None, spec: str) -> str:
    return "unchecked" if value is None else format(value, spec)


def with_backend(model: Any, backend: str = "torch", quantize: str | None = None, **kwargs: Any) -> Any:
    """``model`` itself for ``backend="torch"``, else its :func:`load_onnx_encoder` (what the CLI commands call)."""
    backend, quantize = check_backend(backend, quantize)
    if backend == "torch":
        return model
    return load_onnx_encoder(model, quantize, **kwargs)

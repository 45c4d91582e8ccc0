"""ONNX Runtime encoding backend: a merged BioHiCL encoder exported once, verified, optionally quantised to int8.

>>> model = BioHiCL.from_pretrained("runs/minilm", merge=True)
>>> encoder = load_onnx_encoder(model, quantize="int8")     # exported + checked on first use, then cached
>>> encoder.encode(["Insulin resistance in obesity"], kind="query")      # same signature as BioHiCL.encode
>>> encoder.verification                                                 # {"max_abs_diff": ..., "min_cosine": ...}

The graph holds the whole encoder (see :mod:`biohicl.models.onnx_export`), so ONNX Runtime returns the embeddings
directly. Exports are cached under ``$BIOHICL_ONNX_CACHE`` when it is set, else ``~/.cache/biohicl/onnx``, never in
the model's folder (:func:`~biohicl.models.onnx_export.default_cache_dir`). Every export is compared with the torch
model on a few texts before first use; the measured max |Δ| and min cosine are stored in ``export.json`` with each
graph's sha256 and logged, and an export outside the tolerance is refused. A graph whose sha256 is not the one
recorded is exported again.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from biohicl.atomic import atomic_write_text
from biohicl.errors import ConfigError, ModelLoadError
from biohicl.models.encoding import (
    chunks,
    collect_embeddings,
    encode_inputs,
    length_order,
    progress_bar,
    tokenize_texts,
)
from biohicl.models.onnx_export import (
    EXPORT_INFO,
    FP32_FILE,
    INT8_FILE,
    OPSET,
    VERIFY_TEXTS,
    default_cache_dir,
    export_onnx,
    model_fingerprint,
    quantize_int8,
    require_onnxruntime,
)
from biohicl.provenance import files_sha256

if TYPE_CHECKING:
    from transformers import BatchEncoding

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
QUANTIZATIONS = (None, "int8")
#: Export checks: fp32 must match torch to float rounding; int8 is an approximation, judged by cosine.
FP32_MAX_ABS_DIFF = 1e-4
INT8_MIN_COSINE = 0.98


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


#: An execution provider as ONNX Runtime takes it: a name, or (name, options).
Provider = str | tuple[str, dict[str, Any]]
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def onnx_providers(device: str | torch.device | None) -> list[Provider]:
    """ONNX Runtime's execution providers for ``--device``: the CPU's for none, ``auto`` or ``cpu`` (``cpu:N`` too,
    as torch takes it); for ``cuda`` or ``cuda:N``, CUDA's (device N) then the CPU's, or a one-line
    :class:`ConfigError` when this onnxruntime has no CUDA provider (the plain ``onnxruntime`` wheel); any other device
    is refused."""
    name = str(device).strip().lower() if device is not None else "auto"
    if name in ("", "auto"):
        return [CPU_PROVIDER]
    try:
        wanted = torch.device(name)
    except RuntimeError:
        wanted = None
    if wanted is not None and wanted.type == "cpu":
        return [CPU_PROVIDER]
    if wanted is None or wanted.type != "cuda":
        raise ConfigError(f"--device {device}: the onnx backend runs on cpu or cuda (cuda:N)")
    available = require_onnxruntime().get_available_providers()
    if CUDA_PROVIDER not in available:
        raise ConfigError(
            f"--device {device}: onnxruntime here has no {CUDA_PROVIDER} (only {', '.join(available)}); install "
            "onnxruntime-gpu or use --device cpu"
        )
    cuda: Provider = CUDA_PROVIDER if wanted.index is None else (CUDA_PROVIDER, {"device_id": wanted.index})
    return [cuda, CPU_PROVIDER]


def providers_device(providers: list[Provider] | None) -> torch.device:
    """The device the first of ``providers`` runs on (what an :class:`OnnxEncoder` reports and records)."""
    first = (providers or [CPU_PROVIDER])[0]
    name, options = (first, {}) if isinstance(first, str) else first
    if name != CUDA_PROVIDER:
        return torch.device("cpu")
    index = options.get("device_id")
    return torch.device("cuda") if index is None else torch.device("cuda", int(index))


def _session(path: Path, threads: int | None, providers: list[Provider] | None):
    ort = require_onnxruntime()
    providers = providers or [CPU_PROVIDER]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types on a corrupt file
        raise ModelLoadError(f"{path}: not a loadable ONNX model ({str(err).splitlines()[0][:200]})") from None
    device = providers_device(providers)
    if device.type == "cuda" and CUDA_PROVIDER not in session.get_providers():
        # onnxruntime falls back to the CPU when the CUDA provider cannot start (missing CUDA/cuDNN libraries)
        raise ConfigError(
            f"--device {device}: onnxruntime could not start {CUDA_PROVIDER} (it runs on "
            f"{', '.join(session.get_providers())}); check its CUDA and cuDNN libraries or use --device cpu"
        )
    return session


class OnnxEncoder:
    """An ONNX Runtime session with :class:`~biohicl.models.model.BioHiCL`'s ``encode``/``iter_encode``.

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
        providers: list[Provider] | None = None,
        verification: dict[str, Any] | None = None,
    ):
        self.config = model.config
        self.tokenizer = model.tokenizer
        self.resolved = getattr(model, "resolved", None)
        self.path = Path(path)
        self.quantize = quantize
        self.verification = verification or {}
        self._dim = int(model.embedding_dim)
        self.session = _session(self.path, threads, providers)
        self._device = providers_device(providers)
        self._inputs = [i.name for i in self.session.get_inputs()]

    # what build_index / search / evaluation read from a model
    @property
    def embedding_dim(self) -> int:
        return self._dim

    @property
    def device(self) -> torch.device:
        """Where the session runs: ``cpu``, or ``cuda``/``cuda:N`` on CUDA's provider (inputs and outputs are CPU
        arrays either way)."""
        return self._device

    @property
    def is_peft(self) -> bool:
        return False

    def to(self, *_: Any, **__: Any) -> OnnxEncoder:
        return self

    def eval(self) -> OnnxEncoder:
        return self

    def tokenize(self, texts: list[str], kind: str = "document", max_length: int | None = None) -> BatchEncoding:
        """Tokenize with the prompt for ``kind`` (numpy arrays, what ONNX Runtime takes)."""
        return tokenize_texts(self.tokenizer, self.config, texts, kind, max_length, return_tensors="np")

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
        (the graph is float32 or int8 as exported); a single str is one text, and the inputs are checked first as
        the torch backend checks them."""
        texts = encode_inputs(self.config, texts, batch_size, kind)
        bar = progress_bar(total, batch_size, show_progress_bar, desc="Encoding (onnx)")
        try:
            for chunk in chunks(texts, chunk_size):
                order = length_order(chunk)
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
    providers: list[Provider] | None = None,
    device: str | torch.device | None = None,
    verify: bool = True,
) -> OnnxEncoder:
    """The ONNX Runtime encoder of ``model`` (a :class:`~biohicl.models.model.BioHiCL`; LoRA merged into a copy,
    ``model`` itself keeps its adapter, device and dtype).

    Exports (and, for ``quantize="int8"``, quantises) on first use into ``cache_dir/<fingerprint>/``, checks the
    result against the torch model (max |Δ| ≤ 1e-4 for fp32, cosine ≥ 0.98 for int8; the figures are logged and
    kept in ``export.json`` with each graph's sha256), and reuses the cached files afterwards while their sha256 is
    the one recorded (else exports, or quantises, and checks again; the line says what this load checked).
    ``device`` (``--device``) picks the execution providers by :func:`onnx_providers` unless ``providers`` are
    given; the export itself is made on the CPU."""
    _, quantize = check_backend("onnx", quantize)
    ort = require_onnxruntime()
    providers = onnx_providers(device) if providers is None else providers
    model = _export_copy(model)
    fingerprint = model_fingerprint(model)
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / fingerprint[:16]
    folder.mkdir(parents=True, exist_ok=True)
    info_path = folder / EXPORT_INFO
    info = _export_info(info_path, fingerprint)
    fp32 = folder / FP32_FILE
    # a graph is reused only while its sha256 is the one export.json recorded when biohicl wrote it: a file swapped
    # for another model's graph is exported again, and checked again (an int8-only cache has no "fp32" report: that
    # one is checked on first fp32 use, without exporting again)
    if not _unchanged(fp32, info):
        export_onnx(model, fp32)
        info = {"fingerprint": fingerprint, "opset": OPSET, "sha256": {FP32_FILE: files_sha256([fp32])}}
    path = fp32
    if quantize == "int8":
        path = folder / INT8_FILE
        if "int8" not in info or not _unchanged(path, info):
            quantize_int8(fp32, path)
            info.pop("int8", None)
            info["sha256"][INT8_FILE] = files_sha256([path])
    key = quantize or "fp32"
    encoder = OnnxEncoder(model, path, quantize=quantize, threads=threads, providers=providers)
    checked_now = key not in info
    if checked_now:
        if verify:
            report = verify_export(model, encoder)
            report.update(device=str(encoder.device), torch=torch.__version__, onnxruntime=ort.__version__)
            _check_verification(report, quantize, path)
        else:
            report = {"max_abs_diff": None, "min_cosine": None, "texts": 0}
        info[key] = report
        atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")  # ranks of a launch may race here
    report = encoder.verification = info[key]
    logger.info(
        "ONNX %s encoder %s on %s: max |Δ| to torch %s, min cosine %s%s",
        key,
        path,
        encoder.device,
        _fmt(report.get("max_abs_diff"), ".2e"),
        _fmt(report.get("min_cosine"), ".6f"),
        _checked(report, checked_now),
    )
    return encoder


def _export_info(info_path: Path, fingerprint: str) -> dict[str, Any]:
    """The cache's ``export.json`` when it is this model's (its fingerprint) and records its graphs' sha256, else
    ``{}`` (a garbled file, another model's, or one written before the sha256 was recorded: nothing says its graphs
    are the ones that were checked)."""
    try:
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    ok = isinstance(info, dict) and info.get("fingerprint") == fingerprint and isinstance(info.get("sha256"), dict)
    return info if ok else {}


def _unchanged(path: Path, info: dict[str, Any]) -> bool:
    """Whether ``path`` is there with the sha256 ``info`` recorded for it when written; a file that is not is logged
    (it is exported or quantised again)."""
    recorded = info.get("sha256", {}).get(path.name)
    if not path.is_file():
        return False
    if recorded is not None and files_sha256([path]) == recorded:
        return True
    why = "is not the one export.json recorded" if recorded is not None else "is not recorded in export.json"
    logger.info("%s: its sha256 %s when it was written; exporting it again", path, why)
    return False


def _checked(report: dict[str, Any], now: bool) -> str:
    """What the encoder's line says was checked: the comparison with torch, this load or at the graph's first use
    (maybe on another device: its figures are reused while the file's sha256 is the one recorded then)."""
    if report.get("max_abs_diff") is None:
        return ""
    where = report.get("device", "an unrecorded device")  # older export.json reports lack it
    if now:
        return f" (checked on {where})"
    return (
        f" (checked on {where} when the graph was first used; this load checked that the file's sha256 is the one "
        "recorded then)"
    )


def _export_copy(model: Any) -> Any:
    """``model`` as exported (LoRA merged, fp32, CPU, eval); a copy whenever that changes it, so the caller's model
    keeps its adapter, device, dtype and mode."""
    param = next(model.parameters())
    peft = getattr(model, "is_peft", False)
    if not peft and param.device.type == "cpu" and param.dtype == torch.float32 and not model.training:
        return model
    model = copy.deepcopy(model)
    if peft:
        logger.info("merging the LoRA adapter into a copy of the weights before the ONNX export")
        model.merge_lora()
    return model.to("cpu").float().eval()


def _fmt(value: float | None, spec: str) -> str:
    return "unchecked" if value is None else format(value, spec)


def with_backend(model: Any, backend: str = "torch", quantize: str | None = None, **kwargs: Any) -> Any:
    """``model`` itself for ``backend="torch"``, else its :func:`load_onnx_encoder` (what the CLI commands call)."""
    backend, quantize = check_backend(backend, quantize)
    if backend == "torch":
        return model
    return load_onnx_encoder(model, quantize, **kwargs)


def load_inference_model(spec: str, revision: str | None = None, device: str | torch.device | None = None) -> Any:
    """The one place commands load a model: ``biohicl.models.model.load_model`` (names, repos, folders); LoRA
    merged (no adapter cost at inference), moved to ``device``."""
    from biohicl.models.model import load_model
    from biohicl.models.st_compat import inference_device

    device = inference_device(device)
    model = load_model(spec, revision, merge=True)
    return model.to(device).eval()

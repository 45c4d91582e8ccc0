"""What every encoder backend (torch, ONNX Runtime) shares: prompted tokenization, pooling, chunked input and the
assembly of ``encode``'s result."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from biohicl.errors import ConfigError
from biohicl.field_types import is_count
from biohicl.models.config import BioHiCLConfig


def tokenize_texts(
    tokenizer: Any,
    config: BioHiCLConfig,
    texts: list[str],
    kind: str = "document",
    max_length: int | None = None,
    return_tensors: str = "pt",
) -> Any:
    """Tokenize with the prompt for ``kind``, padding to the longest and truncating to ``max_length``
    (default: the config's)."""
    prompt = config.prompt(kind)
    return tokenizer(
        [prompt + t for t in texts] if prompt else list(texts),
        padding=True,
        truncation=True,
        max_length=max_length or config.max_length,
        return_tensors=return_tensors,
    )


def pool_embeddings(token_states: torch.Tensor, attention_mask: torch.Tensor, pooling: str, normalize: bool):
    """CLS or mean pooling of ``token_states`` [batch, seq, dim] (+ L2 normalisation in float32 when asked)."""
    if pooling == "cls":
        pooled = token_states[:, 0]
    else:
        mask = attention_mask.unsqueeze(-1).to(token_states.dtype)
        pooled = (token_states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    if normalize:
        pooled = nn.functional.normalize(pooled.float(), p=2, dim=-1)
    return pooled


def chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    """``texts`` in lists of ``size`` (the last may be shorter); a :class:`ConfigError` for an item not a str, or for
    a ``size`` that is not a positive int (``chunk_size``)."""
    if not is_count(size):
        raise ConfigError(f"chunk_size: {size!r} is not a positive number of texts")
    chunk: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            raise ConfigError(f"encode: expected str items, got {type(text).__name__}")
        chunk.append(text)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def check_texts(texts: Any, where: str = "encode") -> None:
    """A one-line :class:`ConfigError` for what is not a str or an iterable of str: what does not iterate (None, an
    int) and what would iterate as something else: bytes (as ints) and a mapping (as its keys)."""
    if not isinstance(texts, Iterable) or isinstance(texts, (bytes, bytearray, memoryview, Mapping)):
        raise ConfigError(f"{where}: texts is {type(texts).__name__}, not a str or an iterable of str")


def encode_inputs(config: Any, texts: Any, batch_size: Any, kind: str) -> Iterable[str]:
    r"""What both backends' ``iter_encode`` check before encoding, as one-line :class:`ConfigError`\ s: ``kind``
    (also for no texts), ``batch_size`` a positive int (numpy's too), ``texts`` per :func:`check_texts`; returns the
    texts, a single str as one text."""
    config.prompt(kind)  # an unknown kind fails here
    if not is_count(int(batch_size) if isinstance(batch_size, np.integer) else batch_size):
        raise ConfigError(f"batch_size: {batch_size!r} is not a positive number of texts")
    check_texts(texts, "iter_encode")
    return [texts] if isinstance(texts, str) else texts


#: re-entrant: a collection inside the locked block can finalize an abandoned ``iter_encode`` on the same thread
_MODES_LOCK = threading.RLock()
#: per model being encoded: [encodes running, each module's mode before the first of them]
_ENCODING: weakref.WeakKeyDictionary[nn.Module, list[Any]] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode (dropout off) inside the block, each module's own mode restored after it. Encodes
    running at once (threads, a paused ``iter_encode``) share one switch: the first saves the modes, each sets eval
    (a ``train()`` since the first leaves none with dropout on), the last restores the first one's saved modes."""
    with _MODES_LOCK:
        state = _ENCODING.get(model)
        if state is None:
            state = _ENCODING[model] = [0, [(module, module.training) for module in model.modules()]]
        model.eval()
        state[0] += 1
    try:
        yield
    finally:
        with _MODES_LOCK:
            state[0] -= 1
            if state[0] == 0 and _ENCODING.get(model) is state:
                del _ENCODING[model]
                for module, training in state[1]:
                    module.training = training


#: the dtypes autocast runs a forward pass in, on every device biohicl encodes on; float32 (or None) needs none
AUTOCAST_DTYPES = (torch.float16, torch.bfloat16)


def encode_dtype(dtype: Any) -> torch.dtype | None:
    """``encode``'s ``dtype`` as a torch dtype: one, or its name as ``from_pretrained`` takes it (``"bfloat16"``;
    ``"auto"`` is None: the weights' own); a one-line :class:`ConfigError` for anything else."""
    if isinstance(dtype, str):
        found = None if dtype == "auto" else getattr(torch, dtype, None)
        dtype = found if dtype == "auto" or isinstance(found, torch.dtype) else dtype
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise ConfigError(f"dtype: {dtype!r} is not a torch dtype (float16, bfloat16, float32)")
    return dtype


def autocast_for(dtype: Any, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast ``encode`` runs the forward pass under on ``device`` for ``dtype`` (:func:`encode_dtype`): none
    for None or float32; a one-line :class:`ConfigError` for a dtype autocast cannot run there (torch warned, then
    ran float32) and for bfloat16 on a GPU without it (as torch's autocast checks it)."""
    dtype = encode_dtype(dtype)
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    if dtype not in AUTOCAST_DTYPES:
        raise ConfigError(f"dtype: {dtype} is not one autocast runs in (float16, bfloat16; float32 or None: none)")
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"dtype: bfloat16 asked for, but {device} does not support it (float16 does)")
    return torch.autocast(device_type=device.type, dtype=dtype)


def check_convert_to(convert_to: str) -> None:
    """A one-line :class:`ConfigError` unless ``convert_to`` is ``numpy`` or ``torch``."""
    if convert_to not in ("numpy", "torch"):
        raise ConfigError(f"convert_to: {convert_to!r} is not `numpy` or `torch`")


class StreamBar:
    """The progress bar of texts whose number is unknown (a generator): drawn only once more than ``after`` texts are
    encoded, so a short stream shows none; ``update`` and ``close`` as tqdm's."""

    def __init__(self, after: int, desc: str) -> None:
        self._after, self._desc, self._done, self._bar = after, desc, 0, None

    def update(self, n: int) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._done > self._after:
            from tqdm.auto import tqdm

            self._bar = tqdm(desc=self._desc, unit="text", initial=self._done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def progress_bar(total: int | None, batch_size: int, show: bool | None, desc: str = "Encoding") -> Any:
    """The encoding progress bar; ``show=None`` shows it for more than four batches of texts: from the start when
    ``total`` says so, else (a stream) once more than four batches are encoded (:class:`StreamBar`)."""
    from tqdm.auto import tqdm

    if show is None and total is None:
        return StreamBar(4 * batch_size, desc)
    if show is None:
        show = total > 4 * batch_size
    return tqdm(total=total, desc=desc, unit="text", disable=not show)


def length_order(chunk: list[str]) -> np.ndarray:
    """Positions of ``chunk`` longest text first (stable): batches of similar length pad little."""
    return np.argsort([-len(t) for t in chunk], kind="stable")


def collect_embeddings(
    iter_encode: Callable[..., Iterator[torch.Tensor]],
    texts: Iterable[str] | str,
    dim: int,
    convert_to: str = "numpy",
    **kwargs: Any,
) -> np.ndarray | torch.Tensor:
    """``encode`` on top of an ``iter_encode``: one text or many, the chunks joined in input order, as numpy or torch
    (shared by every encoder backend); ``convert_to``, then what ``iter_encode`` checks (``kind``, ``batch_size``,
    the torch backend's ``dtype``), then ``texts`` are checked before any encoding."""
    check_convert_to(convert_to)
    next(iter_encode([], **{**kwargs, "show_progress_bar": False}), None)  # its checks on no texts, before the texts
    check_texts(texts)
    single = isinstance(texts, str)
    items = [texts] if single else texts
    total = len(items) if hasattr(items, "__len__") else None
    parts = list(iter_encode(items, total=total, **kwargs))
    embeddings = torch.cat(parts) if parts else torch.empty(0, dim)
    if single:
        embeddings = embeddings[0]
    return embeddings.numpy() if convert_to == "numpy" else embeddings

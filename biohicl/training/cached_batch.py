"""Gradient caching for the in-batch losses (``mini_batch_size``): GradCache (Gao et al. 2021, "Scaling Deep
Contrastive Learning Batch Size under Memory Limited Setup"), as sentence-transformers' Cached* losses do it.

The losses compare every document of a batch with every other, so the batch is what gives the contrastive term its
negatives; gradient accumulation does not enlarge it. With ``mini_batch_size`` each encoding the loss takes (the
documents, and under ``title_weight`` the titles and abstracts) runs in two passes:

1. each chunk of ``mini_batch_size`` rows, its trailing all-padding columns cut (:func:`row_chunks`), is encoded
   without gradients, its RNG state kept (:class:`RandContext`), and the chunks' embeddings are joined into one leaf
   tensor; the loss is computed on a copy of it (a loss may change its input in place): the whole batch's pairs;
2. when the Trainer back-propagates the loss, a hook on each leaf receives d loss / d embeddings (already scaled by
   gradient accumulation and the fp16 loss scaler, as the Trainer's backward scales it), encodes each chunk again with
   gradients under its saved RNG state (the same dropout masks) and back-propagates ``<embeddings, gradient>``.

With dropout 0 the loss and the gradients are those of one pass over the whole batch, at the activation memory of one
chunk, for one more forward pass. With dropout (``lora_dropout`` is 0.1 by default) each chunk draws its own masks:
the same objective under another random draw, so a run does not end at the plain run's weights. Single-process only:
under DDP each chunk's backward would all-reduce the gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import get_device_states, set_device_states

from biohicl.errors import ConfigError
from biohicl.field_types import check_count

#: An encoder: ``encoder(**inputs) -> embeddings [rows, dim]`` (a BioHiCL model, or the Trainer's wrapped one).
Encoder = Callable[..., torch.Tensor]


def check_mini_batch_size(value: Any, world_size: int, n_gpu: int) -> None:
    """``mini_batch_size``: None or a whole number of at least 1, and one process on one device only: under DDP
    (``world_size`` > 1) or with ``n_gpu`` > 1 GPUs in one process (transformers' ``nn.DataParallel``, whose replicas
    would draw other dropout masks than those the replay restores on the inputs' device)."""
    if value is None:
        return
    check_count("mini_batch_size", value, "rows per chunk")
    if world_size > 1:
        raise ConfigError(
            f"mini_batch_size: single-process only, this run has {world_size} processes (DDP's backward hooks would "
            "all-reduce the gradients once per chunk); use a larger per-device batch or one process"
        )
    if n_gpu > 1:
        raise ConfigError(
            f"mini_batch_size: one GPU per process, this process sees {n_gpu} GPUs (nn.DataParallel's replicas would "
            "draw other dropout masks than the replayed ones); run one process on one device (CUDA_VISIBLE_DEVICES=0)"
        )


def split_mps(tensors: Iterable[Any]) -> tuple[bool, list[Any]]:
    """Whether any of ``tensors`` is on MPS, and the others: :func:`torch.utils.checkpoint.get_device_states` would
    call ``torch.mps.device``, which does not exist, on an MPS tensor."""
    on_mps = [t for t in tensors if t.device.type == "mps"]
    return bool(on_mps), [t for t in tensors if t.device.type != "mps"]


class RandContext:
    """The RNG states (the CPU's and those of the devices ``tensors`` are on, MPS included) at creation: inside
    ``with`` they are restored, so a forward replays the same dropout masks; the states before ``with`` are put back
    after it (``fork_rng`` for the CPU and CUDA, MPS's saved and restored here: ``fork_rng`` does not cover it)."""

    def __init__(self, *tensors: torch.Tensor):
        self.cpu_state = torch.get_rng_state()
        on_mps, others = split_mps(tensors)
        self.mps_state = torch.mps.get_rng_state() if on_mps else None
        self.devices, self.device_states = get_device_states(*others)
        self._fork: Any = None
        self._outer_mps: torch.Tensor | None = None

    def __enter__(self) -> None:
        self._fork = torch.random.fork_rng(devices=self.devices, enabled=True)
        self._fork.__enter__()
        torch.set_rng_state(self.cpu_state)
        set_device_states(self.devices, self.device_states)
        if self.mps_state is not None:
            self._outer_mps = torch.mps.get_rng_state()
            torch.mps.set_rng_state(self.mps_state)

    def __exit__(self, *exc: Any) -> None:
        if self._outer_mps is not None:
            torch.mps.set_rng_state(self._outer_mps)
            self._outer_mps = None
        self._fork.__exit__(*exc)
        self._fork = None


def batch_rows(inputs: Mapping[str, Any]) -> int:
    """The rows of a tokenized batch (its ``input_ids``)."""
    return int(inputs["input_ids"].shape[0])


def trimmed(chunk: dict[str, Any]) -> dict[str, Any]:
    """``chunk`` without its trailing columns that are padding (``attention_mask`` 0) in every row: each per-token
    tensor (2-D, as wide as the mask: ``input_ids``, ``token_type_ids``, ...) cut to the chunk's longest row. Only
    columns at the end are cut, so a left-padded chunk (its last column real for some row) keeps its width; CLS and
    mean pooling ignore padding, so the embeddings are the untrimmed chunk's."""
    mask = chunk.get("attention_mask")
    if not torch.is_tensor(mask) or mask.dim() != 2 or not mask.shape[1]:
        return chunk
    width = mask.shape[1]
    used = mask.ne(0).any(dim=0).nonzero()
    keep = int(used[-1]) + 1 if len(used) else 1
    if keep == width:
        return chunk
    return {
        key: value[:, :keep] if torch.is_tensor(value) and value.dim() == 2 and value.shape[1] == width else value
        for key, value in chunk.items()
    }


def row_chunks(inputs: Mapping[str, Any], size: int | None) -> list[dict[str, Any]]:
    """``inputs`` cut into chunks of ``size`` rows: each tensor of the batch's rows sliced, other values kept, and each
    chunk's trailing all-padding columns cut (:func:`trimmed`): a chunk of short documents is as wide as its longest."""
    rows = batch_rows(inputs)
    size = size or rows
    return [
        trimmed(
            {
                key: value[start : start + size]
                if torch.is_tensor(value) and value.dim() and len(value) == rows
                else value
                for key, value in inputs.items()
            }
        )
        for start in range(0, rows, size)
    ]


def base_model_embeddings(
    model: nn.Module, inputs: Mapping[str, torch.Tensor], mini_batch_size: int | None = None
) -> torch.Tensor:
    """The batch under the frozen base model: LoRA adapters disabled, eval mode (no dropout), no gradients; encoded
    ``mini_batch_size`` rows at a time when given (the same embeddings, at one chunk's activation memory)."""
    backbone = getattr(model, "backbone", None)
    if backbone is None or not hasattr(backbone, "disable_adapter"):
        raise ConfigError("distill_weight: the model has no LoRA adapters to disable (full fine-tune?)")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), backbone.disable_adapter():
            return torch.cat([model(**chunk).detach() for chunk in row_chunks(inputs, mini_batch_size)])
    finally:
        model.train(was_training)


def _replay(encoder: Encoder, chunks: list[dict[str, Any]], states: list[RandContext], grad: torch.Tensor) -> None:
    """The leaf's hook: each chunk encoded again with gradients under its first pass's RNG state, and
    ``<embeddings, d loss / d embeddings>`` back-propagated into the encoder's weights."""
    with torch.enable_grad():
        for chunk, state, part in zip(chunks, states, grad.split([batch_rows(c) for c in chunks]), strict=True):
            with state:
                embeddings = encoder(**chunk)
            embeddings.backward(part.to(embeddings.dtype))


def _cached_leaf(encoder: Encoder, inputs: Mapping[str, Any], size: int) -> torch.Tensor:
    """The first pass: ``inputs`` encoded ``size`` rows at a time without gradients, joined into one leaf tensor whose
    gradient (when the loss is back-propagated) re-encodes the chunks with gradients (:func:`_replay`); a copy of the
    leaf is returned."""
    chunks, states, parts = row_chunks(inputs, size), [], []
    for chunk in chunks:
        states.append(RandContext(*(value for value in chunk.values() if torch.is_tensor(value))))
        with torch.no_grad():
            parts.append(encoder(**chunk))
    leaf = torch.cat(parts).requires_grad_()
    leaf.register_hook(partial(_replay, encoder, chunks, states))
    return leaf.clone()  # what the loss gets: no leaf, so a loss may change it in place; the hook sees its gradient


def encoded_loss(
    loss: Callable[..., Any],
    streams: Mapping[str, tuple[Encoder, Mapping[str, Any]]],
    siml: torch.Tensor,
    loss_inputs: Mapping[str, Any],
    mini_batch_size: int | None = None,
) -> tuple[Any, torch.Tensor]:
    """``loss(embeddings, siml, **loss_inputs, **others)`` and the documents' embeddings: ``streams`` maps each
    encoding the loss takes (``embeddings``, the documents, first; then e.g. ``title_embeddings``) to its encoder and
    tokenized inputs. Encoded in one pass each when ``mini_batch_size`` is None or at least the documents' rows, else
    with gradient caching (the module docstring); the loss is back-propagated as usual either way."""
    if mini_batch_size is None or mini_batch_size >= batch_rows(streams["embeddings"][1]):
        encoded = {name: encoder(**inputs) for name, (encoder, inputs) in streams.items()}
    else:
        encoded = {name: _cached_leaf(encoder, inputs, mini_batch_size) for name, (encoder, inputs) in streams.items()}
    embeddings = encoded.pop("embeddings")
    return loss(embeddings, siml, **loss_inputs, **encoded), embeddings

"""In-training evaluation in fp32 under ``bf16``/``fp16`` training.

accelerate's mixed precision (``Accelerator.prepare_model``) replaces a prepared model's ``forward`` for good by an
autocast-wrapped one and keeps the original as ``model._original_forward``; ``transformers.Trainer`` adds no
autocast of its own. An evaluator run inside training would therefore encode under autocast, unlike the same
weights evaluated outside it (the base at a study's step-0 pre-pass, a reloaded checkpoint), so its scores and its
evaluation-cache key (the encoder's outputs on probe texts) would differ. :func:`fp32_forward` puts the original
forward back for the duration of an evaluation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def fp32_forward(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with the forward accelerate wrapped in autocast replaced by its original for the block, then the
    wrapped one put back (also when the block raises); a model accelerate did not wrap is left as it is."""
    module = getattr(model, "_orig_mod", model)  # torch.compile's wrapper calls the module it wraps
    original = module.__dict__.get("_original_forward")
    wrapped = module.__dict__.get("forward")
    if original is None or wrapped is None:
        yield model
        return
    module.forward = original
    try:
        yield model
    finally:
        module.forward = wrapped

"""Embeddings of a text file as one safetensors matrix (``biohicl encode``): tensor ``embeddings`` [n, dim], one row
per input text in input order, with the model, kind, dtype and (for .jsonl records) the ids in its metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from biohicl.atomic import atomic_path
from biohicl.data.text_files import read_texts
from biohicl.search.layout import describe_model, parse_dtype


def encode_file(
    model: Any,
    input: str | Path,
    output: str | Path,
    *,
    kind: str = "document",
    dtype: str = "float32",
    compute_dtype: str | None = None,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> torch.Tensor:
    """Embed every text of ``input`` (.txt lines or .jsonl records) into ``output`` (written atomically); returns
    the matrix. ``compute_dtype`` is the autocast dtype (default: ``dtype`` on a GPU, float32 on CPU);
    ``show_progress_bar=False`` hides the encoding bar (None: the encoder's default)."""
    storage = parse_dtype(dtype)
    compute = parse_dtype(compute_dtype, "compute_dtype") if compute_dtype else None
    if compute is None and model.device.type == "cuda" and storage != torch.float32:
        compute = storage
    ids: list[str | None] = []

    def texts() -> Iterator[str]:
        for doc_id, text in read_texts(input):
            ids.append(doc_id)
            yield text

    parts = [
        chunk.to(storage)
        for chunk in model.iter_encode(
            texts(),
            batch_size=batch_size,
            kind=kind,
            dtype=compute if compute not in (None, torch.float32) else None,
            show_progress_bar=show_progress_bar,
        )
    ]
    embeddings = torch.cat(parts) if parts else torch.empty(0, model.embedding_dim, dtype=storage)
    model_id, revision = describe_model(model)
    metadata = {"model": model_id, "kind": kind, "count": str(len(embeddings)), "dtype": dtype}
    # what encoded them, as an index manifest records it (int8 ONNX rows are an approximation of fp32 ones);
    # safetensors metadata is strings only: no quantisation is "none"
    metadata["backend"] = str(getattr(model, "backend", "torch"))
    metadata["quantize"] = str(getattr(model, "quantize", None) or "none")
    if revision:
        metadata["model_revision"] = revision
    if any(i is not None for i in ids):
        metadata["ids"] = json.dumps([i or "" for i in ids])
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    with atomic_path(output, fsync=True) as tmp:
        save_file({"embeddings": embeddings.contiguous()}, str(tmp), metadata=metadata)
    return embeddings

"""Embeddings of a text file as one safetensors matrix (``biohicl encode``): tensor ``embeddings`` [n, dim], one row
per input text in input order, with the model, kind, dtype and (for .jsonl records) the ids in its metadata."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from biohicl.atomic import atomic_path
from biohicl.data.text_files import numbered_texts
from biohicl.errors import DataError
from biohicl.search.layout import describe_model, parse_dtype

#: What a row holding NaN or inf says, in the words ``biohicl evaluate`` refuses such rows with
#: (:class:`~biohicl.evaluation.retrieval.NonFiniteEmbeddings`, not imported here: ``evaluate`` takes seconds to load)
NON_FINITE = "the encoder returned NaN or inf embeddings (a collapsed model?)"


def first_non_finite_row(embeddings: torch.Tensor) -> int | None:
    """The first row of ``embeddings`` holding a NaN or inf (None when every value is finite): ``encode`` and
    ``index`` refuse it naming its text, rather than store a row that ``search`` would rank first."""
    finite = torch.isfinite(embeddings)
    finite = finite.flatten(1).all(dim=1) if finite.dim() > 1 else finite  # 0 rows too (reshape(0, -1) raises)
    return None if bool(finite.all()) else int((~finite).nonzero()[0, 0])


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
    ``show_progress_bar=False`` hides the encoding bar (None: the encoder's default). :class:`DataError` naming the
    file for an input without texts, and the line of the first text whose row holds a NaN or inf: nothing is written
    then."""
    storage = parse_dtype(dtype)
    compute = parse_dtype(compute_dtype, "compute_dtype") if compute_dtype else None
    if compute is None and model.device.type == "cuda" and storage != torch.float32:
        compute = storage
    ids: list[str | None] = []
    lines: list[int | None] = []

    def texts() -> Iterator[str]:
        for line, doc_id, text in numbered_texts(input):
            lines.append(line)
            ids.append(doc_id)
            yield text

    parts: list[torch.Tensor] = []
    chunks = model.iter_encode(
        texts(),
        batch_size=batch_size,
        kind=kind,
        dtype=compute if compute not in (None, torch.float32) else None,
        show_progress_bar=show_progress_bar,
    )
    with contextlib.ExitStack() as stack:  # a refusal ends the stream now: its progress bar and model mode put back
        if hasattr(chunks, "close"):
            stack.callback(chunks.close)
        for chunk in chunks:
            parts.append(chunk.to(storage))  # checked as stored: a float16 overflow is an inf too
            bad = first_non_finite_row(parts[-1])
            if bad is not None:
                row = sum(len(part) for part in parts[:-1]) + bad
                named = f"{kind} {ids[row]!r}: " if ids[row] is not None else ""
                raise DataError(f"{named}{NON_FINITE}; nothing was written", input, line=lines[row])
    if not any(len(part) for part in parts):  # a 0 x dim file says nothing; build-dataset refuses an empty file too
        raise DataError("no texts; nothing to encode", input)
    embeddings = torch.cat(parts)
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

"""``biohicl encode``: embed a text file into a safetensors matrix (one row per input line, input order kept)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from biohicl.errors import DataError

HELP = "Embed texts (one per line of .txt, or .jsonl records) into a safetensors matrix."


@dataclass
class EncodeArguments:
    model: str = field(metadata={"help": "Registered name (BioHiCL-Base), Hub repo id[@revision] or a folder."})
    input: str = field(metadata={"help": "A .txt file (one text per line) or .jsonl (strings or {id,title,text})."})
    output: str = field(metadata={"help": "Where to write the safetensors file (tensor `embeddings` [n, dim])."})
    kind: str = field(
        default="document",
        metadata={"help": "`query` or `document` (chooses the prompt).", "choices": ["query", "document"]},
    )
    dtype: str = field(default="float32", metadata={"help": "Output dtype: float32, float16 or bfloat16."})
    compute_dtype: str | None = field(
        default=None, metadata={"help": "Autocast dtype (default: `dtype` on a GPU, float32 on CPU)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Texts per forward pass."})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1 ... (default: cuda if available)."})
    backend: str = field(
        default="torch", metadata={"help": "Encoder: `torch` or `onnx` (ONNX Runtime, exported once and checked)."}
    )
    quantize: str | None = field(
        default=None, metadata={"help": "With --backend onnx: `int8` (dynamic int8 quantisation, ~2x faster on CPU)."}
    )


def load_inference_model(spec: str, revision: str | None = None, device: str | torch.device | None = None) -> Any:
    """The one place commands load a model: ``biohicl.models.model.load_model`` (names, repos, folders); LoRA
    merged (no adapter cost at inference), moved to ``device``."""
    from biohicl.models.model import load_model

    model = load_model(spec, revision, merge=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval()


def read_texts(path: str | Path) -> Iterator[tuple[str | None, str]]:
    """``(id or None, text)`` per line of a .txt or .jsonl file (streamed)."""
    from biohicl.data.corpus import document_from_record, iter_json_lines, iter_lines

    path = Path(path)
    if not path.is_file():
        raise DataError("input file not found", path)
    if not path.name.lower().endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        for _, line in iter_lines(path):
            yield None, line.rstrip("\n\r")
        return
    for number, record in iter_json_lines(path):
        if isinstance(record, str):
            yield None, record
        elif isinstance(record, dict):
            if not any(k in record for k in ("_id", "id", "doc_id", "docid", "pmid")):
                record = {**record, "id": str(number)}
            doc = document_from_record(record, path, number)
            yield doc.id, doc.full_text()
        else:
            raise DataError("expected a JSON string or object per line", path, number)


def main(argv: list[str]) -> int:
    from biohicl.cli.parser import parse_command
    from biohicl.search.layout import parse_dtype, write_atomically

    (args,) = parse_command(EncodeArguments, argv, prog="biohicl encode", description=__doc__)
    storage = parse_dtype(args.dtype)
    from biohicl.atomic import check_writable

    check_writable(args.output)  # an unwritable output fails now, not after encoding everything
    from biohicl.models.onnx_backend import check_backend, with_backend

    backend, quantize = check_backend(args.backend, args.quantize)
    model = load_inference_model(args.model, device="cpu" if backend == "onnx" else args.device)
    model = with_backend(model, backend, quantize)
    compute = parse_dtype(args.compute_dtype) if args.compute_dtype else None
    if compute is None and model.device.type == "cuda" and storage != torch.float32:
        compute = storage
    ids: list[str | None] = []

    def texts() -> Iterator[str]:
        for doc_id, text in read_texts(args.input):
            ids.append(doc_id)
            yield text

    parts = [
        chunk.to(storage)
        for chunk in model.iter_encode(
            texts(),
            batch_size=args.batch_size,
            kind=args.kind,
            dtype=compute if compute not in (None, torch.float32) else None,
        )
    ]
    embeddings = torch.cat(parts) if parts else torch.empty(0, model.embedding_dim, dtype=storage)
    from biohicl.search.layout import describe_model

    model_id, revision = describe_model(model)
    metadata = {"model": model_id, "kind": args.kind, "count": str(len(embeddings)), "dtype": args.dtype}
    if revision:
        metadata["model_revision"] = revision
    if any(i is not None for i in ids):
        metadata["ids"] = json.dumps([i or "" for i in ids])
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    write_atomically(
        output, lambda tmp: save_file({"embeddings": embeddings.contiguous()}, str(tmp), metadata=metadata)
    )
    print(f"wrote {len(embeddings)} × {embeddings.shape[1]} {args.dtype} embeddings to {output}")
    return 0

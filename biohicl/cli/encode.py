"""``biohicl encode``: embed a text file into a safetensors matrix (one row per input line, input order kept).

A .txt file's row ``i`` is its line ``i``, blank lines included (encoded as the empty text, so rows stay aligned
with the lines; a .txt file carries no ids to realign them by); .tsv and .jsonl rows carry ids (the file's
``ids`` metadata) and their blank lines are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from biohicl.models.onnx_backend import BACKENDS
from biohicl.search.indexing import DTYPE_CHOICES

#: how --backend lists its choices (as argparse lists ``choices``); --dtype/--compute_dtype list
#: :data:`biohicl.search.indexing.DTYPE_CHOICES`, as ``biohicl index`` does
BACKEND_CHOICES = "{" + ",".join(BACKENDS) + "}"
HELP = "Embed texts (.txt lines, .tsv or .jsonl records) into a safetensors matrix."


@dataclass
class EncodeArguments:
    model: str = field(metadata={"help": "Registered name (BioHiCL-Base), Hub repo id[@revision] or a folder."})
    input: str = field(
        metadata={
            "help": "A .txt file (one text per line, blank lines included: row i is line i), .tsv (id<TAB>text "
            "rows, optional header) or .jsonl (strings or {id,title,text})."
        }
    )
    output: str = field(metadata={"help": "Where to write the safetensors file (tensor `embeddings` [n, dim])."})
    kind: str = field(
        default="document",
        metadata={"help": "`query` or `document` (chooses the prompt).", "choices": ["query", "document"]},
    )
    dtype: str = field(
        default="float32", metadata={"help": "Output dtype: float32, float16 or bfloat16.", "metavar": DTYPE_CHOICES}
    )
    compute_dtype: str | None = field(
        default=None,
        metadata={"help": "Autocast dtype (default: `dtype` on a GPU, float32 on CPU).", "metavar": DTYPE_CHOICES},
    )
    batch_size: int = field(default=32, metadata={"help": "Texts per forward pass."})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1 ... (default: cuda if available)."})
    backend: str = field(
        default="torch",
        metadata={
            "help": "Encoder: `torch` or `onnx` (ONNX Runtime, exported once and checked).",
            "metavar": BACKEND_CHOICES,
        },
    )
    quantize: str | None = field(
        default=None, metadata={"help": "With --backend onnx: `int8` (dynamic int8 quantisation, ~2x faster on CPU)."}
    )
    progress: bool = field(default=True, metadata={"help": "Progress bar (--no_progress: none)."})

    def __post_init__(self) -> None:
        from biohicl.errors import ConfigError

        if self.batch_size < 1:  # refused when parsed, before the model loads
            raise ConfigError(f"--batch_size: must be positive, got {self.batch_size}")


def main(argv: list[str]) -> int:
    from biohicl.atomic import check_writable
    from biohicl.cli.output_paths import check_distinct_files
    from biohicl.cli.parser import parse_command
    from biohicl.cli.progress import library_bars
    from biohicl.data.text_files import check_text_file
    from biohicl.models.onnx_backend import check_backend, load_inference_model, onnx_providers, with_backend
    from biohicl.search.embeddings_file import encode_file
    from biohicl.search.layout import parse_dtype

    (args,) = parse_command(EncodeArguments, argv, prog="biohicl encode", description=__doc__)
    check_text_file(args.input)  # a missing, folder or parquet input fails before the model loads
    parse_dtype(args.dtype)  # a bad dtype fails before the model loads
    if args.compute_dtype:  # "" is the default, as encode_file reads it
        parse_dtype(args.compute_dtype, "compute_dtype")
    check_distinct_files({"--output": args.output}, {"--input": args.input})  # never encoded over its own input
    check_writable(args.output)  # an unwritable output fails now, not after encoding everything
    backend, quantize = check_backend(args.backend, args.quantize)
    extra = {"providers": onnx_providers(args.device)} if backend == "onnx" else {}  # checked before the model loads
    # ONNX Runtime's export starts from a CPU model; --device picks where its session runs
    with library_bars(args.progress):  # --no_progress: no "Loading weights" bar either
        model = load_inference_model(args.model, device="cpu" if backend == "onnx" else args.device)
        model = with_backend(model, backend, quantize, **extra)
    embeddings = encode_file(
        model, args.input, args.output, kind=args.kind, dtype=args.dtype, compute_dtype=args.compute_dtype,
        batch_size=args.batch_size, show_progress_bar=None if args.progress else False,
    )  # fmt: skip
    print(f"wrote {len(embeddings)} × {embeddings.shape[1]} {args.dtype} embeddings to {args.output}")
    return 0

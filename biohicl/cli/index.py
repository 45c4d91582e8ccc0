"""``biohicl index``: encode a corpus into a sharded, resumable embedding index.

Run it under ``accelerate launch --multi_gpu --num_processes N -m biohicl.cli.main index ...`` (or
``torchrun --nproc_per_node N -m biohicl.cli.main index ...``) to split the corpus across processes/GPUs
(shard-strided; rank 0 writes the merged manifest). Rerun the same command after a kill to resume. One run at a
time in an output folder: another run into it is refused while one runs (Linux, macOS; on Windows, which has no file
locks, it is not refused, and the run says so in a warning: start one at a time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from biohicl.cli.encode import BACKEND_CHOICES
from biohicl.search.indexing import IndexingArguments

HELP = "Encode a corpus (BEIR folder, .jsonl, .tsv, documents parquet) into a sharded embedding index."


@dataclass
class IndexCommandArguments:
    corpus: str = field(
        metadata={"help": "BEIR folder or corpus.jsonl, id/title/text .jsonl/.tsv, or documents parquet (or CORPUS)."}
    )
    model: str = field(metadata={"help": "Registered name (BioHiCL-Base), Hub repo id[@revision] or a folder."})
    output: str = field(metadata={"help": "Index folder (manifest.json + shard-*.safetensors)."})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda ... (default: the process's accelerator)."})
    progress: bool = field(default=True, metadata={"help": "Progress bar (--no_progress: none)."})
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


def check_options(options: IndexingArguments) -> None:
    """Refuse a bad ``--shard_size``/``--batch_size``/``--dtype``/``--compute_dtype`` before the model loads (as
    :func:`build_index` would after: None or "" is the default ``compute_dtype``, as for ``biohicl encode``)."""
    from biohicl.errors import ConfigError
    from biohicl.search.layout import parse_dtype

    for name in ("shard_size", "batch_size"):
        if getattr(options, name) < 1:
            raise ConfigError(f"--{name}: must be positive, got {getattr(options, name)}")
    parse_dtype(options.dtype)
    if options.compute_dtype:  # "" is the default, as build_index and encode_file read it
        parse_dtype(options.compute_dtype, "compute_dtype")


def main(argv: list[str]) -> int:
    from biohicl.cli.parser import parse_command
    from biohicl.cli.progress import library_bars
    from biohicl.models.onnx_backend import load_inference_model
    from biohicl.search.folder_setup import index_folder_lock
    from biohicl.search.indexing import build_index, check_compression, distributed_state

    args, options, _ = parse_command(
        (IndexCommandArguments, IndexingArguments),
        argv,
        prog="biohicl index",
        description=__doc__,
        positionals={"corpus": {"nargs": "?", "help": "same as --corpus"}},
    )
    from biohicl.atomic import check_writable_folder
    from biohicl.data.corpus import read_corpus
    from biohicl.models.onnx_backend import check_backend, with_backend

    check_options(options)
    check_writable_folder(args.output, "--output")  # a file in the way fails now, not after the model loads
    read_corpus(args.corpus)  # a missing corpus or unknown format fails now too (the readers are lazy)
    backend, quantize = check_backend(args.backend, args.quantize)
    check_compression(options.compress, options.calibration_rows)
    state = distributed_state()
    # rank 0 holds the folder's lock from here: another run into it is refused now, not after the model loads
    with index_folder_lock(args.output, state.is_main_process):
        with library_bars(args.progress):  # --no_progress: no "Loading weights" bar either
            device = "cpu" if backend == "onnx" else args.device or state.device
            model = load_inference_model(args.model, device=device)
        manifest = build_index(
            with_backend(model, backend, quantize),
            args.corpus,
            args.output,
            shard_size=options.shard_size,
            batch_size=options.batch_size,
            dtype=options.dtype,
            compute_dtype=options.compute_dtype,
            resume=options.resume,
            show_progress_bar=None if args.progress else False,
            state=state,
            compress=options.compress,
            calibration_rows=options.calibration_rows,
        )
    if state.is_main_process:
        print(
            f"indexed {manifest.count} documents ({manifest.dim}-d {manifest.dtype}, {len(manifest.shards)} shards, "
            f"{manifest.world_size} process(es)) with {manifest.model} into {args.output}"
            + (f"; compressed: {options.compress}" if options.compress else "")
        )
    return 0

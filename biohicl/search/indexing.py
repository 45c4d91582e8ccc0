"""Encode a corpus into a sharded, resumable embedding index (one process or many under ``accelerate launch``).

>>> manifest = build_index(model, "scifact/corpus.jsonl", "index/scifact", shard_size=50_000)

Shard ``g`` holds documents ``g * shard_size`` to ``(g + 1) * shard_size - 1`` of the corpus stream, in order, so
an index is the same whatever the number of processes (the folder's files: :mod:`biohicl.search.layout`). Every
shard on disk is complete (atomic writes), so a rerun with the same arguments skips them (checking that the corpus
still has the same ids there, with the same texts, and, once all are accepted, rewriting the docs sidecar of one
whose MeSH labels changed: :mod:`biohicl.search.contents`) and encodes the rest.

**Distributed** (``accelerate launch --multi_gpu --num_processes N -m biohicl.cli.main index ...``, or ``torchrun
--nproc_per_node N -m biohicl.cli.main index ...``; see :func:`distributed_state`): the split is *shard-strided* —
rank ``r`` of ``N`` encodes shards ``r, r + N, r + 2N, ...`` (every rank streams the corpus, but only tokenizes and
encodes its own shards), writes ``rank-0000r.json`` listing its shard set, and rank 0 merges those into
``manifest.json`` after a barrier (:mod:`biohicl.search.rank_merge`). The corpus is never held in memory as text: at
most one shard of documents is, and the ids seen so far as 8-byte digests (:mod:`biohicl.search.seen_ids`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from biohicl.atomic import atomic_write_text
from biohicl.data.corpus import BlankDocuments, Document, iter_documents
from biohicl.errors import ConfigError, DataError
from biohicl.jsonio import read_json
from biohicl.search import blank_documents
from biohicl.search.compression import check_compression, refresh_compressed
from biohicl.search.compression import compression_kinds as compression_kinds  # moved there; imported from here
from biohicl.search.contents import TEXTS_KEY, UNKNOWN, PendingLabels, check_texts
from biohicl.search.embeddings_file import NON_FINITE, first_non_finite_row
from biohicl.search.folder_setup import index_folder_lock, prepare_folder, undo_fresh_start
from biohicl.search.layout import (
    MANIFEST_NAME,
    STORAGE_DTYPES,
    TEXT_TEMPLATE,
    IndexManifest,
    ShardInfo,
    describe_model,
    docs_name,
    dtype_name,
    encoder_probe,
    ids_digest,
    parse_dtype,
    rank_manifest_name,
    read_shard_metadata,
    shard_name,
    write_shard,
)
from biohicl.search.rank_merge import merge_rank_manifests
from biohicl.search.seen_ids import SeenIds

logger = logging.getLogger(__name__)

#: how ``--dtype``/``--compute_dtype`` list their choices (as argparse lists ``choices``; :func:`parse_dtype` also
#: takes bf16, fp16 ...)
DTYPE_CHOICES = "{" + ",".join(STORAGE_DTYPES) + "}"


@dataclass
class IndexingArguments:
    """Options of :func:`build_index` (and ``biohicl index``)."""

    shard_size: int = field(
        default=50_000,
        metadata={
            "help": "Documents per shard (the unit of resume). Documents added later re-encode the last partial "
            "shard whole (under 50k documents, the whole corpus): a smaller size makes growth cheap."
        },
    )
    batch_size: int = field(default=64, metadata={"help": "Texts per forward pass."})
    dtype: str = field(
        default="float32", metadata={"help": "Storage dtype: float32, float16 or bfloat16.", "metavar": DTYPE_CHOICES}
    )
    compute_dtype: str | None = field(
        default=None,
        metadata={
            "help": "Autocast dtype for the forward pass (default: `dtype` on GPU, float32 on CPU).",
            "metavar": DTYPE_CHOICES,
        },
    )
    resume: bool = field(default=True, metadata={"help": "Keep completed shards of an earlier run (after a kill)."})
    compress: str | None = field(
        default=None,
        metadata={
            "help": "Also write a compressed copy searched first (exact rescoring from the float shards): int8 "
            "(4x less RAM), binary (32x) or int8,binary. On a finished index it only compresses."
        },
    )
    calibration_rows: int = field(
        default=262_144, metadata={"help": "Rows sampled (spread over all shards) to calibrate the compression."}
    )


def _shards(
    documents: Iterator[Document], shard_size: int, source: Any = None, seen: SeenIds | None = None
) -> Iterator[list[Document]]:
    """``shard_size`` documents at a time; a :class:`DataError` naming the file and record of a repeated document
    id (and where it was first), checked on the ids ``seen`` holds (:mod:`biohicl.search.seen_ids`)."""
    seen = SeenIds() if seen is None else seen
    chunk: list[Document] = []
    for doc in itertools.chain(documents, [None]):
        if doc is not None:
            chunk.append(doc)
            if len(chunk) < shard_size:
                continue
        if not chunk:
            return
        repeat = seen.check(chunk)
        if repeat is not None:
            doc, first = repeat
            path = doc.source or source
            where = first.place() if first.source == doc.source else first.where()  # in another file: its name
            if first.source is None and doc.source is not None:  # not in the repeat's file: in memory
                where = f"{first.place() or 'one'} of the in-memory documents"
            message = f"duplicate document id {doc.id!r} (first at {where})"
            if path is None and doc.record is not None:  # an in-memory repeat: no file to name
                after_file = first.source is not None  # a place of its own, not one of the first copy's file
                message = f"{doc.place()}{' of the in-memory documents' if after_file else ''}: {message}"
            raise DataError(message, path, **{"line" if doc.line else "record": doc.record})
        yield chunk
        chunk = []


def _refuse_non_finite(rows: torch.Tensor, docs: list[Document], number: int, source: Any) -> None:
    """A :class:`DataError` naming the document (its file and line or record) whose row holds a NaN or inf, as
    ``biohicl evaluate`` refuses such rows: ``search`` ranked a NaN row first. Shard ``number`` is not written; the
    shards before it stay, for a rerun to keep."""
    bad = first_non_finite_row(rows)
    if bad is not None:
        doc, path = docs[bad], docs[bad].source or source
        message = f"document {doc.id!r}: {NON_FINITE}; shard {number} was not written"
        if path is None and doc.record is not None:  # in-memory documents: no file to name
            message = f"{doc.place()}: {message}"
        raise DataError(message, path, **{"line" if doc.line else "record": doc.record})


def _rereader(corpus: str | Path | Iterable[Any], keep_blank: bool) -> Callable[[], Iterator[Document]] | None:
    """What re-reads ``corpus``: None for a one-shot iterator or a pipe (reopened, it would wait forever)."""
    path = Path(corpus) if isinstance(corpus, (str, Path)) else None
    if (iter(corpus) is corpus) if path is None else not (path.is_file() or path.is_dir()):
        return None
    return lambda: blank_documents.indexed(iter_documents(corpus), BlankDocuments(), keep_blank)


def _kept_digest(
    path: Path, docs: list[Document], number: int, blank_ids: set[str], labels: PendingLabels
) -> tuple[str, str | None] | None:
    """The ids and text digests of shard ``number`` on disk when it holds ``docs`` (the text one None for a shard
    written before biohicl recorded it), their changed MeSH labels noted in ``labels`` (the encoder never sees them);
    None when it holds only their first ones (the earlier corpus ended there: encode it again); else a
    :class:`DataError`: other documents, or the same ids with another title or text (naming the first such id), or
    blank documents, ``blank_ids``, that this run left out."""
    meta = read_shard_metadata(path)
    digest = ids_digest(d.id for d in docs)
    count = int(meta.get("count", -1))
    if meta.get("ids_sha256") == digest and count == len(docs):
        texts = meta.get(TEXTS_KEY)
        sidecar = path.with_name(docs_name(number))
        check_texts(path, sidecar, number, texts, docs)
        labels.add(number, sidecar, docs)
        return digest, texts
    if 0 < count < len(docs) and meta.get("ids_sha256") == ids_digest(d.id for d in docs[:count]):
        logger.info(
            "shard %d held the first %d of its %d documents: encoding all %d again (a grown index re-encodes its last "
            "partial shard whole; a smaller --shard_size makes adding documents cheaper)",
            *(number, count, len(docs), len(docs)),
        )
        return None
    hint = blank_documents.refusal_hint(path.with_name(docs_name(number)), blank_ids)
    reason = hint or "the corpus changed since the earlier run; documents may only be added at its end"
    raise DataError(
        f"shard {number} was built from other documents than the corpus now has there ({reason}); use a new "
        "output folder",
        path,
    )


def _kept_shards(directory: Path, world: int) -> int:
    """The shards the ranks kept from an earlier run (``kept_shards`` of each ``rank-*.json``; a missing or broken
    one counts 0 here: :func:`merge_rank_manifests` refuses it)."""
    kept = 0
    for path in (directory / rank_manifest_name(rank) for rank in range(world)):
        with contextlib.suppress(DataError):
            part = read_json(path) if path.is_file() else None
            kept += part["kept_shards"] if isinstance(part, dict) and isinstance(part.get("kept_shards"), int) else 0
    return kept


def _settings(
    model: Any, model_id: str, revision: str | None, dtype: torch.dtype, compute: torch.dtype, shard_size: int
) -> dict:
    config = model.config
    return {
        "model": model_id,
        "model_revision": revision,
        "dtype": dtype_name(dtype),
        "compute_dtype": dtype_name(compute),
        "backend": getattr(model, "backend", "torch"),  # an OnnxEncoder says "onnx"
        "quantize": getattr(model, "quantize", None),
        "dim": int(model.embedding_dim),
        "shard_size": shard_size,
        "pooling": config.pooling,
        "normalized": bool(config.normalize),
        "max_length": int(config.max_length),
        "query_prompt": config.query_prompt,
        "document_prompt": config.document_prompt,
        "base_model": config.base_model,
        "base_revision": config.base_revision,
        "text_template": TEXT_TEMPLATE,
        "probe": encoder_probe(model),
    }


def _compute_dtypes(
    model: Any, storage: torch.dtype, given: str | torch.dtype | None
) -> tuple[torch.dtype, torch.dtype]:
    """The autocast dtype of the forward pass and its default: ``storage`` on a GPU, float32 on CPU (also for ``""``,
    as ``encode_file`` reads an empty ``--compute_dtype``)."""
    default = storage if model.device.type == "cuda" else torch.float32
    return (default if given is None or given == "" else parse_dtype(given, "compute_dtype")), default


def _progress_bar(corpus: str | Path | Iterable[Any], rank: int, world: int, show: bool | None) -> Any:
    """A bar counting the corpus's documents; hidden when ``show`` is False, or None and the corpus is sized under
    1000."""
    from tqdm.auto import tqdm

    total = len(corpus) if hasattr(corpus, "__len__") and not isinstance(corpus, (str, Path)) else None
    return tqdm(
        total=total,
        desc="Indexing" if world == 1 else f"Indexing (rank {rank}/{world})",
        unit="doc",
        disable=show is False or (show is None and total is not None and total < 1000),
        position=rank,
    )


@dataclass
class _RankPart:
    """What one rank did, its ``rank-*.json`` (:func:`merge_rank_manifests` joins them); ``kept_shards``: those of an
    earlier run it accepted, ``skipped``: their documents."""

    rank: int
    world_size: int
    total_shards: int = 0
    has_titles: bool = False
    has_mesh: bool = False
    encoded: int = 0
    skipped: int = 0
    kept_shards: int = 0
    skipped_blank: int = 0
    shards: list[ShardInfo] = field(default_factory=list)

    def write(self, directory: Path) -> None:
        text = json.dumps(asdict(self), indent=2) + "\n"  # its shards as dicts too
        atomic_write_text(directory / rank_manifest_name(self.rank), text, fsync=True)


def distributed_state(state: Any | None = None) -> Any:
    """``accelerate.PartialState()``; on a machine without an accelerator, launched processes (``WORLD_SIZE`` > 1,
    e.g. ``torchrun --nproc_per_node 2``) join a CPU (gloo) process group instead of each running alone."""
    if state is not None:
        return state
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    from biohicl.settings import launched_without_accelerator

    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or launched_without_accelerator()
    return PartialState(cpu=cpu)


def build_index(
    model: Any,
    corpus: str | Path | Iterable[Any],
    output_dir: str | Path,
    shard_size: int = 50_000,
    batch_size: int = 64,
    dtype: str | torch.dtype = "float32",
    *,
    compute_dtype: str | torch.dtype | None = None,
    resume: bool = True,
    model_id: str | None = None,
    model_revision: str | None = None,
    show_progress_bar: bool | None = None,
    state: Any | None = None,
    compress: str | Iterable[str] | None = None,
    calibration_rows: int = 262_144,
) -> IndexManifest:
    """Encode ``corpus`` (a path for :func:`biohicl.data.corpus.read_corpus` or an iterable of documents) into shards.

    Streams the corpus shard by shard; ``dtype`` is the storage dtype of the embeddings; ``compute_dtype`` the
    autocast dtype (default, also for ``""``: ``dtype`` on a GPU, float32 on CPU). Under ``accelerate launch`` every
    process runs this same call and encodes its own shards (see the module docstring); all return the merged manifest.
    ``model_id``/``model_revision`` override what the manifest records (default: :func:`describe_model`).
    ``compress`` (``"int8"``, ``"binary"`` or both) then writes the compressed form(s) beside the shards (rank 0,
    after the merge; see :mod:`biohicl.search.compression`).
    """
    if shard_size < 1:
        raise ConfigError(f"shard_size: must be positive, got {shard_size}")
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be positive, got {batch_size}")
    kinds = check_compression(compress, calibration_rows)
    storage = parse_dtype(dtype)
    state = distributed_state(state)
    rank, world = int(state.process_index), int(state.num_processes)
    device = torch.device(state.device) if world > 1 else model.device
    if device != model.device and device.type != "cpu":
        model.to(device)
    compute, default_compute = _compute_dtypes(model, storage, compute_dtype)
    revision = model_revision
    if model_id is None:
        model_id, described = describe_model(model)
        revision = model_revision or described
    directory = Path(output_dir)
    settings = _settings(model, model_id, revision, storage, compute, shard_size)
    with index_folder_lock(directory, state.is_main_process):  # one build at a time in a folder
        fresh = created = False
        if state.is_main_process:
            fresh, created = prepare_folder(directory, settings, resume, dtype_name(default_compute))
        state.wait_for_everyone()
        keep_blank = blank_documents.recorded_mode(directory) == blank_documents.KEEP  # every rank: as rank 0 recorded

        part = _RankPart(rank, world)
        unknown_shards = unknown_rows = 0  # kept shards written before their texts were recorded
        regrown: int | None = None  # the partial shard encoded again, its manifest.json removed
        blank, blank_ids, labels = BlankDocuments(), set[str](), PendingLabels()  # labels: written once all are kept
        source = corpus if isinstance(corpus, (str, Path)) else None
        bar = _progress_bar(corpus, rank, world, show_progress_bar)
        try:
            stream = blank_documents.indexed(iter_documents(corpus), blank, keep_blank, blank_ids)
            for number, docs in enumerate(_shards(stream, shard_size, source, SeenIds(_rereader(corpus, keep_blank)))):
                part.total_shards = number + 1
                part.has_titles = part.has_titles or any(d.title for d in docs)
                part.has_mesh = part.has_mesh or any(d.mesh for d in docs)
                if number % world != rank:
                    bar.update(len(docs))
                    continue
                path = directory / shard_name(number)
                if resume and path.is_file() and (directory / docs_name(number)).is_file():
                    digests = _kept_digest(path, docs, number, blank_ids, labels)
                    if digests is not None:
                        digest, texts = digests
                        if texts is None:
                            unknown_shards, unknown_rows = unknown_shards + 1, unknown_rows + len(docs)
                        info = ShardInfo(
                            number, shard_name(number), docs_name(number), 0, len(docs), digest, rank, texts
                        )
                        part.shards.append(info)
                        part.skipped += len(docs)
                        part.kept_shards += 1
                        bar.update(len(docs))
                        continue
                    # the last shard of a smaller corpus: re-encoded whole; the old manifest would list its old count
                    (directory / MANIFEST_NAME).unlink(missing_ok=True)
                    regrown = number
                embeddings = model.encode(
                    [d.full_text() for d in docs],
                    batch_size=batch_size,
                    kind="document",
                    convert_to="torch",
                    show_progress_bar=False,
                    dtype=compute if compute != torch.float32 else None,
                )
                rows = embeddings.to(storage)
                _refuse_non_finite(rows, docs, number, source)
                part.shards.append(write_shard(directory, number, rows, docs, rank))
                part.encoded += len(docs)
                bar.update(len(docs))
            if part.total_shards == 0:  # "indexed 0 documents" into an index no search can use
                left_out = f" ({blank.count} blank document(s) left out)" if blank.count else ""
                raise DataError(f"no documents; nothing to index{left_out}", source)
        except BaseException as err:
            if fresh:
                undo_fresh_start(directory, created)
            if regrown is not None and isinstance(err, DataError):  # a bad new record: the one line says what it left
                why = f"its {MANIFEST_NAME} was removed to encode again shard {regrown}, which the earlier run left"
                why += " partial"
                err.args = (f"{err}; {directory} is unsearchable until a rerun completes ({why})", *err.args[1:])
            raise
        finally:
            bar.close()
        labels.apply(logger)  # no shard was refused: the kept shards' new MeSH labels
        if unknown_shards:
            shards = f"{unknown_shards} of the {part.kept_shards} shards kept ({unknown_rows} rows) were"
            logger.warning("%s: %s", directory, UNKNOWN.format(shards))
        part.skipped_blank = 0 if keep_blank else blank.count
        part.write(directory)
        state.wait_for_everyone()
        if state.is_main_process:
            blank_documents.report(blank, keep_blank, directory, source)
            kept = _kept_shards(directory, world)
            manifest = merge_rank_manifests(directory, world, settings)
            if not fresh:
                logger.info("resuming: kept %d of %d shards", kept, len(manifest.shards))
            refresh_compressed(directory, manifest, kinds, calibration_rows)
        state.wait_for_everyone()
        return IndexManifest.load(directory)

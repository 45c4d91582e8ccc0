"""Exact cosine top-k over an index, in chunks (bounded memory, any corpus size), or through its compressed form.

>>> hits = search(model, "insulin resistance in obesity", "index/scifact", top_k=10)[0]
>>> hits[0].id, hits[0].score, hits[0].title
>>> search_like("index/scifact", ["25429730"])          # documents like an indexed one (no model)

:func:`search_embeddings` is the core: it streams the index ``chunk_size`` rows at a time (positioned reads of each
block into its own buffer, :meth:`~biohicl.search.index.Index.iter_blocks`: no shard is memory-mapped, so none
counts whole against the process's memory), scores them with one matrix product and keeps a running top-k, so
memory is ``O(query_batch × chunk_size)`` whatever the number of documents and queries. Explanations of the hits:
:mod:`biohicl.search.explain`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biohicl.data.records import INDEXING
from biohicl.errors import ConfigError, DataError
from biohicl.search.compressed import QUERY_BATCH, CompressedIndex
from biohicl.search.compression import available_kinds
from biohicl.search.float_rows import stored_unit_rows
from biohicl.search.index import DEFAULT_CHUNK_SIZE, Hit, Index, as_index
from biohicl.search.layout import describe_model, encoder_probe, probe_cosine, probe_min_cosine
from biohicl.topk import merge_top_k

SEARCH_BACKENDS = ("auto", "exact", "int8", "binary")


#: Queries the exact scan scores against a block at once: 256 MiB of float32 scores at the default chunk size. Four
#: times the compressed search's :data:`~biohicl.search.compressed.QUERY_BATCH`: smaller matrix products cost the
#: scan time (docs/benchmarks.md, "Many queries at once").
EXACT_QUERY_BATCH = 4 * QUERY_BATCH


def search_embeddings(
    queries: torch.Tensor | np.ndarray,
    index: Index | str | Path,
    top_k: int = 10,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: str | torch.device | None = None,
    query_batch: int = EXACT_QUERY_BATCH,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact cosine top-k: ``(scores [q, k], rows [q, k])``, best first; ``k = min(top_k, len(index))``.

    Streams the index in blocks of ``chunk_size`` rows and merges each block's top-k into a running top-k; each
    block is scored against ``query_batch`` queries at a time (memory ``O(query_batch × chunk_size)``, 256 MiB at the
    defaults, however many queries), each block read once. Ties are deterministic: among rows whose float32 scores
    are equal (duplicate abstracts), the lower row number wins the cut and comes first. Scores are not computed in
    float64, so a row's score may differ in the last bit between chunk sizes or query batch sizes (the matrix
    product's summation order); such scores are not ties.
    """
    if top_k < 1:
        raise ConfigError(f"top_k: must be positive, got {top_k}")
    index = as_index(index)
    q = torch.as_tensor(queries).float()
    if q.ndim == 1:
        q = q.unsqueeze(0)
    if q.shape[1] != index.dim:
        raise ConfigError(f"queries have dimension {q.shape[1]}, the index has {index.dim}")
    device = torch.device(device) if device is not None else q.device
    if query_batch < 1:
        raise ConfigError(f"query_batch: must be positive, got {query_batch}")
    q = torch.nn.functional.normalize(q, dim=-1).to(device)
    parts = [q[first : first + query_batch] for first in range(0, q.shape[0], query_batch)] or [q]
    best = [
        (torch.empty(len(p), 0, device=device), torch.empty(len(p), 0, dtype=torch.long, device=device)) for p in parts
    ]
    with torch.inference_mode():
        for start, block in index.iter_blocks(chunk_size):
            block = block.to(device=device, dtype=torch.float32, non_blocking=True)
            if not unit_rows(index):  # float16/bfloat16 rows renormalised in float32: scores are their cosines
                block = torch.nn.functional.normalize(block, dim=-1)
            for number, part in enumerate(parts):
                scores = part @ block.T
                best[number] = merge_top_k(*best[number], scores, start, top_k, stable=True)
                del scores  # one [query_batch, chunk_size] score matrix at a time
            del block  # freed before the next block is read: one block in memory at a time
    return torch.cat([s for s, _ in best]).cpu(), torch.cat([r for _, r in best]).cpu()


def unit_rows(index: Index) -> bool:
    """Whether ``index``'s rows are scored as they are (unit length in float32); else each is renormalised in float32
    first (an unnormalised or float16/bfloat16 index: :func:`~biohicl.search.float_rows.stored_unit_rows`)."""
    return index.manifest is None or stored_unit_rows(index.manifest)


def hits_from(index: Index, scores: torch.Tensor, rows: torch.Tensor) -> list[list[Hit]]:
    """Turn ``(scores, rows)`` into :class:`Hit` lists, reading the ids/titles/MeSH of the returned rows only.

    Rows below 0 are left out (a query's list is then shorter): approximate FAISS indexes (IVF, HNSW) pad a query
    for which they found fewer than k rows with row -1.
    """
    docs = index.documents(row for row in rows.flatten().tolist() if row >= 0)
    results = []
    for query_scores, query_rows in zip(scores.tolist(), rows.tolist(), strict=False):
        found = [(score, row) for score, row in zip(query_scores, query_rows, strict=False) if row >= 0]
        hits = []
        for rank, (score, row) in enumerate(found, 1):
            doc = docs[row]
            labels = tuple(doc.get("mesh", ()))
            kind = doc.get("label_kind") or INDEXING  # a sidecar line without one (an older index's too): indexing
            hits.append(Hit(doc["id"], float(score), rank, row, doc.get("title", ""), labels, kind))
        results.append(hits)
    return results


def check_model_matches(model: Any, index: Index) -> None:
    """Raise when the model's dimension differs from the index's; warn when it is not the model that built it (or
    not at the same revision, when both are known, or with other weights, when the index recorded its probe). A
    local folder other than the one the index was built with is the same model when the probe rows agree."""
    if int(model.embedding_dim) != index.dim:
        raise ConfigError(f"the model embeds in {model.embedding_dim} dimensions, the index holds {index.dim}")
    manifest = index.manifest
    if manifest is not None:
        model_id, revision = describe_model(model)
        built = manifest.model_revision
        # an int8 ONNX index (or query encoder) is an approximation: its probe rows agree to the int8 tolerance
        tolerance = probe_min_cosine(manifest.quantize, getattr(model, "quantize", None))
        rows = encoder_probe(model) if manifest.probe else None
        cosine = probe_cosine(manifest.probe, rows, tolerance)
        agree = rows is not None and cosine is None  # the index recorded probe rows, and the model's agree
        if model_id != manifest.model and not (agree and _local_folders(model, manifest.model)):
            message = f"the index was built with {manifest.model}, the queries are encoded with {model_id}"
        elif revision and built and revision != built:
            message = f"the index was built with {model_id} at revision {built}, the queries are encoded at {revision}"
        elif cosine is not None:
            message = (
                f"the index {index.directory} was built with other weights than the query encoder's (both "
                f"{model_id}; probe cosine {cosine:.4f}); rebuild it with this model"
            )
        else:
            return
        warnings.warn(message, UserWarning, stacklevel=3)


def _local_folders(model: Any, built_with: str) -> bool:
    """Whether the query encoder was loaded from a local folder and the index records one (a copy of its weights, a
    moved run: the same model when their probe rows agree; a Hub id or revision is compared as it is)."""
    resolved = getattr(model, "resolved", None)
    return resolved is not None and not resolved.repo_id and Path(built_with).is_absolute()


def resolve_backend(index: Index, backend: str = "auto") -> str:
    """``auto`` → the index's compressed form (int8 before binary) when it has one, else ``exact``."""
    backend = str(backend).lower()
    if backend not in SEARCH_BACKENDS:
        raise ConfigError(f"backend: {backend!r} is not one of {', '.join(SEARCH_BACKENDS)}")
    if backend != "auto":
        return backend
    if index.directory is None:
        return "exact"
    kinds = available_kinds(index.directory)
    return kinds[0] if kinds else "exact"


def compressed_view(index: Index, kind: str) -> CompressedIndex:
    """The index's :class:`~biohicl.search.compressed.CompressedIndex` of ``kind`` (loaded once per Index)."""
    if index.directory is None:
        raise ConfigError(f"backend {kind}: an in-memory index has no compressed form; use `exact`")
    if kind not in index.compressed_views:
        index.compressed_views[kind] = CompressedIndex.load(index.directory, kind)
    return index.compressed_views[kind]


def search_index(
    queries: torch.Tensor | np.ndarray,
    index: Index | str | Path,
    top_k: int = 10,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: str | torch.device | None = None,
    backend: str = "auto",
    candidates: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores, rows)`` through ``backend``: ``exact`` (:func:`search_embeddings`), ``int8``/``binary`` (the
    compressed matrix, then exact rescoring of ``candidates`` rows per query), or ``auto`` (compressed if built)."""
    index = as_index(index)
    backend = resolve_backend(index, backend)
    if backend == "exact":
        return search_embeddings(queries, index, top_k, chunk_size, device)
    return compressed_view(index, backend).search_embeddings(queries, top_k, candidates=candidates)


def check_queries(queries: str | Iterable[str]) -> list[str]:
    """``queries`` as a list; a :class:`ConfigError` naming the first (1-based) that is blank: its hits would be
    whatever the empty prompt lands nearest, not an answer."""
    texts = [queries] if isinstance(queries, str) else list(queries)
    for number, text in enumerate(texts, 1):
        if not isinstance(text, str) or not text.strip():
            problem = "is blank" if isinstance(text, str) else "is not a string"
            raise ConfigError(f"query {number}: {problem}; give it text")
    return texts


def search(
    model: Any,
    queries: str | Iterable[str],
    index: Index | str | Path,
    top_k: int = 10,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    backend: str = "auto",
    candidates: int | None = None,
) -> list[list[Hit]]:
    """Encode ``queries`` (with the query prompt) and return the cosine top-k hits of each, best first.

    One hit list per query: a single string gives a one-element list, no queries an empty one. ``index`` is an
    :class:`Index` or an index folder. With ``backend="auto"`` an index that has a compressed form (``biohicl index
    --compress``) is searched through it (exact scores of the rescored candidates); ``"exact"`` forces the full
    float32 scan.
    """
    texts = check_queries(queries)
    index = as_index(index)
    check_model_matches(model, index)
    if not texts:
        return []
    embeddings = model.encode(texts, batch_size=batch_size, kind="query", convert_to="torch", show_progress_bar=False)
    scores, rows = search_index(
        embeddings.reshape(len(texts), -1), index, top_k, chunk_size, device, backend=backend, candidates=candidates
    )
    return hits_from(index, scores, rows)


def search_like(
    index: Index | str | Path,
    doc_ids: str | Iterable[str],
    top_k: int = 10,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: str | torch.device | None = None,
) -> list[list[Hit]]:
    """More like these: each indexed document's stored row is the query (no model, nothing re-encoded).

    Returns the exact cosine top-k of every document in ``doc_ids``, the document itself left out. Pair the hits
    with :func:`~biohicl.search.explain.explain_hits` and ``query_mesh`` (the document's MeSH) to see what each
    hit shares with it.
    """
    index = as_index(index)
    ids = [doc_ids] if isinstance(doc_ids, str) else [str(i) for i in doc_ids]
    return like_found(index, ids, index.find(ids), top_k, chunk_size, device)


def like_found(
    index: Index,
    ids: Sequence[str],
    rows: Mapping[str, int],
    top_k: int = 10,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: str | torch.device | None = None,
) -> list[list[Hit]]:
    """:func:`search_like` of ``ids`` whose rows the caller found (``rows``: ``index.find(ids)``), so that a caller
    which reads the documents too (``biohicl search --like``) reads the id sidecars once."""
    missing = [i for i in ids if i not in rows]
    if missing:
        where = index.directory if index.directory is not None else "the index"
        raise DataError(f"document id {missing[0]!r} is not in the index ({len(index)} documents)", where)
    positions = [rows[i] for i in ids]
    scores, found = search_embeddings(index.rows(positions), index, top_k + 1, chunk_size, device)
    results = []
    for hits, position in zip(hits_from(index, scores, found), positions, strict=True):
        kept = [h for h in hits if h.position != position][:top_k]
        results.append([replace(h, rank=rank) for rank, h in enumerate(kept, 1)])
    return results

"""Exact cosine top-k over a sharded index, in chunks (bounded memory, any corpus size), with MeSH explanations.

>>> index = load_index("index/scifact")
>>> hits = search(model, "insulin resistance in obesity", index, top_k=10)[0]
>>> hits[0].id, hits[0].score, hits[0].title
>>> print(explain_hits(hits).format())         # MeSH terms the hits share (the SimL explanation)

:func:`search_embeddings` is the core: it streams the index ``chunk_size`` rows at a time (a shard is read through
safetensors' lazy slices, never whole), scores them with one matrix product and keeps a running top-k, so memory
is ``O(queries × chunk_size)`` whatever the number of documents.
"""

from __future__ import annotations

import bisect
import json
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biohicl.errors import ConfigError, DataError
from biohicl.search.compressed import merge_top_k
from biohicl.search.indexing import EMBEDDINGS_KEY, IndexManifest, describe_model

DEFAULT_CHUNK_SIZE = 65_536


@dataclass
class Hit:
    """One search result: document id, cosine score, 1-based rank, row in the index, title and MeSH UIs."""

    id: str
    score: float
    rank: int
    position: int
    title: str = ""
    mesh: tuple[str, ...] = ()


class Index:
    """A searchable embedding index: a folder written by :func:`biohicl.search.indexing.build_index`, or in memory.

    Rows are read lazily; document metadata (ids, titles, MeSH) only for the rows a search returns.
    """

    def __init__(
        self,
        manifest: IndexManifest | None = None,
        directory: str | Path | None = None,
        *,
        embeddings: torch.Tensor | None = None,
        docs: list[dict[str, Any]] | None = None,
    ):
        self.manifest = manifest
        self.directory = Path(directory) if directory is not None else None
        self._embeddings = embeddings
        self._docs = docs
        if manifest is not None:
            self._starts = [s.start for s in manifest.shards]

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, directory: str | Path) -> Index:
        """Open an index folder (reads ``manifest.json`` and checks every shard file is there)."""
        directory = Path(directory)
        manifest = IndexManifest.load(directory)
        for shard in manifest.shards:
            for name in (shard.file, shard.docs):
                if not (directory / name).is_file():
                    raise DataError(f"shard file {name} listed in the manifest is missing", directory)
        return cls(manifest, directory)

    @classmethod
    def from_embeddings(
        cls,
        embeddings: torch.Tensor | np.ndarray,
        ids: Sequence[str] | None = None,
        titles: Sequence[str] | None = None,
        mesh: Sequence[Sequence[str]] | None = None,
    ) -> Index:
        """An in-memory index over ``embeddings`` [n, dim] (rows are L2-normalised here for cosine)."""
        tensor = torch.as_tensor(embeddings)
        if tensor.ndim != 2:
            raise ConfigError(f"embeddings: expected a 2-D matrix, got shape {tuple(tensor.shape)}")
        tensor = torch.nn.functional.normalize(tensor.float(), dim=-1)
        n = tensor.shape[0]
        ids = [str(i) for i in range(n)] if ids is None else [str(i) for i in ids]
        if len(ids) != n or (titles is not None and len(titles) != n) or (mesh is not None and len(mesh) != n):
            raise ConfigError(f"ids/titles/mesh: expected {n} entries each, one per embedding row")
        docs = [
            {"id": ids[i], "title": titles[i] if titles else "", "mesh": list(mesh[i]) if mesh else []}
            for i in range(n)
        ]
        return cls(embeddings=tensor, docs=docs)

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return self.manifest.count if self.manifest is not None else int(self._embeddings.shape[0])

    @property
    def dim(self) -> int:
        return self.manifest.dim if self.manifest is not None else int(self._embeddings.shape[1])

    @property
    def normalized(self) -> bool:
        return self.manifest.normalized if self.manifest is not None else True

    # ------------------------------------------------------------------ reading
    def iter_blocks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(first_row, block)`` with blocks of at most ``chunk_size`` rows, in row order."""
        if chunk_size < 1:
            raise ConfigError(f"chunk_size: must be positive, got {chunk_size}")
        if self._embeddings is not None:
            for start in range(0, self._embeddings.shape[0], chunk_size):
                yield start, self._embeddings[start : start + chunk_size]
            return
        from safetensors import safe_open

        for shard in self.manifest.shards:
            path = self.directory / shard.file
            try:
                with safe_open(str(path), framework="pt") as handle:
                    rows = handle.get_slice(EMBEDDINGS_KEY)
                    for offset in range(0, shard.count, chunk_size):
                        yield shard.start + offset, rows[offset : min(offset + chunk_size, shard.count)]
            except DataError:
                raise
            except Exception as err:  # a truncated or garbled shard
                raise DataError(f"unreadable shard ({err})", path) from None

    def embeddings(self) -> torch.Tensor:
        """All rows as one float32 tensor (for small indexes and tests)."""
        blocks = [b.float() for _, b in self.iter_blocks()]
        return torch.cat(blocks) if blocks else torch.empty(0, self.dim)

    def find(self, ids: Iterable[str]) -> dict[str, int]:
        """``{id: row}`` for the given document ids that the index holds (one pass over the id sidecars)."""
        wanted = {str(i) for i in ids}
        if self._docs is not None:
            return {d["id"]: row for row, d in enumerate(self._docs) if d["id"] in wanted}
        found: dict[str, int] = {}
        for shard in self.manifest.shards:
            path = self.directory / shard.docs
            with path.open(encoding="utf-8") as handle:
                for line_number, line in enumerate(handle):
                    try:
                        doc_id = str(json.loads(line)["id"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        raise DataError("not a JSON object with an `id`", path, line_number + 1) from None
                    if doc_id in wanted and doc_id not in found:
                        found[doc_id] = shard.start + line_number
            if len(found) == len(wanted):
                break
        return found

    def rows(self, positions: Sequence[int]) -> torch.Tensor:
        """The embedding rows at ``positions`` as float32 ``[n, dim]`` (reads only those rows of their shards)."""
        if self._embeddings is not None:
            return self._embeddings[list(positions)].float()
        from safetensors import safe_open

        out = torch.empty(len(positions), self.dim)
        for i, position in enumerate(positions):
            if not 0 <= position < len(self):
                raise IndexError(f"row {position} is outside the index (0..{len(self) - 1})")
            shard = self.manifest.shards[bisect.bisect_right(self._starts, position) - 1]
            with safe_open(str(self.directory / shard.file), framework="pt") as handle:
                local = position - shard.start
                out[i] = handle.get_slice(EMBEDDINGS_KEY)[local : local + 1][0].float()
        return out

    def documents(self, positions: Iterable[int]) -> dict[int, dict[str, Any]]:
        """``{row: {"id", "title", "mesh"}}`` for the given rows (reads only the shards' sidecars needed)."""
        wanted = sorted(set(int(p) for p in positions))
        if self._docs is not None:
            return {p: self._docs[p] for p in wanted}
        by_shard: dict[int, list[int]] = {}
        for position in wanted:
            if not 0 <= position < len(self):
                raise IndexError(f"row {position} is outside the index (0..{len(self) - 1})")
            by_shard.setdefault(bisect.bisect_right(self._starts, position) - 1, []).append(position)
        found: dict[int, dict[str, Any]] = {}
        for number, rows in by_shard.items():
            shard = self.manifest.shards[number]
            local = {p - shard.start: p for p in rows}
            path = self.directory / shard.docs
            with path.open(encoding="utf-8") as handle:
                for line_number, line in enumerate(handle):
                    if line_number in local:
                        try:
                            record = json.loads(line)
                        except json.JSONDecodeError as err:
                            raise DataError(f"not valid JSON ({err.msg})", path, line_number + 1) from None
                        found[local[line_number]] = record
                        if len(found) == len(wanted):
                            break
        return found


def load_index(directory: str | Path) -> Index:
    """Open an index folder written by :func:`biohicl.search.indexing.build_index` (or ``biohicl index``)."""
    return Index.load(directory)


def _as_index(index: Index | str | Path) -> Index:
    return index if isinstance(index, Index) else load_index(index)


def search_embeddings(
    queries: torch.Tensor | np.ndarray,
    index: Index | str | Path,
    top_k: int = 10,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact cosine top-k: ``(scores [q, k], rows [q, k])``, best first; ``k = min(top_k, len(index))``.

    Streams the index in blocks of ``chunk_size`` rows and merges each block's top-k into a running top-k.
    Returned hits with equal scores are ordered by row number.
    """
    if top_k < 1:
        raise ConfigError(f"top_k: must be positive, got {top_k}")
    index = _as_index(index)
    q = torch.as_tensor(queries).float()
    if q.ndim == 1:
        q = q.unsqueeze(0)
    if q.shape[1] != index.dim:
        raise ConfigError(f"queries have dimension {q.shape[1]}, the index has {index.dim}")
    device = torch.device(device) if device is not None else q.device
    q = torch.nn.functional.normalize(q, dim=-1).to(device)
    best_scores = torch.empty(q.shape[0], 0, device=device)
    best_rows = torch.empty(q.shape[0], 0, dtype=torch.long, device=device)
    with torch.inference_mode():
        for start, block in index.iter_blocks(chunk_size):
            block = block.to(device=device, dtype=torch.float32, non_blocking=True)
            if not index.normalized:
                block = torch.nn.functional.normalize(block, dim=-1)
            scores = q @ block.T
            best_scores, best_rows = merge_top_k(best_scores, best_rows, scores, start, top_k)
    return _sort_hits(best_scores.cpu(), best_rows.cpu())


def _sort_hits(scores: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order each row's hits by score (descending), ties by row number (ascending)."""
    by_row = rows.argsort(dim=1, stable=True)
    scores, rows = scores.gather(1, by_row), rows.gather(1, by_row)
    by_score = scores.argsort(dim=1, descending=True, stable=True)
    return scores.gather(1, by_score), rows.gather(1, by_score)


def hits_from(index: Index, scores: torch.Tensor, rows: torch.Tensor) -> list[list[Hit]]:
    """Turn ``(scores, rows)`` into :class:`Hit` lists, reading the ids/titles/MeSH of the returned rows only."""
    docs = index.documents(rows.flatten().tolist())
    results = []
    for query_scores, query_rows in zip(scores.tolist(), rows.tolist(), strict=False):
        hits = []
        for rank, (score, row) in enumerate(zip(query_scores, query_rows, strict=False), 1):
            doc = docs[row]
            hits.append(Hit(doc["id"], float(score), rank, row, doc.get("title", ""), tuple(doc.get("mesh", ()))))
        results.append(hits)
    return results


def check_model_matches(model: Any, index: Index) -> None:
    """Raise when the model's dimension differs from the index's; warn when it is not the model that built it."""
    if int(model.embedding_dim) != index.dim:
        raise ConfigError(f"the model embeds in {model.embedding_dim} dimensions, the index holds {index.dim}")
    if index.manifest is not None:
        model_id, _ = describe_model(model)
        if model_id != index.manifest.model:
            warnings.warn(
                f"the index was built with {index.manifest.model}, the queries are encoded with {model_id}",
                UserWarning,
                stacklevel=3,
            )


SEARCH_BACKENDS = ("auto", "exact", "int8", "binary")


def resolve_backend(index: Index, backend: str = "auto") -> str:
    """``auto`` → the index's compressed form (int8 before binary) when it has one, else ``exact``."""
    backend = str(backend).lower()
    if backend not in SEARCH_BACKENDS:
        raise ConfigError(f"backend: {backend!r} is not one of {', '.join(SEARCH_BACKENDS)}")
    if backend != "auto":
        return backend
    if index.directory is None:
        return "exact"
    from biohicl.search.compressed import available_kinds

    kinds = available_kinds(index.directory)
    return kinds[0] if kinds else "exact"


def compressed_view(index: Index, kind: str) -> Any:
    """The index's :class:`~biohicl.search.compressed.CompressedIndex` of ``kind`` (loaded once per Index)."""
    from biohicl.search.compressed import CompressedIndex

    if index.directory is None:
        raise ConfigError(f"backend {kind}: an in-memory index has no compressed form; use `exact`")
    cache = index.__dict__.setdefault("_compressed", {})
    if kind not in cache:
        cache[kind] = CompressedIndex.load(index.directory, kind)
    return cache[kind]


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
    index = _as_index(index)
    backend = resolve_backend(index, backend)
    if backend == "exact":
        return search_embeddings(queries, index, top_k, chunk_size, device)
    return compressed_view(index, backend).search_embeddings(queries, top_k, candidates=candidates)


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

    A single string gives a one-element list. ``index`` is an :class:`Index` or an index folder. With
    ``backend="auto"`` an index that has a compressed form (``biohicl index --compress``) is searched through it
    (exact scores of the rescored candidates); ``"exact"`` forces the full float32 scan.
    """
    index = _as_index(index)
    check_model_matches(model, index)
    texts = [queries] if isinstance(queries, str) else list(queries)
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
    with :func:`explain_hits` and ``query_mesh`` (the document's MeSH) to see what each hit shares with it.
    """
    index = _as_index(index)
    ids = [doc_ids] if isinstance(doc_ids, str) else [str(i) for i in doc_ids]
    rows = index.find(ids)
    missing = [i for i in ids if i not in rows]
    if missing:
        where = index.directory if index.directory is not None else "the index"
        raise DataError(f"document id {missing[0]!r} is not in the index ({len(index)} documents)", where)
    positions = [rows[i] for i in ids]
    scores, found = search_embeddings(index.rows(positions), index, top_k + 1, chunk_size, device)
    results = []
    for hits, position in zip(hits_from(index, scores, found), positions, strict=True):
        kept = [h for h in hits if h.position != position][:top_k]
        results.append([Hit(h.id, h.score, rank, h.position, h.title, h.mesh) for rank, h in enumerate(kept, 1)])
    return results


# ---------------------------------------------------------------------------------------------- explanations
@dataclass
class SharedTerm:
    """A MeSH descriptor that several hits (or the query and hits) carry."""

    ui: str
    name: str
    ranks: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.ranks)


@dataclass
class HitExplanation:
    """Why a hit sits near the query in MeSH terms: shared descriptors, deepest shared tree nodes, SimL."""

    hit: Hit
    shared: list[str]
    common_ancestors: list[str]
    siml: float | None


@dataclass
class Explanation:
    """MeSH terms shared between a query's hits (or between a query document and its hits)."""

    shared_terms: list[SharedTerm]
    hits: list[HitExplanation]
    query_mesh: tuple[str, ...] = ()

    def format(self, max_terms: int = 8) -> str:
        """Human-readable summary (what ``biohicl search`` prints)."""
        n = len(self.hits)
        lines = []
        if self.shared_terms:
            terms = ", ".join(f"{t.name} ({t.count}/{n})" for t in self.shared_terms[:max_terms])
            lines.append(f"shared MeSH terms: {terms}")
        else:
            lines.append("shared MeSH terms: none")
        return "\n".join(lines)


def _node_names(mesh: Any) -> dict[str, str]:
    names = getattr(mesh, "_biohicl_node_names", None)
    if names is None:
        names = {tn: mesh.names[ui] for ui, tns in mesh.trees.items() for tn in tns}
        mesh._biohicl_node_names = names
    return names


def _most_specific(nodes: set[str]) -> list[str]:
    """Nodes that are not an ancestor of another node in the set, deepest first."""
    keep = [n for n in nodes if not any(o != n and o.startswith(n + ".") for o in nodes)]
    return sorted(keep, key=lambda n: (-n.count("."), n))


def _resolve_all(mesh: Any, labels: Iterable[str]) -> list[str]:
    out: list[str] = []
    for label in labels:
        ui = mesh.try_resolve(label)
        if ui is not None and ui not in out:
            out.append(ui)
    return out


def explain_hits(
    hits: Sequence[Hit],
    mesh: Any | None = None,
    query_mesh: Sequence[str] | None = None,
    min_hits: int = 2,
) -> Explanation:
    """The SimL explanation of a result list.

    Without ``query_mesh``: the descriptors carried by at least ``min_hits`` hits (most common first), and for
    each hit the shared descriptors it carries and its mean SimL to the other annotated hits. With ``query_mesh``
    (a query document's labels): per hit the descriptors it shares with the query, the deepest tree nodes they
    share, and SimL(query, hit); ``shared_terms`` then lists the query's descriptors by how many hits carry them.
    ``mesh`` defaults to the packaged MeSH 2024 hierarchy.
    """
    if mesh is None:
        from biohicl.mesh.hierarchy import MeshHierarchy

        mesh = MeshHierarchy.load()
    labels = [_resolve_all(mesh, hit.mesh) for hit in hits]
    node_names = _node_names(mesh)
    explained: list[HitExplanation] = []
    if query_mesh is not None:
        query = _resolve_all(mesh, query_mesh)
        query_nodes = mesh.label_nodes(query)
        terms = {ui: SharedTerm(ui, mesh.names[ui]) for ui in query}
        for hit, uis in zip(hits, labels, strict=False):
            shared = [ui for ui in query if ui in uis]
            for ui in shared:
                terms[ui].ranks.append(hit.rank)
            common = _most_specific(query_nodes & mesh.label_nodes(uis))
            siml = mesh.label_similarity(query, uis) if uis and query else 0.0
            explained.append(
                HitExplanation(hit, [mesh.names[u] for u in shared], [node_names[n] for n in common], siml)
            )
        shared_terms = sorted((t for t in terms.values() if t.ranks), key=lambda t: (-t.count, t.name))
        return Explanation(shared_terms, explained, tuple(query))

    counts = Counter(ui for uis in labels for ui in uis)
    common_uis = {ui for ui, c in counts.items() if c >= min_hits}
    shared_terms = [
        SharedTerm(ui, mesh.names[ui], [h.rank for h, uis in zip(hits, labels, strict=False) if ui in uis])
        for ui in sorted(common_uis, key=lambda u: (-counts[u], mesh.names[u]))
    ]
    annotated = [i for i, uis in enumerate(labels) if uis]
    sim = mesh.similarity_matrix([labels[i] for i in annotated]).numpy() if len(annotated) > 1 else None
    position = {i: j for j, i in enumerate(annotated)}
    for i, (hit, uis) in enumerate(zip(hits, labels, strict=False)):
        siml = None
        if sim is not None and i in position:
            j = position[i]
            siml = float((sim[j].sum() - sim[j, j]) / (len(annotated) - 1))
        others = mesh.label_nodes(ui for k, other in enumerate(labels) if k != i for ui in other)
        common = _most_specific(mesh.label_nodes(uis) & others)
        explained.append(
            HitExplanation(
                hit, [mesh.names[u] for u in uis if u in common_uis], [node_names[n] for n in common[:5]], siml
            )
        )
    return Explanation(shared_terms, explained)

"""Index a corpus with an encoder and search it: exact cosine top-k, compressed (int8/binary) first stages, FAISS.

Modules, lowest first: ``layout`` (an index folder's files: manifest, durable shard writes), ``float_rows`` (float32
rows: a search's candidates by positional reads, whole shards memory-mapped), ``compression`` (int8/binary codes of
an index), ``compressed`` (:class:`CompressedIndex`: compressed first stage, exact rescoring), ``index``
(:class:`Index`, :class:`Hit`), ``exact`` (:func:`search`, :func:`search_embeddings`, :func:`search_like`),
``explain`` (shared MeSH terms, SimL), ``indexing`` (:func:`build_index`, resumable and distributed), ``documents``
(an index's rows as the document embeddings of an evaluation), ``faiss_index`` (optional FAISS backend). Names are
imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from biohicl.lazy import lazy_dir, lazy_getattr

_LAZY = {
    "IndexManifest": "biohicl.search.layout",
    "CompressedIndex": "biohicl.search.compressed",
    "compress_index": "biohicl.search.compression",
    "Hit": "biohicl.search.index",
    "Index": "biohicl.search.index",
    "load_index": "biohicl.search.index",
    "search": "biohicl.search.exact",
    "search_embeddings": "biohicl.search.exact",
    "search_like": "biohicl.search.exact",
    "explain_hits": "biohicl.search.explain",
    "IndexingArguments": "biohicl.search.indexing",
    "build_index": "biohicl.search.indexing",
    "IndexDocuments": "biohicl.search.documents",
}

if TYPE_CHECKING:
    from biohicl.search.compressed import CompressedIndex
    from biohicl.search.compression import compress_index
    from biohicl.search.documents import IndexDocuments
    from biohicl.search.exact import search, search_embeddings, search_like
    from biohicl.search.explain import explain_hits
    from biohicl.search.index import Hit, Index, load_index
    from biohicl.search.indexing import IndexingArguments, build_index
    from biohicl.search.layout import IndexManifest

__all__ = [
    "CompressedIndex",
    "Hit",
    "Index",
    "IndexDocuments",
    "IndexManifest",
    "IndexingArguments",
    "build_index",
    "compress_index",
    "explain_hits",
    "load_index",
    "search",
    "search_embeddings",
    "search_like",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)

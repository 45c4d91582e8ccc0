"""Optional FAISS backend (``pip install faiss-cpu``) over a biohicl index: same hits as the exact search for a
flat index, plus any ``faiss.index_factory`` string (``"IVF1024,Flat"``, ``"HNSW32"``) for approximate search.

>>> searcher = FaissSearcher.build(load_index("index/scifact"))        # IndexFlatIP, exact
>>> searcher.save("index/scifact/flat.faiss")
>>> hits = search(model, ["insulin resistance"], "index/scifact", top_k=10)[0]
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biohicl.errors import ConfigError, ModelLoadError
from biohicl.provenance import extra_install
from biohicl.search.exact import check_model_matches, hits_from, unit_rows
from biohicl.search.index import DEFAULT_CHUNK_SIZE, Hit, Index, as_index
from biohicl.topk import sort_top_k


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ModelLoadError(
            f"the FAISS backend needs faiss: `pip install faiss-cpu` (or the faiss extra: {extra_install('faiss')})"
        ) from None
    return faiss


def _rows(block: torch.Tensor, normalized: bool) -> np.ndarray:
    """float32 rows, renormalised in float32 unless ``normalized`` (float16/bfloat16 rows are not unit length)."""
    block = block.float()
    if not normalized:
        block = torch.nn.functional.normalize(block, dim=-1)
    return np.ascontiguousarray(block.numpy(), dtype=np.float32)


class FaissSearcher:
    """A FAISS inner-product index whose row ``i`` is row ``i`` of a biohicl :class:`~biohicl.search.index.Index`."""

    def __init__(self, faiss_index: Any, index: Index):
        if faiss_index.ntotal != len(index):
            raise ConfigError(f"the FAISS index holds {faiss_index.ntotal} rows, the biohicl index {len(index)}")
        self.faiss_index = faiss_index
        self.index = index

    @classmethod
    def build(
        cls,
        index: Index | str | Path,
        factory: str = "Flat",
        train_size: int = 262_144,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> FaissSearcher:
        """Add the index's (normalised) rows block by block to ``faiss.index_factory(dim, factory, inner product)``.

        Indexes that need training (IVF, PQ) are trained on the first ``train_size`` rows.
        """
        faiss = _faiss()
        index = as_index(index)
        faiss_index = faiss.index_factory(index.dim, factory, faiss.METRIC_INNER_PRODUCT)
        if not faiss_index.is_trained:
            sample = []
            taken = 0
            for _, block in index.iter_blocks(chunk_size):
                sample.append(_rows(block, unit_rows(index))[: train_size - taken])
                taken += len(sample[-1])
                if taken >= train_size:
                    break
            faiss_index.train(np.concatenate(sample))
        for _, block in index.iter_blocks(chunk_size):
            faiss_index.add(_rows(block, unit_rows(index)))
        return cls(faiss_index, index)

    def save(self, path: str | Path) -> None:
        _faiss().write_index(self.faiss_index, str(path))

    @classmethod
    def load(cls, path: str | Path, index: Index | str | Path) -> FaissSearcher:
        return cls(_faiss().read_index(str(path)), as_index(index))

    def search_embeddings(
        self, queries: torch.Tensor | np.ndarray, top_k: int = 10
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores [q, k], rows [q, k])`` like :func:`biohicl.search.exact.search_embeddings`; an approximate index
        (IVF, HNSW) that finds fewer than k rows for a query pads them with row -1 (left out by
        :func:`~biohicl.search.exact.hits_from`)."""
        if top_k < 1:
            raise ConfigError(f"top_k: must be positive, got {top_k}")
        q = torch.nn.functional.normalize(torch.as_tensor(queries).float().reshape(-1, self.index.dim), dim=-1)
        k = min(top_k, len(self.index))
        scores, rows = self.faiss_index.search(np.ascontiguousarray(q.numpy()), k)
        return sort_top_k(torch.from_numpy(scores), torch.from_numpy(rows).long())

    def search(
        self, model: Any, queries: str | Iterable[str], top_k: int = 10, batch_size: int = 32
    ) -> list[list[Hit]]:
        """Encode ``queries`` and return their top-k :class:`~biohicl.search.index.Hit` lists."""
        check_model_matches(model, self.index)
        texts = [queries] if isinstance(queries, str) else list(queries)
        emb = model.encode(texts, batch_size=batch_size, kind="query", convert_to="torch", show_progress_bar=False)
        scores, rows = self.search_embeddings(emb, top_k)
        return hits_from(self.index, scores, rows)


def search(
    model: Any,
    queries: str | Iterable[str],
    index: Index | str | Path,
    top_k: int = 10,
    factory: str = "Flat",
    batch_size: int = 32,
) -> list[list[Hit]]:
    """`biohicl.search.exact.search` through a FAISS index built on the fly (``factory``, default exact ``Flat``)."""
    return FaissSearcher.build(index, factory=factory).search(model, queries, top_k=top_k, batch_size=batch_size)

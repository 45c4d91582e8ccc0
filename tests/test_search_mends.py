"""Search mends (session 32): the compressed codes of a float16/bfloat16 index are those of its rows renormalised in
float32 (as exact search scores them)."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch
from test_compressed_index import clustered, write_index

from biohicl.search.compressed import CompressedIndex
from biohicl.search.compression import Calibration, compress_index
from biohicl.search.exact import search_embeddings
from biohicl.search.index import Index


# ---------------------------------------------------------------------------------------------- compressed codes
def recall(queries: torch.Tensor, exact_rows: torch.Tensor, compressed: CompressedIndex, pool: int) -> float:
    """Mean share of each query's exact top-k that the compressed first stage's ``pool`` candidates hold."""
    _, candidates = compressed.approximate_top(queries, pool)
    found = [len(set(e.tolist()) & set(c.tolist())) for e, c in zip(exact_rows, candidates, strict=True)]
    return sum(found) / exact_rows.numel()


@pytest.mark.parametrize("kind", ["int8", "binary"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_codes_of_a_half_precision_index_are_those_of_its_rows_renormalised(tmp_path, kind, dtype):
    """Rows off unit length (norms 0.6 to 1.6, as a half cast of unnormalised rows leaves them) in an index that
    says it is normalised: its codes were built from the rows as stored, so they chose candidates by length."""
    g = torch.Generator().manual_seed(1)
    rows = clustered(1200, 64) * (0.6 + torch.rand(1200, 1, generator=g))
    write_index(tmp_path, rows, shard_size=500, dtype=dtype)
    info = compress_index(tmp_path, kind, calibration_rows=1200)  # every row in the sample

    stored = rows.to(dtype).float()
    unit = torch.nn.functional.normalize(stored, dim=-1).numpy()  # as exact search scores them
    calibration = Calibration.fit(unit, kind)
    assert info["calibration"] == asdict(calibration)
    codes = np.concatenate([np.load(tmp_path / shard["file"]) for shard in info["shards"]])
    np.testing.assert_array_equal(codes, calibration.encode(unit))

    queries = clustered(60, 64, seed=7)
    _, exact_rows = search_embeddings(queries, Index.load(tmp_path), top_k=10)
    compressed = CompressedIndex.load(tmp_path, kind)
    as_stored = Calibration.fit(stored.numpy(), kind)  # the codes of the rows as stored, as they were built before
    before = CompressedIndex(
        tmp_path,
        compressed.manifest,
        {**info, "calibration": asdict(as_stored)},
        torch.from_numpy(as_stored.encode(stored.numpy())),
    )
    pool = 40 if kind == "int8" else 100
    assert recall(queries, exact_rows, compressed, pool) > recall(queries, exact_rows, before, pool)

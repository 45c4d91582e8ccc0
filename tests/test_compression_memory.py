"""Calibration.fit works through its sample in parts (a column block's quantiles, a row block's deviations), so its
peak is a fraction of the sample over it, and its statistics, hence every code, are bit for bit those of the
whole-sample computation it replaced (kept below as ``whole_sample_fit``)."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from biohicl.search.compression import QUANTILE, Calibration, _sample_rows, as_scored, compress_index
from biohicl.search.float_rows import FloatRows
from biohicl.search.layout import EMBEDDINGS_KEY, INDEX_FORMAT, IndexManifest, ShardInfo, docs_name, shard_name


def whole_sample_fit(sample: np.ndarray, kind: str) -> dict:
    """Calibration.fit as it was (biohicl before session 33): quantiles and deviations over the whole sample."""
    sample = np.asarray(sample, dtype=np.float32)
    low, high = np.quantile(sample, [QUANTILE, 1 - QUANTILE], axis=0)
    scale = np.maximum((high - low) / 254.0, 1e-12)
    return {
        "kind": kind,
        "dim": int(sample.shape[1]),
        "offset": ((high + low) / 2).astype(np.float32).tolist(),
        "scale": scale.astype(np.float32).tolist(),
        "mean": sample.mean(0).astype(np.float32).tolist(),
        "rows": len(sample),
        "spread": np.abs(sample - sample.mean(0)).mean(0).astype(np.float32).tolist(),
    }


@pytest.mark.parametrize(
    ("rows", "dim", "seed"), [(1, 3, 0), (2, 1, 1), (5, 17, 2), (33, 8, 3), (1000, 40, 4), (4099, 96, 5)]
)
def test_fit_equals_the_whole_sample_computation(rows, dim, seed):
    rng = np.random.default_rng(seed)
    sample = (rng.standard_normal((rows, dim)) * 0.05 + rng.standard_normal(dim) * 0.02).astype(np.float32)
    sample[rng.random((rows, dim)) < 0.1] = 0.0  # ties
    for kind in ("int8", "binary"):
        assert asdict(Calibration.fit(sample, kind)) == whole_sample_fit(sample, kind)
    half = sample.astype(np.float16)  # a float16 sample: fit casts it to float32 first, as it did
    assert asdict(Calibration.fit(half, "int8")) == whole_sample_fit(half, "int8")


def test_fit_peak_is_a_fraction_of_the_sample():
    sample = np.random.default_rng(0).standard_normal((20_000, 64)).astype(np.float32)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        Calibration.fit(sample, "int8")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.25 * sample.nbytes  # it was 2x: a copy to partition, then |sample - mean| twice over


def write_index(directory: Path, rows: int, dim: int, shard_size: int, dtype: torch.dtype) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(1)
    centre = torch.randn(dim, generator=generator) * 0.05
    shards, start = [], 0
    for number, first in enumerate(range(0, rows, shard_size)):
        count = min(shard_size, rows - first)
        block = torch.nn.functional.normalize(torch.randn(count, dim, generator=generator) * 0.05 + centre, dim=-1)
        (directory / docs_name(number)).write_text(
            "".join(json.dumps({"id": str(first + i)}) + "\n" for i in range(count))
        )
        meta = {"count": str(count), "ids_sha256": "x", "shard": str(number), "format": INDEX_FORMAT}
        save_file({EMBEDDINGS_KEY: block.to(dtype)}, str(directory / shard_name(number)), metadata=meta)
        shards.append(ShardInfo(number, shard_name(number), docs_name(number), start, count, "x"))
        start += count
    dtype_name = str(dtype).removeprefix("torch.")
    manifest = IndexManifest(
        model="synthetic", model_revision=None, dtype=dtype_name, dim=dim, count=start, shards=shards
    )
    manifest.save(directory)
    return directory


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_compressed_codes_equal_those_of_the_whole_sample_calibration(tmp_path, kind, dtype):
    directory = write_index(tmp_path / "index", rows=700, dim=24, shard_size=256, dtype=dtype)
    info = compress_index(directory, kind, calibration_rows=500)
    manifest = IndexManifest.load(directory)
    rows = FloatRows(manifest, directory)
    expected = whole_sample_fit(_sample_rows(rows, 500), kind)
    assert info["calibration"] == expected
    calibration = Calibration(**expected)
    for number, shard in enumerate(info["shards"]):
        codes = np.load(directory / shard["file"])
        assert np.array_equal(codes, calibration.encode(as_scored(rows.shard_rows(number), manifest)))

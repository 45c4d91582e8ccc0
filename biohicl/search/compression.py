"""Compressed copies of an index: int8 (per-dimension calibrated) or binary (sign) codes of its float32 rows.

>>> compress_index("index/pubmed", "int8")   # writes compressed-int8.json + shard-*.int8.npy beside the shards

* **int8**: per dimension ``x ≈ offset + scale · c`` with ``c`` in [-127, 127]; ``offset``/``scale`` come from the
  dimension's 0.01 %/99.99 % quantiles over a sample of up to ``calibration_rows`` rows spread over all shards
  (values outside are clipped).
* **binary**: one bit per dimension, ``x > mean`` (per-dimension mean of the sample: centring keeps the bits
  balanced), packed 8 per byte; ``spread`` (the dimension's mean absolute deviation) is kept for scoring.

Files (one per float32 shard, so a distributed build and a resume keep their unit):
``compressed-<kind>.json`` (format, ``format_version`` (:data:`COMPRESSED_VERSION`), kind, dim, count, the
``calibration_rows`` asked for, calibration vectors, shards with their sha256) and
``shard-00000.<kind>.npy`` (``int8 [n, dim]`` or ``uint8 [n, ceil(dim / 8)]``). Searching them:
:mod:`biohicl.search.compressed`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biohicl.atomic import atomic_path, atomic_write_text
from biohicl.errors import ConfigError
from biohicl.field_types import is_count
from biohicl.provenance import files_sha256
from biohicl.search.float_rows import FloatRows, as_float32, stored_unit_rows
from biohicl.search.layout import IndexManifest

logger = logging.getLogger(__name__)

COMPRESSED_FORMAT = "biohicl-compressed-index"
#: 2: a float16/bfloat16 index's codes are those of its rows renormalised in float32, as a search scores them
#: (:func:`as_scored`); 1 (and older): of its rows as stored, off unit length. Both are read.
COMPRESSED_VERSION = 2
#: the first version whose codes are those of renormalised rows
RENORMALISED_VERSION = 2
KINDS = ("int8", "binary")
DEFAULT_CALIBRATION_ROWS = 262_144
DEFAULT_BLOCK_ROWS = 65_536
QUANTILE = 1e-4
#: Calibration.fit works through its sample in about this many parts: its temporaries are a part's size
FIT_PARTS = 16


def compressed_info_name(kind: str) -> str:
    return f"compressed-{kind}.json"


def compressed_shard_name(number: int, kind: str) -> str:
    return f"shard-{number:05d}.{kind}.npy"


def check_kind(kind: str) -> str:
    """``kind`` lower-cased; a :class:`ConfigError` unless it is one of :data:`KINDS`."""
    kind = str(kind).lower()
    if kind not in KINDS:
        raise ConfigError(f"compress: {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def available_kinds(directory: str | Path) -> list[str]:
    """The compressed forms an index folder holds (``int8`` first)."""
    return [k for k in KINDS if (Path(directory) / compressed_info_name(k)).is_file()]


@dataclass
class Calibration:
    """Per-dimension statistics of a sample of rows: int8 ``offset``/``scale``, binary ``mean``."""

    kind: str
    dim: int
    offset: list[float]
    scale: list[float]
    mean: list[float]
    rows: int
    spread: list[float] | None = None

    @classmethod
    def fit(cls, sample: np.ndarray, kind: str) -> Calibration:
        sample = np.asarray(sample, dtype=np.float32)
        if sample.ndim != 2 or not len(sample):
            raise ConfigError("calibration: need a non-empty [rows, dim] sample")
        low, high = _quantiles(sample)
        scale = np.maximum((high - low) / 254.0, 1e-12)
        mean = sample.mean(0)
        return cls(
            kind=check_kind(kind),
            dim=int(sample.shape[1]),
            offset=((high + low) / 2).astype(np.float32).tolist(),
            scale=scale.astype(np.float32).tolist(),
            mean=mean.astype(np.float32).tolist(),
            rows=len(sample),
            spread=_mean_absolute_deviation(sample, mean).astype(np.float32).tolist(),
        )

    def encode(self, rows: np.ndarray) -> np.ndarray:
        """Compress float rows: ``int8 [n, dim]`` or packed bits ``uint8 [n, ceil(dim / 8)]``."""
        rows = np.asarray(rows, dtype=np.float32)
        if self.kind == "int8":
            codes = np.rint((rows - np.asarray(self.offset, np.float32)) / np.asarray(self.scale, np.float32))
            return np.clip(codes, -127, 127).astype(np.int8)
        return np.packbits(rows > np.asarray(self.mean, np.float32), axis=1)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Approximate float rows from codes (int8: dequantised; binary: ±1 per dimension)."""
        if self.kind == "int8":
            return np.asarray(self.offset, np.float32) + np.asarray(self.scale, np.float32) * codes.astype(np.float32)
        return np.unpackbits(codes, axis=1, count=self.dim).astype(np.float32) * 2 - 1


def _quantiles(sample: np.ndarray) -> np.ndarray:
    """Each column's :data:`QUANTILE` and ``1 - QUANTILE`` quantiles (``[2, dim]``), as ``np.quantile(sample, …,
    axis=0)`` gives them, a block of about ``dim / FIT_PARTS`` columns at a time: the copy partitioned is that
    block's, not the sample's."""
    step = -(-sample.shape[1] // FIT_PARTS)
    parts = []
    for start in range(0, sample.shape[1], step):
        columns = np.ascontiguousarray(sample[:, start : start + step].T)  # each column's values contiguous
        parts.append(np.quantile(columns, [QUANTILE, 1 - QUANTILE], axis=1, overwrite_input=True))
        del columns
    return np.concatenate(parts, axis=1)


def _mean_absolute_deviation(sample: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``np.abs(sample - mean).mean(0)``, a block of about ``len(sample) / FIT_PARTS`` rows at a time: each block is
    summed on from the running total (its first row), in the row order of the one sum over the sample, so to the bit
    for the C-ordered samples of two or more columns :func:`compress_index` gives it (numpy sums one column
    pairwise)."""
    step = -(-len(sample) // FIT_PARTS)
    buffer = np.empty((step + 1, sample.shape[1]), dtype=np.float32)
    total = np.zeros(sample.shape[1], dtype=np.float32)
    for start in range(0, len(sample), step):
        block = sample[start : start + step]
        rows = buffer[: len(block) + 1]
        rows[0] = total
        np.abs(np.subtract(block, mean, out=rows[1:]), out=rows[1:])
        total = np.add.reduce(rows, axis=0)
    return np.true_divide(total, np.intp(len(sample)), out=total, casting="unsafe")  # as np.mean divides


def _sample_rows(rows: FloatRows, limit: int) -> np.ndarray:
    count = rows.manifest.count
    spread = np.linspace(0, count - 1, min(limit, count)).astype(np.int64)  # evenly over all shards
    positions = np.unique(spread)
    return as_scored(rows.take(positions), rows.manifest)


def as_scored(rows: np.ndarray, manifest: IndexManifest) -> np.ndarray:
    """``rows`` (as stored) in float32 as a search scores them: renormalised in float32 (as exact search and
    rescoring do) unless :func:`~biohicl.search.float_rows.stored_unit_rows`, so the codes of a float16/bfloat16
    index describe its scored rows, not their length after the half cast."""
    block = as_float32(rows)  # float32 shards: a (read-only) view of the map
    if stored_unit_rows(manifest):
        return block
    block = torch.from_numpy(block if block.flags.writeable else block.copy())
    return torch.nn.functional.normalize(block, dim=-1).numpy()


def compress_index(
    directory: str | Path,
    kind: str = "int8",
    calibration_rows: int = DEFAULT_CALIBRATION_ROWS,
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> dict[str, Any]:
    """Write the ``kind`` compressed form of a finished index beside its float32 shards; returns its info record.

    Reads the float32 shards twice: a spread-out calibration sample of up to ``calibration_rows`` rows through
    :meth:`FloatRows.take` (positioned reads), then every row once, shard by shard, each shard's memory map dropped
    before the next is mapped (the peak RSS holds one shard's pages, not the index's).
    """
    kind = check_kind(kind)
    if calibration_rows < 1:
        raise ConfigError(f"calibration_rows: must be positive, got {calibration_rows}")
    directory = Path(directory)
    manifest = IndexManifest.load(directory)
    rows = FloatRows(manifest, directory)
    calibration = Calibration.fit(_sample_rows(rows, calibration_rows), kind) if manifest.count else None
    if calibration is None:
        raise ConfigError(f"{directory}: the index is empty; nothing to compress")
    shards = []
    for number, shard in enumerate(manifest.shards):
        codes = _shard_codes(rows, number, calibration, block_rows)
        name = compressed_shard_name(shard.number, kind)
        with atomic_path(directory / name, fsync=True) as tmp:
            _save_npy(tmp, codes)
        shards.append(
            {"number": shard.number, "file": name, "count": shard.count, "sha256": files_sha256([directory / name])}
        )
    info = {
        "format": COMPRESSED_FORMAT,
        "format_version": COMPRESSED_VERSION,
        "kind": kind,
        "dim": manifest.dim,
        "count": manifest.count,
        "calibration_rows": calibration_rows,
        "calibration": asdict(calibration),
        "shards": shards,
    }
    atomic_write_text(directory / compressed_info_name(kind), json.dumps(info) + "\n", fsync=True)
    logger.info("compressed %d rows of %s to %s", manifest.count, directory, kind)
    return info


def _shard_codes(rows: FloatRows, number: int, calibration: Calibration, block_rows: int) -> np.ndarray:
    """Shard ``number``'s codes, ``block_rows`` rows at a time through its memory map, which (with every view of
    it) is dropped on return: the pages read stay this process's memory for one shard, not for all of them."""
    source = rows.shard_rows(number)
    parts = []
    for offset in range(0, len(source), block_rows):
        parts.append(calibration.encode(as_scored(source[offset : offset + block_rows], rows.manifest)))
    return np.concatenate(parts) if parts else calibration.encode(np.empty((0, rows.manifest.dim), np.float32))


def _save_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)


def check_compression(compress: str | Iterable[str] | None, calibration_rows: int) -> list[str]:
    """:func:`compression_kinds`, with ``calibration_rows`` checked when there is something to compress (before the
    corpus is encoded, not after)."""
    kinds = compression_kinds(compress)
    if kinds and calibration_rows < 1:
        raise ConfigError(f"calibration_rows: must be positive, got {calibration_rows}")
    return kinds


def compression_kinds(compress: str | Iterable[str] | None) -> list[str]:
    """``"int8,binary"`` / ``["int8"]`` / ``None`` → the validated list of compressed forms to write."""
    if compress is None:
        return []
    names = compress.split(",") if isinstance(compress, str) else list(compress)
    kinds = []
    for name in (n.strip().lower() for n in names):
        if name in ("", "none"):
            continue
        if name not in ("int8", "binary"):
            raise ConfigError(f"compress: {name!r} is not int8 or binary")
        if name not in kinds:
            kinds.append(name)
    return kinds


def stale_kinds(directory: str | Path, manifest: IndexManifest) -> dict[str, int | None]:
    """The compressed forms in ``directory`` that no longer describe the index's rows (an index grown by a rerun:
    another row count, or other shards), each with the ``calibration_rows`` it was built with (None when its info
    predates that record or is unreadable)."""
    stale: dict[str, int | None] = {}
    for kind in available_kinds(directory):
        path = Path(directory) / compressed_info_name(kind)
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            counts = [(s["number"], s["count"]) for s in info["shards"]]
        except (OSError, ValueError, KeyError, TypeError):
            counts, info = None, {}
        if info.get("count") != manifest.count or counts != [(s.number, s.count) for s in manifest.shards]:
            built_with = info.get("calibration_rows") if isinstance(info, dict) else None
            stale[kind] = built_with if is_count(built_with) else None
    return stale


def refresh_compressed(
    directory: str | Path, manifest: IndexManifest, kinds: list[str], calibration_rows: int = DEFAULT_CALIBRATION_ROWS
) -> None:
    """Write the ``kinds`` asked for (at ``calibration_rows``), and rebuild (with a log line) each other compressed
    form that the index's rows outgrew, at the ``calibration_rows`` it was built with (``calibration_rows`` when its
    info predates that record), so a search never meets a form of other rows and the rebuilt form equals a fresh
    build at its own setting."""
    rows_of = dict.fromkeys(kinds, calibration_rows)
    for kind, built_with in stale_kinds(directory, manifest).items():
        if kind not in rows_of:
            logger.warning(
                "%s: rebuilding %s: it describes other rows than the index's %d (documents were added)",
                directory,
                compressed_info_name(kind),
                manifest.count,
            )
            rows_of[kind] = calibration_rows if built_with is None else built_with
    for kind, rows in rows_of.items():
        compress_index(directory, kind, calibration_rows=rows)

"""Compressed indexes: int8 (per-dimension calibrated) or binary (sign) rows in RAM, exact rescoring from disk.

>>> compress_index("index/pubmed", "int8")            # writes compressed-int8.json + shard-*.int8.npy beside the shards
>>> searcher = CompressedIndex.load("index/pubmed")   # RAM: the compressed matrix only (4x / 32x below float32)
>>> scores, rows = searcher.search_embeddings(queries, top_k=10)

Stage 1 scores every compressed row against the queries and keeps ``candidates`` per query (default 4·k for int8,
10·k for binary, at least 40 / 100). Stage 2 reads those candidates' float32 rows from the memory-mapped
``shard-*.safetensors`` files (only the pages touched are read) and returns their exact cosine top-k, so the
returned scores are the exact ones and the hits equal the exact search's whenever the true top-k are among the
candidates.

* **int8**: per dimension ``x ≈ offset + scale · c`` with ``c`` in [-127, 127]; ``offset``/``scale`` come from the
  dimension's 0.01 %/99.99 % quantiles over a sample of up to ``calibration_rows`` rows spread over all shards
  (values outside are clipped). Queries are folded with ``scale``, quantised to int8 per query, and scored with
  one int8 × int8 → int32 GEMM (``torch._int_mm``; VNNI/AMX on x86) per block.
* **binary**: one bit per dimension, ``x > mean`` (per-dimension mean of the sample: centring keeps the bits
  balanced), packed 8 per byte. Scoring is asymmetric: the float query (int8-quantised) against
  ``x ≈ mean + spread · (±1)`` (``spread``: the dimension's mean absolute deviation), which keeps much more of the
  order than a Hamming distance between signs.

Files (one per float32 shard, so a distributed build and a resume keep their unit):
``compressed-<kind>.json`` (format, kind, dim, count, calibration vectors, shards with their sha256) and
``shard-00000.<kind>.npy`` (``int8 [n, dim]`` or ``uint8 [n, ceil(dim / 8)]``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biohicl.errors import ConfigError, DataError
from biohicl.search.indexing import EMBEDDINGS_KEY, IndexManifest, _atomic_write_bytes, _atomic_write_text

logger = logging.getLogger(__name__)

COMPRESSED_FORMAT = "biohicl-compressed-index"
COMPRESSED_VERSION = 1
KINDS = ("int8", "binary")
DEFAULT_CALIBRATION_ROWS = 262_144
DEFAULT_BLOCK_ROWS = 65_536
QUANTILE = 1e-4
_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def compressed_info_name(kind: str) -> str:
    return f"compressed-{kind}.json"


def compressed_shard_name(number: int, kind: str) -> str:
    return f"shard-{number:05d}.{kind}.npy"


def check_kind(kind: str) -> str:
    kind = str(kind).lower()
    if kind not in KINDS:
        raise ConfigError(f"compress: {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def available_kinds(directory: str | Path) -> list[str]:
    """The compressed forms an index folder holds (``int8`` first)."""
    return [k for k in KINDS if (Path(directory) / compressed_info_name(k)).is_file()]


# ------------------------------------------------------------------------------------------------ float32 rows
def mmap_shard(path: str | Path) -> np.ndarray:
    """The ``embeddings`` tensor of a shard as a read-only memory map (float32/float16; bfloat16 as uint16 bits)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_len))
        entry = header[EMBEDDINGS_KEY]
        dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if end - begin != int(np.prod(shape)) * np.dtype(dtype).itemsize:
            raise ValueError("data size does not match the shape")
        if path.stat().st_size < 8 + header_len + end:
            raise ValueError("file is shorter than its header says")
        if not shape[0]:
            return np.empty(shape, dtype=dtype)
        rows = np.memmap(path, dtype=dtype, mode="r", offset=8 + header_len + begin, shape=shape)
        advise = getattr(getattr(rows, "_mmap", None), "madvise", None)
        if advise is not None and hasattr(mmap, "MADV_RANDOM"):
            advise(mmap.MADV_RANDOM)  # rescoring reads scattered rows: no readahead around each one
        return rows
    except (OSError, ValueError, KeyError, TypeError, struct.error) as err:
        raise DataError(f"unreadable shard ({err})", path) from None


def as_float32(rows: np.ndarray) -> np.ndarray:
    if rows.dtype == np.uint16:  # bfloat16 bits → float32
        return (rows.astype(np.uint32) << 16).view(np.float32)
    return np.asarray(rows, dtype=np.float32)


class FloatRows:
    """Random access to an index's float32 rows through memory-mapped shards (RAM: the pages read, not the index)."""

    def __init__(self, manifest: IndexManifest, directory: Path):
        self.manifest = manifest
        self.directory = directory
        self._starts = [s.start for s in manifest.shards]
        self._maps: dict[int, np.ndarray] = {}

    def _map(self, number: int) -> np.ndarray:
        if number not in self._maps:
            self._maps[number] = mmap_shard(self.directory / self.manifest.shards[number].file)
        return self._maps[number]

    def take(self, positions: np.ndarray) -> np.ndarray:
        """float32 rows at ``positions`` (any order), ``[len(positions), dim]``."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.empty((len(positions), self.manifest.dim), dtype=np.float32)
        if not len(positions):
            return out
        shard_of = np.searchsorted(np.asarray(self._starts), positions, side="right") - 1
        for number in np.unique(shard_of):
            where = np.nonzero(shard_of == number)[0]
            local = positions[where] - self._starts[number]
            order = np.argsort(local, kind="stable")  # ascending offsets: sequential-ish page reads
            out[where[order]] = as_float32(self._map(int(number))[local[order]])
        self.release()
        return out

    def release(self) -> None:
        """Unmap the pages read so far from this process (``MADV_DONTNEED``): they stay in the OS page cache, which
        the kernel may reclaim, and no longer count as the process's resident memory."""
        for rows in self._maps.values():
            advise = getattr(getattr(rows, "_mmap", None), "madvise", None)
            if advise is not None and hasattr(mmap, "MADV_DONTNEED"):
                advise(mmap.MADV_DONTNEED)

    def iter_blocks(self, block_rows: int = DEFAULT_BLOCK_ROWS):
        for number, shard in enumerate(self.manifest.shards):
            rows = self._map(number)
            for offset in range(0, shard.count, block_rows):
                yield shard.start + offset, as_float32(rows[offset : offset + block_rows])


# ------------------------------------------------------------------------------------------------ quantisers
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
        low, high = np.quantile(sample, [QUANTILE, 1 - QUANTILE], axis=0)
        scale = np.maximum((high - low) / 254.0, 1e-12)
        return cls(
            kind=check_kind(kind),
            dim=int(sample.shape[1]),
            offset=((high + low) / 2).astype(np.float32).tolist(),
            scale=scale.astype(np.float32).tolist(),
            mean=sample.mean(0).astype(np.float32).tolist(),
            rows=len(sample),
            spread=np.abs(sample - sample.mean(0)).mean(0).astype(np.float32).tolist(),
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


def _sample_rows(rows: FloatRows, limit: int) -> np.ndarray:
    count = rows.manifest.count
    spread = np.linspace(0, count - 1, min(limit, count)).astype(np.int64)  # evenly over all shards
    positions = np.unique(spread)
    sample = rows.take(positions)
    if not rows.manifest.normalized:
        sample /= np.maximum(np.linalg.norm(sample, axis=1, keepdims=True), 1e-12)
    return sample


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def compress_index(
    directory: str | Path,
    kind: str = "int8",
    calibration_rows: int = DEFAULT_CALIBRATION_ROWS,
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> dict[str, Any]:
    """Write the ``kind`` compressed form of a finished index beside its float32 shards; returns its info record.

    Reads the float32 shards through memory maps (twice: a spread-out calibration sample, then every row once).
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
        source = rows._map(number)
        parts = []
        for offset in range(0, shard.count, block_rows):
            block = as_float32(source[offset : offset + block_rows])
            if not manifest.normalized:
                block = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
            parts.append(calibration.encode(block))
        codes = np.concatenate(parts) if parts else calibration.encode(np.empty((0, manifest.dim), np.float32))
        name = compressed_shard_name(shard.number, kind)
        _atomic_write_bytes(directory / name, lambda tmp, codes=codes: _save_npy(tmp, codes))
        shards.append(
            {"number": shard.number, "file": name, "count": shard.count, "sha256": _file_sha256(directory / name)}
        )
    info = {
        "format": COMPRESSED_FORMAT,
        "format_version": COMPRESSED_VERSION,
        "kind": kind,
        "dim": manifest.dim,
        "count": manifest.count,
        "calibration": asdict(calibration),
        "shards": shards,
    }
    _atomic_write_text(directory / compressed_info_name(kind), json.dumps(info) + "\n")
    logger.info("compressed %d rows of %s to %s", manifest.count, directory, kind)
    return info


def _save_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)


# ------------------------------------------------------------------------------------------------ search
def _int_mm_available() -> bool:
    try:
        torch._int_mm(torch.zeros(32, 64, dtype=torch.int8), torch.zeros(64, 32, dtype=torch.int8).T.contiguous().T)
    except Exception:
        return False
    return True


_INT_MM: bool | None = None


def _quantize_queries(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per query row: ``q ≈ scale[:, None] · codes`` (padded to ≥ 32 rows for the int8 GEMM)."""
    scale = q.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    codes = torch.round(q / scale[:, None]).clamp(-127, 127).to(torch.int8)
    rows = max(32, -(-q.shape[0] // 8) * 8)
    if rows != q.shape[0]:
        codes = torch.cat([codes, torch.zeros(rows - q.shape[0], q.shape[1], dtype=torch.int8)])
    return codes, scale


def _scores_int8(q_codes: torch.Tensor, block: torch.Tensor, count: int) -> torch.Tensor:
    """``q_codes @ block.T`` in int32 → float32 ``[count, rows]`` (int8 GEMM when torch has one)."""
    global _INT_MM
    if _INT_MM is None:
        _INT_MM = _int_mm_available()
    if _INT_MM:
        try:
            return torch._int_mm(q_codes, block.T)[:count].float()
        except RuntimeError:  # shapes this build's int8 GEMM does not take (tiny or odd sizes)
            pass
    return q_codes[:count].float() @ block.float().T


class CompressedIndex:
    """An index's compressed rows in RAM (one contiguous matrix) + its float32 shards memory-mapped for rescoring."""

    def __init__(self, directory: Path, manifest: IndexManifest, info: dict[str, Any], codes: torch.Tensor):
        self.directory = directory
        self.manifest = manifest
        self.info = info
        self.kind = info["kind"]
        self.calibration = Calibration(**info["calibration"])
        self.codes = codes
        self.float_rows = FloatRows(manifest, directory)

    @classmethod
    def load(cls, directory: str | Path, kind: str | None = None, verify: bool = False) -> CompressedIndex:
        """Read ``compressed-<kind>.json`` and its shards into one matrix (``kind`` default: int8 if present, else
        binary). ``verify=True`` also checks every shard's sha256 (reads the files twice)."""
        directory = Path(directory)
        manifest = IndexManifest.load(directory)
        kinds = available_kinds(directory)
        if kind is None:
            if not kinds:
                raise DataError("no compressed form (run `biohicl index --compress int8|binary`)", directory)
            kind = kinds[0]
        kind = check_kind(kind)
        info_path = directory / compressed_info_name(kind)
        if not info_path.is_file():
            raise DataError(f"no {info_path.name} (run `biohicl index --compress {kind}`)", directory)
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            calibration = info["calibration"]
            shards = info["shards"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(f"not a compressed-index record ({type(err).__name__}: {err})", info_path) from None
        if info.get("format") != COMPRESSED_FORMAT or info.get("kind") != kind:
            raise DataError(f"not a {kind} compressed-index record", info_path)
        if int(info.get("format_version", 0)) > COMPRESSED_VERSION:
            raise DataError(f"format version {info['format_version']} is newer than this biohicl", info_path)
        if info.get("count") != manifest.count or info.get("dim") != manifest.dim:
            raise DataError(
                f"describes {info.get('count')} × {info.get('dim')} rows, the index has {manifest.count} × "
                f"{manifest.dim} (rebuild it: biohicl index --compress {kind})",
                info_path,
            )
        if [s.get("count") for s in shards] != [s.count for s in manifest.shards]:
            raise DataError("its shards do not match the index's (rebuild it)", info_path)
        width = manifest.dim if kind == "int8" else -(-manifest.dim // 8)
        dtype = np.int8 if kind == "int8" else np.uint8
        matrix = np.empty((manifest.count, width), dtype=dtype)
        start = 0
        for shard in shards:
            path = directory / shard["file"]
            try:
                part = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as err:
                raise DataError(f"corrupt compressed shard ({err})", path) from None
            if part.dtype != dtype or part.shape != (shard["count"], width):
                raise DataError(
                    f"corrupt compressed shard: {part.dtype} {part.shape}, expected {np.dtype(dtype)} "
                    f"{(shard['count'], width)}",
                    path,
                )
            if verify and _file_sha256(path) != shard.get("sha256"):
                raise DataError("corrupt compressed shard: sha256 differs from the record", path)
            matrix[start : start + shard["count"]] = part
            start += shard["count"]
            del part
        Calibration(**calibration)  # validate fields
        return cls(directory, manifest, info, torch.from_numpy(matrix))

    def __len__(self) -> int:
        return self.manifest.count

    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def nbytes(self) -> int:
        """Bytes of RAM the compressed matrix takes."""
        return int(self.codes.numel() * self.codes.element_size())

    def default_candidates(self, top_k: int) -> int:
        return max(4 * top_k, 40) if self.kind == "int8" else max(10 * top_k, 100)

    def _block(self, start: int, stop: int) -> torch.Tensor:
        """int8 codes of rows ``start:stop`` (binary: unpacked to 0/1 bits, one int8 per dimension)."""
        block = self.codes[start:stop]
        if self.kind == "int8":
            return block
        bits = np.unpackbits(block.numpy(), axis=1, count=self.dim)
        return torch.from_numpy(bits.view(np.int8))

    def approximate_top(
        self, queries: torch.Tensor, candidates: int, block_rows: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1: ``(approximate scores, rows)`` ``[q, candidates]`` from the compressed matrix alone."""
        if block_rows is None:  # binary blocks are unpacked 8× (one int8 per bit): smaller blocks, less scratch
            block_rows = DEFAULT_BLOCK_ROWS if self.kind == "int8" else DEFAULT_BLOCK_ROWS // 4
        q = queries.float()
        if self.kind == "int8":
            folded = q * torch.tensor(self.calibration.scale)
            bias = q @ torch.tensor(self.calibration.offset)
        else:  # x ≈ mean + spread · (±1): fold the per-dimension spread into the query
            spread = self.calibration.spread or [1.0] * self.dim
            folded = q * torch.tensor(spread)
            bias = q @ torch.tensor(self.calibration.mean)
        q_codes, q_scale = _quantize_queries(folded)
        n_queries = q.shape[0]
        if self.kind == "binary":  # q · (2b − 1) = 2 q · b − Σ q, with the bits b in {0, 1}
            bias = bias - q_scale * q_codes[:n_queries].float().sum(1)
            q_scale = 2 * q_scale
        best_scores = torch.empty(n_queries, 0)
        best_rows = torch.empty(n_queries, 0, dtype=torch.long)
        with torch.inference_mode():
            for start in range(0, len(self), block_rows):
                stop = min(start + block_rows, len(self))
                scores = _scores_int8(q_codes, self._block(start, stop), n_queries) * q_scale[:, None]
                best_scores, best_rows = merge_top_k(best_scores, best_rows, scores, start, candidates)
        return best_scores + bias[:, None], best_rows

    def search_embeddings(
        self,
        queries: torch.Tensor | np.ndarray,
        top_k: int = 10,
        candidates: int | None = None,
        rescore: bool = True,
        block_rows: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores [q, k], rows [q, k])`` like :func:`biohicl.search.exact.search_embeddings`: compressed search for
        ``candidates`` rows per query, then their exact cosine from the float32 shards (``rescore=False``: the
        stage-1 approximations)."""
        from biohicl.search.exact import _sort_hits

        if top_k < 1:
            raise ConfigError(f"top_k: must be positive, got {top_k}")
        q = torch.as_tensor(queries).float()
        if q.ndim == 1:
            q = q.unsqueeze(0)
        if q.shape[1] != self.dim:
            raise ConfigError(f"queries have dimension {q.shape[1]}, the index has {self.dim}")
        q = torch.nn.functional.normalize(q, dim=-1)
        k = min(top_k, len(self))
        pool = min(max(candidates or self.default_candidates(top_k), k), len(self))
        approx, rows = self.approximate_top(q, pool, block_rows)
        if not rescore:
            return _sort_hits(approx[:, :k].contiguous(), rows[:, :k].contiguous())
        unique, inverse = torch.unique(rows, return_inverse=True)
        vectors = torch.from_numpy(self.float_rows.take(unique.numpy()))
        if not self.manifest.normalized:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        exact = (q @ vectors.T).gather(1, inverse)
        scores, keep = exact.topk(k, dim=1)
        return _sort_hits(scores, rows.gather(1, keep))


def load_compressed(directory: str | Path, kind: str | None = None) -> CompressedIndex:
    """Open an index folder's compressed form (see :meth:`CompressedIndex.load`)."""
    return CompressedIndex.load(directory, kind)


__all__ = [
    "KINDS",
    "Calibration",
    "CompressedIndex",
    "FloatRows",
    "available_kinds",
    "compress_index",
    "load_compressed",
    "mmap_shard",
]


def merge_top_k(best_scores, best_rows, scores, offset: int, k: int):
    """Fold one block's ``scores`` (rows ``offset…``) into the running per-query top ``k`` (scores, row ids);
    shared by exact search and the compressed first stage."""
    values, rows = scores.topk(min(k, scores.shape[1]), dim=1)
    best_scores = torch.cat([best_scores, values], dim=1)
    best_rows = torch.cat([best_rows, rows + offset], dim=1)
    if best_scores.shape[1] > k:
        best_scores, keep = best_scores.topk(k, dim=1)
        best_rows = best_rows.gather(1, keep)
    return best_scores, best_rows

"""Search a compressed index: the int8/binary codes in RAM, then exact rescoring from the float32 shards.

>>> searcher = CompressedIndex.load("index/pubmed")   # RAM: the compressed matrix only (4x / 32x below float32)
>>> scores, rows = searcher.search_embeddings(queries, top_k=10)

Stage 1 scores every compressed row against the queries and keeps ``candidates`` per query (default 4·k for int8,
10·k for binary, at least 40 / 100). Stage 2 reads those candidates' float32 rows from the
``shard-*.safetensors`` files (positional reads of those rows only, no memory map) and returns their exact cosine
top-k, so the
returned scores are the exact ones and the hits equal the exact search's whenever the true top-k are among the
candidates (among equal exact scores the lower row wins, as in the exact search; which of several rows with equal
stage-1 scores at the candidate cut enter the pool is unspecified).

Queries are folded with the calibration (``scale`` for int8; for binary the asymmetric ``x ≈ mean + spread · (±1)``,
which keeps much more of the order than a Hamming distance between signs), quantised to int8 per query, and scored
with one int8 × int8 → int32 GEMM (``torch._int_mm``; VNNI/AMX on x86) per block. The files:
:mod:`biohicl.search.compression`.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biohicl.errors import ConfigError, DataError
from biohicl.field_types import is_int
from biohicl.jsonio import read_json
from biohicl.provenance import files_sha256
from biohicl.search.compression import (
    COMPRESSED_FORMAT,
    COMPRESSED_VERSION,
    DEFAULT_BLOCK_ROWS,
    RENORMALISED_VERSION,
    Calibration,
    available_kinds,
    check_kind,
    compressed_info_name,
)
from biohicl.search.float_rows import FloatRows, stored_unit_rows
from biohicl.search.layout import RESUME_OPTIONS, SETTINGS_NAME, IndexManifest, is_file_name, resume_flags
from biohicl.topk import merge_top_k, sort_top_k

logger = logging.getLogger(__name__)


def _int_mm_available() -> bool:
    try:
        torch._int_mm(torch.zeros(32, 64, dtype=torch.int8), torch.zeros(64, 32, dtype=torch.int8).T.contiguous().T)
    except Exception:
        return False
    return True


_INT_MM: bool | None = None

#: queries searched at once: stage 1 keeps a [query_batch, block rows] score matrix, stage 2 their candidates' rows
QUERY_BATCH = 256


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


def _check_calibration(values: Any, dim: int, source: Path) -> None:
    """A :class:`DataError` naming ``source`` when ``values`` are not the fields of a :class:`Calibration` of
    ``dim``-long vectors."""
    if not isinstance(values, dict):
        raise DataError("calibration: not a JSON object", source)
    fields = {f.name: f for f in dataclasses.fields(Calibration)}
    missing = sorted(n for n, f in fields.items() if f.default is dataclasses.MISSING and n not in values)
    unknown = sorted(set(values) - set(fields))
    if missing or unknown:
        problem = f"missing field(s) {', '.join(missing)}" if missing else f"unknown field(s) {', '.join(unknown)}"
        raise DataError(f"calibration: {problem}", source)
    for name in ("offset", "scale", "mean", "spread"):
        vector = values.get(name)
        if vector is None and name == "spread":
            continue
        if not isinstance(vector, list) or len(vector) != dim:
            raise DataError(f"calibration.{name}: expected a list of {dim} numbers", source)


def _compressed_part(path: Path, dtype: type, shape: tuple[int, int]) -> np.ndarray:
    """A compressed shard memory-mapped; a :class:`DataError` naming it unless it holds ``dtype`` rows of ``shape``."""
    try:
        part = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        reason = " ".join(str(err).split())[:200]
        raise DataError(f"corrupt compressed shard ({reason})", path) from None
    if part.dtype != dtype or part.shape != shape:
        raise DataError(
            f"corrupt compressed shard: {part.dtype} {part.shape}, expected {np.dtype(dtype)} {shape}", path
        )
    return part


def rebuild_command(manifest: IndexManifest, directory: Path, kind: str) -> str:
    """The ``biohicl index`` command that (re)builds ``kind`` for an index: the corpus it was built from, its model,
    folder and the recorded settings a rerun must repeat (``settings.json``; over finished shards it only
    compresses)."""
    recorded = read_json(directory / SETTINGS_NAME, default=None)
    recorded = recorded if isinstance(recorded, dict) else {}
    changed = [name for name, default in RESUME_OPTIONS.items() if recorded.get(name) != default]
    options = resume_flags(recorded, changed, directory / SETTINGS_NAME)
    options = f" {options}" if options else ""
    model, folder = shlex.quote(str(manifest.model)), shlex.quote(str(directory))
    return f"`biohicl index CORPUS --model {model} --output {folder}{options} --compress {kind}`"


class CompressedIndex:
    """An index's compressed rows in RAM (one contiguous matrix) + its float32 shards' candidate rows read for
    rescoring."""

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
        binary). ``verify=True`` also checks every shard's sha256 (reads the files twice). A form of a newer
        ``format_version`` is refused; an older one is read, with a warning for a float16/bfloat16 index's form
        built before its codes were those of its renormalised rows."""
        directory = Path(directory)
        manifest = IndexManifest.load(directory)
        kinds = available_kinds(directory)
        if kind is None:
            if not kinds:
                raise DataError(f"no compressed form (run {rebuild_command(manifest, directory, 'int8')})", directory)
            kind = kinds[0]
        kind = check_kind(kind)
        info_path = directory / compressed_info_name(kind)
        if not info_path.is_file():
            raise DataError(f"no {info_path.name} (run {rebuild_command(manifest, directory, kind)})", directory)
        info = read_json(info_path)
        if not isinstance(info, dict) or not isinstance(info.get("shards"), list):
            raise DataError("not a compressed-index record (expected a JSON object with a list of `shards`)", info_path)
        shards = info["shards"]
        if info.get("format") != COMPRESSED_FORMAT or info.get("kind") != kind:
            raise DataError(f"not a {kind} compressed-index record", info_path)
        version = info.get("format_version", 0)  # none: a form older than the field
        if not is_int(version) or version < 0:
            raise DataError(f"format_version: expected a non-negative integer, got {version!r:.40}", info_path)
        if version > COMPRESSED_VERSION:
            raise DataError(f"format version {version} is newer than this biohicl", info_path)
        if info.get("count") != manifest.count or info.get("dim") != manifest.dim:
            raise DataError(
                f"describes {info.get('count')} × {info.get('dim')} rows, the index has {manifest.count} × "
                f"{manifest.dim} (rebuild it: {rebuild_command(manifest, directory, kind)})",
                info_path,
            )
        for number, shard in enumerate(shards):
            if not isinstance(shard, dict) or not is_file_name(shard.get("file")):
                raise DataError(f"shards[{number}]: not a JSON object with a `file` of the index folder", info_path)
        if [s.get("count") for s in shards] != [s.count for s in manifest.shards]:
            raise DataError("its shards do not match the index's (rebuild it)", info_path)
        _check_calibration(info.get("calibration"), manifest.dim, info_path)
        width = manifest.dim if kind == "int8" else -(-manifest.dim // 8)
        dtype = np.int8 if kind == "int8" else np.uint8
        for shard in shards:  # every part's shape first: the matrix is never larger than the files on disk
            _compressed_part(directory / shard["file"], dtype, (shard["count"], width))
        matrix = np.empty((manifest.count, width), dtype=dtype)
        start = 0
        for shard in shards:
            path = directory / shard["file"]
            part = _compressed_part(path, dtype, (shard["count"], width))
            if verify and files_sha256([path]) != shard.get("sha256"):
                raise DataError("corrupt compressed shard: sha256 differs from the record", path)
            matrix[start : start + shard["count"]] = part
            start += shard["count"]
            del part
        if version < RENORMALISED_VERSION and manifest.normalized and manifest.dtype != "float32":
            # only these codes differ: renormalising leaves a float32 index's unit rows as they are, and an
            # unnormalised index's rows were renormalised before too
            logger.warning(
                "%s: its candidates were chosen from the index's rows not renormalised (built before biohicl "
                "renormalised the rows of a %s index: a poorer first stage, the scores still exact); rebuild it: %s",
                info_path,
                manifest.dtype,
                rebuild_command(manifest, directory, kind),
            )
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
        query_batch: int = QUERY_BATCH,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores [q, k], rows [q, k])`` like :func:`biohicl.search.exact.search_embeddings`: compressed search for
        ``candidates`` rows per query, then their exact cosine from the float32 shards (``rescore=False``: the
        stage-1 approximations). Queries are searched ``query_batch`` at a time (memory bounded by the batch, not
        the number of queries), each rescored against its own candidates only."""
        if top_k < 1:
            raise ConfigError(f"top_k: must be positive, got {top_k}")
        if query_batch < 1:
            raise ConfigError(f"query_batch: must be positive, got {query_batch}")
        q = torch.as_tensor(queries).float()
        if q.ndim == 1:
            q = q.unsqueeze(0)
        if q.shape[1] != self.dim:
            raise ConfigError(f"queries have dimension {q.shape[1]}, the index has {self.dim}")
        q = torch.nn.functional.normalize(q, dim=-1)
        k = min(top_k, len(self))
        pool = min(max(candidates or self.default_candidates(top_k), k), len(self))
        parts = [
            self._search_batch(q[first : first + query_batch], k, pool, rescore, block_rows)
            for first in range(0, q.shape[0], query_batch)
        ]
        if not parts:
            return torch.empty(0, k), torch.empty(0, k, dtype=torch.long)
        return torch.cat([s for s, _ in parts]), torch.cat([r for _, r in parts])

    def _search_batch(
        self, q: torch.Tensor, k: int, pool: int, rescore: bool, block_rows: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`search_embeddings` of one batch of unit queries."""
        approx, rows = self.approximate_top(q, pool, block_rows)
        if not rescore:  # the pool is not sorted (a pool of every row stays in block order): its top k
            scores, keep = approx.topk(k, dim=1)
            return sort_top_k(scores, rows.gather(1, keep))
        vectors = torch.from_numpy(self.float_rows.take(rows.reshape(-1).numpy())).view(*rows.shape, self.dim)
        if not stored_unit_rows(self.manifest):  # float32 rows of float16/bfloat16 ones: renormalised in float32
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        exact = torch.bmm(vectors, q.unsqueeze(2)).squeeze(2)  # each query against its own candidates only
        scores, rows = sort_top_k(exact, rows)  # equal exact scores: the lower row wins the cut, as in exact search
        return scores[:, :k], rows[:, :k]

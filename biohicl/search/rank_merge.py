"""Rank 0's last step of a distributed index build: every rank's ``rank-*.json`` joined into ``manifest.json``.

Each part is read with :func:`biohicl.jsonio.read_json` and its fields checked (a truncated or hand-edited rank file
is a one-line :class:`DataError` naming the file and the field), its shard entries as ``manifest.json``'s are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biohicl.errors import DataError
from biohicl.field_types import is_int
from biohicl.jsonio import read_json
from biohicl.search.layout import (
    IndexManifest,
    ShardInfo,
    checked_shard_info,  # one shards entry, checked as manifest.json's are
    rank_manifest_name,
)

_FLAGS = ("has_titles", "has_mesh")


def read_rank_part(path: Path) -> tuple[dict[str, Any], list[ShardInfo]]:
    """The rank file ``path`` and its shards; a :class:`DataError` naming the file and the field it gets wrong."""
    part = read_json(path)
    if not isinstance(part, dict):
        raise DataError(f"not a JSON object (a {type(part).__name__})", path)
    for name in ("total_shards", "shards", *_FLAGS):
        if name not in part:
            raise DataError(f"{name}: missing", path)
    for name in ("total_shards", "skipped_blank"):
        value = part.get(name, 0)
        if not is_int(value) or value < 0:
            raise DataError(f"{name}: expected a non-negative integer, got {value!r}", path)
    for name in _FLAGS:
        if not isinstance(part[name], bool):
            raise DataError(f"{name}: expected true or false, got {part[name]!r}", path)
    if not isinstance(part["shards"], list):
        raise DataError(f"shards: expected a list, got a {type(part['shards']).__name__}", path)
    return part, [checked_shard_info(s, f"shards[{i}]", str(path)) for i, s in enumerate(part["shards"])]


def merge_rank_manifests(directory: str | Path, world_size: int, settings: dict[str, Any]) -> IndexManifest:
    """Rank 0's step: join ``rank-*.json`` into ``manifest.json`` (checking every shard 0..n-1 is there once)."""
    directory = Path(directory)
    parts, shards, listed_by = [], [], {}
    for rank in range(world_size):
        path = directory / rank_manifest_name(rank)
        if not path.is_file():
            raise DataError(f"rank {rank} did not finish (no {path.name})", path)
        part, own = read_rank_part(path)
        for shard in own:
            if shard.number in listed_by:
                raise DataError(
                    f"shard {shard.number} listed twice ({listed_by[shard.number]}, {path.name})", directory
                )
            listed_by[shard.number] = path.name
        parts.append(part)
        shards.extend(own)
    totals = {p["total_shards"] for p in parts}
    if len(totals) != 1:
        raise DataError(
            f"ranks saw different corpora ({sorted(totals)} shards); the corpus must be the same", directory
        )
    shards.sort(key=lambda s: s.number)
    expected = list(range(totals.pop()))
    if [s.number for s in shards] != expected:
        missing = sorted(set(expected) - {s.number for s in shards})
        extra = sorted({s.number for s in shards} - set(expected))
        problem = f"shards missing after the merge: {missing[:10]}" if missing else f"shards past the end: {extra[:10]}"
        raise DataError(problem, directory)
    start = 0
    for shard in shards:
        shard.start = start
        start += shard.count
    manifest = IndexManifest(
        model=settings["model"],
        model_revision=settings["model_revision"],
        dtype=settings["dtype"],
        dim=settings["dim"],
        count=start,
        shards=shards,
        normalized=settings["normalized"],
        pooling=settings["pooling"],
        max_length=settings["max_length"],
        query_prompt=settings["query_prompt"],
        document_prompt=settings["document_prompt"],
        base_model=settings["base_model"],
        base_revision=settings["base_revision"],
        compute_dtype=settings.get("compute_dtype"),
        backend=settings.get("backend", "torch"),
        quantize=settings.get("quantize"),
        shard_size=settings["shard_size"],
        world_size=world_size,
        has_titles=any(p["has_titles"] for p in parts),
        has_mesh=any(p["has_mesh"] for p in parts),
        skipped_blank=max(p.get("skipped_blank", 0) for p in parts),  # every rank streams (and counts) the whole corpus
        probe=settings.get("probe"),
    )
    manifest.save(directory)
    for rank in range(world_size):
        (directory / rank_manifest_name(rank)).unlink(missing_ok=True)
    return manifest

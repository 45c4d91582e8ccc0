"""The files of an index folder: names, ``manifest.json``, and shards written durably (temp file, fsync, rename).

Layout of a folder written by :func:`biohicl.search.indexing.build_index`::

    manifest.json                  model id + revision, dtype, dimension, count, shards (written last)
    settings.json                  what the shards were built with (checked on resume)
    shard-00000.safetensors        tensor ``embeddings`` [n, dim] (+ metadata: count, ids_sha256)
    shard-00000.docs.jsonl         one line per row: {"id", "title"?, "mesh"?}
    ...

Each shard is written atomically (the docs sidecar first, the ``.safetensors`` last), so after a kill every shard
on disk is complete and a resume can trust it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from biohicl import __version__
from biohicl.atomic import atomic_path
from biohicl.data.corpus import Document
from biohicl.errors import ConfigError, DataError

INDEX_FORMAT = "biohicl-index"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SETTINGS_NAME = "settings.json"
EMBEDDINGS_KEY = "embeddings"
SPLIT = "shard-strided"
TEXT_TEMPLATE = "{title} {text}"
STORAGE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.safetensors"


def docs_name(number: int) -> str:
    return f"shard-{number:05d}.docs.jsonl"


def rank_manifest_name(rank: int) -> str:
    return f"rank-{rank:05d}.json"


def ids_digest(ids: Iterable[str]) -> str:
    """sha256 of the newline-joined ids (what resume compares to know a shard is still the same documents)."""
    digest = hashlib.sha256()
    for i, doc_id in enumerate(ids):
        digest.update((("\n" if i else "") + doc_id).encode("utf-8"))
    return digest.hexdigest()


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"bfloat16"`` / ``"bf16"`` / ``torch.bfloat16`` → ``torch.bfloat16`` (float32, float16, bfloat16 only)."""
    if isinstance(name, torch.dtype):
        if name not in STORAGE_DTYPES.values():
            raise ConfigError(f"dtype: {name} is not one of {', '.join(STORAGE_DTYPES)}")
        return name
    aliases = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16", "float": "float32"}
    key = aliases.get(str(name).lower(), str(name).lower())
    if key not in STORAGE_DTYPES:
        raise ConfigError(f"dtype: {name!r} is not one of {', '.join(STORAGE_DTYPES)}")
    return STORAGE_DTYPES[key]


def dtype_name(dtype: torch.dtype) -> str:
    return next(k for k, v in STORAGE_DTYPES.items() if v == dtype)


def write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)``, fsync, then rename onto ``path``: readers (and a resume after a crash) never see
    a partial file."""
    with atomic_path(path, fsync=True) as tmp:
        write(tmp)


def write_text_atomically(path: Path, text: str) -> None:
    """:func:`write_atomically` of UTF-8 ``text``."""
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


@dataclass
class ShardInfo:
    """One shard of an index: its files, first global row, row count and the digest of its ids."""

    number: int
    file: str
    docs: str
    start: int
    count: int
    ids_sha256: str
    rank: int = 0


@dataclass
class IndexManifest:
    """``manifest.json``: how an index was built and where its rows are."""

    model: str
    model_revision: str | None
    dtype: str
    dim: int
    count: int
    shards: list[ShardInfo]
    normalized: bool = True
    pooling: str = "mean"
    max_length: int = 512
    query_prompt: str = ""
    document_prompt: str = ""
    base_model: str | None = None
    base_revision: str | None = None
    compute_dtype: str | None = None  # None: an older index, which did not record it
    backend: str = "torch"
    quantize: str | None = None
    shard_size: int = 50_000
    world_size: int = 1
    split: str = SPLIT
    text_template: str = TEXT_TEMPLATE
    has_titles: bool = False
    has_mesh: bool = False
    format: str = INDEX_FORMAT
    format_version: int = FORMAT_VERSION
    biohicl_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = MANIFEST_NAME) -> IndexManifest:
        if values.get("format") != INDEX_FORMAT:
            raise DataError(f"not a biohicl index manifest (format={values.get('format')!r})", source)
        if int(values.get("format_version", 0)) > FORMAT_VERSION:
            raise DataError(
                f"index format version {values['format_version']} is newer than this biohicl ({FORMAT_VERSION})",
                source,
            )
        known = set(cls.__dataclass_fields__)
        missing = sorted({"model", "dtype", "dim", "count", "shards"} - set(values))
        if missing:
            raise DataError(f"missing field(s) {', '.join(missing)}", source)
        values = {k: v for k, v in values.items() if k in known}
        values["shards"] = [ShardInfo(**s) for s in values["shards"]]
        return cls(**values)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        write_text_atomically(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> IndexManifest:
        path = Path(directory) / MANIFEST_NAME
        if not path.is_file():
            raise DataError(f"no {MANIFEST_NAME}: not a finished biohicl index (rerun `biohicl index` to resume)", path)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"not valid JSON ({err.msg}, line {err.lineno})", path) from None
        return cls.from_dict(values, source=str(path))


def describe_model(model: Any) -> tuple[str, str | None]:
    """(model id, revision) to record: the Hub repo and commit a loader resolved, else the backbone's id."""
    resolved = getattr(model, "resolved", None)
    if resolved is not None:
        if resolved.repo_id:
            return resolved.repo_id, resolved.commit or resolved.revision
        return str(Path(resolved.path).resolve()), None
    return model.config.base_model, model.config.base_revision


def write_shard(
    directory: Path, number: int, embeddings: torch.Tensor, docs: list[Document], rank: int = 0
) -> ShardInfo:
    """Write one shard (docs sidecar, then embeddings) atomically and return its :class:`ShardInfo`."""
    from safetensors.torch import save_file

    ids = [d.id for d in docs]
    digest = ids_digest(ids)
    lines = []
    for doc in docs:
        record: dict[str, Any] = {"id": doc.id}
        if doc.title:
            record["title"] = doc.title
        if doc.mesh:
            record["mesh"] = list(doc.mesh)
        lines.append(json.dumps(record, ensure_ascii=False))
    write_text_atomically(directory / docs_name(number), "\n".join(lines) + ("\n" if lines else ""))
    metadata = {"count": str(len(ids)), "ids_sha256": digest, "shard": str(number), "format": INDEX_FORMAT}
    tensors = {EMBEDDINGS_KEY: embeddings.contiguous()}
    write_atomically(directory / shard_name(number), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return ShardInfo(number, shard_name(number), docs_name(number), 0, len(ids), digest, rank)


def read_shard_metadata(path: Path) -> dict[str, str]:
    """The safetensors metadata of a shard (count, ids_sha256, ...); a :class:`DataError` when unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as err:  # safetensors raises its own error types for truncated/garbled files
        raise DataError(f"unreadable shard ({err})", path) from None

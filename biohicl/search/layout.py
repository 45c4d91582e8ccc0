"""The files of an index folder: names, ``manifest.json``, and shards written durably (temp file, fsync, rename).

Layout of a folder written by :func:`biohicl.search.indexing.build_index`::

    manifest.json                  model id + revision, dtype, dimension, count, shards (written last)
    settings.json                  what the shards were built with (checked on resume)
    shard-00000.safetensors        tensor ``embeddings`` [n, dim] (+ metadata: count, ids_sha256, text_sha256)
    shard-00000.docs.jsonl         one line per row: {"id", "title"?, "mesh"?, "text_sha"}
    ...

Each shard is written atomically (the docs sidecar first, the ``.safetensors`` last), so after a kill every shard
on disk is complete and a resume can trust it.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import torch

from biohicl import __version__
from biohicl.atomic import atomic_path, atomic_write_text
from biohicl.data.corpus import Document
from biohicl.errors import ConfigError, DataError
from biohicl.field_types import is_count, is_int
from biohicl.jsonio import read_json
from biohicl.models.base_identity import same_base
from biohicl.search.contents import TEXT_KEY, TEXTS_KEY, document_digest, sidecar_record, texts_digest

INDEX_FORMAT = "biohicl-index"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SETTINGS_NAME = "settings.json"
#: ``biohicl index`` options recorded in ``settings.json`` that a resume must repeat, with their defaults.
RESUME_OPTIONS = {"shard_size": 50_000, "dtype": "float32", "compute_dtype": None, "backend": "torch", "quantize": None}


def check_resume_options(recorded: dict[str, Any], source: str | Path = SETTINGS_NAME) -> None:
    """A :class:`DataError` naming ``source`` and the field when a recorded :data:`RESUME_OPTIONS` value is not one
    ``biohicl index`` takes (a settings.json from elsewhere: its values end up in a command a user may paste)."""
    for name in RESUME_OPTIONS:
        value = recorded.get(name)
        if value is None:
            continue
        if name == "shard_size":
            valid = is_count(value)
        elif name in ("dtype", "compute_dtype"):
            valid = isinstance(value, str) and value in STORAGE_DTYPES
        else:
            valid = value in (("torch", "onnx") if name == "backend" else ("int8",))
        if not valid:
            raise DataError(f"{name}: not a value `biohicl index --{name}` takes ({value!r:.60})", source)


def resume_flags(recorded: dict[str, Any], names: Iterable[str], source: str | Path = SETTINGS_NAME) -> str:
    """``--shard_size 20 --dtype float16``: the recorded values of ``names`` (None ones left out), checked
    (:func:`check_resume_options`) and quoted for a shell."""
    check_resume_options(recorded, source)
    return " ".join(f"--{name} {shlex.quote(str(recorded[name]))}" for name in names if recorded.get(name) is not None)


def rerun_hint(recorded: dict[str, Any], changed: list[str], source: str | Path = SETTINGS_NAME) -> str:
    """``"rerun with --shard_size 20, or "`` when every changed setting is a :data:`RESUME_OPTIONS` option a rerun
    can repeat as ``recorded`` (read from ``source``), ``"rerun without --quantize, or "`` for one it recorded unset
    (both joined by "and"); else ``""``."""
    flags = resume_flags(recorded, changed, source)
    unset = " ".join(f"--{name}" for name in changed if recorded.get(name) is None)
    parts = [f"with {flags}"] * bool(flags) + [f"without {unset}"] * bool(unset)
    return f"rerun {' and '.join(parts)}, or " if parts and set(changed) <= set(RESUME_OPTIONS) else ""


def changed_settings(recorded: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """The keys of ``settings`` (but ``probe``, checked apart) whose value differs from ``recorded``'s, sorted; a
    ``base_model`` recorded for the same base in another form (a relative folder before it was recorded by its
    absolute path) is no change (:func:`~biohicl.models.base_identity.same_base`)."""
    changed = []
    for key in sorted(set(settings) - {"probe"}):
        before, now = recorded.get(key), settings[key]
        if not (same_base(before, now) if key == "base_model" else before == now):
            changed.append(key)
    return changed


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


def parse_dtype(name: str | torch.dtype, field: str = "dtype") -> torch.dtype:
    """``"bfloat16"`` / ``"bf16"`` / ``torch.bfloat16`` → ``torch.bfloat16`` (float32, float16, bfloat16 only); a
    :class:`ConfigError` naming ``field`` (``compute_dtype: 'x' is not one of ...``) otherwise."""
    if isinstance(name, torch.dtype):
        if name not in STORAGE_DTYPES.values():
            raise ConfigError(f"{field}: {name} is not one of {', '.join(STORAGE_DTYPES)}")
        return name
    aliases = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16", "float": "float32"}
    key = aliases.get(str(name).lower(), str(name).lower())
    if key not in STORAGE_DTYPES:
        raise ConfigError(f"{field}: {name!r} is not one of {', '.join(STORAGE_DTYPES)}")
    return STORAGE_DTYPES[key]


def dtype_name(dtype: torch.dtype) -> str:
    return next(k for k, v in STORAGE_DTYPES.items() if v == dtype)


@dataclass
class ShardInfo:
    """One shard of an index: its files, first global row, row count, the digest of its ids and that of its
    documents' texts (:mod:`biohicl.search.contents`; None: written before biohicl recorded it)."""

    number: int
    file: str
    docs: str
    start: int
    count: int
    ids_sha256: str
    rank: int = 0
    text_sha256: str | None = None


_SHARD_FIELD_TYPES: dict[str, type] = {
    "number": int,
    "file": str,
    "docs": str,
    "start": int,
    "count": int,
    "ids_sha256": str,
    "rank": int,
    TEXTS_KEY: str,
}


def _check_ints(values: dict[str, Any], names: Iterable[str], where: str, source: str) -> None:
    """A :class:`DataError` naming ``source`` and the field when one of ``names`` present in ``values`` is not a
    non-negative integer."""
    for name in names:
        value = values.get(name, 0)
        if not is_int(value) or value < 0:
            raise DataError(f"{where}{name}: expected a non-negative integer, got {value!r}", source)


def checked_shard_info(values: Any, where: str, source: str) -> ShardInfo:
    """One entry of a manifest's ``shards`` (``where``: its position) as a :class:`ShardInfo`, type-checked."""
    if not isinstance(values, dict):
        raise DataError(f"{where}: not a JSON object", source)
    missing = sorted(set(_SHARD_FIELD_TYPES) - {"rank", TEXTS_KEY} - set(values))
    unknown = sorted(set(values) - set(_SHARD_FIELD_TYPES))
    if missing or unknown:
        problem = f"missing field(s) {', '.join(missing)}" if missing else f"unknown field(s) {', '.join(unknown)}"
        raise DataError(f"{where}: {problem}", source)
    _check_ints(values, [k for k, kind in _SHARD_FIELD_TYPES.items() if kind is int], f"{where}.", source)
    for name in ("file", "docs", "ids_sha256", TEXTS_KEY):
        if not isinstance(values.get(name), str) and not (name == TEXTS_KEY and values.get(name) is None):
            raise DataError(f"{where}.{name}: expected a string, got {values[name]!r}", source)
    for name in ("file", "docs"):
        if not is_file_name(values[name]):
            raise DataError(f"{where}.{name}: not a file name of the index folder ({values[name]!r:.60})", source)
    return ShardInfo(**values)


def is_file_name(name: Any) -> bool:
    """Whether ``name`` is a plain file name (no folder, not absolute, not ``..``): a file of the index folder."""
    plain = isinstance(name, str) and name not in ("", ".", "..") and "\0" not in name
    return plain and PurePosixPath(name).name == name and PureWindowsPath(name).name == name


def _check_rows(shards: list[ShardInfo], count: int, source: str) -> None:
    """A :class:`DataError` naming ``source`` unless the shards' rows follow each other from 0 and sum to ``count``."""
    start = 0
    for i, shard in enumerate(shards):
        if shard.start != start:
            raise DataError(f"shards[{i}].start: {shard.start}, expected {start} (the rows before it)", source)
        start += shard.count
    if start != count:
        raise DataError(f"count: {count} is not the sum of the shards' counts ({start})", source)


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
    skipped_blank: int = 0  # documents of the corpus left out for having no text (0 in an index of older biohicl)
    probe: list[list[float]] | None = None  # the encoder's rows of PROBE_TEXTS; None: an older index
    format: str = INDEX_FORMAT
    format_version: int = FORMAT_VERSION
    biohicl_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Any, source: str = MANIFEST_NAME) -> IndexManifest:
        """The manifest in ``values`` (parsed ``manifest.json``); a :class:`DataError` naming ``source`` and the field
        when it is not one."""
        if not isinstance(values, dict):
            raise DataError(f"not a JSON object (a {type(values).__name__})", source)
        if values.get("format") != INDEX_FORMAT:
            raise DataError(f"not a biohicl index manifest (format={values.get('format')!r})", source)
        _check_ints(values, ("format_version",), "", source)
        if values.get("format_version", 0) > FORMAT_VERSION:
            raise DataError(
                f"index format version {values['format_version']} is newer than this biohicl ({FORMAT_VERSION})",
                source,
            )
        known = set(cls.__dataclass_fields__)
        missing = sorted({"model", "dtype", "dim", "count", "shards"} - set(values))
        if missing:
            raise DataError(f"missing field(s) {', '.join(missing)}", source)
        _check_ints(values, ("dim", "count", "skipped_blank"), "", source)
        if not isinstance(values["shards"], list):
            raise DataError(f"shards: expected a list, got {values['shards']!r:.40}", source)
        values = {k: v for k, v in values.items() if k in known}
        probe = values.get("probe")
        if probe is not None and not (
            isinstance(probe, list)
            and all(isinstance(row, list) and all(isinstance(v, (int, float)) for v in row) for row in probe)
        ):
            raise DataError(f"probe: expected a list of lists of numbers, got {probe!r:.40}", source)
        values["shards"] = [
            checked_shard_info(shard, f"shards[{i}]", source) for i, shard in enumerate(values["shards"])
        ]
        _check_rows(values["shards"], values["count"], source)
        return cls(**values)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n", fsync=True)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> IndexManifest:
        path = Path(directory) / MANIFEST_NAME
        if not path.is_file():
            raise DataError(f"no {MANIFEST_NAME}: not a finished biohicl index (rerun `biohicl index` to resume)", path)
        return cls.from_dict(read_json(path), source=str(path))


def describe_model(model: Any) -> tuple[str, str | None]:
    """(model id, revision) to record: the Hub repo and commit a loader resolved, else the backbone's id."""
    resolved = getattr(model, "resolved", None)
    if resolved is not None:
        if resolved.repo_id:
            return resolved.repo_id, resolved.commit or resolved.revision
        return str(Path(resolved.path).resolve()), None
    return model.config.base_model, model.config.base_revision


#: texts every index records its encoder's document rows of, so reading it with other weights is caught
PROBE_TEXTS = ("Metformin lowers blood glucose in type 2 diabetes.", "BRCA1 mutations raise the risk of breast cancer.")
#: the same weights on another device, compute dtype or fp32 ONNX agree to > 0.9999; a fine-tune moves them more
PROBE_MIN_COSINE = 0.999
#: ... and int8 ONNX rows (on either side) keep cosine >= 0.98 to fp32 (the export check; docs/inference.md)
PROBE_MIN_COSINE_INT8 = 0.98


def probe_min_cosine(*quantize: str | None) -> float:
    """The probe tolerance for encoders with these quantisations: :data:`PROBE_MIN_COSINE_INT8` when one is int8."""
    return PROBE_MIN_COSINE_INT8 if "int8" in quantize else PROBE_MIN_COSINE


def encoder_probe(model: Any) -> list[list[float]] | None:
    """The model's float32 document rows of :data:`PROBE_TEXTS` (None for an object that cannot encode)."""
    if not callable(getattr(model, "encode", None)):
        return None
    rows = model.encode(list(PROBE_TEXTS), batch_size=len(PROBE_TEXTS), kind="document", show_progress_bar=False)
    return [[round(float(v), 6) for v in row] for row in np.asarray(rows, dtype=np.float32)]


def probe_cosine(
    recorded: list[list[float]] | None, actual: list[list[float]] | None, min_cosine: float = PROBE_MIN_COSINE
) -> float | None:
    """The lowest cosine between two encoders' probe rows when below ``min_cosine`` (other weights; see
    :func:`probe_min_cosine`); None when they agree or either is unknown."""
    if not recorded or not actual:
        return None
    a, b = np.asarray(recorded, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if a.shape != b.shape:
        return 0.0
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    lowest = float(np.min((a * b).sum(axis=1) / np.maximum(norms, 1e-12)))
    return lowest if lowest < min_cosine else None


def write_shard(
    directory: Path, number: int, embeddings: torch.Tensor, docs: list[Document], rank: int = 0
) -> ShardInfo:
    """Write one shard (docs sidecar, then embeddings) atomically and return its :class:`ShardInfo`."""
    from safetensors.torch import save_file

    ids = [d.id for d in docs]
    digest = ids_digest(ids)
    texts = [document_digest(doc) for doc in docs]
    content = texts_digest(docs, texts)
    lines = [
        json.dumps(sidecar_record(doc.id, doc.title, doc.mesh, {TEXT_KEY: text}, doc.label_kind), ensure_ascii=False)
        for doc, text in zip(docs, texts, strict=True)
    ]
    atomic_write_text(directory / docs_name(number), "\n".join(lines) + ("\n" if lines else ""), fsync=True)
    metadata = {"count": str(len(ids)), "ids_sha256": digest, "shard": str(number), "format": INDEX_FORMAT}
    metadata[TEXTS_KEY] = content
    tensors = {EMBEDDINGS_KEY: embeddings.contiguous()}
    with atomic_path(directory / shard_name(number), fsync=True) as tmp:  # a resume trusts every shard on disk
        save_file(tensors, str(tmp), metadata=metadata)
    return ShardInfo(number, shard_name(number), docs_name(number), 0, len(ids), digest, rank, content)


def read_shard_metadata(path: Path) -> dict[str, str]:
    """The safetensors metadata of a shard (count, ids_sha256, ...); a :class:`DataError` when unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as err:  # safetensors raises its own error types for truncated/garbled files
        raise DataError(f"unreadable shard ({err})", path) from None

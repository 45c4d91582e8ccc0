"""The model registry: short names (``BioHiCL-Base``) → Hub repo id, kind, base model and pinned revision.

The data lives in ``biohicl/registry.json`` (shipped in the wheel). Each entry says what the loader cannot read
from a merged checkpoint on its own: pooling, prompts and maximum length, plus the base model an adapter needs.

Revision policy: ``revision`` is a 40-hex commit sha and ``pinned`` is true once the sha has been read from the
Hub. Until then an entry carries ``revision: null`` and ``pinned: false``: the loader resolves the branch ``main``
and warns that the download is not reproducible. A branch or tag name is never stored in the registry.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from biohicl.errors import ConfigError, ModelLoadError

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
KINDS = ("adapter", "merged")
POOLINGS = ("cls", "mean")
REGISTRY_FILE = "registry.json"


def is_commit_sha(revision: str | None) -> bool:
    """True for a full 40-hex lowercase git commit sha (the only revision form a pinned entry may hold)."""
    return revision is not None and bool(SHA_RE.match(revision))


def is_repo_id(text: str) -> bool:
    """True for a syntactically valid ``owner/name`` Hub repo id."""
    return bool(REPO_ID_RE.match(text)) and ".." not in text and not text.endswith((".", "-"))


def _config_dataset_path(training_config: str) -> str | None:
    """The ``dataset_path`` of a registry entry's training config (repo-relative, as the entry names it, or from the
    working folder; the copy that ships with biohicl first), or None where the file or the key is not there."""
    import yaml

    from biohicl.config_values import shipped_config

    for path in filter(None, (shipped_config(Path(training_config)), Path(training_config))):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        value = data.get("dataset_path") if isinstance(data, dict) else None
        return value if isinstance(value, str) and value else None
    return None


@dataclass(frozen=True)
class RegistryEntry:
    """One registered model: where it lives on the Hub and how to encode with it."""

    name: str = field(metadata={"help": "Short, case-insensitive name, e.g. BioHiCL-Base."})
    repo_id: str = field(metadata={"help": "Hub repo id (owner/name)."})
    kind: str = field(metadata={"help": "'adapter' (LoRA over base_model) or 'merged' (a full model)."})
    base_model: str = field(metadata={"help": "Hub id of the backbone the weights were trained from."})
    revision: str | None = field(default=None, metadata={"help": "Pinned commit sha (40 hex) or null."})
    pinned: bool = field(default=False, metadata={"help": "True when revision is a verified commit sha."})
    pooling: str = field(default="mean", metadata={"help": "'cls' or 'mean'."})
    normalize: bool = field(default=True, metadata={"help": "L2-normalise embeddings."})
    max_length: int = field(default=512, metadata={"help": "Maximum tokens per text."})
    query_prompt: str = field(default="", metadata={"help": "Prefix added to queries."})
    document_prompt: str = field(default="", metadata={"help": "Prefix added to documents."})
    base_revision: str | None = field(default=None, metadata={"help": "Pinned commit sha of base_model."})
    uploaded: bool = field(default=True, metadata={"help": "False while the repo has not been pushed yet."})
    training_config: str | None = field(
        default=None, metadata={"help": "The `biohicl train` config that makes the model (repo-relative path)."}
    )
    license: str = field(default="unknown", metadata={"help": "License of the published weights."})
    notes: str = field(default="", metadata={"help": "What is known and what could not be verified."})

    def __post_init__(self) -> None:
        where = f"registry entry {self.name!r}"
        if not self.name or "/" in self.name:
            raise ConfigError(f"{where}: field 'name' must be a short name without '/'")
        if not is_repo_id(self.repo_id):
            raise ConfigError(f"{where}: field 'repo_id' {self.repo_id!r} is not an owner/name Hub id")
        if not is_repo_id(self.base_model):
            raise ConfigError(f"{where}: field 'base_model' {self.base_model!r} must be a Hub id, not a path")
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: field 'kind' is {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"{where}: field 'pooling' is {self.pooling!r}; expected one of {POOLINGS}")
        if self.revision is not None and not is_commit_sha(self.revision):
            raise ConfigError(
                f"{where}: field 'revision' {self.revision!r} is not a 40-hex commit sha "
                "(use null + pinned: false until the sha is known)"
            )
        if self.base_revision is not None and not is_commit_sha(self.base_revision):
            raise ConfigError(f"{where}: field 'base_revision' {self.base_revision!r} is not a 40-hex commit sha")
        if self.pinned and self.revision is None:
            raise ConfigError(f"{where}: pinned is true but field 'revision' is null")
        if not isinstance(self.max_length, int) or self.max_length <= 0:
            raise ConfigError(f"{where}: field 'max_length' must be a positive integer")

    def unpublished_message(self) -> str:
        """One line for a load by name of an entry not pushed yet: how to train it instead (build the dataset its
        config reads, then train), or load its repo id."""
        how = ""
        if self.training_config:
            dataset = _config_dataset_path(self.training_config)
            build = f"`biohicl build-dataset --output {dataset or 'DATASET'}`"
            build += "" if dataset else " (DATASET: the config's dataset_path)"
            how = f"{build}, then `biohicl train --config {self.training_config}`, "
        return (
            f"{self.name} ({self.repo_id}) has not been published to the Hub yet; train it ({how}see "
            f"docs/training.md) and load the run folder by path (if it has since been uploaded, load {self.repo_id})"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = REGISTRY_FILE) -> RegistryEntry:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: entry {data.get('name')!r} has unknown field {unknown[0]!r}{hint}")
        missing = [name for name in ("name", "repo_id", "kind", "base_model") if name not in data]
        if missing:
            raise ConfigError(f"{source}: entry {data.get('name')!r} lacks field {missing[0]!r}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def default_revision(self) -> str | None:
        """The revision the loader asks for when the caller gives none (the pinned sha, else ``main``)."""
        return self.revision if self.pinned else None


class Registry:
    """A case-insensitive mapping of short names to :class:`RegistryEntry`."""

    def __init__(self, entries: list[RegistryEntry]):
        self._entries: dict[str, RegistryEntry] = {}
        for entry in entries:
            key = entry.name.lower()
            if key in self._entries:
                raise ConfigError(f"{REGISTRY_FILE}: duplicate name {entry.name!r} (names are case-insensitive)")
            self._entries[key] = entry

    @classmethod
    def from_file(cls, path: str | Path) -> Registry:
        """The registry in JSON file ``path``; a one-line :class:`ConfigError` naming it when it is not there, not
        UTF-8 or not JSON (its line and column; :func:`~biohicl.jsonio.read_json`), or no registry."""
        from biohicl.jsonio import read_json

        data = read_json(path, missing="model registry not found", error=ConfigError)
        return cls.from_data(data, source=str(path))

    @classmethod
    def from_data(cls, data: dict[str, Any], source: str = REGISTRY_FILE) -> Registry:
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise ConfigError(f"{source}: expected an object with a 'models' list")
        return cls([RegistryEntry.from_dict(item, source) for item in data["models"]])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self):
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Registered names, in file order, with their canonical spelling."""
        return [entry.name for entry in self._entries.values()]

    def lookup(self, name: str) -> RegistryEntry | None:
        """The entry for ``name`` (case-insensitive), or ``None``."""
        return self._entries.get(name.lower())

    def by_repo_id(self, repo_id: str) -> RegistryEntry | None:
        """The entry whose Hub repo id is ``repo_id`` (case-insensitive), or ``None``."""
        wanted = repo_id.lower()
        return next((entry for entry in self if entry.repo_id.lower() == wanted), None)

    def close_matches(self, name: str, n: int = 3) -> list[str]:
        by_lower = {entry.name.lower(): entry.name for entry in self}
        return [by_lower[m] for m in difflib.get_close_matches(name.lower(), by_lower, n=n, cutoff=0.5)]

    def get(self, name: str) -> RegistryEntry:
        """The entry for ``name``; an unknown name raises :class:`ModelLoadError` listing known and close names."""
        entry = self.lookup(name)
        if entry is not None:
            return entry
        close = self.close_matches(name)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ModelLoadError(
            f"unknown model name {name!r}{hint}; known names: {', '.join(self.names())}; "
            "or pass a Hub repo id (owner/name) or a local directory"
        )


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry shipped with the package (read once)."""
    text = resources.files("biohicl").joinpath(REGISTRY_FILE).read_text(encoding="utf-8")
    return Registry.from_data(json.loads(text), source=f"biohicl/{REGISTRY_FILE}")


def known_names() -> list[str]:
    """The registered short names."""
    return default_registry().names()


def get_entry(name: str) -> RegistryEntry:
    """The registered entry for ``name`` (case-insensitive); raises with close matches when unknown."""
    return default_registry().get(name)

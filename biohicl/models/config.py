"""``biohicl_config.json``: what an encoder needs besides its weights, and the names of a saved folder's files."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biohicl import __version__
from biohicl.errors import ConfigError
from biohicl.field_types import check_field_types
from biohicl.jsonio import read_json
from biohicl.models.positions import capped_length

if TYPE_CHECKING:
    from biohicl.models.registry import RegistryEntry

logger = logging.getLogger(__name__)

#: The encoder biohicl tunes when none is named: small enough for a CPU, and the one this machine's tests can load.
DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CONFIG_NAME = "biohicl_config.json"
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
POOLING_MODES = ("cls", "mean")
#: Name parts of the CLS-trained encoder families whose pooling :func:`default_pooling` guesses as ``cls``.
CLS_POOLED_NAMES = ("bge", "medcpt")


#: A git branch, tag or commit sha, as a Hub revision is spelled (``main``, ``v1.0+cu121``, ``refs/pr/1``, a sha):
#: letters, digits and ``. _ - / + @`` (:func:`is_git_revision` adds git's rules on those).
GIT_REVISION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+@-]*")


def is_git_revision(text: object) -> bool:
    """Whether ``text`` is a branch, tag or commit sha (:data:`GIT_REVISION_RE`, so no ``@{``; no ``..``, ``//``,
    component starting with ``.``, nor ending in ``/``, ``.`` or ``.lock``): never a space, ``;``, ``&``, ``|``, ``$``
    or a quote."""
    if not isinstance(text, str) or GIT_REVISION_RE.fullmatch(text) is None or ".." in text or "//" in text:
        return False
    return not text.endswith(("/", ".", ".lock")) and not any(part.startswith(".") for part in text.split("/"))


#: The encoding settings of a model: what ``from_base`` takes, a registry entry names and a folder may hold.
ENCODING_SETTINGS = ("pooling", "normalize", "max_length", "query_prompt", "document_prompt")


@dataclass
class BioHiCLConfig:
    """What an encoder needs besides its weights; saved as ``biohicl_config.json``."""

    base_model: str = field(
        metadata={"help": "Hub id of the backbone; a local folder without one by its absolute path (recorded_base)."}
    )
    base_revision: str | None = field(
        default=None, metadata={"help": "Commit sha (or branch, tag) of the backbone, if known; a git ref only."}
    )
    pooling: str = field(default="mean", metadata={"help": "Pooling of token states: `cls` or `mean`."})
    normalize: bool = field(default=True, metadata={"help": "L2-normalise embeddings."})
    max_length: int = field(default=512, metadata={"help": "Maximum tokens per text."})
    query_prompt: str = field(default="", metadata={"help": "Prefix for queries (e.g. BGE's instruction)."})
    document_prompt: str = field(default="", metadata={"help": "Prefix for documents."})
    kind: str = field(default="adapter", metadata={"help": "`adapter` (LoRA over base), `merged` or `full`."})
    base_signature: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "What identifies the base an adapter was trained on (architecture sizes and a sample of its "
            "weights; see `base_signature`): loading onto another base is refused unless forced."
        },
    )
    biohicl_version: str = field(default=__version__, metadata={"help": "biohicl version that wrote the file."})

    def __post_init__(self) -> None:
        check_field_types(self)
        self.max_length = int(self.max_length)
        if self.pooling not in POOLING_MODES:
            raise ConfigError(f"pooling: {self.pooling!r} is not one of {', '.join(POOLING_MODES)}")
        if self.max_length < 1:
            raise ConfigError(f"max_length: must be positive, got {self.max_length}")
        if self.base_revision is not None and not is_git_revision(self.base_revision):  # it goes into commands
            raise ConfigError(
                f"base_revision: {self.base_revision!r} is not a git branch, tag or commit sha (letters, digits and "
                ". _ - / + @ only)"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json_string(self) -> str:
        """The config as JSON (what ``transformers`` callbacks such as TensorBoard's record)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = CONFIG_NAME) -> BioHiCLConfig:
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "base_model" not in values:
            raise ConfigError(f"{source}: missing field base_model")
        try:
            return cls(**values)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> BioHiCLConfig:
        return cls.from_dict(read_json(path, error=ConfigError), source=str(path))

    def save(self, directory: str | Path) -> None:
        (Path(directory) / CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def apply_registry_entry(self, entry: RegistryEntry, backbone_config: Any = None) -> None:
        """Take how a registered checkpoint encodes from its registry entry (a merged checkpoint has no config); with
        the backbone's ``backbone_config``, the entry's ``max_length`` is capped at the tokens it can encode (one
        warning when cut, :func:`~biohicl.models.positions.capped_length`)."""
        self.base_model = entry.base_model
        self.base_revision = entry.base_revision
        for key in ENCODING_SETTINGS:
            setattr(self, key, getattr(entry, key))
        self.kind = "merged" if entry.kind == "merged" else self.kind
        if backbone_config is not None:
            self.max_length = capped_length(self.max_length, backbone_config, entry.name)

    def prompt(self, kind: str) -> str:
        """The prefix of a ``query`` or ``document`` text; a :class:`ConfigError` for any other kind."""
        if kind == "query":
            return self.query_prompt
        if kind == "document":
            return self.document_prompt
        raise ConfigError(f"kind: {kind!r} is not `query` or `document`")


def recorded_base(base_model: str, path: Path, hub_id: str | None = None) -> str:
    """What ``biohicl_config.json`` records as ``base_model`` for a base named ``base_model`` and found in ``path``:
    ``hub_id`` whenever one is given (``--base_model_hub_id``, even where a folder of that name exists, as after
    ``hf download ORG/NAME --local-dir ORG/NAME``), else ``base_model`` as named, except a folder, recorded by its
    Hub id when it has one (a Hub-cache snapshot, a weights package), else by its absolute path: a relative one would
    name another folder, or a Hub repo, from another working directory."""
    from biohicl.models.resolver import hub_id_from_folder, is_hub_id

    if hub_id:
        if not is_hub_id(hub_id):
            raise ConfigError(f"base_model_hub_id: {hub_id!r} is not an owner/name Hub id")
        return hub_id
    if Path(base_model).expanduser().is_dir():
        return hub_id_from_folder(path) or str(Path(base_model).expanduser().resolve())
    return base_model


def shown_base(base_model: str) -> str:
    """A recorded ``base_model`` as a picture or a shared line shows it: a Hub id as it is, a folder by its last name
    only, never a path of this machine (a training curve's title travels to the Hub with the run)."""
    from biohicl.models.resolver import is_hub_id

    return base_model if is_hub_id(base_model) else Path(base_model).name or base_model


def settings_hint(**values: Any) -> str:
    """How to load a base with the encoding ``values`` given, true for a Python and a command-line caller alike:
    ``BioHiCL.from_base(..., pooling='cls'), or `biohicl train --pooling cls``` (``from_pretrained`` takes none of
    them; a study's model entry has the same fields)."""
    import shlex

    arguments = ", ".join(f"{key}={value!r}" for key, value in values.items())
    flags = " ".join(f"--{key} {shlex.quote(str(value))}" for key, value in values.items())
    return f"BioHiCL.from_base(..., {arguments}), or `biohicl train {flags}`"


def default_pooling(model_id: str) -> str:
    """The pooling guessed for a base without a pooling of its own (none given, registered or in a
    sentence-transformers ``1_Pooling/config.json``): CLS for the :data:`CLS_POOLED_NAMES` families (BGE, MedCPT),
    judged by the last part of ``model_id`` (a Hub id's name, a folder's name), mean otherwise (sentence-transformers'
    MiniLM/mpnet); a warning of one line, once per folder and process (on stderr, so ``search --json`` keeps its
    stdout), since a wrong guess encodes another model than the one trained."""
    name = re.split(r"[\\/]", model_id.rstrip("/\\"))[-1].lower()
    pooling = "cls" if any(part in name for part in CLS_POOLED_NAMES) else "mean"
    hint = (
        f"for a CLS-trained encoder such as bge or MedCPT: {settings_hint(pooling='cls')}"
        if pooling == "mean"
        else f"its name reads as a CLS-trained encoder; for a mean-pooled one: {settings_hint(pooling='mean')}"
    )
    if (model_id, pooling) not in _GUESSES_SAID:  # a study or a search loads the same folder many times
        _GUESSES_SAID.add((model_id, pooling))
        logger.warning(
            "pooling: %s has no sentence-transformers pooling config; using %r (%s)", model_id, pooling, hint
        )
    return pooling


#: The pooling guesses already logged in this process (each once, as sentence-transformers warns when it guesses).
_GUESSES_SAID: set[tuple[str, str]] = set()

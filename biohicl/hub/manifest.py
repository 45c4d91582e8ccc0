"""Release manifests: one published artifact per reviewable YAML file (``hub/models/*.yaml``, ``hub/datasets/*.yaml``).

``biohicl publish --manifest FILE`` reads one; flags given on the command line win over its fields.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path

from biohicl.errors import ConfigError
from biohicl.field_types import check_field_types
from biohicl.hub.publish import REPO_TYPES
from biohicl.models.registry import is_repo_id


@dataclass
class ReleaseManifest:
    """One published artifact, reviewable in a pull request (``hub/models/*.yaml``, ``hub/datasets/*.yaml``)."""

    repo_id: str = field(metadata={"help": "Hub repo id (owner/name)."})
    source: str = field(metadata={"help": "Run folder (models) or dataset folder, relative to the working dir."})
    repo_type: str = field(default="model", metadata={"help": "'model' or 'dataset'."})
    license: str | None = field(default=None, metadata={"help": "License id written into the card."})
    eval_results: str | None = field(default=None, metadata={"help": "Evaluation JSON of the tuned model."})
    base_eval_results: str | None = field(default=None, metadata={"help": "Evaluation JSON of the base model."})
    private: bool | None = field(
        default=None, metadata={"help": "Create the repo private (true) or public (false); default: its owner's."}
    )
    revision: str | None = field(default=None, metadata={"help": "Branch to commit to (default main)."})
    merge: bool = field(default=False, metadata={"help": "Upload LoRA merged into full weights."})
    commit_message: str | None = field(default=None, metadata={"help": "Commit message."})
    registry_name: str | None = field(default=None, metadata={"help": "Name in biohicl/registry.json, if any."})
    notes: str = field(default="", metadata={"help": "Free text for reviewers."})

    def __post_init__(self) -> None:
        # YAML's "false" quoted is a string, and a truthy one; revision: 1.0 is a float, and str(1.0) not the branch
        check_field_types(self, "manifest")
        if not is_repo_id(self.repo_id):
            raise ConfigError(f"manifest: field 'repo_id' {self.repo_id!r} is not owner/name")
        if self.repo_type not in REPO_TYPES:
            raise ConfigError(f"manifest: field 'repo_type' {self.repo_type!r} is not one of {', '.join(REPO_TYPES)}")

    @classmethod
    def load(cls, path: str | Path) -> ReleaseManifest:
        """Read and check a manifest; :class:`ConfigError` names the file and the unknown, missing or repeated field."""
        from biohicl.config_values import load_yaml, read_config_text  # imports transformers' argument parser

        path = Path(path)
        text = read_config_text(path, "manifest")  # missing, a folder, not UTF-8: one line naming the file
        # a key given twice names the file and its line; malformed YAML, !!timestamp 2001-02-30 or brackets nested
        # thousands deep "cannot read the manifest (...)"
        values = load_yaml(text, path, cannot="cannot read the manifest")
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of fields")
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{path}: unknown field {key!r}{hint}")
        for required in ("repo_id", "source"):
            if not values.get(required):
                raise ConfigError(f"{path}: missing field {required!r}")
        try:
            return cls(**values)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None

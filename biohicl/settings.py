"""Where biohicl finds data: ``BIOHICL_DATA_DIR`` or, failing that, ``../shared/data`` when it exists."""

from __future__ import annotations

import os
from pathlib import Path

from biohicl.errors import ConfigError

DATA_DIR_ENV = "BIOHICL_DATA_DIR"


def data_dir(required: bool = True) -> Path | None:
    """Return the data directory (env ``BIOHICL_DATA_DIR``, else ``../shared/data`` if present)."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ConfigError(f"{DATA_DIR_ENV}={env} is not a directory")
        return path
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    if required:
        raise ConfigError(f"no data directory: set {DATA_DIR_ENV} to the folder holding mesh/, pubmedqa/, biosses/ ...")
    return None


def data_path(*parts: str) -> Path:
    """A path inside the data directory, with a clear error when it is missing."""
    root = data_dir()
    path = root.joinpath(*parts)
    if not path.exists():
        raise ConfigError(f"{path} not found (data directory from {DATA_DIR_ENV}={root})")
    return path

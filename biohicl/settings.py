"""What biohicl reads from its environment: where the data is (``BIOHICL_DATA_DIR`` or, failing that, ``../shared/data``
when it exists), and whether this process was launched as one of several on a machine without an accelerator that
accelerate can build a process group on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, overload

from biohicl.errors import ConfigError

DATA_DIR_ENV = "BIOHICL_DATA_DIR"


@overload
def data_dir(required: Literal[True] = True) -> Path: ...


@overload
def data_dir(required: bool) -> Path | None: ...


def data_dir(required: bool = True) -> Path | None:
    """Return the data directory (env ``BIOHICL_DATA_DIR``, else ``../shared/data`` if present); when there is none,
    a :class:`ConfigError` saying how to set it, or None with ``required=False``."""
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
        raise ConfigError(  # the MeSH table is packaged: only the data sets are read from it
            f"no data directory: set {DATA_DIR_ENV} to the folder holding the data sets (pubmedqa/, biosses/, "
            "scifact/, ...: docs/data.md)"
        )
    return None


def data_path(*parts: str) -> Path:
    """A path inside the data directory, with a clear error when it is missing."""
    root = data_dir()
    path = root.joinpath(*parts)
    if not path.exists():
        raise ConfigError(f"{path} not found (data directory from {DATA_DIR_ENV}={root})")
    return path


#: Accelerators torch reports that accelerate builds no process group on (Apple's MPS): launched processes on a
#: machine whose only accelerator is one of these join the CPU (gloo) group, as on a machine without one.
NO_PROCESS_GROUP_ACCELERATORS = frozenset({"mps"})


def launched_without_accelerator() -> bool:
    """A launched process (``torchrun``/``accelerate launch``: ``WORLD_SIZE`` > 1 or ``LOCAL_RANK`` set) on a machine
    without an accelerator accelerate can build a process group on (none, or MPS): accelerate joins it to a CPU
    (gloo) process group only when asked for the CPU, so training and indexing ask for it (else each process would
    run alone on the same work)."""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("LOCAL_RANK", "-1")) != -1
    if not launched:
        return False
    import torch  # here, not at the top: reading data never loads torch

    if not torch.accelerator.is_available():
        return True
    device = torch.accelerator.current_accelerator()
    return device is None or device.type in NO_PROCESS_GROUP_ACCELERATORS

"""One training run at a time in a run folder: ``train_biohicl`` holds an exclusive ``flock`` on its
``output_dir``'s ``.train.lock`` (which records the holder's pid) from its folder checks to the last file it
writes, so a second run into the same folder is refused in one line naming the folder and that pid, instead of the
two mixing their checkpoints and final files and both reporting success. The kernel drops the lock when its process
dies, so a killed run's folder is free again. The lock is :func:`biohicl.folder_lock.held_folder_lock`, as
``biohicl index``'s is: without ``fcntl`` (Windows) nothing is locked, and the run says so in one warning line.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from biohicl.errors import ConfigError
from biohicl.folder_lock import held_folder_lock

#: A run folder's lock file, ``flock``-ed by the training run writing there, holding its pid.
LOCK_NAME = ".train.lock"


def run_folder_lock(output_dir: str | Path, main: bool = True) -> AbstractContextManager[None]:
    """Hold ``output_dir``'s run lock while the block runs (``main``: the process that writes the run folder; the
    other processes of a distributed run take none; a run inside a run's callback takes no second one); a
    :class:`ConfigError` when another process holds it. The folders this made (``--output_dir lk2/a/run`` under a
    missing ``lk2``: all three) that nothing was written to are removed."""

    def refusal(holder: str) -> ConfigError:
        return ConfigError(
            f"output_dir: {output_dir} is in use by another training run (pid {holder}, in {LOCK_NAME}); wait for it "
            "to end, or train in another --output_dir"
        )

    return held_folder_lock(output_dir or ".", LOCK_NAME, refusal, "a run lock", main)

"""Where a run's TensorBoard events go: a resumed run continues the folder its previous part wrote.

transformers' ``TensorBoardCallback`` writes to ``TENSORBOARD_LOGGING_DIR`` when set, else to a new
``runs/<date>_<host>`` folder under ``output_dir`` named when training begins. A fresh start keeps that (two runs
into one ``output_dir`` are two TensorBoard runs); a resume (``resume_from_checkpoint``, or a study's automatic one)
would open a second folder too, and TensorBoard would show one run as two, so it is pointed at the folder under
``output_dir/runs`` whose events were written last (:func:`previous_tensorboard_folder`); TensorBoard reads the event
files of one folder as one run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The folder under ``output_dir`` transformers names each run's TensorBoard folder in (``runs/<date>_<host>``).
TENSORBOARD_FOLDER = "runs"
EVENTS_PATTERN = "events.out.tfevents.*"


def previous_tensorboard_folder(output_dir: str | Path) -> Path | None:
    """The folder under ``output_dir/runs`` (``runs`` itself included) holding the newest events file, or None."""
    root = Path(output_dir) / TENSORBOARD_FOLDER
    if not root.is_dir():
        return None
    newest: tuple[int, str, Path] | None = None
    for folder in [root, *(p for p in root.iterdir() if p.is_dir())]:
        for events in folder.glob(EVENTS_PATTERN):
            try:
                key = (events.stat().st_mtime_ns, events.name, folder)
            except OSError:  # removed while looking
                continue
            newest = key if newest is None or key[:2] > newest[:2] else newest
    return None if newest is None else newest[2]


def resume_tensorboard_folder(trainer: Any, output_dir: str | Path, resume: str | None) -> None:
    """On a resume (``resume`` a checkpoint, as :func:`~biohicl.training.checkpoint.resolve_resume` gives), point
    each TensorBoard callback of ``trainer`` with no folder yet (no ``TENSORBOARD_LOGGING_DIR``) at the folder the
    run's previous part wrote; a fresh start, or a resume with no events yet, gets transformers' new folder."""
    from transformers.integrations import TensorBoardCallback

    if resume is None:
        return
    folder = previous_tensorboard_folder(output_dir)
    if folder is None:
        return
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(folder)

"""Where a run's TensorBoard events go: one folder per run, so a resumed run's curves continue its own.

transformers' ``TensorBoardCallback`` writes to ``TENSORBOARD_LOGGING_DIR`` when set, else to a new
``runs/<date>_<host>`` folder under ``output_dir`` named when training begins, so a resume (``resume_from_checkpoint``,
or a study's automatic one) would open a second folder and TensorBoard would show the run as two. Without that
variable the run writes to :data:`TENSORBOARD_FOLDER` under its ``output_dir``, the same folder at every resume;
TensorBoard reads the event files of one folder as one run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The folder under ``output_dir`` a run's TensorBoard events go to (unless ``TENSORBOARD_LOGGING_DIR`` is set).
TENSORBOARD_FOLDER = "runs"


def keep_tensorboard_folder(trainer: Any, output_dir: str | Path) -> None:
    """Point each TensorBoard callback of ``trainer`` that has no folder yet (no ``TENSORBOARD_LOGGING_DIR``) at
    ``output_dir/runs``, in place of the timestamped folder transformers would name when training begins."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(Path(output_dir) / TENSORBOARD_FOLDER)

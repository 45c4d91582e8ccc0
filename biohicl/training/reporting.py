"""Where a run's TensorBoard events go: a resumed run continues the folder its previous part wrote.

transformers' ``TensorBoardCallback`` writes to ``TENSORBOARD_LOGGING_DIR`` when set, else to a new
``runs/<date>_<host>`` folder under ``output_dir`` named when training begins. A fresh start keeps that (two runs
into one ``output_dir`` are two TensorBoard runs); a resume (``resume_from_checkpoint``, or a study's automatic one)
would open a second folder too, and TensorBoard would show one run as two, so it is pointed at the folder the
checkpoint it resumes from records (:class:`TensorBoardFolderRecord`, :data:`TENSORBOARD_FOLDER_NAME`); TensorBoard
reads the event files of one folder as one run. A checkpoint without that record (written before it) falls back to
the folder under ``output_dir/runs`` whose events were written last (:func:`previous_tensorboard_folder`), which may
be another run's when a second run started into the same ``output_dir`` after that checkpoint.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePath
from typing import Any

from transformers import TrainerCallback

from biohicl.atomic import atomic_write_text

logger = logging.getLogger(__name__)

#: The folder under ``output_dir`` transformers names each run's TensorBoard folder in (``runs/<date>_<host>``).
TENSORBOARD_FOLDER = "runs"
EVENTS_PATTERN = "events.out.tfevents.*"
#: The file of each checkpoint naming its run's TensorBoard events folder, relative to ``output_dir``.
TENSORBOARD_FOLDER_NAME = "tensorboard_folder.txt"


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


def recorded_tensorboard_folder(checkpoint: str | Path, output_dir: str | Path) -> Path | None:
    """The events folder ``checkpoint``'s :data:`TENSORBOARD_FOLDER_NAME` names, under ``output_dir``; None when it
    has none (a checkpoint written before the record, or by a run without TensorBoard) or names no folder inside
    ``output_dir`` (with a warning)."""
    path = Path(checkpoint) / TENSORBOARD_FOLDER_NAME
    try:
        name = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        logger.warning("%s: unreadable (%s); TensorBoard continues the folder written last", path, err)
        return None
    relative = PurePath(name)
    if not name or "\n" in name or relative.is_absolute() or ".." in relative.parts or relative == PurePath("."):
        logger.warning(
            "%s: %r is not a folder inside the run; TensorBoard continues the folder written last", path, name
        )
        return None
    return Path(output_dir) / relative


def resume_tensorboard_folder(trainer: Any, output_dir: str | Path, resume: str | None) -> None:
    """On a resume (``resume`` a checkpoint, as :func:`~biohicl.training.checkpoint.resolve_resume` gives), point
    each TensorBoard callback of ``trainer`` with no folder yet (no ``TENSORBOARD_LOGGING_DIR``) at the folder that
    checkpoint records (:func:`recorded_tensorboard_folder`), else at the folder under ``output_dir/runs`` written
    last; a fresh start, or a resume with neither, gets transformers' new folder."""
    from transformers.integrations import TensorBoardCallback

    if resume is None:
        return
    folder = recorded_tensorboard_folder(resume, output_dir) or previous_tensorboard_folder(output_dir)
    if folder is None:
        return
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(folder)


class TensorBoardFolderRecord(TrainerCallback):
    """Writes :data:`TENSORBOARD_FOLDER_NAME` into each checkpoint: the folder ``tensorboard``'s events go to,
    relative to ``output_dir`` (nothing for a ``TENSORBOARD_LOGGING_DIR`` outside it), so a resume from that
    checkpoint continues that folder, whatever run wrote into ``output_dir/runs`` since."""

    def __init__(self, tensorboard: Any):
        self.tensorboard = tensorboard

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = getattr(self.tensorboard, "logging_dir", None)  # set at train begin, on the main process
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not (args.should_save and state.is_world_process_zero and folder and checkpoint.is_dir()):
            return
        relative = os.path.relpath(os.path.abspath(folder), os.path.abspath(args.output_dir))
        if relative == os.curdir or relative.split(os.sep)[0] == os.pardir:
            return  # not a folder inside the run: TENSORBOARD_LOGGING_DIR decides on resume as it did here
        atomic_write_text(checkpoint / TENSORBOARD_FOLDER_NAME, PurePath(relative).as_posix() + "\n")


def record_tensorboard_folder(trainer: Any) -> None:
    """Add a :class:`TensorBoardFolderRecord` of ``trainer``'s TensorBoard callback, when it reports to one."""
    from transformers.integrations import TensorBoardCallback

    tensorboard = [c for c in trainer.callback_handler.callbacks if isinstance(c, TensorBoardCallback)]
    if tensorboard:
        trainer.add_callback(TensorBoardFolderRecord(tensorboard[0]))

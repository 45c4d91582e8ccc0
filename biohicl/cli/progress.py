"""Progress lines of long commands: the library logs them (INFO), the command line shows them.

:func:`show_progress` puts the records of :data:`PROGRESS_LOGGERS` on the console as bare messages, the way the
commands printed them: INFO on stdout, warnings and errors on stderr. Under ``torchrun``/``accelerate launch`` every
process runs the command: only rank 0 shows them, the other ranks show the ``biohicl`` loggers' errors alone.
:func:`progress_shown` does so for one command and then puts the loggers back as it found them (an in-process call,
in a notebook, leaves the library's logging as it was). :func:`show_warning_line` is the console script's display of a
Python warning: one line on stderr (``warning: <message>``), not Python's two lines pointing into the installed
``biohicl`` script.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Iterator

#: Library loggers whose INFO records are a command's output (the study's runs, each evaluated task and the evaluations
#: read back from the evaluation cache, the trainable share of a new adapter, training's selection summary; what a save,
#: a soup, an ONNX export or an index's compression wrote, the shards an index rerun kept, and the ONNX encoder's device
#: and check; publishing's upload and missing-results lines, the sentence-transformers files and stale signature entries
#: it leaves out, a staged dataset). A package name stands for all its modules, so none of its modules may be listed
#: beside it (that would print twice).
PROGRESS_LOGGERS = (
    "biohicl.study",
    "biohicl.config_values",  # which shipped config a `--config configs/...` read
    "biohicl.evaluation.runner",
    "biohicl.evaluation.evaluator",
    "biohicl.evaluation.cache",
    "biohicl.models.model",
    "biohicl.models.config",
    "biohicl.models.resolver",  # a local folder named as a registered repo takes its settings
    "biohicl.models.positions",
    "biohicl.models.export",
    "biohicl.models.soup",
    "biohicl.models.onnx_export",
    "biohicl.models.onnx_backend",
    "biohicl.training",
    "biohicl.search.indexing",
    "biohicl.search.compression",
    "biohicl.hub.publish",
    "biohicl.hub.run_sources",
    "biohicl.hub.dataset_repo",
)


class ConsoleHandler(logging.Handler):
    """A record's message on the ``sys.stdout`` (below WARNING) or ``sys.stderr`` of the moment, flushed at once;
    written through ``tqdm.write``, so an open progress bar (training's, on either stream) is cleared first and
    redrawn below the line instead of having the line run into it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
        try:
            tqdm.write(self.format(record), file=stream)
            stream.flush()
        except Exception:
            self.handleError(record)


def launched_rank() -> int:
    """This process's rank among several launched ones: ``torch.distributed``'s when a process group is up (torch is
    not imported for it), else ``RANK`` (or ``LOCAL_RANK``) when ``WORLD_SIZE`` > 1 (the processes accelerate joins
    into one run); 0 otherwise: a cluster's ``RANK`` or ``LOCAL_RANK`` without a launcher's ``WORLD_SIZE`` is one
    process, whose lines are the only ones."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        return int(distributed.get_rank())
    try:
        if int(os.environ.get("WORLD_SIZE") or 1) <= 1:
            return 0
        return int(os.environ.get("RANK") or os.environ.get("LOCAL_RANK") or 0)
    except ValueError:
        return 0


def show_progress(names: Iterable[str] = PROGRESS_LOGGERS) -> None:
    """Show these loggers' INFO records on the console (one handler per logger, however often it is called). On a
    launched process of rank > 0 the library (``biohicl`` and these loggers) shows errors only: its lines and warnings
    (printed through these handlers or Python's last-resort one) come once, from rank 0."""
    quiet = launched_rank() > 0
    logging.getLogger("biohicl").setLevel(logging.ERROR if quiet else logging.NOTSET)
    for name in names:
        log = logging.getLogger(name)
        log.setLevel(logging.ERROR if quiet else logging.INFO)
        if not any(isinstance(handler, ConsoleHandler) for handler in log.handlers):
            log.addHandler(ConsoleHandler())


@contextlib.contextmanager
def progress_shown(names: Iterable[str] = PROGRESS_LOGGERS) -> Iterator[None]:
    """:func:`show_progress` while the block runs (one command); afterwards ``biohicl`` and these loggers get back
    the levels, handlers and ``propagate`` flags they had before, also when the block raised."""
    names = tuple(names)
    saved = logger_states(names)
    show_progress(names)
    try:
        yield
    finally:
        restore_logger_states(saved)


def show_warning_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` of the ``biohicl`` console script (not of an in-process call, whose caller may record
    warnings or filter them): one line on stderr, ``warning: <message>`` for a ``UserWarning`` (what
    biohicl warns with), ``<Category>: <message>`` for another category (a library's deprecation notice)."""
    if launched_rank() > 0:
        return
    text = " | ".join(part.strip() for part in str(message).splitlines() if part.strip())
    prefix = "warning" if category is UserWarning else category.__name__
    ConsoleHandler().emit(logging.makeLogRecord({"msg": f"{prefix}: {text}", "levelno": logging.WARNING}))


LoggerState = tuple[logging.Logger, int, list[logging.Handler], bool]


def logger_states(names: Iterable[str] = PROGRESS_LOGGERS) -> list[LoggerState]:
    """The level, handlers and ``propagate`` flag of ``biohicl`` and each of these loggers, to restore later."""
    return [(log, log.level, list(log.handlers), log.propagate) for log in map(logging.getLogger, ("biohicl", *names))]


def restore_logger_states(saved: Iterable[LoggerState]) -> None:
    """Put back what :func:`logger_states` read."""
    for log, level, handlers, propagate in saved:
        log.setLevel(level)
        log.handlers[:] = handlers
        log.propagate = propagate


@contextlib.contextmanager
def library_bars(shown: bool) -> Iterator[None]:
    """transformers' own progress bars (loading weights) follow a command's ``--no_progress`` while the block runs;
    their setting is restored afterwards."""
    if shown:
        yield
        return
    from transformers.utils import logging as transformers_logging

    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()

"""Progress lines of long commands: the library logs them (INFO), the command line shows them.

:func:`show_progress` puts the records of :data:`PROGRESS_LOGGERS` on the console as bare messages, the way the
commands printed them: INFO on stdout, warnings and errors on stderr.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator

#: Library loggers whose INFO records are a command's output (the study's runs, each evaluated task, the trainable
#: share of a new adapter, training's selection summary; what a save, a soup, an ONNX export or an index's compression
#: wrote, and the ONNX encoder's device and check; publishing's upload and missing-results lines, the
#: sentence-transformers files and stale signature entries it leaves out, a staged dataset). A package name stands
#: for all its modules, so none of its modules may be listed beside it (that would print twice).
PROGRESS_LOGGERS = (
    "biohicl.study",
    "biohicl.evaluation.runner",
    "biohicl.models.model",
    "biohicl.models.export",
    "biohicl.models.soup",
    "biohicl.models.onnx_export",
    "biohicl.models.onnx_backend",
    "biohicl.training",
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


def show_progress(names: Iterable[str] = PROGRESS_LOGGERS) -> None:
    """Show these loggers' INFO records on the console (one handler per logger, however often it is called)."""
    for name in names:
        log = logging.getLogger(name)
        log.setLevel(logging.INFO)
        if not any(isinstance(handler, ConsoleHandler) for handler in log.handlers):
            log.addHandler(ConsoleHandler())


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

"""``biohicl`` command line: a thin dispatcher; each command lives in ``biohicl/cli/<name>.py``.

Every command module exposes ``HELP`` (one line) and ``main(argv: list[str]) -> int``, and parses its argv with
:func:`biohicl.cli.parser.parse_command` (dataclass fields as options, ``--config FILE``, usage errors as one
:class:`~biohicl.errors.ConfigError` line). Errors that biohicl raises on purpose
(:class:`~biohicl.errors.BioHiCLError`) are printed as one line, without a traceback.

Run as the console script (``biohicl``, ``python -m biohicl.cli.main``), the command writes UTF-8 to stdout and
stderr on every platform, as ``python -X utf8`` would (:func:`utf8_output`): on Windows, a redirected or piped stream
is in the ANSI code page (cp1252), where ``print`` of a β in a PubMed title, of the Δ in ``evaluate --compare`` or of
the → in ``reproduce --dry_run`` would crash, and ``search --json > hits.jsonl`` would write JSON lines that are not
UTF-8 (RFC 8259).
"""

from __future__ import annotations

import codecs
import errno
import importlib
import sys
import warnings

from biohicl.cli.progress import progress_shown, show_warning_line
from biohicl.errors import WRITE_ERRNOS, BioHiCLError, file_being_written, library_write_error

#: errors of the machine, not of biohicl: a full disk, a read-only or forbidden folder, a file where a folder is
#: needed or the reverse (printed as one line; the commands check their outputs first, this is the safety net)
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EEXIST,
    errno.ENOTDIR,
    errno.EISDIR,
}


def environment_error_line(err: OSError) -> str:
    """``"FILE: No space left on device"``: the file the error names, else the one being written when it was raised
    (:func:`~biohicl.errors.file_being_written`; for a write error only, :data:`~biohicl.errors.WRITE_ERRNOS`: a
    refusal may come while another file is open), else ``"No space left on device while writing a file"``. One line
    (:func:`one_line`)."""
    where = err.filename or file_being_written(err, open_files=err.errno in WRITE_ERRNOS)
    reason = err.strerror or str(err)
    if where:
        return one_line(f"{where}: {reason}")
    return one_line(f"{reason} while writing a file" if err.errno in WRITE_ERRNOS else reason)


def one_line(text: str) -> str:
    """A message on one line (multi-line library messages joined with ' | ')."""
    return " | ".join(line.strip() for line in str(text).splitlines() if line.strip())


COMMANDS: dict[str, str] = {
    "build-dataset": "biohicl.cli.build_dataset",
    "train": "biohicl.cli.train",
    "evaluate": "biohicl.cli.evaluate",
    "soup": "biohicl.cli.soup",
    "publish": "biohicl.cli.publish",
    "encode": "biohicl.cli.encode",
    "index": "biohicl.cli.index",
    "search": "biohicl.cli.search",
    "reproduce": "biohicl.cli.reproduce",
    "demo": "biohicl.cli.demo",
}


def end_distributed() -> None:
    """After a command that every rank finished: wait for the others, then tear the process group down.

    Under ``torchrun`` a rank that exits with its process group alive can abort (SIGABRT) at interpreter shutdown:
    gloo's worker threads may still hold tensors whose release needs the GIL (pytorch/pytorch#179291), and a rank that
    is not saving returns long before rank 0 has written the run. Nothing to do outside a distributed run; torch is not
    imported for commands that never imported it.
    """
    distributed = sys.modules.get("torch.distributed")
    if distributed is None or not distributed.is_available() or not distributed.is_initialized():
        return
    distributed.barrier()
    distributed.destroy_process_group()


def summary_line(text: str) -> str:
    """A command's ``HELP`` in the one style of the command list: a capital first letter and a final period."""
    text = text.strip()
    return f"{text[:1].upper()}{text[1:]}{'' if text.endswith('.') else '.'}"


def utf8_output() -> None:
    """Reconfigure ``sys.stdout`` and ``sys.stderr`` to UTF-8 where they have another encoding (cp1252 on Windows
    when redirected or piped; ``PYTHONIOENCODING`` too), with ``python -X utf8``'s error handlers: ``surrogateescape``
    on stdout (a file name the OS gave as undecodable bytes is written back as those bytes), ``backslashreplace`` on
    stderr. A stream that cannot be reconfigured (not a text file, or None under ``pythonw``) is left as it is."""
    for stream, errors in ((sys.stdout, "surrogateescape"), (sys.stderr, "backslashreplace")):
        encoding, reconfigure = getattr(stream, "encoding", None), getattr(stream, "reconfigure", None)
        if encoding and reconfigure and codecs.lookup(encoding).name != "utf-8":
            reconfigure(encoding="utf-8", errors=errors)


def _usage() -> str:
    lines = ["usage: biohicl <command> [options]", "", "commands:"]
    for name, module_name in COMMANDS.items():
        try:
            help_text = importlib.import_module(module_name).HELP
        except ImportError:
            help_text = "Not available in this installation."
        lines.append(f"  {name:<14} {summary_line(help_text)}")
    lines.append("\nRun `biohicl <command> --help` for a command's options. Options are spelled like their fields")
    lines.append("(--top_k; --top-k works too); --config FILE reads them from a YAML or JSON file, flags overriding it")
    lines.append("(in `biohicl reproduce`, --config is the study file).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``biohicl <command> ...``: ``argv`` (without the program name), else the command line. Run as the console
    script (no ``argv``), the output is UTF-8 (:func:`utf8_output`) and a Python warning shows as one line on stderr;
    called with ``argv`` (a notebook, a test), the streams and warnings are left to the caller's settings, the
    ``warnings`` recording and filters included."""
    if argv is None:
        utf8_output()
        warnings.showwarning = show_warning_line
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if argv[0] == "--version":
        from biohicl import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        print(f"biohicl: unknown command {name!r}{hint}; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name])
    # every command shows the library's progress lines (study runs, evaluated tasks, ...); the loggers are put back
    # afterwards, so an in-process call (a notebook's) leaves the library's logging as it found it
    with progress_shown():
        try:
            code = int(module.main(rest) or 0)
            end_distributed()
            return code
        except BioHiCLError as err:
            print(f"biohicl {name}: error: {one_line(err)}", file=sys.stderr)
            return 2
        except OSError as err:
            if err.errno not in _ENVIRONMENT_ERRNOS:
                raise
            print(f"biohicl {name}: error: {environment_error_line(err)}", file=sys.stderr)
            return 2
        except Exception as err:
            # a library's own exception for a write the OS refused (safetensors, torch.save): one line, too
            if (refused := library_write_error(err)) is None:
                raise
            print(f"biohicl {name}: error: {environment_error_line(refused)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as err:
            # an interrupt may carry what became of the command's work (its ``outcome``: publish's, of the repo)
            outcome = getattr(err, "outcome", None) or "completed work is kept"
            print(f"biohicl {name}: interrupted; {one_line(outcome)}", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())

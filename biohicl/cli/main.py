"""``biohicl`` command line: a thin dispatcher; each command lives in ``biohicl/cli/<name>.py``.

Every command module exposes ``HELP`` (one line) and ``main(argv: list[str]) -> int``. Errors that biohicl
raises on purpose (:class:`~biohicl.errors.BioHiCLError`) are printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import importlib
import sys
from collections.abc import Iterator

from biohicl.errors import BioHiCLError, ConfigError

#: errors of the machine, not of biohicl: a full disk, a read-only or forbidden folder (printed as one line)
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_HF_UNUSED = "Some specified arguments are not used by the HfArgumentParser: "


def one_line(text: str) -> str:
    """A message on one line (multi-line library messages joined with ' | ')."""
    return " | ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _close_options(parser: argparse.ArgumentParser, message: str) -> str:
    words = message.split(":", 1)[-1].split()
    options = [o for o in parser._option_string_actions if o.startswith("--")]
    hints = []
    for word in (w.split("=", 1)[0] for w in words if w.startswith("-")):
        close = difflib.get_close_matches(word, options, n=1, cutoff=0.75)
        if close:
            hints.append(f"{word} → {close[0]}")
    return f" (did you mean {', '.join(hints)}?)" if hints else ""


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """argparse errors (a misspelled option, a bad value) as one :class:`ConfigError` line instead of a usage dump."""
    original = argparse.ArgumentParser.error

    def error(self: argparse.ArgumentParser, message: str):
        hint = _close_options(self, message) if message.startswith("unrecognized arguments") else ""
        raise ConfigError(f"{message}{hint} (see `{self.prog} --help`)")

    argparse.ArgumentParser.error = error  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original  # type: ignore[method-assign]


COMMANDS: dict[str, str] = {
    "build-dataset": "biohicl.cli.build_dataset",
    "train": "biohicl.cli.train",
    "evaluate": "biohicl.cli.evaluate",
    "publish": "biohicl.cli.publish",
    "encode": "biohicl.cli.encode",
    "index": "biohicl.cli.index",
    "search": "biohicl.cli.search",
    "reproduce": "biohicl.cli.reproduce",
    "demo": "biohicl.cli.demo",
}


def _usage() -> str:
    lines = ["usage: biohicl <command> [options]", "", "commands:"]
    for name, module_name in COMMANDS.items():
        try:
            help_text = importlib.import_module(module_name).HELP
        except ImportError:
            help_text = "(not available in this installation)"
        lines.append(f"  {name:<14} {help_text}")
    lines.append("\nRun `biohicl <command> --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
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
    try:
        with _one_line_usage_errors():
            return int(module.main(rest) or 0)
    except BioHiCLError as err:
        print(f"biohicl {name}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except ValueError as err:
        if not str(err).startswith(_HF_UNUSED):
            raise
        unused = str(err)[len(_HF_UNUSED) :]
        print(f"biohicl {name}: error: unrecognized arguments {unused} (see `biohicl {name} --help`)", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"biohicl {name}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"biohicl {name}: interrupted; completed work is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

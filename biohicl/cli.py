"""``biohicl`` command line: a thin dispatcher; each command lives in ``biohicl/commands/<name>.py``.

Every command module exposes ``HELP`` (one line) and ``main(argv: list[str]) -> int``. Errors that biohicl
raises on purpose (:class:`~biohicl.errors.BioHiCLError`) are printed as one line, without a traceback.
"""

from __future__ import annotations

import importlib
import sys

from .errors import BioHiCLError

COMMANDS: dict[str, str] = {
    "build-dataset": "biohicl.commands.build_dataset",
    "train": "biohicl.commands.train",
    "evaluate": "biohicl.commands.evaluate",
    "publish": "biohicl.commands.publish",
    "encode": "biohicl.commands.encode",
    "index": "biohicl.commands.index",
    "search": "biohicl.commands.search",
    "reproduce": "biohicl.commands.reproduce",
    "demo": "biohicl.commands.demo",
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
        from . import __version__

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
        return int(module.main(rest) or 0)
    except BioHiCLError as err:
        print(f"biohicl {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"biohicl {name}: interrupted; completed work is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

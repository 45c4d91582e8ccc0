"""Every ``biohicl <command> --option`` that README.md and docs/*.md show (```bash blocks and inline code) names an
option that command takes: a renamed or removed option cannot stay in the docs (the python blocks run in
tests/test_doc_snippets.py)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from functools import cache
from pathlib import Path

import pytest

from biohicl.cli.main import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
#: ``biohicl <command>`` or ``-m biohicl.cli.main <command>`` (under accelerate launch / torchrun)
COMMAND = re.compile(r"(?:^|[\s`(])(?:biohicl|-m biohicl\.cli\.main) ([a-z][a-z-]*)\b(.*)")
OPTION = re.compile(r"(?<![\w-])--([a-z][\w-]*)")
#: a line of an unlabelled fence that is a command (the others are output or usage text: a benchmark's table rows
#: start with "biohicl onnx ...")
STARTS_A_COMMAND = re.compile(
    rf"^\s*(?:\$\s+)?(?:biohicl (?:{'|'.join(COMMANDS)})\b|accelerate launch |torchrun |python -m biohicl)"
)
#: options the docs show on purpose though no command takes them (docs/cli.md: a misspelled option's error)
DELIBERATE = {"outptu"}


def doc_commands() -> list[tuple[str, str, str]]:
    """``(where, command, its text up to the end of the command)`` for each biohicl command line of the docs."""
    found = []
    for page in PAGES:
        text = (REPO / page).read_text(encoding="utf-8")
        # shell blocks: ```bash and unlabelled fences (usage, console output); not python, yaml, json, markdown
        fences = re.findall(r"```(\w*)\n(.*?)```", text, re.S)
        lines = [line for lang, block in fences if lang == "bash" for line in block.replace("\\\n", " ").splitlines()]
        shell = [block.replace("\\\n", " ") for lang, block in fences if lang in ("", "console", "sh")]
        lines += [line for block in shell for line in block.splitlines() if STARTS_A_COMMAND.match(line)]
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        lines += [span for span in prose.split("`")[1::2] if span.startswith(("biohicl ", "accelerate ", "torchrun "))]
        for line in lines:
            for match in COMMAND.finditer(line):
                rest = re.split(r"\s(?:#|&&|\|\||;|\|)\s?|`", match.group(2))[0]
                found.append((f"{page}: {line.strip()[:80]}", match.group(1), rest))
    return found


@cache
def options_of(command: str) -> frozenset[str]:
    """The options ``biohicl <command> --help`` lists, with underscores (each is also taken with dashes)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    return frozenset(name.replace("-", "_") for name in OPTION.findall(out.getvalue()))


COMMANDS_SHOWN = doc_commands()


def test_the_docs_show_commands():
    # the pattern finds the pages' commands: a change to it that found none would pass every case below
    assert len(COMMANDS_SHOWN) > 100
    assert {command for _, command, _ in COMMANDS_SHOWN} >= {"train", "evaluate", "build-dataset", "index", "search"}


@pytest.mark.parametrize(("where", "command", "rest"), COMMANDS_SHOWN, ids=[w for w, _, _ in COMMANDS_SHOWN])
def test_each_option_the_docs_show_is_the_commands(where, command, rest):
    if command not in COMMANDS:
        pytest.fail(f"{where}: biohicl has no command {command!r}")
    try:
        words = shlex.split(rest)
    except ValueError:  # an unbalanced quote in prose: read the words as they are
        words = rest.split()
    shown = {
        name.replace("-", "_").split("=")[0]
        for word in words
        for name in OPTION.findall(word[:64])
        if word.startswith("--")
    }
    unknown = sorted(shown - options_of(command) - {"help"} - DELIBERATE)
    assert unknown == [], f"{where}: biohicl {command} takes no {', '.join('--' + u for u in unknown)}"

"""``--help`` of every command shows no ``(default: None)``: an option that defaults to None shows no default (or the
words its field's metadata gives), while a real default (a number) is still shown."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from biohicl.cli import main as cli
from biohicl.cli.main import COMMANDS

#: one option per command whose real default the help must still show
REAL_DEFAULTS = {
    "build-dataset": ("--top_k", "(default: 10)"),
    "train": ("--seed", "(default: 42)"),
    "evaluate": ("--batch_size", "(default: 32)"),
    "soup": ("--weights", "(default: equal)"),  # stated by its own help
    "publish": ("--max_file_mb", "(default: 512.0)"),
    "encode": ("--batch_size", "(default: 32)"),
    "index": ("--batch_size", "(default: 64)"),
    "search": ("--top_k", "(default: 10)"),
    "reproduce": ("--workers", "(default: 1)"),
    "demo": ("--batch_size", "(default: 32)"),
}


def option_helps(out: str) -> dict[str, str]:
    """Each option's help block of a ``--help`` output (its first spelling → its text, whitespace made one space)."""
    options = out.split("\noptions:\n", 1)[1]
    blocks = re.findall(r"^  (-[-\w]+)(.*?)(?=^  -|\Z)", options, re.S | re.M)
    return {name: " ".join(text.split()) for name, text in blocks}


def command_help(command: str, capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_every_command_is_checked():
    assert set(REAL_DEFAULTS) == set(COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_option_shows_a_default_of_none_and_a_real_default_still_shows(command, capsys):
    out = command_help(command, capsys)
    helps = option_helps(out)
    shown = sorted(name for name, text in helps.items() if "(default: None)" in text or "(default: [])" in text)
    assert shown == []
    unwrapped = " ".join(out.split())  # positionals too, and none split over two lines
    assert "(default: None)" not in unwrapped and "(default: [])" not in unwrapped
    option, default = REAL_DEFAULTS[command]
    assert helps[option].removesuffix(".").endswith(default), (option, helps[option])


@pytest.mark.parametrize(
    ("command", "option"),
    [("evaluate", "--quantize"), ("encode", "--quantize"), ("search", "--config"), ("train", "--output_dir")],
)
def test_an_option_defaulting_to_none_ends_with_its_own_help(command, option, capsys):
    text = option_helps(command_help(command, capsys))[option]
    assert "(default:" not in text and text.endswith(".")


def test_a_flag_defaulting_to_none_still_says_not_given(capsys):
    assert option_helps(command_help("train", capsys))["--fsdp"].endswith("(default: not given)")


@pytest.mark.parametrize(
    ("command", "option", "help_end"),
    [
        ("evaluate", "--max_length", "Override the model's maximum tokens per text. (default: the model's own)"),
        ("evaluate", "--query_prompt", "Override the model's query prompt. (default: the model's own)"),
        ("evaluate", "--document_prompt", "Override the model's document prompt. (default: the model's own)"),
        ("evaluate", "--limit_queries", "(quick checks; recorded). (default: every query)"),
        ("publish", "--commit_message", "(default: the manifest's commit_message, else Upload REPO_ID with biohicl)"),
        (
            "publish",
            "--base_eval_results",
            "(default: the manifest's base_eval_results, else RUN/base_eval_results.json if there)",
        ),
        (
            "search",
            "--model",
            "Model to encode the queries with. (default: the index's model, as its manifest records)",
        ),
    ],
)
def test_options_defaulting_to_none_say_what_leaving_them_out_means(command, option, help_end, capsys):
    # DEFAULT_WORDS was used by no field: these showed no default at all
    assert option_helps(command_help(command, capsys))[option].endswith(help_end)


def test_field_metadata_may_name_what_none_means(capsys):
    from biohicl.cli.parser import DEFAULT_WORDS, parse_command

    @dataclass
    class Toy:
        model: str | None = field(default=None, metadata={"help": "Model.", DEFAULT_WORDS: "the index's model"})
        path: str | None = field(default=None, metadata={"help": "A path."})
        count: int = field(default=3, metadata={"help": "How many."})

    with pytest.raises(SystemExit):
        parse_command(Toy, ["--help"], prog="toy")
    helps = option_helps(capsys.readouterr().out)
    assert helps["--model"].endswith("Model. (default: the index's model)")
    assert helps["--path"].endswith("A path.")
    assert helps["--count"].endswith("How many. (default: 3)")
    assert parse_command(Toy, [], prog="toy")[0] == Toy(None, None, 3)  # the words are help only: None is parsed

"""What ``biohicl --help`` and each command's ``--help`` tell a new user: true to what the command does, in terminal
text (no reST markup), and in one style."""

from __future__ import annotations

import re

import pytest

from biohicl.cli import main as cli
from biohicl.cli import publish
from biohicl.cli.main import COMMANDS
from biohicl.errors import ModelLoadError


def help_text(command: str, capsys) -> str:
    """``biohicl <command> --help``, its whitespace runs made one space (argparse wraps to the terminal)."""
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def option_help(command: str, option: str, capsys) -> str:
    """The help of one option of ``biohicl <command> --help`` (up to the next option's line)."""
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = capsys.readouterr().out.split("\noptions:\n", 1)[1]
    block = re.search(rf"^  {re.escape(option)}\b.*?(?=^  -)", out + "\n  -", re.S | re.M)
    assert block, f"{command} --help shows no {option}"
    return " ".join(block.group(0).split())


def test_build_dataset_help_says_pubmedqa_test_items_stay_as_test(capsys):
    # it said "documents of PubMedQA test, SciFact, BIOSSES ... are removed", while a build keeps PubMedQA's own 500
    # test abstracts, split="test" (docs/data.md, Decontamination)
    text = help_text("build-dataset", capsys)
    assert "documents of PubMedQA test, SciFact" not in text
    assert (
        'PubMedQA\'s own test items stay in the dataset, marked split="test" and never trained on, unless '
        "`--exclude_test`" in text
    )
    decontaminate = option_help("build-dataset", "--decontaminate", capsys)
    assert 'PubMedQA\'s own test items stay, marked split="test"' in decontaminate


def test_build_dataset_limit_help_says_what_counts(capsys):
    # --limit 400 of the default corpora gave 400 PubMedQA documents: train 89, dev 112, test 199
    text = option_help("build-dataset", "--limit", capsys)
    assert "keep the first N documents (e.g. 80000)" not in text
    assert "in input order (PubMedQA first)" in text
    assert "test and dev documents count toward N" in text


def test_usage_summaries_have_one_style(capsys):
    assert cli.main(["--help"]) == 0
    lines = capsys.readouterr().out.split("commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    summaries = {line.split()[0]: line.split(None, 1)[1] for line in lines}
    assert list(summaries) == list(COMMANDS)
    for name, summary in summaries.items():
        assert summary[0].isupper() and summary.endswith("."), f"{name}: {summary!r}"
    assert ".tsv" in summaries["encode"]


def test_a_summary_without_the_style_is_given_it(monkeypatch, capsys):
    import importlib

    module = importlib.import_module(COMMANDS["train"])
    monkeypatch.setattr(module, "HELP", "train a model; resumable")
    cli.main(["--help"])
    assert "  train          Train a model; resumable.\n" in capsys.readouterr().out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_no_restructuredtext_markup(command, capsys):
    text = help_text(command, capsys)
    assert "``" not in text
    assert not re.search(r":(?:class|mod|func|meth|attr|data|exc):`", text)
    assert not re.search(r"\S::(?: |$)", text)  # a literal block's "::" is one ":" in a terminal


def test_demo_help_does_not_send_the_reader_to_itself(capsys):
    text = help_text("demo", capsys)
    assert "biohicl demo --help" not in text
    assert "`biohicl demo`: the whole pipeline" in text


def test_rest_markup_becomes_terminal_text():
    from biohicl.cli.parser import terminal_text

    text = (
        "``biohicl demo``: see :mod:`biohicl.study.demo` and :class:`~biohicl.study.demo.DemoArguments`, "
        ":func:`the parser <biohicl.cli.parser.parse_command>`, e.g.::\n\n    biohicl demo\n\nor ::\n\n    x\n"
    )
    assert terminal_text(text) == (
        "`biohicl demo`: see `biohicl.study.demo` and `DemoArguments`, `the parser`, e.g.:\n\n    biohicl demo\n\n"
        "or\n\n    x\n"
    )


def test_a_role_starts_a_word_and_may_name_its_domain():
    """A role's colon starts a word (``pubmedqa:dev:`` is a task spec, not a role), and a domain may precede it
    (``:py:func:``)."""
    from biohicl.cli.parser import terminal_text

    assert terminal_text("pubmedqa:dev:`x`") == "pubmedqa:dev:`x`"
    assert terminal_text("a::class:`C` b") == "a::class:`C` b"
    assert terminal_text(":py:func:`f` and :py:class:`~a.b.C`") == "`f` and `C`"
    assert terminal_text("(:func:`g <a.g>`)") == "(`g`)"


@pytest.mark.parametrize("option", ["--dataset", "--private", "--merge"])
def test_publish_tristate_flags_state_their_default(option, capsys):
    text = option_help("publish", option, capsys)
    assert "(default: None)" not in text
    assert "default: the manifest's" in text


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_flag_shows_a_default_of_none(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = capsys.readouterr().out.split("\noptions:\n", 1)[1]
    flags = re.findall(r"^  (--\w+) \[[A-Z_]+\](.*?)(?=^  -|\Z)", out, re.S | re.M)
    shown = [flag for flag, text in flags if "(default: None)" in " ".join(text.split())]
    assert shown == []


@pytest.mark.parametrize("command", ["evaluate", "publish"])
def test_an_optional_positional_shows_no_default_of_none(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    positionals = capsys.readouterr().out.split("\npositional arguments:\n", 1)[1].split("\noptions:\n", 1)[0]
    assert positionals.strip() and "(default: None)" not in positionals


def test_a_flag_not_given_says_so(capsys):
    text = option_help("train", "--fsdp", capsys)  # transformers' str | None flag (--fsdp is True): None is off
    assert text.endswith("(default: not given)")
    assert publish.parse_args(["run"]).private is None  # the parsed value is still None: the manifest decides


@pytest.mark.parametrize("command", ["encode", "index", "evaluate"])
def test_backend_lists_its_choices(command, capsys):
    from biohicl.models.onnx_backend import BACKENDS

    text = help_text(command, capsys)
    assert f"--backend {{{','.join(BACKENDS)}}}" in text


@pytest.mark.parametrize("command", ["encode", "index"])
def test_dtype_lists_its_choices_and_still_takes_the_short_names(command, capsys):
    from biohicl.search.layout import STORAGE_DTYPES

    text = help_text(command, capsys)
    listed = f"{{{','.join(STORAGE_DTYPES)}}}"
    assert f"--dtype {listed}" in text and f"--compute_dtype {listed}" in text
    from biohicl.cli.parser import parse_command

    if command == "encode":
        from biohicl.cli.encode import EncodeArguments

        (args,) = parse_command(EncodeArguments, ["--model", "m", "--input", "i", "--output", "o", "--dtype", "bf16"],
                                prog="e")  # fmt: skip
        assert (args.dtype, args.backend) == ("bf16", "torch")  # parse_dtype reads bf16 as bfloat16
    else:
        from biohicl.cli.index import IndexCommandArguments
        from biohicl.search.indexing import IndexingArguments

        argv = ["--corpus", "c", "--model", "m", "--output", "o", "--dtype", "fp16"]
        _, options = parse_command((IndexCommandArguments, IndexingArguments), argv, prog="i")
        assert (options.dtype, options.compute_dtype, options.shard_size) == ("fp16", None, 50_000)


def test_unpublished_model_message_builds_the_dataset_first():
    # `biohicl train --config configs/biohicl_minilm.yaml` alone stops at "MISSING dataset: runs/study/dataset"
    from biohicl.models.registry import get_entry

    message = get_entry("BioHiCL-MiniLM").unpublished_message()
    assert message == (
        "BioHiCL-MiniLM (biohicl/BioHiCL-MiniLM-L6) has not been published to the Hub yet; train it (`biohicl "
        "build-dataset --output runs/study/dataset`, then `biohicl train --config configs/biohicl_minilm.yaml`, see "
        "docs/training.md) and load the run folder by path (if it has since been uploaded, load "
        "biohicl/BioHiCL-MiniLM-L6)"
    )
    assert isinstance(ModelLoadError(message), ModelLoadError)


def test_unpublished_model_message_reads_the_configs_dataset_path(tmp_path):
    from biohicl.models.registry import RegistryEntry

    config = tmp_path / "run.yaml"
    config.write_text("dataset_path: data/mine\noutput_dir: runs/mine\n")
    entry = RegistryEntry(name="X", repo_id="org/x", kind="adapter", base_model="org/base", uploaded=False,
                          training_config=str(config))  # fmt: skip
    assert f"(`biohicl build-dataset --output data/mine`, then `biohicl train --config {config}`" in (
        entry.unpublished_message()
    )
    unknown = "(`biohicl build-dataset --output DATASET` (DATASET: the config's dataset_path), then `biohicl train"
    for text in ("output_dir: runs/mine\n", ": not yaml ["):  # no dataset_path to read: the step, named
        config.write_text(text)
        assert unknown in entry.unpublished_message()
    config.unlink()
    assert unknown in entry.unpublished_message()

"""The one command-line parser (``biohicl.cli.parser.parse_command``): ``--config FILE`` as defaults that flags
override, underscore options with their dashed aliases, positionals, and every command's ``--help``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import pytest

from biohicl.cli import build_dataset, evaluate, main, publish, reproduce
from biohicl.cli.parser import parse_command
from biohicl.errors import ConfigError


@dataclass
class Options:
    output: str = field(metadata={"help": "required"})
    top_k: int = field(default=10, metadata={"help": "k"})
    rate: float = field(default=0.5, metadata={"help": "rate"})
    progress: bool = field(default=True, metadata={"help": "bars"})
    tasks: list[str] = field(default_factory=lambda: ["a"], metadata={"help": "tasks"})


def test_config_values_become_defaults_and_flags_override_them(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("output: out\ntop_k: 3\nrate: 1e-4\nprogress: false\ntasks: [x, y]\n")
    (args,) = parse_command(Options, ["--config", str(config)], prog="t")
    # the file satisfies the required `output`; YAML's 1e-4 (a string to YAML) is converted like a flag's value
    assert (args.output, args.top_k, args.rate, args.progress, args.tasks) == ("out", 3, 1e-4, False, ["x", "y"])
    (args,) = parse_command(Options, [f"--config={config}", "--top_k", "5", "--progress", "--tasks", "z"], prog="t")
    assert (args.output, args.top_k, args.rate, args.progress, args.tasks) == ("out", 5, 1e-4, True, ["z"])
    (args,) = parse_command(Options, ["--output", "elsewhere", "--config", str(config)], prog="t")  # order-free
    assert args.output == "elsewhere"


def test_json_config_and_unknown_keys(tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"output": "o", "top_k": 2}))
    assert parse_command(Options, ["--config", str(config)], prog="t")[0].top_k == 2
    config.write_text(json.dumps({"output": "o", "topk": 2, "colour": 1}))
    with pytest.raises(ConfigError, match=r"run\.json: unknown field\(s\) colour, topk \(did you mean top_k\?\)$"):
        parse_command(Options, ["--config", str(config)], prog="t")


def test_underscore_options_with_dashed_aliases():
    (args,) = parse_command(Options, ["--output", "o", "--top-k", "4", "--no-progress"], prog="t")
    assert (args.top_k, args.progress) == (4, False)
    (args,) = parse_command(Options, ["--output", "o", "--top_k", "4", "--no_progress"], prog="t")
    assert (args.top_k, args.progress) == (4, False)
    with pytest.raises(ConfigError, match=r"required: --output"):
        parse_command(Options, [], prog="t")


def test_build_dataset_options_formerly_dashed_take_both_spellings(tmp_path):
    options = ["--output", "o", "--top-k", "3", "--mix-label-kinds", "--no-decontaminate", "--no-progress",
               "--no-arrow", "--exclude-test", "--test-ids", "t.json", "--dev-seed", "2", "--dev-fraction", "0.1",
               "--pubmedqa-dev-size", "9"]  # fmt: skip
    dashed = build_dataset.parse_args(options)
    underscored_options = ["--" + o[2:].replace("-", "_") if o.startswith("--") else o for o in options]
    assert "--top_k" in underscored_options and "--pubmedqa_dev_size" in underscored_options
    underscored = build_dataset.parse_args(underscored_options)
    assert dashed == underscored
    assert (dashed.top_k, dashed.mix_label_kinds, dashed.decontaminate, dashed.progress, dashed.arrow) == (
        3, True, False, False, False
    )  # fmt: skip
    assert (dashed.exclude_test, dashed.test_ids, dashed.dev_seed, dashed.dev_fraction) == (True, "t.json", 2, 0.1)


def test_build_dataset_source_input_groups_from_flags_and_from_a_config(tmp_path):
    argv = ["--output", "o", "--source", "pubtator", "--input", "a.txt", "b.txt", "--source", "bioasq", "--input", "c"]
    argv += ["--beir", "x", "--beir", "y"]
    args = build_dataset.parse_args(argv)
    assert args.groups() == [("pubtator", ["a.txt", "b.txt"]), ("bioasq", ["c"])] and args.beir == ["x", "y"]
    assert build_dataset.parse_args(["--output", "o"]).groups() is None
    config = tmp_path / "build.yaml"
    config.write_text("output: o\nsource: [pubtator, bioasq]\ninput: [[a.txt, b.txt], c]\ntop_k: 4\n")
    args = build_dataset.parse_args(["--config", str(config)])
    assert args.groups() == [("pubtator", ["a.txt", "b.txt"]), ("bioasq", ["c"])] and args.top_k == 4
    # a repeatable option on the command line replaces the file's list, it does not extend it
    args = build_dataset.parse_args(["--config", str(config), "--source", "medline", "--input", "d.xml"])
    assert args.groups() == [("medline", ["d.xml"])]


def test_config_values_are_converted_like_the_options_values(tmp_path):
    from biohicl.cli import train

    config = tmp_path / "build.yaml"
    # a single value for a repeatable option is one occurrence, not one per character
    config.write_text("output: o\nsource: medline-text\ninput: a.nbib\nbeir: b\nlimit: 10\n")
    args = build_dataset.parse_args(["--config", str(config)])
    assert (args.source, args.input, args.beir, args.limit) == (["medline-text"], [["a.nbib"]], ["b"], 10)
    assert args.groups() == [("medline-text", ["a.nbib"])]
    config.write_text("output: o\nsource: [medline-text]\ninput: [[a.nbib]]\nlimit: 10\n")
    assert build_dataset.parse_args(["--config", str(config)]).groups() == [("medline-text", ["a.nbib"])]
    config.write_text("output: o\nsource: [medline-text, [pubtator]]\n")
    with pytest.raises(ConfigError, match=r"^\S*build\.yaml: source: expected single values, got a nested list$"):
        build_dataset.parse_args(["--config", str(config)])
    config.write_text("output: o\nlimit: 2.5\n")
    with pytest.raises(ConfigError, match=r"^\S*build\.yaml: limit: 2\.5 is not a valid int$"):
        build_dataset.parse_args(["--config", str(config)])

    config = tmp_path / "eval.yaml"
    config.write_text("model: m\ntasks: [biosses, pubmedqa]\n")  # a comma-separated option: its list is joined
    assert evaluate.parse_args(["--config", str(config)]).tasks == "biosses,pubmedqa"
    config.write_text("model: m\nsplit: [test, dev]\n")
    with pytest.raises(ConfigError, match=r"^\S*eval\.yaml: split: expected one value, got a list$"):
        evaluate.parse_args(["--config", str(config)])
    config.write_text("compare: a.json\nlabels: base\nlimit_queries: 2\n")
    args = evaluate.parse_args(["--config", str(config)])
    assert (args.compare, args.labels, args.limit_queries) == (["a.json"], ["base"], 2)
    config.write_text("limit_queries: 2.5\n")
    with pytest.raises(ConfigError, match=r"^\S*eval\.yaml: limit_queries: 2\.5 is not a valid int$"):
        evaluate.parse_args(["--config", str(config)])

    config = tmp_path / "train.yaml"
    config.write_text("output_dir: o\nlora_target_modules: query\neval_tasks: biosses\nmax_steps: 3\nsave_steps: 2\n")
    args = train.parse_args(["--config", str(config)])
    assert (args.lora_target_modules, args.eval_tasks, args.max_steps) == (["query"], ["biosses"], 3)
    config.write_text("output_dir: o\nmax_steps: [3]\n")
    with pytest.raises(ConfigError, match=r"^\S*train\.yaml: max_steps: expected one value, got a list$"):
        train.parse_args(["--config", str(config)])
    config.write_text("output_dir: o\nuse_cpu: maybe\n")
    with pytest.raises(ConfigError, match=r"^\S*train\.yaml: use_cpu: 'maybe' is not a valid true/false$"):
        train.parse_args(["--config", str(config)])


def test_an_optional_bool_option_is_a_flag_too():
    from biohicl.cli import train

    assert train.parse_args(["--output_dir", "o", "--disable_tqdm"]).disable_tqdm is True
    assert train.parse_args(["--output_dir", "o", "--disable_tqdm", "false"]).disable_tqdm is False
    assert train.parse_args(["--disable_tqdm", "--output_dir", "o"]).disable_tqdm is True


def test_publish_flags_win_over_the_manifest_and_bool_flags_leave_the_positional_alone():
    args = publish.parse_args(["--dataset", "data/pairs", "--repo-id", "me/x", "--dry-run"])
    assert (args.source, args.dataset, args.repo_id, args.dry_run) == ("data/pairs", True, "me/x", True)
    assert publish.parse_args(["data/pairs", "--repo_id", "me/x", "--dry_run"]) == publish.parse_args(
        ["data/pairs", "--repo-id", "me/x", "--dry-run"]
    )
    # not given = None (the manifest decides); given, even as false, wins over the manifest
    args = publish.parse_args(["run", "--private", "false"])
    assert (args.private, args.merge, args.dataset) == (False, None, None)


def test_evaluate_reads_a_config_and_its_positional_model_wins(tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text("model: org/base\ntasks: biosses\nbatch_size: 8\n")
    args = evaluate.parse_args(["--config", str(config), "--batch_size", "4"])
    assert (args.model, args.tasks, args.batch_size) == ("org/base", "biosses", 4)
    assert evaluate.parse_args(["runs/tuned", "--config", str(config)]).model == "runs/tuned"


def test_reproduce_config_is_the_study_file(capsys):
    args = reproduce.parse_args(["--config", "configs/reproduce_tiny.yaml", "--dry-run", "--report-only"])
    assert (args.config, args.dry_run, args.report_only) == ("configs/reproduce_tiny.yaml", True, True)
    args = reproduce.parse_args(["--config", "c.yaml", "--only", "full, no_mse", "--seeds", "0,2"])
    assert (args.variant_list(), args.seed_list(), args.model_list()) == (["full", "no_mse"], [0, 2], None)
    with pytest.raises(SystemExit):
        reproduce.parse_args(["--help"])
    assert "The study file (a nested YAML" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", ["build-dataset", "train", "evaluate", "publish", "encode", "index", "search",
                                     "reproduce", "demo"])  # fmt: skip
def test_every_command_has_help_and_a_config_option(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main.main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "--config" in out


def test_an_abbreviation_of_both_spellings_of_one_option_is_not_ambiguous():
    # `--top` matches --top_k and its alias --top-k: one option, not two
    from biohicl.cli.search import SearchArguments

    positionals = {"index": {}, "queries": {"nargs": "*"}}
    args, extra = parse_command(SearchArguments, ["idx", "q", "--top", "3"], prog="s", positionals=positionals)
    assert args.top_k == 3 and extra.queries == ["q"]
    with pytest.raises(ConfigError, match=r"ambiguous option: --c could match"):  # --chunk_size, --candidates: two
        parse_command(SearchArguments, ["idx", "q", "--c", "5"], prog="s", positionals=positionals)


def test_search_like_is_repeatable_with_one_id_per_use():
    # one id per --like, so `--like ID INDEX` no longer swallows the index folder as a second id
    from biohicl.cli.search import SearchArguments

    positionals = {"index": {}, "queries": {"nargs": "*"}}
    args, extra = parse_command(
        SearchArguments, ["idx", "--like", "a", "--like", "c", "--like", "b"], prog="s", positionals=positionals
    )
    assert args.like == ["a", "c", "b"] and (extra.index, extra.queries) == ("idx", [])
    args, extra = parse_command(SearchArguments, ["--like", "a", "idx"], prog="s", positionals=positionals)
    assert args.like == ["a"] and (extra.index, extra.queries) == ("idx", [])


def test_intermixed_options_stand_before_between_or_after_the_queries():
    from biohicl.cli.search import SearchArguments

    positionals = {"index": {}, "queries": {"nargs": "*"}}
    for argv in (
        ["idx", "--top_k", "3", "--json", "q one", "q two"],
        ["idx", "q one", "q two", "--top_k", "3", "--json"],
        ["--top_k", "3", "idx", "q one", "--json", "q two"],
    ):
        args, extra = parse_command(SearchArguments, argv, prog="s", positionals=positionals, intermixed=True)
        assert (args.top_k, args.json, extra.index, extra.queries) == (3, True, "idx", ["q one", "q two"])
    with pytest.raises(ConfigError, match=r"unrecognized arguments: q one \(see `s --help`\)"):
        parse_command(SearchArguments, ["idx", "--top_k", "3", "q one"], prog="s", positionals=positionals)
    with pytest.raises(
        ConfigError, match=r"unrecognized arguments: --top-kk 3 q \(did you mean --top-kk → --top_k\?\)"
    ):
        parse_command(
            SearchArguments, ["idx", "--top-kk", "3", "q"], prog="s", positionals=positionals, intermixed=True
        )


def test_evaluate_tasks_help_names_every_kind_of_task(capsys):
    from biohicl.cli import main as cli

    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")  # argparse wraps after a hyphen
    assert "siml-agreement@DATASET" in text and "pubmedqa:dev" in text


def test_no_progress_also_hides_transformers_bars_for_the_block_only():
    from transformers.utils import logging as transformers_logging

    from biohicl.cli.progress import library_bars

    transformers_logging.enable_progress_bar()
    with library_bars(False):  # what evaluate and index wrap the model load in under --no_progress
        assert not transformers_logging.is_progress_bar_enabled()
    assert transformers_logging.is_progress_bar_enabled()  # restored: no state leaks into what runs next
    with library_bars(True):
        assert transformers_logging.is_progress_bar_enabled()


def test_a_negative_flag_has_its_own_help(capsys):
    # HfArgumentParser gave --no_arrow the positive flag's help and "(default: False)"
    with pytest.raises(SystemExit):
        build_dataset.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--no_arrow, --no-arrow turn --arrow off --progress" in text
    assert build_dataset.parse_args(["--no_arrow", "--output", "x"]).arrow is False
    assert build_dataset.parse_args(["--output", "x"]).arrow is True


def test_config_null_is_none_for_an_optional_field_and_refused_for_any_other(tmp_path, monkeypatch):
    from biohicl.cli import train

    config = tmp_path / "train.yaml"
    config.write_text("output_dir: o\nlora_target_modules: null\nmax_train_documents: null\n")
    args = train.parse_args(["--config", str(config)])
    assert (args.lora_target_modules, args.max_train_documents) == (None, None)
    for text, message in [
        ("eval_tasks: null", r"eval_tasks: null is not a valid list of str \(none: \[\]\)"),
        ("max_length: null", "max_length: null is not a valid int"),
        ("lora_r: {a: 1}", "lora_r: a mapping is not a valid int"),
    ]:
        config.write_text(f"output_dir: o\n{text}\n")
        with pytest.raises(ConfigError, match=rf"^\S*train\.yaml: {message}$"):
            train.parse_args(["--config", str(config)])
    config.write_text("output: o\ntop_k: null\n")
    with pytest.raises(ConfigError, match=r"^\S*train\.yaml: top_k: null is not a valid int$"):
        build_dataset.parse_args(["--config", str(config)])
    config.write_text("model: m\ntasks: null\n")
    with pytest.raises(ConfigError, match=r"^\S*train\.yaml: tasks: null is not a valid str$"):
        evaluate.parse_args(["--config", str(config)])
    # a field typed as a mapping takes one; a list-typed one-value option (report_to) takes a list
    from transformers.integrations import integration_utils

    monkeypatch.setattr(integration_utils, "is_tensorboard_available", lambda: True)  # make test-min has none
    config.write_text("output_dir: o\nlr_scheduler_kwargs: {power: 2.0}\nreport_to: [tensorboard]\n")
    args = train.parse_args(["--config", str(config)])
    assert (args.lr_scheduler_kwargs, args.report_to) == ({"power": 2.0}, ["tensorboard"])


def test_a_runs_saved_training_args_read_back_as_a_config(tmp_path, tiny_bert_dir):
    from biohicl.cli import train
    from biohicl.training.run import train_biohicl
    from tests.conftest import synthetic_documents

    docs = tmp_path / "documents.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    argv = ["--output_dir", str(tmp_path / "run"), "--base_model", str(tiny_bert_dir), "--dataset_path", str(docs)]
    argv += ["--max_steps", "1", "--per_device_train_batch_size", "8", "--max_length", "32", "--learning_rate", "3e-4"]
    argv += ["--lora_r", "4", "--use_mse", "false", "--lora_target_modules", "query", "--report_to", "none"]
    argv += ["--use_cpu", "--seed", "5", "--save_strategy", "no", "--disable_tqdm"]
    original = train.parse_args(argv)
    train_biohicl(original)
    saved = tmp_path / "run" / "biohicl_training_args.json"
    assert json.loads(saved.read_text())["hub_token"] == "<HUB_TOKEN>"  # masked: read back as not given
    again = train.parse_args(["--config", str(saved)])
    names = ["learning_rate", "max_steps", "seed", "report_to", "lora_r", "use_mse", "lora_target_modules"]
    names += ["max_length", "base_model", "dataset_path", "hub_token", "label_names", "ddp_backend", "use_cpu"]
    assert {n: getattr(again, n) for n in names} == {n: getattr(original, n) for n in names}
    assert (again.learning_rate, again.report_to, again.hub_token, again.label_names) == (3e-4, [], None, None)
    from biohicl.training.args import BioHiCLTrainingArguments

    own = [f.name for f in dataclasses.fields(BioHiCLTrainingArguments) if f.init and f.name in vars(original)]
    assert {n: getattr(again, n) for n in own} == {n: getattr(original, n) for n in own}


def test_a_list_in_a_config_is_joined_for_comma_separated_options(tmp_path, monkeypatch):
    from biohicl.cli import demo, soup
    from biohicl.study import demo as demo_module

    config = tmp_path / "soup.yaml"
    config.write_text("adapters: [runs/a, runs/b]\nweights: [0.75, 0.25]\noutput: o\n")
    (args,) = parse_command(soup.SoupArguments, ["--config", str(config)], prog="biohicl soup")
    assert (args.adapter_list(), args.weight_list()) == (["runs/a", "runs/b"], [0.75, 0.25])
    seen = {}
    monkeypatch.setattr(demo_module, "run_demo", lambda args, training_args: seen.setdefault("tasks", args.tasks))
    config = tmp_path / "demo.yaml"
    config.write_text("tasks: [biosses, pubmedqa]\n")
    assert demo.main(["--config", str(config)]) == 0 and seen["tasks"] == "biosses,pubmedqa"


def test_index_corpus_and_search_index_come_from_a_config_like_evaluates_model(tmp_path, monkeypatch):
    from biohicl.cli import index, search

    config = tmp_path / "ix.yaml"
    config.write_text("corpus: data/scifact\nmodel: m\noutput: idx\n")
    seen = {}

    def stop(path):
        seen["corpus"] = path
        raise ConfigError("stop")

    monkeypatch.setattr("biohicl.data.corpus.read_corpus", stop)
    for argv, corpus in [(["--config", str(config)], "data/scifact"), (["other", "--config", str(config)], "other")]:
        with pytest.raises(ConfigError, match=r"^stop$"):
            index.main([*argv, "--output", str(tmp_path / "idx")])
        assert seen["corpus"] == corpus
    with pytest.raises(ConfigError, match=r"^the following arguments are required: CORPUS \(or --corpus\)"):
        index.main(["--model", "m", "--output", "o"])

    config = tmp_path / "se.yaml"
    config.write_text("index: idx\ntop_k: 3\n")
    monkeypatch.setattr("biohicl.search.index.load_index", lambda path: seen.update(index=path) or stop(path))
    for argv, where, queries in [
        (["--config", str(config), "insulin", "obesity"], "idx", ["insulin", "obesity"]),  # the words are queries
        (["--index", "idx2", "insulin"], "idx2", ["insulin"]),
        (["insulin", "--config", str(config), "--index", "idx3"], "idx3", ["insulin"]),  # the option wins
    ]:
        monkeypatch.setattr("biohicl.search.exact.check_queries", lambda texts: seen.update(queries=list(texts)))
        with pytest.raises(ConfigError, match=r"^stop$"):
            search.main(argv)
        assert (seen["index"], seen["queries"]) == (where, queries)


def test_a_config_file_without_config_is_named_before_the_missing_options(tmp_path, monkeypatch):
    from biohicl.cli import encode, index, soup

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("adapters: a,b\noutput: o\n")
    hint = r"\(a config file goes after --config: --config s\.yaml\) \(see `biohicl \S+ --help`\)$"
    for command in (soup, encode, index):
        with pytest.raises(ConfigError, match=r"^the following arguments are required: --\S+.* " + hint):
            command.main(["s.yaml"])
    with pytest.raises(ConfigError, match=r"^the following arguments are required: --output " + hint):
        build_dataset.parse_args(["s.yaml"])
    with pytest.raises(ConfigError, match=r"^the following arguments are required: --output \(see"):
        soup.main(["--adapters", "s.yaml"])  # an option's value: no hint


def test_a_progress_line_starts_its_own_line_above_an_open_bar(monkeypatch):
    import io
    import logging
    import sys

    from tqdm import tqdm

    from biohicl.cli.progress import ConsoleHandler

    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    bar = tqdm(total=6, file=out, ascii=True, mininterval=0)
    bar.update(3)
    message = "siml-agreement (dev): spearman=0.5000"
    ConsoleHandler().emit(logging.LogRecord("biohicl.training", logging.INFO, __file__, 1, message, None, None))
    bar.close()
    lines = out.getvalue().split("\n")
    at = next(i for i, line in enumerate(lines) if message in line)
    assert lines[at].rsplit("\r", 1)[-1] == message  # the bar was cleared first: the line is the message alone
    assert "3/6" in lines[at + 1]  # and the bar is drawn again below it


@pytest.mark.parametrize("disabled", [True, False])
def test_train_disable_tqdm_also_hides_transformers_bars(tmp_path, monkeypatch, disabled):
    from transformers.utils import logging as transformers_logging

    import biohicl.training.run
    from biohicl.cli import train

    seen = []

    def fake_train(args, evaluator=None, loss=None):  # records what transformers' bars were set to while training ran
        seen.append(transformers_logging.is_progress_bar_enabled())
        return tmp_path / "out"

    monkeypatch.setattr(biohicl.training.run, "train_biohicl", fake_train)
    transformers_logging.enable_progress_bar()
    argv = ["--output_dir", str(tmp_path / "out"), *(["--disable_tqdm", "true"] if disabled else [])]
    assert train.main(argv) == 0
    assert seen == [not disabled]  # loading weights and writing model shards show no bar under --disable_tqdm
    assert transformers_logging.is_progress_bar_enabled()  # restored afterwards


def test_each_commands_help_is_written_in_the_command_lists_style():
    """``biohicl``'s command list normalises a HELP line (capital, final period); each is written so already."""
    import importlib

    from biohicl.cli.main import COMMANDS, summary_line

    helps = {name: importlib.import_module(module).HELP for name, module in COMMANDS.items()}
    assert {name: text for name, text in helps.items() if summary_line(text) != text} == {}

"""Bad option values and misspelled options of the commands: one line naming the option, exit code 2, before any
model or index loads; and ``--help`` showing each option's default once, none for a required option."""

from __future__ import annotations

import re

import pytest

from biohicl.cli import main as cli


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: the option must be refused before."""
    from biohicl.models import onnx_backend

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded although an option is bad")

    monkeypatch.setattr(onnx_backend, "load_inference_model", no_load)


def test_a_misspelled_required_option_gets_the_did_you_mean_hint(run_cli, tmp_path):
    # argparse reports the missing --output before the unknown --outptu: the hint used to be lost
    result = run_cli(["build-dataset", "--outptu", str(tmp_path / "ds2")])
    assert result.err.strip() == (
        "biohicl build-dataset: error: the following arguments are required: --output; unrecognized arguments: "
        "--outptu (did you mean --outptu → --output?) (see `biohicl build-dataset --help`)"
    )
    assert not (tmp_path / "ds2").exists()


def test_an_unknown_option_beside_a_missing_required_one_is_named_without_a_guess(run_cli):
    result = run_cli(["build-dataset", "--frobnicate", "3"])
    assert result.err.strip() == (
        "biohicl build-dataset: error: the following arguments are required: --output; unrecognized arguments: "
        "--frobnicate (see `biohicl build-dataset --help`)"
    )


def test_an_abbreviation_is_not_an_unknown_option(run_cli, tmp_path):
    # --mod abbreviates --model: only --inptu is unrecognized
    text = tmp_path / "in.txt"
    text.write_text("a\n")
    result = run_cli(["encode", "--mod", "m", "--inptu", str(text), "--output", str(tmp_path / "o.safetensors")])
    assert result.err.strip() == (
        "biohicl encode: error: the following arguments are required: --input; unrecognized arguments: --inptu "
        "(did you mean --inptu → --input?) (see `biohicl encode --help`)"
    )


@pytest.fixture
def texts(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("insulin resistance\nobesity\n")
    return path


def test_encode_compute_dtype_is_named_and_refused_before_the_model_loads(run_cli, no_model, texts, tmp_path):
    out = tmp_path / "o.safetensors"
    argv = ["encode", "--model", "m", "--input", str(texts), "--output", str(out)]
    allowed = "is not one of float32, float16, bfloat16"
    result = run_cli([*argv, "--compute_dtype", "bogus"])
    assert result.err.strip() == f"biohicl encode: error: compute_dtype: 'bogus' {allowed}"
    result = run_cli([*argv, "--dtype", "bogus"])
    assert result.err.strip() == f"biohicl encode: error: dtype: 'bogus' {allowed}"
    assert not out.exists()


def test_encode_an_empty_compute_dtype_is_the_default(run_cli, texts, tmp_path, tiny_bert_dir):
    # encode_file reads "" as "not given": the check before the model loads must not refuse it
    from safetensors.torch import load_file

    argv = ["encode", "--model", str(tiny_bert_dir), "--input", str(texts)]
    for name, extra in [("plain", []), ("empty", ["--compute_dtype", ""])]:
        result = run_cli([*argv, "--output", str(tmp_path / f"{name}.safetensors"), *extra], expect_error=False)
        assert result.code == 0, result.err
    plain, empty = (load_file(tmp_path / f"{name}.safetensors")["embeddings"] for name in ("plain", "empty"))
    assert empty.shape == (2, plain.shape[1]) and empty.dtype == plain.dtype and bool((empty == plain).all())


def test_index_an_empty_compute_dtype_is_the_default_as_for_encode(run_cli, tmp_path, tiny_bert_dir):
    # build_index reads "" as "not given", as encode_file does: the same index, the same recorded compute dtype
    import json

    from safetensors.torch import load_file

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d0", "text": "insulin resistance"}\n{"_id": "d1", "text": "obesity"}\n')
    argv = ["index", "--model", str(tiny_bert_dir), "--no_progress", str(corpus)]
    for name, extra in [("plain", []), ("empty", ["--compute_dtype", ""])]:
        result = run_cli([*argv, "--output", str(tmp_path / name), *extra], expect_error=False)
        assert result.code == 0, result.err
    plain, empty = (load_file(tmp_path / name / "shard-00000.safetensors") for name in ("plain", "empty"))
    assert plain.keys() == empty.keys() and all(bool((plain[k] == empty[k]).all()) for k in plain)
    recorded = [
        json.loads((tmp_path / name / "manifest.json").read_text())["compute_dtype"] for name in ("plain", "empty")
    ]
    assert recorded == ["float32", "float32"]  # on the CPU: float32, whatever the storage dtype


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--dtype", "bogus", "dtype: 'bogus' is not one of float32, float16, bfloat16"),
        ("--compute_dtype", "bogus", "compute_dtype: 'bogus' is not one of float32, float16, bfloat16"),
        ("--batch_size", "0", "--batch_size: must be positive, got 0"),
        ("--shard_size", "-2", "--shard_size: must be positive, got -2"),
    ],
)
def test_index_bad_values_are_named_and_refused_before_the_model_loads(
    run_cli, no_model, tmp_path, option, value, message
):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d0", "text": "a"}\n')
    out = tmp_path / "idx"
    result = run_cli(["index", "--model", "m", "--output", str(out), option, value, str(corpus)])
    assert result.err.strip() == f"biohicl index: error: {message}"
    assert not out.exists()


@pytest.mark.parametrize("size", ["0", "-3"])
def test_encode_batch_size_below_one_is_refused_before_the_model_loads(run_cli, no_model, texts, tmp_path, size):
    out = tmp_path / "o.safetensors"
    result = run_cli(["encode", "--model", "m", "--input", str(texts), "--output", str(out), "--batch_size", size])
    assert result.err.strip() == f"biohicl encode: error: --batch_size: must be positive, got {size}"


def test_encode_batch_size_zero_in_a_config_file_is_refused_too(run_cli, no_model, texts, tmp_path):
    config = tmp_path / "encode.yaml"
    config.write_text(f"model: m\ninput: {texts}\noutput: {tmp_path / 'o.safetensors'}\nbatch_size: 0\n")
    result = run_cli(["encode", "--config", str(config)])
    assert result.err.strip() == f"biohicl encode: error: {config}: --batch_size: must be positive, got 0"
    result = run_cli(["encode", "--config", str(config), "--batch_size", "-2"])  # the command line's: no file named
    assert result.err.strip() == "biohicl encode: error: --batch_size: must be positive, got -2"


@pytest.mark.parametrize("query", [["q"], ["--like", "doc1"]])
def test_search_top_k_zero_is_refused_before_the_index_or_model_loads(run_cli, no_model, tmp_path, query):
    # the index folder does not exist: the top_k message comes first, so nothing was opened
    result = run_cli(["search", str(tmp_path / "nope"), *query, "--top_k", "0"])
    assert result.err.strip() == "biohicl search: error: --top_k: must be positive, got 0"


def test_search_of_a_missing_path_says_it_does_not_exist(run_cli, no_model, tmp_path):
    missing = tmp_path / "nope"
    result = run_cli(["search", str(missing), "q"])
    assert result.err.strip() == f"biohicl search: error: {missing}: does not exist"


def test_search_of_a_file_says_it_is_no_index_folder(run_cli, no_model, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "1", "text": "a"}\n')
    result = run_cli(["search", str(corpus), "q"])
    assert result.err.strip() == f"biohicl search: error: {corpus}: is a file, not an index folder"


@pytest.mark.parametrize(("value", "shown"), [("-1", "-1"), ("0", "0"), ("inf", "inf"), ("nan", "nan")])
def test_publish_max_file_mb_must_be_a_positive_finite_number(run_cli, tmp_path, value, shown):
    result = run_cli(["publish", str(tmp_path / "run3"), "--repo_id", "me/tiny", "--dry_run", "--max_file_mb", value])
    assert result.err.strip() == (
        f"biohicl publish: error: --max_file_mb: must be a positive, finite number of MiB, got {shown}"
    )


def test_demo_output_dir_that_is_a_file_is_named_as_output_dir(run_cli, tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("{}\n")
    result = run_cli(["demo", "--output_dir", str(docs)])
    assert result.err.strip() == f"biohicl demo: error: --output_dir {docs} is a file, not a folder"
    result = run_cli(["demo", "--output_dir", str(docs / "sub")])
    assert result.err.strip() == f"biohicl demo: error: --output_dir {docs / 'sub'}: {docs} is a file, not a folder"
    assert docs.read_text() == "{}\n"


def _help(command: str, capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_required_options_show_no_default(capsys):
    text = _help("encode", capsys)
    assert "--model MODEL Registered name (BioHiCL-Base), Hub repo id[@revision] or a folder. --input" in text
    assert "--output OUTPUT Where to write the safetensors file (tensor `embeddings` [n, dim]). --kind" in text
    assert "Texts per forward pass. (default: 32)" in text  # an optional option keeps its default
    text = _help("build-dataset", capsys)
    assert "--output OUTPUT output folder (replaced atomically) --source" in text
    text = _help("index", capsys)  # --corpus may come as the positional CORPUS: still required, no default
    assert "CORPUS same as --corpus options:" in text
    assert "--corpus CORPUS BEIR folder or corpus.jsonl, id/title/text .jsonl/.tsv, or documents parquet (or " in text
    assert "(or CORPUS). --model MODEL" in text
    assert "Index folder (manifest.json + shard-*.safetensors). --device" in text
    text = _help("soup", capsys)
    assert "(two or more). --output OUTPUT" in text
    assert "Folder to write the averaged adapter to (replaced whole if it exists). --weights" in text


#: the only ways an option's help may say "default" and still get "(default: ...)" appended: none of them states
#: that option's default (another option's, the corpora's, an organisation's ...)
_NOT_ITS_DEFAULT = re.compile(
    r"the default corpora|metric_for_best_model then defaults to dev_score|uses default configuration"
    r"|org default|picks a default"
)


def _option_helps(command: str, capsys, monkeypatch) -> list[tuple[str, str, str]]:
    """(option, its own help text, the help --help prints) of every option of ``command``."""
    from biohicl.cli import parser

    helps = []
    shown = parser._HelpFormatter._get_help_string

    def record(self, action):
        text = shown(self, action)
        helps.append(((action.option_strings or [action.dest])[0], action.help or "", text or ""))
        return text

    monkeypatch.setattr(parser._HelpFormatter, "_get_help_string", record)
    _help(command, capsys)
    return helps


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_an_option_states_its_default_once(command, capsys, monkeypatch):
    helps = _option_helps(command, capsys, monkeypatch)
    assert len(helps) > 3
    for option, own, shown in helps:
        if shown == own or "default" not in _NOT_ITS_DEFAULT.sub("", own).lower():
            continue  # its help printed as written, or it appended a default to a help that states none
        raise AssertionError(f"{command} {option}: its help states a default and gets another: {shown!r}")
    twice = re.findall(r"\(default[^()]*(?:\([^()]*\)[^()]*)*\)\.? \(default: [^)]*\)", _help(command, capsys))
    assert twice == []


def test_a_default_stated_in_any_form_is_shown_once(capsys, monkeypatch):
    # "; default main", "Defaults based on ...", "... by default": the help's own statement, no "(default: None)"
    expected = {
        ("publish", "--revision"): "Branch to commit to (created if missing; default main).",
        ("train", "--greater_is_better"): "Defaults based on `metric_for_best_model`.",
        ("train", "--skip_memory_metrics"): "Skipped by default because it slows down training.",
    }
    for (command, option), ending in expected.items():
        shown = {name: text for name, _, text in _option_helps(command, capsys, monkeypatch)}[option]
        assert shown.endswith(ending) and "(default: " not in shown, (command, option, shown)
        monkeypatch.undo()


def test_a_default_the_help_states_is_not_repeated(capsys):
    for command, stated in [("encode", "cuda if available"), ("index", "the process's accelerator"),
                            ("search", "cuda if available"), ("evaluate", "cuda if available")]:  # fmt: skip
        options = _help(command, capsys).split(" options: ", 1)[1]
        device = options.split("--device DEVICE ", 1)[1].split(" --", 1)[0]
        assert device.endswith(f"(default: {stated}).") and device.count("(default") == 1, (command, device)
    text = _help("encode", capsys)
    assert "Autocast dtype (default: `dtype` on a GPU, float32 on CPU). --batch_size" in text
    # "default corpora" states no default: the value is still shown; evaluate --split states its own
    assert "of the BEIR tasks given without `:split` (default: test); refused" in _help("evaluate", capsys)
    assert "(pubmedqa:dev). --mesh_path" in _help("evaluate", capsys)
    assert "the default corpora plus BC5CDR (default: False)" in _help("build-dataset", capsys)

"""A config file every command reads (``--config``, ``reproduce --config``, ``demo --training_config``, ``publish
--manifest``) that is not UTF-8, binary, a folder or gives a key twice: one line naming the file, exit code 2."""

from __future__ import annotations

import pytest

from biohicl.config_values import read_config
from biohicl.errors import ConfigError

COMMANDS = {
    "train": ["train", "--config"],
    "evaluate": ["evaluate", "--config"],
    "encode": ["encode", "--config"],
    "index": ["index", "--config"],
    "search": ["search", "--config"],
    "build-dataset": ["build-dataset", "--config"],
    "reproduce": ["reproduce", "--dry_run", "--config"],
    "demo": ["demo", "--training_config"],
    "publish": ["publish", "run3", "--repo_id", "me/tiny", "--dry_run", "--manifest"],
}

# (file name, its bytes, the message after "FILE"); the bytes' first non-UTF-8 byte and the repeated key's line
# counted by hand
TWICE = ": line 3: key 'batch_size' given twice"
BAD_FILES = {
    "not-utf8-yaml": ("nonutf.yaml", b"\xff\xfe\x00bad: 1\n", ": not UTF-8 (byte 0xff at offset 0)"),
    "not-utf8-json": ("nonutf.json", b"\xff\xfe\x00bad: 1\n", ": not UTF-8 (byte 0xff at offset 0)"),
    # bytes 0..127 are ASCII (UTF-8); 0x80 at offset 128 is a continuation byte with nothing to continue
    "binary": ("binary.yaml", bytes(range(200)), ": not UTF-8 (byte 0x80 at offset 128)"),
    "key-twice-yaml": ("dup.yaml", b"output: o\nbatch_size: 8\nbatch_size: 16\n", TWICE),
    "key-twice-json": ("dup.json", b'{\n  "batch_size": 8,\n  "batch_size": 16\n}\n', TWICE),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("bad", BAD_FILES)
def test_a_bad_config_file_is_one_line_in_every_command(tmp_path, run_cli, command, bad):
    name, data, message = BAD_FILES[bad]
    path = tmp_path / name
    path.write_bytes(data)
    result = run_cli([*COMMANDS[command], str(path)])
    assert result.err.strip() == f"biohicl {command}: error: {path}{message}"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_given_as_the_config_file_says_it_is_a_folder(tmp_path, run_cli, command):
    folder = tmp_path / "run.yaml"
    folder.mkdir()
    kind = "manifest" if command == "publish" else "config file"
    result = run_cli([*COMMANDS[command], str(folder)])
    assert result.err.strip() == f"biohicl {command}: error: {folder}: is a folder, not a {kind}"


def test_a_key_given_twice_in_a_nested_mapping_names_its_line(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("title: t\nmodels:\n  - name: a\n    lr: 1\n    lr: 2\n")
    with pytest.raises(ConfigError, match=rf"^{study}: line 5: key 'lr' given twice$"):
        read_config(study)
    nested = tmp_path / "nested.json"
    nested.write_text('{"a": {"b": 1,\n "b": 2}}')
    with pytest.raises(ConfigError, match=rf"^{nested}: line 2: key 'b' given twice$"):
        read_config(nested)


def test_keys_a_merge_brings_may_be_overridden_and_the_last_value_of_distinct_keys_kept(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("base: &base {lr: 1, steps: 2}\nrun:\n  <<: *base\n  lr: 3\n")
    assert read_config(config) == {"base": {"lr": 1, "steps": 2}, "run": {"lr": 3, "steps": 2}}
    # 1 and "1" are different keys (an int and a string), as YAML reads them
    config.write_text("1: a\n'1': b\n")
    assert read_config(config) == {1: "a", "1": "b"}


def test_an_unquoted_date_in_a_config_file_is_its_text(tmp_path):
    from biohicl.cli.parser import parse_command
    from biohicl.training.args import BioHiCLTrainingArguments

    config = tmp_path / "t3.yaml"
    config.write_text(f"run_name: 2024-05-01\noutput_dir: {tmp_path / 'tr3'}\n")
    assert read_config(config)["run_name"] == "2024-05-01"  # YAML 1.1's timestamp, a datetime.date before
    config.write_text("a: 2001-02-03T04:05:06\nb: [2001-02-30]\n")  # a datetime; an impossible date, a ValueError
    assert read_config(config) == {"a": "2001-02-03T04:05:06", "b": ["2001-02-30"]}
    config.write_text(f"run_name: 2024-05-01\noutput_dir: {tmp_path / 'tr3'}\n")
    (args,) = parse_command(BioHiCLTrainingArguments, ["--config", str(config)], prog="biohicl train")
    assert args.run_name == "2024-05-01"
    assert '"run_name": "2024-05-01"' in args.to_json_string()  # training wrote no biohicl_training_args.json


def test_numbers_are_read_as_yaml_1_2_reads_them(tmp_path):
    """YAML 1.1 read `12:30` as 750 (base 60) and `010` as 8 (octal), silently: YAML 1.2's forms only."""
    config = tmp_path / "n.yaml"
    config.write_text("run_name: 12:30\nseed: 010\nx: 0x10\ny: 0o10\nz: -3\nlr: 1.5e-4\nw: .5\nt: 1:20.5\n")
    assert read_config(config) == {
        "run_name": "12:30", "seed": 10, "x": 16, "y": 8, "z": -3, "lr": 1.5e-4, "w": 0.5, "t": "1:20.5"
    }  # fmt: skip
    config.write_text("seed: !!int 1:20\n")
    with pytest.raises(ConfigError, match=rf"^{config}: cannot parse \(invalid literal for int\(\) with base 10"):
        read_config(config)


def test_yaml_s_yes_no_reading_is_refused_for_a_text_option_and_kept_for_a_bool_one(tmp_path):
    """`save_strategy: no` is YAML 1.1's false: it became the text 'False' (run_name silently, save_strategy
    refused as not one of its choices); quoted, or on a bool option, it is what the user meant."""
    from biohicl.cli.parser import parse_command
    from biohicl.training.args import BioHiCLTrainingArguments

    config = tmp_path / "c.yaml"
    for key in ("save_strategy", "run_name"):
        config.write_text(f"{key}: no\noutput_dir: {tmp_path / 'r'}\n")
        with pytest.raises(ConfigError, match=rf"^{config}: {key}: False is how YAML reads an unquoted yes/no/on/off"):
            parse_command(BioHiCLTrainingArguments, ["--config", str(config)], prog="biohicl train")
    config.write_text(f"save_strategy: 'no'\nuse_mse: no\ndisable_tqdm: yes\noutput_dir: {tmp_path / 'r'}\n")
    (args,) = parse_command(BioHiCLTrainingArguments, ["--config", str(config)], prog="biohicl train")
    assert (str(args.save_strategy.value), args.use_mse, args.disable_tqdm) == ("no", False, True)


# (the option, its YAML value, the message after "FILE: "): a date read as its text, then through the option's type
NOT_A_VALUE = {
    "date-as-int": ("lora_alpha", "2001-02-03", "lora_alpha: '2001-02-03' is not a valid int"),
    "date-as-float": ("learning_rate", "2001-02-03", "learning_rate: '2001-02-03' is not a valid float"),
    "binary": ("run_name", "!!binary aGVsbG8=", "run_name: a bytes is not a valid str"),
    "set": ("learning_rate", "!!set {0.1: null}", "learning_rate: a set is not a valid float"),
    "tagged-date": ("run_name", "!!timestamp 2024-05-01", "run_name: a date is not a valid str"),
    "set-in-a-list": ("report_to", "[!!set {a: null}]", "report_to: a set is not a valid str"),
}


@pytest.mark.parametrize("case", NOT_A_VALUE)
def test_a_value_no_option_reads_is_refused_before_anything_loads(tmp_path, run_cli, case):
    field, value, message = NOT_A_VALUE[case]
    config = tmp_path / "t.yaml"
    config.write_text(f"{field}: {value}\n")
    args = ["--output_dir", str(tmp_path / "out"), "--dataset_path", str(tmp_path / "missing"), "--max_steps", "1"]
    result = run_cli(["train", "--config", str(config), *args])
    assert result.err.strip() == f"biohicl train: error: {config}: {message}"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("learning_rate: !!binary aGVsbG8=", "training: learning_rate: a bytes is not a valid float"),
        ("lora_alpha: 2001-02-03", "training: lora_alpha: '2001-02-03' is not a valid int"),
        ("run_name: !!set {a: null}", "training: run_name: a set is not a valid str"),
    ],
)
def test_a_study_refuses_a_training_value_no_option_reads(tmp_path, line, message):
    from pathlib import Path

    from biohicl.study.config import ReproduceConfig

    tiny = Path(__file__).resolve().parents[2] / "configs" / "reproduce_tiny.yaml"
    study = tmp_path / "study.yaml"
    study.write_text(tiny.read_text(encoding="utf-8").rstrip("\n") + f"\n  {line}\n", encoding="utf-8")  # in training:
    with pytest.raises(ConfigError) as err:
        ReproduceConfig.from_yaml(study)
    assert str(err.value) == f"{study}: {message}"


def test_a_json_config_nested_too_deeply_is_worded_as_read_json_words_it(tmp_path):
    """It gave the decoder's own words (``cannot parse (maximum recursion depth exceeded while decoding ...)``)."""
    from biohicl.config_values import read_config

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        read_config(deep)
    assert str(raised.value) == f"{deep}: not valid JSON (nested too deeply to read)"

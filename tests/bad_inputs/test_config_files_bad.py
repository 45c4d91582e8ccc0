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
TWICE = " line 3: key 'batch_size' given twice"
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
    with pytest.raises(ConfigError, match=rf"^{study} line 5: key 'lr' given twice$"):
        read_config(study)
    nested = tmp_path / "nested.json"
    nested.write_text('{"a": {"b": 1,\n "b": 2}}')
    with pytest.raises(ConfigError, match=rf"^{nested} line 2: key 'b' given twice$"):
        read_config(nested)


def test_keys_a_merge_brings_may_be_overridden_and_the_last_value_of_distinct_keys_kept(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("base: &base {lr: 1, steps: 2}\nrun:\n  <<: *base\n  lr: 3\n")
    assert read_config(config) == {"base": {"lr": 1, "steps": 2}, "run": {"lr": 3, "steps": 2}}
    # 1 and "1" are different keys (an int and a string), as YAML reads them
    config.write_text("1: a\n'1': b\n")
    assert read_config(config) == {1: "a", "1": "b"}

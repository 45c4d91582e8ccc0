"""The dispatcher: every user error is one stderr line and exit code 2, never a traceback or a usage dump."""

from __future__ import annotations

import errno
import os
import types

import pytest

from biohicl.cli import main as cli
from biohicl.errors import DataError


@pytest.fixture
def fake_command(monkeypatch):
    """Register ``biohicl fake`` whose ``main`` raises what the test asks for (an exception, or a function called to
    raise it from its own frames)."""

    def install(raise_what):
        module = types.ModuleType("biohicl_fake_command")
        module.HELP = "fake"

        def main(argv):
            if isinstance(raise_what, BaseException):
                raise raise_what
            raise_what()

        module.main = main
        monkeypatch.setitem(cli.COMMANDS, "fake", "biohicl_fake_command")
        monkeypatch.setitem(__import__("sys").modules, "biohicl_fake_command", module)

    return install


def test_unknown_command_suggests_the_close_one(run_cli):
    result = run_cli(["build-datset"])
    assert "unknown command 'build-datset' (did you mean build-dataset?)" in result.err


def test_multi_line_messages_become_one_line(fake_command, run_cli):
    fake_command(DataError("first line\nsecond line\n\n  third", "corpus.jsonl", 7))
    result = run_cli(["fake"])
    assert result.err.strip() == "biohicl fake: error: corpus.jsonl, record 7: first line | second line | third"


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "No space left"), (errno.EROFS, "Read-only file system"),
                                             (errno.EACCES, "Permission denied")])  # fmt: skip
def test_full_disk_and_read_only_from_any_command_are_one_line(fake_command, run_cli, code, words):
    fake_command(OSError(code, os.strerror(code), "/data/out/shard-00003.safetensors"))
    result = run_cli(["fake"])
    assert result.err.strip() == f"biohicl fake: error: /data/out/shard-00003.safetensors: {os.strerror(code)}"
    assert words in result.err


def test_programming_errors_keep_their_traceback(fake_command):
    fake_command(OSError(errno.EBADF, "Bad file descriptor"))
    with pytest.raises(OSError):
        cli.main(["fake"])
    fake_command(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["fake"])


def test_unknown_option_suggests_the_close_one(run_cli, tmp_path):
    result = run_cli(["encode", "--model", "m", "--input", "in.txt", "--output", "o", "--batch_sise", "4"])
    assert "unrecognized arguments: --batch_sise 4 (did you mean --batch_sise → --batch_size?)" in result.err


def test_a_misspelled_dashed_option_is_pointed_to_the_underscore_spelling(run_cli):
    import argparse

    original = argparse.ArgumentParser.error
    result = run_cli(["publish", "runs/x", "--repo-idd", "me/x"])
    assert "unrecognized arguments: --repo-idd me/x (did you mean --repo-idd → --repo_id?)" in result.err
    assert argparse.ArgumentParser.error is original  # nothing global is patched


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--max-stesp", "3"], "did you mean --max-stesp → --max_steps?"),
        (["search", "idx", "q", "--backend", "annoy"], "argument --backend: invalid choice: 'annoy'"),
        (["encode", "--model", "m", "--input", "i", "--output", "o", "--kind", "doc"], "invalid choice: 'doc'"),
        (["reproduce", "--config", "c.yaml", "--workers", "0"], "--workers: must be positive, got 0"),
        (["reproduce", "--config", "c.yaml", "--seeds", "0,one"], "--seeds: expected comma-separated integers"),
        (["evaluate", "--compare", "a.json", "--model", "m"], "give either MODEL (evaluate) or --compare FILES"),
        (["evaluate", "m", "--model", "n"], "model: given twice, as MODEL ('m') and as --model ('n'); give it once"),
        (["publish", "runs/x", "--max_file_mb", "big"], "argument --max_file_mb/--max-file-mb: invalid float value"),
        (["evaluate", "m", "--batch_size", "0"], "batch_size: 0 is not a positive number of texts"),
        (["evaluate", "m", "--threads", "-2"], "threads: -2 is not a positive number of threads"),
        (["evaluate", "m", "--limit_queries", "0"], "limit_queries: 0 is not a positive number of queries"),
    ],
)
def test_usage_errors_of_every_command_are_one_line(run_cli, argv, message):
    assert message in run_cli(argv).err


# ------------------------------------------------------------------------------------------------ --config FILE
def test_config_file_with_an_unknown_key_names_the_file_and_the_key(tmp_path, run_cli):
    config = tmp_path / "build.yaml"
    config.write_text("output: out\ntop_kk: 3\n")
    result = run_cli(["build-dataset", "--config", str(config)])
    assert f"{config}: unknown field(s) top_kk (did you mean top_k?)" in result.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("output: [out\n", "cannot parse"),
        ("- output\n", "expected a mapping of option names to values"),
        ("output: o\nkind: passage\n", "kind: 'passage' is not one of query, document"),
    ],
)
def test_malformed_config_files_are_one_line(tmp_path, run_cli, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    argv = ["encode", "--config", str(config), "--model", "m", "--input", "i"]
    assert f"{config}: " in run_cli(argv).err and message in run_cli(argv).err


def test_config_file_usage_errors(tmp_path, run_cli):
    assert "--config: expected one argument" in run_cli(["demo", "--config"]).err
    assert "missing.yaml: config file not found" in run_cli(["demo", "--config", str(tmp_path / "missing.yaml")]).err
    (tmp_path / "a.yaml").write_text("max_steps: 3\n")
    twice = ["demo", "--config", str(tmp_path / "a.yaml"), "--config", str(tmp_path / "a.yaml")]
    assert "--config: given twice" in run_cli(twice).err
    assert "spell the option out in full" in run_cli(["demo", "--conf", str(tmp_path / "a.yaml")]).err
    # the old `biohicl train run.yaml` form points to --config
    result = run_cli(["train", str(tmp_path / "a.yaml")])
    assert f"(a config file goes after --config: --config {tmp_path / 'a.yaml'})" in result.err
    result = run_cli(["evaluate", str(tmp_path / "a.yaml")])
    assert f"is a config file: give it as --config {tmp_path / 'a.yaml'}" in result.err


def test_missing_required_option(run_cli):
    result = run_cli(["search"])
    assert "required" in result.err


def test_help_still_exits_zero(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["build-dataset", "--help"])
    assert exit_.value.code == 0 and "--output" in capsys.readouterr().out


def test_unwritable_encode_output_fails_before_the_model_loads(tmp_path, run_cli, monkeypatch):
    from biohicl.models import onnx_backend

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded although the output cannot be written")

    monkeypatch.setattr(onnx_backend, "load_inference_model", no_work)
    (tmp_path / "texts.txt").write_text("insulin\n")
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-folder").mkdir()
    for target, words in ((tmp_path / "a-file" / "e.safetensors", "a-file is a file, not a folder"),
                          (tmp_path / "a-folder", "a-folder: is a folder")):  # fmt: skip
        argv = ["encode", "--model", "org/any", "--input", str(tmp_path / "texts.txt"), "--output", str(target)]
        assert words in run_cli(argv).err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder", "texts.txt"]


def test_a_missing_encode_input_fails_before_the_model_loads(tmp_path, run_cli, monkeypatch):
    from biohicl.models import onnx_backend

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded although there is no input to encode")

    monkeypatch.setattr(onnx_backend, "load_inference_model", no_work)
    (tmp_path / "a-folder").mkdir()
    for missing, why in ((tmp_path / "nope.txt", "input file not found"), (tmp_path / "a-folder", "is a folder")):
        argv = ["encode", "--model", "org/any", "--input", str(missing), "--output", str(tmp_path / "e.safetensors")]
        assert run_cli(argv).err.strip().startswith(f"biohicl encode: error: {missing}: {why}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder"]


@pytest.mark.parametrize("code", [errno.EEXIST, errno.ENOTDIR, errno.EISDIR])
def test_a_file_or_folder_in_the_way_from_any_command_is_one_line(fake_command, run_cli, code):
    fake_command(OSError(code, os.strerror(code), "/data/out"))
    assert run_cli(["fake"]).err.strip() == f"biohicl fake: error: /data/out: {os.strerror(code)}"


@pytest.fixture
def output_in_the_way(tmp_path):
    """``a-file`` (a regular file) under ``tmp_path``, and the outputs that it blocks with the words expected."""
    (tmp_path / "a-file").write_text("x")
    blocker = tmp_path / "a-file"
    under = (blocker / "x", f"a-file/x: {blocker} is a file, not a folder")
    return [(blocker, "a-file is a file, not a folder"), under]


def _no_work(*args, **kwargs):
    raise AssertionError("slow work started although the output cannot be written")


def test_index_output_that_is_or_lies_under_a_file_fails_before_the_model_loads(
    tmp_path, run_cli, monkeypatch, output_in_the_way
):
    from biohicl.models import onnx_backend

    monkeypatch.setattr(onnx_backend, "load_inference_model", _no_work)
    (tmp_path / "corpus.jsonl").write_text('{"_id": "1", "text": "insulin"}\n')
    for target, words in output_in_the_way:
        argv = ["index", str(tmp_path / "corpus.jsonl"), "--model", "org/any", "--output", str(target)]
        err = run_cli(argv).err
        assert f"biohicl index: error: --output {target}" in err and words in err
    assert (tmp_path / "a-file").read_text() == "x"


def test_train_output_dir_that_is_or_lies_under_a_file_fails_before_the_model_loads(
    tmp_path, run_cli, monkeypatch, output_in_the_way
):
    from biohicl.training import run

    monkeypatch.setattr(run, "train_biohicl", _no_work)
    for target, words in output_in_the_way:
        argv = ["train", "--dataset_path", str(tmp_path / "data"), "--output_dir", str(target), "--max_steps", "1"]
        err = run_cli(argv).err
        assert f"biohicl train: error: --output_dir {target}" in err and words in err
    assert (tmp_path / "a-file").read_text() == "x"


def test_reproduce_output_dir_that_is_or_lies_under_a_file_fails_before_any_work(
    tmp_path, run_cli, monkeypatch, output_in_the_way
):
    import biohicl.study

    for name in ("run_study", "prepare_dataset", "evaluate_step0_once"):
        monkeypatch.setattr(biohicl.study, name, _no_work)
    for target, words in output_in_the_way:
        for extra in ([], ["--workers", "2"]):
            argv = ["reproduce", "--config", "configs/reproduce_tiny.yaml", "--output_dir", str(target), *extra]
            err = run_cli(argv).err
            assert f"biohicl reproduce: error: --output_dir {target}" in err and words in err
    assert (tmp_path / "a-file").read_text() == "x"


def _full_disk_safetensors_write(path):
    """``safetensors.torch.save_file`` of ``path`` failing as it does on a full disk: its own ``SafetensorError``."""
    import safetensors.torch
    import torch
    from safetensors import SafetensorError

    def refused(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    original = safetensors.torch.serialize_file
    safetensors.torch.serialize_file = refused
    try:
        safetensors.torch.save_file({"w": torch.zeros(2)}, str(path))
    finally:
        safetensors.torch.serialize_file = original


def _short_torch_save(path):
    """``torch.save`` to ``path`` failing as it does on a full disk or past ``ulimit -f``: a ``RuntimeError`` of its
    zip writer (the text torch 2 gives), no ``OSError``."""
    import torch
    import torch.serialization

    def refused(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 15872 vs 15760")

    original = torch.serialization._save
    torch.serialization._save = refused
    try:
        torch.save({"w": torch.zeros(2)}, str(path))
    finally:
        torch.serialization._save = original


def test_a_full_disk_under_safetensors_is_one_line_naming_the_file(fake_command, run_cli, tmp_path):
    target = tmp_path / "shard-00003.safetensors"
    fake_command(lambda: _full_disk_safetensors_write(target))
    result = run_cli(["fake"])
    assert result.err.strip() == f"biohicl fake: error: {target}: No space left on device"


@pytest.mark.parametrize(
    ("code", "words", "end"),
    [(27, "File too large", " while writing a file"), (30, "Read-only file system", ""),
     (122, os.strerror(122), " while writing a file")],
)  # fmt: skip
def test_other_refused_writes_under_safetensors_are_one_line(fake_command, run_cli, code, words, end):
    from safetensors import SafetensorError

    fake_command(SafetensorError(f"Error while serializing: I/O error: {words} (os error {code})"))
    assert run_cli(["fake"]).err.strip() == f"biohicl fake: error: {os.strerror(code)}{end}"


def test_a_full_disk_under_torch_save_is_one_line_naming_the_file(fake_command, run_cli, tmp_path, monkeypatch):
    import shutil

    target = tmp_path / "optimizer.pt"
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=4096))
    fake_command(lambda: _short_torch_save(target))
    result = run_cli(["fake"])
    assert result.err.strip() == (
        f"biohicl fake: error: {target}: No space left on device (torch: unexpected pos 15872 vs 15760)"
    )


def test_a_short_torch_save_with_space_left_says_the_write_stopped_short(fake_command, run_cli, tmp_path):
    import resource

    if resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
        pytest.skip("this process has a file size limit")
    target = tmp_path / "optimizer.pt"
    fake_command(lambda: _short_torch_save(target))
    assert run_cli(["fake"]).err.strip() == (
        f"biohicl fake: error: {target}: the write stopped short (perhaps a full disk, a quota or a file size limit; "
        "torch: unexpected pos 15872 vs 15760)"
    )


def test_a_short_torch_save_under_a_file_size_limit_is_one_bracket(fake_command, run_cli, tmp_path, monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (1 << 20, resource.RLIM_INFINITY))
    target = tmp_path / "optimizer.pt"
    fake_command(lambda: _short_torch_save(target))
    assert run_cli(["fake"]).err.strip() == (
        f"biohicl fake: error: {target}: File too large (the file size limit, ulimit -f; "
        "torch: unexpected pos 15872 vs 15760)"
    )


def test_a_short_torch_save_with_a_cpp_backtrace_is_one_line(fake_command, run_cli, tmp_path, monkeypatch):
    """Under ``TORCH_SHOW_CPP_STACKTRACES=1`` torch's message goes on with its C++ frames, one per line."""
    import shutil

    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=4096))
    message = (
        "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598\n"
        "frame #0: c10::ThrowEnforceNotMet(...) + 0x6b (0x7f in libc10.so)\n"
        "frame #1: caffe2::serialize::PyTorchStreamWriter::writeRecord(...) + 0x1d2 (0x7f in libtorch_cpu.so)"
    )
    fake_command(RuntimeError(message))
    assert run_cli(["fake"]).err.splitlines() == [
        "biohicl fake: error: No space left on device (torch: unexpected pos 704 vs 598) while writing a file"
    ]
    fake_command(OSError(errno.ENOSPC, "No space left on device\nsecond line"))
    assert run_cli(["fake"]).err.splitlines() == [
        "biohicl fake: error: No space left on device | second line while writing a file"
    ]


def test_a_refused_write_with_a_gzip_handle_open_is_still_one_line(fake_command, run_cli, tmp_path):
    """``GzipFile.mode`` is an int (1: read): looking for the file being written crashed with a TypeError."""
    import gzip

    source = tmp_path / "in.jsonl.gz"
    with gzip.open(source, "wt", encoding="utf-8") as handle:
        handle.write("{}\n")

    def write():
        with gzip.open(source, "rb") as compressed:
            compressed.read()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    fake_command(write)
    assert run_cli(["fake"]).err.strip() == "biohicl fake: error: No space left on device while writing a file"


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS])
def test_a_refusal_naming_no_file_does_not_name_an_unrelated_open_file(fake_command, run_cli, tmp_path, code):
    """A log open for appending is no file the refusal was about: only a write error (a full disk, a file too large,
    a quota) names the file open for writing."""
    log = tmp_path / "train.log"

    def refused():
        with open(log, "a", encoding="utf-8") as handle:
            handle.write("step 1\n")
            raise OSError(code, os.strerror(code))

    fake_command(refused)
    assert run_cli(["fake"]).err.strip() == f"biohicl fake: error: {os.strerror(code)}"


def test_other_runtime_errors_of_torch_keep_their_traceback(fake_command):
    fake_command(RuntimeError("[enforce fail at inline_container.cc:300] . file not found: archive/data.pkl"))
    with pytest.raises(RuntimeError, match="file not found"):
        cli.main(["fake"])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG])
def test_a_refused_write_naming_no_file_names_the_file_open_for_writing(fake_command, run_cli, tmp_path, code):
    target = tmp_path / "checkpoint-4" / "trainer_state.json"
    target.parent.mkdir()

    def write():
        with open(target, "w", encoding="utf-8") as handle:
            handle.write("{")
            raise OSError(code, os.strerror(code))

    fake_command(write)
    assert run_cli(["fake"]).err.strip() == f"biohicl fake: error: {target}: {os.strerror(code)}"


def test_a_full_disk_with_no_file_known_says_it_was_a_write(fake_command, run_cli):
    fake_command(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert run_cli(["fake"]).err.strip() == "biohicl fake: error: No space left on device while writing a file"

"""The command line shows the library's output lines (``biohicl.cli.progress``): what a publish leaves out, what a
save or an ONNX export wrote, and each line once."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from biohicl.cli.progress import PROGRESS_LOGGERS, show_progress
from tests.test_hub import stub_safetensors


def test_no_progress_logger_is_under_another():
    """A record reaches every handler up its logger's chain: a module under a listed package would print twice."""
    for name in PROGRESS_LOGGERS:
        parents = [other for other in PROGRESS_LOGGERS if name.startswith(other + ".")]
        assert parents == [], f"{name} is under {parents}"


def test_a_line_is_shown_once_on_stdout(capsys):
    show_progress()
    show_progress()  # the CLI calls it per command: still one handler per logger
    logging.getLogger("biohicl.hub.publish").info("uploaded %d files to %s (%s)", 3, "me/tiny", "model")
    captured = capsys.readouterr()
    assert captured.out == "uploaded 3 files to me/tiny (model)\n" and captured.err == ""


def _dora_adapter_folder(folder):
    folder.mkdir()
    (folder / "biohicl_config.json").write_text(json.dumps({"kind": "adapter"}))
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "use_dora": True}))
    (folder / "adapter_model.safetensors").write_bytes(stub_safetensors())
    (folder / "modules.json").write_text("[]")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text("{}")
    return folder


def test_publish_shows_the_dora_files_it_leaves_out(tmp_path, capsys):
    from biohicl.hub.run_sources import model_files

    folder = _dora_adapter_folder(tmp_path / "model")
    show_progress()
    staged = [p.relative_to(folder).as_posix() for p in model_files(folder)]
    assert staged == ["adapter_config.json", "adapter_model.safetensors", "biohicl_config.json"]
    out = capsys.readouterr().out
    assert out == (
        f"{folder}: a DORA adapter, which sentence-transformers does not load as trained: its sentence-transformers "
        "module files (1_Pooling/config.json, modules.json) are not staged (an earlier biohicl wrote them); its "
        "sentence-transformers route is --merge\n"
    )


def test_publish_shows_the_stale_signature_entries_it_drops(tmp_path, capsys):
    from biohicl.hub.run_sources import drop_recorded_peft_weights

    config = {"base_signature": {"weights": {"encoder.layer.0.query.weight": [0.5], "encoder.ia3_l.default": [1.0]}}}
    show_progress()
    assert drop_recorded_peft_weights(config, tmp_path / "run")
    assert config["base_signature"]["weights"] == {"encoder.layer.0.query.weight": [0.5]}
    assert capsys.readouterr().out == (
        f"{tmp_path / 'run'}: saved before biohicl left peft weights out of base signatures: the adapter's own "
        "encoder.ia3_l.default dropped from the staged base_signature (the other recorded weights identify the base)\n"
    )


def test_saving_a_dora_adapter_shows_that_no_sentence_transformers_files_were_written(tmp_path, capsys):
    from biohicl.models.config import BioHiCLConfig
    from biohicl.models.export import write_loading_files

    (tmp_path / "modules.json").write_text("[]")  # an earlier save's
    show_progress()
    write_loading_files(tmp_path, BioHiCLConfig(base_model="a/b"), 8, SimpleNamespace(peft_type="LORA", use_dora=True))
    assert not (tmp_path / "modules.json").exists()
    assert capsys.readouterr().out == (
        f"{tmp_path}: a DORA adapter: no sentence-transformers module files written (SentenceTransformer would not "
        "load it as trained); its sentence-transformers route is the merged export (BioHiCL.save_merged, biohicl "
        "publish --merge)\n"
    )


def test_the_onnx_export_and_its_device_are_shown(tiny_bert_dir, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from biohicl.models.model import BioHiCL
    from biohicl.models.onnx_backend import load_onnx_encoder

    model = BioHiCL.from_base(str(tiny_bert_dir)).eval()
    capsys.readouterr()
    show_progress()
    encoder = load_onnx_encoder(model, cache_dir=tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("exported BertModel to ONNX in ")
    assert lines[0].endswith(f"s: {encoder.path}")
    diff = encoder.verification["max_abs_diff"]
    assert lines[1].startswith(f"ONNX fp32 encoder {encoder.path} on cpu: max |Δ| to torch {diff:.2e}, min cosine ")


def _logger_states() -> dict[str, tuple[int, list[logging.Handler], bool]]:
    return {
        name: (log.level, list(log.handlers), log.propagate)
        for name, log in ((name, logging.getLogger(name)) for name in ("biohicl", *PROGRESS_LOGGERS))
    }


@pytest.fixture
def fake_command(monkeypatch):
    """A ``biohicl fake`` command: logs a training line and a warning, or raises the error its argv names."""
    import sys

    from biohicl.cli import main as cli
    from biohicl.errors import ConfigError

    def run(argv: list[str]) -> int:
        if argv == ["--fail"]:
            raise ConfigError("--fail: asked to")
        logging.getLogger("biohicl.training.trainer").info("LoRA r=8: 512 of 51,200 parameters trainable")
        logging.getLogger("biohicl.hub.publish").warning("no --license given")
        return 0

    module = SimpleNamespace(HELP="a test command", main=run)
    monkeypatch.setitem(sys.modules, "biohicl_fake_command", module)
    monkeypatch.setitem(cli.COMMANDS, "fake", "biohicl_fake_command")
    return cli.main


def test_a_command_leaves_the_library_loggers_as_it_found_them(fake_command, capsys):
    """A notebook's in-process ``main([...])`` switched the library's logging on for the rest of the kernel (levels
    INFO, a console handler each): later library calls printed their INFO lines. The command shows them; afterwards
    each logger has its level, handlers and propagate flag back, and a second call prints what the first did."""
    mine = logging.StreamHandler()
    logging.getLogger("biohicl.training").addHandler(mine)  # a user's own handler stays, and is not doubled
    logging.getLogger("biohicl.hub.publish").setLevel(logging.CRITICAL)  # a user's level comes back
    before = _logger_states()
    for _ in range(2):
        assert fake_command(["fake"]) == 0
        captured = capsys.readouterr()
        assert captured.out == "LoRA r=8: 512 of 51,200 parameters trainable\n"
        assert captured.err == "LoRA r=8: 512 of 51,200 parameters trainable\nno --license given\n"  # mine's, then ours
        assert _logger_states() == before
    assert fake_command(["fake", "--fail"]) == 2  # restored after an error too
    assert capsys.readouterr().err == "biohicl fake: error: --fail: asked to\n"
    assert _logger_states() == before
    logging.getLogger("biohicl.training.trainer").info("after the command")
    assert capsys.readouterr().out == ""  # no console handler left behind


@pytest.mark.parametrize("variable", ["RANK", "LOCAL_RANK"])
def test_a_rank_without_a_launchers_world_size_is_one_process_that_shows_its_lines(
    fake_command, monkeypatch, capsys, variable
):
    """A cluster sets ``RANK``/``LOCAL_RANK`` with no launcher: training runs as one process (world size 1), so the
    command's lines and warnings are its only copy; they were hidden as a rank > 0's, and the ``biohicl`` logger
    was left at ERROR."""
    from biohicl.cli.progress import launched_rank

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv(variable, "2")
    before = _logger_states()
    assert fake_command(["fake"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "LoRA r=8: 512 of 51,200 parameters trainable\n"
    assert captured.err == "no --license given\n"
    assert _logger_states() == before and logging.getLogger("biohicl").level == logging.NOTSET
    assert launched_rank() == 0
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert launched_rank() == 0
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launched_rank() == 2


def test_an_initialized_process_group_gives_the_rank(monkeypatch):
    """A process group that is up (its launcher's variables gone, or read from elsewhere) names the rank; torch is
    not imported to ask (``sys.modules`` holds ``torch.distributed`` only once something imported it)."""
    import sys

    from biohicl.cli.progress import launched_rank

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    group = SimpleNamespace(is_available=lambda: True, is_initialized=lambda: True, get_rank=lambda: 3)
    monkeypatch.setitem(sys.modules, "torch.distributed", group)
    assert launched_rank() == 3
    monkeypatch.setattr(group, "is_initialized", lambda: False)
    assert launched_rank() == 0


def test_a_root_handler_gets_the_commands_lines_too_and_only_its_own_afterwards(fake_command, capsys):
    """What docs/cli.md says of a notebook's ``logging.basicConfig(level=INFO)``: the records still propagate while a
    command runs (its lines twice: bare, and in the root handler's format), and afterwards only the root handler
    prints the library's INFO lines, once."""
    import io

    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[root] %(name)s: %(message)s"))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        assert fake_command(["fake"]) == 0
        assert capsys.readouterr().out == "LoRA r=8: 512 of 51,200 parameters trainable\n"
        logging.getLogger("biohicl.evaluation.runner").info("biosses (all): spearman=0.5")
        assert capsys.readouterr().out == ""
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert stream.getvalue() == (
        "[root] biohicl.training.trainer: LoRA r=8: 512 of 51,200 parameters trainable\n"
        "[root] biohicl.hub.publish: no --license given\n"
        "[root] biohicl.evaluation.runner: biosses (all): spearman=0.5\n"
    )


def test_the_console_shows_the_guessed_pooling_and_a_cut_length(tmp_path, capsys):
    from biohicl.models.config import default_pooling
    from biohicl.models.positions import capped_length

    show_progress()
    assert default_pooling(str(tmp_path / "MedCPT-Article-Encoder")) == "cls"
    assert capped_length(1000, {"model_type": "roberta", "max_position_embeddings": 130, "pad_token_id": 1}, "m") == 128
    captured = capsys.readouterr()
    warned = captured.err.splitlines()  # warnings, as sentence-transformers warns when it guesses: not on stdout
    assert len(warned) == 2 and warned[0].startswith("pooling: ") and "MedCPT-Article-Encoder" in warned[0]
    assert warned[1] == "max length 1000 capped at 128, the most tokens m can encode" and captured.out == ""
    assert default_pooling(str(tmp_path / "MedCPT-Article-Encoder")) == "cls"
    assert capsys.readouterr().err == ""  # once per folder and process


@pytest.fixture
def warning_command(monkeypatch):
    """A command ``warns`` that raises a UserWarning (two lines) and a DeprecationWarning."""
    import sys
    import types
    import warnings

    from biohicl.cli import main as cli_main

    def command(argv):
        warnings.warn("the registry pins no commit\nfor this repo", UserWarning, stacklevel=2)
        warnings.warn("an old option", DeprecationWarning, stacklevel=2)
        return 0

    monkeypatch.setitem(sys.modules, "biohicl_test_warning_command", types.SimpleNamespace(main=command))
    monkeypatch.setitem(cli_main.COMMANDS, "warns", "biohicl_test_warning_command")
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # the console script's setting is undone
    return cli_main.main


def test_the_console_script_shows_a_warning_as_one_line(warning_command, monkeypatch, capsys):
    """Python shows a warning as two lines pointing into the installed ``biohicl`` script; the script shows one."""
    import sys
    import warnings

    monkeypatch.setattr(sys, "argv", ["biohicl", "warns"])
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert warning_command() == 0
    assert (
        capsys.readouterr().err
        == "warning: the registry pins no commit | for this repo\nDeprecationWarning: an old option\n"
    )


def test_an_in_process_command_leaves_warnings_to_the_caller(warning_command, capsys):
    """A notebook or a test that calls ``main([...])`` records its warnings and keeps its filters (the libraries'
    own, registered on import, included)."""
    import warnings

    before = list(warnings.filters)
    with pytest.warns(UserWarning, match="pins no commit"):
        assert warning_command(["warns"]) == 0
    assert warnings.filters == before and capsys.readouterr().err == ""

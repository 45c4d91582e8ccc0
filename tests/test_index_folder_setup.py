"""The index folder's preparation (:mod:`biohicl.search.folder_setup`) removes only the temporaries of writers
that are gone: a live writer's temporary (another ``biohicl index`` into the same folder) is left alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from biohicl.errors import ConfigError
from biohicl.search.folder_setup import prepare_folder, undo_fresh_start
from biohicl.search.layout import rerun_hint


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _settings() -> dict:
    return {"model": "tiny", "shard_size": 5}


def test_a_rerun_keeps_a_live_writers_temporaries_and_removes_dead_ones(tmp_path):
    directory = tmp_path / "idx"
    prepare_folder(directory, _settings(), resume=True, default_compute="float32")
    live = directory / f".shard-00014.safetensors.{os.getpid()}-x.tmp"
    dead_pid = _dead_pid()
    dead = directory / f".shard-00014.safetensors.{dead_pid}-y.tmp"
    dead_sidecar = directory / f".shard-00003.docs.jsonl.{dead_pid}-z.tmp"
    legacy_dead = directory / f".shard-00002.safetensors.tmp-{dead_pid}"  # biohicl <= 0.1.0's form
    legacy_live = directory / f".shard-00005.safetensors.tmp-{os.getpid()}"
    pidless = directory / ".shard-00001.safetensors.k2x_9abc.tmp"  # biohicl 0.1.0: no pid, never a live writer now
    for path in (live, dead, dead_sidecar, legacy_dead, legacy_live, pidless):
        path.write_bytes(b"partial")

    fresh, created = prepare_folder(directory, _settings(), resume=True, default_compute="float32")

    assert (fresh, created) == (False, False)
    assert live.read_bytes() == b"partial"
    assert legacy_live.read_bytes() == b"partial"
    left = sorted(p.name for p in directory.iterdir())
    assert left == sorted(["settings.json", live.name, legacy_live.name])


def test_undoing_a_fresh_start_keeps_a_live_writers_temporary(tmp_path):
    directory = tmp_path / "idx"
    fresh, created = prepare_folder(directory, _settings(), resume=True, default_compute="float32")
    live = directory / f".shard-00000.docs.jsonl.{os.getpid()}-x.tmp"
    dead = directory / f".shard-00000.docs.jsonl.{_dead_pid()}-y.tmp"
    live.write_bytes(b"partial")
    dead.write_bytes(b"partial")

    undo_fresh_start(directory, created)

    assert (fresh, created) == (True, True)
    assert sorted(p.name for p in directory.iterdir()) == [live.name]  # the folder stays: a writer is in it


def _encoder_settings(backend: str, quantize: str | None, probe: list[list[float]]) -> dict:
    return {"model": "tiny", "shard_size": 5, "backend": backend, "quantize": quantize, "probe": probe}


#: an encoder's probe rows, and the same weights' rows through int8 ONNX (cosine 0.9926 to them: within the int8
#: tolerance, 0.98, below the fp32 one, 0.999) and another model's (cosine 0.6)
_PROBE = [[1.0, 0.0], [0.0, 1.0]]
_INT8_PROBE = [[0.9926, (1 - 0.9926**2) ** 0.5], [0.0, 1.0]]
_OTHER_PROBE = [[0.6, 0.8], [0.0, 1.0]]


def test_a_rerun_without_the_int8_onnx_options_is_told_to_repeat_them_not_that_the_weights_differ(tmp_path):
    directory = tmp_path / "idx"
    prepare_folder(directory, _encoder_settings("onnx", "int8", _INT8_PROBE), resume=True, default_compute="float32")
    with pytest.raises(ConfigError) as refused:  # the compress command without the build's encoder options
        prepare_folder(directory, _encoder_settings("torch", None, _PROBE), resume=True, default_compute="float32")
    assert str(refused.value) == (
        f"{directory}: built with other settings (backend: 'onnx' → 'torch', quantize: 'int8' → None); "
        "rerun with --backend onnx --quantize int8, or use a new output folder"
    )
    again = _encoder_settings("onnx", "int8", _INT8_PROBE)
    assert prepare_folder(directory, again, resume=True, default_compute="float32") == (False, False)


def test_a_fp32_index_rerun_with_int8_is_a_settings_change_and_other_weights_still_are_named(tmp_path):
    directory = tmp_path / "idx"
    prepare_folder(directory, _encoder_settings("onnx", None, _PROBE), resume=True, default_compute="float32")
    with pytest.raises(ConfigError) as refused:
        prepare_folder(
            directory, _encoder_settings("onnx", "int8", _INT8_PROBE), resume=True, default_compute="float32"
        )
    assert str(refused.value) == (
        f"{directory}: built with other settings (quantize: None → 'int8'); rerun without --quantize, or use a new "
        "output folder"
    )
    for backend, quantize in (("onnx", "int8"), ("torch", None)):  # other weights: below either tolerance
        with pytest.raises(ConfigError) as refused:
            settings = _encoder_settings(backend, quantize, _OTHER_PROBE)
            prepare_folder(directory, settings, resume=True, default_compute="float32")
        assert str(refused.value) == (
            f"{directory}: built with other weights (probe cosine 0.6000); use a new output folder"
        )


def test_an_int8_index_rerun_with_int8_rows_of_other_weights_is_refused_at_the_fp32_tolerance(tmp_path):
    # the same weights quantised the same way give the same int8 rows: the int8 tolerance (0.98) is for fp32 vs
    # int8 only; a model folder retrained in place (probe cosine 0.9878) must not resume the index
    directory = tmp_path / "idx"
    prepare_folder(directory, _encoder_settings("onnx", "int8", _PROBE), resume=True, default_compute="float32")
    retrained = [[0.9878, (1 - 0.9878**2) ** 0.5], [0.0, 1.0]]
    with pytest.raises(ConfigError) as refused:
        settings = _encoder_settings("onnx", "int8", retrained)
        prepare_folder(directory, settings, resume=True, default_compute="float32")
    assert str(refused.value) == f"{directory}: built with other weights (probe cosine 0.9878); use a new output folder"
    same = _encoder_settings("onnx", "int8", _PROBE)
    assert prepare_folder(directory, same, resume=True, default_compute="float32") == (False, False)


def test_the_rerun_hint_names_the_options_to_repeat_and_those_to_leave_out():
    recorded = {"dtype": "float16", "backend": "onnx", "quantize": None, "shard_size": 5}
    assert rerun_hint(recorded, ["dtype", "quantize"]) == "rerun with --dtype float16 and without --quantize, or "
    assert rerun_hint(recorded, ["quantize"]) == "rerun without --quantize, or "
    assert rerun_hint(recorded, ["quantize", "model"]) == ""  # another model: no option brings it back

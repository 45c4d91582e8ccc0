"""The index folder's preparation (:mod:`biohicl.search.folder_setup`) removes only the temporaries of writers
that are gone: a live writer's temporary (another ``biohicl index`` into the same folder) is left alone."""

from __future__ import annotations

import os
import subprocess
import sys

from biohicl.search.folder_setup import prepare_folder, undo_fresh_start


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

"""An index folder from elsewhere (a downloaded index) is data an attacker may control: its settings, manifest and
shard headers are checked, and what they say never becomes a shell command, a traceback or an unbounded read."""

from __future__ import annotations

import json
import os
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from biohicl.errors import DataError
from biohicl.search.compressed import CompressedIndex, rebuild_command
from biohicl.search.compression import compress_index
from biohicl.search.float_rows import FloatRows, mmap_shard
from biohicl.search.layout import SETTINGS_NAME, IndexManifest, rerun_hint, shard_name
from tests.test_compressed_index import write_index

INJECTED = "5; touch pwned #"


@pytest.fixture
def index_dir(tmp_path):
    """A 12-row, 3-shard float32 index of unit rows with its int8 form and a settings.json."""
    directory = tmp_path / "idx"
    rows = torch.nn.functional.normalize(torch.arange(12 * 8, dtype=torch.float32).reshape(12, 8) % 7 - 3, dim=-1)
    write_index(directory, rows, shard_size=5)
    compress_index(directory, "int8", calibration_rows=12)
    settings = {"dtype": "float32", "compute_dtype": "float32", "backend": "torch", "quantize": None}
    (directory / SETTINGS_NAME).write_text(json.dumps({**settings, "shard_size": 5}))
    return directory


def _no_separator(command: str) -> None:
    """The command a user is invited to paste is one simple command: no word of it is a shell separator."""
    words = shlex.split(command)
    assert not any(w in {";", "&&", "||", "|", "#"} or w.startswith("#") for w in words), words


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("shard_size", INJECTED),
        ("shard_size", 0),
        ("shard_size", True),
        ("dtype", "float32; touch pwned"),
        ("compute_dtype", "$(touch pwned)"),
        ("backend", "onnx && touch pwned"),
        ("quantize", "int8 | sh"),
    ],
)
def test_crafted_settings_values_are_refused_before_they_reach_a_suggested_command(index_dir, field, value):
    """settings.json's `"shard_size": "5; touch pwned #"` made the suggested rebuild command run `touch`."""
    path = index_dir / SETTINGS_NAME
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    (index_dir / "compressed-int8.json").unlink()
    manifest = IndexManifest.load(index_dir)
    with pytest.raises(DataError, match=rf"settings\.json.*{field}") as refused:
        rebuild_command(manifest, index_dir, "int8")
    assert "\n" not in str(refused.value)
    with pytest.raises(DataError, match=rf"settings\.json.*{field}"):
        CompressedIndex.load(index_dir, "int8")
    recorded = json.loads(path.read_text())
    with pytest.raises(DataError, match=rf"settings\.json.*{field}"):
        rerun_hint(recorded, [field], path)


def test_suggested_commands_quote_every_recorded_value(index_dir):
    """Valid recorded values are quoted anyway: the command splits into the words it names."""
    path = index_dir / SETTINGS_NAME
    path.write_text(json.dumps({**json.loads(path.read_text()), "shard_size": 7, "dtype": "bfloat16"}))
    command = rebuild_command(IndexManifest.load(index_dir), index_dir, "int8").strip("`")
    _no_separator(command)
    tail = ["--shard_size", "7", "--dtype", "bfloat16", "--compute_dtype", "float32", "--compress", "int8"]
    assert shlex.split(command)[-8:] == tail
    hint = rerun_hint({"shard_size": 7, "backend": "onnx", "quantize": "int8"}, ["backend", "quantize"], path)
    assert hint == "rerun with --backend onnx --quantize int8, or "


def test_a_resume_over_crafted_settings_is_one_line_naming_the_field(tiny_bert_dir, tmp_path, capsys):
    """`biohicl index` over a folder whose settings.json holds a crafted shard size: the refusal used to suggest
    `rerun with --shard_size 5; touch pwned #`; now it names settings.json and the field, and suggests nothing."""
    from biohicl.cli.main import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"cells {i}"}) + "\n" for i in range(6)))
    out = tmp_path / "idx"
    built = ["index", str(corpus), "--model", str(tiny_bert_dir), "--output", str(out), "--no_progress"]
    assert main([*built, "--shard_size", "5", "--device", "cpu"]) == 0
    settings = out / SETTINGS_NAME
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "shard_size": INJECTED}))
    capsys.readouterr()
    assert main([*built, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "settings.json: shard_size: not a value" in err and "rerun with" not in err and "\n" not in err


def craft_shard(path: Path, case: str) -> None:
    """Rewrite a shard's safetensors header as a downloaded index could (the review's crafted cases)."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header, data = json.loads(raw[8 : 8 + length]), raw[8 + length :]
    entry = header["embeddings"]
    n = entry["data_offsets"][1]
    crafted = {
        "neg_begin": {"data_offsets": [-64, n - 64]},
        "begin_after_end": {"data_offsets": [n, 0]},
        "float_off": {"data_offsets": [0.0, float(n)]},
        "inf_off": {"data_offsets": [float("inf"), float("inf")]},
        "bool_off": {"data_offsets": [False, n]},
        "bigint_off": {"data_offsets": [10**30, 10**30 + n]},
        "past_end": {"data_offsets": [n, 2 * n]},
        "float_shape": {"shape": [entry["shape"][0] + 0.5, entry["shape"][1]]},
        "neg_shape": {"shape": [-entry["shape"][0], -entry["shape"][1]]},
        "wrap_shape": {"shape": [2**62, entry["shape"][1]], "data_offsets": [0, 0]},
    }.get(case, {})
    body = json.dumps({**header, "embeddings": {**entry, **crafted}}).encode()
    if case == "deep":
        body = b"[" * 100_000 + b"]" * 100_000
    length = {"huge_hlen": 2**62, "hlen_2_63": 2**63, "hlen_2_64": 2**64 - 1}.get(case, len(body))
    path.write_bytes(struct.pack("<Q", length) + body + data)


def _refused(index_dir: Path, case: str, match: str) -> None:
    """Shard 0 crafted as ``case``: reading its rows (pread) and mapping it are one-line DataErrors naming it."""
    path = index_dir / shard_name(0)
    craft_shard(path, case)
    rows = FloatRows(IndexManifest.load(index_dir), index_dir)
    for read in (lambda: rows.take(np.arange(5)), lambda: mmap_shard(path)):
        with pytest.raises(DataError, match=match) as refused:
            read()
        assert str(path) in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("case", ["neg_begin", "begin_after_end"])
def test_data_offsets_before_the_data_or_reversed_are_refused(index_dir, case):
    """A negative begin made compressed rescoring read header bytes as rows (scores like -3.89e36)."""
    _refused(index_dir, case, "data_offsets")
    with pytest.raises(DataError, match="data_offsets"):
        CompressedIndex.load(index_dir, "int8").search_embeddings(torch.ones(8), top_k=12)


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("float_off", "data_offsets"),  # TypeError in os.preadv
        ("inf_off", "data_offsets"),
        ("bool_off", "data_offsets"),
        ("bigint_off", "shorter than its header says"),  # OverflowError
        ("past_end", "shorter than its header says"),
        ("float_shape", "shape"),
        ("neg_shape", "shape"),
        ("wrap_shape", "data size"),  # 2**62 rows × 32 bytes wrapped to 0 in int64
        ("deep", "nested too deeply"),  # RecursionError
        ("huge_hlen", "header length"),  # MemoryError: 4 EiB read before the file size was compared
        ("hlen_2_63", "header length"),  # OverflowError
        ("hlen_2_64", "header length"),
    ],
)
def test_crafted_shard_headers_are_one_line_errors_naming_the_shard(index_dir, case, match):
    """Each used to be a traceback (TypeError, RecursionError, OverflowError, MemoryError) or a bogus read."""
    _refused(index_dir, case, match)


def _edit_json(path: Path, edit) -> None:
    values = json.loads(path.read_text())
    edit(values)
    path.write_text(json.dumps(values))


def test_a_manifest_count_other_than_its_shards_sum_is_refused_before_allocating(index_dir):
    """`count: 10**13` in manifest.json and compressed-int8.json made compressed loading allocate 291 TiB."""

    def huge(values):
        values["count"] = 10**13

    _edit_json(index_dir / "manifest.json", huge)
    _edit_json(index_dir / "compressed-int8.json", huge)
    for load in (IndexManifest.load, lambda d: CompressedIndex.load(d, "int8")):
        with pytest.raises(
            DataError, match=r"manifest\.json: count: 10000000000000 is not the sum of the shards' counts \(12\)"
        ):
            load(index_dir)


def test_shard_counts_the_manifest_sums_to_are_checked_against_the_compressed_files_before_allocating(index_dir):
    """A consistent but huge manifest (one shard of 10**13 rows) is refused by the compressed files' own shapes."""

    def huge(values):
        values["shards"][2]["count"] = 10**13
        values["count"] = 10 + 10**13

    _edit_json(index_dir / "manifest.json", huge)
    _edit_json(index_dir / "compressed-int8.json", huge)
    with pytest.raises(DataError, match=r"shard-00002\.int8\.npy: corrupt compressed shard"):
        CompressedIndex.load(index_dir, "int8")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("start", 3, r"shards\[1\]\.start: 3, expected 5"),
        ("file", "/etc/passwd", r"shards\[1\]\.file: not a file name"),
        ("file", "../idx/shard-00001.safetensors", r"shards\[1\]\.file: not a file name"),
        ("docs", "sub/shard-00001.docs.jsonl", r"shards\[1\]\.docs: not a file name"),
        ("docs", "..", r"shards\[1\]\.docs: not a file name"),
        ("docs", "C:\\shard.docs.jsonl", r"shards\[1\]\.docs: not a file name"),
        ("file", "", r"shards\[1\]\.file: not a file name"),
    ],
)
def test_shard_entries_name_files_of_the_folder_at_their_rows(index_dir, field, value, match):
    """A shard's file may not lie outside the index folder (`directory / "/etc/x"` is /etc/x)."""
    _edit_json(index_dir / "manifest.json", lambda values: values["shards"][1].update({field: value}))
    with pytest.raises(DataError, match=r"manifest\.json: " + match) as refused:
        IndexManifest.load(index_dir)
    assert "\n" not in str(refused.value)


def test_a_compressed_record_names_files_of_the_folder(index_dir):
    _edit_json(index_dir / "compressed-int8.json", lambda values: values["shards"][0].update(file="/etc/passwd"))
    with pytest.raises(DataError, match=r"compressed-int8\.json: shards\[0\]: not a JSON object with a `file`"):
        CompressedIndex.load(index_dir, "int8")


FIFO_SCRIPT = """
import json, sys, threading
from biohicl.models import BioHiCL
from biohicl.search.indexing import build_index

model_dir, fifo, out = sys.argv[1:]
lines = "".join(json.dumps({"_id": i, "text": f"cells {n}"}) + "\\n" for n, i in enumerate(["a", "b", "a"]))


def write():  # one writer, as `cat corpus.jsonl > fifo` or a process substitution: the pipe is read once
    with open(fifo, "w") as handle:
        handle.write(lines)


threading.Thread(target=write, daemon=True).start()
build_index(BioHiCL.from_base(model_dir), fifo, out, shard_size=2, show_progress_bar=False)
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_corpus_with_a_repeated_id_fails_instead_of_waiting_forever(tiny_bert_dir, tmp_path):
    """The repeat of `a` in the second shard hits a digest, and confirming it reopened the pipe, which no one
    writes to again: `biohicl index` waited forever. A pipe is read once, its ids kept as for a generator."""
    fifo = tmp_path / "corpus.jsonl"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-c", FIFO_SCRIPT, str(tiny_bert_dir), str(fifo), str(tmp_path / "idx")]
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("indexing a named pipe with a repeated id did not finish in 120 s")
    assert proc.returncode == 1
    assert "corpus.jsonl: line 3: duplicate document id 'a' (first at line 1)" in proc.stderr.splitlines()[-1]

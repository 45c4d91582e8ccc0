"""Distributed indexing: the shard-strided split across ranks and rank 0's manifest merge.

One test runs two ranks as threads with a barrier-backed stand-in for ``accelerate.PartialState`` (fast, checks
the split/merge logic and a mid-run resume); one runs the real thing, two processes under ``torchrun``
(gloo; what ``accelerate launch --multi_gpu`` runs underneath), and compares the index with a single-process build.
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

from biohicl.errors import DataError
from biohicl.models.model import BioHiCL
from biohicl.search.index import load_index
from biohicl.search.indexing import build_index, merge_rank_manifests
from biohicl.search.layout import IndexManifest
from tests.conftest import run_torchrun

DOCS = [(f"d{i}", "the cancer cells of the heart " * (1 + i % 3) + str(i)) for i in range(23)]


class ThreadState:
    """What build_index uses of ``accelerate.PartialState``, for ranks run as threads."""

    def __init__(self, rank: int, world: int, barrier: threading.Barrier):
        self.process_index, self.num_processes = rank, world
        self.is_main_process = rank == 0
        self.device = torch.device("cpu")
        self._barrier = barrier

    def wait_for_everyone(self) -> None:
        self._barrier.wait(timeout=120)


def run_ranks(models, output: Path, world: int, **kwargs) -> list:
    barrier = threading.Barrier(world)
    results: list = [None] * world
    errors: list = []

    def work(rank: int) -> None:
        try:
            state = ThreadState(rank, world, barrier)
            results[rank] = build_index(models[rank], DOCS, output, state=state, show_progress_bar=False, **kwargs)
        except BaseException as err:  # surfaced in the main thread
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(rank,)) for rank in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture(scope="module")
def models(tiny_bert_dir):
    # one model per rank: a fast tokenizer must not be shared between threads
    return [BioHiCL.from_base(str(tiny_bert_dir)) for _ in range(3)]


def test_shard_strided_split_and_merge(models, tmp_path):
    single = build_index(models[0], DOCS, tmp_path / "single", shard_size=4, show_progress_bar=False)
    results = run_ranks(models, tmp_path / "three", world=3, shard_size=4)
    manifest = results[0]
    assert all(r == manifest for r in results)  # every rank returns the merged manifest
    assert manifest.world_size == 3 and manifest.count == 23
    assert [(s.number, s.rank, s.start, s.count) for s in manifest.shards] == [
        (0, 0, 0, 4),
        (1, 1, 4, 4),
        (2, 2, 8, 4),
        (3, 0, 12, 4),
        (4, 1, 16, 4),
        (5, 2, 20, 3),
    ]
    assert [s.ids_sha256 for s in manifest.shards] == [s.ids_sha256 for s in single.shards]
    assert not list((tmp_path / "three").glob("rank-*.json"))  # merged, then removed
    torch.testing.assert_close(
        load_index(tmp_path / "three").embeddings(), load_index(tmp_path / "single").embeddings(), atol=1e-6, rtol=0
    )


def test_resume_with_another_world_size(models, tmp_path):
    """Shards are numbered globally, so a 2-process run resumes what a 1-process run started (and vice versa)."""

    def killed_at_10():
        for i, doc in enumerate(DOCS):
            if i == 10:
                raise RuntimeError("killed")
            yield doc

    with pytest.raises(RuntimeError, match="killed"):
        build_index(models[0], killed_at_10(), tmp_path / "idx", 4, show_progress_bar=False)
    first = sorted(p.name for p in (tmp_path / "idx").glob("shard-*.safetensors"))
    assert first == ["shard-00000.safetensors", "shard-00001.safetensors"]
    manifest = run_ranks(models, tmp_path / "idx", world=2, shard_size=4)[0]
    assert [s.rank for s in manifest.shards] == [0, 1, 0, 1, 0, 1] and manifest.count == 23


MERGE_SETTINGS = {"model": "m", "model_revision": None, "dtype": "float32", "dim": 4, "shard_size": 2}
MERGE_SETTINGS |= {"normalized": True, "pooling": "mean", "max_length": 8, "query_prompt": "", "document_prompt": ""}
MERGE_SETTINGS |= {"base_model": "m", "base_revision": None}
SHARD = {"file": "f", "docs": "d", "start": 0, "count": 2, "ids_sha256": "x"}


def test_merge_detects_missing_rank_and_shards(tmp_path):
    settings, shard = MERGE_SETTINGS, SHARD
    rank0 = {"total_shards": 3, "has_titles": False, "has_mesh": False, "shards": [{**shard, "number": 0, "rank": 0}]}
    (tmp_path / "rank-00000.json").write_text(json.dumps(rank0))
    with pytest.raises(DataError, match="rank 1 did not finish"):
        merge_rank_manifests(tmp_path, 2, settings)
    rank1 = {**rank0, "shards": [{**shard, "number": 1, "rank": 1}]}
    (tmp_path / "rank-00001.json").write_text(json.dumps(rank1))
    with pytest.raises(DataError, match=r"shards missing after the merge: \[2\]"):
        merge_rank_manifests(tmp_path, 2, settings)
    (tmp_path / "rank-00001.json").write_text(json.dumps({**rank1, "total_shards": 2}))
    with pytest.raises(DataError, match="ranks saw different corpora"):
        merge_rank_manifests(tmp_path, 2, settings)
    rank0["total_shards"] = 2
    (tmp_path / "rank-00000.json").write_text(json.dumps(rank0))
    merged = merge_rank_manifests(tmp_path, 2, settings)
    assert [(s.number, s.start) for s in merged.shards] == [(0, 0), (1, 2)] and merged.count == 4


def _two_ranks(tmp_path: Path) -> tuple[Path, dict]:
    """rank-00000.json of a 2-shard, 2-rank index written; rank 1's part returned for the test to write."""
    part = {"total_shards": 2, "has_titles": False, "has_mesh": False, "skipped_blank": 0}
    (tmp_path / "rank-00000.json").write_text(json.dumps({**part, "shards": [{**SHARD, "number": 0, "rank": 0}]}))
    return tmp_path / "rank-00001.json", {**part, "shards": [{**SHARD, "number": 1, "rank": 1}]}


def merge_error(tmp_path: Path) -> str:
    with pytest.raises(DataError) as caught:
        merge_rank_manifests(tmp_path, 2, MERGE_SETTINGS)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_merge_refuses_a_truncated_rank_file_in_one_line(tmp_path):
    path, rank1 = _two_ranks(tmp_path)
    path.write_text(json.dumps(rank1)[:40])  # a killed writer or a bad copy: cut mid-object
    assert merge_error(tmp_path).startswith(f"{path}: line 1: not valid JSON (")
    assert not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["shards"][0].pop("count"), "shards[0]: missing field(s) count"),
        (lambda p: p["shards"][0].update(count="2"), "shards[0].count: expected a non-negative integer, got '2'"),
        (lambda p: p["shards"][0].update(ids_sha256=None), "shards[0].ids_sha256: expected a string, got None"),
        (lambda p: p["shards"].append([1]), "shards[1]: not a JSON object"),
        (lambda p: p.pop("total_shards"), "total_shards: missing"),
        (lambda p: p.update(total_shards=-1), "total_shards: expected a non-negative integer, got -1"),
        (lambda p: p.update(shards={"0": {}}), "shards: expected a list, got a dict"),
        (lambda p: p.update(has_mesh="no"), "has_mesh: expected true or false, got 'no'"),
        (lambda p: p.update(skipped_blank=1.5), "skipped_blank: expected a non-negative integer, got 1.5"),
    ],
)
def test_merge_refuses_a_rank_file_field_in_one_line(tmp_path, change, message):
    path, rank1 = _two_ranks(tmp_path)
    change(rank1)
    path.write_text(json.dumps(rank1))
    assert merge_error(tmp_path) == f"{path}: {message}"


def test_merge_refuses_a_rank_file_that_is_not_an_object_or_lists_a_shard_twice(tmp_path):
    path, rank1 = _two_ranks(tmp_path)
    path.write_text("[]")
    assert merge_error(tmp_path) == f"{path}: not a JSON object (a list)"
    rank1["shards"][0]["number"] = 0
    path.write_text(json.dumps(rank1))
    assert merge_error(tmp_path) == f"{tmp_path}: shard 0 listed twice (rank-00000.json, rank-00001.json)"


LAUNCHED = textwrap.dedent(
    """
    import json, sys
    from biohicl.search.indexing import build_index, distributed_state
    from biohicl.models.model import BioHiCL
    from biohicl.cli.main import end_distributed

    model_dir, out = sys.argv[1], sys.argv[2]
    docs = [(f"d{i}", "the cancer cells of the heart " * (1 + i % 3) + str(i)) for i in range(23)]
    state = distributed_state()  # accelerate.PartialState (gloo on a machine without GPUs)
    manifest = build_index(BioHiCL.from_base(model_dir), docs, out, shard_size=4, show_progress_bar=False)
    report = {"rank": state.process_index, "world": state.num_processes, "count": manifest.count}
    # one file per rank: two processes printing to one pipe can interleave their lines
    with open(f"{out}.report-{state.process_index}.json", "w") as handle:
        json.dump(report, handle)
    end_distributed()  # what `biohicl index` does after its command: barrier, then tear the process group down
    """
)


def test_two_launched_cpu_processes(models, tiny_bert_dir, tmp_path):
    script = tmp_path / "launched.py"
    script.write_text(LAUNCHED)
    proc = run_torchrun([str(script), str(tiny_bert_dir), str(tmp_path / "idx")], timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((tmp_path / f"idx.report-{rank}.json").read_text()) for rank in (0, 1)]
    assert reports == [{"rank": 0, "world": 2, "count": 23}, {"rank": 1, "world": 2, "count": 23}]
    manifest = IndexManifest.load(tmp_path / "idx")
    assert manifest.world_size == 2 and [s.rank for s in manifest.shards] == [0, 1, 0, 1, 0, 1]
    single = build_index(models[0], DOCS, tmp_path / "single", shard_size=4, show_progress_bar=False)
    assert [s.ids_sha256 for s in manifest.shards] == [s.ids_sha256 for s in single.shards]
    torch.testing.assert_close(
        load_index(tmp_path / "idx").embeddings(), load_index(tmp_path / "single").embeddings(), atol=1e-6, rtol=0
    )


def test_compress_after_a_distributed_build_equals_a_single_process_one(models, tmp_path):
    from biohicl.search.compressed import CompressedIndex

    build_index(models[0], DOCS, tmp_path / "single", shard_size=4, show_progress_bar=False, compress="int8,binary")
    run_ranks(models, tmp_path / "three", world=3, shard_size=4, compress="int8,binary")
    for kind in ("int8", "binary"):
        one, three = (CompressedIndex.load(tmp_path / name, kind, verify=True) for name in ("single", "three"))
        assert one.codes.shape[0] == 23 and torch.equal(one.codes, three.codes)


def test_the_dispatcher_ends_the_process_group_a_command_ran_in(monkeypatch, tmp_path):
    """After a command returns, ``biohicl`` tears its process group down (a gloo rank can abort at exit otherwise)."""
    import types

    import torch.distributed as dist

    from biohicl.cli import main as cli

    seen = []
    command = types.ModuleType("biohicl_test_command")
    command.HELP = "records whether a process group is up while it runs"
    command.main = lambda argv: seen.append(dist.is_initialized()) or 0
    monkeypatch.setitem(sys.modules, command.__name__, command)
    monkeypatch.setitem(cli.COMMANDS, "probe", command.__name__)
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        assert cli.main(["probe"]) == 0
        assert seen == [True] and not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert cli.main(["probe"]) == 0 and seen == [True, False]  # outside a distributed run: nothing to tear down

"""Faults: SIGKILL while building the dataset and while indexing, then a rerun gives exactly what an uninterrupted
run gives; a kill inside an atomic write leaves the previous file. (Training: tests/test_trainer.py's
``test_sigkill_then_resume_matches_an_uninterrupted_run``; a kill at a shard's rename: tests/test_indexing.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from biohicl.data.build import build_dataset_from_files

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
NAMES = [["Diabetes Mellitus, Type 2", "Humans"], ["Diabetes Mellitus", "Humans"], ["Heart Diseases"],
         ["Brain Neoplasms", "Humans"], ["Insulin Resistance"], ["Myocardial Infarction", "Male"]]  # fmt: skip


def write_bioasq(path: Path, n: int = 40) -> Path:
    articles = [{"pmid": str(500 + i), "title": f"Title {i}", "abstractText": f"Abstract {i}.",
                 "meshMajor": NAMES[i % len(NAMES)]} for i in range(n)]  # fmt: skip
    path.write_text(json.dumps({"articles": articles}), encoding="utf-8")
    return path


BUILD_AND_DIE = textwrap.dedent(
    """
    import os, pathlib, signal, sys
    from biohicl.data.build import build_dataset_from_files

    inp, out, where, top_k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if where == "writing":  # mid-save: parquet written to the temporary folder, the card not yet
        real = pathlib.Path.write_text
        def write_text(self, *args, **kwargs):
            if self.name == "README.md":
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, *args, **kwargs)
        pathlib.Path.write_text = write_text
    else:  # "swapping": between moving the previous build aside and moving the new one in
        real = pathlib.Path.rename
        def rename(self, target):
            if ".tmp-" in self.name:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, target)
        pathlib.Path.rename = rename
    build_dataset_from_files([("bioasq", [inp])], out, top_k=top_k, progress=False, arrow=False)
    """
)


def build_and_die(inp: Path, out: Path, where: str, top_k: int = 3) -> None:
    proc = subprocess.run([sys.executable, "-c", BUILD_AND_DIE, str(inp), str(out), where, str(top_k)], env=ENV,
                          capture_output=True, timeout=300)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]


def tables(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    summary.pop("seconds")
    return {
        "documents": pq.read_table(folder / "documents" / "documents-00000.parquet").to_pylist(),
        "pairs": pq.read_table(folder / "pairs" / "pairs-00000.parquet").to_pylist(),
        "summary": summary,
        "files": sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()),
    }


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sigkill_while_building_the_dataset_then_rerun(tmp_path):
    from biohicl.data.storage import recover_interrupted_save

    inp = write_bioasq(tmp_path / "allMeSH.json")
    build_dataset_from_files([("bioasq", [inp])], tmp_path / "reference", top_k=3, progress=False, arrow=False)
    reference = tables(tmp_path / "reference")

    out = tmp_path / "out"
    build_and_die(inp, out, "writing")  # first build killed mid-save: nothing at out that could look complete
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")]  # the torn temporary folder

    build_dataset_from_files([("bioasq", [inp])], out, top_k=2, progress=False, arrow=False)  # a previous build
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # the torn folder was cleaned up
    before = snapshot(out)
    build_and_die(inp, out, "swapping", top_k=3)  # killed in the swap's window, between the two renames
    assert not out.exists()
    (old,) = [p for p in tmp_path.iterdir() if p.name.startswith(".out.old-")]
    assert snapshot(old) == before  # the previous build is whole, beside its place

    recover_interrupted_save(out)  # the first thing the next build does
    assert snapshot(out) == before
    build_dataset_from_files([("bioasq", [inp])], out, top_k=3, progress=False, arrow=False)  # rerun
    assert tables(out) == reference
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


INDEX_SLOWLY = textwrap.dedent(
    """
    import sys, time
    from biohicl.search import indexing
    from biohicl.models.model import BioHiCL

    model_dir, corpus, out = sys.argv[1:4]
    model = BioHiCL.from_base(model_dir)
    encode = model.encode
    def slow(*args, **kwargs):  # ~0.3 s per shard, so the parent's SIGKILL lands mid-run
        time.sleep(0.3)
        return encode(*args, **kwargs)
    model.encode = slow
    print("ready", flush=True)
    indexing.build_index(model, corpus, out, shard_size=5, show_progress_bar=False)
    """
)


def test_external_sigkill_while_indexing_then_rerun(tiny_bert_dir, tmp_path):
    from safetensors.torch import load_file

    from biohicl.models.model import BioHiCL
    from biohicl.search.indexing import build_index

    corpus = tmp_path / "corpus.jsonl"
    docs = [{"_id": f"d{i}", "title": f"T{i}", "text": "the cancer cells " * (1 + i % 4)} for i in range(60)]
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    out = tmp_path / "index"
    proc = subprocess.Popen([sys.executable, "-c", INDEX_SLOWLY, str(tiny_bert_dir), str(corpus), str(out)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while len(list(out.glob("shard-*.safetensors"))) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "indexing never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = sorted(p.name for p in out.glob("shard-*.safetensors"))
    assert 3 <= len(done) < 12 and not (out / "manifest.json").exists()
    for name in done:  # every shard on disk is complete (atomic rename), whatever the moment of the kill
        assert load_file(str(out / name))["embeddings"].shape[0] == 5

    model = BioHiCL.from_base(str(tiny_bert_dir))
    resumed = build_index(model, corpus, out, shard_size=5, show_progress_bar=False)
    fresh = build_index(model, corpus, tmp_path / "fresh", shard_size=5, show_progress_bar=False)
    assert resumed.count == fresh.count == 60
    assert [s.ids_sha256 for s in resumed.shards] == [s.ids_sha256 for s in fresh.shards]
    for shard in fresh.shards:
        a, b = load_file(str(out / shard.file)), load_file(str(tmp_path / "fresh" / shard.file))
        assert (a["embeddings"] == b["embeddings"]).all(), shard.file
        assert (out / shard.docs).read_bytes() == (tmp_path / "fresh" / shard.docs).read_bytes()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


ATOMIC_AND_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from biohicl.atomic import atomic_path

    with atomic_path(sys.argv[1]) as tmp:
        with open(tmp, "w") as handle:
            handle.write("half of the new con")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("previous", [None, '{"complete": true}\\n'])
def test_sigkill_inside_an_atomic_write(tmp_path, previous):
    target = tmp_path / "results.json"
    if previous is not None:
        target.write_text(previous)
    proc = subprocess.run([sys.executable, "-c", ATOMIC_AND_DIE, str(target)], env=ENV, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    if previous is None:
        assert not target.exists()
    else:
        assert target.read_text() == previous
    (leftover,) = [p for p in tmp_path.iterdir() if p.name.startswith(".results.json.")]
    assert leftover.suffix == ".tmp"  # never mistaken for the output: hidden, and not named like it
    from biohicl.atomic import atomic_write_text

    atomic_write_text(target, "{}")  # the next write of the same output sweeps the killed writer's temporary
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_project_folder_with_a_readme_and_documents_is_not_taken_for_a_previous_build(tmp_path):
    # a README.md and a documents/ folder made any folder a "previous build", replaced whole with the user's files
    from biohicl.errors import ConfigError

    inp = write_bioasq(tmp_path / "in.json")
    project = tmp_path / "project"
    (project / "documents").mkdir(parents=True)
    (project / "README.md").write_text("# my project\n")
    (project / "documents" / "notes.txt").write_text("important\n")
    (project / "code.py").write_text("keep = True\n")
    with pytest.raises(ConfigError, match="is not empty and is not a MeSH-pair dataset build"):
        build_dataset_from_files([("bioasq", [inp])], project, top_k=2, progress=False, arrow=False)
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*")) == [
        "README.md", "code.py", "documents", "documents/notes.txt"
    ]  # fmt: skip
    out = tmp_path / "out"  # a real build, with or without its Arrow copy, is still rebuilt in place
    for arrow in (True, False):
        build_dataset_from_files([("bioasq", [inp])], out, top_k=2, progress=False, arrow=arrow)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "documents", "pairs", "summary.json"]


SWAP_AND_DIE = textwrap.dedent(
    """
    import os, pathlib, signal, sys
    from biohicl import atomic

    real_replace = atomic.os.replace

    def replace_then_die(src, dst):  # the kill lands between the swap's two renames
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGKILL)

    atomic.os.replace = replace_then_die
    with atomic.atomic_directory(sys.argv[1]) as tmp:
        (tmp / "model.txt").write_text("new")
    """
)


def test_sigkill_between_the_two_renames_of_a_folder_swap_then_rerun(tmp_path):
    # publish --out --overwrite, soup --output: the previous folder was left in `.out.old` and nothing put it back
    from biohicl.atomic import atomic_directory

    target = tmp_path / "out"
    target.mkdir()
    (target / "model.txt").write_text("previous")
    proc = subprocess.run([sys.executable, "-c", SWAP_AND_DIE, str(target)], env=ENV, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()  # the instant the kill caught: the previous folder is aside, whole
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith(".out.old")]
    assert (aside / "model.txt").read_text() == "previous"
    with pytest.raises(RuntimeError, match="the next run fails too"), atomic_directory(target):
        raise RuntimeError("the next run fails too")
    assert (target / "model.txt").read_text() == "previous"  # put back by the next run, kept when that one fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with atomic_directory(target) as tmp:
        (tmp / "model.txt").write_text("rerun")
    assert (target / "model.txt").read_text() == "rerun"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

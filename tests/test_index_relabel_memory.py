"""A rerun of ``biohicl index`` over documents whose MeSH labels changed holds, until every shard is accepted, only
the changed sidecar lines (not every line of each shard with one change: 31 MB for 20k documents), and writes the
same docs sidecars as a fresh build (tiny random BERT, CPU)."""

from __future__ import annotations

import gc
import json
import logging
import types
from pathlib import Path

import pytest

from biohicl.data.corpus import Document
from biohicl.models.model import BioHiCL
from biohicl.search.contents import PendingLabels, sidecar_record, text_digest
from biohicl.search.indexing import build_index


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    return BioHiCL.from_base(str(tiny_bert_dir))


def records(n: int, relabel: set[int] = frozenset()) -> list[dict]:
    return [
        {"_id": f"D{i}", "title": f"T{i}", "text": f"insulin {i}", "mesh": ["D006331" if i in relabel else "D007328"]}
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def held_records(obj: object) -> int:
    """How many sidecar records (dicts with an ``id``) ``obj`` holds, followed through its containers."""
    seen, stack, count = set(), [obj], 0
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (type, types.ModuleType, types.FunctionType, str, bytes, Path)):
            continue
        seen.add(id(item))
        if isinstance(item, dict) and "id" in item:
            count += 1
        stack.extend(gc.get_referents(item))
    return count


def test_only_the_changed_lines_are_held(tmp_path):
    docs = [Document(f"D{i}", f"insulin {i}", f"T{i}", ("D007328",)) for i in range(200)]
    sidecars = []
    for number in range(3):  # three kept shards of 200 documents, one label changed in each
        sidecar = tmp_path / f"shard-{number:05d}.docs.jsonl"
        lines = [sidecar_record(d.id, d.title, d.mesh, {"text_sha": text_digest(d.full_text())}) for d in docs]
        sidecar.write_text("".join(json.dumps(line) + "\n" for line in lines))
        sidecars.append(sidecar)
    labels = PendingLabels()
    for number, sidecar in enumerate(sidecars):
        changed = [Document(d.id, d.text, d.title, ("D006331",)) if i == 7 * number else d for i, d in enumerate(docs)]
        labels.add(number, sidecar, changed)
    assert held_records(labels) == labels.held == 3  # was 600: every line of the three shards
    labels.apply(logging.getLogger("test"))
    for number, sidecar in enumerate(sidecars):
        read = [json.loads(line) for line in sidecar.read_text().splitlines()]
        assert len(read) == 200
        assert [r["id"] for r in read if r["mesh"] == ["D006331"]] == [f"D{7 * number}"]
    assert held_records(labels) == 0


def test_a_relabel_rerun_writes_the_sidecars_of_a_fresh_build(model, tmp_path, caplog):
    corpus = write_jsonl(tmp_path / "c.jsonl", records(10))
    build_index(model, corpus, tmp_path / "idx", shard_size=4, show_progress_bar=False)
    relabel = {1, 5, 6}  # shards 0 and 1; shard 2 (D8, D9) unchanged
    write_jsonl(corpus, records(10, relabel))
    with caplog.at_level(logging.INFO, logger="biohicl.search.indexing"):
        build_index(model, corpus, tmp_path / "idx", shard_size=4, show_progress_bar=False)
    assert [r.getMessage() for r in caplog.records if "updated" in r.getMessage()] == [
        "shard 0: MeSH labels updated for 1 document(s)",
        "shard 1: MeSH labels updated for 2 document(s)",
    ]
    fresh = write_jsonl(tmp_path / "fresh.jsonl", records(10, relabel))
    build_index(model, fresh, tmp_path / "fresh", shard_size=4, show_progress_bar=False)
    for number in range(3):
        name = f"shard-{number:05d}.docs.jsonl"
        assert (tmp_path / "idx" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name

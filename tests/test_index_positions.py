"""An in-memory index and an index folder over the same rows give the same answers for rows outside them, and an
``Index`` is either kind, whole: the constructor refuses a part of one."""

from __future__ import annotations

import pytest
import torch
from conftest import write_index

from biohicl.errors import ConfigError
from biohicl.search.index import Index, load_index


def test_positions_outside_either_index_are_refused_alike(tmp_path):
    rows = torch.nn.functional.normalize(torch.arange(12, dtype=torch.float32).reshape(3, 4) + 1, dim=-1)
    write_index(tmp_path / "index", rows, shard_size=2)
    folder = load_index(tmp_path / "index")
    memory = Index.from_embeddings(rows, ids=["d0", "d1", "d2"])
    for index in (folder, memory):
        for bad in (-1, 3):
            for read in (index.documents, index.rows):
                with pytest.raises(IndexError, match=rf"^row {bad} is outside the index \(0\.\.2\)$"):
                    read([0, bad])
        assert index.documents([2])[2]["id"] == "d2"
        assert torch.allclose(index.rows([2, 0]), rows[[2, 0]])


def test_an_index_is_built_whole_or_refused(tmp_path):
    rows = torch.eye(3)
    manifest = write_index(tmp_path / "index", rows, shard_size=2)
    docs = [{"id": f"d{i}", "title": "", "mesh": []} for i in range(3)]
    for parts in (
        {},
        {"manifest": manifest},
        {"directory": tmp_path / "index"},
        {"docs": docs},
        {"embeddings": rows, "docs": docs[:2]},
        {"manifest": manifest, "directory": tmp_path / "index", "embeddings": rows, "docs": docs},
    ):
        with pytest.raises(ConfigError, match=r"^Index: give manifest= and directory= .* or embeddings= "):
            Index(**parts)
    assert Index(manifest, tmp_path / "index").find(["d1"]) == {"d1": 1}
    assert Index(embeddings=rows, docs=docs).find(["d1"]) == {"d1": 1}
    # embeddings alone (rows already unit length, as a benchmark keeps them): each document named by its row,
    # as Index.from_embeddings names rows given no ids
    bare, named = Index(embeddings=rows), Index.from_embeddings(rows)
    assert bare.find(["1", "01", "3", "-1", "x"]) == named.find(["1", "01", "3", "-1", "x"]) == {"1": 1}
    assert (
        bare.documents([0, 2])
        == named.documents([0, 2])
        == {
            0: {"id": "0", "title": "", "mesh": []},
            2: {"id": "2", "title": "", "mesh": []},
        }
    )

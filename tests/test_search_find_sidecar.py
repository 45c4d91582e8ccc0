"""Index.find reads the docs sidecars without parsing every line: the same results as parsing every line (ids that
JSON escapes, ids as numbers, other key orders, a missing id, an id held twice), and ``search --like`` looks its ids
up once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from biohicl.cli.main import main as cli
from biohicl.data.corpus import iter_lines
from biohicl.errors import DataError
from biohicl.search.exact import search_like
from biohicl.search.index import Index, _doc_record, load_index
from biohicl.search.layout import EMBEDDINGS_KEY, INDEX_FORMAT, IndexManifest, ShardInfo, docs_name, shard_name


def write_index(directory: Path, shards: list[list[str]], dim: int = 4) -> Path:
    """An index folder whose shards' docs sidecars are exactly ``shards``' lines (random unit rows)."""
    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    infos, start = [], 0
    for number, lines in enumerate(shards):
        (directory / docs_name(number)).write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
        block = torch.nn.functional.normalize(torch.randn(len(lines), dim, generator=generator), dim=-1)
        meta = {"count": str(len(lines)), "ids_sha256": "x", "shard": str(number), "format": INDEX_FORMAT}
        save_file({EMBEDDINGS_KEY: block}, str(directory / shard_name(number)), metadata=meta)
        infos.append(ShardInfo(number, shard_name(number), docs_name(number), start, len(lines), "x"))
        start += len(lines)
    IndexManifest(model="synthetic", model_revision=None, dtype="float32", dim=dim, count=start, shards=infos).save(
        directory
    )
    return directory


def parsed_find(index: Index, ids) -> dict[str, int]:
    """Index.find as it was: every line parsed, up to the last id wanted."""
    wanted = {str(i) for i in ids}
    found: dict[str, int] = {}
    for shard in index.manifest.shards:
        path = index.directory / shard.docs
        for line_number, line in iter_lines(path):
            doc_id = str(_doc_record(line, path, line_number)["id"])
            if doc_id in wanted and doc_id not in found:
                found[doc_id] = shard.start + line_number - 1
        if len(found) == len(wanted):
            break
    return found


ODD_IDS = ['quo"te', "back\\slash", "tab\there", "caf\u00e9", "\u65e5\u672c", "a/b", "12", "123", "id", ""]


def odd_lines() -> list[list[str]]:
    """Sidecar lines as biohicl writes them, and as other writers could: escaped ids, ASCII-escaped ids, numbers,
    the id after another key, compact separators, an id that is another one's prefix, a title naming "id"."""
    first = [
        json.dumps({"id": i, "title": f"t {n}", "mesh": ["D1"]}, ensure_ascii=False) for n, i in enumerate(ODD_IDS)
    ]
    second = [
        json.dumps({"id": "caf\u00e9 ascii"}),  # ensure_ascii: \u00e9 in the line
        json.dumps({"title": "id first? no", "id": "late"}),
        json.dumps({"id": "compact", "mesh": []}, separators=(",", ":")),
        json.dumps({"id": 77, "title": "a number"}),
        json.dumps({"id": "plain", "title": 'says "id" twice', "mesh": ["id"]}),
        json.dumps({"id": "12", "title": "the id of row 6 again"}),  # held twice: the first row is found
        json.dumps({"id": "x", "id2": "y"}),
        "  " + json.dumps({"id": "spaced"}) + "  ",
        '{"id": "dup key", "id": "last wins"}',  # a key twice: JSON's last one counts
    ]
    filler = [json.dumps({"id": f"f{n}", "title": "filler"}) for n in range(150)]
    return [first, second, filler, [json.dumps({"id": "end"})]]


@pytest.fixture()
def odd_index(tmp_path) -> Index:
    return load_index(write_index(tmp_path / "odd", odd_lines()))


def test_find_equals_parsing_every_line(odd_index):
    every = [str(json.loads(line)["id"]) for lines in odd_lines() for line in lines]
    for ids in [every, ["missing"], ["12"], ["123", "12"], ["last wins", "dup key"], ["77", "f149", "end", "nope"]]:
        assert odd_index.find(ids) == parsed_find(odd_index, ids), ids
    assert odd_index.find(ODD_IDS) == {i: row for row, i in enumerate(ODD_IDS)}
    assert odd_index.find(["12", "77", "last wins", "late", "caf\u00e9 ascii", "nope"]) == {
        "12": 6,
        "77": 13,
        "last wins": 18,
        "late": 11,
        "caf\u00e9 ascii": 10,
    }


def test_an_id_held_twice_is_its_first_row_in_memory_as_on_disk(tmp_path):
    lines = [json.dumps({"id": i}) for i in ["a", "b", "a"]]
    on_disk = load_index(write_index(tmp_path / "twice", [lines]))
    in_memory = Index.from_embeddings(on_disk.embeddings(), ids=["a", "b", "a"])
    assert on_disk.find(["a", "b"]) == in_memory.find(["a", "b"]) == {"a": 0, "b": 1}


def test_documents_reads_the_rows_asked(odd_index):
    count = len(odd_index)
    assert odd_index.documents([17, 0])[17]["id"] == "spaced" and odd_index.documents([17])[17]["id"] == "spaced"
    with pytest.raises(IndexError, match="outside the index"):
        odd_index.documents([count])


def test_find_parses_only_lines_it_cannot_read_plainly(tmp_path, monkeypatch):
    lines = [
        json.dumps({"id": str(n), "title": f"title {n}", "mesh": ["D1", "D2"]}, ensure_ascii=False) for n in range(500)
    ]
    lines[100] = json.dumps({"id": "esc", "title": 'a "quoted" title'})  # a backslash: parsed
    index = load_index(write_index(tmp_path / "plain", [lines[:250], lines[250:]]))
    parsed = []
    real = json.loads
    monkeypatch.setattr(json, "loads", lambda text, *a, **k: parsed.append(text) or real(text, *a, **k))
    assert index.find(["499", "esc", "nope"]) == {"499": 499, "esc": 100}
    assert len(parsed) == 1


def test_a_short_sidecar_is_still_named(tmp_path):
    directory = write_index(tmp_path / "short", [[json.dumps({"id": f"s{n}"}) for n in range(5)]])
    (directory / docs_name(0)).write_text('{"id": "s0"}\n{"id": "s1"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="has 2 lines, the manifest lists 5 documents"):
        load_index(directory).documents([4])
    (directory / docs_name(0)).write_bytes(b'{"id": "s0"}\n{"id": "\xff"}\n{"id": "s2"}\n{"id": "s3"}\n{"id": "s4"}')
    with pytest.raises(DataError, match="byte 0xff is not UTF-8") as err:
        load_index(directory).documents([1])
    assert "line 2" in str(err.value)


def test_like_command_finds_its_ids_once(tmp_path, monkeypatch, capsys):
    lines = [json.dumps({"id": f"d{n}", "title": f"title {n}"}) for n in range(40)]
    directory = write_index(tmp_path / "like", [lines[:25], lines[25:]], dim=8)
    expected = search_like(load_index(directory), ["d30", "d2"], top_k=3)
    calls = []
    real = Index.find
    monkeypatch.setattr(Index, "find", lambda self, ids: calls.append(list(ids)) or real(self, ids))
    assert (
        cli(["search", str(directory), "--like", "d30", "--like", "d2", "--top_k", "3", "--no_mesh", "--device", "cpu"])
        == 0
    )
    assert calls == [["d30", "d2"]]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "like: d30  title 30"
    assert [line.split()[2] for line in out[1:4]] == [h.id for h in expected[0]]
    assert out[5] == "like: d2  title 2"
    assert [line.split()[2] for line in out[6:9]] == [h.id for h in expected[1]]


def random_lines(rng, count: int) -> list[str]:
    """Sidecar lines of many writers' forms, with ids drawn from a small set (some held twice)."""
    alphabet = ["a", "1", '"', "\\", "\t", "\u00e9", "/", " ", "id", '"id"', "\u2028", "{", "\n"]
    lines = []
    for _ in range(count):
        doc_id = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 4))) + str(rng.randrange(40))
        record = {"id": doc_id, "title": "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 6)))}
        if rng.random() < 0.2:
            record["mesh"] = ["id", doc_id]
        form = rng.randrange(6)
        if form == 0:
            lines.append(json.dumps(record))  # ASCII escapes
        elif form == 1:
            lines.append(json.dumps({"title": record["title"], **record}, ensure_ascii=False))  # the id later
        elif form == 2:
            lines.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
        elif form == 3 and doc_id.isdigit():
            lines.append(json.dumps({**record, "id": int(doc_id)}))  # a number
        else:
            lines.append(json.dumps(record, ensure_ascii=False))  # as biohicl writes
    return lines


@pytest.mark.parametrize("seed", [7, 64, 1 << 20])
def test_random_sidecars_read_as_parsing_every_line(tmp_path, seed):
    import random

    rng = random.Random(seed)
    shards = [random_lines(rng, n) for n in (70, 1, 130)]
    directory = write_index(tmp_path / "random", shards)
    docs = directory / docs_name(2)
    docs.write_bytes(docs.read_bytes().replace(b"\n", b"\r\n", 5)[:-1])  # CRLF lines, no final newline
    first = directory / docs_name(0)
    first.write_bytes(b"\xef\xbb\xbf" + first.read_bytes())  # a byte-order mark
    index = load_index(directory)
    every = sorted({str(json.loads(line)["id"]) for lines in shards for line in lines})
    for _ in range(30):
        ids = rng.sample(every, rng.randrange(1, 4)) + ["not held"] * rng.randrange(2)
        assert index.find(ids) == parsed_find(index, ids), ids
    assert index.find(every) == parsed_find(index, every)


@pytest.mark.parametrize("bad", [b"\n", b"   \n", b'{"id" "x"}\n', b'{"title": "t"}\n', b"[1]\n"])
def test_a_line_that_is_not_a_record_is_named_by_find(tmp_path, bad):
    """A line that does not open ``{"id": "`` is parsed, so a blank or broken one is named (a line opening so is
    read off its text: find no longer checks the rest of it, documents() does for the rows it returns)."""
    directory = write_index(tmp_path / "bad", [[json.dumps({"id": f"b{n}"}) for n in range(4)]])
    lines = (directory / docs_name(0)).read_bytes().splitlines(keepends=True)
    (directory / docs_name(0)).write_bytes(b"".join([*lines[:2], bad, *lines[3:]]))
    with pytest.raises(DataError, match="line 3"):
        load_index(directory).find(["b3"])

"""Growing an index whose last shard the earlier run left partial: the log line says that shard is encoded again
whole (and how a smaller --shard_size makes growth cheap), and a bad record among the new documents after it, which
leaves the folder without its manifest until a rerun completes, says so in its one line (tiny random BERT, CPU)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from biohicl.errors import DataError
from biohicl.models.model import BioHiCL
from biohicl.search.index import load_index
from biohicl.search.indexing import build_index


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    return BioHiCL.from_base(str(tiny_bert_dir))


def lines(n: int, start: int = 0) -> str:
    return "".join(json.dumps({"_id": f"D{i}", "text": f"insulin {i}"}) + "\n" for i in range(start, start + n))


def grow(model, corpus: Path, folder: Path) -> None:
    build_index(model, corpus, folder, shard_size=4, show_progress_bar=False)


def test_the_partial_last_shard_is_said_to_be_encoded_again_whole(model, tmp_path, caplog):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(lines(6))  # shard 1 holds D4, D5
    grow(model, corpus, tmp_path / "idx")
    corpus.write_text(lines(7))
    with caplog.at_level(logging.INFO, logger="biohicl.search.indexing"):
        grow(model, corpus, tmp_path / "idx")
    assert (
        "shard 1 held the first 2 of its 3 documents: encoding all 3 again (a grown index re-encodes its last "
        "partial shard whole; a smaller --shard_size makes adding documents cheaper)"
    ) in [r.getMessage() for r in caplog.records]


def test_a_bad_record_after_the_reencoded_shard_says_the_index_is_unsearchable(model, tmp_path):
    corpus, folder = tmp_path / "c.jsonl", tmp_path / "idx"
    corpus.write_text(lines(6))
    grow(model, corpus, folder)
    corpus.write_text(lines(6) + lines(3, 6) + "{not json\n")  # shard 1 filled (re-encoded), line 10 bad
    with pytest.raises(DataError) as caught:
        grow(model, corpus, folder)
    message = str(caught.value)
    assert message.startswith(f"{corpus}: line 10: not valid JSON")
    assert message.endswith(
        f"; {folder} is unsearchable until a rerun completes (its manifest.json was removed to encode again shard "
        "1, which the earlier run left partial)"
    )
    assert "\n" not in message
    with pytest.raises(DataError, match=r"no manifest\.json"):  # what the message says
        load_index(folder)
    corpus.write_text(lines(10))
    grow(model, corpus, folder)
    assert load_index(folder).manifest.count == 10


def test_a_bad_record_in_the_partial_shard_itself_leaves_the_index_searchable(model, tmp_path):
    corpus, folder = tmp_path / "c.jsonl", tmp_path / "idx"
    corpus.write_text(lines(6))
    grow(model, corpus, folder)
    corpus.write_text(lines(7) + "{not json\n")  # shard 1 never completes: nothing is re-encoded
    with pytest.raises(DataError) as caught:
        grow(model, corpus, folder)
    assert "unsearchable" not in str(caught.value)
    assert load_index(folder).manifest.count == 6

"""The in-memory datasets biohicl reads or builds get a random fingerprint, as datasets gives a table it cannot hash,
instead of a hash of every row (about 2.4 s per read of an 80,000-document split, measured by the scale review)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Features, Value

from biohicl.data.documents import read_parquet
from biohicl.data.pairs import _dataset
from biohicl.data.storage import load_pair_dataset


@pytest.fixture
def no_row_hashing(monkeypatch):
    import datasets.arrow_dataset

    def refuse(dataset):
        raise AssertionError("every row hashed for a fingerprint")

    monkeypatch.setattr(datasets.arrow_dataset, "generate_fingerprint", refuse)


def test_reading_and_building_hash_no_rows(tmp_path, no_row_hashing):
    table = pa.table({"id": ["a", "b"], "text": ["one", "two"]})
    for config in ("documents", "pairs"):
        (tmp_path / "ds" / config).mkdir(parents=True)
        pq.write_table(table, tmp_path / "ds" / config / "train.parquet")
    loaded = load_pair_dataset(tmp_path / "ds")
    assert loaded["documents"]["text"] == ["one", "two"] and loaded["pairs"]["id"] == ["a", "b"]
    read = read_parquet([tmp_path / "ds" / "documents" / "train.parquet"], tmp_path / "ds")
    assert read["id"] == ["a", "b"]
    built = _dataset({"id": ["x"], "text": ["three"]}, Features({"id": Value("string"), "text": Value("string")}))
    assert built["text"] == ["three"]
    assert len({loaded["documents"]._fingerprint, read._fingerprint, built._fingerprint}) == 3

"""A built dataset's ``summary.json`` is read by one reader (:func:`biohicl.data.storage.read_build_summary`) at
every place that reads it: absent (no folder, a documents file, no summary) it is None, as it always was; damaged
(not UTF-8, not JSON, or JSON that is not an object) it is one line naming the file, where training crashed with an
``AttributeError`` and the other readers took it silently for no summary."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from biohicl.data.documents import other_hierarchy
from biohicl.data.storage import read_build_summary
from biohicl.errors import DataError
from biohicl.hub.card_data_source import dataset_summary as card_summary
from biohicl.study.reuse import dataset_summary as reuse_summary
from biohicl.training.run import check_pubmedqa_dev

NOT_AN_OBJECT = "expected a JSON object (the dataset's build summary)"


def _build(tmp_path: Path, content: bytes | None) -> Path:
    """A folder with a build's two configuration folders and, unless ``content`` is None, that ``summary.json``."""
    folder = tmp_path / "dataset"
    (folder / "documents").mkdir(parents=True)
    (folder / "pairs").mkdir()
    if content is not None:
        (folder / "summary.json").write_bytes(content)
    return folder


def test_an_absent_summary_is_none_and_an_object_is_read(tmp_path):
    assert read_build_summary(tmp_path / "missing") is None
    documents_file = tmp_path / "docs.jsonl"
    documents_file.write_text('{"pmid": "1"}\n', encoding="utf-8")
    assert read_build_summary(documents_file) is None  # a documents file has no build summary
    folder = _build(tmp_path, None)
    assert read_build_summary(folder) is None
    (folder / "summary.json").write_text(json.dumps({"documents": 24, "dev": {"seed": 0}}), encoding="utf-8")
    assert read_build_summary(folder) == {"documents": 24, "dev": {"seed": 0}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'["x"]', NOT_AN_OBJECT),
        (b"24", NOT_AN_OBJECT),
        (b"null", NOT_AN_OBJECT),
        (b'{"documents": 24, "pai', "line 1: not valid JSON (Unterminated string starting at column 19)"),
        (b'{"documents": \xff}', "not UTF-8 (byte 0xff at offset 14)"),
    ],
)
def test_a_damaged_summary_is_one_line_naming_it(tmp_path, content, message):
    folder = _build(tmp_path, content)
    with pytest.raises(DataError) as caught:
        read_build_summary(folder)
    assert str(caught.value) == f"{folder / 'summary.json'}: {message}"


def test_training_with_pubmedqa_dev_on_a_summary_that_is_not_an_object_is_one_line(tmp_path):
    """Before: ``AttributeError: 'list' object has no attribute 'get'``."""
    folder = _build(tmp_path, b'["x"]')
    with pytest.raises(DataError) as caught:
        check_pubmedqa_dev(SimpleNamespace(eval_tasks=["pubmedqa:dev"]), folder)
    assert str(caught.value) == f"{folder / 'summary.json'}: {NOT_AN_OBJECT}"


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda folder: other_hierarchy(folder, "2025", "MeshTree.txt"), id="training-hierarchy"),
        pytest.param(lambda folder: card_summary(str(folder)), id="model-card"),
        pytest.param(reuse_summary, id="study-reuse"),
    ],
)
def test_the_readers_that_took_it_for_no_summary_refuse_it(tmp_path, read):
    """Before: None, as if the folder had no summary (a card then said it "has no summary.json"); a summary that
    is not valid JSON was already refused by each."""
    folder = _build(tmp_path, b'["x"]')
    with pytest.raises(DataError) as caught:
        read(folder)
    assert str(caught.value) == f"{folder / 'summary.json'}: {NOT_AN_OBJECT}"
    (folder / "summary.json").unlink()
    assert read(folder) is None  # no summary: as before


def test_the_readers_read_an_object_as_before(tmp_path):
    built = {"mesh_version": "2024", "mesh_source": "mtrees2024.bin"}
    folder = _build(tmp_path, json.dumps(built).encode())
    assert other_hierarchy(folder, "2025", "MeshTree.txt") == ("2024", "mtrees2024.bin")
    assert other_hierarchy(folder, "2024", "/somewhere/mtrees2024.bin") is None
    assert card_summary(str(folder)) == reuse_summary(folder) == built
    assert card_summary(None) is None
    (folder / "pairs").rmdir()
    assert reuse_summary(folder) is None  # not a build without its pairs/ folder
    check_pubmedqa_dev(SimpleNamespace(eval_tasks=["pubmedqa:dev"]), folder)  # no dev recorded: the defaults

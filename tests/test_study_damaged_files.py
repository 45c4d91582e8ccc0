"""A study's own JSON files that are damaged (truncated, not UTF-8, not an object) are refused in one line naming
the file; absent, they are what they always were (no build summary, no saved length to set)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biohicl.errors import DataError
from biohicl.study import ReproduceConfig, run_study
from biohicl.study.execute import set_inference_length
from tests.conftest import tiny_study_values

DAMAGED = [
    (b'{"documents": 24, "pai', "line 1: not valid JSON (Unterminated string starting at column 19)"),
    (b'{"documents": \xff}', "not UTF-8 (byte 0xff at offset 14)"),
    (b"[24]", None),  # valid JSON, not an object: the message says what was expected
]


def _reused_dataset(tmp_path: Path) -> tuple[ReproduceConfig, Path]:
    """A report-only study whose dataset folder holds a build (documents and pairs): its summary is read back."""
    dataset = tmp_path / "dataset"
    (dataset / "documents").mkdir(parents=True)
    (dataset / "pairs").mkdir()
    config = ReproduceConfig.from_dict(tiny_study_values(str(tmp_path / "study"), str(dataset), model="tiny-bert"))
    return config, dataset / "summary.json"


@pytest.mark.parametrize(("content", "message"), DAMAGED)
def test_a_damaged_dataset_summary_is_one_line_naming_it(tmp_path, content, message):
    config, summary = _reused_dataset(tmp_path)
    summary.write_bytes(content)
    with pytest.raises(DataError) as caught:
        run_study(config, progress=False, write_plots=False, report_only=True)
    expected = message or "expected a JSON object (the dataset's build summary)"
    assert str(caught.value) == f"{summary}: {expected}"


def test_a_missing_dataset_summary_is_still_an_empty_one(tmp_path):
    config, summary = _reused_dataset(tmp_path)
    assert run_study(config, progress=False, write_plots=False, report_only=True)["dataset"] == {}
    summary.write_text(json.dumps({"documents": 24, "pairs": 72, "read": {"x": 1}}), encoding="utf-8")
    report = run_study(config, progress=False, write_plots=False, report_only=True)
    assert report["dataset"] == {"documents": 24, "pairs": 72}  # the read report left out, as before


@pytest.mark.parametrize(("content", "message"), DAMAGED)
def test_a_damaged_encoder_config_is_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "biohicl_config.json"
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        set_inference_length(tmp_path, 32)
    expected = message or "expected a JSON object (the encoder's settings)"
    assert str(caught.value) == f"{path}: {expected}"
    assert path.read_bytes() == content  # left as it was


def test_the_encoder_config_gets_the_evaluation_length_and_a_missing_one_is_left_missing(tmp_path):
    set_inference_length(tmp_path, 32)
    assert not (tmp_path / "biohicl_config.json").exists()
    (tmp_path / "biohicl_config.json").write_text(json.dumps({"max_length": 24, "pooling": "mean"}), encoding="utf-8")
    set_inference_length(tmp_path, 32)
    assert json.loads((tmp_path / "biohicl_config.json").read_text()) == {"max_length": 32, "pooling": "mean"}

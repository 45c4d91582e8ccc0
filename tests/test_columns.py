"""Whole dataset columns through arrow (:mod:`biohicl.data.columns`): the values, dtypes and errors of the
row-by-row ``np.asarray(dataset[name])`` / ``list(dataset[name])``, for the rows an indices mapping selects."""

from __future__ import annotations

import numpy as np
import pytest

from biohicl.data.columns import column_array, column_list

COLUMNS = ["i32", "u8", "u64", "f32", "flag", "nullable", "text", "labels"]


@pytest.fixture(scope="module")
def table():
    import pyarrow as pa

    return pa.table(
        {
            "i32": pa.array([3, 1, 2, 5], pa.int32()),
            "u8": pa.array([3, 1, 2, 5], pa.uint8()),
            "u64": pa.array([3, 1, 2, 5], pa.uint64()),
            "f32": pa.array([0.1, 0.2, float("nan"), 1.5], pa.float32()),
            "flag": pa.array([True, False, True, True]),
            "nullable": pa.array([1, None, 2, 3], pa.int64()),
            "text": pa.array(["a", "b", None, "c"]),
            "labels": pa.array([["x"], [], None, ["y", "z"]]),
        }
    )


def _outcome(read):
    try:
        values = read()
    except Exception as err:  # the same error, or the same array
        return type(err).__name__, str(err)
    return values.dtype, repr(values.tolist())


@pytest.mark.parametrize("rows", ["all", "select", "filter", "none"])
@pytest.mark.parametrize("dtype", [None, np.int64, object])
def test_column_reads_equal_the_row_by_row_ones(table, rows, dtype):
    from datasets import Dataset

    dataset = Dataset(table)
    dataset = {
        "all": dataset,
        "select": dataset.select([3, 0, 2]),
        "filter": dataset.filter(lambda r: r["i32"] > 1),
        "none": dataset.select([]),
    }[rows]
    for name in COLUMNS:
        row_by_row = _outcome(lambda name=name: np.asarray(dataset[name], dtype=dtype))
        assert _outcome(lambda name=name: column_array(dataset, name, dtype)) == row_by_row, name
        assert repr(column_list(dataset, name)) == repr(list(dataset[name])), name


def test_selected_rows_come_in_the_selection_order(table):
    from datasets import Dataset

    picked = Dataset(table).select([3, 0, 2])
    assert column_array(picked, "i32").tolist() == [5, 3, 2] and column_array(picked, "i32").dtype == np.int64
    assert column_list(picked, "text") == ["c", "a", None]
    assert column_array(picked, "f32").dtype == np.float64
    assert column_array(Dataset(table).filter(lambda r: r["flag"]), "u8").tolist() == [3, 2, 5]

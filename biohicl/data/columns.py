"""Whole columns of a ``datasets.Dataset`` read through arrow, not row by row.

In ``datasets`` 5.x ``dataset["col"]`` is a lazy ``Column``: ``list()``, ``set()``, ``np.asarray()`` or a
comprehension over it formats every row through the dataset's formatter (seconds per million rows, where arrow
takes milliseconds). These helpers give the same values (those rows, in order, an indices mapping left by
``select``/``filter``/``shuffle`` applied) from the column's arrow array. And the other way, columns (or an arrow
table) as an in-memory ``Dataset`` without hashing every row: :func:`in_memory_dataset`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def arrow_column(dataset: Any, name: str) -> Any:
    """Column ``name`` of ``dataset``'s rows (its indices mapping applied) as a ``pyarrow.ChunkedArray``."""
    return dataset.with_format("arrow")[name]


def column_list(dataset: Any, name: str) -> list[Any]:
    """``list(dataset[name])``: the column's values as Python objects, in row order."""
    return arrow_column(dataset, name).to_pylist()


def column_array(dataset: Any, name: str, dtype: Any = None) -> np.ndarray:
    """``np.asarray(dataset[name], dtype=dtype)``, the same array (values and dtype) without formatting each row.

    A column of null-free integers, floats or booleans goes through ``to_numpy`` and the dtype NumPy gives their
    Python values (``int64``, ``float64``, ``bool``); any other column (nulls, strings, lists, ``uint64``, no rows)
    through its Python values, so it converts (or fails to) exactly as the row-by-row read does.
    """
    import pyarrow as pa

    values = arrow_column(dataset, name)
    kind = values.type
    if len(values) and not values.null_count:
        small_int = pa.types.is_integer(kind) and kind != pa.uint64()
        if dtype is None:
            if small_int:
                return values.to_numpy().astype(np.int64)
            if pa.types.is_floating(kind):
                return values.to_numpy().astype(np.float64)
            if pa.types.is_boolean(kind):
                return values.to_numpy().astype(bool)
        elif small_int and np.dtype(dtype) == np.int64:
            return values.to_numpy().astype(np.int64)
    return np.asarray(values.to_pylist(), dtype=dtype)


def in_memory_dataset(table: Any):
    """``table`` (a pyarrow or ``datasets`` table, or ``{column: values}``, typed as ``Dataset.from_dict`` types them)
    as an in-memory ``datasets.Dataset`` with a random fingerprint, as datasets gives a table it cannot hash, rather
    than a hash of every row (seconds at 80,000 documents) that nothing reads: no cache file is written."""
    import datasets
    import pyarrow as pa
    from datasets.fingerprint import generate_random_fingerprint

    table = pa.table(table) if isinstance(table, Mapping) else table
    return datasets.Dataset(table, fingerprint=generate_random_fingerprint())

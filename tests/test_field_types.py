"""biohicl.field_types: the one check of config dataclass fields against their annotations (study configs, release
manifests and saved biohicl_config.json files all use it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from biohicl.errors import ConfigError
from biohicl.field_types import check_field_types, describe


@dataclass
class Example:
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    name: str | None = None
    seeds: list[int] = field(default_factory=list)
    per_variant: dict[str, list[int]] = field(default_factory=dict)
    extra: dict[str, Any] | None = None


@pytest.mark.parametrize(
    ("hint", "words"),
    [
        (int, "an integer"),
        (bool, "true or false"),
        (str | None, "a string or null"),
        (list[int] | None, "a list of integers or null"),
        (dict[str, list[int]], "a mapping of strings to lists of integers"),
        (dict[str, Any] | None, "a mapping or null"),
    ],
)
def test_annotations_in_words(hint, words):
    assert describe(hint) == words


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"count": True}, "count: expected an integer, got True"),  # a bool is not a number
        ({"count": 2.0}, "count: expected an integer, got 2.0"),
        ({"rate": "0.1"}, "rate: expected a number, got '0.1'"),
        ({"flag": "false"}, "flag: expected true or false, got 'false'"),  # YAML's quoted "false" is truthy
        ({"name": 1.0}, "name: expected a string or null, got 1.0 (quote it)"),
        ({"seeds": [1, "2"]}, "seeds: expected a list of integers, got [1, '2']"),
        ({"per_variant": {"a": 1}}, "per_variant: expected a mapping of strings to lists of integers, got {'a': 1}"),
    ],
)
def test_the_first_mistyped_field_is_named_with_its_scope(values, message):
    with pytest.raises(ConfigError) as raised:
        check_field_types(Example(**values), "study")
    assert str(raised.value) == f"study.{message}"


def test_well_typed_values_pass_numpy_integers_included():
    check_field_types(Example(count=np.int64(3), rate=2, name="x", seeds=[1], per_variant={"a": [1]}, extra={}))


def test_is_count_takes_whole_numbers_from_one_not_bools_floats_or_strings():
    from biohicl.field_types import is_count

    assert [is_count(v) for v in (1, 2, 10**9)] == [True, True, True]
    assert not any(is_count(v) for v in (0, -1, True, False, 2.0, "3", None))


def test_is_number_takes_ints_and_floats_nan_inf_and_float64_not_bools_strings_or_other_numpy_scalars():
    from biohicl.field_types import is_number

    # As the helpers it replaces: NaN and infinity are numbers (callers needing a finite one check math.isfinite);
    # np.float64 is a float subclass, np.int64 / np.float32 / np.bool_ are not ints or floats.
    takes = (0, 1, -3, 10**20, 1.5, float("nan"), float("inf"), -float("inf"), np.float64(0.5))
    assert [is_number(v) for v in takes] == [True] * len(takes)
    assert not any(is_number(v) for v in (True, False, "1", None, [1], np.int64(1), np.float32(0.5), np.bool_(True)))


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "3", None])
def test_check_count_refuses_in_one_wording_naming_the_field_and_what_it_counts(value):
    from biohicl.field_types import check_count

    with pytest.raises(ConfigError) as refused:
        check_count("limit", value, "the most documents to use")
    assert (
        str(refused.value) == f"limit: must be a whole number of at least 1 (the most documents to use), got {value!r}"
    )
    with pytest.raises(ConfigError) as bare:
        check_count("max_partners", value)
    assert str(bare.value) == f"max_partners: must be a whole number of at least 1, got {value!r}"


def test_check_count_takes_whole_numbers_from_one_and_none_only_where_optional():
    from biohicl.field_types import check_count

    assert [check_count("n", v) for v in (1, 2, 10**9)] == [None, None, None]
    assert check_count("n", None, optional=True) is None
    with pytest.raises(ConfigError, match=r"^n: must be a whole number of at least 1, got 0$"):
        check_count("n", 0, optional=True)

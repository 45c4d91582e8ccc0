"""biohicl.jsonio: the project's JSON records read with one-line errors naming the file."""

from __future__ import annotations

import pytest

from biohicl.errors import DataError, ModelLoadError, PublishError
from biohicl.jsonio import read_json


def test_read_json_names_the_file_for_missing_invalid_and_non_utf8_json(tmp_path):
    path = tmp_path / "manifest.json"
    assert read_json(path, default=None) is None
    with pytest.raises(DataError, match=r"manifest\.json.*file not found"):
        read_json(path)
    path.write_text('{"a": 1,\n}', encoding="utf-8")
    with pytest.raises(DataError) as raised:
        read_json(path)
    message = "line 2: not valid JSON (Expecting property name enclosed in double quotes at column 1)"
    assert str(raised.value) == f"{path}: {message}" and raised.value.line == 2
    path.write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(DataError, match=r"manifest\.json.*not UTF-8 \(byte 0xe9 at offset 13\)"):
        read_json(path)
    path.write_text('{"name": "café"}', encoding="utf-8")
    assert read_json(path) == {"name": "café"}


def test_read_json_raises_the_callers_error_type_with_the_same_message(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text('{"results": ', encoding="utf-8")
    with pytest.raises(PublishError) as raised:
        read_json(path, error=PublishError)
    assert str(raised.value) == f"{path}: line 1: not valid JSON (Expecting value at column 13)"
    with pytest.raises(ModelLoadError, match=r"config\.json: missing \(a soup"):
        read_json(tmp_path / "config.json", missing="missing (a soup averages ...)", error=ModelLoadError)
    with pytest.raises(DataError, match=r"eval\.json: cannot read \(Is a directory\)"):
        path.unlink()
        path.mkdir()
        read_json(path)


def test_read_json_names_the_file_for_json_nested_too_deeply(tmp_path):
    """``[[[[...`` 100,000 deep overflowed the decoder's recursion: a traceback, not a line naming the file."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(DataError, match=r"deep\.json.*nested too deeply to read"):
        read_json(path)
    with pytest.raises(PublishError) as raised:
        read_json(path, error=PublishError)
    assert str(raised.value) == f"{path}: not valid JSON (nested too deeply to read)"

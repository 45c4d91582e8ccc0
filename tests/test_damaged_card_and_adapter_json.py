"""An adapter folder's or a run's JSON files that are not UTF-8 are refused in one line naming the file (the one
message of :func:`biohicl.jsonio.read_json`), not a ``UnicodeDecodeError`` traceback."""

from __future__ import annotations

import json
import re

import pytest

from biohicl.errors import DataError, ModelLoadError
from biohicl.hub.model_card import BioHiCLModelCardData
from biohicl.models.model import BioHiCL


@pytest.fixture()
def adapter(tiny_bert_dir, tmp_path):
    model = BioHiCL.from_base(str(tiny_bert_dir), hub_id="org/tiny-bert", max_length=64)
    model.add_lora(r=2, verbose=False)
    model.save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter"


def _latin1(path, key):
    """Rewrite ``path``'s JSON with a latin-1 ``é`` in a new field ``key``; the byte's offset."""
    text = json.dumps({**json.loads(path.read_text(encoding="utf-8")), key: "é"}, ensure_ascii=False)
    path.write_bytes(text.encode("latin-1"))
    return text.index("é")


def test_a_biohicl_config_that_is_not_utf8_is_one_line_naming_the_file(adapter, tiny_bert_dir):
    path = adapter / "biohicl_config.json"
    offset = _latin1(path, "note")
    expected = f"{path}: not UTF-8 (byte 0xe9 at offset {offset})"
    with pytest.raises(ModelLoadError, match=f"^{re.escape(expected)}$"):
        BioHiCL.from_pretrained(adapter, base_model_path=tiny_bert_dir)


def test_an_adapter_config_that_is_not_utf8_is_one_line_naming_the_file(adapter, tiny_bert_dir):
    path = adapter / "adapter_config.json"
    offset = _latin1(path, "note")
    expected = f"{path}: not UTF-8 (byte 0xe9 at offset {offset})"
    with pytest.raises(ModelLoadError, match=f"^{re.escape(expected)}$"):
        BioHiCL.from_pretrained(adapter, base_model_path=tiny_bert_dir)


def test_card_data_that_is_not_utf8_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "card_data.json"
    BioHiCLModelCardData(model_name="m", base_model="a/b").save(path)
    offset = _latin1(path, "model_name")
    with pytest.raises(DataError) as raised:
        BioHiCLModelCardData.load(path)
    assert str(raised.value) == f"{path}: not UTF-8 (byte 0xe9 at offset {offset})"
    path.write_text('{"model_name": ', encoding="utf-8")
    with pytest.raises(DataError) as raised:
        BioHiCLModelCardData.load(path)
    assert str(raised.value) == f"{path}: line 1: not valid JSON (Expecting value at column 16)"


def test_a_biohicl_config_read_directly_that_is_not_utf8_is_one_line(adapter):
    from biohicl.errors import ConfigError
    from biohicl.models.config import BioHiCLConfig

    path = adapter / "biohicl_config.json"
    offset = _latin1(path, "note")
    with pytest.raises(ConfigError, match=f"^{re.escape(f'{path}: not UTF-8 (byte 0xe9 at offset {offset})')}$"):
        BioHiCLConfig.from_json_file(path)


@pytest.mark.parametrize("value", [5, [], "text"])
def test_card_data_that_is_not_a_json_object_is_one_line(tmp_path, value):
    from biohicl.errors import ConfigError

    path = tmp_path / "card_data.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    kind = type(value).__name__
    with pytest.raises(ConfigError, match=f"^{re.escape(f'{path}: expected a JSON object, got {kind}')}$"):
        BioHiCLModelCardData.load(path)

"""A model folder's sentence-transformers JSON files (the user's own folder, or one from the Hub) that are truncated or
not UTF-8: one :class:`ModelLoadError` naming the file, not the decoder's traceback."""

from __future__ import annotations

import shutil

import pytest

from biohicl.errors import ModelLoadError
from biohicl.models.model import BioHiCL


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            b'{"prompts": {"query": "query: ", "docu',
            "line 1: not valid JSON (Unterminated string starting at column 34)",
        ),
        (b'{"prompts": {"query": "\xff"}}', "not UTF-8 (byte 0xff at offset 23)"),
    ],
    ids=["truncated", "not_utf8"],
)
def test_a_broken_config_sentence_transformers_json_is_one_line_naming_it(tiny_bert_dir, tmp_path, content, reason):
    folder = tmp_path / "model"
    shutil.copytree(tiny_bert_dir, folder)
    config = folder / "config_sentence_transformers.json"
    config.write_bytes(content)
    with pytest.raises(ModelLoadError) as raised:
        BioHiCL.from_base(str(folder))
    assert str(raised.value) == f"{config}: {reason}"

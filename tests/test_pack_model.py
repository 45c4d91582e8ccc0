"""``scripts/pack_model.py``: a model folder carried in pieces and laid out as a Hugging Face cache entry."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import load_script
from safetensors.numpy import load_file


@pytest.fixture(scope="module")
def pack_model():
    return load_script("pack_model")


def test_pieces_from_two_transfers_rebuild_the_float16_rounded_model(tmp_path, tiny_bert_dir, pack_model):
    from huggingface_hub import snapshot_download

    record = pack_model.pack(tiny_bert_dir, tmp_path / "pack", piece_mb=0.01)
    assert len(record["pieces"]) >= 3
    later = tmp_path / "second-transfer"  # pieces that travelled separately
    later.mkdir()
    for name in record["pieces"][1:]:
        shutil.move(tmp_path / "pack" / name, later / name)

    snapshot = pack_model.unpack([tmp_path / "pack", later], "org/tiny-bert", tmp_path / "hf")
    found = snapshot_download("org/tiny-bert", cache_dir=tmp_path / "hf", local_files_only=True)
    assert str(snapshot) == found
    original = load_file(str(tiny_bert_dir / "model.safetensors"))
    rebuilt = load_file(str(snapshot / "model.safetensors"))
    assert set(rebuilt) == set(original)
    for name, array in original.items():
        expected = array.astype(np.float16).astype(np.float32) if array.dtype == np.float32 else array
        assert rebuilt[name].dtype == array.dtype and np.array_equal(rebuilt[name], expected), name
    assert (snapshot / "vocab.txt").read_bytes() == (tiny_bert_dir / "vocab.txt").read_bytes()
    assert (tmp_path / "hf" / "models--org--tiny-bert" / "refs" / "main").read_text() == "0" * 40


def test_a_corrupt_or_missing_piece_is_named(tmp_path, tiny_bert_dir, pack_model):
    record = pack_model.pack(tiny_bert_dir, tmp_path / "pack", piece_mb=0.01)
    first = tmp_path / "pack" / record["pieces"][0]
    data = bytearray(first.read_bytes())
    data[10] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(SystemExit, match=r"pack.json: the joined pieces do not match its sha256"):
        pack_model.unpack([tmp_path / "pack"], "org/tiny", tmp_path / "hf")
    (tmp_path / "pack" / record["pieces"][-1]).unlink()
    with pytest.raises(SystemExit, match=rf"{record['pieces'][-1]}: piece missing"):
        pack_model.unpack([tmp_path / "pack"], "org/tiny", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()  # nothing half-written

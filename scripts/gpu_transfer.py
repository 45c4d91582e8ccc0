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
#: The copy of the study folder a call cut short brings back (:class:`Progress`).
PROGRESS = "progress.tar.xz"
#: Where the progress copy is written before it is renamed over :data:`PROGRESS`: in ``$OUT`` itself, so the rename
#: stays on one filesystem when ``$OUT`` is its own mount (from its parent it failed with EXDEV). Its name keeps to the
#: letters the device brings back; a call cut while it is written brings it back, partial, and collect ignores it;
#: the final pack removes it.
PROGRESS_STAGING = f".{PROGRESS}.tmp"
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


def tar_xz(target: Path, members: list[tuple[Path, str]], exclude=lambda path: False, preset: int = 6) -> Path:
    """An xz tar of ``members`` (path, name in the archive), leaving out the paths ``exclude`` names."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if exclude(Path(info.name)) else info

    with tarfile.open(target, "w:xz", preset=preset) as tar:
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


def write_atomic(path: Path, data: bytes) -> None:
    """``path`` written beside and renamed over, so a call cut meanwhile leaves the old file or the new, whole."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def write_logs(output_dir: Path, out: Path, session: Session) -> None:
    """The session log and the worker logs, their last half MiB each, as ``out/session.log`` and ``out/workers.log``
    (the whole logs travel in the study archive)."""
    flat = {"session.log": [session.path], "workers.log": sorted((output_dir / "logs").glob("worker*.log"))}
    for name, logs in flat.items():
        text = "".join(f"===== {p.name}\n{p.read_text(encoding='utf-8', errors='replace')}\n" for p in logs)
        write_atomic(out / name, text[-MIB // 2 :].encode("utf-8"))


def checkpoint(path: Path) -> bool:
    return any(part.startswith("checkpoint-") for part in path.parts)


#: What a packed study keeps, the most first: each level is tried until its archive fits the room left in $OUT.
LEVELS = [
    ("whole (no checkpoints)", checkpoint),
    ("no weights", lambda p: checkpoint(p) or p.name.endswith(HEAVY)),
    ("records only", lambda p: p.suffix not in ("", ".json", ".md", ".log")),
]


def archive_study(output_dir: Path, archive: Path, room: int, preset: int = 6) -> str:
    """``output_dir`` as an xz tar at the first of :data:`LEVELS` that fits ``room`` bytes; returns the level kept
    ("nothing (too large)" when none fits: no archive left; "nothing" when there is no folder)."""
    if not output_dir.is_dir():
        return "nothing"
    for level, exclude in LEVELS:
        tar_xz(archive, [(output_dir, ".")], exclude, preset)
        if archive.stat().st_size <= room:
            return level
    archive.unlink()
    return "nothing (too large)"


def finished_runs(output_dir: Path) -> list[str]:
    """The study's finished runs, as folders relative to it: each holds its ``eval.json``, written last."""
    found = [p.parent for p in output_dir.rglob("eval.json") if not checkpoint(p)] if output_dir.is_dir() else []
    return sorted(str(folder.relative_to(output_dir)) for folder in found)


def write_back(out: Path, record: dict) -> None:
    write_atomic(out / BACK, json.dumps({"format": 1, **record}, indent=1).encode("utf-8"))


class Progress:
    """What a call cut short still brings back: called at each poll while the phases run, it refreshes the logs and
    ``back.json`` (``final``: false; the phases as they stand) in ``out`` and, each time another run has finished, the
    study folder (no checkpoints; xz preset 1) as ``out/progress.tar.xz``, one file of at most 15 MiB renamed into
    place. ``back.json``'s ``kept`` and ``progress.runs`` say what that file holds: a copy too large to fit, or one that
    failed, leaves the last one there and says so; it is tried again when another run finishes, not at each poll.
    :func:`pack_back` replaces both at the end of a call that was not cut."""

    def __init__(self, output_dir: Path, out: Path, session: Session, state: dict):
        self.output_dir, self.out, self.session, self.state = output_dir, out, session, state
        self.tried: list[str] | None = None  # the runs of the last copy tried: the first call copies at once
        self.held = {"kept": "nothing", "runs": []}  # what out/progress.tar.xz holds
        self.room = 15 * MIB  # one file of $OUT's, with room to spare
        self.failed = False

    def __call__(self) -> None:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            write_logs(self.output_dir, self.out, self.session)
            runs = finished_runs(self.output_dir)
            if runs != self.tried:
                self.tried = runs  # tried once per set of finished runs, even when it fails
                self.copy(runs)
            progress = {"name": PROGRESS if (self.out / PROGRESS).is_file() else None, "runs": self.held["runs"]}
            write_back(self.out, {"final": False, "output_dir": str(self.output_dir), "kept": self.held["kept"],
                                  "pieces": [], "progress": progress, **self.state})  # fmt: skip
        except Exception as error:  # a copy that failed must not stop the study
            if not self.failed:
                self.session.say(
                    f"progress copy failed ({type(error).__name__}: {error}); tried again when another run finishes"
                )
            self.failed = True

    def copy(self, runs: list[str]) -> None:
        staging = self.out / PROGRESS_STAGING
        try:
            kept = archive_study(self.output_dir, staging, self.room, preset=1)
            if staging.is_file():
                staging.replace(self.out / PROGRESS)
                self.held = {"kept": kept, "runs": runs}
                self.session.say(f"copied into {self.out}: {len(runs)} finished run(s) ({kept})")
            elif kept != "nothing":
                self.session.say(
                    f"progress copy of {len(runs)} finished run(s) not made ({kept}); {PROGRESS} keeps "
                    f"{len(self.held['runs'])}"
                )
        finally:
            staging.unlink(missing_ok=True)


def pack_back(output_dir: Path, out: Path, state: dict, session: Session) -> None:
    """Tar+xz ``output_dir`` (no ``checkpoint-*``) into ``out/study.tar.xz.NNN`` with ``back.json``, the session and
    worker logs (their last half MiB) and ``results.md`` beside them, within $OUT's file count, size and depth
    limits; the last progress copy stays until ``back.json`` names what replaces it, where both fit."""
    out.mkdir(parents=True, exist_ok=True)
    (out / PROGRESS_STAGING).unlink(missing_ok=True)  # left by a progress copy cut short
    write_logs(output_dir, out, session)
    if (output_dir / "results.md").is_file():
        shutil.copyfile(output_dir / "results.md", out / "results.md")
    progress = out / PROGRESS
    beside = [p for p in out.iterdir() if p.is_file() and p.name not in (BACK, PROGRESS)]
    others = len(beside) + 1  # + back.json
    room = min((OUT_TOTAL_MIB - 2) * MIB - sum(p.stat().st_size for p in beside), (OUT_FILES - others) * 15 * MIB)
    archive = out.parent / f".{out.name}-study.tar.xz"
    kept = archive_study(output_dir, archive, room)
    size = archive.stat().st_size if archive.is_file() else 0
    if progress.is_file() and (size + progress.stat().st_size > room or -(-size // (15 * MIB)) + others >= OUT_FILES):
        progress.unlink()  # no room for both
    pieces = split_file(archive, 15 * MIB, out, "study.tar.xz") if archive.is_file() else []
    archive.unlink(missing_ok=True)
    write_back(out, {"final": True, "output_dir": str(output_dir), "kept": kept, "pieces": pieces, **state})
    progress.unlink(missing_ok=True)
    session.say(f"packed {kept} into {len(pieces)} piece(s) in {out}")

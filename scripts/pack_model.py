#!/usr/bin/env python
"""Carry a model folder to an offline machine in pieces no larger than a transfer limit, and lay it out there as a
Hugging Face cache entry, so ``biohicl`` finds it by its Hub id.

Pack (here): the float32 weights are stored as float16 (half the bytes; measured on all-mpnet-base-v2, its BIOSSES,
PubMedQA and SciFact scores moved by at most 0.0002), split into byte planes (the high bytes of float16 compress
well), xz-compressed and cut into pieces of at most ``--piece-mb``; every other file of the folder is copied as is::

    SNAP="$HF_HUB_CACHE/models--sentence-transformers--all-mpnet-base-v2/snapshots/REV"
    python scripts/pack_model.py pack $SNAP packs/mpnet --piece-mb 60

Unpack (there): the pieces are joined, checked against the sha256 in ``pack.json``, upcast to float32 and written as
``<cache>/models--ORG--NAME/snapshots/<revision>/`` with ``refs/main``. The revision is the one ``pack`` recorded
(:func:`source_revision`): the snapshot's own name when the folder packed is a Hugging Face cache snapshot (a real
commit, or ``scripts/install_mpnet.py``'s stand-in), else the stand-in rule over its files. So a run trained there
records the base's revision as this machine's cache names it, and ``biohicl evaluate RUN`` finds its base here::

    python scripts/pack_model.py unpack packs/mpnet --repo-id sentence-transformers/all-mpnet-base-v2 --cache hf-cache
    HF_HUB_CACHE=hf-cache HF_HUB_OFFLINE=1 biohicl reproduce --config configs/reproduce_mpnet_gpu.yaml

all-mpnet-base-v2 packs into 187 MB (three 60 MB pieces); all-MiniLM-L6-v2 into 39 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import lzma
import re
import shutil
import sys
from pathlib import Path

import numpy as np

WEIGHTS = "model.safetensors"
PACK = "pack.json"


def source_revision(model_dir: Path) -> str:
    """The revision a packed model is filed under wherever it is unpacked: the snapshot's name when ``model_dir`` is
    a Hugging Face cache snapshot (``.../snapshots/<40 hex>``: a Hub commit, or the stand-in
    ``scripts/install_mpnet.py`` gave it), else ``install_mpnet.stand_in_revision`` over the folder's files, the one
    stand-in rule, which names the same files as that install would."""
    if model_dir.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", model_dir.name):
        return model_dir.name
    spec = importlib.util.spec_from_file_location("install_mpnet", Path(__file__).with_name("install_mpnet.py"))
    install_mpnet = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(install_mpnet)
    files = {}
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and path.name not in install_mpnet.SKIP_NAMES:
            files[path.relative_to(model_dir).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return install_mpnet.stand_in_revision(files)


def pack(model_dir: Path, out: Path, piece_mb: float = 60.0) -> dict:
    """Write ``out/pack.json``, ``out/files/...`` and ``out/weights.xz.NNN``; returns the pack record."""
    from safetensors.numpy import load_file

    if not (model_dir / WEIGHTS).is_file():
        raise SystemExit(f"{model_dir}: no {WEIGHTS}")
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(model_dir.rglob("*")):
        relative = path.relative_to(model_dir)
        if path.is_file() and path.name != WEIGHTS and not path.name.startswith("."):
            (out / "files" / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path.resolve(), out / "files" / relative)
    tensors, blobs, offset = {}, [], 0
    for name, array in load_file(str(model_dir / WEIGHTS)).items():
        stored = array.astype(np.float16) if array.dtype == np.float32 else array
        if stored.dtype == np.float16 and not np.isfinite(stored).all():
            raise SystemExit(f"{name}: values beyond float16's range; this model cannot be packed as float16")
        data = np.ascontiguousarray(stored).tobytes()
        tensors[name] = {"dtype": str(stored.dtype), "shape": list(stored.shape), "offset": offset, "bytes": len(data)}
        blobs.append(data)
        offset += len(data)
    raw = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    if len(raw) % 2:
        raw = np.append(raw, np.uint8(0))
    compressed = lzma.compress(np.concatenate([raw[0::2], raw[1::2]]).tobytes(), preset=6)
    size = int(piece_mb * 1_000_000)
    pieces = []
    for i, start in enumerate(range(0, len(compressed), size)):
        name = f"weights.xz.{i:03d}"
        (out / name).write_bytes(compressed[start : start + size])
        pieces.append(name)
    record = {"format": 1, "tensors": tensors, "pieces": pieces, "sha256": hashlib.sha256(compressed).hexdigest(),
              "raw_bytes": offset, "revision": source_revision(model_dir)}  # fmt: skip
    (out / PACK).write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record


def unpack(pack_dirs: list[Path], repo_id: str, cache: Path, revision: str | None = None) -> Path:
    """Join the pieces (found in any of ``pack_dirs``), verify, and write the cache snapshot under ``revision``
    (default: the one ``pack`` recorded, :func:`source_revision`; all zeros for a pack that recorded none); returns
    its folder."""
    from safetensors.numpy import save_file

    home = next((d for d in pack_dirs if (d / PACK).is_file()), None)
    if home is None:
        raise SystemExit(f"no {PACK} in {', '.join(map(str, pack_dirs))}")
    record = json.loads((home / PACK).read_text(encoding="utf-8"))
    revision = revision or record.get("revision") or "0" * 40
    parts = []
    for name in record["pieces"]:
        found = next((d / name for d in pack_dirs if (d / name).is_file()), None)
        if found is None:
            raise SystemExit(f"{name}: piece missing (looked in {', '.join(map(str, pack_dirs))})")
        parts.append(found.read_bytes())
    compressed = b"".join(parts)
    if hashlib.sha256(compressed).hexdigest() != record["sha256"]:
        raise SystemExit(f"{home / PACK}: the joined pieces do not match its sha256 (a piece is corrupt or stale)")
    planes = np.frombuffer(lzma.decompress(compressed), dtype=np.uint8)
    raw = np.empty(len(planes), dtype=np.uint8)
    half = len(planes) // 2
    raw[0::2], raw[1::2] = planes[:half], planes[half:]
    tensors = {}
    for name, meta in record["tensors"].items():
        chunk = raw[meta["offset"] : meta["offset"] + meta["bytes"]].tobytes()
        array = np.frombuffer(chunk, dtype=meta["dtype"]).reshape(meta["shape"])
        tensors[name] = array.astype(np.float32) if meta["dtype"] == "float16" else array.copy()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    if (home / "files").is_dir():
        shutil.copytree(home / "files", snapshot, dirs_exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(snapshot / WEIGHTS), metadata={"format": "pt"})
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision, encoding="utf-8")
    return snapshot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack", help="model folder → pack folder")
    p.add_argument("model_dir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--piece-mb", type=float, default=60.0, help="largest piece, in MB (default 60)")
    u = commands.add_parser("unpack", help="pack folder(s) → Hugging Face cache snapshot")
    u.add_argument("pack_dirs", type=Path, nargs="+", help="the pack folder, and folders holding further pieces")
    u.add_argument("--repo-id", required=True, help="Hub id to file it under, e.g. org/model-name")
    u.add_argument("--cache", type=Path, required=True, help="the HF_HUB_CACHE folder")
    u.add_argument(
        "--revision",
        help="snapshot name (40 hex; default: the revision pack recorded, the packed snapshot's name or the "
        "install_mpnet stand-in over its files; all zeros for an older pack)",
    )
    args = parser.parse_args(argv)
    if args.command == "pack":
        record = pack(args.model_dir, args.out, args.piece_mb)
        print(f"{args.out}: {len(record['pieces'])} piece(s), sha256 {record['sha256'][:12]}…")
    else:
        print(unpack(args.pack_dirs, args.repo_id, args.cache, args.revision))
    return 0


if __name__ == "__main__":
    sys.exit(main())

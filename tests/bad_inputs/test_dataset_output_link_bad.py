"""``build-dataset --output LINK`` where LINK is a symlink to a folder elsewhere (scratch storage): the build is
written through the link (built beside the link's target and swapped in there), the link stays a link, and no
``.old``/``.tmp`` leftover is kept. A leftover that is itself a link is unlinked (its target untouched); one that
cannot be removed is a warning naming it, not silence."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from biohicl.data.storage import recover_interrupted_save

NAMES = [["Diabetes Mellitus, Type 2", "Humans"], ["Diabetes Mellitus", "Humans"], ["Heart Diseases"],
         ["Brain Neoplasms", "Humans"], ["Insulin Resistance"]]  # fmt: skip


def write_bioasq(path: Path, n: int = 10) -> Path:
    articles = [
        {"pmid": str(100 + i), "title": f"Title {i}", "abstractText": f"Abstract {i}.", "meshMajor": NAMES[i % 5]}
        for i in range(n)
    ]
    path.write_text(json.dumps({"articles": articles}), encoding="utf-8")
    return path


def build_argv(inp: Path, out: Path, *extra: str) -> list[str]:
    return ["build-dataset", "--source", "bioasq", "--input", str(inp), "--output", str(out), "--no_progress",
            "--no_arrow", *extra]  # fmt: skip


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_linked_output_is_rebuilt_through_the_link(tmp_path, run_cli):
    inp = write_bioasq(tmp_path / "allMeSH.json")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    target, link = scratch / "ds", tmp_path / "dsl"
    assert run_cli(build_argv(inp, target, "--top_k", "1"), expect_error=False).code == 0
    link.symlink_to(target, target_is_directory=True)
    assert json.loads((target / "summary.json").read_text())["top_k"] == 1
    # what an older biohicl left after renaming the link itself: a hidden link to the build it replaced
    (tmp_path / f".dsl.old-{dead_pid()}").symlink_to(target, target_is_directory=True)

    result = run_cli(build_argv(inp, link, "--top_k", "2"), expect_error=False)

    assert result.code == 0, result.err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads((target / "summary.json").read_text())["top_k"] == 2  # the new build, in the target
    assert hidden(tmp_path) == [] and hidden(scratch) == []


def test_a_link_to_a_missing_folder_gets_the_build_in_its_target(tmp_path, run_cli):
    inp = write_bioasq(tmp_path / "allMeSH.json")
    target, link = tmp_path / "scratch" / "ds", tmp_path / "dsl"
    link.symlink_to(target, target_is_directory=True)

    assert run_cli(build_argv(inp, link), expect_error=False).code == 0

    assert link.is_symlink() and (target / "summary.json").is_file()
    assert hidden(tmp_path) == [] and hidden(tmp_path / "scratch") == []


def test_a_dead_builds_leftover_that_is_a_link_is_unlinked_and_its_target_kept(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("kept")
    leftover = tmp_path / f".out.old-{dead_pid()}"
    leftover.symlink_to(elsewhere, target_is_directory=True)

    recover_interrupted_save(out)

    assert not leftover.is_symlink() and not leftover.exists()
    assert (elsewhere / "keep.txt").read_text() == "kept"


def test_a_leftover_that_cannot_be_removed_is_a_warning_naming_it(tmp_path, monkeypatch, caplog):
    out = tmp_path / "out"
    out.mkdir()
    leftover = tmp_path / f".out.tmp-{dead_pid()}"
    leftover.mkdir()
    (leftover / "part.parquet").write_bytes(b"x")

    def refuse(path, *args, **kwargs):  # we run as root: simulate a file that may not be removed
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "unlink", refuse)
    with caplog.at_level(logging.WARNING, logger="biohicl.data.storage"):
        recover_interrupted_save(out)

    assert (leftover / "part.parquet").is_file()
    assert [r.getMessage() for r in caplog.records] == [
        f"{leftover}: left from an earlier build, not removed (Permission denied); remove it by hand"
    ]

"""Atomic outputs: a failure inside the block leaves the previous file/folder intact and no temp files behind."""

from __future__ import annotations

import json

import pytest

from biohicl.atomic import atomic_directory, atomic_path, atomic_write_json
from biohicl.errors import BioHiCLError


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "results.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_nan_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "r.json", {"x": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_directory_replaced_only_on_success(tmp_path):
    target = tmp_path / "ds"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("second")
        raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "first"
    with atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("third")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_read_only_folder_gives_one_line_error(tmp_path):
    import os

    if os.geteuid() == 0:
        # root ignores permission bits; simulate the failure the OS would report
        import errno
        from unittest import mock

        denied = PermissionError(errno.EACCES, "Permission denied")
        with (
            mock.patch("tempfile.mkstemp", side_effect=denied),
            pytest.raises(BioHiCLError, match=r"r\.json: cannot write here"),
        ):
            atomic_write_json(tmp_path / "r.json", {})
        return
    tmp_path.chmod(0o500)
    with pytest.raises(BioHiCLError, match="cannot write here"):
        atomic_write_json(tmp_path / "r.json", {})


def test_full_disk_is_reported(tmp_path, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "out.json"
    with pytest.raises(BioHiCLError, match="no space left"), atomic_path(target) as tmp:
        monkeypatch.setattr("os.replace", full)
        tmp.write_text("x")
    assert not target.exists()

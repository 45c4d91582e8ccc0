"""Atomic outputs: a failure inside the block leaves the previous file/folder intact and no temp files behind."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest

from biohicl.atomic import atomic_directory, atomic_path, atomic_write_json, open_regular_file
from biohicl.errors import BioHiCLError, DataError


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "results.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_non_finite_float_is_written_as_null_so_the_file_is_strict_json(tmp_path):
    """NaN was refused with a ValueError traceback (a study report with a NaN dev-pick score was not written)."""
    nan, inf = float("nan"), float("inf")
    target = atomic_write_json(tmp_path / "r.json", {"x": nan, "runs": [[0, inf], (2, -inf)], "y": {"z": 0.5}})
    text = target.read_text(encoding="utf-8")
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text}")) == {
        "x": None,
        "runs": [[0, None], [2, None]],
        "y": {"z": 0.5},
    }
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


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


def test_directory_refuses_to_replace_a_file(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("the user's file")
    with pytest.raises(BioHiCLError, match=r"notes.txt is a file, not a folder"), atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("x")
    assert target.read_text() == "the user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


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


def dead_pid() -> int:
    """The pid of a process that has exited."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def shows_umask() -> bool:
    """Whether ``/proc/self/status`` has a ``Umask:`` line, the condition under which the library reads it."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            return any(line.startswith("Umask:") for line in handle)
    except OSError:
        return False


def test_published_files_get_the_usual_permissions(tmp_path):
    """Not the owner-only mode of a temporary file: a shared index stays readable by the group."""
    import os

    import biohicl.atomic as atomic
    from biohicl.atomic import atomic_write_text

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_directory(tmp_path / "folder") as tmp:
            (tmp / "part").write_text("y")
    finally:
        os.umask(mask)
    # the umask of the write where Linux shows it (atomic.current_umask: a "Umask:" line in /proc/self/status, Linux
    # 4.7 on; an older kernel has the file without the line); elsewhere the one of the import, whatever the umask
    # the suite started under
    umask = 0o022 if shows_umask() else atomic._UMASK
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o777 & ~umask


def test_temporaries_of_killed_writers_are_swept_and_live_ones_kept(tmp_path):
    from biohicl.atomic import atomic_write_text, sweep_temporaries

    dead = dead_pid()
    stale_file = tmp_path / f".out.json.{dead}-abc.tmp"
    stale_dir = tmp_path / f".out.json.{dead}-def.tmp"
    live = tmp_path / ".out.json.1-xyz.tmp"  # pid 1 is alive
    other = tmp_path / f".other.json.{dead}-abc.tmp"  # another target's temporary: not ours
    stale_file.write_text("half")
    stale_dir.mkdir()
    (stale_dir / "part").write_text("half")
    live.write_text("busy")
    other.write_text("half")
    atomic_write_text(tmp_path / "out.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".out.json.1-xyz.tmp", other.name, "out.json"])
    assert sweep_temporaries(tmp_path / "other.json") == 1 and not other.exists()


def test_check_writable_probes_without_leaving_anything(tmp_path):
    from biohicl.atomic import check_writable

    assert check_writable(tmp_path / "new" / "deeper" / "r.json") == tmp_path / "new" / "deeper" / "r.json"
    (tmp_path / "file").write_text("x")
    with pytest.raises(BioHiCLError, match=r"file/r\.json: cannot write here \(.*file is a file, not a folder\)"):
        check_writable(tmp_path / "file" / "r.json")
    with pytest.raises(BioHiCLError, match="is a folder; give the path of a file"):
        check_writable(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no probe, no folder created


def test_shareable_mode_follows_the_current_umask():
    import os

    from biohicl.atomic import current_umask, shareable_mode

    previous = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert (shareable_mode(), shareable_mode(directory=True)) == (0o640, 0o750)
    finally:
        os.umask(previous)


def test_atomic_write_text_fsyncs_only_when_asked(tmp_path, monkeypatch):
    """``fsync=True`` flushes the temporary file before the rename (index manifests and shards need it)."""
    import os

    from biohicl.atomic import atomic_write_text

    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write_text(tmp_path / "plain.json", "{}")
    assert synced == []
    atomic_write_text(tmp_path / "durable.json", "é\n", fsync=True)
    assert synced == [len("é\n".encode())]  # once, on the written temporary file (3 bytes)
    assert (tmp_path / "durable.json").read_text(encoding="utf-8") == "é\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["durable.json", "plain.json"]


def test_a_pid_check_that_cannot_answer_keeps_the_temporary_and_the_write_goes_on(tmp_path, monkeypatch):
    """On Windows ``os.kill(pid, 0)`` raises a plain OSError (WinError 87, EINVAL), neither ProcessLookupError nor
    PermissionError: once a kill had left a temporary of a target, every later atomic write of it failed, and so did
    ``recover_interrupted_save``. A check that cannot answer now counts the process as running."""
    import errno
    import os

    from biohicl.atomic import atomic_write_text, pid_alive
    from biohicl.data.storage import recover_interrupted_save

    dead = dead_pid()

    def windows_kill(pid: int, sig: int) -> None:
        raise OSError(errno.EINVAL, "The parameter is incorrect")

    monkeypatch.setattr(os, "kill", windows_kill)
    assert pid_alive(dead) is True
    stale = tmp_path / f".results.json.{dead}-abcd1234.tmp"
    stale.write_text("partial")
    assert atomic_write_text(tmp_path / "results.json", "{}\n") == tmp_path / "results.json"
    assert (tmp_path / "results.json").read_text() == "{}\n" and stale.read_text() == "partial"  # kept: unknown
    (tmp_path / f".pairs.tmp-{dead}").mkdir()
    recover_interrupted_save(tmp_path / "pairs")
    assert (tmp_path / f".pairs.tmp-{dead}").is_dir() and not (tmp_path / "pairs").exists()


class FakeKernel32:
    """The Win32 calls of ``atomic._windows_pid_alive``: ``OpenProcess`` gives ``handle`` (0: fails with ``error``),
    ``GetExitCodeProcess`` writes ``exit_code``."""

    def __init__(self, handle: int, error: int = 0, exit_code: int = 0) -> None:
        self.handle, self.error, self.exit_code = handle, error, exit_code
        self.opened: list[tuple[int, bool, int]] = []
        self.closed: list[int] = []

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int | None:
        self.opened.append((access, inherit, pid))
        return self.handle or None

    def GetExitCodeProcess(self, handle: int, code) -> bool:
        code._obj.value = self.exit_code
        return True

    def CloseHandle(self, handle: int) -> bool:
        self.closed.append(handle)
        return True


@pytest.mark.parametrize(
    ("kernel32", "alive"),
    [
        (FakeKernel32(handle=42, exit_code=259), True),  # STILL_ACTIVE
        (FakeKernel32(handle=42, exit_code=0), False),  # exited, its handle still held by someone
        (FakeKernel32(handle=0, error=87), False),  # ERROR_INVALID_PARAMETER: no such process
        (FakeKernel32(handle=0, error=5), True),  # ERROR_ACCESS_DENIED: another user's process
        (FakeKernel32(handle=0, error=1450), True),  # anything else: cannot tell, counted as running
    ],
    ids=["running", "exited", "no-such-process", "access-denied", "other-error"],
)
def test_windows_asks_the_win32_api_not_os_kill(monkeypatch, kernel32, alive):
    """On Windows (``os.name == "nt"``) the pid is checked with OpenProcess + GetExitCodeProcess, never os.kill
    (signal 0 is CTRL_C_EVENT there). The pid used is one whose POSIX answer is the opposite."""
    import ctypes.wintypes  # noqa: F401 (imported before os.name is changed)
    import os

    import biohicl.atomic as atomic

    kills = []
    pid = dead_pid() if alive else 1
    monkeypatch.setattr(atomic, "_kernel32", lambda: (kernel32, lambda: kernel32.error), raising=False)
    monkeypatch.setattr(os, "kill", lambda pid, sig: kills.append((pid, sig)))  # there: a console Ctrl+C, sent
    with monkeypatch.context() as windows:  # undone before pytest reports (it reads os.name)
        windows.setattr(os, "name", "nt")
        answer = atomic.pid_alive(pid)
    assert (answer, kills) == (alive, [])
    assert kernel32.opened == [(0x1000, False, pid)]  # PROCESS_QUERY_LIMITED_INFORMATION
    assert kernel32.closed == ([42] if kernel32.handle else [])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs symlinks and FIFOs (POSIX)")
def test_open_regular_file_refuses_links_and_other_files_and_leaves_their_targets_alone(tmp_path):
    previous = os.umask(0o002)
    try:
        fd = open_regular_file(tmp_path / "log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    finally:
        os.umask(previous)
    assert os.get_blocking(fd)  # blocking again after the non-blocking open
    os.write(fd, b"x\n")
    os.close(fd)
    assert stat.S_IMODE((tmp_path / "log").stat().st_mode) == 0o664 and (tmp_path / "log").read_bytes() == b"x\n"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "link").symlink_to(victim)
    (tmp_path / "dangling").symlink_to(tmp_path / "created.txt")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")  # opened non-blocking: refused at once, never waited on
    for name in ("link", "dangling", "folder", "fifo"):
        with pytest.raises(BioHiCLError, match=rf"^{tmp_path / name}: not a regular file"):
            open_regular_file(tmp_path / name, os.O_WRONLY | os.O_CREAT)
    refused = DataError("a run lock must be a regular file", tmp_path / "link")
    with pytest.raises(DataError) as caught:
        open_regular_file(tmp_path / "link", os.O_RDWR | os.O_CREAT, 0o644, refused)
    assert caught.value is refused
    assert victim.read_text() == "keep" and not (tmp_path / "created.txt").exists()


@pytest.mark.parametrize("name", [".", "..", "./", "sub/.."])
def test_a_directory_is_never_swapped_for_the_working_folder_or_one_holding_it(tmp_path, monkeypatch, name):
    # `soup --output .` swapped the folder the shell stood in (or failed: PosixPath('.') has an empty name)
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "kept.txt").write_text("mine")
    monkeypatch.chdir(work)
    refusal = rf"^{re.escape(name)}: is the working folder or holds it; "
    with pytest.raises(BioHiCLError, match=refusal), atomic_directory(name):
        pass
    assert (work / "kept.txt").read_text() == "mine"
    with atomic_directory("sub/out") as tmp:  # a folder inside it is written as before
        (tmp / "x").write_text("1")
    assert (work / "sub" / "out" / "x").read_text() == "1"


def test_a_full_disk_reported_by_safetensors_inside_an_atomic_write_names_the_target(tmp_path, monkeypatch):
    import safetensors.torch
    import torch
    from safetensors import SafetensorError

    def refused(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "serialize_file", refused)
    target = tmp_path / "embeddings.safetensors"
    with pytest.raises(BioHiCLError) as caught, atomic_path(target) as tmp:
        safetensors.torch.save_file({"w": torch.zeros(2)}, str(tmp))
    assert str(caught.value) == f"{target}: no space left on device; nothing was written there"
    assert list(tmp_path.iterdir()) == []


def test_check_writable_fails_on_a_full_disk_where_an_empty_file_still_fits(tmp_path, monkeypatch):
    """A disk at 100% still takes an empty file (an inode, no block): the probe writes a byte, so a full disk fails
    the check, before any slow work, and the probe is gone."""
    import errno

    from biohicl import atomic
    from biohicl.atomic import check_writable, check_writable_folder

    real_write, real_fsync, wrote = os.write, os.fsync, []

    def full_disk_write(fd, data):
        if data:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    def fsync(fd):
        wrote.append(os.fstat(fd).st_size)
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    assert check_writable(tmp_path / "r.json") == tmp_path / "r.json"
    assert wrote == [1]  # a byte was written and flushed to disk before the probe went
    monkeypatch.setattr(atomic.os, "write", full_disk_write)
    with pytest.raises(BioHiCLError) as caught:
        check_writable(tmp_path / "r.json")
    assert str(caught.value) == f"{tmp_path / 'r.json'}: no space left on device; nothing was written there"
    with pytest.raises(BioHiCLError, match="no space left on device"):
        check_writable_folder(tmp_path / "index")
    assert list(tmp_path.iterdir()) == []


def test_a_swap_under_way_is_left_alone_and_an_older_biohicls_leftover_is_put_back(tmp_path, monkeypatch):
    from biohicl import atomic
    from biohicl.atomic import recover_swapped_folder

    live = tmp_path / ".out.old-4242"  # another process between its two renames
    live.mkdir()
    monkeypatch.setattr(atomic, "pid_alive", lambda pid: pid == 4242)
    recover_swapped_folder(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.old-4242"]
    legacy = tmp_path / ".pub1.old"  # the fixed name an older biohicl left
    legacy.mkdir()
    (legacy / "README.md").write_text("card")
    recover_swapped_folder(tmp_path / "pub1")
    assert (tmp_path / "pub1" / "README.md").read_text() == "card" and not legacy.exists()

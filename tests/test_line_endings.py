"""One commit gives one code digest on every platform: ``.gitattributes`` checks text files out with LF (Git for
Windows' default, ``core.autocrlf=true``, would give CRLF) and binary files untouched, and
:func:`biohicl.provenance.source_digest` reads a text source's CRLF as LF, so a Windows clone of a commit records the
version a Linux clone does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from biohicl.provenance import source_digest

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def checkout() -> None:
    """Skip where the tests do not run from a git checkout of biohicl (an unpacked sdist, no git)."""
    if shutil.which("git") is None:
        pytest.skip("no git")
    try:
        top = _git("rev-parse", "--show-toplevel").strip()
    except subprocess.CalledProcessError:
        pytest.skip("not a git checkout")
    if Path(top).resolve() != ROOT or not _git("ls-files", "--", "biohicl/provenance.py").strip():
        pytest.skip("not a git checkout of biohicl")


def _attributes(path: str, *names: str) -> dict[str, str]:
    lines = _git("check-attr", *names, "--", path).splitlines()
    return {line.split(": ")[1]: line.split(": ")[2] for line in lines}


@pytest.mark.usefixtures("checkout")
def test_text_files_are_checked_out_with_lf_and_binary_files_as_they_are():
    for path in ("biohicl/provenance.py", "biohicl/registry.json", "docs/training.md", "notebooks/01_quickstart.ipynb"):
        assert _attributes(path, "text", "eol") == {"text": "auto", "eol": "lf"}, path
    binaries = _git("ls-files", "--", "*.png", "*.gz").split()
    assert "biohicl/resources/mesh2024.tsv.gz" in binaries and len(binaries) > 1
    for path in binaries:
        assert _attributes(path, "text", "diff", "merge") == {"text": "unset", "diff": "unset", "merge": "unset"}, path


@pytest.mark.usefixtures("checkout")
def test_no_tracked_file_holds_crlf():
    """``git ls-files --eol``: every text file is LF in the index, so the LF checkout changes none of them."""
    index_eols = {line.split()[0] for line in _git("ls-files", "--eol").splitlines()}
    assert index_eols <= {"i/lf", "i/-text", "i/none"}, index_eols


def test_the_digest_reads_a_text_sources_crlf_as_lf(tmp_path):
    lf = tmp_path / "lf" / "pkg"
    (lf / "resources").mkdir(parents=True)
    (lf / "mod.py").write_bytes(b'"""doc"""\n\nVALUE = 1\n')
    (lf / "registry.json").write_bytes(b'{\n  "a": 1\n}\n')
    (lf / "notes.md").write_bytes(b"# notes\n\ntext\n")
    (lf / "resources" / "table.tsv.gz").write_bytes(b"\x1f\x8b\r\n\x00")  # binary: its bytes as they are
    digest = source_digest(lf)
    crlf = tmp_path / "crlf" / "pkg"
    shutil.copytree(lf, crlf)
    for name in ("mod.py", "registry.json", "notes.md"):
        (crlf / name).write_bytes((lf / name).read_bytes().replace(b"\n", b"\r\n"))
    assert source_digest(crlf) == digest
    (crlf / "resources" / "table.tsv.gz").write_bytes(b"\x1f\x8b\n\x00")
    assert source_digest(crlf) != digest  # a resource's CRLF is data
    (crlf / "resources" / "table.tsv.gz").write_bytes(b"\x1f\x8b\r\n\x00")
    (crlf / "mod.py").write_bytes(b'"""doc"""\r\n\r\nVALUE = 2\r\n')
    assert source_digest(crlf) != digest


def test_the_digest_of_an_lf_package_is_unchanged_by_the_crlf_rule(tmp_path):
    """Pinned: the digest of LF files is the one recorded before CRLF was read as LF (a lone CR stays a CR)."""
    (tmp_path / "a.py").write_bytes(b"x = 1\n")
    (tmp_path / "b.md").write_bytes(b"cr\ronly\n")
    assert source_digest(tmp_path) == _old_digest(tmp_path)


def _old_digest(root: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(root.iterdir()):
        for part in (path.name.encode(), path.read_bytes()):
            digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:12]

"""The ``biohicl`` command writes UTF-8 on every platform: on Windows a redirected or piped stdout is in the ANSI code
page (cp1252, simulated with ``PYTHONIOENCODING``), where ``evaluate --help`` (its Δ) crashed and ``search --json``
wrote JSON lines that were not UTF-8."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from biohicl.cli import main as cli_main


def test_a_cp1252_stdout_gets_utf8_from_the_console_script():
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    done = subprocess.run(
        [sys.executable, "-m", "biohicl.cli.main", "evaluate", "--help"], capture_output=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-2000:]
    text = done.stdout.decode("utf-8")  # strict: every byte is UTF-8
    assert "also give P(Δ ≥ TARGET)" in " ".join(text.split())  # argparse wraps the help
    assert done.stderr == b""


def _stream(encoding: str, errors: str = "strict") -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors=errors, write_through=True)


def test_utf8_output_reconfigures_only_streams_that_are_not_utf8(monkeypatch):
    stdout, stderr = _stream("cp1252"), _stream("cp1252", "backslashreplace")
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    cli_main.utf8_output()
    assert (stdout.encoding, stdout.errors) == ("utf-8", "surrogateescape")
    assert (stderr.encoding, stderr.errors) == ("utf-8", "backslashreplace")
    print("β-cell Δ → \udcff", end="")  # a lone surrogate: an undecodable byte of a file name, written back as it
    assert stdout.buffer.getvalue() == "β-cell Δ → ".encode() + b"\xff"

    already = _stream("UTF8")
    monkeypatch.setattr(sys, "stdout", already)
    monkeypatch.setattr(sys, "stderr", None)  # pythonw: no stream at all
    cli_main.utf8_output()
    assert (already.encoding, already.errors) == ("UTF8", "strict")  # left as it was

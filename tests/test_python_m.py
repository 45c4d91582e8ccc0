"""``python -m biohicl`` is the ``biohicl`` console script: the same commands, output and exit codes."""

from __future__ import annotations

import subprocess
import sys

from biohicl import __version__


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "biohicl", *args], capture_output=True, text=True, timeout=300)


def test_python_m_biohicl_runs_the_console_script():
    done = _run("--version")
    assert (done.returncode, done.stdout) == (0, f"{__version__}\n"), done.stderr[-2000:]
    listed = _run("--help")
    assert listed.returncode == 0 and listed.stdout.startswith("usage: biohicl <command> [options]")
    wrong = _run("evaluat")
    assert wrong.returncode != 0 and "did you mean evaluate" in wrong.stderr

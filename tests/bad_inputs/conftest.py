"""Helpers of the bad-input suite: run the CLI in-process and check it failed the way a user should see."""

from __future__ import annotations

import re

import pytest

from biohicl.cli import main as cli

PROGRESS = re.compile(r"\d+%\||\[\d+:\d+(:\d+)?[,<]")  # tqdm: "100%|███|" or "[00:00, 85.40 it/s]"
#: The warning a base folder without a sentence-transformers pooling config gets (the tiny test models have none):
#: printed before any error once the model is loaded, and not part of the error.
POOLING_GUESS = re.compile(r"^pooling: .* has no sentence-transformers pooling config; using '(mean|cls)' \(")


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def run_cli(capsys):
    """``run_cli([...])``: run ``biohicl ...`` in-process; ``expect_error=True`` (default) asserts exit code 2, one
    stderr line and no traceback, and returns the line."""

    def run(argv: list[str], expect_error: bool = True) -> CliResult:
        capsys.readouterr()
        try:
            code = cli.main(list(argv))
        except SystemExit as exit_:  # argparse exits; the dispatcher should not let it
            code = exit_.code if isinstance(exit_.code, int) else 1
        out, err = capsys.readouterr()
        result = CliResult(code, out, err)
        if expect_error:
            assert code == 2, (code, out, err)
            assert "Traceback" not in err and "Traceback" not in out
            # progress bars (tqdm: "Loading weights: 100%|...") are not messages; everything else must be one line
            lines = [line for line in err.strip().splitlines() if line.strip() and not PROGRESS.search(line)]
            lines = [line for line in lines if not POOLING_GUESS.match(line)]
            assert len(lines) == 1, err
            assert lines[0].startswith("biohicl"), lines[0]
        return result

    return run

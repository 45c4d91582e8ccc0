"""``python -m biohicl <command> ...``: the ``biohicl`` console script, for an environment whose scripts folder is not
on ``PATH`` (a notebook kernel, ``python -m`` from a virtual environment not activated)."""

from biohicl.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())

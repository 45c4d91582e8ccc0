"""Command-line fronts, one module per ``biohicl`` command (argument parsing only, no logic)."""

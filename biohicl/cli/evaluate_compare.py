"""``biohicl evaluate --compare``: several results files side by side (a Markdown table, a chart), or with
``--paired`` each later file's Δ against the first with its paired-bootstrap interval."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from biohicl.errors import ConfigError

if TYPE_CHECKING:
    from biohicl.cli.evaluate import EvaluateArguments


def compare(args: EvaluateArguments) -> int:
    """``--compare``: Markdown table (stdout and/or --markdown) and PNG chart (--plot) of several results files."""
    from biohicl.cli.output_paths import check_distinct_files
    from biohicl.evaluation.plots import plot_results
    from biohicl.evaluation.report import markdown_report, markdown_table
    from biohicl.evaluation.runner import load_results

    # a report written over a compared record (or the chart over the report) refused before any is read
    check_distinct_files({"--markdown": args.markdown, "--plot": args.plot}, {"--compare": args.compare})
    records = [load_results(path) for path in args.compare]
    if args.paired:
        return compare_paired(args, records)
    labels = args.labels or None
    if labels and len(labels) != len(records):
        raise ConfigError(f"labels: {len(labels)} label(s) for {len(records)} results file(s)")
    table = markdown_table(records, labels=labels, sources=args.compare)  # no Δ between records scored unalike
    text = markdown_report(records, args.compare, labels=labels) if args.markdown else table
    return _report(args, table, text, lambda path: plot_results(records, path, labels=labels), records)


def _report(
    args: EvaluateArguments,
    table: str,
    markdown_text: str,
    draw: Callable[[str], Any],
    records: Sequence[Mapping[str, Any]],
) -> int:
    """Print ``table``, write ``markdown_text`` to ``--markdown`` and ``draw`` the ``--plot`` when they are given;
    both texts end with the note of two base models compared each at its own max length (``own_length_note``)."""
    from biohicl.evaluation.comparison import own_length_note

    if note := own_length_note(records):
        table, markdown_text = f"{table}\n{note}\n", f"{markdown_text}\n{note}\n"
    print(table)
    if args.markdown:
        from biohicl.atomic import atomic_write_text

        atomic_write_text(args.markdown, markdown_text)
        print(f"wrote {args.markdown}")
    if args.plot:
        draw(args.plot)
        print(f"wrote {args.plot}")
    return 0


def compare_paired(args: EvaluateArguments, records: list[dict[str, Any]]) -> int:
    """``--compare ... --paired``: Δ of the later files against the first (or the first ``--base_count``, as their
    mean), with paired-bootstrap intervals."""
    from biohicl.evaluation.plots import plot_paired
    from biohicl.evaluation.report import incomplete_notes
    from biohicl.evaluation.significance import compare_records, markdown_paired

    names, title = ("base", "tuned"), None
    if args.labels:
        if len(args.labels) != 2:
            raise ConfigError(
                f"labels: with --paired give 2 labels (the base side's, then the tuned side's), got {len(args.labels)}"
            )
        names = (args.labels[0], args.labels[1])
        title = f"{names[1]} − {names[0]}, paired bootstrap"
    rows = compare_records(
        records[: args.base_count],
        records[args.base_count :],
        sources=args.compare,
        rounds=args.rounds,
        confidence=args.confidence,
        seed=args.bootstrap_seed,
        resample_models=args.resample_models,
        target=None if args.target is None else args.target / 100,  # points → the metric's scale
    )
    table = markdown_paired(rows, names)
    if notes := incomplete_notes(records):  # a stopped run's record, named as the plain table names it
        table += "\n" + "\n".join(notes) + "\n"
    return _report(args, table, table, lambda path: plot_paired(rows, path, title=title), records)

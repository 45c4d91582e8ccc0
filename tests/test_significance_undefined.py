"""The paired bootstrap where a metric is undefined: a collapsed model's STS predictions (constant or NaN) have no
Spearman, so its task has no Δ and no interval (NaN, shown as – with a note naming the model), and every other row
is computed as before; a round whose Δ alone is undefined is left out and counted."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from biohicl.evaluation.significance import MEAN_ROW, ItemValues, compare_records, markdown_paired, paired_bootstrap

PAIRED = Path(__file__).resolve().parents[1] / "docs/results/study_minilm_cpu_guarded_256/paired"


def task_values(rng: np.random.Generator, sts_predictions: np.ndarray | None = None) -> dict[str, ItemValues]:
    gold = np.random.default_rng(0).random(100) * 4
    sts_ids, qa_ids = tuple(map(str, range(100))), tuple(map(str, range(500)))
    predictions = gold + rng.normal(size=100) if sts_predictions is None else sts_predictions
    return {
        "pubmedqa": ItemValues("pubmedqa", "recall@1", qa_ids, (rng.random(500) < 0.86).astype(float)),
        "biosses": ItemValues("biosses", "spearman", sts_ids, np.asarray(predictions, dtype=float), gold),
    }


def undefined(row) -> bool:
    return all(math.isnan(value) for value in (row.delta, row.low, row.high, row.p_no_gain))


@pytest.mark.parametrize("collapsed", [np.full(100, 0.93), np.full(100, np.nan)])
def test_a_collapsed_seed_leaves_its_task_without_an_interval_and_every_other_row_as_it_was(collapsed):
    rng = np.random.default_rng(1)
    base, seeds = task_values(rng), [task_values(rng), task_values(rng)]
    last = task_values(rng)
    fine = paired_bootstrap(base, [*seeds, last], rounds=500, target=0.01)
    rows = paired_bootstrap(base, [*seeds, {**last, "biosses": task_values(rng, collapsed)["biosses"]}], rounds=500,
                            target=0.01)  # fmt: skip
    pubmedqa, biosses, mean = rows
    assert pubmedqa.to_dict() == fine[0].to_dict()  # drawn first, and the same values: the same row
    assert undefined(biosses) and undefined(mean) and math.isnan(biosses.p_target) and math.isnan(mean.p_target)
    assert biosses.base == fine[1].base and biosses.tuned[:2] == fine[1].tuned[:2] and math.isnan(biosses.tuned[2])
    assert (biosses.rounds, biosses.undefined_rounds, mean.rounds, mean.undefined_rounds) == (500, 500, 500, 500)
    assert biosses.undefined == (
        "the spearman of tuned model 3 is NaN (its predictions are constant or not finite: a collapsed model?)"
    )
    assert mean.undefined == "biosses has no Δ"
    assert fine[1].undefined is None and fine[1].undefined_rounds == 0
    # the two-level bootstrap does not average over the rounds that happen to skip the collapsed seed
    two_level = paired_bootstrap(base, [*seeds, {**last, "biosses": task_values(rng, collapsed)["biosses"]}],
                                 rounds=500, resample_models=True)  # fmt: skip
    assert not undefined(two_level[0]) and undefined(two_level[1]) and undefined(two_level[2])
    table = markdown_paired(rows).splitlines()
    assert table[3] == f"| biosses | spearman | 100 | {fine[1].base:.4f} | – (mean of 3) | – | – | – | – |"
    assert table[4].startswith(f"| {MEAN_ROW} | recall@1 + spearman | 600 |") and table[4].endswith("| – | – | – | – |")
    assert table[-2:] == [
        "note: biosses has no Δ: the spearman of tuned model 3 is NaN (its predictions are constant or not finite: a "
        "collapsed model?)",
        f"note: {MEAN_ROW} has no Δ: biosses has no Δ",
    ]
    assert "Paired bootstrap over the items, 500 rounds (Koehn, 2004)." in table


def test_rounds_whose_delta_alone_is_undefined_are_left_out_and_counted():
    """Three pairs: a resample that draws one pair three times, or whose draws tie on prediction or gold, has no
    Spearman; the interval and P are over the other rounds, whose number the row and a note give."""
    gold = np.array([1.0, 2.0, 3.0])
    values = lambda p: {"s": ItemValues("s", "spearman", ("a", "b", "c"), np.asarray(p), gold)}  # noqa: E731
    (row,) = paired_bootstrap(values([1.0, 2.0, 3.0]), [values([3.0, 2.0, 1.0])], rounds=1000, seed=4)
    # a draw of three from three has a defined Spearman only when it holds all three pairs (6 of 27 draws) or two
    # pairs twice and once (18 of 27); the three draws of one pair repeated (3 of 27) are undefined
    assert row.undefined is None and row.rounds == 1000
    assert row.undefined_rounds == pytest.approx(1000 * 3 / 27, abs=40)  # binomial sd 9.9
    assert (row.delta, row.low, row.high, row.p_no_gain) == (-2.0, -2.0, -2.0, 1.0)
    table = markdown_paired([row])
    assert table.endswith(
        f"note: s: Δ is undefined in {row.undefined_rounds} of the 1,000 rounds (a resample whose predictions or gold "
        f"scores are all tied has no spearman); its interval and P are over the other {1000 - row.undefined_rounds:,}"
        "\n"
    )


def test_the_mean_rows_note_says_a_tasks_delta_is_what_is_undefined_in_its_rounds():
    """The mean of the tasks lacks a Δ in the rounds where the STS task lacks one; its note says so, not that a
    recall resample is tied (a final reader's case: three STS pairs beside four recall@1 queries)."""
    gold = np.array([1.0, 2.0, 3.0])

    def values(p, hits):
        return {
            "s": ItemValues("s", "spearman", ("a", "b", "c"), np.asarray(p), gold),
            "r": ItemValues("r", "recall@1", ("q1", "q2", "q3", "q4"), np.asarray(hits, dtype=float)),
        }

    rows = paired_bootstrap(
        values([1.0, 2.0, 3.0], [1, 0, 1, 0]), [values([3.0, 2.0, 1.0], [1, 1, 1, 0])], rounds=1000, seed=4
    )
    mean = next(row for row in rows if row.task == MEAN_ROW)
    assert mean.undefined_rounds == next(row for row in rows if row.task == "s").undefined_rounds > 0
    assert markdown_paired(rows).splitlines()[-1] == (
        f"note: {MEAN_ROW}: Δ is undefined in {mean.undefined_rounds} of the 1,000 rounds (a task's Δ is undefined "
        f"in them); its interval and P are over the other {1000 - mean.undefined_rounds:,}"
    )


def test_compare_records_names_the_collapsed_file_and_the_command_prints_every_row(tmp_path, capsys):
    """The reviewer's case: the committed seed-6 record with its BIOSSES predictions constant and its Spearman null,
    against the committed base: `biohicl evaluate --compare ... --paired` printed an IndexError traceback."""
    from biohicl.cli.main import main

    record = json.loads((PAIRED / "one_pass_distill2_seed6.json").read_text())
    collapsed = json.loads(json.dumps(record))
    entry = collapsed["tasks"]["biosses"]
    entry["per_item"]["predictions"] = [0.93] * len(entry["per_item"]["predictions"])
    entry["metrics"] = {"spearman": None, "pearson": None}
    collapsed["summary"] = {k: (None if k.startswith("biosses") else v) for k, v in collapsed["summary"].items()}
    base = json.loads((PAIRED / "base.json").read_text())
    (tmp_path / "collapsed.json").write_text(json.dumps(collapsed))
    fine = compare_records(base, [record], rounds=300)
    rows = compare_records(base, [collapsed], rounds=300, sources=["base.json", "collapsed.json"])
    assert rows[1].to_dict() == fine[1].to_dict()  # pubmedqa, drawn after biosses on the same draws
    assert undefined(rows[0]) and undefined(rows[2])
    assert rows[0].undefined.startswith("the spearman of collapsed.json is NaN")
    png = tmp_path / "paired.png"
    argv = ["evaluate", "--compare", str(PAIRED / "base.json"), str(tmp_path / "collapsed.json"), "--paired"]
    assert main([*argv, "--rounds", "300", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "| biosses | spearman | 100 | 0.8125 | – | – | – | – |" in out
    assert f"| pubmedqa | recall@1 | 500 | 0.8580 | 0.8660 | +0.80 | [{100 * fine[1].low:+.2f}, " in out
    assert f"note: biosses has no Δ: the spearman of {tmp_path / 'collapsed.json'} is NaN" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

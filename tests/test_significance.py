"""The paired bootstrap: Spearman on resamples against scipy, intervals against the normal approximation, and the
per-item values of real evaluations reproducing their recorded metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from biohicl.errors import ConfigError, DataError
from biohicl.evaluation import evaluate_model
from biohicl.evaluation.runner import save_results
from biohicl.evaluation.significance import (
    MEAN_ROW,
    ItemValues,
    bootstrap_deltas,
    compare_records,
    markdown_paired,
    paired_bootstrap,
    spearman_rows,
)


def hits(task: str, values, ids=None) -> ItemValues:
    values = np.asarray(values, dtype=np.float64)
    ids = tuple(ids or (str(i) for i in range(len(values))))
    return ItemValues(task=task, metric="recall@1", ids=ids, scores=values)


class VocabEncoder:
    """Embeds a text as its counts of the given words (plus a tiny constant so no vector is zero)."""

    def __init__(self, vocab: list[str]):
        self.vocab = vocab

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        rows = [[t.lower().split().count(w) for w in self.vocab] + [0.01] for t in texts]
        return np.asarray(rows, dtype=np.float32)


def test_spearman_of_each_resample_matches_scipy():
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 5, size=(6, 40)).astype(float), rng.normal(size=(6, 40))  # ties in x
    expected = [spearmanr(x[i], y[i]).statistic for i in range(6)]
    np.testing.assert_allclose(spearman_rows(x, y), expected, rtol=1e-12)


def test_a_model_against_itself_gains_nothing_in_every_resample():
    base = {"pubmedqa": hits("pubmedqa", np.random.default_rng(0).integers(0, 2, 300))}
    (row,) = paired_bootstrap(base, [base], rounds=500)
    assert (row.delta, row.low, row.high, row.p_no_gain) == (0.0, 0.0, 0.0, 1.0)


def test_one_question_gained_vanishes_exactly_when_the_resample_misses_it():
    """Δ ≤ 0 only in the resamples that never draw the one changed question: (1 − 1/n)^n of them."""
    base = np.array([1.0, 0.0] * 50)
    tuned = base.copy()
    tuned[1] = 1.0
    (row,) = paired_bootstrap({"q": hits("q", base)}, [{"q": hits("q", tuned)}], rounds=40_000, seed=5)
    assert row.delta == pytest.approx(0.01) and row.low == 0.0
    assert row.p_no_gain == pytest.approx(0.99**100, abs=0.01)  # 0.366; the binomial sd over 40,000 rounds is 0.0024


def test_a_resample_whose_delta_is_exactly_zero_or_the_target_counts_as_on_it():
    """Five questions, the base right on one, the tuned model on that one and one more: a resample's Δ is the changed
    question's draws over five, exactly 0.2 once it is drawn, which float subtraction can put a rounding error below
    (0.6 − 0.4 = 0.19999999999999996), and exactly 0 when it is not (0.6 − 0.6)."""
    base, tuned = hits("q", [1, 0, 0, 0, 0]), hits("q", [1, 1, 0, 0, 0])
    (row,) = paired_bootstrap({"q": base}, [{"q": tuned}], rounds=20_000, seed=3, target=0.2)
    assert row.p_target == pytest.approx(1 - 0.8**5, abs=0.01)  # 0.672; binomial sd over 20,000 rounds 0.0033
    assert row.p_no_gain + row.p_target == 1.0  # every round is on one of the two


def test_the_interval_of_a_mean_matches_the_normal_approximation():
    """For the mean of paired differences the bootstrap's 95% interval is Δ ± 1.96·sd(d)/√n (large n)."""
    rng = np.random.default_rng(2)
    n = 4000
    base = rng.integers(0, 2, n).astype(float)
    tuned = base.copy()
    flip = rng.random(n) < 0.06  # 6% of the questions change their outcome, more of them to a hit
    tuned[flip] = (rng.random(flip.sum()) < 0.65).astype(float)
    (row,) = paired_bootstrap({"q": hits("q", base)}, [{"q": hits("q", tuned)}], rounds=20_000, seed=3)
    d = tuned - base
    half_width = 1.959964 * d.std() / np.sqrt(n)
    assert row.delta == pytest.approx(d.mean())
    assert row.low == pytest.approx(d.mean() - half_width, abs=0.1 * half_width)
    assert row.high == pytest.approx(d.mean() + half_width, abs=0.1 * half_width)
    assert row.items == n and row.rounds == 20_000 and row.confidence == 0.95


def test_several_seeds_count_as_their_mean_and_several_tasks_as_the_mean_of_their_deltas():
    rng = np.random.default_rng(4)
    base_q = rng.integers(0, 2, 500).astype(float)
    gold = rng.normal(size=100)
    base_sts = gold + rng.normal(scale=1.0, size=100)

    def sts(pred):
        return ItemValues(task="biosses", metric="spearman", ids=tuple(map(str, range(100))), scores=pred, gold=gold)

    seeds = []
    for gain in (0.02, 0.04):
        q = base_q.copy()
        q[np.flatnonzero(base_q == 0)[: int(gain * 500)]] = 1.0  # gain·500 more hits, nothing lost
        seeds.append({"pubmedqa": hits("pubmedqa", q), "biosses": sts(base_sts * 0.5 + gold * 0.5)})
    rows = paired_bootstrap({"pubmedqa": hits("pubmedqa", base_q), "biosses": sts(base_sts)}, seeds, rounds=2000)
    pubmedqa, biosses, mean = rows
    assert pubmedqa.delta == pytest.approx(0.03) and pubmedqa.tuned == pytest.approx(
        [q.mean() for q in (seeds[0]["pubmedqa"].scores, seeds[1]["pubmedqa"].scores)]
    )
    assert pubmedqa.low > 0 and pubmedqa.p_no_gain == 0.0  # no question was lost, so no resample can show a loss
    rho = lambda p: spearmanr(p, gold).statistic  # noqa: E731
    assert biosses.base == pytest.approx(rho(base_sts)) and biosses.delta == pytest.approx(
        rho(base_sts * 0.5 + gold * 0.5) - rho(base_sts)
    )
    assert mean.task == MEAN_ROW and mean.metric == "recall@1 + spearman" and mean.items == 600
    assert mean.delta == pytest.approx((pubmedqa.delta + biosses.delta) / 2)
    assert min(pubmedqa.low, biosses.low) < mean.low < mean.high < max(pubmedqa.high, biosses.high)
    again = paired_bootstrap({"pubmedqa": hits("pubmedqa", base_q), "biosses": sts(base_sts)}, seeds, rounds=2000)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in rows]  # the seed fixes the draws
    table = markdown_paired(rows)
    assert "| pubmedqa | recall@1 | 500 |" in table and "(mean of 2)" in table and "| +3.00 |" in table


def test_two_recipes_compare_as_the_mean_of_their_seeds_on_the_same_draws():
    """Several base models count as their mean metric: B − A is the mean of B's seeds minus the mean of A's on every
    draw, and swapping the two sides negates it."""
    rng = np.random.default_rng(6)
    truth = rng.integers(0, 2, 400).astype(float)

    def seed_of(hit_rate):
        return {"q": hits("q", np.where(rng.random(400) < hit_rate, 1.0, truth))}

    recipe_a, recipe_b = [seed_of(0.02) for _ in range(3)], [seed_of(0.08) for _ in range(2)]
    (row,) = paired_bootstrap(recipe_a, recipe_b, rounds=3000, seed=1)
    a_mean = np.mean([values["q"].scores.mean() for values in recipe_a])
    assert row.base == pytest.approx(a_mean) and row.base_models == 3 and len(row.tuned) == 2
    assert row.delta == pytest.approx(np.mean(row.tuned) - a_mean)
    draws = np.random.default_rng(1).integers(0, 400, size=(3000, 400))
    expected = np.mean([v["q"].scores[draws].mean(axis=1) for v in recipe_b], axis=0) - np.mean(
        [v["q"].scores[draws].mean(axis=1) for v in recipe_a], axis=0
    )
    assert row.p_no_gain == pytest.approx(np.mean(expected <= 0))
    assert (row.low, row.high) == pytest.approx(tuple(np.quantile(expected, [0.025, 0.975])))
    (swapped,) = paired_bootstrap(recipe_b, recipe_a, rounds=3000, seed=1)
    assert (swapped.delta, swapped.low, swapped.high) == pytest.approx((-row.delta, -row.high, -row.low))
    one = paired_bootstrap(recipe_a[0], recipe_b, rounds=500)
    assert [r.to_dict() for r in paired_bootstrap([recipe_a[0]], recipe_b, rounds=500)] == [r.to_dict() for r in one]
    assert "(mean of 3) | " in markdown_paired([row])


def test_two_level_rounds_draw_the_seeds_too_as_a_loop_over_rounds_does():
    """``resample_models``: each round counts a draw with replacement of each side's models (the same draw for every
    task). Checked against a plain loop over rounds with the same generator, and against the share of rounds that can
    only show no gain: a seed that equals its base, drawn for both places (1/4 of the rounds)."""
    rng = np.random.default_rng(8)
    base = rng.integers(0, 2, 500).astype(float)
    gained = base.copy()
    gained[np.flatnonzero(base == 0)[:40]] = 1.0  # +8 points, nothing lost: no resample of the items shows a loss
    seeds = [{"q": hits("q", base.copy())}, {"q": hits("q", gained)}]
    rounds = 4000
    (row,) = paired_bootstrap({"q": hits("q", base)}, seeds, rounds=rounds, seed=2, resample_models=True, target=0.0305)
    replay = np.random.default_rng(2)
    base_picks, tuned_picks = replay.integers(0, 1, (rounds, 1)), replay.integers(0, 2, (rounds, 2))
    assert not base_picks.any()
    expected = []
    for start in range(0, rounds, 1000):
        draws = replay.integers(0, 500, size=(1000, 500))
        for i, draw in enumerate(draws):
            picked = [seeds[k]["q"].scores[draw].mean() for k in tuned_picks[start + i]]
            expected.append(np.mean(picked) - base[draw].mean())
    expected = np.array(expected)
    assert row.models_resampled and row.p_no_gain == pytest.approx(np.mean(expected <= 0))
    assert (row.low, row.high) == pytest.approx(tuple(np.quantile(expected, [0.025, 0.975])))
    assert row.p_no_gain == pytest.approx(0.25, abs=0.025)  # binomial sd over 4,000 rounds: 0.007
    assert row.low == 0.0 and row.delta == pytest.approx(0.04)
    (fixed,) = paired_bootstrap({"q": hits("q", base)}, seeds, rounds=rounds, seed=2)
    assert fixed.p_no_gain == 0.0 and fixed.low > 0.02  # the items alone never lose the second seed's gain
    assert row.target == 0.0305 and row.p_target == pytest.approx(np.mean(expected >= 0.0305))  # no Δ ties 0.0305
    assert 0.5 < row.p_target <= 1 - row.p_no_gain  # a round showing no gain is never at the target
    table = markdown_paired([row])
    assert "| P(Δ ≤ 0) | P(Δ ≥ +3.05) |" in table and f"| {row.p_target:.4f} |" in table
    assert "over the models on each side and the items (two-level)" in table
    with pytest.raises(ConfigError, match="resample_models: needs several models on one side"):
        paired_bootstrap({"q": hits("q", base)}, seeds[:1], rounds=200, resample_models=True)


def test_per_item_values_reproduce_the_recorded_metrics(tmp_path, data_dir):
    from tests.test_evaluation import write_beir

    folder = write_beir(tmp_path / "toy")
    encoder = VocabEncoder(["insulin", "tumor", "heart", "brain", "cancer", "cell", "patients", "gene"])
    tasks = [f"{folder}:test", "biosses", "pubmedqa"]
    record = evaluate_model(encoder, tasks, per_item=True, show_progress_bar=False)
    for task, metric in (("toy", "ndcg@10"), ("biosses", "spearman"), ("pubmedqa", "recall@1")):
        values = ItemValues.from_record(record, task)
        assert values.full_metric() == pytest.approx(record["tasks"][task]["metrics"][metric], abs=1e-12)
    assert len(record["tasks"]["pubmedqa"]["per_item"]["ids"]) == 500
    assert "per_item" not in evaluate_model(encoder, ["biosses"], show_progress_bar=False)["tasks"]["biosses"]


def test_records_without_values_or_with_other_items_are_refused(tmp_path):
    from tests.test_evaluation import write_beir

    folder = write_beir(tmp_path / "toy")
    kept = evaluate_model(VocabEncoder(["insulin", "heart"]), [f"{folder}:test"], per_item=True)
    plain = evaluate_model(VocabEncoder(["insulin", "heart"]), [f"{folder}:test"])
    with pytest.raises(DataError, match=r"no task has per-item values in every results file \(evaluate with"):
        compare_records(kept, [plain])
    with pytest.raises(DataError, match=r"b\.json: toy: no per-item values"):
        ItemValues.from_record(plain, "toy", "b.json")
    fewer = json.loads(json.dumps(kept))
    fewer["tasks"]["toy"]["per_item"] = {key: value[:2] for key, value in kept["tasks"]["toy"]["per_item"].items()}
    with pytest.raises(DataError, match="toy: the records scored different items"):
        compare_records(kept, [fewer])


def test_paired_compare_command_prints_the_table_and_draws_the_intervals(tmp_path, capsys):
    from biohicl.cli.main import main
    from tests.test_evaluation import write_beir

    folder = write_beir(tmp_path / "toy")
    paths = []
    for name, vocab in (("base", ["insulin", "tumor"]), ("tuned", ["insulin", "tumor", "heart", "brain"])):
        record = evaluate_model(VocabEncoder(vocab), [f"{folder}:test"], model_id=name, per_item=True)
        paths.append(str(save_results(record, tmp_path / f"{name}.json")))
    md, png = tmp_path / "paired.md", tmp_path / "paired.png"
    argv = ["evaluate", "--compare", *paths, "--paired", "--rounds", "300", "--markdown", str(md), "--plot", str(png)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    base, tuned = (json.loads(Path(p).read_text())["tasks"]["toy"]["metrics"]["ndcg@10"] for p in paths)
    assert f"| toy | ndcg@10 | 3 | {base:.4f} | {tuned:.4f} | {100 * (tuned - base):+.2f} |" in out
    assert "300 rounds" in md.read_text() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["evaluate", "--compare", paths[0], "--paired"]) == 2
    assert "paired: needs --compare BASE.json TUNED.json" in capsys.readouterr().err
    assert main(["evaluate", "--compare", *paths, "--paired", "--rounds", "5"]) == 2
    assert "rounds: 5 is too few for a 95% interval; use at least 100" in capsys.readouterr().err
    assert main(["evaluate", "--compare", *paths, "--paired", "--base_count", "2"]) == 2
    assert "base_count: 2 base files leave no tuned file among the 2 --compare files" in capsys.readouterr().err
    assert main(["evaluate", "--compare", *paths, paths[1], "--paired", "--base_count", "2", "--rounds", "200"]) == 0
    out = capsys.readouterr().out
    assert f"| toy | ndcg@10 | 3 | {(base + tuned) / 2:.4f} (mean of 2) | {tuned:.4f} |" in out
    assert main(["evaluate", "--compare", *paths, "--paired", "--labels", "a", "--rounds", "200"]) == 2
    assert (
        "labels: with --paired give 2 labels (the base side's, then the tuned side's), got 1" in capsys.readouterr().err
    )
    assert main(["evaluate", "--compare", *paths, "--paired", "--labels", "small", "large", "--rounds", "200"]) == 0
    assert "| task | metric | items | small | large | Δ (points) |" in capsys.readouterr().out
    argv = ["evaluate", "--compare", *paths, paths[1], "--paired", "--resample_models", "--target", "1.0"]
    assert main([*argv, "--rounds", "200", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "| P(Δ ≤ 0) | P(Δ ≥ +1.00) |" in out and "over the models on each side and the items (two-level)" in out
    assert main(["evaluate", "--compare", *paths, "--target", "1.0"]) == 2
    assert "resample_models/target: apply with --compare ... --paired" in capsys.readouterr().err


ISSUE15 = Path(__file__).resolve().parents[1] / "docs/results/study_minilm_cpu_guarded_256"


def committed_records(name: str, seeds) -> list[dict]:
    """The committed per-item records ``paired/<name>_seed<k>.json`` of ``seeds`` (``name``: e.g.
    ``dev_one_pass_distill2``)."""
    return [json.loads((ISSUE15 / f"paired/{name}_seed{seed}.json").read_text()) for seed in seeds]


def assert_holds_heldout_numbers(record: dict, run: str) -> None:
    """A per-item record holds the BIOSSES and PubMedQA numbers of the study run ``run``'s ``eval.json``."""
    reported = json.loads((ISSUE15 / run / "eval.json").read_text())["summary"]
    for key in ("biosses/spearman", "pubmedqa/recall@1"):
        assert ItemValues.from_record(record, key.split("/")[0]).full_metric() == pytest.approx(
            reported[key], abs=1e-12
        )


def assert_holds_selected_dev_step(record: dict, run: str, selected: int = 209) -> None:
    """A dev per-item record holds the dev retrieval numbers of run ``run``'s selected step (its training summary's)."""
    assert json.loads((ISSUE15 / run / "training_summary.json").read_text())["best_step"] == selected
    (step,) = [e for e in json.loads((ISSUE15 / run / "dev_evaluations.json").read_text()) if e["step"] == selected]
    for task, key in (("pubmedqa-dev", "eval_pubmedqa-dev_recall@1"), ("scifact", "eval_scifact_ndcg@10")):
        assert ItemValues.from_record(record, task).full_metric() == pytest.approx(step[key], abs=1e-12)


def test_the_committed_issue15_records_give_the_reported_interval():
    """docs/results.md, "How much the held-out sets can tell": the per-item records of the registered recipe's seeds
    3-5 (retrained) hold the numbers their study records report, and give the committed table."""
    base = json.loads((ISSUE15 / "paired/base.json").read_text())
    seeds = []
    for seed in (3, 4, 5):
        record = json.loads((ISSUE15 / f"paired/one_pass_distill2_seed{seed}.json").read_text())
        assert_holds_heldout_numbers(record, f"one_pass_distill2_seed{seed}")
        seeds.append(record)
    rows = compare_records(base, seeds)
    assert markdown_paired(rows) == (ISSUE15 / "paired/heldout.md").read_text()
    assert rows[-1].delta == pytest.approx((0.8236 - 0.8125 + 0.8667 - 0.858) / 2, abs=2e-4)  # +0.99 points
    assert rows[-1].low < 0 < 0.01 < rows[-1].high  # neither 0 nor the +1.0 target lies outside the interval
    rng = np.random.default_rng(0)  # compare_records' draws: the same seed, the tasks in the same order
    per_task = []
    for task in ("biosses", "pubmedqa"):
        values = [ItemValues.from_record(r, task) for r in (base, *seeds)]
        per_task.append(bootstrap_deltas(values[0], values[1:], 10_000, rng))
    mean = np.mean(per_task, axis=0)
    assert np.mean(mean <= 0) == pytest.approx(rows[-1].p_no_gain)
    assert mean.std() == pytest.approx(0.0056, abs=0.0002)  # six times the seeds' standard error, 0.0016 / √3
    assert np.mean(mean >= 0.01) == pytest.approx(0.45, abs=0.01)  # a resample shows the +1.0 target in 45%
    assert compare_records(base, seeds, target=0.01)[-1].p_target == np.mean(mean >= 0.01)  # what --target gives


def test_the_committed_issue15_dev_records_are_the_selected_steps():
    """The dev per-item records of seeds 3-5 hold the committed step-209 dev numbers and give the committed table."""
    base = json.loads((ISSUE15 / "paired/dev_base.json").read_text())
    seeds = []
    for seed in (3, 4, 5):
        record = json.loads((ISSUE15 / f"paired/dev_one_pass_distill2_seed{seed}.json").read_text())
        assert_holds_selected_dev_step(record, f"one_pass_distill2_seed{seed}")
        seeds.append(record)
    rows = compare_records(base, seeds)
    assert markdown_paired(rows) == (ISSUE15 / "paired/dev.md").read_text()
    assert rows[-1].delta < 0 < rows[-1].high and rows[-1].high - rows[-1].low < 0.014  # no gain seen, ±0.7 points


def test_the_committed_issue15_recipe_comparison():
    """docs/results.md, "The variant the dev rule passed over": the rerun of one_pass_distill2_all holds its study
    records' numbers, and the committed tables (against the base and against the registered recipe) follow."""
    paired = ISSUE15 / "paired"

    def records(prefix: str, variant: str) -> list[dict]:
        return committed_records(prefix + variant, (3, 4, 5))

    for seed, record, dev in zip(
        (3, 4, 5), records("", "one_pass_distill2_all"), records("dev_", "one_pass_distill2_all"), strict=True
    ):
        assert_holds_heldout_numbers(record, f"one_pass_distill2_all_seed{seed}")
        assert_holds_selected_dev_step(dev, f"one_pass_distill2_all_seed{seed}")
    base = json.loads((paired / "base.json").read_text())
    registered, variant = records("", "one_pass_distill2"), records("", "one_pass_distill2_all")
    against_base = compare_records(base, variant)
    assert markdown_paired(against_base) == (paired / "heldout_all.md").read_text()
    assert 0 < against_base[-1].low < 0.01 < against_base[-1].high  # clear of zero; +1.0 inside the interval
    between = compare_records(registered, variant)
    names = ("one_pass_distill2", "one_pass_distill2_all")
    assert markdown_paired(between, names) == (paired / "all_vs_distill2.md").read_text()
    registered_gain = compare_records(base, registered)[-1].delta
    assert between[-1].delta == pytest.approx(against_base[-1].delta - registered_gain, abs=1e-12)
    assert between[-1].high - between[-1].low < 0.5 * (against_base[-1].high - against_base[-1].low)

    def mean_deltas(bases: list[dict], tuned: list[dict]) -> np.ndarray:  # compare_records' draws, as above
        rng = np.random.default_rng(0)
        per_task = []
        for task in ("biosses", "pubmedqa"):
            values = [[ItemValues.from_record(r, task) for r in side] for side in (bases, tuned)]
            per_task.append(bootstrap_deltas(values[0], values[1], 10_000, rng))
        return np.mean(per_task, axis=0)

    gain, lead = mean_deltas([base], variant), mean_deltas(registered, variant)
    assert np.mean(gain >= 0.01) == pytest.approx(0.70, abs=0.01)  # the +1.0 target in 70% of resamples
    assert (gain.std(), lead.std()) == pytest.approx((0.0061, 0.0024), abs=0.0002)
    dev = compare_records(records("dev_", "one_pass_distill2"), records("dev_", "one_pass_distill2_all"))
    assert markdown_paired(dev, names) == (paired / "dev_all_vs_distill2.md").read_text()
    dev_base = json.loads((paired / "dev_base.json").read_text())
    assert (
        markdown_paired(compare_records(dev_base, records("dev_", "one_pass_distill2_all")))
        == (paired / "dev_all.md").read_text()
    )


def test_the_committed_six_seeds_of_the_registered_recipe():
    """docs/results.md, "Six seeds of the registered recipe, over seeds and test items": the rerun seeds 6-8 hold their
    study records' numbers (held out, and dev at the selected step), and the six seeds give the committed tables."""
    paired = ISSUE15 / "paired"
    for seed in (6, 7, 8):
        record = json.loads((paired / f"one_pass_distill2_seed{seed}.json").read_text())
        assert_holds_heldout_numbers(record, f"one_pass_distill2_seed{seed}")
    base = json.loads((paired / "base.json").read_text())
    seeds = committed_records("one_pass_distill2", range(3, 9))
    items = compare_records(base, seeds, target=0.01)
    assert markdown_paired(items) == (paired / "heldout_six.md").read_text()
    two_level = compare_records(base, seeds, target=0.01, resample_models=True)
    names = ("base", "one_pass_distill2, seeds 3-8")
    assert markdown_paired(two_level, names) == (paired / "heldout_six_two_level.md").read_text()
    assert items[-1].delta == two_level[-1].delta == pytest.approx(0.0102, abs=1e-4)  # +1.02 points over six seeds
    assert items[-1].low < 0 < 0.01 < items[-1].high and 0.4 < two_level[-1].p_target < 0.6  # +1.0 a coin toss
    widths = [row[-1].high - row[-1].low for row in (items, two_level)]
    assert widths[0] < widths[1] < 1.05 * widths[0]  # the seeds add little to the test items' spread
    dev = []
    for seed in range(3, 9):
        record = json.loads((paired / f"dev_one_pass_distill2_seed{seed}.json").read_text())
        assert_holds_selected_dev_step(record, f"one_pass_distill2_seed{seed}")
        dev.append(record)
    dev_rows = compare_records(json.loads((paired / "dev_base.json").read_text()), dev)
    assert markdown_paired(dev_rows) == (paired / "dev_six.md").read_text()
    assert dev_rows[-1].low < dev_rows[-1].delta < 0 < dev_rows[-1].high  # dev retrieval: no gain seen


def test_the_committed_six_seeds_of_both_recipes():
    """docs/results.md, "Six seeds of each recipe": one_pass_distill2_all's seeds 6-8 hold their study records'
    numbers (held out; dev at the selected step, 140 where step 209 failed the guard), and six seeds a side give the
    committed tables: the variant's lead over the registered recipe narrows and stays within what the test sets
    resolve."""
    paired = ISSUE15 / "paired"

    def records(prefix: str, variant: str) -> list[dict]:
        return committed_records(prefix + variant, range(3, 9))

    variant, registered = records("", "one_pass_distill2_all"), records("", "one_pass_distill2")
    dev_variant, dev_registered = records("dev_", "one_pass_distill2_all"), records("dev_", "one_pass_distill2")
    for seed, selected in ((6, 209), (7, 140), (8, 140)):
        assert_holds_heldout_numbers(variant[seed - 3], f"one_pass_distill2_all_seed{seed}")
        assert_holds_selected_dev_step(dev_variant[seed - 3], f"one_pass_distill2_all_seed{seed}", selected)
    base = json.loads((paired / "base.json").read_text())
    names = ("one_pass_distill2", "one_pass_distill2_all")
    tables = {
        "heldout_all_six.md": (compare_records(base, variant, target=0.01), ("base", "tuned")),
        "heldout_all_six_two_level.md": (
            compare_records(base, variant, target=0.01, resample_models=True),
            ("base", "one_pass_distill2_all, seeds 3-8"),
        ),
        "all_vs_distill2_six.md": (compare_records(registered, variant), names),
        "all_vs_distill2_six_two_level.md": (compare_records(registered, variant, resample_models=True), names),
        "dev_all_vs_distill2_six.md": (compare_records(dev_registered, dev_variant), names),
        "dev_all_vs_distill2_six_two_level.md": (
            compare_records(dev_registered, dev_variant, resample_models=True),
            names,
        ),
        "dev_all_six.md": (
            compare_records(json.loads((paired / "dev_base.json").read_text()), dev_variant),
            ("base", "tuned"),
        ),
    }
    for name, (rows, labels) in tables.items():
        assert markdown_paired(rows, labels) == (paired / name).read_text(), name
    gain, lead = tables["heldout_all_six.md"][0][-1], tables["all_vs_distill2_six.md"][0][-1]
    assert gain.delta == pytest.approx(0.0130, abs=1e-4) and 0 < gain.low < 0.01 < gain.high  # +1.30, clear of 0
    assert lead.delta == pytest.approx(0.0028, abs=1e-4) and lead.low < 0 < lead.high  # +0.28, not clear of 0
    two_level = tables["all_vs_distill2_six_two_level.md"][0][-1]
    assert two_level.low < lead.low and two_level.high > lead.high  # the seeds widen a recipes' difference
    dev_lead = tables["dev_all_vs_distill2_six.md"][0][-1]
    assert dev_lead.low < 0 < dev_lead.delta < dev_lead.high  # dev retrieval leans the same way, within its noise


def test_the_committed_study_reports_give_the_target_numbers_the_paired_records_do():
    """The study's own report (`biohicl reproduce ... --only one_pass_distill2,one_pass_distill2_all --report_only`,
    with `target_mean: 0.01`) over seeds 3-5 and over all six: the registered recipe's mean Δ with the share of
    resampled test sets at +1.0 that the committed per-item records give; neither report is a verdict (its dev pick
    saw two of the seven target variants, and seeds 3-8 are not the config's), so neither says met or missed."""
    paired = ISSUE15 / "paired"
    base = json.loads((paired / "base.json").read_text())
    metric = "mean of biosses/spearman, pubmedqa/recall@1"
    for seeds in ((3, 4, 5), range(3, 9)):
        records = committed_records("one_pass_distill2", seeds)
        row = compare_records(base, records, target=0.01)[-1]
        report = (ISSUE15 / f"results_seeds{min(seeds)}-{max(seeds)}.md").read_text()
        numbers = f"| {100 * row.delta:+.2f} | not judged | yes | {row.p_target:.3f} |"
        assert f"| minilm | one_pass_distill2 | {metric} | Δ ≥ +1.0 {numbers}" in report
        assert "**Not judged**: " in report and "The targets count for the variant picked on dev" not in report


def test_a_delta_that_rounds_to_zero_reads_plus_zero_in_the_table_and_the_card():
    """-0.00001 printed "-0.00" (a loss where there is none): the paired table and the model card's Δ say +0.00."""
    from biohicl.evaluation.significance import PairedDelta, markdown_paired
    from biohicl.hub.model_card import _signed

    row = PairedDelta("biosses", "spearman", 100, 0.5, [0.49999], -0.00001, -0.00004, 0.00002, 0.6, 1000, 0.95)
    assert markdown_paired([row]).splitlines()[2] == (
        "| biosses | spearman | 100 | 0.5000 | 0.5000 | +0.00 | [+0.00, +0.00] | 0.6000 |"
    )
    assert (_signed(-0.00001), _signed(-0.0123), _signed(None)) == ("+0.0000", "-0.0123", "–")

"""The README's headline numbers, the registry's notes and the headline numbers of issue #15 in docs/results.md,
recomputed from the committed records they quote, so the text cannot drift from the records (docs claim only what a
test shows)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "docs" / "results" / "study_minilm_cpu_guarded_256"
SCALE = ROOT / "docs" / "results" / "study_minilm_cpu_scale"
REGISTERED = "one_pass_distill2"
DEV_PICK = "two_pass_distill2"  # the variant the full dev-pick rule names (tests/test_reproduce.py)
SEEDS = (3, 4, 5)  # the seeds the target is judged on (docs/results.md)


def _held_out(folder: Path) -> tuple[float, float]:
    tasks = json.loads((folder / "eval.json").read_text(encoding="utf-8"))["tasks"]
    return tasks["biosses"]["metrics"]["spearman"], tasks["pubmedqa"]["metrics"]["recall@1"]


def _words(path: Path) -> str:
    """The file's text with every run of whitespace (line breaks included) as one space."""
    return " ".join(path.read_text(encoding="utf-8").split())


def _signed(value: float, digits: int = 2) -> str:
    """``value`` as the docs write it: a sign always, the minus as U+2212."""
    return f"{value:+.{digits}f}".replace("-", "\u2212")


def _recipe(variant: str) -> dict[str, float]:
    """Seeds 3-5 of ``variant`` against the base: held-out means, sample stds and gains in points."""
    base_biosses, base_r1 = _held_out(STUDY / "base")
    seeds = np.array([_held_out(STUDY / f"{variant}_seed{seed}") for seed in SEEDS])
    gains = (seeds - [base_biosses, base_r1]) * 100
    mean_gain = gains.mean(axis=1)
    return {
        "base_biosses": base_biosses,
        "base_r1": base_r1,
        "biosses_mean": seeds[:, 0].mean(),
        "biosses_std": seeds[:, 0].std(ddof=1),
        "r1_mean": seeds[:, 1].mean(),
        "r1_std": seeds[:, 1].std(ddof=1),
        "biosses_gain": gains[:, 0].mean(),
        "r1_gain": gains[:, 1].mean(),
        "gain": mean_gain.mean(),
        "gain_std": mean_gain.std(ddof=1),
        "seed5_biosses": seeds[SEEDS.index(5), 0],
        "seed5_r1": seeds[SEEDS.index(5), 1],
    }


@pytest.fixture(scope="module")
def headline() -> dict[str, float]:
    return _recipe(REGISTERED)


@pytest.fixture(scope="module")
def dev_pick() -> dict[str, float]:
    return _recipe(DEV_PICK)


def test_the_readme_table_and_summary_are_the_records(headline):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    h = headline
    assert (
        f"| BIOSSES Spearman | {h['base_biosses']:.4f} | {h['biosses_mean']:.4f} ± {h['biosses_std']:.4f} | "
        f"{h['biosses_gain']:+.2f} |" in readme
    )
    row = f"| PubMedQA test R@1 | {h['base_r1']:.3f} | {h['r1_mean']:.3f} ± {h['r1_std']:.3f} | {h['r1_gain']:+.2f} |"
    assert row in readme
    summary = readme.split("**Where it stands.**")[1].split("```")[0]
    words = " ".join(summary.split())
    assert f"{h['biosses_gain']:+.2f} BIOSSES Spearman and {h['r1_gain']:+.2f} PubMedQA test R@1" in words
    assert f"{h['gain']:+.2f} ± {h['gain_std']:.2f} on their mean over 3 seeds" in words
    shortfall = re.search(r"missed by (0\.\d+)", words)
    assert shortfall and float(shortfall.group(1)) == pytest.approx(1.0 - h["gain"], abs=5e-4)
    assert h["gain"] < 1.0  # "missed" is what the records say


def test_the_registry_notes_quote_the_registered_seed(headline):
    entries = json.loads((ROOT / "biohicl" / "registry.json").read_text(encoding="utf-8"))["models"]
    notes = next(e for e in entries if e["name"] == "BioHiCL-MiniLM")["notes"]
    h = headline
    assert f"BIOSSES {h['seed5_biosses']:.4f}, PubMedQA test R@1 {h['seed5_r1']:.3f}" in notes
    assert f"vs base {h['base_biosses']:.4f} / {h['base_r1']:.3f}" in notes
    assert f"{h['gain']:+.2f} +- {h['gain_std']:.2f} points on their mean" in notes


def test_the_readme_gives_both_recipes_with_their_gaps(headline, dev_pick):
    """The registered recipe (+0.987) and the full dev-pick rule's variant (+0.984) each miss +1.0, by 0.013 and
    0.016, and the README says which is which."""
    summary = (ROOT / "README.md").read_text(encoding="utf-8").split("**Where it stands.**")[1].split("```")[0]
    words = " ".join(summary.split())
    registered, picked = headline["gain"], dev_pick["gain"]
    assert (round(registered, 3), round(picked, 3)) == (0.987, 0.984)
    assert f"`BioHiCL-MiniLM` is its registered recipe, `{REGISTERED}`" in words
    assert f"{registered:+.3f}, so issue #15's +1.0 target is missed by {1 - registered:.3f}" in words
    assert f"picks `{DEV_PICK}` instead, at {picked:+.3f}, missed by {1 - picked:.3f}" in words
    assert picked < registered < 1.0


def _scale_points(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass of ``one_pass`` seed ``seed``: log10 of the documents drawn at each trained evaluation (32 a step, the
    pass ending at 6,665), the dev selection score's change against step 0 in points, and the agreement."""
    rows = json.loads((SCALE / f"one_pass_seed{seed}" / "dev_evaluations.json").read_text(encoding="utf-8"))
    base = rows[0]["eval_dev_score"]
    trained = [r for r in rows if r["step"] > 0]
    documents = np.array([min(32 * r["step"], 6665) for r in trained])
    dev = np.array([(r["eval_dev_score"] - base) * 100 for r in trained])
    agreement = np.array([r["eval_siml-agreement_spearman"] for r in trained])
    return np.log10(documents), dev, agreement


def _fit(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Least squares y = a + b·x: slope, its standard error, r and the predictions at 80,000 and 6,665 documents."""
    slope, intercept = np.polyfit(x, y, 1)
    residuals = y - (intercept + slope * x)
    stderr = np.sqrt((residuals @ residuals) / (len(x) - 2) / ((x - x.mean()) @ (x - x.mean())))
    return {
        "slope": slope,
        "stderr": stderr,
        "r": np.corrcoef(x, y)[0, 1],
        "at_80k": intercept + slope * np.log10(80_000),
        "at_6665": intercept + slope * np.log10(6665),
    }


def test_the_data_scale_fit_is_the_three_seeds_not_seed_0_alone():
    """docs/results.md, lever 6: the dev score's fit over the three committed seeds of `one_pass` (pooled: +0.55 at
    80,000 documents), each seed's (−0.01 to +1.02), and the agreement's, as the section and the in-brief row quote."""
    points = [_scale_points(seed) for seed in (0, 1, 2)]
    dev = [_fit(x, y) for x, y, _ in points]
    agreement = [_fit(x, a) for x, _, a in points]
    pooled = _fit(np.concatenate([p[0] for p in points]), np.concatenate([p[1] for p in points]))
    # the numbers the text gave for seed 0 before, which seed 0 still gives
    assert (round(dev[0]["slope"], 2), round(dev[0]["stderr"], 2), round(dev[0]["r"], 2)) == (0.72, 0.39, 0.63)
    assert (round(dev[0]["at_80k"], 2), round(dev[0]["at_6665"], 2)) == (1.02, 0.25)
    assert round(pooled["at_80k"], 2) == 0.55 and round(pooled["r"], 2) == 0.51
    words = _words(ROOT / "docs" / "results.md")
    s = _signed
    assert (
        f"over the three seeds pooled, {s(pooled['slope'])} points of selection score per decade (r = "
        f"{pooled['r']:.2f}), i.e. a predicted {s(pooled['at_80k'])} point at the paper's 80,000 abstracts and "
        f"{s(pooled['at_6665'])} at our 6,665." in words
    )
    assert (
        f"seed 0 gives {s(dev[0]['slope'])} per decade (± {dev[0]['stderr']:.2f}, r = {dev[0]['r']:.2f}; under two "
        f"standard errors) and {s(dev[0]['at_80k'])} at 80,000 ({s(dev[0]['at_6665'])} at 6,665), seed 1 "
        f"{s(dev[1]['slope'])} (r = {dev[1]['r']:.2f}) and {s(dev[1]['at_80k'])}, seed 2 {s(dev[2]['slope'])} (r = "
        f"{dev[2]['r']:.2f}) and {s(dev[2]['at_80k'])}." in words
    )
    slopes = ", ".join(f"{f['slope']:.2f}" for f in agreement[:2]) + f" and {agreement[2]['slope']:.2f}"
    assert f"agreement rises by {slopes} per decade of documents" in words
    rs = ", ".join(f"{f['r']:.2f}" for f in agreement)
    assert f"(seed 0: ± {agreement[0]['stderr']:.2f}; r = {rs})" in words
    reach = ", ".join(f"{f['at_80k']:.2f}" for f in agreement[:2]) + f" and {agreement[2]['at_80k']:.2f}"
    assert f"would reach {reach} at 80,000 documents" in words
    lowest, highest = min(f["at_80k"] for f in dev), max(f["at_80k"] for f in dev)
    row = words.split("| 6. data scale |")[1].split("| 7a.")[0]
    assert f"predicts {s(pooled['at_80k'])} dev point at 80,000 documents over the three seeds" in row
    assert f"(per seed {s(lowest)} to {s(highest)})" in row
    assert f"{s(pooled['slope'])} points per decade over the three seeds (r {pooled['r']:.2f}" in row


def _paper(words: str, metric: str) -> tuple[str, str]:
    """The paper's before/after figures for ``metric`` in "Side by side with the paper" (#7's table)."""
    side = words.split("### Side by side with the paper")[1].split("### ")[0]
    cells = side.split(f"| {metric} |")[1].split("|")
    return cells[0].strip(), cells[1].strip()


def test_the_issue_15_table_beside_the_paper_is_the_records(headline, dev_pick):
    """The #15 table beside the paper: the paper's figures as results.md quotes them already, ours from the eval.json
    of seeds 3-5 of the registered recipe and of the dev pick."""
    words = _words(ROOT / "docs" / "results.md")
    table = words.split("### Issue #15 beside the paper")[1].split("## ")[0]
    h, d = headline, dev_pick
    for metric, ours, key, digits, row_name in (
        ("BIOSSES Spearman", "biosses", "biosses_gain", 4, "BIOSSES Spearman"),
        ("PubMedQA R@1", "r1", "r1_gain", 3, "PubMedQA test R@1"),
    ):
        before, after = _paper(words, metric)
        paper_gain = (float(after) - float(before)) * 100
        cells = [
            f"{before} → {after}",
            f"+{paper_gain:.1f}",
            f"{h['base_' + ours]:.{digits}f} → {h[ours + '_mean']:.{digits}f} ± {h[ours + '_std']:.{digits}f}",
            f"{h[key]:+.2f}",
            f"{d['base_' + ours]:.{digits}f} → {d[ours + '_mean']:.{digits}f} ± {d[ours + '_std']:.{digits}f}",
            f"{d[key]:+.2f}",
        ]
        assert f"| {row_name} | " + " | ".join(cells) + " |" in table
    assert f"| mean of the two (the target: +1.0) | | +3.65 | | {h['gain']:+.3f} | | {d['gain']:+.3f} |" in table
    assert "| SciFact test nDCG@10 | – | | not measured | | not measured | |" in table


def test_the_dev_steps_more_than_two_questions_from_the_base_are_the_ones_named():
    """ "Every evaluated step ... within two questions of the base on R@1 and on R@5 but two steps of
    one_pass_distill2_neg": PubMedQA dev has 250 questions, one is 0.004."""
    far = []
    for path in sorted((ROOT / "docs" / "results").glob("study_minilm_cpu*/**/dev_evaluations.json")):
        for row in json.loads(path.read_text(encoding="utf-8")):
            if "eval_pubmedqa-dev_recall@1" not in row:
                continue
            off = [round((row[f"eval_pubmedqa-dev_recall@{k}"] - base) * 250) for k, base in ((1, 0.92), (5, 0.96))]
            if max(abs(q) for q in off) > 2:
                far.append((path.parent.name, row["step"], row["eval_pubmedqa-dev_recall@5"], off[1]))
    assert far == [("one_pass_distill2_neg_seed3", 70, 0.972, 3), ("one_pass_distill2_neg_seed5", 140, 0.972, 3)]
    words = _words(ROOT / "docs" / "results.md")
    assert (
        "within two questions of the base on R@1 and on R@5 but two steps of `one_pass_distill2_neg` (seed 3 step 70, "
        "seed 5 step 140: R@5 0.972, three questions above)" in words
    )


def test_the_noise_thresholds_are_twice_the_seed_std(headline):
    """Session 8's noise rule, |Δ| > 2 × the pooled seed std: with the base deterministic, 2 × the registered recipe's
    seed std over seeds 3-5 (BIOSSES 0.39, R@1 0.23 points)."""
    h = headline
    biosses, r1 = 2 * h["biosses_std"] * 100, 2 * h["r1_std"] * 100
    words = _words(ROOT / "docs" / "results.md")
    assert (
        f"BIOSSES ({h['biosses_gain']:+.2f}, threshold {biosses:.2f}) and R@1 ({h['r1_gain']:+.2f}, threshold {r1:.2f})"
        in (words)
    )


def _paired_row(name: str, task: str) -> tuple[str, str, str]:
    """Δ, interval and last column of ``task``'s row in a committed paired table, as the README writes them."""
    for line in (STUDY / "paired" / name).read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == task:
            low, high = cells[6].strip("[]").split(", ")
            interval = f"[{_signed(float(low))}, {_signed(float(high))}]"
            return cells[5].replace("-", "\u2212"), interval, cells[-1]
    raise AssertionError(f"{name}: no {task} row")


def _selected_score(folder: str) -> float:
    return json.loads((STUDY / folder / "training_summary.json").read_text(encoding="utf-8"))["best_metric"]


def test_the_readme_results_prose_is_the_records():
    """Every number of README's Results prose beyond the table, from the committed records and paired tables it
    names: the per-task and mean intervals, six seeds and the two-level interval, the MSE-over-all variant, two passes,
    the agreement figures and the negatives' kept bases."""
    readme = _words(ROOT / "README.md")
    mean = "mean of the tasks"
    for task, words in (("biosses", "BIOSSES"), ("pubmedqa", "PubMedQA R@1")):
        delta, interval, p = _paired_row("heldout.md", task)
        assert f"{words} {delta} {interval}, P(Δ ≤ 0) {float(p):.2g}" in readme
    assert f"has a 95% interval of {_paired_row('heldout.md', mean)[1]}" in readme
    delta, interval, share = _paired_row("heldout_six_two_level.md", mean)
    six = np.array([_held_out(STUDY / f"{REGISTERED}_seed{seed}") for seed in range(3, 9)])
    base = np.array(_held_out(STUDY / "base"))
    six_gains = ((six - base) * 100).mean(axis=1)
    assert f"{_signed(six_gains.mean())} ± {six_gains.std(ddof=1):.2f} over all six" in readme
    assert f"a 95% interval of {interval} over resamples" in readme and f"in {float(share):.0%} of them" in readme
    every = _recipe("one_pass_distill2_all")
    assert (
        f"gained {_signed(every['gain'])} ± {every['gain_std']:.2f} held out ({_paired_row('heldout_all.md', mean)[1]}"
        in readme
    )
    delta, interval, _ = _paired_row("all_vs_distill2.md", mean)
    assert f"and {delta} {interval} above the registered recipe" in readme
    all_six = np.array([_held_out(STUDY / f"one_pass_distill2_all_seed{seed}") for seed in range(3, 9)])
    assert f"six seeds a side put it at {_signed(((all_six - base) * 100).mean())}" in readme
    delta, interval, _ = _paired_row("all_vs_distill2_six.md", mean)
    assert f"its lead at {delta} {interval}" in readme
    two = _recipe(DEV_PICK)
    assert f"gained the same as one ({_signed(two['gain'])} ± {two['gain_std']:.2f})" in readme
    assert f"agreement {_selected_score('one_pass_distill2_seed3'):.3f} against " in readme
    assert f"against {_selected_score('one_pass_distill4_seed3'):.3f}, seed 3" in readme
    base_agreement = json.loads((STUDY / "base" / "eval.json").read_text(encoding="utf-8"))["tasks"]["siml-agreement"]
    scores = [_selected_score(f"{REGISTERED}_seed{seed}") for seed in SEEDS]
    low, high = f"{min(scores):.2f}", f"{max(scores):.2f}"
    assert f"{base_agreement['metrics']['spearman']:.2f} → {low}–{high})" in readme
    kept = [
        json.loads((STUDY / f"one_pass_distill2_neg_seed{seed}" / "training_summary.json").read_text())["selection"]
        for seed in SEEDS
    ]
    assert (
        sum(bool(record.get("selected_base")) for record in kept) == 2
        and "two seeds of three kept their base" in readme
    )

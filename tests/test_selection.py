"""``biohicl.training.selection``: the record of what a run's model selection chose, from a Trainer log history."""

from __future__ import annotations

import pytest

from biohicl.training.selection import (
    best_evaluation,
    dev_score,
    guard_holds,
    selection_record,
    selection_summary,
)

KEY = "eval_dev_score"


def test_the_first_evaluation_is_not_the_base_unless_it_is_step_0():
    """A run evaluated first at step 50 (no step-0 evaluation) whose best is that step did not select the base."""
    history = [{"step": 50, KEY: 0.7, "loss": 1.0}, {"step": 100, KEY: 0.6}, {"step": 100, "loss": 0.5}]
    record = selection_record(history, KEY, greater_is_better=True, loaded_best=True)
    assert record is not None
    assert record["best_step"] == 50 and record["best_metric"] == 0.7
    assert record["step0_metric"] is None and record["selected_base"] is False
    assert record["evaluations"] == [[50, 0.7], [100, 0.6]]
    assert selection_summary(record)["selected_base"] is False


def test_the_base_is_selected_when_step_0_is_best_and_wins_ties():
    history = [{"step": 0, KEY: 0.5}, {"step": 50, KEY: 0.5}, {"step": 100, KEY: 0.25}]
    record = selection_record(history, KEY, greater_is_better=True, loaded_best=False)
    assert record is not None
    assert (record["best_step"], record["step0_metric"], record["selected_base"]) == (0, 0.5, True)
    assert record["loaded_best"] is False
    lower = selection_record(history, KEY, greater_is_better=False, loaded_best=True)
    assert lower is not None and (lower["best_step"], lower["selected_base"]) == (100, False)
    assert best_evaluation([(0, 0.5), (50, 0.5)]) == (0, 0.5)  # a tie keeps the earlier step


def test_no_record_when_the_metric_was_never_logged():
    assert selection_record([{"step": 10, "loss": 1.0}], KEY, greater_is_better=True, loaded_best=False) is None
    assert set(selection_summary(None).values()) == {None}


R1, R5 = "pubmedqa-dev_recall@1", "pubmedqa-dev_recall@5"


def test_a_step_that_ties_the_base_mathematically_scores_what_the_base_scores():
    """PubMedQA dev recalls are multiples of 1/250: a later step that moves one question from R@5 only to R@1 has the
    base's mean, 0.87, and must not beat it by float rounding (np.mean gave 0.87 and 0.8700000000000001, and the
    Trainer's strict np.greater kept the later step over the base)."""
    step0, step30 = dev_score({R1: 0.800, R5: 0.940}, [R1, R5]), dev_score({R1: 0.804, R5: 0.936}, [R1, R5])
    assert step0 == step30 == 0.87
    history = [{"step": 0, KEY: step0}, {"step": 30, KEY: step30}]
    record = selection_record(history, KEY, greater_is_better=True, loaded_best=True)
    assert record is not None and (record["best_step"], record["selected_base"]) == (0, True)


def test_every_one_or_two_question_trade_on_250_questions_ties_the_base():
    """The reviewer's sweep: 147 of the 1,326 bases in [0.8, 1] had such a trade scored above them."""
    above = 0
    for a in range(200, 251):
        for b in range(a, 251):
            base = dev_score({R1: a / 250, R5: b / 250}, [R1, R5])
            for d in (-2, -1, 1, 2):
                if 0 <= a + d <= 250 and 0 <= b - d <= 250:
                    above += dev_score({R1: (a + d) / 250, R5: (b - d) / 250}, [R1, R5]) != base
    assert above == 0


@pytest.mark.parametrize("mode", ["mean", "each"])
def test_the_guard_passes_a_step_whose_guard_equals_the_base_s_mathematically(mode):
    """Both means are 0.816 (0.816 >= 0.8160000000000001 refused it); the tolerance is subtracted by the same rule
    (0.52 - 0.05 is 0.47000000000000003 in floats, which refused a step at 0.47)."""
    base, step = {R1: 0.800, R5: 0.832}, {R1: 0.816, R5: 0.816}
    assert guard_holds(step, base, [R1, R5], "mean") is True
    assert guard_holds({R1: 0.47}, {R1: 0.52}, [R1], mode, tolerance=0.05) is True
    assert guard_holds({R1: 0.468}, {R1: 0.52}, [R1], mode, tolerance=0.05) is False
    assert guard_holds({R1: 0.47, R5: 0.47}, {R1: 0.52, R5: 0.52}, [R1, R5], mode, tolerance=0.05) is True
    assert guard_holds(step, base, [R1, R5], "each") is False  # R@5 fell: each metric counts on its own

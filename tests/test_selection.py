"""``biohicl.training.selection``: the record of what a run's model selection chose, from a Trainer log history."""

from __future__ import annotations

from biohicl.training.selection import best_evaluation, selection_record, selection_summary

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

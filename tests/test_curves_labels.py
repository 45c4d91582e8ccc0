"""The loss components' labels, public so a notebook's chart names the terms as the run's own plot does."""

from __future__ import annotations

from biohicl.training.curves import LOSS_LABELS, loss_keys, loss_label


def test_each_logged_loss_component_has_its_label():
    history = [{"step": 1, "loss": 0.2, "loss_mse": 0.1}, {"step": 2, "loss_con": 0.9, "loss_distill": 0.01}]
    assert [loss_label(key) for key in loss_keys(history)] == [
        "total L",
        "L_mse (filtered regression)",
        "L_con",
        "L_distill (base SimE)",
    ]
    assert LOSS_LABELS["loss_title"] == "L_title (title → abstract)"


def test_a_component_without_a_label_is_named_by_its_key():
    assert loss_label("loss_custom") == "loss_custom"

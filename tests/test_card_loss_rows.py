"""The card's loss rows and loss citations come from one walk of the run's recorded loss (``training_summary.json``'s
``loss``): every term that trains, with its weight and parameters (``title_temperature``, an extra term by its name,
class and config), and each loss class used cited from its ``citation``; the default run's rows as before, and the
committed records under docs/results still render."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_trainer import docs_file, make_args  # noqa: F401  (docs_file is a fixture)
from torch import nn

from biohicl.errors import PublishError
from biohicl.hub.card_hyperparameters import loss_arguments, loss_citations, trained_hyperparameters
from biohicl.hub.model_card import BioHiCLModelCardData, render_model_card
from biohicl.losses import (
    BioHiCLLoss,
    FilteredMSELoss,
    HierarchicalContrastiveLoss,
    SimilarityDistillationLoss,
    TitleInfoNCELoss,
)
from biohicl.training.objective import build_loss, loss_config
from biohicl.training.run import train_biohicl

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
CONFIG = {"base_model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean", "max_length": 64}

#: a default run's training arguments, as biohicl_training_args.json holds them (the fields the card reads)
ARGS = {
    "per_device_train_batch_size": 8, "num_train_epochs": 3.0, "max_steps": -1, "learning_rate": 0.0002,
    "lr_scheduler_type": "linear", "warmup_steps": 0.1, "seed": 7, "max_length": 256, "full_finetune": False,
    "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "lora_target_modules": ["query", "value"], "lambda_con": 0.1,
    "beta": 0.3, "temperature": 0.05, "pair_filter": "zero_or_positive", "weight_positives": True,
    "contrastive_form": "infonce", "negative": "zero", "use_mse": True, "use_contrastive": True,
    "use_ancestors": True, "use_depth_weight": True, "distill_weight": 0.0, "title_weight": 0.0,
    "title_temperature": 0.05, "check_tag_weight": 1.0, "study_design_weight": 1.0, "batch_sampler": "mesh_pairs",
    "world_size": 1, "documents_per_optimizer_step": 8,
}  # fmt: skip
STATE = {"epoch": 3.0, "max_steps": 2502}
#: the default run's recorded loss as this release writes it
DEFAULT_LOSS = {
    "class": "BioHiCLLoss", "lambda_con": 0.1, "use_mse": True, "use_contrastive": True,
    "regression": {"pair_filter": "zero_or_positive", "beta": 0.3},
    "contrastive": {"beta": 0.3, "temperature": 0.05, "weighted": True, "form": "infonce", "negative": "zero"},
    "distill_weight": 0.0,
}  # fmt: skip
#: the rows the card showed for the default run before its loss rows were walked from the record (same order)
DEFAULT_ROWS = {
    "lambda_con": 0.1, "beta": 0.3, "temperature": 0.05, "pair_filter": "zero_or_positive", "weight_positives": True,
    "use_mse": True, "use_contrastive": True, "use_ancestors": True, "use_depth_weight": True, "full_finetune": False,
    "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "lora_target_modules": ["query", "value"],
    "learning_rate": 0.0002, "per_device_train_batch_size": 8, "world_size": 1, "documents_per_optimizer_step": 8,
    "num_train_epochs": 3.0, "warmup_steps": 251, "max_length": 256, "batch_sampler": "mesh_pairs", "seed": 7,
    "contrastive_form": "infonce", "negative": "zero", "distill_weight": 0.0, "title_weight": 0.0,
    "check_tag_weight": 1.0, "study_design_weight": 1.0, "lr_scheduler_type": "linear",
}  # fmt: skip
BUILT_IN = {
    "BioHiCLLoss": BioHiCLLoss.citation,
    "FilteredMSELoss": FilteredMSELoss.citation,
    "HierarchicalContrastiveLoss": HierarchicalContrastiveLoss.citation,
}


class Margin(nn.Module):
    """An extra term of one's own (docs/training.md, "Adding a loss term"): a constant, so it trains nothing."""

    citation = "Someone et al., A margin, 2020"

    def __init__(self, margin: float = 0.2):
        super().__init__()
        self.margin = margin

    def forward(self, embeddings, siml, pair_mask=None, **inputs):
        return embeddings.sum() * 0.0 + self.margin

    def get_config_dict(self):
        return {"margin": self.margin}


def _ordered(rows: dict) -> list:
    return list(rows.items())


@pytest.mark.parametrize(
    "loss",
    [
        DEFAULT_LOSS,
        {k: v for k, v in DEFAULT_LOSS.items() if k != "class"},  # a record from before the class was recorded
        {"class": "BioHiCLLoss", **BioHiCLLoss().get_config_dict()},  # whatever the loss records today
        {**DEFAULT_LOSS, "title_weight": 0.0, "title": {"temperature": 0.05}},  # a title term recorded while off
    ],
    ids=["release", "no-class", "live", "title-recorded-off"],
)
def test_the_default_runs_rows_are_as_before(loss):
    assert _ordered(trained_hyperparameters(ARGS, loss, None, state=STATE)) == _ordered(DEFAULT_ROWS)


def test_every_term_that_trains_shows_its_weight_and_parameters():
    loss = {
        **DEFAULT_LOSS,
        "distill_weight": 0.5,
        "distillation": {"type": "similarity_distillation"},  # an earlier release's record: names it, no parameter
        "title_weight": 0.2,
        "title": {"temperature": 0.07},
        "extra_terms": {"margin": {"class": "Margin", "weight": 0.5, "config": {"margin": 0.2, "sides": [1, 2]}}},
    }
    rows = trained_hyperparameters({**ARGS, "distill_weight": 0.5, "title_weight": 0.2}, loss, None, state=STATE)
    assert (rows["distill_weight"], rows["title_weight"], rows["title_temperature"]) == (0.5, 0.2, 0.07)
    assert rows["loss_margin"] == "0.5 · Margin(margin=0.2, sides=[1, 2])"
    assert not {"type", "distill_type", "distillation.type"} & set(rows)
    names = list(rows)  # the rows beyond the paper's stand with the loss's, before the SimL weights
    assert names.index("title_weight") < names.index("title_temperature") < names.index("loss_margin")
    assert names.index("loss_margin") < names.index("check_tag_weight")
    # a term logged but not trained on (weight 0) is shown with its weight, not hidden
    loss["extra_terms"]["margin"]["weight"] = 0.0
    assert trained_hyperparameters(ARGS, loss, None)["loss_margin"] == "0 · Margin(margin=0.2, sides=[1, 2])"


def test_a_term_switched_off_shows_its_switch_but_not_its_parameters():
    loss = {**DEFAULT_LOSS, "use_contrastive": False}
    rows = trained_hyperparameters(ARGS, loss, None)
    assert rows["use_contrastive"] is False and rows["lambda_con"] == 0.1
    assert not {"temperature", "weight_positives", "contrastive_form", "negative"} & set(rows)
    assert rows["pair_filter"] == "zero_or_positive" and rows["beta"] == 0.3  # β: the regression's, the sampler's


def test_a_parameter_the_loss_had_otherwise_than_the_arguments_is_named_by_its_place_in_the_record():
    loss = {**DEFAULT_LOSS, "contrastive": {**DEFAULT_LOSS["contrastive"], "beta": 0.5}}
    rows = trained_hyperparameters(ARGS, loss, None)
    assert (rows["beta"], rows["regression.beta"], rows["contrastive.beta"]) == (0.3, 0.3, 0.5)
    # an entry this release does not know is shown too, by its place
    rows = trained_hyperparameters(ARGS, {**DEFAULT_LOSS, "hard_weight": 0.3, "hard": {"k": 4}}, None)
    assert (rows["hard_weight"], rows["hard.k"]) == (0.3, 4)


def test_the_contrastive_mean_row_is_the_recorded_losss():
    """``contrastive_mean`` is a loss argument: the card shows the mean the recorded loss averaged over, not the
    arguments' (a loss given in Python with other settings), and none where the contrastive term did not train or
    another loss class did (it came back from the arguments file in all three)."""
    contrastable = {**ARGS, "contrastive_mean": "contrastable"}
    assert "contrastive_mean" in loss_arguments()
    assert "contrastive_mean" not in trained_hyperparameters(contrastable, DEFAULT_LOSS, None)
    recorded = {**DEFAULT_LOSS, "contrastive": {**DEFAULT_LOSS["contrastive"], "mean": "contrastable"}}
    assert trained_hyperparameters(ARGS, recorded, None)["contrastive_mean"] == "contrastable"
    switched_off = {**recorded, "use_contrastive": False}
    assert "contrastive_mean" not in trained_hyperparameters(contrastable, switched_off, None)
    another = {"class": "FilteredMSELoss", "pair_filter": "all", "beta": 0.3}
    assert "contrastive_mean" not in trained_hyperparameters(contrastable, another, None)


def test_another_loss_is_one_row_with_every_setting_nested_ones_too():
    rows = trained_hyperparameters(ARGS, {"class": "FilteredMSELoss", "pair_filter": "all", "beta": 0.3}, None)
    assert rows["loss"] == "FilteredMSELoss(pair_filter=all, beta=0.3)" and not loss_arguments() & set(rows)
    record = {"class": "Wrapped", "scale": 2, "inner": {"temperature": 0.1}}
    assert trained_hyperparameters(ARGS, record, None)["loss"] == "Wrapped(scale=2, inner.temperature=0.1)"


def test_each_loss_class_used_is_cited_from_its_citation():
    assert loss_citations(None) == {} and loss_citations({}) == {}
    assert loss_citations(DEFAULT_LOSS) == BUILT_IN
    record = {
        **DEFAULT_LOSS,
        "distill_weight": 1.0,
        "distillation": {},
        "title_weight": 0.1,
        "title": {"temperature": 0.05},
        "extra_terms": {
            "mse2": {"class": "FilteredMSELoss", "weight": 0.1, "config": {"pair_filter": "all", "beta": 0.3}},
            "margin": {"class": "Margin", "weight": 0.5, "config": {"margin": 0.2}},  # unknown, no citation
            "cited": {"class": "Cited", "weight": 0.5, "citation": "Doe, Cited, 2021"},
        },
    }
    assert loss_citations(record) == {
        **BUILT_IN,
        "SimilarityDistillationLoss": SimilarityDistillationLoss.citation,
        "TitleInfoNCELoss": TitleInfoNCELoss.citation,
        "Cited": "Doe, Cited, 2021",
    }
    # a term that does not train is not cited; another loss is cited by its class, or by the record's citation
    assert "HierarchicalContrastiveLoss" not in loss_citations({**DEFAULT_LOSS, "use_contrastive": False})
    assert loss_citations({"class": "TitleInfoNCELoss", "temperature": 0.05}) == {
        "TitleInfoNCELoss": TitleInfoNCELoss.citation
    }
    assert loss_citations({"class": "Mine", "citation": "Me, 2022"}) == {"Mine": "Me, 2022"}
    assert loss_citations({"class": "Mine"}) == {}


def test_an_extra_terms_weight_that_is_not_a_number_is_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "biohicl_config.json").write_text(json.dumps(CONFIG))
    loss = {**DEFAULT_LOSS, "extra_terms": {"margin": {"class": "Margin", "weight": "half"}}}
    (run / "training_summary.json").write_text(json.dumps({"global_step": 1, "loss": loss}))
    with pytest.raises(PublishError) as err:
        BioHiCLModelCardData.from_run_dir(run, "M")
    assert (
        str(err.value)
        == f"{run / 'training_summary.json'}: field loss.extra_terms.margin.weight must be a number, got 'half'"
    )


def _committed() -> list[Path]:
    """One training_summary.json under docs/results per distinct recorded loss."""
    first: dict[str, Path] = {}
    for path in sorted(RESULTS.rglob("training_summary.json")):
        first.setdefault(json.dumps(json.loads(path.read_text())["loss"], sort_keys=True), path)
    return sorted(first.values())


@pytest.mark.parametrize("summary", _committed(), ids=lambda p: str(p.parent.relative_to(RESULTS)))
def test_the_committed_records_render_with_every_term_they_trained(summary, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "biohicl_config.json").write_text(json.dumps(CONFIG))
    (run / "training_summary.json").write_text(summary.read_text())
    loss = json.loads(summary.read_text())["loss"]
    data = BioHiCLModelCardData.from_run_dir(run, "M")
    rows = data.hyperparameters
    assert rows["distill_weight"] == loss["distill_weight"] and rows["lambda_con"] == loss["lambda_con"]
    assert rows["title_weight"] == loss.get("title_weight", 0.0)
    assert rows.get("title_temperature") == (loss["title"]["temperature"] if loss.get("title_weight") else None)
    cited = {"SimilarityDistillationLoss"} if loss["distill_weight"] else set()
    cited |= {"TitleInfoNCELoss"} if loss.get("title_weight") else set()
    assert set(data.loss_citations) == {*BUILT_IN, *cited}
    text = render_model_card(data)
    assert f"| `distill_weight` | {loss['distill_weight']} |" in text
    assert f"- `HierarchicalContrastiveLoss`: {HierarchicalContrastiveLoss.citation}\n" in text


def test_a_run_with_an_extra_term_shows_and_cites_it(tiny_bert_dir, docs_file, tmp_path):  # noqa: F811
    """The reviewer's run: distillation, title and an extra term, trained 2 steps with the tiny model."""
    args = make_args(tiny_bert_dir, docs_file, tmp_path / "run", max_steps=2, distill_weight=0.5, title_weight=0.2)
    run = train_biohicl(args, loss=build_loss(args, extra_terms={"margin": (Margin(), 0.5)}))
    data = BioHiCLModelCardData.from_run_dir(run, "M")
    rows = data.hyperparameters
    assert (rows["distill_weight"], rows["title_weight"], rows["title_temperature"]) == (0.5, 0.2, 0.05)
    assert rows["loss_margin"] == "0.5 · Margin(margin=0.2)"
    assert {"SimilarityDistillationLoss", "TitleInfoNCELoss", *BUILT_IN} <= set(data.loss_citations)
    text = render_model_card(data)
    assert "| `title_temperature` | 0.05 |" in text and "| `loss_margin` | 0.5 · Margin(margin=0.2) |" in text
    citation = text[text.index("## Citation") :]
    assert f"- `TitleInfoNCELoss`: {TitleInfoNCELoss.citation}\n" in citation
    assert f"- `SimilarityDistillationLoss`: {SimilarityDistillationLoss.citation}\n" in citation
    assert f"- `Margin`: {Margin.citation}\n" in citation  # a term of one's own, by its citation attribute
    # the YAML header is as before: the loss is in the body only
    header = yaml.safe_load(text[4 : text.index("\n---", 4)])
    assert set(header) == {"base_model", "language", "library_name", "license", "model_name", "pipeline_tag", "tags"}
    assert "citation" not in text[: text.index("\n---", 4)].lower()


def test_the_live_records_parameters_are_all_rows():
    """Whatever a BioHiCLLoss with every term on records, each parameter reaches the card (nothing hand-picked)."""
    loss = BioHiCLLoss(
        distill_weight=1.0, title_weight=1.0, title=TitleInfoNCELoss(temperature=0.09), extra_terms={"m": (Margin(), 1)}
    )
    rows = trained_hyperparameters({}, {"class": "BioHiCLLoss", **loss_config(loss)}, None)
    assert rows["title_temperature"] == 0.09 and rows["loss_m"] == "1 · Margin(margin=0.2)"
    assert {"lambda_con", "temperature", "pair_filter", "weight_positives", "contrastive_form", "negative"} <= set(rows)

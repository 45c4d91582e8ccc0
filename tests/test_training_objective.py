"""The objective a run trains is the loss's to check: the arguments refuse what the loss built from them refuses
(one line naming the field), an objective of extra terms alone trains, and an objective with no term at all is
refused where the run knows its whole objective; a resume under another objective than its checkpoint's is refused
in one line naming what changed, as a resume under other arguments is."""

from __future__ import annotations

import enum
import json
from pathlib import Path

import pytest
import torch
from test_trainer import make_values
from torch import nn

import biohicl.losses.regression as regression
from biohicl.cli.main import main
from biohicl.errors import ConfigError
from biohicl.losses import embedding_similarity
from biohicl.losses.combined import EMPTY_OBJECTIVE
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.objective import build_loss
from biohicl.training.run import train_biohicl
from tests.conftest import synthetic_documents

EMPTY = "use_mse, use_contrastive, lambda_con, distill_weight, title_weight: at least one loss term must train"


class Margin(nn.Module):
    """Every in-batch pair at least ``margin`` apart in SimE from 1: a small term of one's own."""

    def __init__(self, margin: float):
        super().__init__()
        self.margin = margin

    def forward(self, embeddings, siml, pair_mask=None, **inputs):
        return (embedding_similarity(embeddings) - (1 - self.margin)).clamp_min(0).mean()

    def get_config_dict(self):
        return {"margin": self.margin}


@pytest.fixture(scope="module")
def docs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "documents.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    return path


def make_args(tiny_bert_dir: Path, docs_file: Path, output_dir: Path, **overrides) -> BioHiCLTrainingArguments:
    """test_trainer's tiny run, 2 steps."""
    return BioHiCLTrainingArguments(
        **make_values(tiny_bert_dir, docs_file, output_dir, **{"max_steps": 2, **overrides})
    )


def test_an_objective_of_extra_terms_alone_trains(tiny_bert_dir, docs_file, tmp_path):
    args = make_args(tiny_bert_dir, docs_file, tmp_path / "run", use_mse=False, use_contrastive=False)
    with pytest.raises(ConfigError) as raised:  # the arguments' objective alone has no term
        build_loss(args)
    assert str(raised.value).startswith(EMPTY)
    with pytest.raises(ConfigError) as raised:  # nor does the run's, given none
        train_biohicl(args)
    assert str(raised.value).startswith(EMPTY)
    run = train_biohicl(args, loss=build_loss(args, extra_terms={"margin": (Margin(0.1), 1.0)}))
    state = json.loads((run / "trainer_state.json").read_text())
    logged = [entry for entry in state["log_history"] if "loss" in entry]
    assert [entry["step"] for entry in logged] == [1, 2]
    for entry in logged:
        assert "loss_mse" not in entry and "loss_con" not in entry
        assert entry["loss"] == pytest.approx(entry["loss_margin"], rel=1e-6)
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["loss"]["extra_terms"] == {"margin": {"class": "Margin", "weight": 1.0, "config": {"margin": 0.1}}}


def test_the_arguments_refuse_what_the_loss_refuses(tmp_path, monkeypatch):
    def stricter(self, pair_filter="zero_or_positive", beta=0.3):
        raise ValueError(f"beta: this loss refuses {beta}")

    monkeypatch.setattr(regression.FilteredMSELoss, "__init__", stricter)
    with pytest.raises(ConfigError) as raised:
        BioHiCLTrainingArguments(output_dir=str(tmp_path), beta=0.25)
    assert str(raised.value) == "beta: this loss refuses 0.25"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pair_filter", "some", "pair_filter: 'some' is not one of zero_or_positive, all, positive, nonzero"),
        ("beta", 1.5, "beta: must be in [0, 1), got 1.5"),
        ("temperature", 0.0, "temperature: must be positive, got 0.0"),
        ("title_temperature", -1.0, "title_temperature: must be positive, got -1.0"),
        ("contrastive_form", "simclr", "contrastive_form: 'simclr' is not one of infonce, paper"),
        ("contrastive_mean", "all", "contrastive_mean: 'all' is not one of positives, contrastable"),
        ("negative", "below:0.4", "negative: the threshold of 'below:0.4' must be in (0, beta = 0.3]"),
        ("lambda_con", -1.0, "lambda_con: must be non-negative, got -1.0"),
        ("distill_weight", -1.0, "distill_weight: must be non-negative, got -1.0"),
        ("title_weight", -1.0, "title_weight: must be non-negative, got -1.0"),
    ],
)
def test_each_loss_value_is_refused_in_the_losss_words(tmp_path, field, value, message):
    with pytest.raises(ConfigError) as raised:
        BioHiCLTrainingArguments(output_dir=str(tmp_path), **{field: value})
    assert str(raised.value) == message
    # with every term off too: the values are checked, whether any term is on is the run's to say
    with pytest.raises(ConfigError) as raised:
        BioHiCLTrainingArguments(output_dir=str(tmp_path), use_mse=False, use_contrastive=False, **{field: value})
    assert str(raised.value) == message


def test_the_contrastive_mean_reaches_the_loss_and_its_record_only_when_not_the_default(tmp_path):
    default = build_loss(BioHiCLTrainingArguments(output_dir=str(tmp_path)))
    assert default.contrastive.mean == "positives" and "mean" not in default.get_config_dict()["contrastive"]
    chosen = build_loss(BioHiCLTrainingArguments(output_dir=str(tmp_path), contrastive_mean="contrastable"))
    assert chosen.get_config_dict()["contrastive"]["mean"] == "contrastable"
    with pytest.raises(ConfigError) as raised:
        BioHiCLTrainingArguments(output_dir=str(tmp_path), contrastive_form="paper", contrastive_mean="contrastable")
    assert str(raised.value).startswith("contrastive_mean, contrastive_form: 'contrastable' applies to the infonce")


def test_the_command_line_refuses_an_objective_without_a_term(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--output_dir", str(out), "--use_mse", "false", "--use_contrastive", "false"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"biohicl train: error: {EMPTY}") and len(err.splitlines()) == 1
    assert not out.exists()  # refused before the output folder's write check
    # a term of its own on the command line: the title term
    args = BioHiCLTrainingArguments(output_dir=str(out), use_mse=False, use_contrastive=False, title_weight=0.5)
    assert build_loss(args).title_weight == 0.5


def test_biohicl_train_builds_its_objective_once_and_trains_that_loss(tmp_path, monkeypatch):
    import biohicl.training.objective as objective
    from biohicl.losses import BioHiCLLoss

    built, given, real = [], {}, objective._objective
    monkeypatch.setattr(objective, "_objective", lambda args, terms: built.append(terms) or real(args, terms))

    def train(args, evaluator=None, loss=None, **kwargs):
        given["loss"] = loss
        return Path(args.output_dir)

    monkeypatch.setattr("biohicl.training.run.train_biohicl", train)
    assert main(["train", "--output_dir", str(tmp_path / "run"), "--max_steps", "1"]) == 0
    assert len(built) == 2  # the arguments' values, checked as they are made; the run's objective
    assert isinstance(given["loss"], BioHiCLLoss)  # the run trains the loss the command built


def test_build_loss_refuses_a_value_before_an_objective_without_a_term(tmp_path):
    args = BioHiCLTrainingArguments(output_dir=str(tmp_path))
    args.use_mse, args.use_contrastive, args.lambda_con = False, False, -1.0  # changed after the arguments' checks
    with pytest.raises(ConfigError) as raised:
        build_loss(args)
    assert str(raised.value) == "lambda_con: must be non-negative, got -1.0"


def _checkpointed(tiny_bert_dir, docs_file, out, **overrides):
    return make_args(tiny_bert_dir, docs_file, out, save_strategy="steps", save_steps=1, **overrides)


def test_a_resume_with_another_objective_is_refused_naming_what_changed(
    tiny_bert_dir, docs_file, tmp_path, monkeypatch
):
    import biohicl.training.run as run

    out = tmp_path / "run"
    args = _checkpointed(tiny_bert_dir, docs_file, out)
    train_biohicl(args, loss=build_loss(args, extra_terms={"margin": (Margin(0.1), 0.5)}))
    checkpoint = out / "checkpoint-1"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    kept = state["stateful_callbacks"]["ObjectiveRecord"]["attributes"]["config"]
    assert kept["class"] == "BioHiCLLoss"
    assert kept["extra_terms"] == {"margin": {"class": "Margin", "weight": 0.5, "config": {"margin": 0.1}}}

    resumed = _checkpointed(tiny_bert_dir, docs_file, out, resume_from_checkpoint=str(checkpoint))
    with monkeypatch.context() as patched:  # refused before the model loads
        patched.setattr(run, "build_model", lambda *a, **k: pytest.fail("the model was loaded"))
        with pytest.raises(ConfigError) as raised:
            train_biohicl(resumed, loss=build_loss(resumed, extra_terms={"margin": (Margin(0.9), 50.0)}))
        assert str(raised.value) == (
            f"resume_from_checkpoint: {checkpoint} was trained with another objective (checkpoint → this run: "
            "loss.extra_terms.margin.config.margin 0.1 → 0.9, loss.extra_terms.margin.weight 0.5 → 50.0); resume "
            "with the loss it was trained with, or train a new run in another --output_dir"
        )
        with pytest.raises(ConfigError) as raised:  # the term dropped
            train_biohicl(resumed)
        assert "(checkpoint → this run: loss.extra_terms" in str(raised.value)
        assert str(raised.value).endswith(' → (absent)); resume with the loss it was trained with, or train a new '
                                          'run in another --output_dir')  # fmt: skip

    # the same objective resumes, and the run's summary says what trained
    train_biohicl(resumed, loss=build_loss(resumed, extra_terms={"margin": (Margin(0.1), 0.5)}))
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["resumed_at_step"] == 1
    assert summary["loss"]["extra_terms"]["margin"] == {"class": "Margin", "weight": 0.5, "config": {"margin": 0.1}}


def test_a_fresh_run_over_checkpoints_of_another_objective_is_refused(tiny_bert_dir, docs_file, tmp_path):
    out = tmp_path / "run"
    args = _checkpointed(tiny_bert_dir, docs_file, out)
    train_biohicl(args, loss=build_loss(args, extra_terms={"margin": (Margin(0.1), 0.5)}))
    with pytest.raises(ConfigError) as raised:
        train_biohicl(args)
    assert str(raised.value) == (
        f"{out} holds checkpoints of a run with another objective (checkpoint-2 → this run: loss.extra_terms.margin "
        '{"class": "Margin", "config": {"margin": 0.1}, "weight": 0.5} → (absent)): continue that run with its '
        "settings and --resume_from_checkpoint last, train in another --output_dir, or remove its checkpoint-* folders"
    )
    # the same objective trains over its own checkpoints, as the same arguments do
    train_biohicl(args, loss=build_loss(args, extra_terms={"margin": (Margin(0.1), 0.5)}))


def test_a_resume_under_the_other_contrastive_mean_is_refused_by_the_objective_too(tmp_path):
    """The record holds ``mean`` only away from ``positives``: a checkpoint of a contrastable loss resumed with a
    positives one (a loss given in Python, or a checkpoint without its arguments file) was compared equal, the key
    being on one side only; it is compared with its default now, both ways, and the same mean resumes."""
    from biohicl.training.objective import objective_record
    from biohicl.training.run_settings import check_resume_objective, objective_differences

    def record(mean: str) -> dict:
        return objective_record(build_loss(BioHiCLTrainingArguments(output_dir=str(tmp_path), contrastive_mean=mean)))

    positives, contrastable = record("positives"), record("contrastable")
    assert objective_differences(contrastable, positives) == {"loss.contrastive.mean": ("contrastable", "positives")}
    assert objective_differences(positives, contrastable) == {"loss.contrastive.mean": ("positives", "contrastable")}
    assert objective_differences(positives, positives) == objective_differences(contrastable, contrastable) == {}
    checkpoint = tmp_path / "checkpoint-1"
    checkpoint.mkdir()
    state = {"stateful_callbacks": {"ObjectiveRecord": {"args": {}, "attributes": {"config": contrastable}}}}
    (checkpoint / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(ConfigError, match=r'loss\.contrastive\.mean "contrastable" → "positives"\); resume with'):
        check_resume_objective(positives, checkpoint)
    check_resume_objective(contrastable, checkpoint)  # the same objective resumes


def test_the_record_is_the_entry_the_resume_reads():
    from biohicl.training.run_settings import OBJECTIVE_RECORD
    from biohicl.training.summary import ObjectiveRecord

    assert ObjectiveRecord.__name__ == OBJECTIVE_RECORD


class Holding(nn.Module):
    """An extra term whose config holds ``value`` (one JSON cannot store, or a NaN)."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, embeddings, siml, pair_mask=None, **inputs):
        return embedding_similarity(embeddings).mean() * 0.01

    def get_config_dict(self):
        return {"value": self.value}


class Mode(enum.Enum):
    MEAN = "mean"
    MAX = "max"


def _function():
    def sharpen(x):  # a new function each call: its repr (with its address) differs, its type does not
        return x

    return sharpen


def test_a_value_json_cannot_store_is_recorded_by_its_type_and_a_nan_equals_a_nan():
    from biohicl.training.objective import objective_record
    from biohicl.training.run_settings import objective_differences

    def record(value):
        return objective_record(Holding(value))

    assert record(_function()) == {"class": "Holding", "value": "<function>"}
    assert record({9, 1}) == {"class": "Holding", "value": ["1", "9"]}
    assert (record(torch.tensor([0.5]))["value"], record(Path("a/b"))["value"]) == ([0.5], "a/b")  # stored as is
    # a value whose text is the same in every process is recorded, and compared, by its text
    assert (record(torch.float16)["value"], record(Mode.MEAN)["value"]) == ("torch.float16", "Mode.MEAN")
    assert objective_differences(record(Mode.MEAN), record(Mode.MAX)) == {"loss.value": ("Mode.MEAN", "Mode.MAX")}
    assert list(objective_differences(record(torch.float16), record(torch.bfloat16))) == ["loss.value"]
    # what another process records of the same objective: another function, a set iterated in another order
    nan = float("nan")
    for saved, now in [(_function(), _function()), ({1, 9}, {9, 1}), (nan, float("nan")), ([nan], [float("nan")])]:
        assert objective_differences(json.loads(json.dumps(record(saved))), record(now)) == {}
    # another kind of value, or a number for a NaN, is another objective
    assert objective_differences(record({1}), record(_function())) == {"loss.value": (["1"], "<function>")}
    cited = {"class": "Holding", "value": 1, "citation": "Doe 2024"}
    assert objective_differences(cited, {**cited, "citation": "Doe et al., ACL 2024"}) == {}  # what a card cites
    assert list(objective_differences(record(float("nan")), record(0.5))) == ["loss.value"]


def test_a_resume_with_the_same_objective_holding_values_json_cannot_store_resumes(tiny_bert_dir, docs_file, tmp_path):
    out = tmp_path / "run"
    args = _checkpointed(tiny_bert_dir, docs_file, out)

    def term():  # the same term's config built anew, as the resuming process builds it
        return {"t": (Holding({"fn": _function(), "set": {1, 9}, "nan": float("nan")}), 0.5)}

    train_biohicl(args, loss=build_loss(args, extra_terms=term()))
    resumed = _checkpointed(tiny_bert_dir, docs_file, out, resume_from_checkpoint=str(out / "checkpoint-1"))
    held = term()
    held["t"][0].value["set"] = {9, 1}
    train_biohicl(resumed, loss=build_loss(resumed, extra_terms=held))
    assert json.loads((out / "training_summary.json").read_text())["resumed_at_step"] == 1


def test_a_checkpoint_without_its_arguments_file_still_compares_its_objective(tiny_bert_dir, docs_file, tmp_path):
    out = tmp_path / "run"
    args = _checkpointed(tiny_bert_dir, docs_file, out)
    train_biohicl(args, loss=build_loss(args, extra_terms={"margin": (Margin(0.1), 0.5)}))
    checkpoint = out / "checkpoint-1"
    (checkpoint / "biohicl_training_args.json").unlink()
    resumed = _checkpointed(tiny_bert_dir, docs_file, out, resume_from_checkpoint=str(checkpoint))
    with pytest.raises(ConfigError) as raised:
        train_biohicl(resumed, loss=build_loss(resumed, extra_terms={"margin": (Margin(0.9), 0.5)}))
    assert str(raised.value) == (
        f"resume_from_checkpoint: {checkpoint} was trained with another objective (checkpoint → this run: "
        "loss.extra_terms.margin.config.margin 0.1 → 0.9); resume with the loss it was trained with, or train a new "
        "run in another --output_dir"
    )


def test_a_study_refuses_a_variant_with_no_loss_term_when_its_config_is_read(tmp_path, capsys):
    from biohicl.cli.main import main as cli

    source = Path("configs/reproduce_tiny.yaml").read_text(encoding="utf-8")
    path = tmp_path / "study.yaml"
    path.write_text(source + "variants:\n  full: {}\n  bare: {use_mse: false, use_contrastive: false}\n", "utf-8")
    assert cli(["reproduce", "--config", str(path), "--dry_run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"biohicl reproduce: error: {path}: variants.bare: {EMPTY_OBJECTIVE}"
    assert len(err.splitlines()) == 1

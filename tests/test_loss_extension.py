"""Extra loss terms (``BioHiCLLoss(extra_terms=)``, ``build_loss(args, extra_terms=)``): docs/training.md's
"Adding a loss term" example runs as written, trains and logs its term beside the built-in ones, and the total is
the weighted sum of the components, checked by hand on a 3-document batch."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from test_trainer import make_values
from torch import nn

from biohicl.errors import ConfigError
from biohicl.losses import BioHiCLLoss
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.objective import build_loss
from tests.conftest import synthetic_documents

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"


def doc_example() -> str:
    """The first python block of docs/training.md's "Adding a loss term" section."""
    section = DOC.read_text(encoding="utf-8").split("## Adding a loss term", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def make_args(tiny_bert_dir: Path, docs_file: Path, output_dir: Path, **overrides) -> BioHiCLTrainingArguments:
    """test_trainer's tiny run, 2 steps."""
    values = make_values(tiny_bert_dir, docs_file, output_dir, **{"max_steps": 2, **overrides})
    return BioHiCLTrainingArguments(**values)


@pytest.fixture(scope="module")
def docs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "documents.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def doc_term() -> type:
    """The doc's term class, defined without training (the block's last two lines train)."""
    namespace: dict = {}
    exec(doc_example().split("\nloss = build_loss(", 1)[0], namespace)
    return namespace["SimLTripletLoss"]


# 3 labelled documents: SimE 0↔1 = 0, 0↔2 = 0.6, 1↔2 = 0.8; under the base model 0↔2 = 0.8, 1↔2 = 0.6
EMB = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
BASE = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
SIML = torch.tensor([[1.0, 0.8, 0.0], [0.8, 1.0, 0.4], [0.0, 0.4, 1.0]])


def test_the_doc_term_by_hand(doc_term):
    # anchor 0: partners 1 (SimL 0.8) over 2 (0.0): max(0, 0.1 − 0 + 0.6) = 0.7
    # anchor 1: partners 0 (0.8) over 2 (0.4): max(0, 0.1 − 0 + 0.8) = 0.9
    # anchor 2: partners 1 (0.4) over 0 (0.0): max(0, 0.1 − 0.8 + 0.6) = 0
    assert doc_term(margin=0.1)(EMB, SIML).item() == pytest.approx((0.7 + 0.9 + 0.0) / 3, abs=1e-6)


def test_total_is_the_weighted_sum_of_the_components(doc_term, tiny_bert_dir, docs_file, tmp_path):
    args = make_args(tiny_bert_dir, docs_file, tmp_path / "run", distill_weight=1.0)
    loss = build_loss(args, extra_terms={"triplet": (doc_term(margin=0.1), 0.5)})
    assert loss.extra_inputs == {"base_embeddings"}  # the distillation term's, kept
    out = loss(EMB, SIML, base_embeddings=BASE)
    # every pair is SimL 0 or > β: L_mse = ((0 − 0.8)² + (0.6 − 0)² + (0.8 − 0.4)²) / 3
    assert out["loss_mse"].item() == pytest.approx((0.64 + 0.36 + 0.16) / 3, abs=1e-6)
    # L_distill = mean over i ≠ j of (SimE − base SimE)²: (0 + 0.2² + 0.2²) · 2 / 6
    assert out["loss_distill"].item() == pytest.approx(0.08 / 3, abs=1e-6)
    assert out["loss_triplet"].item() == pytest.approx(1.6 / 3, abs=1e-6)
    by_hand = out["loss_mse"] + 0.1 * out["loss_con"] + 1.0 * out["loss_distill"] + 0.5 * out["loss_triplet"]
    assert out["loss"].item() == pytest.approx(by_hand.item(), abs=1e-7)
    plain = build_loss(args)(EMB, SIML, base_embeddings=BASE)  # the built-in terms are bit-identical
    for key in ("loss_mse", "loss_con", "loss_distill"):
        assert torch.equal(out[key], plain[key]), key
    assert torch.equal(out["loss"] - 0.5 * out["loss_triplet"], plain["loss"])
    config = loss.get_config_dict()
    triplet = {"class": "SimLTripletLoss", "weight": 0.5, "config": {"margin": 0.1}}
    assert config["extra_terms"] == {"triplet": {**triplet, "citation": doc_term.citation}}  # the card cites it
    assert config["distill_weight"] == 1.0
    assert "extra_terms" not in build_loss(args).get_config_dict()


def test_the_doc_example_trains_and_logs_its_term(tiny_bert_dir, docs_file, tmp_path):
    namespace = {"args": make_args(tiny_bert_dir, docs_file, tmp_path / "run", distill_weight=1.0)}
    exec(doc_example(), namespace)
    run = namespace["run_dir"]
    state = json.loads((run / "trainer_state.json").read_text())
    steps = [entry for entry in state["log_history"] if "loss_triplet" in entry]
    assert [entry["step"] for entry in steps] == [1, 2]
    for entry in steps:
        assert 0.0 <= entry["negative_pairs"] <= 1.0
        total = entry["loss_mse"] + 0.1 * entry["loss_con"] + entry["loss_distill"] + 0.5 * entry["loss_triplet"]
        assert entry["loss"] == pytest.approx(total, rel=1e-5)
        assert entry["loss_distill"] > 0  # the base model's embeddings reached the distillation term
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["loss"]["extra_terms"]["triplet"] == {
        "class": "SimLTripletLoss",
        "weight": 0.5,
        "config": {"margin": 0.1},
        "citation": namespace["SimLTripletLoss"].citation,
    }
    assert summary["loss"]["distill_weight"] == 1.0


class NeedsBase(nn.Module):
    """A term asking for the frozen base model's batch: it gets it even with the distillation term off."""

    extra_inputs = frozenset({"base_embeddings"})

    def forward(self, embeddings, siml, pair_mask=None, **inputs):
        return (embeddings - inputs["base_embeddings"]).pow(2).sum()


class Vector(nn.Module):
    def forward(self, embeddings, siml, pair_mask=None, **inputs):
        return embeddings.sum(dim=1)


def test_terms_ask_for_inputs_and_bad_terms_are_one_line_config_errors(doc_term):
    loss = BioHiCLLoss(extra_terms={"drift": (NeedsBase(), 2.0)})
    assert loss.extra_inputs == {"base_embeddings"}
    out = loss(EMB, SIML, base_embeddings=BASE)
    # (0.6 − 0.8)² + (0.8 − 0.6)² = 0.08
    assert out["loss_drift"].item() == pytest.approx(0.08, abs=1e-6)
    assert torch.equal(out["loss"], out["loss_mse"] + 0.1 * out["loss_con"] + 2.0 * out["loss_drift"])
    logged = BioHiCLLoss(extra_terms={"triplet": (doc_term(), 0.0)})(EMB, SIML)  # weight 0: logged, not trained
    assert torch.equal(logged["loss"], logged["loss_mse"] + 0.1 * logged["loss_con"])
    assert logged["loss_triplet"].item() > 0
    # a term alone is a loss
    alone = BioHiCLLoss(use_mse=False, use_contrastive=False, extra_terms={"triplet": (doc_term(), 1.0)})
    assert alone(EMB, SIML)["loss"].item() == pytest.approx(1.6 / 3, abs=1e-6)
    for terms, message in [
        ({"mse": (doc_term(), 1.0)}, r"extra_terms\['mse'\]: the name of a built-in term"),
        ({"my term": (doc_term(), 1.0)}, r"extra_terms\['my term'\]: not a name"),
        ({"triplet": (doc_term(), -1.0)}, r"extra_terms\['triplet'\]: weight must be a non-negative number"),
        ({"triplet": (lambda e, s, **kw: e.sum(), 1.0)}, r"extra_terms\['triplet'\]: .* not an nn.Module"),
        ({"triplet": doc_term()}, r"extra_terms\['triplet'\]: expected a \(module, weight\) pair"),
    ]:
        with pytest.raises(ConfigError, match=message):
            BioHiCLLoss(extra_terms=terms)
    with pytest.raises(ConfigError, match=r"extra_terms\['vector'\]: returned a tensor of shape \[3\]"):
        BioHiCLLoss(extra_terms={"vector": (Vector(), 1.0)})(EMB, SIML)


def test_a_wrapper_without_extra_inputs_gets_a_one_line_error_naming_the_fix():
    with pytest.raises(ConfigError, match=r"base_embeddings: required when distill_weight > 0.*extra_terms="):
        BioHiCLLoss(distill_weight=1.0)(EMB, SIML)

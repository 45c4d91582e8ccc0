"""The logged loss components: each one's mean over the micro-batches (and processes) that gave it, so a batch
without titles does not pull ``loss_title`` down, while the total ``loss`` still counts its exact 0."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import torch

from biohicl.losses import BioHiCLLoss, FilteredMSELoss, HierarchicalContrastiveLoss, TitleInfoNCELoss
from biohicl.training import distributed
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.distributed import component_means
from biohicl.training.objective import loss_terms
from tests.conftest import synthetic_documents

if TYPE_CHECKING:
    from biohicl.training.trainer import BioHiCLTrainer


def _batch(seed: int, titled: bool) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.nn.functional.normalize(torch.randn(4, 8, generator=generator), dim=-1)
    siml = torch.rand(4, 4, generator=generator).triu(1)
    siml[0, 1], siml[0, 3] = 0.8, 0.0  # a positive and a negative: L_con contrasts (a batch without logs none)
    batch = {"embeddings": embeddings, "siml": siml + siml.T + torch.eye(4)}
    if titled:
        batch |= {"title_embeddings": torch.randn(3, 8, generator=generator)}
        batch |= {"abstract_embeddings": torch.randn(3, 8, generator=generator)}
    return batch


def _title_trainer(tiny_bert_dir, tmp_path) -> tuple[BioHiCLLoss, BioHiCLTrainer]:
    """A trainer of the tiny model with the MSE, contrastive (λ 0.1) and title (0.5) terms."""
    from biohicl.training.run import build_model
    from biohicl.training.trainer import BioHiCLTrainer

    docs = tmp_path / "documents.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    args = BioHiCLTrainingArguments(
        output_dir=str(tmp_path / "run"),
        base_model=str(tiny_bert_dir),
        base_model_hub_id="test/tiny-bert",
        dataset_path=str(docs),
        max_length=32,
        report_to="none",
        lora_target_modules=["query", "value"],
        use_cpu=True,
        title_weight=0.5,
    )
    loss = BioHiCLLoss(
        FilteredMSELoss(), HierarchicalContrastiveLoss(), lambda_con=0.1, title=TitleInfoNCELoss(), title_weight=0.5
    )
    return loss, BioHiCLTrainer(model=build_model(args), args=args, loss=loss)


@pytest.mark.parametrize("accumulation", [1, 3])
def test_a_batch_without_titles_is_left_out_of_the_logged_title_mean(tiny_bert_dir, tmp_path, accumulation):
    """Three micro-batches in one logging window (three optimizer steps, or one step of three micro-batches), the
    second without titles: ``loss_title`` logs the mean of the two titled batches' values, ``loss_mse`` and
    ``loss_con`` the mean of all three, and the untitled batch's total is its MeSH terms (the title term adds 0)."""
    loss, trainer = _title_trainer(tiny_bert_dir, tmp_path)
    trainer.current_gradient_accumulation_steps = accumulation
    batches = [_batch(0, titled=True), _batch(1, titled=False), _batch(2, titled=True)]
    totals, title, mse, con = [], [], [], []
    for batch in batches:
        total, components = loss_terms(loss(**batch))
        trainer._accumulate(components, torch.device("cpu"), batch["siml"])
        totals.append(total.item())
        mse.append(FilteredMSELoss()(batch["embeddings"], batch["siml"]).item())
        con.append(HierarchicalContrastiveLoss()(batch["embeddings"], batch["siml"]).item())
        if "title_embeddings" in batch:
            title.append(TitleInfoNCELoss()(batch["title_embeddings"], batch["abstract_embeddings"]).item())
    assert len(title) == 2 and min(title) > 0
    assert totals[1] == pytest.approx(mse[1] + 0.1 * con[1], rel=1e-6)  # the untitled batch's title term is 0
    assert totals[0] == pytest.approx(mse[0] + 0.1 * con[0] + 0.5 * title[0], rel=1e-6)
    steps = 3 // accumulation
    trainer.log({"loss": sum(totals) / steps})  # what transformers logs: the total per optimizer step
    logged = trainer.state.log_history[-1]
    assert logged["loss_title"] == pytest.approx(sum(title) / 2, rel=1e-6)  # not sum(title) / 3
    assert logged["loss_mse"] == pytest.approx(sum(mse) / 3, rel=1e-6)
    assert logged["loss_con"] == pytest.approx(sum(con) / 3, rel=1e-6)
    assert logged["loss"] == sum(totals) / steps  # the total, its 0 title term included, as given
    assert trainer._components == {} and trainer._component_weights == {}  # the next window starts afresh


def test_a_logging_window_without_a_titled_batch_logs_no_title_term(tiny_bert_dir, tmp_path):
    """Two untitled micro-batches in one window: the logged entry has ``loss_mse`` (their mean) but no
    ``loss_title`` at all, not a 0."""
    loss, trainer = _title_trainer(tiny_bert_dir, tmp_path)
    batches = [_batch(1, titled=False), _batch(3, titled=False)]
    mse = []
    for batch in batches:
        components = loss_terms(loss(**batch))[1]
        assert "loss_title" not in components
        trainer._accumulate(components, torch.device("cpu"), batch["siml"])
        mse.append(FilteredMSELoss()(batch["embeddings"], batch["siml"]).item())
    trainer.log({"loss": 0.5})
    logged = trainer.state.log_history[-1]
    assert "loss_title" not in logged and logged["loss"] == 0.5
    assert logged["loss_mse"] == pytest.approx(sum(mse) / 2, rel=1e-6)


def test_a_title_only_loss_on_an_untitled_batch_logs_no_title_term_and_still_backpropagates():
    loss = BioHiCLLoss(use_mse=False, use_contrastive=False, title=TitleInfoNCELoss(), title_weight=0.5)
    embeddings = torch.randn(3, 8).requires_grad_(True)
    out = loss(embeddings, torch.eye(3))
    assert set(out) == {"loss"} and out["loss"].item() == 0.0
    out["loss"].backward()
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))
    one = loss(embeddings, torch.eye(3), title_embeddings=torch.randn(1, 8), abstract_embeddings=torch.randn(1, 8))
    assert set(one) == {"loss"} and one["loss"].item() == 0.0  # one titled document: nothing to contrast


def test_processes_average_a_component_over_the_micro_batches_that_gave_it(monkeypatch):
    """Two processes (the collectives stood in for): rank 0 gave ``loss_title`` in 1 of its 2 steps (1.2), rank 1
    in both (0.9 and 0.3): its mean is (1.2 + 0.9 + 0.3) / 3 = 0.8; ``loss_mse`` is over all 4 steps."""
    mine = {"loss_mse": torch.tensor(1.0 + 3.0), "loss_title": torch.tensor(1.2)}
    theirs = torch.tensor([[2.0 + 2.0, 0.9 + 0.3], [2.0, 2.0]])  # rank 1's sums and weights, in rank 0's order
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(
        distributed.dist, "all_gather_object", lambda out, names: out.__setitem__(slice(None), [names, names])
    )
    monkeypatch.setattr(distributed.dist, "all_reduce", lambda tensor: tensor.add_(theirs))
    means = component_means(mine, {"loss_mse": 2.0, "loss_title": 1.0})
    assert means == pytest.approx({"loss_mse": 8.0 / 4, "loss_title": 2.4 / 3})
    monkeypatch.setattr(distributed, "world_size", lambda: 1)
    assert component_means(mine, {"loss_mse": 2.0, "loss_title": 2.0}) == pytest.approx(
        {"loss_mse": 2.0, "loss_title": 0.6}
    )
    assert component_means(mine, {"loss_mse": 2.0, "loss_title": 1.0}) == pytest.approx(
        {"loss_mse": 2.0, "loss_title": 1.2}
    )


def _contrast_batch(seed: int, negatives: bool) -> dict[str, torch.Tensor]:
    """Four documents, (0, 1) a positive pair (SimL 0.8) and the rest weak (0.1-0.2); with ``negatives``, (0, 3) and
    (1, 2) share no label (SimL 0): anchors 0 and 1 have a positive and a negative to contrast it with."""
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.nn.functional.normalize(torch.randn(4, 8, generator=generator), dim=-1)
    siml = 0.1 + 0.1 * torch.rand(4, 4, generator=generator)
    siml[0, 1] = 0.8
    if negatives:
        siml[0, 3] = siml[1, 2] = 0.0
    siml = siml.triu(1)
    return {"embeddings": embeddings, "siml": siml + siml.T + torch.eye(4)}


@pytest.mark.parametrize("form", ["infonce", "paper"])
def test_a_batch_without_negatives_returns_no_contrastive_term(form):
    """Indexing labels: most batches have no SimL = 0 pair, and L_con is then an exact 0 by construction (nothing to
    contrast the positives with); logging it as 0 read as measured and pulled the window's mean down, as an untitled
    batch's title term would. It is left out, as loss_title is, and the total is the other terms'."""
    loss = BioHiCLLoss(contrastive=HierarchicalContrastiveLoss(form=form))
    batch = _contrast_batch(0, negatives=False)
    embeddings = batch["embeddings"].clone().requires_grad_(True)
    out = loss(embeddings, batch["siml"])
    assert set(out) == {"loss", "loss_mse"}
    assert torch.equal(out["loss"], out["loss_mse"])  # L_con's exact 0 added nothing
    out["loss"].backward()
    assert torch.isfinite(embeddings.grad).all()
    only_negatives = batch["siml"].clone().fill_diagonal_(0).clamp_max(0.2).fill_diagonal_(1.0)
    only_negatives[2, 3] = only_negatives[3, 2] = 0.0  # negatives, but no positive to contrast with them
    assert "loss_con" not in loss(batch["embeddings"], only_negatives)
    contrasted = loss(**_contrast_batch(0, negatives=True))
    assert set(contrasted) == {"loss", "loss_mse", "loss_con"} and contrasted["loss_con"].item() != 0.0
    weightless = BioHiCLLoss(contrastive=HierarchicalContrastiveLoss(form=form), lambda_con=0.0)
    weightless = weightless(**_contrast_batch(0, negatives=True))  # logged, not trained on
    assert weightless["loss_con"].item() == pytest.approx(contrasted["loss_con"].item())


def test_a_batch_without_negatives_is_left_out_of_the_logged_contrastive_mean(tiny_bert_dir, tmp_path):
    """Three micro-batches in one logging window, the second without negatives: ``loss_con`` logs the mean of the
    other two (not a third of their sum), ``loss_mse`` and ``negative_pairs`` the mean of all three; a window
    without a batch with negatives logs no ``loss_con``."""
    loss, trainer = _title_trainer(tiny_bert_dir, tmp_path)
    batches = [_contrast_batch(0, True), _contrast_batch(1, False), _contrast_batch(2, True)]
    mse, con = [], []
    for batch in batches:
        trainer._accumulate(loss_terms(loss(**batch))[1], torch.device("cpu"), batch["siml"])
        mse.append(FilteredMSELoss()(batch["embeddings"], batch["siml"]).item())
        con.append(HierarchicalContrastiveLoss()(batch["embeddings"], batch["siml"]).item())
    assert con[1] == 0.0 and min(con[0], con[2]) > 0
    trainer.log({"loss": 1.0})
    logged = trainer.state.log_history[-1]
    assert logged["loss_con"] == pytest.approx((con[0] + con[2]) / 2, rel=1e-6)  # not sum(con) / 3
    assert logged["loss_mse"] == pytest.approx(sum(mse) / 3, rel=1e-6)
    assert logged["negative_pairs"] == pytest.approx((2 / 6 + 0 + 2 / 6) / 3, rel=1e-6)  # still over all three
    for seed in (3, 4):
        batch = _contrast_batch(seed, False)
        trainer._accumulate(loss_terms(loss(**batch))[1], torch.device("cpu"), batch["siml"])
    trainer.log({"loss": 0.5})
    assert "loss_con" not in trainer.state.log_history[-1] and "loss_mse" in trainer.state.log_history[-1]

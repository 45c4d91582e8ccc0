"""What the combined loss does once per batch: it validates its inputs once (one read from the device, where its two
label terms read four each), computes the contrastive masks once, and gives the trainer the batch's pair shares under
its own rule (``pair_shares``), which the trainer logs as ``positive_pairs`` and ``negative_pairs``; the pair terms
all see the batch's ``pair_mask``; and ``get_config_dict()`` records every built-in term the same way."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from biohicl.losses import (
    BioHiCLLoss,
    FilteredMSELoss,
    HierarchicalContrastiveLoss,
    SimilarityDistillationLoss,
    TitleInfoNCELoss,
)
from biohicl.training.args import BioHiCLTrainingArguments

# Six labelled documents; of the 15 pairs 2 have SimL > 0.9 (01, 34), 4 more SimL > 0.3 (02 12 23 35), 7 SimL = 0
# (03 04 13 14 15 24 25: all between documents 0-2 and 3-5) and 2 SimL 0.2 (05, 45).
SIML6 = torch.tensor(
    [
        [1.00, 0.95, 0.50, 0.00, 0.00, 0.20],
        [0.95, 1.00, 0.40, 0.00, 0.00, 0.00],
        [0.50, 0.40, 1.00, 0.60, 0.00, 0.00],
        [0.00, 0.00, 0.60, 1.00, 0.92, 0.50],
        [0.00, 0.00, 0.00, 0.92, 1.00, 0.20],
        [0.20, 0.00, 0.00, 0.50, 0.20, 1.00],
    ]
)
# two label kinds, documents 0-2 and 3-5: 6 same-kind pairs (01 02 12 | 34 35 45), none of them SimL = 0
KINDS = torch.tensor([0, 0, 0, 1, 1, 1])
SAME_KIND = KINDS[:, None] == KINDS[None, :]
EMB6 = torch.nn.functional.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
BASE6 = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))


class DeviceReads(TorchDispatchMode):
    """Counts the reads of a tensor's value on the host (``bool(t)``, ``t.item()``: each a device sync on a GPU)."""

    def __init__(self):
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.reads += 1
        return func(*args, **(kwargs or {}))


# ----------------------------------------------------------------------------------------------- pair shares
def test_the_pair_shares_are_the_loss_own_rule():
    """β 0.9: 2 of the 15 pairs are positives (β 0.3 would give 6); negatives SimL = 0: 7 pairs."""
    loss = BioHiCLLoss(FilteredMSELoss(beta=0.9), HierarchicalContrastiveLoss(beta=0.9))
    loss(EMB6, SIML6)
    assert {key: value.item() for key, value in loss.pair_shares.items()} == pytest.approx(
        {"positive_pairs": 2 / 15, "negative_pairs": 7 / 15}
    )
    below = BioHiCLLoss(contrastive=HierarchicalContrastiveLoss(negative="below:0.3"))
    below(EMB6, SIML6, pair_mask=SAME_KIND)  # shares of the 6 same-kind pairs
    assert below.pair_shares["positive_pairs"].item() == pytest.approx(5 / 6)  # 01 02 12 34 35 (SimL > 0.3)
    assert below.pair_shares["negative_pairs"].item() == pytest.approx(1 / 6)  # 45 (0.2 < 0.3)


def _trainer(tiny_bert_dir, tmp_path, loss):
    from biohicl.training.run import build_model
    from biohicl.training.trainer import BioHiCLTrainer

    docs = tmp_path / "documents.jsonl"
    docs.write_text('{"pmid": "1", "title": "t", "abstract": "a", "mesh": ["D003920"]}\n', encoding="utf-8")
    args = BioHiCLTrainingArguments(
        output_dir=str(tmp_path / "run"),
        base_model=str(tiny_bert_dir),
        base_model_hub_id="test/tiny-bert",
        dataset_path=str(docs),
        max_length=32,
        report_to="none",
        lora_target_modules=["query", "value"],
        use_cpu=True,
    )
    assert args.beta == 0.3
    trainer = BioHiCLTrainer(model=build_model(args), args=args, loss=loss)
    trainer.model.train()
    return trainer


def _logged(trainer, pair_mask=None) -> dict[str, float]:
    """One training micro-batch of six documents through ``compute_loss``, then the log entry it gives."""
    inputs = dict(trainer.model.tokenize([f"document number {i}" for i in range(6)]))
    inputs["siml"] = SIML6
    if pair_mask is not None:
        inputs["pair_mask"] = pair_mask
    trainer.compute_loss(trainer.model, inputs)
    trainer.log({"loss": 1.0})
    return trainer.state.log_history[-1]


def test_the_trainer_logs_the_shares_the_loss_computed_once(tiny_bert_dir, tmp_path, monkeypatch):
    """The loss's β is 0.9, the arguments' 0.3: positive_pairs is the loss's 2/15 (it logged the arguments' 6/15),
    and the contrastive masks are computed once per batch (they were three times: the term, the combined loss's
    check, the trainer)."""
    loss = BioHiCLLoss(FilteredMSELoss(beta=0.9), HierarchicalContrastiveLoss(beta=0.9))
    trainer = _trainer(tiny_bert_dir, tmp_path, loss)
    masks = []
    original = HierarchicalContrastiveLoss.masks
    monkeypatch.setattr(
        HierarchicalContrastiveLoss, "masks", lambda self, *a, **k: masks.append(1) or original(self, *a, **k)
    )
    logged = _logged(trainer)
    assert (logged["positive_pairs"], logged["negative_pairs"]) == pytest.approx((2 / 15, 7 / 15))
    assert len(masks) == 1
    logged = _logged(trainer, SAME_KIND)  # of the 6 same-kind pairs: 01 and 34 positives, no SimL = 0
    assert (logged["positive_pairs"], logged["negative_pairs"]) == pytest.approx((2 / 6, 0.0))


def test_a_loss_without_pair_shares_logs_the_positive_share_of_the_run_beta(tiny_bert_dir, tmp_path):
    """A loss of one's own that gives no ``pair_shares``: the trainer logs the share of pairs with SimL > --beta (its
    run's β, the one statistic the trainer can tell without the loss's rule) and no ``negative_pairs``."""
    trainer = _trainer(tiny_bert_dir, tmp_path, FilteredMSELoss())
    logged = _logged(trainer)
    assert logged["positive_pairs"] == pytest.approx(6 / 15) and "negative_pairs" not in logged


# ----------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("loss", "inputs", "reads"),
    [
        (BioHiCLLoss(), {}, 2),  # the inputs' check, and whether an anchor has a positive and a negative
        (BioHiCLLoss(distill_weight=0.5), {"base_embeddings": BASE6}, 3),  # + the base embeddings are finite
        (BioHiCLLoss(use_contrastive=False), {}, 1),
        (FilteredMSELoss(), {}, 1),  # a term on its own checks its inputs
        (HierarchicalContrastiveLoss(), {}, 1),
    ],
)
def test_a_batch_reads_the_device_once_to_validate(loss, inputs, reads):
    """Each of the two label terms read the device 4 times to check the same inputs (8 per batch), the combined loss
    once more, the distillation term once more: 9 reads per micro-batch, 10 with distillation."""
    with DeviceReads() as counter:
        loss(EMB6, SIML6, **inputs)
    assert counter.reads == reads


@pytest.mark.parametrize(
    "loss", [BioHiCLLoss(), BioHiCLLoss(use_contrastive=False), FilteredMSELoss(), HierarchicalContrastiveLoss()]
)
def test_bad_inputs_give_the_same_messages_once_checked(loss):
    bad_embeddings = EMB6.clone()
    bad_embeddings[2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"^embeddings: NaN or inf in the batch \(diverged model or bad input\)"):
        loss(bad_embeddings, SIML6)
    for value in (float("nan"), -0.1, 1.5):
        siml = SIML6.clone()
        siml[0, 2] = siml[2, 0] = value
        with pytest.raises(ValueError, match=r"^siml: values must be finite and in \[0, 1\]$"):
            loss(EMB6, siml)
    both = SIML6.clone()
    both[0, 2] = -1.0
    with pytest.raises(ValueError, match=r"^embeddings: NaN"):  # the embeddings are named first, as before
        loss(bad_embeddings, both)
    with pytest.raises(ValueError, match=r"^siml must be \[6, 6\] for 6 embeddings, got \(5, 5\)$"):
        loss(EMB6, SIML6[:5, :5])


def test_the_terms_in_the_combined_loss_are_the_terms_alone():
    regression, contrastive = FilteredMSELoss(beta=0.4), HierarchicalContrastiveLoss(beta=0.4, negative="lowest:2")
    out = BioHiCLLoss(regression, contrastive, lambda_con=0.3)(EMB6, SIML6, pair_mask=SAME_KIND)
    assert torch.equal(out["loss_mse"], regression(EMB6, SIML6, SAME_KIND))
    assert torch.equal(out["loss_con"], contrastive(EMB6, SIML6, SAME_KIND))
    assert torch.equal(out["loss"], out["loss_mse"] + 0.3 * out["loss_con"])


# ----------------------------------------------------------------------------------------------- distillation
def test_the_combined_loss_gives_the_distillation_term_the_pair_mask():
    """docs/training.md ("Label kinds"): every loss leaves the pairs of two label kinds out."""
    out = BioHiCLLoss(distill_weight=1.0)(EMB6, SIML6, pair_mask=SAME_KIND, base_embeddings=BASE6)
    masked = SimilarityDistillationLoss()(EMB6, BASE6, SAME_KIND)
    assert torch.equal(out["loss_distill"], masked)
    assert masked.item() != pytest.approx(SimilarityDistillationLoss()(EMB6, BASE6).item())


# ----------------------------------------------------------------------------------------------- configs
def test_every_term_records_its_parameters_and_every_built_in_weight_is_recorded():
    assert SimilarityDistillationLoss().get_config_dict() == {}  # no parameters (it had a "type" the others lack)
    assert TitleInfoNCELoss(0.1).get_config_dict() == {"temperature": 0.1}
    off = BioHiCLLoss().get_config_dict()
    assert (off["distill_weight"], off["title_weight"]) == (0.0, 0.0)
    assert "distillation" not in off and "title" not in off  # a term that is off: its weight, not its settings
    on = BioHiCLLoss(distill_weight=0.5, title=TitleInfoNCELoss(0.1), title_weight=0.2).get_config_dict()
    assert (on["distill_weight"], on["distillation"]) == (0.5, {})
    assert (on["title_weight"], on["title"]) == (0.2, {"temperature": 0.1})


class TwoArgumentDistillation(SimilarityDistillationLoss):
    """A distillation term of one's own written before terms took ``pair_mask``."""

    def forward(self, embeddings, base_embeddings):
        return super().forward(embeddings, base_embeddings)


def test_a_distillation_subclass_without_pair_mask_is_called_as_before():
    emb, base = torch.randn(6, 8, generator=torch.Generator().manual_seed(1)), torch.randn(6, 8)
    pair_mask = torch.ones(6, 6, dtype=torch.bool)
    loss = BioHiCLLoss(distillation=TwoArgumentDistillation(), distill_weight=1.0)
    out = loss(emb, SIML6, pair_mask=pair_mask, base_embeddings=base)
    assert out["loss_distill"].item() == pytest.approx(SimilarityDistillationLoss()(emb, base).item())


def test_a_title_only_loss_needs_no_siml():
    emb, titles = torch.randn(4, 8), torch.randn(4, 8, generator=torch.Generator().manual_seed(2))
    loss = BioHiCLLoss(use_mse=False, use_contrastive=False, title_weight=1.0)
    out = loss(emb, None, title_embeddings=titles, abstract_embeddings=emb)
    assert set(out) == {"loss", "loss_title"}
    assert out["loss"].item() == pytest.approx(TitleInfoNCELoss()(titles, emb).item())
    assert loss.pair_shares is None


class MaskedDistillation(SimilarityDistillationLoss):
    """A distillation term of one's own written with today's signature: it gets the batch's ``pair_mask``."""

    def forward(self, embeddings, base_embeddings, pair_mask=None):
        return super().forward(embeddings, base_embeddings, pair_mask)


def test_a_distillation_subclass_taking_pair_mask_gets_it():
    emb, base = torch.randn(6, 8, generator=torch.Generator().manual_seed(3)), torch.randn(6, 8)
    pair_mask = torch.zeros(6, 6, dtype=torch.bool)
    pair_mask[:3, :3] = pair_mask[3:, 3:] = True  # two label kinds: pairs across them left out
    out = BioHiCLLoss(distillation=MaskedDistillation(), distill_weight=1.0)(
        emb, SIML6, pair_mask, base_embeddings=base
    )
    expected = SimilarityDistillationLoss()(emb, base, pair_mask).item()
    assert out["loss_distill"].item() == pytest.approx(expected)
    assert expected != pytest.approx(SimilarityDistillationLoss()(emb, base).item())

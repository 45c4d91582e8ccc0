"""The BioHiCL losses against values worked out by hand on 3- and 4-document batches."""

from __future__ import annotations

import math

import pytest
import torch

from biohicl.losses import (
    BioHiCLLoss,
    FilteredMSELoss,
    HierarchicalContrastiveLoss,
    SimilarityDistillationLoss,
    TitleInfoNCELoss,
    pair_filter_mask,
)
from biohicl.losses.contrastive import negative_pair_mask

# Three documents on the unit circle: SimE_01 = 0.6, SimE_02 = 0.0, SimE_12 = 0.8.
EMB3 = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
# SimL: 0–1 related (0.5 > β), 0–2 unrelated (0), 1–2 weakly related (0.2 ≤ β: ignored by the default filter).
SIML3 = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.0]])

# Four documents: SimE_01 = .6, _02 = 0, _03 = .8, _12 = .8, _13 = .96, _23 = .6.
EMB4 = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6]])
SIML4 = torch.tensor(
    [
        [1.0, 0.5, 0.0, 0.9],
        [0.5, 1.0, 0.0, 0.2],
        [0.0, 0.0, 1.0, 0.0],
        [0.9, 0.2, 0.0, 1.0],
    ]
)


@pytest.mark.parametrize(
    ("pair_filter", "expected"),
    [
        # kept pairs (0,1): (0.6-0.5)² = 0.01 and (0,2): (0-0)² = 0 → mean 0.005
        ("zero_or_positive", 0.01 / 2),
        # + (1,2): (0.8-0.2)² = 0.36 → (0.01 + 0 + 0.36) / 3
        ("all", 0.37 / 3),
        # only (0,1)
        ("positive", 0.01),
        # (0,1) and (1,2): (0.01 + 0.36) / 2
        ("nonzero", 0.37 / 2),
    ],
)
def test_filtered_mse_three_documents(pair_filter, expected):
    loss = FilteredMSELoss(pair_filter=pair_filter, beta=0.3)
    assert loss(EMB3, SIML3).item() == pytest.approx(expected, abs=1e-6)
    # cosine is scale-free: unnormalised embeddings give the same value
    assert loss(3.0 * EMB3, SIML3).item() == pytest.approx(expected, abs=1e-6)


def test_filtered_mse_four_documents():
    # kept: (0,1) .01, (0,3) (.8-.9)² = .01, (0,2) 0, (1,2) (.8-0)² = .64, (2,3) (.6-0)² = .36; (1,3) SimL .2 dropped
    assert FilteredMSELoss()(EMB4, SIML4).item() == pytest.approx(1.02 / 5, abs=1e-6)


def test_contrastive_three_documents():
    # τ = 0.5. Positives: (0,1) and (1,0), weight 0.5 each. N(0) = {2}; N(1) = {} (SimL_12 = 0.2 is neither).
    # ℓ_01 = -log(e^{0.6/0.5} / (e^{0.6/0.5} + e^{0/0.5})) = log(1 + e^{-1.2}) = 0.263282
    # ℓ_10 = -log(e^{1.2} / e^{1.2}) = 0 (no negative)
    # L = (0.5 · 0.263282 + 0.5 · 0) / (0.5 + 0.5) = 0.131641
    loss = HierarchicalContrastiveLoss(beta=0.3, temperature=0.5)
    assert loss(EMB3, SIML3).item() == pytest.approx(0.5 * math.log(1 + math.exp(-1.2)), abs=1e-6)
    assert loss(EMB3, SIML3).item() == pytest.approx(0.131641, abs=1e-6)


def test_contrastive_four_documents_weighted_by_siml():
    # τ = 0.5 → logits s/τ: 01 1.2, 02 0, 03 1.6, 12 1.6, 13 1.92, 23 1.2.
    # Positives (SimL > 0.3): (0,1),(1,0) weight .5; (0,3),(3,0) weight .9. Negatives: N(0)=N(1)=N(3)={2}.
    # ℓ_01 = log(1 + e^{0 - 1.2})   = 0.263282     ℓ_10 = log(1 + e^{1.6 - 1.2}) = 0.913015
    # ℓ_03 = log(1 + e^{0 - 1.6})   = 0.183901     ℓ_30 = log(1 + e^{1.2 - 1.6}) = 0.513015
    # weighted: (.5(.263282 + .913015) + .9(.183901 + .513015)) / 2.8 = 0.434062
    # unweighted: (.263282 + .913015 + .183901 + .513015) / 4 = 0.468303
    weighted = HierarchicalContrastiveLoss(beta=0.3, temperature=0.5)
    plain = HierarchicalContrastiveLoss(beta=0.3, temperature=0.5, weighted=False)
    assert weighted(EMB4, SIML4).item() == pytest.approx(0.434062, abs=1e-6)
    assert plain(EMB4, SIML4).item() == pytest.approx(0.468303, abs=1e-6)


def test_no_positive_pair_gives_zero_and_finite_gradients():
    emb = EMB4.clone().requires_grad_(True)
    siml = torch.eye(4) + 0.2 * (1 - torch.eye(4)) * torch.tensor([1.0, 1.0, 0.0, 0.0])[:, None]
    siml = torch.maximum(siml, siml.T)  # some weak pairs, no pair above β, some zeros
    loss = HierarchicalContrastiveLoss(beta=0.3)(emb, siml)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(emb.grad).all()
    assert torch.count_nonzero(emb.grad) == 0
    # and a batch whose documents are all unrelated: both losses are finite, contrastive is 0
    emb.grad = None
    out = BioHiCLLoss()(emb, torch.eye(4))
    assert "loss_con" not in out  # nothing to contrast: an exact 0 in the total, not logged as measured
    assert math.isfinite(out["loss"].item())
    out["loss"].backward()
    assert torch.isfinite(emb.grad).all()


def test_unlabelled_documents_are_excluded():
    # document 2 has no labels → its SimL diagonal is 0 and none of its pairs count
    siml = SIML3.clone()
    siml[2, 2] = 0.0
    mask = pair_filter_mask(siml, "all", 0.3)
    assert mask.tolist() == [[False, True, False], [True, False, False], [False, False, False]]
    # only (0,1) remains: MSE = 0.01; contrastive: no negative left → 0
    assert FilteredMSELoss(pair_filter="all")(EMB3, siml).item() == pytest.approx(0.01, abs=1e-6)
    assert HierarchicalContrastiveLoss(temperature=0.5)(EMB3, siml).item() == 0.0


def test_combined_loss_components_and_ablations():
    regression = FilteredMSELoss()
    contrastive = HierarchicalContrastiveLoss(temperature=0.5)
    out = BioHiCLLoss(regression, contrastive, lambda_con=0.1)(EMB3, SIML3)
    # L = 0.005 + 0.1 · 0.131641
    assert out["loss_mse"].item() == pytest.approx(0.005, abs=1e-6)
    assert out["loss_con"].item() == pytest.approx(0.131641, abs=1e-6)
    assert out["loss"].item() == pytest.approx(0.005 + 0.0131641, abs=1e-6)

    no_con = BioHiCLLoss(regression, contrastive, use_contrastive=False)(EMB3, SIML3)
    assert no_con["loss"].item() == pytest.approx(0.005, abs=1e-6)
    assert set(no_con) == {"loss", "loss_mse"}  # a switched-off term is not reported (as if measured at 0)
    no_mse = BioHiCLLoss(regression, contrastive, lambda_con=0.1, use_mse=False)(EMB3, SIML3)
    assert no_mse["loss"].item() == pytest.approx(0.0131641, abs=1e-6)
    assert set(no_mse) == {"loss", "loss_con"}
    # λ = 0 with the term on: computed and logged at its measured value, not trained on (as an extra term of weight 0)
    unweighted = BioHiCLLoss(regression, contrastive, lambda_con=0.0)(EMB3, SIML3)
    assert unweighted["loss_con"].item() == pytest.approx(0.131641, abs=1e-6)
    assert unweighted["loss"].item() == pytest.approx(0.005, abs=1e-6)
    with pytest.raises(ValueError, match=r"^use_mse, use_contrastive, lambda_con, distill_weight, title_weight: at"):
        BioHiCLLoss(use_mse=False, use_contrastive=False)


def test_a_title_only_loss_is_the_title_term_and_backpropagates_on_a_batch_without_titles():
    """No MeSH term (the `title_only` ablation): the loss is the weighted title InfoNCE; a batch without titles
    gives exactly 0 that still reaches the embeddings, so backward works on it."""
    title = TitleInfoNCELoss()
    loss = BioHiCLLoss(use_mse=False, use_contrastive=False, title=title, title_weight=0.5)
    titles, abstracts = torch.randn(4, 8), torch.randn(4, 8)
    out = loss(EMB3, SIML3, title_embeddings=titles, abstract_embeddings=abstracts)
    assert out["loss"].item() == pytest.approx(0.5 * title(titles, abstracts).item(), rel=1e-6)
    assert set(out) == {"loss", "loss_title"}  # the MeSH terms are off: not reported
    embeddings = EMB3.clone().requires_grad_(True)
    untitled = loss(embeddings, SIML3)
    assert untitled["loss"].item() == 0.0
    untitled["loss"].backward()
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


def test_config_dicts_and_validation():
    loss = BioHiCLLoss(FilteredMSELoss("all", 0.4), HierarchicalContrastiveLoss(0.4, 0.07), lambda_con=0.2)
    assert loss.get_config_dict() == {
        "lambda_con": 0.2,
        "use_mse": True,
        "use_contrastive": True,
        "regression": {"pair_filter": "all", "beta": 0.4},
        "contrastive": {"beta": 0.4, "temperature": 0.07, "weighted": True, "form": "infonce", "negative": "zero"},
        "distill_weight": 0.0,
        "title_weight": 0.0,
    }
    with pytest.raises(ValueError, match="pair_filter"):
        FilteredMSELoss("everything")
    with pytest.raises(ValueError, match="temperature"):
        HierarchicalContrastiveLoss(temperature=0.0)
    with pytest.raises(ValueError, match="siml must be"):
        FilteredMSELoss()(EMB3, SIML4)


def test_losses_on_real_mesh_similarity(mesh):
    # Diabetes Mellitus / Type 2 diabetes / Myocardial Infarction: SimL from the packaged MeSH table
    siml = mesh.similarity_matrix([["D003920"], ["D003924"], ["D009203"]])
    assert siml[0, 1].item() == pytest.approx(0.778, abs=1e-3)
    emb = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], requires_grad=True)
    out = BioHiCLLoss()(emb, siml)
    out["loss"].backward()
    assert out["loss_con"].item() > 0 and torch.isfinite(emb.grad).all()


def test_gradient_flows_only_into_lora(tiny_bert_dir):
    from biohicl.models.model import BioHiCL

    model = BioHiCL.from_base(str(tiny_bert_dir), hub_id="test/tiny-bert", pooling="mean", max_length=32)
    model.add_lora(r=4, alpha=8, dropout=0.0, target_modules=["query", "value"], verbose=False)
    model.train()
    batch = model.tokenize(["diabetes in the heart", "heart disease", "brain cells", "cancer of the brain"])
    embeddings = model(**batch)
    out = BioHiCLLoss(HierarchicalContrastiveLoss(temperature=0.5))(embeddings, SIML4)
    out["loss"].backward()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    for name, parameter in model.named_parameters():
        if name in trainable:
            assert parameter.grad is not None, name
        else:
            assert parameter.grad is None, name
    # LoRA B starts at zero, so the first gradient lands on B (A's gradient is B-weighted, hence zero)
    assert any(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)


# ---------------------------------------------------------------------------------------------- self-distillation
# The base model put documents 0 and 1 on the same point and 2 orthogonal: base SimE_01 = 1, _02 = 0, _12 = 0.
BASE3 = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0]])


def test_distillation_by_hand():
    # (SimE − SimE_base)² per pair: 01 (.6 − 1)² = .16, 02 0, 12 (.8 − 0)² = .64; mean over the 6 ordered pairs
    loss = SimilarityDistillationLoss()
    assert loss(EMB3, BASE3).item() == pytest.approx(2 * (0.16 + 0.64) / 6, abs=1e-6)
    assert loss(EMB3, EMB3 * 5).item() == pytest.approx(0.0, abs=1e-7)  # same directions: nothing to distil
    # a pair mask keeps only (0,1)/(1,0)
    keep = torch.tensor([[False, True, False], [True, False, False], [False, False, False]])
    assert loss(EMB3, BASE3, keep).item() == pytest.approx(0.16, abs=1e-6)
    # the base side is a target: no gradient flows into it
    base = BASE3.clone().requires_grad_(True)
    emb = EMB3.clone().requires_grad_(True)
    loss(emb, base).backward()
    assert base.grad is None and emb.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="base_embeddings must have"):
        loss(EMB3, BASE3[:2])


def test_combined_loss_with_distillation():
    regression, contrastive = FilteredMSELoss(), HierarchicalContrastiveLoss(temperature=0.5)
    loss = BioHiCLLoss(regression, contrastive, lambda_con=0.1, distill_weight=0.5)
    assert loss.extra_inputs == {"base_embeddings"} and BioHiCLLoss().extra_inputs == frozenset()
    out = loss(EMB3, SIML3, base_embeddings=BASE3)
    assert out["loss_distill"].item() == pytest.approx(0.8 / 3, abs=1e-6)
    assert out["loss"].item() == pytest.approx(0.005 + 0.0131641 + 0.5 * 0.8 / 3, abs=1e-6)
    assert "loss_distill" not in BioHiCLLoss(regression, contrastive)(EMB3, SIML3)  # off: not computed
    assert loss.get_config_dict()["distill_weight"] == 0.5
    assert loss.get_config_dict()["distillation"] == {}  # no parameters
    assert "Similarity-Preserving" in SimilarityDistillationLoss.citation
    with pytest.raises(ValueError, match="base_embeddings: required"):
        loss(EMB3, SIML3)


# ---------------------------------------------------------------------------------------------- paper form, negatives
def reference_contrastive(emb, siml, beta, negative, form, temperature=1.0, weighted=True, mean="positives"):
    """A plain loop over anchors and positives: the formulas of losses/contrastive.py written out."""
    unit = torch.nn.functional.normalize(emb.double(), dim=-1)
    s = (unit @ unit.T).tolist()
    siml = siml.double().tolist()
    n = len(s)
    labelled = [siml[i][i] > 1e-6 for i in range(n)]
    kind, _, value = negative.partition(":")
    total = weights = 0.0
    for i in range(n):
        others = [j for j in range(n) if j != i and labelled[i] and labelled[j]]
        if kind == "zero":
            negs = [j for j in others if siml[i][j] <= 1e-6]
        elif kind == "below":
            negs = [j for j in others if siml[i][j] < float(value)]
        else:
            negs = sorted((j for j in others if siml[i][j] <= beta), key=lambda j: (siml[i][j], j))[: int(value)]
        for p in (j for j in others if siml[i][j] > beta):
            if form == "paper":
                if negs:
                    denominator = sum(math.exp(s[i][m]) for m in negs)
                    total += -math.log(siml[i][p] * math.exp(s[i][p]) / denominator)
                    weights += 1
            elif negs or mean == "positives":
                w = siml[i][p] if weighted else 1.0
                e = math.exp(s[i][p] / temperature)
                total += w * -math.log(e / (e + sum(math.exp(s[i][m] / temperature) for m in negs)))
                weights += w
    return total / weights if weights else 0.0


def test_paper_form_four_documents_by_hand():
    # positives (0,1),(1,0) SimL .5 and (0,3),(3,0) SimL .9; N(0) = N(1) = N(3) = {2}; SimE 02 0, 12 .8, 23 .6
    # ℓ_01 = −log .5 − .6 + 0  =  0.093147      ℓ_10 = −log .5 − .6 + .8 =  0.893147
    # ℓ_03 = −log .9 − .8 + 0  = −0.694639      ℓ_30 = −log .9 − .8 + .6 = −0.094639      mean = 0.049254
    loss = HierarchicalContrastiveLoss(beta=0.3, form="paper", temperature=0.5)  # τ does not apply
    assert loss(EMB4, SIML4).item() == pytest.approx(0.049254, abs=1e-6)
    assert reference_contrastive(EMB4, SIML4, 0.3, "zero", "paper") == pytest.approx(0.049254, abs=1e-6)
    # three documents: only anchor 0 has a negative (2): ℓ_01 = −log .5 − .6 + log e^0; ℓ_10 is left out
    assert loss(EMB3, SIML3).item() == pytest.approx(math.log(2) - 0.6, abs=1e-6)


@pytest.mark.parametrize("negative", ["zero", "below:0.25", "lowest:1", "lowest:2", "lowest:9"])
@pytest.mark.parametrize(
    ("form", "mean"), [("infonce", "positives"), ("infonce", "contrastable"), ("paper", "positives")]
)
def test_contrastive_matches_the_loop_reference(form, mean, negative):
    generator = torch.Generator().manual_seed(3)
    emb = torch.randn(7, 5, generator=generator)
    siml = torch.rand(7, 7, generator=generator) * torch.tensor([0.0, 0.2, 1.0, 1.0, 1.0, 1.0, 1.0])[:, None]
    siml = torch.maximum(siml, siml.T).fill_diagonal_(1.0)
    siml[6, 6] = 0.0  # unlabelled
    siml[6, :6] = siml[:6, 6] = 0.0
    loss = HierarchicalContrastiveLoss(beta=0.3, temperature=0.5, form=form, negative=negative, mean=mean)
    expected = reference_contrastive(emb, siml, 0.3, negative, form, temperature=0.5, mean=mean)
    assert loss(emb, siml).item() == pytest.approx(expected, abs=1e-5)
    grad_emb = emb.clone().requires_grad_(True)
    loss(grad_emb, siml).backward()
    assert torch.isfinite(grad_emb.grad).all()


def stable_infonce(emb, siml, beta, temperature):
    """The InfoNCE form in float64 log-sum-exp over the true negatives only (no fill value), for any temperature."""
    unit = torch.nn.functional.normalize(emb.double(), dim=-1)
    logits, siml = unit @ unit.T / temperature, siml.double()
    total = weights = 0.0
    for i in range(len(siml)):
        others = [j for j in range(len(siml)) if j != i and siml[i, i] > 1e-6 and siml[j, j] > 1e-6]
        negs = [j for j in others if siml[i, j] <= 1e-6]
        for p in (j for j in others if siml[i, j] > beta):
            terms = logits[i, [p, *negs]]
            total += siml[i, p].item() * (torch.logsumexp(terms, 0) - logits[i, p]).item()
            weights += siml[i, p].item()
    return total / weights


@pytest.mark.parametrize("temperature", [0.05, 1e-6, 1e-10, 1e-20])
def test_infonce_left_out_entries_never_leak_at_any_temperature(temperature):
    # anchors 0 and 1 have a negative (2); anchor 3's pairs are all positives, so its terms are softplus(−∞ − s) = 0.
    # A fixed −1e9 fill leaked at τ ≤ 1e-10, where the logits reach ±1e10: +7% at 1e-10.
    generator = torch.Generator().manual_seed(5)
    emb = torch.randn(5, 4, generator=generator)
    siml = torch.tensor(
        [[1.0, 0.6, 0.0, 0.5, 0.4], [0.6, 1.0, 0.0, 0.7, 0.5], [0.0, 0.0, 1.0, 0.0, 0.0],
         [0.5, 0.7, 0.0, 1.0, 0.9], [0.4, 0.5, 0.0, 0.9, 1.0]]
    )  # fmt: skip
    siml[3, 2] = siml[2, 3] = 0.1  # anchor 3 (and 2) without negatives
    loss = HierarchicalContrastiveLoss(beta=0.3, temperature=temperature)
    expected = stable_infonce(emb, siml, 0.3, temperature)
    assert loss(emb, siml).item() == pytest.approx(expected, rel=1e-5)
    grad_emb = emb.clone().requires_grad_(True)
    loss(grad_emb, siml).backward()
    assert torch.isfinite(grad_emb.grad).all()


def test_a_positive_pair_without_negatives_dilutes_the_infonce_mean_but_not_the_paper_one():
    # doc 0's positive is doc 1 (SimL 0.8), its negative doc 2 (SimL 0); docs 3 and 4 are positives of each other
    # (SimL 0.8) with no SimL-0 document: their two pairs add 1.6 to the InfoNCE weights with ℓ = 0.
    embeddings = torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 1]])
    siml = torch.tensor(
        [
            [1, 0.8, 0, 0.2, 0.2],
            [0.8, 1, 0, 0.2, 0.2],
            [0, 0, 1, 0.2, 0.2],
            [0.2, 0.2, 0.2, 1, 0.8],
            [0.2, 0.2, 0.2, 0.8, 1],
        ]
    )
    infonce, paper = HierarchicalContrastiveLoss(), HierarchicalContrastiveLoss(form="paper")
    alone = infonce(embeddings[:3], siml[:3, :3])
    assert alone.item() > 1.0
    assert infonce(embeddings, siml).item() == pytest.approx(alone.item() * 1.6 / 3.2, rel=1e-6)
    assert paper(embeddings, siml).item() == pytest.approx(paper(embeddings[:3], siml[:3, :3]).item(), rel=1e-6)
    # mean="contrastable": the InfoNCE mean over the pairs whose anchor has a negative, undiluted (issue #15)
    contrastable = HierarchicalContrastiveLoss(mean="contrastable")
    assert contrastable(embeddings[:3], siml[:3, :3]).item() == alone.item()  # nothing to leave out there
    assert contrastable(embeddings, siml).item() == pytest.approx(alone.item(), rel=1e-6)
    unweighted = HierarchicalContrastiveLoss(weighted=False, mean="contrastable")
    assert unweighted(embeddings, siml).item() == pytest.approx(unweighted(embeddings[:3], siml[:3, :3]).item())


def test_the_contrastable_mean_of_a_batch_without_negatives_is_zero_with_zero_finite_gradients():
    # every pair SimL 0.8 or 0.2: positives everywhere, no SimL-0 negative, so no pair contrasts
    emb = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], requires_grad=True)
    siml = torch.tensor([[1.0, 0.8, 0.2], [0.8, 1.0, 0.8], [0.2, 0.8, 1.0]])
    loss = HierarchicalContrastiveLoss(mean="contrastable")(emb, siml)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(emb.grad).all() and torch.count_nonzero(emb.grad) == 0


def test_the_contrastive_mean_is_recorded_when_not_the_default_and_refused_where_it_does_not_apply():
    # the default is left out of the record, so every committed run's recorded loss reads as before
    assert "mean" not in HierarchicalContrastiveLoss().get_config_dict()
    assert "mean" not in repr(HierarchicalContrastiveLoss())
    assert HierarchicalContrastiveLoss(mean="contrastable").get_config_dict()["mean"] == "contrastable"
    assert "mean='contrastable'" in repr(HierarchicalContrastiveLoss(mean="contrastable"))
    with pytest.raises(ValueError, match=r"^contrastive_mean: 'all' is not one of positives, contrastable$"):
        HierarchicalContrastiveLoss(mean="all")
    with pytest.raises(ValueError, match=r"^contrastive_mean, contrastive_form: 'contrastable' applies to the infonce"):
        HierarchicalContrastiveLoss(form="paper", mean="contrastable")


def test_negative_rules_pick_by_hand():
    # anchor 0's pairs: SimL 01 .5 (positive), 02 0, 03 .9 (positive); anchor 1: 10 .5, 12 0, 13 .2
    usable = pair_filter_mask(SIML4, "all", 0.3)
    rows = {rule: negative_pair_mask(SIML4, usable, rule, 0.3).int().tolist() for rule in
            ("zero", "below:0.25", "lowest:1")}  # fmt: skip
    assert rows["zero"][1] == [0, 0, 1, 0] and rows["below:0.25"][1] == [0, 0, 1, 1]
    assert rows["lowest:1"][1] == [0, 0, 1, 0] and rows["lowest:1"][3] == [0, 0, 1, 0]  # 2 (0) before 1 (.2)
    # positives are never negatives, even under lowest:k with a large k
    assert negative_pair_mask(SIML4, usable, "lowest:9", 0.3)[0].int().tolist() == [0, 0, 1, 0]
    with pytest.raises(ValueError, match=r"negative: the threshold of 'below:0.5' must be in \(0, beta = 0.3\]"):
        HierarchicalContrastiveLoss(beta=0.3, negative="below:0.5")
    with pytest.raises(ValueError, match="negative: 'some' is not one of"):
        HierarchicalContrastiveLoss(negative="some")
    with pytest.raises(ValueError, match="contrastive_form: 'other'"):
        HierarchicalContrastiveLoss(form="other")


# Entries exactly at the thresholds (binary-exact: 0.5 = β, 0.25 = t): 01 and 23 at β, 02 at t, 03 above β, 13 below t.
SIML_AT = torch.tensor(
    [
        [1.0, 0.5, 0.25, 0.75],
        [0.5, 1.0, 0.0, 0.125],
        [0.25, 0.0, 1.0, 0.5],
        [0.75, 0.125, 0.5, 1.0],
    ]
)


def test_a_siml_exactly_at_beta_is_no_positive_and_exactly_at_t_no_negative():
    """Positives are SimL > β and below:t negatives SimL < t, both strict: an entry equal to either is neither."""
    positive, negative = HierarchicalContrastiveLoss(beta=0.5, negative="below:0.25").masks(SIML_AT)
    assert positive.int().tolist() == [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]
    assert negative.int().tolist() == [[0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 0, 0], [0, 1, 0, 0]]
    # the MSE filters: at β is not a positive, so zero_or_positive drops it like any pair in between
    assert pair_filter_mask(SIML_AT, "positive", 0.5).int().tolist() == positive.int().tolist()
    zero_or_positive = [[0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]]
    assert pair_filter_mask(SIML_AT, "zero_or_positive", 0.5).int().tolist() == zero_or_positive
    # kept: (0,3) SimE .8 vs .75 → .0025 twice, (1,2) SimE .8 vs 0 → .64 twice: mean (2 × .0025 + 2 × .64) / 4
    mse = FilteredMSELoss(beta=0.5)(EMB4, SIML_AT).item()
    assert mse == pytest.approx((2 * 0.0025 + 2 * 0.64) / 4, abs=1e-6)


def test_a_siml_equal_to_the_default_beta_after_float32_conversion_is_no_positive():
    """The default β = 0.3 against a float32 SimL of 0.3 (the comparison runs in float32: the two are equal)."""
    siml = torch.tensor([[1.0, 0.3, 0.0], [0.3, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float32)
    loss = HierarchicalContrastiveLoss()
    assert loss.beta == 0.3 and float(siml[0, 1]) == float(torch.tensor(loss.beta, dtype=torch.float32))
    positive, _ = loss.masks(siml)
    assert not positive.any()
    assert not pair_filter_mask(siml, "positive", FilteredMSELoss().beta).any()
    assert pair_filter_mask(siml, "zero_or_positive", 0.3).int().tolist() == [[0, 0, 1], [0, 0, 1], [1, 1, 0]]


def test_lowest_negatives_give_a_batch_without_zero_pairs_a_contrastive_signal():
    siml = torch.tensor([[1.0, 0.8, 0.1, 0.2], [0.8, 1.0, 0.2, 0.1], [0.1, 0.2, 1.0, 0.7], [0.2, 0.1, 0.7, 1.0]])
    assert HierarchicalContrastiveLoss(temperature=0.5)(EMB4, siml).item() == 0.0  # no SimL = 0 pair: silent
    lowest = HierarchicalContrastiveLoss(temperature=0.5, negative="lowest:1")(EMB4, siml).item()
    assert lowest == pytest.approx(reference_contrastive(EMB4, siml, 0.3, "lowest:1", "infonce", 0.5), abs=1e-6)
    assert lowest > 0


# ---------------------------------------------------------------------------------------------- title InfoNCE
def test_title_infonce_by_hand():
    # τ = 0.5; titles t0 = [1, 0], t1 = [0, 1]; their abstracts a0 = [1, 0], a1 = [.6, .8]
    # cos(t0, ·) = 1, .6 → logits 2, 1.2 (own: a0);  cos(t1, ·) = 0, .8 → logits 0, 1.6 (own: a1)
    titles = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    abstracts = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    first = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(1.2)))
    second = -math.log(math.exp(1.6) / (1.0 + math.exp(1.6)))
    loss = TitleInfoNCELoss(temperature=0.5)
    assert loss(titles, abstracts).item() == pytest.approx((first + second) / 2, abs=1e-6)
    # fewer than two titled documents: nothing to contrast, 0 with a (zero) gradient
    one = titles[:1].clone().requires_grad_(True)
    empty = loss(one, abstracts[:1])
    empty.backward()
    assert empty.item() == 0.0 and torch.count_nonzero(one.grad) == 0
    combined = BioHiCLLoss(FilteredMSELoss(), HierarchicalContrastiveLoss(temperature=0.5), title=loss, title_weight=2)
    assert combined.extra_inputs == {"title_embeddings"}
    out = combined(EMB3, SIML3, title_embeddings=titles, abstract_embeddings=abstracts)
    assert out["loss_title"].item() == pytest.approx((first + second) / 2, abs=1e-6)
    assert out["loss"].item() == pytest.approx(0.005 + 0.0131641 + 2 * (first + second) / 2, abs=1e-6)
    untitled = combined(EMB3, SIML3)  # titles absent (PubMedQA-only batch): the term adds 0 and is not logged
    assert "loss_title" not in untitled and untitled["loss"].item() == pytest.approx(0.005 + 0.0131641, abs=1e-6)
    with pytest.raises(ValueError, match="abstract_embeddings must have"):
        loss(titles, abstracts[:1])


@pytest.mark.parametrize(
    "loss_class",
    [BioHiCLLoss, FilteredMSELoss, HierarchicalContrastiveLoss, SimilarityDistillationLoss, TitleInfoNCELoss],
)
def test_every_loss_names_its_source(loss_class):
    assert isinstance(loss_class.citation, str) and len(loss_class.citation) > 20


def test_the_negative_rule_is_the_one_of_the_mesh_package():
    from biohicl.mesh.pair_rules import parse_negative

    assert parse_negative("lowest:3") == ("lowest", 3.0) and parse_negative("below:0.1") == ("below", 0.1)
    with pytest.raises(ValueError, match=r"negative: the threshold of 'below:0.5' must be in \(0, beta = 0.3\]"):
        HierarchicalContrastiveLoss(negative="below:0.5")


@pytest.mark.parametrize(
    "settings",
    [
        {"use_mse": False, "lambda_con": 0.0},  # the contrastive term on, weighing 0: computed, not trained
        {"use_mse": False, "lambda_con": 0.0, "distill_weight": 0.0, "title_weight": 0.0},
        {"use_mse": False, "use_contrastive": False},
    ],
)
def test_an_objective_where_no_term_trains_is_refused_naming_every_terms_fields(settings):
    """A term trains only with its switch on and its weight above 0: the rule the record's reader (the dry run's
    objective line, the card) uses, so an objective it would read as 'no term trains' is not built."""
    with pytest.raises(ValueError) as raised:
        BioHiCLLoss(**settings)
    assert str(raised.value).startswith(
        "use_mse, use_contrastive, lambda_con, distill_weight, title_weight: at least one loss term must train"
    )


@pytest.mark.parametrize("use_contrastive", [True, False])
def test_distillation_alone_is_an_objective_whether_the_contrastive_term_is_off_or_weighs_0(use_contrastive):
    loss = BioHiCLLoss(use_mse=False, use_contrastive=use_contrastive, lambda_con=0.0, distill_weight=2.0)
    base = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    out = loss(EMB3, SIML3, base_embeddings=base)
    assert out["loss"].item() == pytest.approx(2.0 * out["loss_distill"].item(), rel=1e-6)
    assert out["loss_distill"].item() > 0


def test_the_term_rule_is_the_record_readers_rule():
    """``training.loss_record`` reads which terms train by the losses' own rule, not a copy of it."""
    from biohicl.losses import terms
    from biohicl.training import loss_record

    assert loss_record.TERM_WEIGHTS is terms.TERM_WEIGHTS and loss_record.trains is terms.trains
    record = BioHiCLLoss(use_mse=False, lambda_con=0.0, distill_weight=0.5).get_config_dict()
    assert [name for name in terms.TERM_WEIGHTS if terms.trains(record, name)] == ["distillation"]

"""Training batches: the collator (tokens, the batch's SimL, label-kind masks, title inputs) and the batch samplers
(pair-mined and random batches, label-kind groups, mined negatives), on real MeSH descriptors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from biohicl.data import samplers
from biohicl.data.collator import BioHiCLDataCollator
from biohicl.data.samplers import MeshPairBatchSampler, RandomBatchSampler, mine_negatives
from biohicl.errors import ConfigError
from biohicl.mesh.gram import GramFactors, gram_matrix
from biohicl.mesh.label_groups import siml_label_weights, study_design_uis
from biohicl.training.args import BioHiCLTrainingArguments
from tests.conftest import TOPICS, synthetic_documents


# ---------------------------------------------------------------------------------------------------------- collator
def test_collator_tokenizes_and_attaches_siml(mesh):
    calls = []

    def tokenize(texts):
        calls.append(texts)
        return {"input_ids": torch.ones(len(texts), 3, dtype=torch.long)}

    collator = BioHiCLDataCollator(tokenize=tokenize, mesh=mesh)
    features = [
        {"title": "Diabetes", "abstract": "type 2.", "labels": ["D003920"]},
        {"text": "T2D cohort", "labels": ["D003924", "D999999"]},  # unknown UI ignored
        {"text": "no labels", "labels": []},
    ]
    batch = collator(features)
    assert calls == [["Diabetes type 2.", "T2D cohort", "no labels"]]
    assert batch["input_ids"].shape == (3, 3)
    expected = mesh.similarity_matrix([["D003920"], ["D003924"], []])
    assert torch.equal(batch["siml"], expected)
    assert batch["siml"][0, 1].item() == pytest.approx(0.778, abs=1e-3)
    assert batch["siml"][2].tolist() == [0.0, 0.0, 0.0]  # unlabelled: diagonal 0, so losses skip it


def test_collator_reads_an_empty_text_as_title_and_abstract(mesh):
    calls = []

    def tokenize(texts):
        calls.append(texts)
        return {"input_ids": torch.ones(len(texts), 3, dtype=torch.long)}

    features = [
        {"text": "", "title": "Diabetes", "abstract": "type 2.", "labels": ["D003920"]},
        {"text": None, "title": "Asthma", "abstract": None, "labels": ["D001249"]},
        {"text": " T2D cohort ", "title": "ignored", "labels": ["D003924"]},
    ]
    BioHiCLDataCollator(tokenize=tokenize, mesh=mesh)(features)
    assert calls == [["Diabetes type 2.", "Asthma", "T2D cohort"]]


# ---------------------------------------------------------------------------------------------------------- samplers
def positive_pair_share(batches, siml_of, beta: float = 0.3) -> dict[str, float]:
    """Share of in-batch pairs (i < j) with SimL > β, and share of batches holding at least one such pair."""
    pairs = positives = with_positive = 0
    for batch in batches:
        siml = siml_of(batch)
        upper = torch.triu(torch.ones_like(siml, dtype=torch.bool), diagonal=1)
        count = int((siml[upper] > beta).sum())
        pairs += int(upper.sum())
        positives += count
        with_positive += count > 0
    return {
        "positive_pair_share": positives / max(pairs, 1),
        "batches_with_positive": with_positive / max(len(batches), 1),
    }


def test_mesh_pair_sampler_is_deterministic_full_and_raises_positive_share(mesh):
    labels = [d["mesh"] for d in synthetic_documents(per_topic=8)]  # 32 documents, 4 topics
    sampler = MeshPairBatchSampler.from_labels(labels, mesh, batch_size=8, beta=0.3, seed=3)
    assert len(sampler) == 4 and sum(1 for p in sampler.partners if len(p)) == 32
    epoch0 = list(sampler)
    assert epoch0 == list(sampler)  # same epoch → same batches
    assert all(len(b) == 8 and len(set(b)) == 8 for b in epoch0)
    sampler.set_epoch(1)
    assert list(sampler) != epoch0

    def siml_of(batch):
        return mesh.similarity_matrix([labels[i] for i in batch])

    paired = positive_pair_share([b for e in range(5) if not sampler.set_epoch(e) for b in sampler], siml_of)
    random_sampler = RandomBatchSampler(len(labels), 8, seed=3)
    shuffled = positive_pair_share(
        [b for e in range(5) if not random_sampler.set_epoch(e) for b in random_sampler], siml_of
    )
    assert paired["batches_with_positive"] == 1.0
    # within a topic ~ 1/4 of random pairs are positives; pair mining must do clearly better
    assert paired["positive_pair_share"] > shuffled["positive_pair_share"] + 0.05


def test_sampler_from_pairs_matches_from_labels(mesh):
    labels = [d["mesh"] for d in synthetic_documents()]
    mined = MeshPairBatchSampler.from_labels(labels, mesh, batch_size=6, seed=0)
    siml = mesh.similarity_matrix(labels).numpy()
    a, p = np.triu_indices(len(labels), k=1)
    listed = MeshPairBatchSampler.from_pairs(a, p, siml[a, p], len(labels), batch_size=6, beta=0.3, seed=0)
    assert [x.tolist() for x in listed.partners] == [x.tolist() for x in mined.partners]
    assert list(listed) == list(mined)


def test_random_sampler_batches_are_full_and_cover_all():
    sampler = RandomBatchSampler(10, 4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 and all(len(set(b)) == 4 for b in batches)
    assert set().union(*batches) == set(range(10))


def test_collator_tokenizes_titles_as_queries_and_skips_rows_without(mesh):
    calls = []

    def tokenize(texts, kind="document"):
        calls.append((kind, list(texts)))
        return {"input_ids": torch.ones(len(texts), 2, dtype=torch.long)}

    collator = BioHiCLDataCollator(tokenize=tokenize, mesh=mesh, titles=True)
    features = [
        {"title": "Insulin", "abstract": "x", "labels": ["D003920"]},
        {"text": "a PubMedQA context", "labels": ["D003924"]},  # no title
        {"title": " Heart ", "abstract": "y", "labels": ["D009203"]},
    ]
    batch = collator(features)
    assert calls == [
        ("document", ["Insulin x", "a PubMedQA context", "Heart  y"]),
        ("query", ["Insulin", "Heart"]),
        ("document", ["x", "y"]),  # the abstracts alone: against title + abstract the title would find itself
    ]
    assert batch["title_inputs"]["input_ids"].shape == batch["abstract_inputs"]["input_ids"].shape == (2, 2)
    assert "title_inputs" not in collator(features[:2])  # one titled document: nothing to contrast


def test_check_tag_weight_down_weights_humans_in_the_collators_siml(tmp_path, mesh):

    humans, cohort = mesh.resolve("Humans"), mesh.resolve("Cohort Studies")
    labels = [[humans, cohort, "D003920"], [humans, cohort, "D009203"]]  # diabetes / myocardial infarction
    features = [{"text": "a", "labels": labels[0]}, {"text": "b", "labels": labels[1]}]

    def collated_siml(**options):
        args = BioHiCLTrainingArguments(output_dir=str(tmp_path), **options)
        weights = siml_label_weights(mesh, args.check_tag_weight, args.study_design_weight)
        collator = BioHiCLDataCollator(tokenize=lambda t: {}, mesh=mesh, label_weights=weights)
        return collator(features)["siml"][0, 1].item(), weights

    full, none = collated_siml()
    assert none is None and full == pytest.approx(mesh.label_similarity(*labels), abs=1e-6)
    half, weights = collated_siml(check_tag_weight=0.5)
    assert weights[humans] == 0.5 and cohort not in weights
    assert half == pytest.approx(mesh.label_similarity(*labels, label_weights={humans: 0.5}), abs=1e-6)
    dropped, _ = collated_siml(check_tag_weight=0.0, study_design_weight=0.0)
    assert cohort in study_design_uis(mesh)
    assert dropped == pytest.approx(mesh.label_similarity(["D003920"], ["D009203"]), abs=1e-6) and dropped == 0.0
    assert full > half > dropped  # two human cohort studies on unrelated diseases look less alike
    with pytest.raises(ConfigError, match=r"check_tag_weight: must be in \[0, 1\]"):
        BioHiCLTrainingArguments(output_dir=str(tmp_path), check_tag_weight=2.0)
    with pytest.raises(ConfigError, match="check_tag_weight: give either it or drop_check_tags"):
        BioHiCLTrainingArguments(output_dir=str(tmp_path), check_tag_weight=0.5, drop_check_tags=True)


def kinds_of(n_indexing: int, n_mentions: int) -> list[str]:
    return ["indexing"] * n_indexing + ["mentions"] * n_mentions


def test_batches_never_mix_label_kinds(mesh):
    labels = [d["mesh"] for d in synthetic_documents(per_topic=6)]  # 24 documents
    kinds = kinds_of(14, 10)
    paired = MeshPairBatchSampler.from_labels(labels, mesh, batch_size=6, seed=2, groups=kinds)
    # partners across kinds are dropped (topics straddle the kind boundary)
    assert all(kinds[p] == kinds[i] for i, ps in enumerate(paired.partners) for p in ps)
    shuffled = RandomBatchSampler(len(labels), 6, seed=2, groups=kinds)
    for sampler in (paired, shuffled):
        batches = [b for epoch in range(4) if not sampler.set_epoch(epoch) for b in sampler]
        assert len(batches) == 4 * len(sampler) == 16
        assert all(len({kinds[i] for i in b}) == 1 and len(set(b)) == len(b) == 6 for b in batches)
        assert {kinds[b[0]] for b in batches} == {"indexing", "mentions"}
        sampler.set_epoch(0)
        assert list(sampler) == list(sampler)  # deterministic per epoch
    # one kind only: exactly the batches without groups
    one = MeshPairBatchSampler.from_labels(labels, mesh, batch_size=6, seed=2, groups=["indexing"] * 24)
    assert list(one) == list(MeshPairBatchSampler.from_labels(labels, mesh, batch_size=6, seed=2))
    assert list(RandomBatchSampler(24, 6, seed=2, groups=["x"] * 24)) == list(RandomBatchSampler(24, 6, seed=2))


def test_collator_masks_cross_kind_pairs_out_of_both_losses(mesh):
    from biohicl.losses import BioHiCLLoss, FilteredMSELoss, HierarchicalContrastiveLoss

    collator = BioHiCLDataCollator(tokenize=lambda t: {}, mesh=mesh)
    features = [
        {"text": "a", "labels": ["D003920"], "label_kind": "indexing"},
        {"text": "b", "labels": ["D003924"], "label_kind": "mentions"},
        {"text": "c", "labels": ["D001927"], "label_kind": "indexing"},
        {"text": "d", "labels": ["D003924"], "label_kind": "indexing"},
    ]
    batch = collator(features)
    assert batch["pair_mask"].tolist() == [
        [True, False, True, True], [False, True, False, False], [True, False, True, True], [True, False, True, True]
    ]  # fmt: skip
    assert "pair_mask" not in collator([dict(f, label_kind="indexing") for f in features])
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]]), dim=-1)
    loss = BioHiCLLoss(FilteredMSELoss(pair_filter="all"), HierarchicalContrastiveLoss(temperature=0.5))
    masked = loss(emb, batch["siml"], pair_mask=batch["pair_mask"])
    # the same as the three indexing documents alone: document 1 (mentions) takes part in no pair
    alone = loss(emb[[0, 2, 3]], batch["siml"][[0, 2, 3]][:, [0, 2, 3]])
    for key in ("loss", "loss_mse", "loss_con"):
        assert masked[key].item() == pytest.approx(alone[key].item(), abs=1e-6), key
    assert loss(emb, batch["siml"])["loss_mse"].item() != pytest.approx(alone["loss_mse"].item(), abs=1e-4)


def test_mine_negatives_by_rule(mesh):

    labels = [d["mesh"] for d in synthetic_documents(per_topic=4)]  # 4 topics x 4 documents
    siml = mesh.similarity_matrix(labels).numpy()
    zero = mine_negatives(labels, mesh, "zero")
    for i, negs in enumerate(zero):
        expected = [j for j in range(16) if j != i and siml[i, j] <= 1e-6]
        assert negs.tolist() == expected
    lowest = mine_negatives(labels, mesh, "lowest:3", limit=2)
    for i, negs in enumerate(lowest):
        order = sorted((j for j in range(16) if j != i and siml[i, j] <= 0.3), key=lambda j: (siml[i, j], j))
        assert sorted(negs.tolist()) == sorted(order[:2])
    kinds = kinds_of(8, 8)
    grouped = mine_negatives(labels, mesh, "below:0.2", groups=kinds, limit=3, seed=1)
    assert all(len(n) <= 3 and all(kinds[j] == kinds[i] for j in n) for i, n in enumerate(grouped))
    again = mine_negatives(labels, mesh, "below:0.2", groups=kinds, limit=3, seed=1)
    assert [n.tolist() for n in grouped] == [n.tolist() for n in again]


def _row_by_row_negatives():
    """The pre-vectorisation ``mine_negatives`` (full-length masks per row), kept once as the reference: in the
    benchmark that times the blockwise code against it."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_dataset_load.py"
    spec = importlib.util.spec_from_file_location("bench_dataset_load", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.row_by_row_negatives


@pytest.mark.parametrize("negative", ["zero", "below:0.2", "below:0.3", "lowest:3"])
@pytest.mark.parametrize("grouped", [False, True])
def test_blockwise_mine_negatives_equal_the_row_by_row_ones(mesh, negative, grouped):
    """Masks per block and per group give bit for bit the negatives (and the seeded draws) of the per-row code."""
    reference = _row_by_row_negatives()
    pool = sorted({ui for uis in TOPICS.values() for ui in uis})
    placed = sorted(ui for ui, trees in mesh.trees.items() if trees)
    for seed in range(3):
        draw = np.random.default_rng(seed)
        labels = []
        for _ in range(int(draw.integers(20, 60))):
            if draw.random() < 0.15:  # unlabelled: no labels, or only ones MeSH cannot place
                labels.append([] if draw.random() < 0.5 else ["D999999"])
            else:
                labels.append(list(draw.choice(pool, int(draw.integers(1, 4)), replace=False)))
                if draw.random() < 0.3:
                    labels[-1].append(str(draw.choice(placed)))
        groups = list(draw.choice(["indexing", "mentions", "other"], len(labels))) if grouped else None
        for limit, block in ((3, 7), (5, 16), (64, 1024)):
            got = mine_negatives(labels, mesh, negative, groups=groups, limit=limit, seed=seed, block=block)
            want = reference(labels, mesh, negative, limit, seed, groups=groups, block=block)
            assert len(got) == len(want) == len(labels)
            for i, (g, w) in enumerate(zip(got, want, strict=True)):
                assert g.dtype == w.dtype == np.int64 and g.tolist() == w.tolist(), (seed, limit, block, i)
            assert limit > 3 or any(len(w) == limit for w in want)  # rows with more candidates than the limit
            assert not all(len(w) for w in want)  # and rows without any


class _CountedComparisons(np.ndarray):
    """An array that records the shape of every comparison made on it (or on its slices)."""

    shapes: ClassVar[list[tuple[int, ...]]] = []

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, _CountedComparisons) else x for x in inputs]
        result = getattr(ufunc, method)(*plain, **kwargs)
        if ufunc in (np.equal, np.less, np.less_equal):
            _CountedComparisons.shapes.append(np.shape(result))
        return result


def test_mine_negatives_compares_per_block_and_group_not_per_row(mesh, monkeypatch):
    """The group and threshold masks are full-length comparisons: once per group and once per block of rows, not
    once per row (the per-row temporaries took 119 s user + 42 s sys at 80,000 documents)."""
    real_factors, real_groups = samplers.gram_factors, samplers._group_index

    class Factors:
        def __init__(self, vectors):
            self.factors = real_factors(vectors)

        def rows(self, start, stop, out=None):
            return self.factors.rows(start, stop, out=out).view(_CountedComparisons)

    def group_index(groups, n):
        group_of, members = real_groups(groups, n)
        return group_of.view(_CountedComparisons), members

    monkeypatch.setattr(samplers, "gram_factors", Factors)
    monkeypatch.setattr(samplers, "_group_index", group_index)
    labels = [d["mesh"] for d in synthetic_documents(per_topic=10)]  # 40 documents
    _CountedComparisons.shapes = []
    negatives = mine_negatives(labels, mesh, "zero", groups=kinds_of(20, 20), limit=3, block=16)
    assert [len(n) for n in negatives] == [3] * 40  # each has more SimL-0 documents of its kind than the limit
    full_length = [shape for shape in _CountedComparisons.shapes if shape[-1:] == (40,)]
    assert sorted(full_length) == [(8, 40), (16, 40), (16, 40), (40,), (40,)]  # 3 blocks, 2 groups


def test_batch_negatives_put_a_negative_in_every_batch(mesh):

    # 3 documents of one topic per 12: random or pair-mined batches of 4 often hold no unrelated pair
    labels = [["D003920", "D003924"]] * 9 + [["D001943"], ["D009203"], ["D001927"]]
    plain = MeshPairBatchSampler.from_labels(labels, mesh, batch_size=4, seed=0)
    negatives = mine_negatives(labels, mesh, "zero")
    with_negatives = MeshPairBatchSampler.from_labels(labels, mesh, batch_size=4, seed=0, negatives=negatives)
    siml = mesh.similarity_matrix(labels).numpy()

    def share_with_negative(sampler):
        batches = [b for epoch in range(10) if not sampler.set_epoch(epoch) for b in sampler]
        return np.mean([any(siml[i, j] <= 1e-6 for i in b for j in b if i != j) for b in batches])

    assert share_with_negative(with_negatives) == 1.0 > share_with_negative(plain)


def _dense_partners(mesh, labels, beta, label_weights):
    """The pre-fix ``from_labels``: the dense N×N SimL Gram matrix, every ``j != i`` with SimL > β."""
    docs = [mesh.known_labels(labs) for labs in labels]
    vectors = mesh.normalized_label_vectors(docs, True, True, np.float64, label_weights)
    gram = gram_matrix(vectors)
    np.fill_diagonal(gram, 0.0)
    return gram, [np.flatnonzero(row > beta) for row in gram]


@pytest.mark.parametrize("check_tag_weight", [1.0, 0.2])
@pytest.mark.parametrize("at_beta", [False, True])
def test_from_labels_mines_the_dense_partners_in_row_blocks(mesh, data_dir, monkeypatch, check_tag_weight, at_beta):
    # 600 real PubMedQA label sets: from_labels' partners (and so its batches) are the dense computation's, with
    # never more than a 64-row block of SimL in memory (the last block overlaps the one before)
    items = list(json.loads((data_dir / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8")).values())[:600]
    labels = [[u for u in (mesh.try_resolve(x) for x in item["MESHES"]) if u] for item in items]
    weights = siml_label_weights(mesh, check_tag_weight)
    gram, _ = _dense_partners(mesh, labels, 0.3, weights)
    # at_beta: β is a SimL value of the data, so some entries are exactly at β (and must stay out)
    above = np.sort(gram[gram > 0.3])
    beta = float(above[len(above) // 2]) if at_beta else 0.3
    _, expected = _dense_partners(mesh, labels, beta, weights)
    assert not at_beta or (gram == np.float32(beta)).sum() >= 2  # i, j and j, i
    blocks = []
    rows = GramFactors.rows

    def recording(self, start, stop, out=None):
        blocks.append((start, stop))
        return rows(self, start, stop, out)

    monkeypatch.setattr(GramFactors, "rows", recording)
    monkeypatch.setattr(samplers, "PAIR_BLOCK_ENTRIES", 7 * 600, raising=False)
    sampler = MeshPairBatchSampler.from_labels(labels, mesh, 16, beta=beta, seed=5, label_weights=weights)
    assert blocks == [(s, s + 64) for s in range(0, 576, 64)] + [(536, 600)]
    assert [p.tolist() for p in sampler.partners] == [p.tolist() for p in expected]
    assert {p.dtype for p in sampler.partners} == {np.dtype(np.int32)}
    assert 20 < np.mean([len(p) for p in expected]) < 599
    reference = MeshPairBatchSampler(expected, 16, seed=5)
    reference.partners = expected  # the pre-fix int64 arrays, as the sampler held them
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        reference.set_epoch(epoch)
        assert list(sampler) == list(reference)

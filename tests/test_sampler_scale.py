"""The pair sampler at scale: ``max_partners`` caps the partners mined per document (a seeded subset), ``None``
keeps every partner and the batches of before; mining says what it mines and shows a progress bar when asked; and
``biohicl train --help`` says what ``--resume_from_checkpoint`` takes."""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest

from biohicl.cli import main
from biohicl.data.samplers import MeshPairBatchSampler, mine_negatives
from biohicl.errors import ConfigError
from biohicl.training.args import BioHiCLTrainingArguments

SHARED = ["D003920", "D006973"]  # one label set for every document: each has all the others as partners


def _pubmedqa_labels(mesh, data_dir, n: int) -> list[list[str]]:
    items = list(json.loads((data_dir / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8")).values())[:n]
    return [[u for u in (mesh.try_resolve(x) for x in item["MESHES"]) if u] for item in items]


@pytest.mark.parametrize("n", [100, 300])  # 300 > SMALL_GRAM_ROWS: the blockwise float32 path
def test_max_partners_keeps_a_seeded_subset_of_each_documents_partners(mesh, n):
    labels = [SHARED] * n
    full = MeshPairBatchSampler.from_labels(labels, mesh, 8, seed=1)
    assert [len(p) for p in full.partners] == [n - 1] * n
    capped = MeshPairBatchSampler.from_labels(labels, mesh, 8, seed=1, max_partners=5)
    assert max(len(p) for p in capped.partners) <= 5
    assert [len(p) for p in capped.partners] == [5] * n
    assert {p.dtype for p in capped.partners} == {np.dtype(np.int32)}
    for i, (kept, every) in enumerate(zip(capped.partners, full.partners, strict=True)):
        assert i not in kept.tolist() and set(kept.tolist()) <= set(every.tolist())
        assert kept.tolist() == sorted(set(kept.tolist()))
    again = MeshPairBatchSampler.from_labels(labels, mesh, 8, seed=1, max_partners=5)
    assert [p.tolist() for p in again.partners] == [p.tolist() for p in capped.partners]
    other = MeshPairBatchSampler.from_labels(labels, mesh, 8, seed=2, max_partners=5)
    assert [p.tolist() for p in other.partners] != [p.tolist() for p in capped.partners]
    # a cap at or above the partner count keeps every partner
    loose = MeshPairBatchSampler.from_labels(labels, mesh, 8, seed=1, max_partners=n)
    assert [p.tolist() for p in loose.partners] == [p.tolist() for p in full.partners]


@pytest.mark.parametrize(
    ("n", "entries", "digest"),
    [
        (200, 18258, "54950408ee96b7114895c227e9df50f031f4dac008715fbe3ae8ad5a07e04f15"),
        (400, 76574, "da983148f0587ed70f79a0c2cbbdca8f48e1f4f7df12db847192dd9b8924b96b"),
    ],
)
def test_no_max_partners_gives_the_batches_of_before(mesh, data_dir, n, entries, digest):
    # the digests are of the batches of epochs 0 and 1 as from_labels gave them before max_partners existed
    labels = _pubmedqa_labels(mesh, data_dir, n)
    for sampler in (
        MeshPairBatchSampler.from_labels(labels, mesh, 16, seed=7),
        MeshPairBatchSampler.from_labels(labels, mesh, 16, seed=7, max_partners=None),
    ):
        assert sum(len(p) for p in sampler.partners) == entries
        batches = []
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            batches.append(list(sampler))
        assert hashlib.sha256(json.dumps(batches).encode()).hexdigest() == digest


def test_mining_says_what_it_mines_and_shows_a_bar_when_asked(mesh, capsys, caplog):
    labels = [SHARED] * 300
    with caplog.at_level(logging.INFO, logger="biohicl.data.samplers"):
        MeshPairBatchSampler.from_labels(labels, mesh, 8, progress=True)
        mine_negatives(labels, mesh, "lowest:2", progress=True, block=128)
    messages = [r.getMessage() for r in caplog.records if r.name == "biohicl.data.samplers"]
    assert len(messages) == 2
    assert "300 documents" in messages[0] and "SimL > 0.3" in messages[0]
    assert "300 documents" in messages[1] and "lowest:2" in messages[1]
    err = capsys.readouterr().err
    assert "mining batch partners" in err and "mining negatives" in err and "3/3" in err
    MeshPairBatchSampler.from_labels(labels, mesh, 8)
    mine_negatives(labels, mesh, "lowest:2", block=128)
    assert capsys.readouterr().err == ""  # no bar unless asked


def test_max_partners_option_is_checked(tmp_path):
    assert BioHiCLTrainingArguments(output_dir=str(tmp_path)).max_partners is None
    assert BioHiCLTrainingArguments(output_dir=str(tmp_path), max_partners=64).max_partners == 64
    with pytest.raises(ConfigError, match=r"^max_partners: must be a whole number of at least 1, got 0$"):
        BioHiCLTrainingArguments(output_dir=str(tmp_path), max_partners=0)
    with pytest.raises(ConfigError, match=r"^max_partners: only the mesh_pairs batch sampler"):
        BioHiCLTrainingArguments(output_dir=str(tmp_path), max_partners=4, batch_sampler="random")


def test_training_mines_at_most_max_partners_seeded_by_the_data_seed(tmp_path, mesh, caplog):
    from biohicl.training.run import build_batch_sampler, load_training_data

    docs = tmp_path / "documents.jsonl"
    labels = [SHARED if i % 2 else ["D001249"] for i in range(40)]  # two label sets (asthma, SimL ≤ β to SHARED)
    rows = [{"pmid": str(i), "title": f"t {i}", "abstract": "a", "mesh": labs} for i, labs in enumerate(labels)]
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    values = dict(output_dir=str(tmp_path / "run"), dataset_path=str(docs), per_device_train_batch_size=4)
    args = BioHiCLTrainingArguments(**values, max_partners=3, data_seed=11, disable_tqdm=True)
    data = load_training_data(args, mesh)
    with caplog.at_level(logging.INFO, logger="biohicl.data.samplers"):
        sampler = build_batch_sampler(args, data, mesh)
    assert [len(p) for p in sampler.partners] == [3] * 40
    assert "among 40 documents, at most 3 per document" in caplog.text
    direct = MeshPairBatchSampler.from_labels(labels, mesh, 4, seed=11, max_partners=3)
    assert [p.tolist() for p in sampler.partners] == [p.tolist() for p in direct.partners]
    every = build_batch_sampler(BioHiCLTrainingArguments(**values, data_seed=11), data, mesh)
    assert [len(p) for p in every.partners] == [19] * 40


def test_train_help_says_resume_takes_last(capsys):
    with pytest.raises(SystemExit):
        main.main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    start = out.index("--resume_from_checkpoint RESUME_FROM_CHECKPOINT,")
    text = out[start : out.index("--", start + 60)]
    assert "`last`" in text and "newest complete checkpoint" in text
    assert "Not directly used by Trainer" not in text
    start = out.index("--max_partners MAX_PARTNERS,")
    assert "seeded" in out[start : out.index(" --", start + 40)]


@pytest.mark.parametrize("n_indexing", [200, 300])  # 310 documents > SMALL_GRAM_ROWS: the blockwise float32 path
def test_max_partners_draws_among_same_kind_partners(mesh, n_indexing):
    # one label set: every document's SimL > β partners are all the others, of both kinds; a batch holds one kind
    n = n_indexing + 10
    labels, groups = [SHARED] * n, ["indexing"] * n_indexing + ["mentions"] * 10
    full = MeshPairBatchSampler.from_labels(labels, mesh, 8, groups=groups, seed=0)
    assert [len(p) for p in full.partners] == [n_indexing - 1] * n_indexing + [9] * 10
    for cap in (5, 9, 12):
        capped = MeshPairBatchSampler.from_labels(labels, mesh, 8, groups=groups, max_partners=cap, seed=0)
        assert [len(p) for p in capped.partners] == [min(cap, n_indexing - 1)] * n_indexing + [min(cap, 9)] * 10
        for kept, every in zip(capped.partners, full.partners, strict=True):
            assert set(kept.tolist()) <= set(every.tolist())
    # one kind only: the cap draws exactly as without groups
    ungrouped = MeshPairBatchSampler.from_labels(labels, mesh, 8, max_partners=5, seed=3)
    one_kind = MeshPairBatchSampler.from_labels(labels, mesh, 8, groups=["indexing"] * n, max_partners=5, seed=3)
    assert [p.tolist() for p in one_kind.partners] == [p.tolist() for p in ungrouped.partners]


def test_max_partners_with_a_built_datasets_pairs_warns_once_and_keeps_them(tmp_path, mesh, caplog):
    import datasets

    from biohicl.training.run import TrainingData, build_batch_sampler

    labels = [SHARED] * 12
    documents = datasets.Dataset.from_dict({"text": [f"t {i}" for i in range(12)], "labels": labels})
    anchors = np.repeat(np.arange(12), 2)  # the build's top 2 per document: the next two documents
    partners = (anchors + np.tile([1, 2], 12)) % 12
    data = TrainingData(documents, (anchors, partners, np.full(24, 0.9)), {})
    values = dict(output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, data_seed=5)
    plain = build_batch_sampler(BioHiCLTrainingArguments(**values), data, mesh)
    with caplog.at_level(logging.INFO):
        capped = build_batch_sampler(BioHiCLTrainingArguments(**values, max_partners=1), data, mesh)
    assert [p.tolist() for p in capped.partners] == [p.tolist() for p in plain.partners]
    assert [len(p) for p in capped.partners] == [4] * 12
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "max_partners=1 is not applied" in warnings[0] and "top_k" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        build_batch_sampler(BioHiCLTrainingArguments(**values), data, mesh)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

"""scripts/pair_statistics.py: the SimL bands docs/training.md quotes, counted against a by-hand recount."""

from __future__ import annotations

import json

import numpy as np

from tests.conftest import load_script, synthetic_documents


def test_pair_counts_by_band():
    siml = np.array([[1.0, 0.0, 0.3, 0.9], [0.0, 1.0, 0.31, 0.2], [0.3, 0.31, 1.0, 0.0], [0.9, 0.2, 0.0, 1.0]])
    assert load_script("pair_statistics").pair_counts(siml, beta=0.3) == {
        "pairs": 6,
        "zero": 2,
        "weak": 2,
        "positive": 2,
    }


def test_the_script_counts_every_training_pair_and_every_batch(tmp_path, mesh, capsys):
    docs = [d for d in synthetic_documents() if d["split"] == "train"]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    assert load_script("pair_statistics").main([str(path), "--batch_size", "4", "--epochs", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    labels = [d["mesh"] for d in docs]
    by_hand = [mesh.label_similarity(labels[i], labels[j]) for i in range(len(docs)) for j in range(i + 1, len(docs))]
    assert lines[0]["documents"] == len(docs)
    assert lines[0]["all_pairs"] == {
        "pairs": len(by_hand),
        "zero": sum(s == 0 for s in by_hand),
        "weak": sum(0 < s <= 0.3 + 1e-6 for s in by_hand),
        "positive": sum(s > 0.3 + 1e-6 for s in by_hand),
    }
    batches = -(-len(docs) // 4) * 2  # ceil(N / B) full batches per epoch
    for line in lines[1:]:
        assert line["batches"] == batches and line["pairs"] == batches * 6
        assert line["zero"] + line["weak"] + line["positive"] == line["pairs"]
    assert [line["sampler"] for line in lines[1:]] == ["random", "mesh_pairs"]
    assert lines[2]["positive"] >= lines[1]["positive"]  # each anchor brings a partner with SimL > beta

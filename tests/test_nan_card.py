"""Publishing a run whose dev evaluations were NaN (a collapsed model): the model card renders, says in words that a
step's score was not a number (never ``nan``), and its YAML metadata carries no NaN or infinite value: a non-finite
evaluation figure stays in the card's table and out of ``model-index``."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest

from biohicl.hub.eval_rows import EvalRow
from biohicl.hub.model_card import CARD_DATA_NAME, BioHiCLModelCardData
from biohicl.hub.publish import build_model_repo_folder, publish_folder
from tests.conftest import read_card_metadata, synthetic_documents
from tests.test_hub import FAKE_TOKEN, RecordingHfApi
from tests.test_nan_evaluations import NAN, Scripted, nan_args

NOT_A_NUMBER = "not a number"
#: a number as Python or YAML writes a non-finite one: nan, +nan, .nan, inf, -inf, .inf
NON_FINITE = re.compile(r"(?<![A-Za-z])[+-]?\.?(nan|inf)(?![A-Za-z])", re.IGNORECASE)


@pytest.fixture(scope="module")
def nan_runs(tiny_bert_dir, tmp_path_factory) -> dict[str, Path]:
    """Two trained runs (load_best_model_at_end): every evaluation NaN (step 0 kept), and a NaN step 0 that a finite
    step 2 beat."""
    from biohicl.training.run import train_biohicl

    root = tmp_path_factory.mktemp("nan-runs")
    docs = root / "documents.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    scores = {"all-nan": [NAN, NAN, NAN], "nan-step-0": [NAN, 0.5, 0.3]}
    return {
        name: train_biohicl(nan_args(tiny_bert_dir, docs, root / name), evaluator=Scripted(s))
        for name, s in scores.items()
    }


def published_card(run: Path, out: Path) -> str:
    """The README.md the recording fake Hub received for ``run``."""
    folder = build_model_repo_folder(run, out, repo_id="me/tiny-collapsed", license="mit")
    api = RecordingHfApi(token=FAKE_TOKEN)
    publish_folder(api, folder, "me/tiny-collapsed")
    return api.uploaded["README.md"].decode("utf-8")


def test_a_run_whose_evaluations_are_all_nan_publishes_a_card_that_says_no_score_was_a_number(nan_runs, tmp_path):
    """The card said "No evaluated step beat step 0 ... (score nan)" and its dev table "| nan | nan | +nan |"."""
    card = published_card(nan_runs["all-nan"], tmp_path / "repo")
    assert NON_FINITE.findall(card.replace("NaN or infinite", "")) == []
    assert (
        "**No evaluation gave a score that is a number (each was NaN or infinite), so step 0 is kept: this model is "
        "its base, weight for weight**."
    ) in card
    assert f"| BIOSSES | Spearman (`biosses_spearman`) | score | {NOT_A_NUMBER} | {NOT_A_NUMBER} | – |" in card


def test_a_nan_step_0_beaten_by_a_finite_step_is_said_to_be_not_a_number(nan_runs, tmp_path):
    """ "Kept: **step 2** (score 0.5000; step 0: nan)"."""
    card = published_card(nan_runs["nan-step-0"], tmp_path / "repo")
    assert f"Kept: **step 2** (score 0.5000; step 0: {NOT_A_NUMBER})." in card
    assert f"| BIOSSES | Spearman (`biosses_spearman`) | score | {NOT_A_NUMBER} | 0.5000 | – |" in card
    assert NON_FINITE.findall(card) == []


def test_a_non_finite_evaluation_figure_is_left_out_of_model_index_and_named_in_the_table(nan_runs, tmp_path):
    """A card data file with a NaN held-out score gave ``value: .nan`` in model-index, which the Hub refuses."""
    run = tmp_path / "run"
    shutil.copytree(nan_runs["nan-step-0"], run)
    data = BioHiCLModelCardData.from_run_dir(run, "tiny-collapsed")
    data.eval_results = [
        EvalRow("biosses", "spearman", NAN, 0.61, "all"),
        EvalRow("scifact", "ndcg@10", 0.7, math.inf),
        EvalRow("nfcorpus", "ndcg@10", 0.31, 0.3),
    ]
    data.save(run / CARD_DATA_NAME)  # what from_run_dir reads first
    card = published_card(run, tmp_path / "repo")
    (tmp_path / "README.md").write_text(card, encoding="utf-8")
    results = read_card_metadata(tmp_path / "README.md")["model-index"][0]["results"]
    values = {r["dataset"]["name"]: [m["value"] for m in r["metrics"]] for r in results}
    assert values == {"SciFact": [0.7], "NFCorpus": [0.31]}  # BIOSSES's NaN is no result
    header = card[: card.index("\n---", 4)]
    assert NON_FINITE.findall(header) == []
    assert f"| BIOSSES (all) | Spearman | 0.6100 | {NOT_A_NUMBER} | – |" in card
    assert f"| SciFact (test) | nDCG@10 | {NOT_A_NUMBER} | 0.7000 | – |" in card
    assert "| NFCorpus (test) | nDCG@10 | 0.3000 | 0.3100 | +0.0100 |" in card

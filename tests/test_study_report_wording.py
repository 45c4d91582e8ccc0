"""What a study report's lines claim: the dataset line says where PubMedQA's test abstracts are (kept as the test
split, never trained on; or left out of the build), and the Targets table's noise column says what it compares."""

from __future__ import annotations

from biohicl.study.report import markdown_results

SPLITS = {"train": 6665, "dev": 587, "test": 500}


def _dataset_line(dataset: dict) -> str:
    text = markdown_results({"title": "t", "models": {}, "dataset": dataset})
    return next(line for line in text.splitlines() if line.startswith("MeSH-pair dataset:"))


def test_test_abstracts_kept_as_the_test_split_are_said_to_be_there_never_trained_on():
    # "PubMedQA test abstracts excluded: 0" read as if they were not kept out of training
    line = _dataset_line({"documents": 7752, "pairs": 77520, "sources": {"pubmedqa": 1000}, "splits": SPLITS,
                          "test_documents": 500, "excluded_documents": 0})  # fmt: skip
    assert line == (
        "MeSH-pair dataset: 7752 documents (train 6665, dev 587, test 500; only train is trained on), 77520 mined "
        "pairs (sources {'pubmedqa': 1000}); PubMedQA's 500 test abstracts are in it as its test split, never "
        "trained on."
    )
    assert "excluded" not in line


def test_test_abstracts_left_out_of_the_build_are_said_to_be_left_out():
    line = _dataset_line({"documents": 2094, "pairs": 20940, "sources": {"pubmedqa": 500}, "excluded_documents": 500})
    assert line == (
        "MeSH-pair dataset: 2094 training documents, 20940 mined pairs (sources {'pubmedqa': 500}); 500 documents "
        "were left out of it (PubMedQA's test abstracts under exclude_test, or excluded PMIDs)."
    )


def test_the_noise_column_of_the_targets_says_it_compares_with_zero_by_the_seed_spread():
    target = {"model": "m", "variant": "v", "metric": "biosses/spearman", "target": 0.01, "delta": 0.012,
              "met": True, "exceeds_noise": True}  # fmt: skip
    text = markdown_results({"title": "t", "models": {}, "targets": [target]})
    assert "| model | variant | metric | target | Δ | met | Δ > 2·s vs 0 (seed spread only) |" in text
    assert "beyond noise" not in text
    assert "| m | v | biosses/spearman | Δ ≥ +1.0 | +1.20 | yes | yes |" in text  # a record from before verdicts

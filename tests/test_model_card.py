"""Model cards: Hub-parsable YAML, model-index round trip, the evaluation table, and usage snippets that run."""

from __future__ import annotations

import inspect
import json
import logging
import socket
from pathlib import Path

import numpy as np
import pytest
from conftest import build_tiny_bert, python_snippets, randomize_lora_b
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from test_loader import add_to_hub_cache

from biohicl.errors import ConfigError
from biohicl.hub.eval_rows import EvalRow, flatten_results
from biohicl.hub.model_card import (
    BioHiCLModelCardData,
    render_model_card,
    save_model_card,
)
from biohicl.models.model import BioHiCL

TUNED = {
    "model": "runs/minilm",
    "results": {
        "scifact": {"ndcg_at_10": 0.6612, "recall_at_100": 0.93, "wall_time": 12.5},
        "biosses": {"metrics": {"spearman": 0.8431, "pearson": 0.85}},
        "pubmedqa": {"recall@1": 0.871, "n": 500},
    },
}
BASE = {"scifact": {"nDCG@10": 0.6451}, "biosses": {"spearman": 0.8125}, "pubmedqa": {"R@1": 0.858}}


def _card(**kwargs) -> BioHiCLModelCardData:
    data = BioHiCLModelCardData(
        model_name="BioHiCL-MiniLM",
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        repo_id="biohicl/BioHiCL-MiniLM-L6",
        hyperparameters={"lambda": 0.1, "beta": 0.3, "lora_r": 8},
        training_data="Abstracts from PubMedQA (train) and BC5CDR with their MeSH labels.",
        training_counts={"documents": 1200, "pairs": 34567},
        trainable_parameters=73_728,
        total_parameters=22_786_944,
        datasets=["biohicl/mesh-pairs"],
        license="apache-2.0",  # the registry's, as publish states it for biohicl/BioHiCL-MiniLM-L6
        **kwargs,
    )
    data.add_eval_results(TUNED, base=BASE)
    return data


def test_flatten_results_normalises_metric_names_and_skips_non_metrics():
    assert flatten_results(TUNED) == {
        ("scifact", "ndcg@10"): 0.6612,
        ("scifact", "recall@100"): 0.93,
        ("biosses", "spearman"): 0.8431,
        ("biosses", "pearson"): 0.85,
        ("pubmedqa", "recall@1"): 0.871,
    }
    assert flatten_results(BASE) == {
        ("scifact", "ndcg@10"): 0.6451,
        ("biosses", "spearman"): 0.8125,
        ("pubmedqa", "recall@1"): 0.858,
    }
    assert flatten_results({"tasks": {"x": {"ndcg_cut_10": float("nan"), "map_at_100": 0.5}}}) == {
        ("x", "map@100"): 0.5
    }


def test_yaml_metadata_parses_with_huggingface_hub():
    card = ModelCard(render_model_card(_card()))
    meta = card.data.to_dict()
    assert meta["library_name"] == "peft"
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["pipeline_tag"] == "sentence-similarity"
    assert meta["license"] == "apache-2.0"
    assert meta["datasets"] == ["biohicl/mesh-pairs"]
    assert {"biomedical", "mesh", "lora", "peft"} <= set(meta["tags"])


def test_merged_model_card_is_a_sentence_transformers_library():
    meta = ModelCard(render_model_card(_card(kind="merged"))).data.to_dict()
    assert meta["library_name"] == "sentence-transformers"
    assert "lora" not in meta["tags"]


def test_model_index_round_trips():
    data = _card()
    card = ModelCard(render_model_card(data))
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert name == "BioHiCL-MiniLM"
    assert results == data.hub_eval_results()
    by_metric = {(r.dataset_name, r.metric_type): r.metric_value for r in results}
    assert by_metric == {
        ("SciFact", "ndcg_at_10"): 0.6612,
        ("SciFact", "recall_at_100"): 0.93,
        ("BIOSSES", "spearman"): 0.8431,
        ("BIOSSES", "pearson"): 0.85,
    }  # PubMedQA's test questions are no split of qiaojin/PubMedQA: in the table only
    assert {r.task_type for r in results if r.dataset_name == "BIOSSES"} == {"sentence-similarity"}
    assert card.data.eval_results == results  # ModelCardData reads model-index back the same way


def test_body_has_the_evaluation_table_with_deltas_and_the_training_facts():
    text = render_model_card(_card())
    assert "| SciFact (test) | nDCG@10 | 0.6451 | 0.6612 | +0.0161 |" in text
    assert "| BIOSSES (test) | Spearman | 0.8125 | 0.8431 | +0.0306 |" in text
    assert "| BIOSSES (test) | Pearson | – | 0.8500 | – |" in text  # no base figure: no delta, shown as the base is
    assert "\n| | |\n" not in text and "\n| | count |\n" not in text  # every table has a header
    assert "| PubMedQA (question → long answer) (test) | Recall@1 | 0.8580 | 0.8710 | +0.0130 |" in text
    assert "| Trainable parameters | 73,728 of 22,786,944 (0.32%) |" in text
    assert "| pairs | 34,567 |" in text
    assert "| `beta` | 0.3 |" in text
    assert "SimL(p, q) = cos(y_p ⊙ w, y_q ⊙ w)" in text
    assert "@inproceedings{biohicl2026" in text
    assert "No evaluation results" not in text


def test_card_without_results_says_so_and_has_no_model_index():
    data = BioHiCLModelCardData(model_name="M", base_model="org/base")
    text = render_model_card(data)
    assert "No evaluation results were recorded" in text
    assert "model-index" not in ModelCard(text).data.to_dict()
    # no repo: the snippets load the folder, never the display name (no model of that name exists)
    assert 'from_pretrained("path/to/this/model/folder")' in text and 'from_pretrained("M")' not in text


def test_rendering_never_touches_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access while rendering a card")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert render_model_card(_card()).startswith("---\n")


def test_card_data_round_trips_through_json(tmp_path):
    data = _card(limitations=["Trained for 2 epochs on CPU only."])
    data.save(tmp_path / "card_data.json")
    again = BioHiCLModelCardData.load(tmp_path / "card_data.json")
    assert again == data
    assert isinstance(again.eval_results[0], EvalRow)
    assert "- Trained for 2 epochs on CPU only." in render_model_card(again)


def test_card_data_with_a_score_that_is_not_a_number_is_strict_json_and_reads_back_as_it_rendered(tmp_path):
    """A collapsed run's NaN (a Spearman of constant embeddings, a selection score) is written ``null``, as every
    other record is, and read back as NaN: the reloaded card renders as the one that was saved."""
    data = _card(
        selection={
            "steps": [0, 10],
            "best_step": 10,
            "best_metric": float("nan"),
            "step0_metric": 0.5,
            "selected_base": False,
            "metrics": ["eval_pubmedqa_recall@1"],
            "guard": [],
            "guard_mode": "mean",
            "guard_tolerance": 0.0,
            "eval_tasks": ["pubmedqa"],
            "dev_metrics": [
                {
                    "metric": "pubmedqa_recall@1",
                    "task": "PubMedQA (dev)",
                    "name": "R@1",
                    "role": "score",
                    "base": 0.5,
                    "kept": float("nan"),
                }
            ],
        }
    )
    data.eval_results[0].value = float("nan")
    data.save(tmp_path / "card_data.json")
    text = (tmp_path / "card_data.json").read_text()
    json.loads(text, parse_constant=lambda word: pytest.fail(f"card_data.json holds {word}"))
    again = BioHiCLModelCardData.load(tmp_path / "card_data.json")
    assert np.isnan(again.eval_results[0].value) and np.isnan(again.selection["best_metric"])
    assert np.isnan(again.selection["dev_metrics"][0]["kept"]) and again.selection["step0_metric"] == 0.5
    assert render_model_card(again) == render_model_card(data)


def test_card_data_validation():
    with pytest.raises(ConfigError, match="'base_model'"):
        BioHiCLModelCardData(model_name="M", base_model="/data/models/local-model")
    with pytest.raises(ConfigError, match="'kind'"):
        BioHiCLModelCardData(model_name="M", base_model="org/base", kind="lora")
    with pytest.raises(ConfigError, match="unknown field"):
        BioHiCLModelCardData.from_dict({"model_name": "M", "base_model": "org/base", "colour": "red"})


# ---------------------------------------------------------------------- the usage snippets run


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("card-models")
    base = build_tiny_bert(root / "base")
    model = BioHiCL.from_base(str(base), hub_id="org/tiny-bert", pooling="cls", query_prompt="query: ")
    model.add_lora(r=4, target_modules=["query", "value"], verbose=False)
    randomize_lora_b(model, std=0.3)
    model.eval()
    model.save_pretrained(root / "adapter")
    model.save_merged(root / "merged")
    query = model.encode(["What causes insulin resistance?"], kind="query", show_progress_bar=False)
    return base, root / "adapter", root / "merged", query


def _run(snippet: str, replacements: dict[str, str]) -> dict:
    for old, new in replacements.items():
        snippet = snippet.replace(f'"{old}"', repr(new))
    namespace: dict = {}
    exec(compile(snippet, "<model card>", "exec"), namespace)
    return namespace


def test_merged_card_snippets_run(tiny_models, capsys):
    _, _, merged, query = tiny_models
    data = BioHiCLModelCardData.from_biohicl_config(
        BioHiCL.from_pretrained(merged).config, "Tiny", repo_id="org/tiny-merged"
    )
    assert data.kind == "merged"
    text = save_model_card(data, merged).read_text()
    biohicl_snippet, st_snippet = python_snippets(text)
    ns = _run(biohicl_snippet, {"org/tiny-merged": str(merged)})
    assert ns["scores"].shape == (1, 2)
    np.testing.assert_allclose(ns["queries"], query, atol=1e-6)
    ns = _run(st_snippet, {"org/tiny-merged": str(merged)})
    np.testing.assert_allclose(ns["queries"], query, atol=1e-5)  # the `query` prompt is applied
    assert "tensor" in capsys.readouterr().out


def test_adapter_card_snippets_run(tiny_models, tmp_path, monkeypatch):
    from huggingface_hub import constants

    base, adapter, _, query = tiny_models
    cache = tmp_path / "hub"
    add_to_hub_cache(cache, "org/tiny-bert", base, "a" * 40)  # the biohicl snippet reads the base from the cache
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    data = BioHiCLModelCardData.from_biohicl_config(
        BioHiCL.from_pretrained(adapter, base_model_path=base).config, "Tiny", repo_id="org/tiny-adapter"
    )
    assert (data.kind, data.pooling, data.query_prompt) == ("adapter", "cls", "query: ")
    biohicl_snippet, peft_snippet = python_snippets(render_model_card(data))
    ns = _run(biohicl_snippet, {"org/tiny-adapter": str(adapter)})
    np.testing.assert_allclose(ns["queries"], query, atol=1e-6)
    ns = _run(peft_snippet, {"org/tiny-adapter": str(adapter), "org/tiny-bert": str(base)})
    np.testing.assert_allclose(ns["embeddings"].numpy(), query, atol=1e-5)


def test_harness_record_keeps_reported_metrics_and_splits():
    """The record `biohicl evaluate --output` writes: tasks with split + metrics, and a summary of reported ones."""
    record = {
        "format": 1,
        "model": {"id": "runs/minilm", "revision": None},
        "tasks": {
            "scifact": {
                "task": "scifact",
                "split": "train",
                "main_metric": "ndcg@10",
                "metrics": {"ndcg@1": 0.5, "ndcg@10": 0.62, "recall@100": 0.91, "mrr@10": 0.58},
                "num_queries": 809,
                "wall_time_s": 30.2,
            },
            "biosses": {"task": "biosses", "split": "all", "metrics": {"spearman": 0.83, "pearson": 0.84}},
        },
        "summary": {"scifact/ndcg@10": 0.62, "scifact/recall@100": 0.91, "biosses/spearman": 0.83},
        "wall_time_s": 40.0,
    }
    assert flatten_results(record) == {
        ("scifact", "ndcg@10"): 0.62,
        ("scifact", "recall@100"): 0.91,
        ("biosses", "spearman"): 0.83,
    }
    data = BioHiCLModelCardData(model_name="M", base_model="org/base")
    rows = data.add_eval_results(record, base={"tasks": {"biosses": {"split": "all", "metrics": {"spearman": 0.8}}}})
    assert [(r.task, r.metric, r.split, r.base_value) for r in rows] == [
        ("scifact", "ndcg@10", "train", None),
        ("scifact", "recall@100", "train", None),
        ("biosses", "spearman", "all", 0.8),
    ]
    assert "| SciFact (train) | nDCG@10 | – | 0.6200 | – |" in render_model_card(data)
    # all_metrics (the study's cards): every metric of each task, its split kept, the base matched per metric
    data = BioHiCLModelCardData(model_name="M", base_model="org/base")
    base = {"tasks": {"biosses": {"split": "all", "metrics": {"spearman": 0.8, "pearson": 0.7}}}, "summary": {}}
    rows = data.add_eval_results(record, base=base, all_metrics=True)
    assert [(r.task, r.metric, r.split, r.base_value) for r in rows if r.task == "biosses"] == [
        ("biosses", "spearman", "all", 0.8),
        ("biosses", "pearson", "all", 0.7),
    ]
    scifact = [r for r in rows if r.task == "scifact"]
    assert {r.metric for r in scifact} == {"ndcg@1", "ndcg@10", "recall@100", "mrr@10"}  # not only the summary's
    assert {r.split for r in scifact} == {"train"}


def test_a_base_value_of_another_split_is_not_shown_beside_the_tuned_one():
    tuned = {"tasks": {"scifact": {"split": "train", "metrics": {"ndcg@10": 0.7}}, "biosses": {"spearman": 0.84}}}
    base = {"tasks": {"scifact": {"split": "test", "metrics": {"ndcg@10": 0.6}}, "biosses": {"spearman": 0.81}}}
    data = BioHiCLModelCardData(model_name="M", base_model="org/base")
    rows = data.add_eval_results(tuned, base=base)
    assert [(r.task, r.split, r.value, r.base_value, r.delta) for r in rows] == [
        ("scifact", "train", 0.7, None, None),  # base on SciFact test: no Δ against train
        ("biosses", "test", 0.84, 0.81, pytest.approx(0.03)),  # neither names a split: both the default
    ]
    assert "| SciFact (train) | nDCG@10 | – | 0.7000 | – |" in render_model_card(data)
    base["tasks"]["scifact"]["split"] = "train"
    assert data.add_eval_results(tuned, base=base)[0].base_value == 0.6


def test_pubmedqa_tasks_keep_their_own_table_rows_and_stay_out_of_model_index():
    # pubmedqa and pubmedqa-context both read qiaojin/PubMedQA, whose configs have a `train` split only (pqa_labeled:
    # all 1,000 labelled questions); biohicl scores the 500 official test questions, no config and split of it, so
    # model-index, which files a result by dataset, config and split, has no entry that says what was measured
    data = BioHiCLModelCardData(model_name="BioHiCL-MiniLM", base_model="sentence-transformers/all-MiniLM-L6-v2")
    data.add_eval_results(
        {"pubmedqa": {"recall@1": 0.871, "ndcg@10": 0.91}, "pubmedqa-context": {"recall@1": 0.95, "ndcg@10": 0.97}}
    )
    text = render_model_card(data)
    assert "model-index" not in ModelCard(text).data.to_dict() and data.hub_eval_results() == []
    assert "| PubMedQA (question → long answer) (test) | Recall@1 | – | 0.8710 | – |" in text
    assert "| PubMedQA (question → context) (test) | nDCG@10 | – | 0.9700 | – |" in text


def test_model_index_lists_only_held_out_results():
    # dev rows (model selection) and the SimE-SimL agreement on the training data were published as evaluation
    # results, the agreement one as a retrieval task on a dataset id that is not on the Hub; they stay in the table
    record = {
        "tasks": {
            "scifact": {"split": "test", "metrics": {"ndcg@10": 0.7}},
            "biosses": {"split": "all", "metrics": {"spearman": 0.8}},
            "pubmedqa-dev": {"split": "dev", "metrics": {"recall@1": 0.6}},
            "siml-agreement": {"split": "test", "metrics": {"spearman": 0.5}},
            "nfcorpus": {"split": "dev", "metrics": {"ndcg@10": 0.3}},
        }
    }
    data = BioHiCLModelCardData(model_name="M", base_model="org/base")
    data.add_eval_results(record)
    assert [(r.task, r.held_out) for r in data.eval_results] == [
        ("scifact", True),
        ("biosses", True),
        ("pubmedqa-dev", False),
        ("siml-agreement", False),
        ("nfcorpus", False),
    ]
    text = render_model_card(data)
    _, results = model_index_to_eval_results(ModelCard(text).data.to_dict()["model-index"])
    # the Hub datasets' own config and split (BIOSSES's 100 pairs are mteb/biosses-sts's test), not biohicl's names
    assert sorted((r.dataset_type, r.dataset_config, r.dataset_split) for r in results) == [
        ("mteb/biosses-sts", "default", "test"),
        ("mteb/scifact", "default", "test"),
    ]
    assert "| PubMedQA dev (question → long answer; model selection) | Recall@1 | – | 0.6000 | – |" in text  # dev once
    assert "| siml-agreement (test) | Spearman |" in text and "| NFCorpus (dev) | nDCG@10 |" in text
    only_dev = BioHiCLModelCardData(model_name="M", base_model="org/base")
    only_dev.add_eval_results({"tasks": {"pubmedqa-dev": {"split": "dev", "metrics": {"recall@1": 0.6}}}})
    assert "model-index" not in ModelCard(render_model_card(only_dev)).data.to_dict()


def test_a_failed_card_write_keeps_the_previous_card(tmp_path, monkeypatch):
    import errno
    import os

    from biohicl.errors import BioHiCLError

    (tmp_path / "README.md").write_text("previous card")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(BioHiCLError, match=r"README\.md: no space left on device"):
        save_model_card(_card(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]
    assert (tmp_path / "README.md").read_text() == "previous card"


def _run_dir(tmp_path, selection: dict) -> Path:
    """A run folder as training leaves it: config, training arguments and a summary with a selection record."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    config = {"base_model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean", "max_length": 256}
    args = {
        "lambda_con": 0.1,
        "distill_weight": 2.0,
        "lr_scheduler_type": "constant_with_warmup",
        "eval_tasks": ["pubmedqa:dev", "siml-agreement"],
        "selection_metrics": ["siml-agreement_spearman"],
        "selection_guard": ["pubmedqa-dev_recall@1"],
    }
    summary = {"data": {"documents": 6665}, "global_step": 209, "selection": selection}
    for name, values in (("biohicl_config", config), ("biohicl_training_args", args), ("training_summary", summary)):
        (run / f"{name}.json").write_text(json.dumps(values), encoding="utf-8")
    return run


def test_card_says_which_step_dev_selection_kept_and_which_terms_beyond_the_paper_trained(tmp_path):
    selection = {
        "loaded_best": True,
        "selected_base": False,
        "selection_metric": "eval_dev_score",
        "step0_metric": 0.3264983,
        "best_step": 209,
        "best_metric": 0.5487455,
        "evaluations": [[0, 0.3264983], [70, 0.3264983], [140, 0.3264983], [209, 0.5487455]],
    }
    data = BioHiCLModelCardData.from_run_dir(_run_dir(tmp_path, selection), "BioHiCL-MiniLM")
    text = render_model_card(data)
    assert "at steps 0, 70, 140, 209" in text
    assert "the mean of `siml-agreement_spearman`" in text
    assert "where the mean of `pubmedqa-dev_recall@1` stayed at or above step 0's" in text
    assert "Kept: **step 209** (score 0.5487; step 0: 0.3265)." in text
    assert "| `distill_weight` | 2.0 |" in text and "| `lr_scheduler_type` | constant_with_warmup |" in text
    assert "weight for weight" not in text
    # a guard on each metric, with a tolerance, is described as such
    run = _run_dir(tmp_path / "each", selection)
    args = json.loads((run / "biohicl_training_args.json").read_text())
    args.update(selection_guard_mode="each", selection_guard_tolerance=0.005)
    (run / "biohicl_training_args.json").write_text(json.dumps(args), encoding="utf-8")
    text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "BioHiCL-MiniLM"))
    assert "where each of `pubmedqa-dev_recall@1` stayed at or above step 0's less 0.005." in text


def test_card_says_so_when_dev_selection_kept_the_base(tmp_path):
    selection = {
        "loaded_best": True,
        "selected_base": True,
        "step0_metric": 0.94,
        "best_step": 0,
        "best_metric": 0.94,
        "evaluations": [[0, 0.94], [30, 0.936], [60, 0.932]],
    }
    data = BioHiCLModelCardData.from_run_dir(_run_dir(tmp_path, selection), "BioHiCL-MiniLM")
    text = render_model_card(data)
    assert "No evaluated step beat step 0, so this model is its base, weight for weight** (score 0.9400)." in text
    assert "Kept: **step" not in text
    # a run that kept its last step without selecting says nothing about selection
    data = BioHiCLModelCardData.from_run_dir(_run_dir(tmp_path / "last", {"loaded_best": False}), "BioHiCL-MiniLM")
    assert "Model selection" not in render_model_card(data)


def test_card_of_a_soup_names_its_adapters_and_a_bare_folder_says_it_has_no_training_record(tmp_path):
    soup = tmp_path / "soup"
    soup.mkdir()
    config = {"base_model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean", "max_length": 256}
    (soup / "biohicl_config.json").write_text(json.dumps(config), encoding="utf-8")
    text = render_model_card(BioHiCLModelCardData.from_run_dir(soup, "BioHiCL-MiniLM-soup"))
    assert "## Training\n\nNo training record was found with this checkpoint.\n" in text
    record = {"adapters": ["/somewhere/runs/x/seed3", "runs/x/seed4"], "weights": [0.75, 0.25], "rank": 16}
    (soup / "soup.json").write_text(json.dumps(record), encoding="utf-8")
    text = render_model_card(BioHiCLModelCardData.from_run_dir(soup, "BioHiCL-MiniLM-soup"))
    assert "average of 2 BioHiCL LoRA adapters of one recipe (`x/seed3`, `x/seed4`; weights 0.75, 0.25)" in text
    assert "one rank-16 adapter" in text and "/somewhere" not in text
    assert "No training record" not in text


def test_a_resumed_runs_training_time_says_it_covers_the_steps_since_resuming(tmp_path):
    run = _run_dir(tmp_path, {"loaded_best": False})
    summary = json.loads((run / "training_summary.json").read_text())
    (run / "training_summary.json").write_text(json.dumps({**summary, "runtime_s": 812.4, "resumed_at_step": 140}))
    assert BioHiCLModelCardData.from_run_dir(run, "M").training_time == "812 s wall time (since resuming at step 140)"
    (run / "training_summary.json").write_text(json.dumps({**summary, "runtime_s": 812.4, "resumed_at_step": None}))
    assert BioHiCLModelCardData.from_run_dir(run, "M").training_time == "812 s wall time"


def test_card_lists_every_dev_metric_the_selection_used_at_step_0_and_the_kept_step(tmp_path):
    # the card's dev rows came only from the evaluation record (pubmedqa-dev, siml-agreement): the SciFact-train
    # nDCG@10 the selection guarded on, recorded in dev_evaluations.json only, was missing
    selection = {"loaded_best": True, "best_step": 140, "best_metric": 0.52, "step0_metric": 0.33}
    selection["evaluations"] = [[0, 0.33], [70, 0.33], [140, 0.52]]
    run = _run_dir(tmp_path, selection)
    args = json.loads((run / "biohicl_training_args.json").read_text())
    args.update(
        eval_tasks=["pubmedqa:dev", "siml-agreement", "scifact:train"],
        selection_guard=["pubmedqa-dev_recall@1", "eval_scifact_ndcg@10"],
    )
    (run / "biohicl_training_args.json").write_text(json.dumps(args), encoding="utf-8")
    metrics = ("siml-agreement_spearman", "pubmedqa-dev_recall@1", "scifact_ndcg@10", "scifact_mrr@10")
    rows = [
        {"step": step, "eval_dev_score": values[0], **{f"eval_{m}": v for m, v in zip(metrics, values, strict=True)}}
        for step, values in (
            (0, (0.33, 0.92, 0.6602, 0.6)),
            (70, (0.33, 0.9, 0.6, 0.5)),
            (140, (0.52, 0.916, 0.6585, 0.7)),
        )
    ]
    (run / "dev_evaluations.json").write_text(json.dumps(rows), encoding="utf-8")
    data = BioHiCLModelCardData.from_run_dir(run, "BioHiCL-MiniLM")
    assert [(r["metric"], r["role"], r["base"], r["kept"]) for r in data.selection["dev_metrics"]] == [
        ("siml-agreement_spearman", "score", 0.33, 0.52),
        ("pubmedqa-dev_recall@1", "guard", 0.92, 0.916),
        ("scifact_ndcg@10", "guard", 0.6602, 0.6585),
    ]
    text = render_model_card(data)
    assert "| Dev task | Metric | used in | step 0 (base) | step 140 (kept) | Δ |" in text
    assert "| siml-agreement | Spearman (`siml-agreement_spearman`) | score | 0.3300 | 0.5200 | +0.1900 |" in text
    assert "| SciFact (train) | nDCG@10 (`scifact_ndcg@10`) | guard | 0.6602 | 0.6585 | -0.0017 |" in text
    assert "scifact_mrr@10" not in text  # evaluated, but not used by the selection
    # the card data round-trips through card_data.json with its dev rows
    data.save(tmp_path / "card_data.json")
    assert BioHiCLModelCardData.load(tmp_path / "card_data.json").selection == data.selection
    # a run without dev_evaluations.json keeps the selection paragraph and shows no dev table
    (run / "dev_evaluations.json").unlink()
    text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "BioHiCL-MiniLM"))
    assert "Kept: **step 140**" in text and "| Dev task |" not in text


def test_dev_rows_name_each_split_once_as_the_evaluation_keys_it():
    # the PubMedQA dev rows of the guarded study were labelled "PubMedQA dev (...; model selection) (dev)"
    import yaml

    from biohicl.hub.card_selection import selection_of

    root = Path(__file__).resolve().parents[1]
    run = root / "docs/results/study_minilm_cpu_guarded_256/one_pass_distill2_seed5"
    summary = json.loads((run / "training_summary.json").read_text(encoding="utf-8"))
    evaluations = json.loads((run / "dev_evaluations.json").read_text(encoding="utf-8"))
    args = yaml.safe_load((root / "configs/study_minilm_cpu_guarded_256.yaml").read_text(encoding="utf-8"))["training"]
    rows = {r["metric"]: r["task"] for r in selection_of(summary, args, evaluations)["dev_metrics"]}
    assert rows == {
        "siml-agreement_spearman": "siml-agreement",
        "pubmedqa-dev_recall@1": "PubMedQA dev (question → long answer; model selection)",
        "pubmedqa-dev_recall@5": "PubMedQA dev (question → long answer; model selection)",
        "scifact_ndcg@10": "SciFact (train)",
    }
    # a dataset task's split is read past its #mesh= file, as the evaluation reads it
    args["eval_tasks"] = ["pubmedqa:dev", "siml-agreement@runs/study/dataset#mesh=trees/icd10MeshTree.txt:dev"]
    rows = {r["metric"]: r["task"] for r in selection_of(summary, args, evaluations)["dev_metrics"]}
    assert rows["siml-agreement_spearman"] == "siml-agreement (dev)" and rows["scifact_ndcg@10"] == "SciFact"
    assert selection_of(summary, args)["dev_metrics"] == []  # no dev_evaluations.json rows


#: peft before 0.13 passes `use_auth_token` to huggingface_hub's downloads, which huggingface_hub 1.x refuses, so it
#: cannot load an adapter by repo id at biohicl's floors (`make test-min`: peft 0.12); biohicl itself hands peft folders
PEFT_LOADS_REPO_IDS = "use_auth_token=" not in inspect.getsource(__import__("peft").PeftModel.from_pretrained)


@pytest.mark.skipif(not PEFT_LOADS_REPO_IDS, reason="this peft cannot download by repo id with this huggingface_hub")
def test_adapter_card_peft_snippet_runs_offline_from_a_cache_without_no_exist(tiny_models, tmp_path, monkeypatch):
    """After `hf download` (snapshot_download), the cache has the adapter repo's files and no `.no_exist/config.json`
    marker: `AutoTokenizer.from_pretrained(adapter_repo)` without a config looked for config.json and raised OSError
    offline. The card's snippet, unchanged (repo ids, not folders), must load from such a cache."""
    from huggingface_hub import constants

    base, adapter, _, query = tiny_models
    cache = tmp_path / "hub"
    add_to_hub_cache(cache, "org/tiny-bert", base, "a" * 40)
    add_to_hub_cache(cache, "org/tiny-adapter", adapter, "b" * 40)
    assert not (adapter / "config.json").exists() and not list(cache.rglob(".no_exist"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    data = BioHiCLModelCardData.from_biohicl_config(
        BioHiCL.from_pretrained(adapter, base_model_path=base).config, "Tiny", repo_id="org/tiny-adapter"
    )
    _, peft_snippet = python_snippets(render_model_card(data))
    ns = _run(peft_snippet, {})
    np.testing.assert_allclose(ns["embeddings"].numpy(), query, atol=1e-5)
    assert not list(cache.rglob(".no_exist/*/config.json"))  # it never needed one


def test_a_task_scored_on_its_first_queries_is_labelled_so_kept_out_of_model_index_and_gets_no_delta():
    # a study run with limit_queries (quick runs) writes its card with add_eval_results: 50 of 500 PubMedQA questions
    # were filed as the test result, with a Δ against a base scored on all 500
    def record(limit, queries, recall):
        return {
            "settings": {"limit_queries": limit, "max_length": 64},
            "tasks": {
                "biosses": {"split": "all", "metrics": {"spearman": 0.8167}, "num_queries": 100},
                "pubmedqa": {"split": "test", "metrics": {"recall@1": recall}, "num_queries": queries},
                "scifact": {"split": "test", "metrics": {"ndcg@10": 0.6}, "num_queries": 30},  # < 50: all of it
            },
        }

    data = BioHiCLModelCardData(model_name="M", base_model="org/base")
    rows = data.add_eval_results(record(50, 50, 0.82), base=record(None, 500, 0.862))
    text = render_model_card(data)
    assert "| PubMedQA (question → long answer) (test) (first 50 queries) | Recall@1 | – | 0.8200 | – |" in text
    assert "| BIOSSES (all) | Spearman | 0.8167 | 0.8167 | +0.0000 |" in text
    assert {r.dataset_name for r in data.hub_eval_results()} == {"BIOSSES", "SciFact"}
    assert [(r.task, r.limit_queries, r.base_value) for r in rows] == [
        ("biosses", None, 0.8167),  # BIOSSES scores its 100 pairs whatever the limit
        ("pubmedqa", 50, None),
        ("scifact", None, 0.6),  # 30 queries, under the cap: the whole task
    ]
    # prompts recorded on both sides and differing: no base value either
    tuned, base = record(None, 500, 0.87), record(None, 500, 0.862)
    tuned["settings"]["query_prompt"], base["settings"]["query_prompt"] = "query: ", ""
    data = BioHiCLModelCardData(model_name="M", base_model="org/base")
    assert [r.base_value for r in data.add_eval_results(tuned, base=base)] == [None, None, None]


def _run_on(tmp_path: Path, dataset_path: str, data: dict) -> Path:
    """A run folder as training leaves it, its arguments naming ``dataset_path`` and its summary the ``data`` counts."""
    run = tmp_path / "runs" / "mine"
    run.mkdir(parents=True)
    config = {"base_model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean", "max_length": 64}
    args = {"lambda_con": 0.1, "dataset_path": dataset_path, "output_dir": str(run)}
    summary = {"data": data, "global_step": 4}
    for name, values in (("biohicl_config", config), ("biohicl_training_args", args), ("training_summary", summary)):
        (run / f"{name}.json").write_text(json.dumps(values), encoding="utf-8")
    return run


@pytest.fixture
def own_corpus_run(tmp_path, mesh, monkeypatch):
    """A run trained on a dataset built by `biohicl build-dataset` from the user's own JSON lines (24 abstracts, one
    of them a PubMedQA test PMID of this data directory), the review's case."""
    from conftest import synthetic_documents

    from biohicl.data.build import build_dataset_from_files
    from biohicl.data.splits import DevSplit

    data_dir = tmp_path / "data"
    (data_dir / "pubmedqa").mkdir(parents=True)
    (data_dir / "pubmedqa" / "test_ground_truth.json").write_text(json.dumps({"1003": "yes"}))
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    docs = synthetic_documents(per_topic=6)  # 24 abstracts, PMIDs 1000-1023
    lines = [json.dumps({k: v for k, v in d.items() if k != "split"}) for d in docs]
    Path("mine.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    dev = DevSplit(fraction=0.2, pubmedqa_size=0)
    build_dataset_from_files([("auto", ["mine.jsonl"])], "ds", mesh, progress=False, top_k=3, dev_split=dev)
    kept = [d["pmid"] for d in docs if d["pmid"] != "1003"]
    n_dev = sum(dev.split_of(p, "train", set()) == "dev" for p in kept)
    counts = {"documents": 23 - n_dev, "documents_in_dataset": 23, "splits": ["train"], "mined_pairs": 60}
    counts |= {"labels_without_tree_position": 0, "label_kinds": {"indexing": 23 - n_dev}}
    return _run_on(tmp_path, "ds", counts), n_dev


def test_card_of_a_run_on_a_built_dataset_says_its_source_counts_labels_and_decontamination(own_corpus_run, tmp_path):
    # the card said nothing about the user's data: a table of raw keys (`documents_in_dataset`), no source, no label
    # kind, no word of the documents removed as evaluation test data
    run, n_dev = own_corpus_run
    text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "minilm-mine"))
    training = text.split("## Training\n", 1)[1].split("## Evaluation", 1)[0]
    assert "Trained on the `train` split of the MeSH-pair dataset `ds`, built with `biohicl build-dataset`" in training
    assert "(MeSH 2024): 23 documents and 60 pairs mined by SimL (top 3 per document, all splits)." in training
    row = (
        f"| the builder's own MeSH-labelled abstracts (JSON lines) (`jsonl`) | MeSH indexing | {23 - n_dev} | {n_dev} |"
    )
    assert row + " 0 | as its provider states (not recorded by biohicl) |" in training
    # the builder's own abstracts: their labels are said to be the builder's, not NLM's indexing
    assert f"Labels: MeSH indexing labels as supplied with the abstracts ({23 - n_dev} training documents)." in training
    assert f"Dev split: {n_dev} documents (0 PubMedQA dev items and {n_dev} held-out documents, seed 0)" in training
    assert n_dev > 1
    assert "Decontamination: 1 document removed as evaluation test data (PubMedQA test 1)" in training
    assert "not checked (not found when the dataset was built): SciFact, BIOSSES, NFCorpus" in training
    assert f"| training documents | {23 - n_dev} |" in training
    assert "| documents in the dataset (all splits) | 23 |" in training and "documents_in_dataset" not in training
    assert "| MeSH labels with no tree position (not in SimL, e.g. Male) | 0 |" in training
    assert str(tmp_path) not in text and "/runs/" not in text
    assert ModelCard(text).data.to_dict().get("datasets") is None  # no manifest names a Hub id for `ds`


def test_card_names_the_hub_dataset_a_release_manifest_gives_the_runs_data(own_corpus_run, tmp_path):
    run, _ = own_corpus_run
    (tmp_path / "hub" / "datasets").mkdir(parents=True)
    (tmp_path / "hub" / "datasets" / "mine.yaml").write_text("repo_id: me/my-pairs\nrepo_type: dataset\nsource: ds\n")
    text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "minilm-mine"))
    assert ModelCard(text).data.to_dict()["datasets"] == ["me/my-pairs"]
    assert "published as [`me/my-pairs`](https://huggingface.co/datasets/me/my-pairs)" in text


def test_the_committed_minilm_release_names_its_dataset_on_the_hub():
    from biohicl.hub.card_data_source import HubDataset, dataset_hub_link

    # hub/models/biohicl-minilm.yaml's run trained on configs/biohicl_minilm.yaml's dataset_path, which
    # hub/datasets/mesh-pairs.yaml publishes: its card's YAML says `datasets: [biohicl/mesh-pairs]`
    repo = Path(__file__).resolve().parents[1]
    config = (repo / "configs" / "biohicl_minilm.yaml").read_text()
    assert "\ndataset_path: runs/study/dataset\n" in config
    assert dataset_hub_link(repo / "runs/study/dataset", root=repo) == HubDataset("biohicl/mesh-pairs")


def test_a_damaged_release_manifest_beside_the_datasets_is_passed_over(tmp_path, monkeypatch):
    from biohicl.hub.card_data_source import HubDataset, dataset_hub_link

    monkeypatch.chdir(tmp_path)
    (tmp_path / "hub" / "datasets").mkdir(parents=True)
    (tmp_path / "hub" / "datasets" / "a-broken.yaml").write_bytes(b"\xff\xfe repo_id: x\n")  # not UTF-8, read first
    (tmp_path / "hub" / "datasets" / "b-mine.yaml").write_text("repo_id: me/my-pairs\nsource: ds\n", encoding="utf-8")
    assert dataset_hub_link("ds", root=tmp_path) == HubDataset("me/my-pairs")
    # a manifest publish refuses (a key given twice) names no dataset either: PyYAML alone kept the last repo_id
    (tmp_path / "hub" / "datasets" / "b-mine.yaml").write_text(
        "repo_id: me/old\nsource: ds\nrepo_id: me/my-pairs\n", encoding="utf-8"
    )
    assert dataset_hub_link("ds", root=tmp_path) is None


@pytest.mark.parametrize(
    "damage",
    [
        "repo_id: me/x\nsource: ds\nrevision: !!timestamp 2001-02-30\n",  # a ValueError from PyYAML's timestamp
        "repo_id: me/x\nsource: " + "[" * 5000 + "]" * 5000 + "\n",  # a RecursionError from PyYAML's composer
        "repo_id: me/x\nsource: ds\nnotes: !!binary not base64 @\n",  # a yaml.YAMLError
    ],
)
def test_a_release_manifest_yaml_cannot_build_beside_the_datasets_is_passed_over(tmp_path, monkeypatch, damage):
    from biohicl.hub.card_data_source import HubDataset, dataset_hub_link

    monkeypatch.chdir(tmp_path)
    (tmp_path / "hub" / "datasets").mkdir(parents=True)
    (tmp_path / "hub" / "datasets" / "a-broken.yaml").write_text(damage, encoding="utf-8")  # read first
    (tmp_path / "hub" / "datasets" / "b-mine.yaml").write_text("repo_id: me/my-pairs\nsource: ds\n", encoding="utf-8")
    assert dataset_hub_link("ds", root=tmp_path) == HubDataset("me/my-pairs")


def test_card_of_a_run_on_a_documents_file_or_a_missing_folder_names_it_only(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "my.jsonl").write_text("{}\n")
    counts = {"documents": 40, "label_kinds": {"mentions": 40}}
    run = _run_on(tmp_path, str(tmp_path / "corpus" / "my.jsonl"), counts)
    text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "m"))
    assert "Trained on the documents file `my.jsonl`" in text
    assert "biohicl removed no evaluation test documents from it and held out no dev split" in text
    assert "Labels: entity-mention labels as supplied with the abstracts (40 training documents)." in text
    assert str(tmp_path) not in text
    run = _run_on(tmp_path / "gone", str(tmp_path / "elsewhere" / "built"), {"documents": 40})
    with caplog.at_level(logging.WARNING, logger="biohicl.hub.card_data_source"):
        text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "m"))
    assert "Trained on the `train` split of the MeSH-pair dataset `built`; the folder was not found" in text
    assert str(tmp_path) not in text
    # the card leaves its data out: said once, with where it looked (a relative path is read from the cwd)
    assert [r.getMessage() for r in caplog.records if "is not found from" in r.getMessage()] == [
        f"the run's dataset {tmp_path / 'elsewhere' / 'built'} is not found from {tmp_path}, so the card leaves out "
        "its sources, splits and decontamination; publish from the folder the run was trained from"
    ]


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A saved LoRA run over a tiny BERT whose Hub id is ``org/tiny-bert`` (publish refuses a local base)."""
    root = tmp_path_factory.mktemp("license")
    model = BioHiCL.from_base(str(build_tiny_bert(root / "base")), hub_id="org/tiny-bert", max_length=32)
    model.add_lora(r=2, target_modules=["query", "value"], verbose=False)
    model.save_pretrained(root / "run")
    return root / "run"


def test_license_rule_explicit_else_registered_else_other_with_a_warning(saved_run, tmp_path, caplog):
    from biohicl.hub.publish import build_model_repo_folder

    run = saved_run
    # no --license: the card claimed apache-2.0 for weights trained on data whose terms the dataset card calls other
    with caplog.at_level("WARNING", logger="biohicl"):
        folder = build_model_repo_folder(run, tmp_path / "a", repo_id="me/mine")
    assert ModelCard((folder / "README.md").read_text()).data.license == "other"
    assert [r.message for r in caplog.records if "--license" in r.getMessage()] != []
    caplog.clear()
    folder = build_model_repo_folder(run, tmp_path / "b", repo_id="me/mine", license="cc-by-4.0")
    assert ModelCard((folder / "README.md").read_text()).data.license == "cc-by-4.0"
    # a registered model's license is its registry entry's (BioHiCL-MiniLM: apache-2.0, its base's)
    with caplog.at_level("WARNING", logger="biohicl"):
        folder = build_model_repo_folder(run, tmp_path / "c", repo_id="biohicl/BioHiCL-MiniLM-L6")
    assert ModelCard((folder / "README.md").read_text()).data.license == "apache-2.0"
    assert not [r for r in caplog.records if "--license" in r.getMessage()]


def test_a_full_finetunes_card_shows_no_lora_rows():
    """--full_finetune builds no LoRA, so the LoRA values its arguments hold (defaults, or values the checks let
    through there) are not hyperparameters of the run; a LoRA run keeps them."""
    from biohicl.hub.model_card import trained_hyperparameters

    lora = {"lora_r": 0, "lora_alpha": 0, "lora_dropout": 1.0, "lora_target_modules": ["query"]}
    args = {"full_finetune": True, **lora, "learning_rate": 2e-5}
    assert trained_hyperparameters(args, None, None) == {"full_finetune": True, "learning_rate": 2e-5}
    args = {"full_finetune": False, **lora, "learning_rate": 2e-4}
    assert trained_hyperparameters(args, None, None) == {"full_finetune": False, **lora, "learning_rate": 2e-4}

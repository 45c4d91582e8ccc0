"""``biohicl reproduce``: config validation, the seed statistics and noise rule, and a whole tiny study.

The tiny study uses a random 2-layer BERT (``tiny_bert_dir``), 24 real PubMedQA abstracts and BIOSSES; every
variant trains for 2 steps. It checks the table has every row, the model cards carry the results, a second call
skips every finished run, and a run interrupted after a checkpoint resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from biohicl.errors import ConfigError, DataError
from biohicl.study import DEFAULT_VARIANTS, ReproduceConfig, plan_study, prepare_dataset, run_study
from biohicl.study import execute as execute_module
from biohicl.study import locks as locks_module
from biohicl.study.config import training_arguments
from biohicl.study.dev_pick import pick_variant, read_training_summaries
from biohicl.study.execute import resolve_eval_device
from biohicl.study.plan import missing_tasks
from biohicl.study.report import _dev_pick_table, markdown_results
from biohicl.study.stats import aggregate, aggregate_row, compare, mean_std, pooled_std, reaches
from tests.conftest import tiny_study_values


def _config(tmp_path, tiny_bert_dir, **overrides) -> ReproduceConfig:
    values = tiny_study_values(
        str(tmp_path / "study"), str(tmp_path / "dataset"), model=str(tiny_bert_dir), hub_id="test-org/tiny-bert"
    )
    values.update(overrides)
    return ReproduceConfig.from_dict(values)


# ------------------------------------------------------------------------------------------------ config
def test_config_rejects_unknown_and_reserved_fields(tmp_path, tiny_bert_dir):
    with pytest.raises(ConfigError, match=r"unknown field.*bogus"):
        _config(tmp_path, tiny_bert_dir, bogus=1)
    with pytest.raises(ConfigError, match=r"training: seed.*set by the study"):
        _config(tmp_path, tiny_bert_dir, training={"seed": 3})
    with pytest.raises(ConfigError, match=r"seeds_per_variant: unknown variant.*nope"):
        _config(tmp_path, tiny_bert_dir, seeds_per_variant={"nope": [0]})
    # values of the wrong type are refused when the config is read, not after the study trained
    for field, value, message in (
        ("seeds", 3, r"seeds: expected a list of integers, got 3$"),
        ("seeds", [True], r"seeds: expected a list of integers, got \[True\]$"),
        ("seeds_per_variant", {"full": 1}, r"seeds_per_variant: expected a mapping of strings to lists of integers"),
        ("tasks", "biosses", r"tasks: expected a list of strings, got 'biosses'$"),
        ("targets", {"biosses/spearman": "3 points"}, r"targets: expected a mapping of strings to numbers, got"),
        ("eval_batch_size", 2.5, r"eval_batch_size: expected an integer, got 2.5$"),
        ("dataset", {"top_k": "10"}, r"dataset\.top_k: expected an integer, got '10'$"),
        ("limit_queries", 0, r"limit_queries: must be a whole number of at least 1 \(the first N queries\), got 0$"),
        ("limit_queries", -1, r"limit_queries: must be a whole number of at least 1 \(the first N queries\), got -1"),
    ):
        with pytest.raises(ConfigError, match=message):
            _config(tmp_path, tiny_bert_dir, **{field: value})
    with pytest.raises(ConfigError, match=r"models\[tiny\]\.seeds: expected a list of integers or null, got '0,1'$"):
        _config(tmp_path, tiny_bert_dir, models=[{"name": "tiny", "model": "m", "seeds": "0,1"}])
    assert _config(tmp_path, tiny_bert_dir, targets={"biosses/spearman": 0}).targets == {"biosses/spearman": 0}
    config = _config(tmp_path, tiny_bert_dir)
    with pytest.raises(ConfigError, match=r"--only: unknown variant.*no_such"):
        config.select(only=["no_such"])


def test_eval_device_is_checked_and_auto_means_the_gpu_when_there_is_one(tmp_path, tiny_bert_dir):
    import torch

    for bad in ("tpu", "cuda:x", "cpu:0", ""):
        with pytest.raises(ConfigError, match=r"eval_device: .* is not auto, cpu, cuda or cuda:N"):
            _config(tmp_path, tiny_bert_dir, eval_device=bad)
    assert _config(tmp_path, tiny_bert_dir, eval_device="cuda:1").eval_device == "cuda:1"  # valid name, checked later
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_eval_device("auto").type == expected
    assert resolve_eval_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"eval_device: 'cuda' asked for, but CUDA sees no GPU"):
            resolve_eval_device("cuda")


def test_yaml_config_and_selection(tmp_path, tiny_bert_dir):
    path = tmp_path / "study.yaml"
    path.write_text(
        f"output_dir: {tmp_path / 'out'}\nmodels:\n  - name: tiny\n    model: {tiny_bert_dir}\n"
        "seeds: [0, 1, 2]\nseeds_per_variant:\n  no_mse: [0]\n"
        "tasks_per_variant:\n  no_mse: [biosses]\n",
        encoding="utf-8",
    )
    config = ReproduceConfig.from_yaml(path)
    assert list(config.variants) == list(DEFAULT_VARIANTS)
    model = config.models[0]
    assert config.run_seeds(model, "full") == [0, 1, 2] and config.run_seeds(model, "no_mse") == [0]
    assert config.model_tasks(model, "no_mse") == ["biosses"]
    assert config.model_tasks(model) == ["biosses", "pubmedqa", "scifact:train"]
    picked = config.select(only=["full", "no_mse"], seeds=[5])
    assert list(picked.variants) == ["full", "no_mse"]
    assert picked.run_seeds(picked.models[0], "no_mse") == [5]
    runs = plan_study(picked)
    assert [(r.variant, r.seed, r.status) for r in runs] == [
        ("base", None, "evaluate"), ("full", 5, "train"), ("no_mse", 5, "train"),
    ]  # fmt: skip


def test_training_arguments_merge_order(tmp_path, tiny_bert_dir):
    config = _config(tmp_path, tiny_bert_dir)
    model = config.models[0]
    args = training_arguments(config, model, "full_finetune", 7, tmp_path / "d", tmp_path / "r")
    assert args.full_finetune is True and args.learning_rate == 2e-5  # the variant beats the study's 5e-3
    assert args.seed == 7 and args.max_steps == 2 and args.max_length == 24
    assert args.base_model_hub_id == "test-org/tiny-bert" and args.resume_from_checkpoint == "last"
    assert args.eval_cache_dir == str(Path(config.output_dir) / "eval_cache")  # one per study: runs share step 0
    args = training_arguments(config, model, "no_ancestors", 0, tmp_path / "d", tmp_path / "r")
    assert args.use_ancestors is False and args.learning_rate == 5e-3
    config.training["eval_cache_dir"] = str(tmp_path / "elsewhere")
    assert training_arguments(config, model, "full", 0, tmp_path / "d", tmp_path / "r").eval_cache_dir == str(
        tmp_path / "elsewhere"
    )


# ------------------------------------------------------------------------------------------------ statistics
def test_mean_std_and_pooled_std_by_hand():
    mean, std = mean_std([0.80, 0.82, 0.84])
    assert mean == pytest.approx(0.82) and std == pytest.approx(0.02)
    assert mean_std([0.5]) == (0.5, None)
    # pooled over (n=3, s=0.02) and (n=2, s=0.04): sqrt((2·0.0004 + 1·0.0016) / 3) = sqrt(0.0008)
    assert pooled_std([(3, 0.02), (2, 0.04)]) == pytest.approx(math.sqrt(0.0008))
    assert pooled_std([(1, None), (1, None)]) is None


def test_compare_marks_only_differences_beyond_twice_the_pooled_std():
    base = aggregate_row({None: {"m": 0.80}})
    tuned = aggregate_row({0: {"m": 0.84}, 1: {"m": 0.86}, 2: {"m": 0.85}})  # mean 0.85, std 0.01
    result = compare(base, tuned, "m")
    assert result["delta"] == pytest.approx(0.05)
    assert result["noise_std"] == pytest.approx(0.01) and result["threshold"] == pytest.approx(0.02)
    assert result["exceeds_noise"] is True
    close = aggregate_row({0: {"m": 0.815}})
    result = compare(close, tuned, "m")  # Δ 0.035 > 0.02 → marked; single-seed row adds no variance
    assert result["exceeds_noise"] is True
    near = aggregate_row({0: {"m": 0.84}})
    assert compare(near, tuned, "m")["exceeds_noise"] is False  # Δ 0.01 < 0.02
    assert compare(base, near, "m")["exceeds_noise"] is None  # neither row has 2 seeds: unknown
    assert compare(base, tuned, "absent") is None
    # a seed without `m` (its task not evaluated yet) is not a degree of freedom of m's std: two and two seeds pool
    # (1·s₁² + 1·s₂²) / 2, not (2·s₁² + 1·s₂²) / 3
    partial = aggregate_row({0: {"m": 0.50, "x": 1}, 1: {"m": 0.54, "x": 1}, 2: {"x": 1}})
    other = aggregate_row({0: {"m": 0.60}, 1: {"m": 0.70}})
    noise = compare(partial, other, "m")["noise_std"]
    assert noise == pytest.approx(math.sqrt((0.04**2 / 2 + 0.1**2 / 2) / 2))


def _record(scores: dict[str, list[float]]) -> dict:
    """An eval.json with per-item values: each task's per-query scores (main metric = their mean)."""
    metrics = {"pubmedqa": "recall@1", "scifact": "ndcg@10"}
    tasks = {
        task: {"task": task, "main_metric": metrics[task], "metrics": {metrics[task]: sum(v) / len(v)},
               "per_item": {"ids": [f"q{i}" for i in range(len(v))], "scores": v}}
        for task, v in scores.items()
    }  # fmt: skip
    return {"tasks": tasks, "summary": {f"{t}/{metrics[t]}": r["metrics"][metrics[t]] for t, r in tasks.items()}}


def test_target_variants_are_judged_on_the_mean_of_their_targets_with_the_share_at_it(tmp_path, tiny_bert_dir):
    """Two seeds of `tuned` gain on PubMedQA and SciFact; the mean target is judged on the mean of the two Δs, its
    noise on the spread of each seed's mean, and P(Δ ≥ target) is the share of test sets resampled at or above."""
    targets = {"pubmedqa/recall@1": 0.0, "scifact/ndcg@10": 0.0}
    config = _config(tmp_path, tiny_bert_dir, variants={"tuned": {}, "other": {}}, seeds=[0, 1], targets=targets,
                     target_variants=["tuned"], target_mean=0.1)  # fmt: skip
    base = _record({"pubmedqa": [0, 0, 0, 0, 1], "scifact": [0.5] * 4})
    seed0 = _record({"pubmedqa": [1, 0, 0, 0, 1], "scifact": [0.5, 0.5, 0.5, 0.7]})  # Δ +0.2, +0.05
    seed1 = _record({"pubmedqa": [1, 0, 0, 0, 1], "scifact": [0.5, 0.5, 0.5, 0.9]})  # Δ +0.2, +0.10
    records = {("tiny", "base", None): base, ("tiny", "tuned", 0): seed0, ("tiny", "tuned", 1): seed1,
               ("tiny", "other", 0): seed0, ("tiny", "other", 1): seed1}  # fmt: skip
    results = aggregate(config, records)
    assert [t["variant"] for t in results["targets"]] == ["tuned"] * 3  # `other` is not judged
    pubmedqa, scifact, mean = results["targets"]
    assert pubmedqa["delta"] == pytest.approx(0.2) and scifact["delta"] == pytest.approx(0.075)
    assert mean["metric"] == "mean of pubmedqa/recall@1, scifact/ndcg@10"
    assert mean["delta"] == pytest.approx((0.2 + 0.075) / 2) and mean["met"] is True
    # each seed's mean: 0.125 and 0.15 (base 0.3): Δ 0.1375 against 2·s = 2·0.025/√2 ≈ 0.0354
    assert mean["exceeds_noise"] is True
    # on a resample drawing PubMedQA's gained question c times and SciFact's changed claim k times, the mean Δ is
    # (c/5 + 0.3·k/4) / 2 ≥ 0.1: any c ≥ 1 (P = 1 − 0.8⁵), or c = 0 with k ≥ 3 (P = 0.8⁵ · P(k ≥ 3 of 4 at 1/4))
    by_hand = 1 - 0.8**5 + 0.8**5 * sum(math.comb(4, k) * 0.25**k * 0.75 ** (4 - k) for k in (3, 4))
    assert mean["p_target"] == pytest.approx(by_hand, abs=0.015)  # 0.689; sd over 10,000 rounds ≈ 0.005
    paired = results["models"]["tiny"]["rows"]["tuned"]["paired"]
    assert paired[-1]["p_target"] == mean["p_target"] and paired[-1]["target"] == 0.1

    dataset = {"documents": 12, "pairs": 30, "sources": {"pubmedqa": 12}, "splits": {"train": 8, "dev": 2, "test": 2}}
    table = markdown_results({**results, "title": "t", "dataset": dataset})
    assert "MeSH-pair dataset: 12 documents (train 8, dev 2, test 2; only train is trained on), 30 mined pairs" in table
    assert "| P(Δ ≤ 0) | P(Δ ≥ +10.0) |" in table  # the paired table's share column
    # two seeds set down: the numbers, no verdict (biohicl.study.verdict)
    (why,) = results["verdict"]["why_not"]
    assert why == "tiny/tuned has 2 seeds in the config (0, 1), fewer than the 3 a verdict needs"
    mean_row = f"| tiny | tuned | {mean['metric']} | Δ ≥ +10.0 | +13.75 | not judged | yes | {mean['p_target']:.3f} |"
    assert mean_row in table
    assert "| tiny | tuned | pubmedqa/recall@1 | Δ ≥ +0.0 | +20.00 | not judged | yes | – |" in table  # both +0.2

    assert 0.6 - 0.4 < 0.2 and reaches(0.6 - 0.4, 0.2) and not reaches(0.199, 0.2)  # on the target by exact arithmetic

    with pytest.raises(ConfigError, match="target_variants: unknown variant"):
        _config(tmp_path, tiny_bert_dir, variants={"tuned": {}}, target_variants=["full"])
    with pytest.raises(ConfigError, match="target_mean: expected a fraction"):
        _config(tmp_path, tiny_bert_dir, target_mean="+1.0")


def test_the_dev_pick_drops_variants_that_kept_their_base_then_takes_the_best_mean_dev_score(tmp_path, tiny_bert_dir):
    """Five variants, two seeds: `kept` kept its base in seed 1, `partial` lacks seed 1, `unselected` had no dev
    selection; of `low` (0.40, 0.50) and `high` (0.25, 0.75) the higher mean wins; `tie` (0.5, 0.5) equals `high`,
    listed later (binary-exact scores: the means are equal in floating point, so the tie is a real one)."""
    variants = ["kept", "partial", "unselected", "low", "high", "tie"]
    config = _config(tmp_path, tiny_bert_dir, variants={v: {} for v in variants}, seeds=[0, 1], target_mean=0.01,
                     target_variants=variants, pick_variant_on_dev=True,
                     targets={"pubmedqa/recall@1": 0.0})  # fmt: skip
    summaries = {
        "kept": [(140, 0.9, False), (0, 0.3, True)], "partial": [(209, 0.9, False)],
        "unselected": [(None, None, None), (None, None, None)], "low": [(209, 0.4, False), (140, 0.5, False)],
        "high": [(209, 0.25, False), (209, 0.75, False)], "tie": [(209, 0.5, False), (140, 0.5, False)],
    }  # fmt: skip
    for variant, seeds in summaries.items():
        for seed, (step, score, base) in enumerate(seeds):
            run = tmp_path / "study" / "tiny" / variant / f"seed{seed}"
            run.mkdir(parents=True)
            summary = {"best_step": step, "best_metric": score, "selected_base": base, "global_step": 209}
            (run / "training_summary.json").write_text(json.dumps(summary))
    read = read_training_summaries(config)
    assert len(read) == 11 and read[("tiny", "low", 1)]["best_metric"] == 0.5
    pick = pick_variant(config, config.models[0], read)
    assert pick["picked"] == "high"
    outs = {c["variant"]: c["out"] for c in pick["candidates"]}
    assert outs == {"kept": "kept its base: seed 1", "partial": "not trained: seed 1",
                    "unselected": "no dev selection: seeds 0, 1", "low": None, "high": None, "tie": None}  # fmt: skip
    scores = {c["variant"]: c["score"] for c in pick["candidates"]}
    assert scores["low"] == pytest.approx(0.45) and scores["high"] == 0.5 == scores["tie"]  # exactly: a tie
    steps = [c["selected_steps"] for c in pick["candidates"]]
    assert steps[0] == [140, 0] and steps[1] == [209, None]

    base = _record({"pubmedqa": [0, 1, 1, 0]})
    records = {("tiny", "base", None): base, **{("tiny", v, s): _record({"pubmedqa": [1, 1, 1, 0]})
                                                 for v in variants for s in (0, 1)}}  # fmt: skip
    results = aggregate(config, records, training_summaries=read)
    assert results["models"]["tiny"]["dev_pick"] == pick
    assert {t["variant"] for t in results["targets"] if t.get("dev_pick")} == {"high"}
    table = markdown_results({**results, "title": "t"})
    assert "| high | 0, 1 | 209, 209 | 0.5000 | **picked** |" in table
    assert "| kept | 0, 1 | 140, 0 | 0.6000 | kept its base: seed 1 |" in table
    assert "| tie | 0, 1 | 209, 140 | 0.5000 | lower |" in table  # a tie keeps the one listed first
    assert "The targets count for the variant picked on dev" not in table  # two seeds: no verdict, no pick's rows
    assert "**Not judged**: tiny/high has 2 seeds in the config (0, 1), fewer than the 3 a verdict needs." in table

    nothing = pick_variant(config, config.models[0], {})
    assert nothing["picked"] is None and "No variant is picked" in "\n".join(_dev_pick_table(nothing))
    with pytest.raises(ConfigError, match=r"variants\.low: sets its own selection_metrics; pick_variant_on_dev"):
        _config(tmp_path, tiny_bert_dir, variants={"low": {"selection_metrics": ["x"]}}, target_variants=["low"],
                pick_variant_on_dev=True)  # fmt: skip


def test_the_dev_pick_on_the_committed_guarded_256_runs_is_the_one_results_md_names():
    """Over the committed training summaries of the guarded 256-token study: among all seven variants on seeds 3-5
    two passes win (mean agreement 0.566), as docs/results.md says; between the registered recipe and the MSE over
    every pair, the registered recipe (0.543 against 0.514), as the config's session-11 outcome says."""
    root = Path(__file__).parents[1] / "docs" / "results" / "study_minilm_cpu_guarded_256"
    summaries = {}
    for path in root.glob("*_seed*/training_summary.json"):
        variant, _, seed = path.parent.name.rpartition("_seed")
        summaries[("minilm", variant, int(seed))] = json.loads(path.read_text())
    config = ReproduceConfig.from_yaml(Path(__file__).parents[1] / "configs" / "study_minilm_cpu_guarded_256.yaml")
    assert config.pick_variant_on_dev
    pick = pick_variant(config, config.models[0], summaries)
    assert pick["picked"] == "two_pass_distill2"
    scores = {c["variant"]: c["score"] for c in pick["candidates"] if c["out"] is None}
    assert list(scores) == ["one_pass_distill2", "one_pass_distill2_all", "two_pass_distill2"]
    assert round(scores["two_pass_distill2"], 3) == 0.566 and round(scores["one_pass_distill2"], 3) == 0.543
    pair = config.select(only=["one_pass_distill2", "one_pass_distill2_all"])
    assert pick_variant(pair, pair.models[0], summaries)["picked"] == "one_pass_distill2"
    report = (root / "results_seeds3-5.md").read_text()  # the study's own report of the pair names the same pick
    for variant, outcome in (("one_pass_distill2", "**picked**"), ("one_pass_distill2_all", "lower")):
        assert f"| {variant} | 3, 4, 5 | 209, 209, 209 | {scores[variant]:.4f} | {outcome} |" in report


def test_a_run_trained_with_other_settings_than_the_config_now_gives_is_refused(tmp_path, tiny_bert_dir):
    """A finished (or started) run whose saved training arguments differ from what the config now gives it would be
    reported, or resumed, as the config's: the plan refuses it, naming the folder and the setting."""
    from biohicl.training.checkpoint import TRAINING_ARGS_JSON

    config = _config(tmp_path, tiny_bert_dir, variants={"full": {"learning_rate": 1e-3}})
    model = config.models[0]
    run = tmp_path / "study" / "tiny" / "full" / "seed0"
    args = training_arguments(config, model, "full", 0, tmp_path / "dataset", run)
    run.mkdir(parents=True)
    (run / TRAINING_ARGS_JSON).write_text(args.to_json_string(), encoding="utf-8")
    (run / "training_summary.json").write_text("{}", encoding="utf-8")
    assert [r.status for r in plan_study(config)] == ["evaluate", "evaluate"]  # as saved: no difference
    changed = _config(tmp_path, tiny_bert_dir, variants={"full": {"learning_rate": 2e-3}})
    with pytest.raises(ConfigError, match=r"seed0: trained with other settings .* \(learning_rate 0\.001 → 0\.002\)"):
        plan_study(changed)
    logging_only = _config(tmp_path, tiny_bert_dir, variants={"full": {"learning_rate": 1e-3, "logging_steps": 3}})
    assert plan_study(logging_only)[1].status == "evaluate"  # how a run logs is not what it trained
    (run / "training_summary.json").unlink()
    (run / TRAINING_ARGS_JSON).rename(tmp_path / "args.json")
    checkpoint = run / "checkpoint-1"  # a started run: the checkpoint's copy of the arguments is compared
    checkpoint.mkdir()
    (tmp_path / "args.json").rename(checkpoint / TRAINING_ARGS_JSON)
    (checkpoint / "trainer_state.json").write_text("{}", encoding="utf-8")
    (checkpoint / "trainable_weights.safetensors").write_bytes(b"")
    assert plan_study(config)[1].status == "resume"
    with pytest.raises(ConfigError, match=r"learning_rate 0\.001 → 0\.002"):
        plan_study(changed)


def test_a_record_without_the_targets_per_item_values_is_evaluated_again():
    """Records evaluated before the study kept per-item values lack them: the targets' tasks count as missing; an
    empty mapping (asked for, the task has none) does not."""
    record = {"tasks": {"biosses": {"split": "all"}, "siml-agreement": {"split": "dev", "per_item": {}}}}
    assert missing_tasks(record, ["biosses", "siml-agreement"]) == []
    assert missing_tasks(record, ["biosses", "siml-agreement"], ["biosses", "siml-agreement"]) == ["biosses"]
    record["tasks"]["biosses"]["per_item"] = {"ids": ["0"], "predictions": [0.5], "gold": [1.0]}
    assert missing_tasks(record, ["biosses", "siml-agreement"], ["biosses"]) == []
    # a spec without a split asks for the task's default one: `scifact` (test) is not a SciFact-train result
    record["tasks"]["scifact"] = {"split": "train"}
    assert missing_tasks(record, ["scifact:train"]) == [] and missing_tasks(record, ["scifact"]) == ["scifact"]
    assert missing_tasks(record, ["siml-agreement@runs/x"]) == [] and missing_tasks(record, ["siml-agreement@x:test"])


def test_an_agreement_record_of_another_dataset_is_evaluated_again(tmp_path):
    """``siml-agreement@X`` is filed as ``siml-agreement`` whatever X is: a record evaluated on another dataset (its
    documents files' checksums differ) is not the config's and counts as missing; the same files are not."""
    from biohicl.evaluation.agreement import agreement_data_files

    documents = tmp_path / "dataset" / "documents" / "documents-00000.parquet"
    documents.parent.mkdir(parents=True)
    documents.write_bytes(b"first build")
    spec = f"siml-agreement@{tmp_path / 'dataset'}"
    files = agreement_data_files(tmp_path / "dataset")
    assert files == {"documents/documents-00000.parquet": hashlib.sha256(b"first build").hexdigest()}
    record = {"tasks": {"siml-agreement": {"split": "dev", "data_files": files}}}
    assert missing_tasks(record, [spec]) == []
    documents.write_bytes(b"another build")
    assert missing_tasks(record, [spec]) == [spec]
    assert missing_tasks(record, ["siml-agreement@elsewhere"]) == []  # no dataset there: nothing to compare


# ------------------------------------------------------------------------------------------------ a whole study
def test_tiny_study_every_variant_table_cards_and_resume(tmp_path, tiny_bert_dir, monkeypatch):
    config = _config(tmp_path, tiny_bert_dir, seeds=[0, 1], seeds_per_variant={
        v: [0] for v in DEFAULT_VARIANTS if v != "full"})  # fmt: skip
    results = run_study(config, progress=False)
    out = tmp_path / "study"

    rows = results["models"]["tiny"]["rows"]
    assert list(rows) == ["base", *DEFAULT_VARIANTS]
    assert rows["full"]["n"] == 2 and rows["full"]["seeds"] == [0, 1]
    for variant in DEFAULT_VARIANTS:
        run = out / "tiny" / variant / "seed0"
        record = json.loads((run / "eval.json").read_text())
        assert rows[variant]["values"]["biosses/spearman"][0] == record["summary"]["biosses/spearman"]
        assert record["settings"]["device"] == resolve_eval_device("auto").type  # where it was encoded
        assert not list(run.glob("checkpoint-*"))  # checkpoints dropped once the run finished
        assert json.loads((run / "biohicl_config.json").read_text())["max_length"] == 32  # the evaluated length
    full = [json.loads((out / "tiny" / "full" / f"seed{s}" / "eval.json").read_text()) for s in (0, 1)]
    values = [r["summary"]["biosses/spearman"] for r in full]
    assert rows["full"]["mean"]["biosses/spearman"] == pytest.approx(sum(values) / 2)
    assert rows["full"]["std"]["biosses/spearman"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    base = json.loads((out / "tiny" / "base" / "eval.json").read_text())["summary"]["biosses/spearman"]
    assert rows["full"]["vs_base"]["biosses/spearman"]["delta"] == pytest.approx(sum(values) / 2 - base)
    assert values[0] != base  # the trained adapter really changed the encoder

    table = (out / "results.md").read_text()
    for variant in ["base", *DEFAULT_VARIANTS]:
        assert f"| {variant} |" in table
    assert "## Targets" in table and "full ≥ no_mse" in table
    assert (out / "tiny_bars.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "tiny_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "tiny_deltas.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "results.json").read_text())
    assert saved["models"]["tiny"]["rows"]["full"]["n"] == 2

    best = results["models"]["tiny"]["best_full_run"]
    assert best["seed"] == max((v, s) for s, v in enumerate(values))[1]
    card = (out / "tiny" / "full" / f"seed{best['seed']}" / "README.md").read_text()
    assert "model-index" in card and "BIOSSES" in card and "base_model: test-org/tiny-bert" in card
    assert "test-org/BioHiCL-Tiny" in card
    ablation_card = (out / "tiny" / "no_mse" / "seed0" / "README.md").read_text()
    assert "BioHiCL-Tiny-no_mse-seed0" in ablation_card

    # second call: everything is finished, nothing is trained or evaluated again
    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was redone")

    monkeypatch.setattr(execute_module, "train_run", refuse)
    monkeypatch.setattr(execute_module, "evaluate_encoder", refuse)
    assert all(r.status == "done" for r in plan_study(config))
    again = run_study(config, progress=False, write_plots=False)
    assert again["models"]["tiny"]["rows"]["full"]["mean"] == rows["full"]["mean"]


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path, tiny_bert_dir, monkeypatch):
    from transformers import TrainerCallback

    import biohicl.training.run as run_module

    config = _config(tmp_path, tiny_bert_dir, variants={"full": {"save_total_limit": 2}}, keep_checkpoints=True)
    empty = run_study(config, progress=False, write_plots=False, report_only=True)  # tabulates, runs nothing
    assert empty["missing"] == ["tiny/base", "tiny/full/seed0"] and empty["models"]["tiny"]["rows"] == {}
    assert not list((tmp_path / "study").glob("tiny/**/eval.json"))
    run_study(config, progress=False, write_plots=False)
    run = tmp_path / "study" / "tiny" / "full" / "seed0"
    first = json.loads((run / "eval.json").read_text())["summary"]
    # simulate a kill after checkpoint-1: drop what the finished run wrote after it
    for name in ("eval.json", "training_summary.json", "trainer_state.json", "README.md"):
        (run / name).unlink()
    for child in run.glob("checkpoint-2"):
        import shutil

        shutil.rmtree(child)
    assert [r.status for r in plan_study(config)] == ["done", "resume"]

    trained_steps = []  # the global step at which each step of the resumed run begins

    class TrainedSteps(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            trained_steps.append(state.global_step)

    train_biohicl = run_module.train_biohicl
    monkeypatch.setattr(  # the study's own training call, with that callback
        run_module, "train_biohicl", lambda args, callbacks=None, **kw: train_biohicl(args, [TrainedSteps()], **kw)
    )
    run_study(config, progress=False, write_plots=False)
    monkeypatch.undo()
    assert trained_steps == [1]  # it trained step 2 only: it did start from checkpoint-1 (from scratch: [0, 1])
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    logged_steps = [e["step"] for e in state["log_history"] if "loss" in e]
    assert logged_steps == [1, 2]  # step 1 restored from the checkpoint, step 2 trained after resuming
    resumed = json.loads((run / "eval.json").read_text())["summary"]
    assert resumed["biosses/spearman"] == pytest.approx(first["biosses/spearman"], abs=1e-6)

    # a task added to the config later: only that task is evaluated, the earlier results stay as they were
    config.tasks = ["biosses", "pubmedqa"]
    config.limit_queries = 3
    assert [r.status for r in plan_study(config)] == ["add_tasks", "add_tasks"]
    results = run_study(config, progress=False, write_plots=False)
    record = json.loads((run / "eval.json").read_text())
    assert set(record["tasks"]) == {"biosses", "pubmedqa"} and record["added"][0]["tasks"] == ["pubmedqa"]
    # what the added task ran with (3 questions) is recorded beside the record's first settings (no cap)
    assert record["added"][0]["settings"]["limit_queries"] == 3 and record["settings"]["limit_queries"] is None
    assert record["tasks"]["pubmedqa"]["num_queries"] == 3
    assert record["summary"]["biosses/spearman"] == resumed["biosses/spearman"]
    assert "pubmedqa/recall@1" in results["models"]["tiny"]["rows"]["full"]["mean"]
    assert [r.status for r in plan_study(config)] == ["done", "done"]

    # a base evaluated before the study kept per-item values: its targets' tasks again, the same numbers, and the
    # report's paired interval
    base_file = tmp_path / "study" / "tiny" / "base" / "eval.json"
    base = json.loads(base_file.read_text())
    for task in base["tasks"].values():
        del task["per_item"]
    base_file.write_text(json.dumps(base))
    assert "paired" not in run_study(config, progress=False, write_plots=False, report_only=True)["models"]["tiny"][
        "rows"]["full"]  # fmt: skip
    assert [r.status for r in plan_study(config)] == ["add_tasks", "done"]
    results = run_study(config, progress=False, write_plots=False)
    again = json.loads(base_file.read_text())
    assert again["summary"] == base["summary"] and again["added"][-1]["tasks"] == ["biosses", "pubmedqa"]
    assert len(again["tasks"]["biosses"]["per_item"]["ids"]) == 100
    assert [e["task"] for e in results["models"]["tiny"]["rows"]["full"]["paired"]][:2] == ["biosses", "pubmedqa"]


def test_a_study_resumed_with_its_folders_spelled_another_way_resumes(tmp_path, tiny_bert_dir, monkeypatch):
    """A study killed after checkpoint-1, run again with its folders absolute (``--output_dir "$PWD/study"``, a
    dataset path from a script) instead of relative: the same folders, so the run resumes, not refused."""
    import shutil

    monkeypatch.chdir(tmp_path)

    def config(study: str, dataset: str) -> ReproduceConfig:
        values = tiny_study_values(study, dataset, model=str(tiny_bert_dir), hub_id="test-org/tiny-bert")
        values.update(variants={"full": {"save_total_limit": 2}}, keep_checkpoints=True)
        return ReproduceConfig.from_dict(values)

    run_study(config("study", "dataset"), progress=False, write_plots=False)
    run = tmp_path / "study" / "tiny" / "full" / "seed0"
    assert json.loads((run / "checkpoint-1" / "biohicl_training_args.json").read_text())["dataset_path"] == "dataset"
    for name in ("eval.json", "training_summary.json", "trainer_state.json", "README.md"):
        (run / name).unlink()
    shutil.rmtree(run / "checkpoint-2")
    absolute = config(str(tmp_path / "study"), str(tmp_path / "dataset"))
    assert [r.status for r in plan_study(absolute)] == ["done", "resume"]
    run_study(absolute, progress=False, write_plots=False)
    assert json.loads((run / "trainer_state.json").read_text())["global_step"] == 2
    assert (run / "eval.json").is_file()


def test_a_variant_whose_treatment_is_its_length_or_prompt_is_still_compared_with_the_base(tmp_path, tiny_bert_dir):
    """A variant may set max_length or a prompt (a training setting, and so its evaluation's): since --compare
    refuses records of another length or prompt, the study refused its own base-vs-variant rows and wrote no report.
    In a study those settings are the treatment; data, split and query cap are still checked."""
    config = _config(tmp_path, tiny_bert_dir, variants={"short": {}, "prompted": {}}, seeds=[0])
    base = {**_record({"pubmedqa": [0, 0, 1, 1]}), "settings": {"max_length": 24, "query_prompt": ""}}
    short = {**_record({"pubmedqa": [1, 0, 1, 1]}), "settings": {"max_length": 16, "query_prompt": ""}}
    prompted = {**_record({"pubmedqa": [1, 1, 1, 1]}), "settings": {"max_length": 24, "query_prompt": "query: "}}
    records = {("tiny", "base", None): base, ("tiny", "short", 0): short, ("tiny", "prompted", 0): prompted}
    rows = aggregate(config, records)["models"]["tiny"]["rows"]
    assert rows["short"]["paired"][0]["delta"] == pytest.approx(0.25)
    assert rows["prompted"]["paired"][0]["delta"] == pytest.approx(0.5)
    cut = {**short, "settings": {**short["settings"], "limit_queries": 2}}
    cut["tasks"] = {"pubmedqa": {**short["tasks"]["pubmedqa"], "num_queries": 2}}
    with pytest.raises(DataError, match="limit_queries"):  # a scoring difference is still one
        aggregate(config, {**records, ("tiny", "short", 0): cut})


def test_run_lock_keeps_two_workers_off_the_same_run(tmp_path):
    import os
    import subprocess
    import sys

    from biohicl.study.execute import LOCK_NAME, acquire_run_lock, release_run_lock

    run = tmp_path / "run"
    previous = os.umask(0o002)  # a study a group shares: the group can open the lock too
    try:
        assert acquire_run_lock(run) and acquire_run_lock(run)  # this process holds it (re-entrant)
    finally:
        os.umask(previous)
    assert (run / LOCK_NAME).read_text() == str(os.getpid())
    assert stat.S_IMODE((run / LOCK_NAME).stat().st_mode) == 0o664
    release_run_lock(run)
    assert not (run / LOCK_NAME).exists()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True
    )  # another worker, which then crashes without releasing
    try:
        assert holder.stdout.readline().strip() == "held"
        assert (run / LOCK_NAME).read_text() == str(holder.pid)
        assert not acquire_run_lock(run)  # a live worker holds it
    finally:
        holder.kill()
        holder.wait()
    assert (run / LOCK_NAME).read_text() == str(holder.pid)  # its lock file is left behind ...
    assert acquire_run_lock(run)  # ... but its process is gone, and the claim with it
    assert (run / LOCK_NAME).read_text() == str(os.getpid())
    release_run_lock(run)


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from biohicl.study.execute import acquire_run_lock
assert acquire_run_lock(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(60)
"""

#: Each process walks the same runs at the same moment, like workers started together: claim, and do a run that is
#: not done yet (appending its pid to ``claims``), mark it done, release.
_CLAIM_RUNS = """
import os, sys, time
from pathlib import Path
from biohicl.study.execute import acquire_run_lock, release_run_lock
root, runs, start = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
while time.time() < start:
    pass
for k in range(runs):
    run = root / str(k)
    if not acquire_run_lock(run):
        continue
    if not (run / "done").exists():
        with open(run / "claims", "a") as claims:
            claims.write(f"{os.getpid()}\\n")
        (run / "done").write_text("")
    release_run_lock(run)
"""


def test_run_locks_let_each_run_be_done_once_among_simultaneous_workers(tmp_path):
    import subprocess
    import sys
    import time

    runs, start = 200, time.time() + 2.0
    workers = [
        subprocess.Popen([sys.executable, "-c", _CLAIM_RUNS, str(tmp_path), str(runs), str(start)]) for _ in range(4)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0, 0]
    claims = [len((tmp_path / str(k) / "claims").read_text().splitlines()) for k in range(runs)]
    assert claims == [1] * runs  # the earlier pid-file lock let two workers into dozens of these
    assert not list(tmp_path.glob("*/.reproduce.lock"))


def test_workers_share_the_study_each_run_once_then_one_report(tmp_path, tiny_bert_dir, capsys):
    import yaml

    from biohicl.cli import reproduce as command

    config = _config(tmp_path, tiny_bert_dir, seeds=[0, 1], variants={"full": {}, "no_mse": {"use_mse": False}},
                     pick_variant_on_dev=True, target_variants=["full", "no_mse"])  # fmt: skip
    prepare_dataset(config, progress=False)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()), encoding="utf-8")
    assert command.main(["--config", str(path), "--workers", "2", "--threads", "1"]) == 0

    out = tmp_path / "study"
    logs = [(out / "logs" / f"worker{i}.log").read_text() for i in (1, 2)]
    labels = ["tiny/base", "tiny/full/seed0", "tiny/full/seed1", "tiny/no_mse/seed0", "tiny/no_mse/seed1"]
    for label in labels:  # every run finished by exactly one worker
        assert sum(log.count(f"{label}: done in") for log in logs) == 1, label
    results = json.loads((out / "results.json").read_text())
    assert results["missing"] == []
    assert results["models"]["tiny"]["rows"]["full"]["n"] == 2 and results["models"]["tiny"]["rows"]["no_mse"]["n"] == 2
    shown = capsys.readouterr().out
    assert "worker 1: done" in shown and "worker 2: done" in shown
    (target,) = [
        t for t in results["targets"]
        if t["metric"] == "biosses/spearman" and t["target"] == 0.03 and t["variant"] == "full"
    ]  # fmt: skip
    assert results["verdict"]["judged"] is False  # two seeds: the default target (+3.0 points) is not judged
    status = "not judged"
    assert f"  tiny/full biosses/spearman: Δ {100 * target['delta']:+.2f} (target +3.0) {status}\n" in shown
    # the runs trained without dev evaluation, so the dev pick has nothing to go on, and says so
    assert "  tiny: no variant picked on dev (each is out: see results.md)\n" in shown
    assert results["models"]["tiny"]["dev_pick"]["candidates"][0]["out"] == "no dev selection: seeds 0, 1"
    assert command.main(["--config", str(path), "--only", "no_mse", "--report_only"]) == 0
    shown = capsys.readouterr().out  # a report over part of the target variants says which ones the pick missed
    assert (
        "  tiny: no variant picked on dev (each is out: see results.md; among this selection only, full left out)\n"
        in shown
    )


def test_a_rerun_of_the_workers_keeps_the_earlier_logs(tmp_path, monkeypatch):
    from biohicl.cli import reproduce as command

    class Child:  # writes one line to its log, like a worker reporting a finished run
        attempt = 0

        def __init__(self, argv, stdout, **kwargs):
            stdout.write(f"attempt {Child.attempt} worker line\n")
            stdout.flush()

        def wait(self):
            return 0

    monkeypatch.setattr(command.subprocess, "Popen", Child)
    for Child.attempt in (1, 2):
        command.run_workers(["--config", "c.yaml", "--workers", "2"], 2, str(tmp_path), threads=1)
    for i in (1, 2):
        lines = (tmp_path / "logs" / f"worker{i}.log").read_text(encoding="utf-8").splitlines()
        assert [line for line in lines if not line.startswith("=== ")] == [
            "attempt 1 worker line",
            "attempt 2 worker line",
        ]
        headers = [line for line in lines if line.startswith("=== ")]
        assert len(headers) == 2 and lines[0] == headers[0] and lines[2] == headers[1]
        assert re.match(rf"^=== \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\S*: worker {i} of 2: biohicl reproduce ", headers[0])


def test_a_sigterm_of_the_parent_stops_its_workers(tmp_path, monkeypatch):
    import os
    import signal

    from biohicl.cli import reproduce as command

    events = []

    class Child:  # the first wait is interrupted by a SIGTERM of the parent process (`kill PID`)
        def __init__(self, argv, stdout, **kwargs):
            self.waited = 0

        def wait(self):
            self.waited += 1
            if not events:
                os.kill(os.getpid(), signal.SIGTERM)
            events.append(("wait", self.waited))
            return -15

        def terminate(self):
            events.append(("terminate", self.waited))

    def unhandled(signum, frame):  # what reaches the test if run_workers leaves SIGTERM to the default (exit)
        raise AssertionError("run_workers did not handle SIGTERM")

    monkeypatch.setattr(command.subprocess, "Popen", Child)
    before = signal.signal(signal.SIGTERM, unhandled)
    try:
        with pytest.raises(KeyboardInterrupt):
            command.run_workers(["--config", "c.yaml", "--workers", "2"], 2, str(tmp_path), threads=1)
        assert signal.getsignal(signal.SIGTERM) is unhandled  # restored
    finally:
        signal.signal(signal.SIGTERM, before)
    assert [e for e in events if e[0] == "terminate"] == [("terminate", 1), ("terminate", 0)]  # both, then waited
    assert events[-2:] == [("wait", 2), ("wait", 1)]


def test_each_worker_is_started_to_die_with_the_parent(tmp_path, monkeypatch):
    from biohicl.cli import reproduce as command

    started = []

    class Child:  # records what each worker is started with
        def __init__(self, argv, **kwargs):
            started.append(kwargs)

        def wait(self):
            return 0

    monkeypatch.setattr(command.subprocess, "Popen", Child)
    command.run_workers(["--config", "c.yaml"], 2, str(tmp_path), threads=1)
    assert len(started) == 2
    for kwargs in started:
        if sys.platform.startswith("linux"):
            assert kwargs["preexec_fn"].__qualname__ == "die_with_parent.<locals>.set_parent_death_signal"
        else:  # no prctl: started as before
            assert kwargs["preexec_fn"] is None
    started.clear()
    monkeypatch.setattr(command.sys, "platform", "darwin")
    command.run_workers(["--config", "c.yaml"], 2, str(tmp_path), threads=1)
    assert [kwargs["preexec_fn"] for kwargs in started] == [None, None]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_without_prctl_or_with_the_parent_already_gone(monkeypatch):
    import subprocess

    from biohicl.cli import reproduce as command

    monkeypatch.setattr(command.ctypes, "CDLL", lambda name: object())  # a libc without prctl
    assert command.die_with_parent() is None
    monkeypatch.undo()
    exits_7 = [sys.executable, "-c", "raise SystemExit(7)"]
    assert subprocess.run(exits_7, preexec_fn=command.die_with_parent()).returncode == 7
    monkeypatch.setattr(command.os, "getppid", lambda: 1)  # as the child sees it when its parent died before prctl
    assert subprocess.run(exits_7, preexec_fn=command.die_with_parent()).returncode == 1  # never ran


#: A `--workers` process in miniature: one child started as run_workers starts its workers, then it sleeps.
_PARENT_OF_A_SLEEPER = """
import subprocess, sys, time
from biohicl.cli.reproduce import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=die_with_parent())
print(child.pid, flush=True)
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended: no longer there, or a zombie that whoever it was handed to has not reaped."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat_line.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_sigkill_of_the_parent_ends_its_workers_too():
    import signal
    import subprocess
    import time

    parent = subprocess.Popen([sys.executable, "-c", _PARENT_OF_A_SLEEPER], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(parent.stdout.readline())  # Popen returned, so the child has exec'd: prctl ran before that
        assert not _gone(child)
        parent.kill()  # SIGKILL: no handler of the parent runs, as in an OOM kill
        parent.wait()
        deadline = time.monotonic() + 5
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.01)
        survived = not _gone(child)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
        if child is not None and not _gone(child):
            os.kill(child, signal.SIGKILL)  # an orphan left by a failing run of this test
    assert not survived, "the child outlived its SIGKILLed parent"


def test_a_run_left_unfinished_makes_the_command_fail(tmp_path, monkeypatch, capsys):
    import biohicl.study as study
    from biohicl.cli import reproduce as command

    results = {"models": {}, "targets": [], "missing": ["tiny/full/seed1"]}
    monkeypatch.setattr(study, "run_study", lambda config, report_only=False: results)
    argv = ["--config", "configs/reproduce_tiny.yaml", "--output_dir", str(tmp_path / "s")]
    assert command.main(argv) == 1  # e.g. a run another process still held: not a finished study
    assert "1 run(s) not finished: rerun the same command to resume" in capsys.readouterr().err
    assert command.main([*argv, "--report_only"]) == 0  # a partial report is what --report_only asks for
    monkeypatch.setenv(command.WORKER_ENV, "2")
    assert command.main(argv) == 0  # one of --workers N: the others' runs are theirs to finish


def test_workers_flag_is_checked_and_stripped(tmp_path, tiny_bert_dir, monkeypatch):
    import yaml

    from biohicl.cli import reproduce as command

    assert command._without_workers(["--config", "c.yaml", "--workers", "3", "--only", "full"]) == [
        "--config", "c.yaml", "--only", "full",
    ]  # fmt: skip
    assert command._without_workers(["--workers=4", "--config", "c.yaml"]) == ["--config", "c.yaml"]
    started = []

    class Child:
        def __init__(self, command, **kwargs):
            started.append(command)

        def wait(self):
            return 0

    monkeypatch.setattr(command.subprocess, "Popen", Child)
    for given in (["--work", "2"], ["--work=2"], ["--workers", "2"], ["--worker=2", "--only", "full"]):
        started.clear()
        command.run_workers(["--config", "c.yaml", *given], 2, str(tmp_path / "w"), threads=1)
        assert len(started) == 2
        for argv in started:  # an abbreviated --work N must not reach a worker: it would start workers of its own
            assert argv[3] == "reproduce" and command.parse_args(argv[4:]).workers == 1, (given, argv)
    monkeypatch.setattr(locks_module, "fcntl", None)  # a platform without file locks: one worker only
    with pytest.raises(ConfigError, match=r"--workers: several workers need file locks \(fcntl\)"):
        command.ReproduceArguments(config="c.yaml", workers=2)
    assert command.ReproduceArguments(config="c.yaml", workers=1).workers == 1
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, tiny_bert_dir).to_dict()), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"--workers: must be positive, got 0"):
        command.main(["--config", str(path), "--workers", "0"])
    assert not (tmp_path / "study" / "logs").exists()  # refused before anything started


def test_report_only_builds_nothing_and_leaves_the_study_config_as_it_was(tmp_path, tiny_bert_dir, monkeypatch):
    import biohicl.data.build as build

    def refuse(*args, **kwargs):
        raise AssertionError("a report built the dataset")

    monkeypatch.setattr(build, "build_dataset_from_files", refuse)
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "study_config.json").write_text('{"the": "study as run"}')
    report = run_study(_config(tmp_path, tiny_bert_dir, seeds=[1]), progress=False, write_plots=False, report_only=True)
    assert "tiny/full/seed1" in report["missing"] and report["dataset"] == {}
    assert not (tmp_path / "dataset").exists()
    assert (tmp_path / "study" / "study_config.json").read_text() == '{"the": "study as run"}'


def test_a_train_config_given_to_reproduce_names_its_path_once_and_says_what_it_is(tmp_path, tiny_bert_dir):
    train_config = tmp_path / "train.yaml"
    train_config.write_text("base_model: sentence-transformers/all-MiniLM-L6-v2\nmax_length: 256\nlambda_con: 0.2\n")
    with pytest.raises(ConfigError) as err:
        ReproduceConfig.from_yaml(train_config)
    message = str(err.value)
    assert message.startswith(f"{train_config}: unknown field(s) ") and message.count(str(train_config)) == 1
    assert message.endswith("(this looks like a `biohicl train --config` file)")
    with pytest.raises(ConfigError, match=r"^config: unknown field\(s\) bogus; known: .*[^)]$"):
        _config(tmp_path, tiny_bert_dir, bogus=1)  # not a training argument: no hint
    with pytest.raises(ConfigError, match=r"^--models: unknown model\(s\) mpnet; known: tiny$"):
        _config(tmp_path, tiny_bert_dir).select(models=["mpnet"])


def test_study_training_settings_are_converted_and_checked_when_the_config_is_read(tmp_path, capsys):
    from biohicl.cli import reproduce as command

    source = Path("configs/reproduce_tiny.yaml").read_text(encoding="utf-8")
    path = tmp_path / "study.yaml"
    extra = "  learning_rate: 1e-4\n  use_contrastive: 'false'\n  save_total_limit: '3'\n"
    variants = "variants:\n  full: {}\n  quick: {lora_r: '4', use_mse: 'no', title_weight: '0.5'}\n"  # a term on
    path.write_text(source.replace("training:\n", "training:\n" + extra) + variants, encoding="utf-8")
    config = ReproduceConfig.from_yaml(path)  # the Python API converts as the command does
    assert (config.training["learning_rate"], config.training["use_contrastive"]) == (1e-4, False)
    assert config.training["save_total_limit"] == 3
    assert config.variants["quick"] == {"lora_r": 4, "use_mse": False, "title_weight": 0.5}
    direct = ReproduceConfig(  # built in Python, not read from a file: converted and checked the same way
        output_dir=str(tmp_path / "study"), models=config.to_dict()["models"],
        training={"learning_rate": "1e-4"}, variants={"full": {}, "quick": {"lora_r": "4"}},
    )  # fmt: skip
    assert (direct.training["learning_rate"], direct.variants["quick"]) == (1e-4, {"lora_r": 4})
    with pytest.raises(ConfigError, match=r"^variants\.quick: lora_r: 'abc' is not a valid int$"):
        ReproduceConfig(output_dir="x", models=config.to_dict()["models"], variants={"quick": {"lora_r": "abc"}})
    for bad, message in [
        ("training:\n  lora_r: abc\n", r"training: lora_r: 'abc' is not a valid int"),
        ("training:\n  lambda_con: null\n", r"training: lambda_con: null is not a valid float"),
        ("training:\n  max_stepz: 3\n", r"training: unknown field\(s\) max_stepz \(did you mean max_steps\?\)"),
        ("variants:\n  full: {use_mse: maybe}\n", r"variants\.full: use_mse: 'maybe' is not a valid true/false"),
    ]:
        key = bad.split(":")[0]
        text = source.split("\ntraining:\n")[0] + "\n" + bad if key == "training" else source + bad
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: {message}$"):
            command.main(["--config", str(path), "--dry_run"])
    assert "study" not in capsys.readouterr().out  # refused before the plan is printed


def test_dry_run_checks_what_the_study_needs_before_it_starts(tmp_path, tiny_bert_dir, monkeypatch, capsys):
    import yaml

    from biohicl.cli import reproduce as command
    from biohicl.study.preflight import preflight

    config = _config(tmp_path, tiny_bert_dir, tasks=["biosses", "scifact:train", f"siml-agreement@{tmp_path}/dataset"])
    config.training["eval_tasks"] = ["pubmedqa:dev"]
    checks = {c.what: c for c in preflight(config)}
    assert list(checks) == ["dataset", "model tiny", "task biosses", "task scifact:train",
                            f"task siml-agreement@{tmp_path}/dataset", "task pubmedqa:dev"]  # fmt: skip
    assert all(c.ok for c in checks.values()), [c.format() for c in checks.values()]
    assert checks["dataset"].detail == f"build into {tmp_path}/dataset from the config's inputs"
    assert checks[f"task siml-agreement@{tmp_path}/dataset"].detail == "the study's dataset"  # built by the study

    empty = tmp_path / "no-data"  # a fresh machine: no data directory, no model
    for name in ("biosses", "pubmedqa"):
        (empty / name).mkdir(parents=True)
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(empty))
    config.models[0].model = str(tmp_path / "no-model")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()), encoding="utf-8")
    assert command.main(["--config", str(path), "--dry_run"]) == 1
    out, err = capsys.readouterr()
    assert "tiny  base" in out  # the plan is still printed
    missing = [line.split(maxsplit=1)[1].split(": ")[0] for line in out.splitlines() if line.startswith("  MISSING")]
    assert missing == ["dataset", "model tiny", "task biosses", "task scifact:train", "task pubmedqa:dev"]
    assert "input file(s) not found: pubmedqa/ori_pqal.json" in out
    assert err.strip() == (
        "missing before the study can run: dataset, model tiny, task biosses, task scifact:train, task pubmedqa:dev"
    )
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # online, a Hub id not cached yet is fetched by the run
    config.models[0].model = "test-org/not-cached-yet"
    (model_check,) = [c for c in preflight(config) if c.what == "model tiny"]
    assert model_check.ok and model_check.detail.endswith("is not in the cache: downloaded when the study starts")


def test_an_empty_or_partial_study_file_names_the_missing_fields(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: missing field\(s\) output_dir, models$"):
        ReproduceConfig.from_yaml(path)
    path.write_text("output_dir: out\nmodels:\n  - {model: m}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: models\[\]: missing field\(s\) name$"):
        ReproduceConfig.from_yaml(path)
    path.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: expected a mapping at the top level$"):
        ReproduceConfig.from_yaml(path)


def test_a_studys_json_config_reads_back_with_its_numbers(tmp_path):
    config = ReproduceConfig.from_yaml("configs/reproduce_tiny.yaml")
    path = tmp_path / "study_config.json"
    path.write_text(json.dumps(config.to_dict()), encoding="utf-8")
    again = ReproduceConfig.from_yaml(path)
    assert again.variants["full_finetune"]["learning_rate"] == 2e-5 and again == config


def test_a_symlink_planted_as_a_run_lock_is_refused_and_its_target_left_alone(tmp_path):
    import os

    from biohicl.errors import DataError
    from biohicl.study.execute import LOCK_NAME, acquire_run_lock, release_run_lock

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    run = tmp_path / "study" / "tiny" / "full" / "seed0"
    run.mkdir(parents=True)
    (run / LOCK_NAME).symlink_to(victim)
    lock = re.escape(str(run.resolve() / LOCK_NAME))
    with pytest.raises(DataError, match=rf"^{lock}: a run lock must be a regular file .*; remove it$"):
        acquire_run_lock(run)
    release_run_lock(run)  # nothing held: nothing removed
    assert victim.read_text(encoding="utf-8") == "keep me\n"  # neither truncated, nor the pid written, nor deleted
    assert (run / LOCK_NAME).is_symlink()
    (run / LOCK_NAME).unlink()
    (run / LOCK_NAME).symlink_to(tmp_path / "created.txt")  # a dangling link: nothing is created through it
    with pytest.raises(DataError, match=rf"^{lock}: a run lock"):
        acquire_run_lock(run)
    assert not (tmp_path / "created.txt").exists()
    (run / LOCK_NAME).unlink()
    (run / LOCK_NAME).mkdir()  # nor anything else that is not a regular file
    with pytest.raises(DataError, match=rf"^{lock}: a run lock"):
        acquire_run_lock(run)
    (run / LOCK_NAME).rmdir()
    assert acquire_run_lock(run)  # a regular lock file still works, and is removed on release
    assert (run / LOCK_NAME).read_text(encoding="utf-8") == str(os.getpid())
    release_run_lock(run)
    assert not (run / LOCK_NAME).exists() and victim.is_file()


def test_a_hub_token_in_a_studys_training_settings_is_written_nowhere_and_a_rerun_is_not_refused(
    tmp_path, tiny_bert_dir, caplog
):
    token = "hf_" + "C" * 34 + "3"
    training = {"max_steps": 2, "per_device_train_batch_size": 8, "save_steps": 1, "hub_token": token}
    config = _config(tmp_path, tiny_bert_dir, variants={"full": {}}, training=training)
    assert config.to_dict()["training"]["hub_token"] == "<HUB_TOKEN>" and config.training["hub_token"] == token
    with caplog.at_level("DEBUG"):
        results = run_study(config, progress=False, write_plots=False)  # its last plan was refused before
    assert results["models"]["tiny"]["rows"]["full"]["n"] == 1
    out = tmp_path / "study"
    assert json.loads((out / "study_config.json").read_text())["training"]["hub_token"] == "<HUB_TOKEN>"
    assert json.loads((out / "results.json").read_text())["config"]["training"]["hub_token"] == "<HUB_TOKEN>"
    written = [p for p in out.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert written == [] and token not in caplog.text
    assert [r.status for r in plan_study(config)] == ["done", "done"]  # the rerun is not refused ...
    other = _config(
        tmp_path, tiny_bert_dir, variants={"full": {}}, training={**training, "hub_token": "hf_" + "D" * 35}
    )
    assert [r.status for r in plan_study(other)] == ["done", "done"]  # ... nor with another token
    again = run_study(ReproduceConfig.from_yaml(out / "study_config.json"), progress=False, write_plots=False)
    assert again["models"]["tiny"]["rows"]["full"]["mean"] == results["models"]["tiny"]["rows"]["full"]["mean"]
    changed = _config(tmp_path, tiny_bert_dir, variants={"full": {"learning_rate": 1e-3}}, training=training)
    with pytest.raises(ConfigError, match=r"\(learning_rate 0\.0002 → 0\.001\)") as refused:
        plan_study(changed)  # another setting is still refused, and the message names no token
    assert "hub_token '" not in str(refused.value) and token not in str(refused.value)


def test_a_symlink_planted_as_a_worker_log_is_refused_before_any_worker_starts(tmp_path, monkeypatch):
    from biohicl.cli import reproduce as command
    from biohicl.errors import DataError

    started = []

    class Child:
        def __init__(self, argv, stdout, **kwargs):
            started.append(argv)

        def wait(self):
            return 0

    monkeypatch.setattr(command.subprocess, "Popen", Child)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    logs = tmp_path / "study" / "logs"
    logs.mkdir(parents=True)
    (logs / "worker2.log").symlink_to(victim)
    log = re.escape(str(logs / "worker2.log"))
    with pytest.raises(DataError, match=rf"^{log}: a worker log must be a regular file .*; remove it$"):
        command.run_workers(["--config", "c.yaml"], 2, str(tmp_path / "study"), threads=1)
    assert victim.read_text(encoding="utf-8") == "keep me\n" and started == []  # nothing written, no worker started
    (logs / "worker2.log").unlink()
    (logs / "worker2.log").symlink_to(tmp_path / "created.txt")  # a dangling link: nothing created through it
    (logs / "worker1.log").unlink()
    (logs / "worker1.log").mkdir()  # nor anything else that is not a regular file
    with pytest.raises(DataError, match=r"worker1\.log: a worker log must be a regular file"):
        command.run_workers(["--config", "c.yaml"], 2, str(tmp_path / "study"), threads=1)
    assert not (tmp_path / "created.txt").exists() and started == []
    (logs / "worker1.log").rmdir()
    (logs / "worker2.log").unlink()
    assert [code for _, code, _ in command.run_workers(["--config", "c.yaml"], 2, str(logs.parent), threads=1)] == [
        0,
        0,
    ]
    assert len(started) == 2 and (logs / "worker2.log").read_text(encoding="utf-8").startswith("=== ")
    (logs / "worker1.log").unlink()
    previous = os.umask(0o002)  # a study a group shares: its logs are group-writable, as open(log, "a") made them
    try:
        command.run_workers(["--config", "c.yaml"], 2, str(logs.parent), threads=1)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((logs / "worker1.log").stat().st_mode) == 0o664


def test_dry_run_takes_a_task_over_the_studys_own_dataset_with_its_hierarchy(tmp_path, tiny_bert_dir):
    from biohicl.study.preflight import preflight

    spec = f"siml-agreement@{tmp_path}/dataset#mesh={tmp_path}/icd10MeshTree.txt:dev"
    config = _config(tmp_path, tiny_bert_dir, tasks=[spec])
    checks = {c.what: c for c in preflight(config)}
    assert (checks[f"task {spec}"].ok, checks[f"task {spec}"].detail) == (True, "the study's dataset")
    other = f"siml-agreement@{tmp_path}/elsewhere#mesh={tmp_path}/icd10MeshTree.txt"  # not the study's: checked
    (check,) = [c for c in preflight(_config(tmp_path, tiny_bert_dir, tasks=[other])) if c.what == f"task {other}"]
    assert not check.ok and f"{tmp_path}/elsewhere" in check.detail


def test_dataset_only_builds_the_studys_dataset_and_trains_nothing(tmp_path, tiny_bert_dir, capsys):
    import yaml

    from biohicl.cli.reproduce import main as reproduce
    from biohicl.errors import ConfigError

    config = tmp_path / "study.yaml"
    values = tiny_study_values(str(tmp_path / "out"), str(tmp_path / "dataset"), model=str(tiny_bert_dir))
    config.write_text(yaml.safe_dump(values), encoding="utf-8")
    assert reproduce(["--config", str(config), "--dataset_only"]) == 0
    summary = json.loads((tmp_path / "dataset" / "summary.json").read_text(encoding="utf-8"))
    assert (summary["documents"], summary["top_k"]) == (24, 3)  # the config's limit and top_k
    assert "(24 documents); nothing trained or evaluated" in capsys.readouterr().out
    assert not (tmp_path / "out" / "tiny").exists()  # no base evaluated, no run trained
    with pytest.raises(ConfigError, match=r"^--dataset_only: builds the dataset only; not with --dry_run"):
        reproduce(["--config", str(config), "--dataset_only", "--dry_run"])

"""A study folder holding finished runs is reused only for the study the config describes now: a run (the base
included) evaluated at another ``eval_max_length``, ``eval_dtype``, prompt or ``limit_queries`` (one that changed
what a task scored), or trained on another dataset (before that dataset is built, where its settings show it), is
refused by name, never skipped as done and reported as the config's (biohicl.study.reuse)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from biohicl.errors import ConfigError
from biohicl.study import ReproduceConfig, plan_study, prepare_dataset, run_study
from biohicl.training.checkpoint import TRAINING_ARGS_JSON
from tests.conftest import tiny_study_values


def _values(tmp_path: Path, tiny_bert_dir: Path, dataset: str = "dataset", **overrides) -> dict:
    values = tiny_study_values(str(tmp_path / "study"), str(tmp_path / dataset), model=str(tiny_bert_dir))
    return values | {"variants": {"full": {}}} | overrides


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_bert_dir) -> Path:
    """A finished tiny study (the base and full/seed0, 2 steps), copied afresh by each test."""
    out = tmp_path_factory.mktemp("reuse")
    run_study(ReproduceConfig.from_dict(_values(out, tiny_bert_dir)), progress=False, write_plots=False)
    return out


@pytest.fixture
def study(finished, tmp_path) -> Path:
    for name in ("study", "dataset"):
        shutil.copytree(finished / name, tmp_path / name)
    run = tmp_path / "study" / "tiny" / "full" / "seed0"  # as the run saved it, in this copy's dataset
    args = json.loads((run / TRAINING_ARGS_JSON).read_text(encoding="utf-8"))
    (run / TRAINING_ARGS_JSON).write_text(json.dumps(args | {"dataset_path": str(tmp_path / "dataset")}), "utf-8")
    return tmp_path


def _model(values: dict, **changes) -> dict:
    return values | {"models": [values["models"][0] | changes]}


def test_the_same_config_skips_every_run(study, tiny_bert_dir):
    config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir))
    assert [r.status for r in plan_study(config)] == ["done", "done"]


def test_a_run_saved_before_a_setting_existed_is_compared_at_the_default_it_trained_with(study, tiny_bert_dir):
    """A finished run an older version saved has no ``contrastive_mean``: it trained with ``positives``, so a config
    that leaves the setting out reuses it, and one that asks for ``contrastable`` refuses it naming the setting
    (before: a setting the saved run lacked was not compared, and the run was reported as the new config's)."""
    run = study / "study" / "tiny" / "full" / "seed0"
    args = json.loads((run / TRAINING_ARGS_JSON).read_text(encoding="utf-8"))
    del args["contrastive_mean"]
    (run / TRAINING_ARGS_JSON).write_text(json.dumps(args), "utf-8")
    assert [r.status for r in plan_study(ReproduceConfig.from_dict(_values(study, tiny_bert_dir)))] == ["done", "done"]
    contrastable = _values(study, tiny_bert_dir) | {"variants": {"full": {"contrastive_mean": "contrastable"}}}
    with pytest.raises(ConfigError, match=r"tiny/full now \(contrastive_mean 'positives' → 'contrastable'\)"):
        plan_study(ReproduceConfig.from_dict(contrastable))


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"eval_max_length": 64}, "settings.max_length 32 → 64"),
        ({"query_prompt": "query: "}, "settings.query_prompt '' → 'query: '"),
    ],
)
def test_a_run_evaluated_at_another_length_or_prompt_is_refused_naming_its_folder_and_field(
    study, tiny_bert_dir, change, shown
):
    changed = ReproduceConfig.from_dict(_model(_values(study, tiny_bert_dir), **change))
    base = study / "study" / "tiny" / "base"
    with pytest.raises(ConfigError) as caught:
        plan_study(changed)
    assert str(caught.value).startswith(f"{base}: evaluated with other settings than the config gives tiny/base now")
    assert str(caught.value).endswith(
        f"(eval.json {shown}); restore the config, or move its eval.json away to evaluate it again"
    )
    shutil.move(base, study / "old_base")  # the base moved away: the trained run is refused the same way
    if "query_prompt" in change:
        return  # a prompt is a training setting too: the run is refused as trained with other settings first
    with pytest.raises(ConfigError, match=rf"^{study}/study/tiny/full/seed0: evaluated .* tiny/full now \(eval.json "):
        plan_study(changed)


def test_a_run_evaluated_at_another_dtype_is_refused(study, tiny_bert_dir):
    changed = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, eval_dtype="bfloat16"))
    with pytest.raises(
        ConfigError, match=r"tiny/base: evaluated .* \(eval.json settings.dtype 'float32' → 'bfloat16'\)"
    ):
        plan_study(changed)


def test_an_evaluation_added_at_other_settings_is_refused_too(study, tiny_bert_dir):
    path = study / "study" / "tiny" / "base" / "eval.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    record["added"] = [{"settings": {**record["settings"], "max_length": 128}, "tasks": ["biosses"]}]
    path.write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\(eval.json added\[0\].settings.max_length 128 → 32\)"):
        plan_study(ReproduceConfig.from_dict(_values(study, tiny_bert_dir)))


def test_a_run_trained_on_another_dataset_is_refused(study, tiny_bert_dir):
    values = _values(study, tiny_bert_dir, dataset="other")
    values["dataset"] = values["dataset"] | {"limit": 20}
    changed = ReproduceConfig.from_dict(values)
    run = study / "study" / "tiny" / "full" / "seed0"
    # not built yet (--dry_run): the runs' dataset is here and is not the config's
    with pytest.raises(ConfigError, match=rf"^{run}: trained on another dataset .*\(dataset_path '{study}/dataset' →"):
        plan_study(changed)
    # built elsewhere (the run moved away while it was built): the built summaries differ
    shutil.move(run, study / "away")
    prepare_dataset(changed, progress=False)
    shutil.move(study / "away", run)
    with pytest.raises(ConfigError) as caught:
        plan_study(changed)
    assert f"'{study}/other', documents 24 → 20, " in str(caught.value)


def test_a_dataset_the_build_cannot_match_is_refused_before_it_is_built(study, tiny_bert_dir):
    """The config's dataset is not built yet and asks for at most 20 documents, another top_k or seed: the runs
    trained on the 24-document build here are refused before the build (minutes on real data), not after it."""
    run = study / "study" / "tiny" / "full" / "seed0"
    for change, shown in [
        ({"limit": 20}, "documents 24 → at most 20 (limit)"),
        ({"top_k": 5}, "top_k 3 → 5"),
        ({"seed": 1}, "seed 0 → 1"),
    ]:
        values = _values(study, tiny_bert_dir, dataset="other")
        changed = ReproduceConfig.from_dict(values | {"dataset": values["dataset"] | change})
        with pytest.raises(ConfigError) as caught:
            run_study(changed, progress=False, write_plots=False)
        assert str(caught.value) == (
            f"{run}: trained on another dataset than the config's (dataset_path '{study}/dataset' → "
            f"'{study}/other', {shown}); restore the config, or move the run away to train it again"
        )
        assert not (study / "other").exists()  # nothing built


def test_the_same_build_settings_at_a_new_path_are_built_and_the_runs_reused(study, tiny_bert_dir, monkeypatch):
    """Nothing the build could still match is refused before it: the same settings build the same dataset."""
    import biohicl.study.execute as execute_module

    monkeypatch.setattr(execute_module, "evaluate_encoder", lambda *a, **k: pytest.fail("a finished run was redone"))
    config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, dataset="new"))
    run_study(config, progress=False, write_plots=False)
    assert json.loads((study / "new" / "summary.json").read_text(encoding="utf-8"))["documents"] == 24
    assert [r.status for r in plan_study(config)] == ["done", "done"]


def test_a_copy_of_the_dataset_is_the_same_dataset(study, tiny_bert_dir):
    shutil.copytree(study / "dataset", study / "copy")
    config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, dataset="copy"))
    assert [r.status for r in plan_study(config)] == ["done", "done"]


def test_a_dataset_path_of_another_machine_is_compared_by_its_document_count(study, tiny_bert_dir):
    """Committed records name a folder that is not here: the run's own count of documents read is compared."""
    run = study / "study" / "tiny" / "full" / "seed0"
    args = json.loads((run / TRAINING_ARGS_JSON).read_text(encoding="utf-8"))
    (run / TRAINING_ARGS_JSON).write_text(json.dumps(args | {"dataset_path": "/elsewhere/dataset"}), "utf-8")
    config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir))
    assert [r.status for r in plan_study(config)] == ["done", "done"]
    summary = json.loads((run / "training_summary.json").read_text(encoding="utf-8"))
    assert summary["data"]["documents_in_dataset"] == 24
    summary["data"]["documents_in_dataset"] = 30
    (run / "training_summary.json").write_text(json.dumps(summary), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\(training_summary.json data.documents_in_dataset 30 → 24 in "):
        plan_study(config)


def test_a_max_length_above_the_bases_positions_runs_at_the_cap_and_is_reused(tmp_path, tiny_bert_dir):
    """The tiny BERT has 128 positions: a study at max_length 200 (no eval_max_length) encodes, trains and evaluates
    at 128, as BioHiCL.from_base caps it; its records are the config's, not refused on the study's first re-plan."""
    values = _model(_values(tmp_path, tiny_bert_dir), max_length=200)
    del values["models"][0]["eval_max_length"]
    config = ReproduceConfig.from_dict(values)
    run_study(config, progress=False, write_plots=False)
    study = tmp_path / "study" / "tiny"
    for folder in (study / "base", study / "full" / "seed0"):
        assert json.loads((folder / "eval.json").read_text(encoding="utf-8"))["settings"]["max_length"] == 128
    assert [r.status for r in plan_study(config)] == ["done", "done"]
    # a record below the cap is still another length than the config's
    record = json.loads((study / "base" / "eval.json").read_text(encoding="utf-8"))
    record["settings"]["max_length"] = 100
    (study / "base" / "eval.json").write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\(eval.json settings.max_length 100 → 200\); restore the config"):
        plan_study(config)


def test_an_eval_max_length_above_the_bases_positions_evaluates_at_the_cap_and_is_reused(tmp_path, tiny_bert_dir):
    """max_length 64, eval_max_length 200 on the 128-position tiny BERT: the base and the trained run are evaluated
    at 128 (200 positions do not fit: a raw tensor-size RuntimeError before), the saved run encodes at 128, and the
    study's rerun reuses both runs."""
    values = _model(_values(tmp_path, tiny_bert_dir), max_length=64, eval_max_length=200)
    config = ReproduceConfig.from_dict(values)
    run_study(config, progress=False, write_plots=False)
    study = tmp_path / "study" / "tiny"
    for folder in (study / "base", study / "full" / "seed0"):
        assert json.loads((folder / "eval.json").read_text(encoding="utf-8"))["settings"]["max_length"] == 128
    saved = json.loads((study / "full" / "seed0" / "biohicl_config.json").read_text(encoding="utf-8"))
    assert saved["max_length"] == 128  # published, it encodes as it was evaluated
    assert [r.status for r in plan_study(config)] == ["done", "done"]


@pytest.fixture(scope="module")
def capped(tmp_path_factory, tiny_bert_dir) -> Path:
    """A finished tiny study evaluated on PubMedQA's first 3 test questions (``limit_queries: 3``, a quick run)."""
    out = tmp_path_factory.mktemp("capped")
    values = _values(out, tiny_bert_dir) | {"tasks": ["pubmedqa"], "limit_queries": 3}
    run_study(ReproduceConfig.from_dict(values), progress=False, write_plots=False)
    return out


@pytest.fixture
def quick(capped, tmp_path) -> Path:
    for name in ("study", "dataset"):
        shutil.copytree(capped / name, tmp_path / name)
    run = tmp_path / "study" / "tiny" / "full" / "seed0"
    args = json.loads((run / TRAINING_ARGS_JSON).read_text(encoding="utf-8"))
    (run / TRAINING_ARGS_JSON).write_text(json.dumps(args | {"dataset_path": str(tmp_path / "dataset")}), "utf-8")
    return tmp_path


def _quick(study: Path, tiny_bert_dir: Path, cap: int | None) -> ReproduceConfig:
    return ReproduceConfig.from_dict(_values(study, tiny_bert_dir) | {"tasks": ["pubmedqa"], "limit_queries": cap})


def _edit(path: Path, edit) -> None:
    record = json.loads(path.read_text(encoding="utf-8"))
    edit(record)
    path.write_text(json.dumps(record), encoding="utf-8")


def test_a_quick_run_is_not_reused_by_the_uncapped_study(quick, tiny_bert_dir):
    """The quick run scored 3 PubMedQA questions: the real run (no cap, or another cap) refuses it by name instead of
    reporting it as its results (it was skipped as done before, with no warning)."""
    base, run = quick / "study" / "tiny" / "base", quick / "study" / "tiny" / "full" / "seed0"
    assert json.loads((base / "eval.json").read_text(encoding="utf-8"))["tasks"]["pubmedqa"]["num_queries"] == 3
    assert [r.status for r in plan_study(_quick(quick, tiny_bert_dir, 3))] == ["done", "done"]
    for cap in (None, 5, 2):
        with pytest.raises(ConfigError) as caught:
            plan_study(_quick(quick, tiny_bert_dir, cap))
        assert str(caught.value) == (
            f"{base}: evaluated with other settings than the config gives tiny/base now (eval.json "
            f"settings.limit_queries 3 → {cap!r}); restore the config, or move its eval.json away to evaluate it again"
        )
    shutil.move(base, quick / "old_base")
    with pytest.raises(ConfigError) as caught:
        plan_study(_quick(quick, tiny_bert_dir, None))
    assert str(caught.value) == (
        f"{run}: evaluated with other settings than the config gives tiny/full now (eval.json settings.limit_queries "
        "3 → None); restore the config, or move its eval.json away to evaluate it again (the training is kept)"
    )


def test_moving_the_eval_json_away_evaluates_the_run_again_keeping_its_training(quick, tiny_bert_dir):
    """What the refusal tells the user: with the records moved away the plan evaluates both runs and trains neither
    (before, the refusal said to move the whole run away, which trains it again)."""
    runs = [quick / "study" / "tiny" / folder for folder in ("base", "full/seed0")]
    for folder in runs:
        shutil.move(folder / "eval.json", folder / "eval.capped.json")
    plan = plan_study(_quick(quick, tiny_bert_dir, None))
    assert [(r.run_dir, r.status) for r in plan] == [(runs[0], "evaluate"), (runs[1], "evaluate")]


def test_a_task_added_at_another_cap_is_refused_naming_the_entry(quick, tiny_bert_dir):
    path = quick / "study" / "tiny" / "base" / "eval.json"

    def added(record: dict) -> None:  # biosses scored first (no cap), pubmedqa added later at 3 questions
        record["added"] = [{"settings": dict(record["settings"]), "tasks": ["pubmedqa"]}]
        record["settings"]["limit_queries"] = None
        record["tasks"]["biosses"] = {"main_metric": "spearman", "num_queries": 100}

    _edit(path, added)
    with pytest.raises(ConfigError, match=r"tiny/base now \(eval.json added\[0\].settings.limit_queries 3 → None\)"):
        plan_study(_quick(quick, tiny_bert_dir, None))
    # the record's own settings (no cap) scored only BIOSSES, which scores its 100 pairs whatever the cap: reused
    assert [r.status for r in plan_study(_quick(quick, tiny_bert_dir, 3))] == ["done", "done"]


def test_a_cap_that_left_the_whole_task_is_the_same_evaluation(quick, tiny_bert_dir):
    """A record whose task scored fewer items than its cap scored the whole task: a config without a cap, or with one
    no smaller, would score the same items; one below that count would not. A record that does not give its cap
    (written before the field) is not compared."""
    paths = [quick / "study" / "tiny" / folder / "eval.json" for folder in ("base", "full/seed0")]
    for path in paths:  # 3 items under a cap of 1000
        _edit(path, lambda record: record["settings"].update(limit_queries=1000))
    for cap in (None, 3, 1000):
        assert [r.status for r in plan_study(_quick(quick, tiny_bert_dir, cap))] == ["done", "done"]
    with pytest.raises(ConfigError, match=r"tiny/base now \(eval.json settings.limit_queries 1000 → 2\)"):
        plan_study(_quick(quick, tiny_bert_dir, 2))
    for path in paths:
        _edit(path, lambda record: record["settings"].pop("limit_queries"))
    assert [r.status for r in plan_study(_quick(quick, tiny_bert_dir, 2))] == ["done", "done"]


def test_biosses_ignores_the_cap_so_its_records_are_reused_under_any(study, tiny_bert_dir):
    for cap in (None, 20):
        config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, limit_queries=cap))
        assert [r.status for r in plan_study(config)] == ["done", "done"]


@pytest.fixture(scope="module")
def agreeing(tmp_path_factory, tiny_bert_dir) -> Path:
    """A finished tiny study that scored the SimL agreement over its dataset's dev split under ``limit_queries: 20``
    (the cap limits the split's documents)."""
    out = tmp_path_factory.mktemp("agreeing")
    values = _values(out, tiny_bert_dir) | {"tasks": ["biosses", f"siml-agreement@{out}/dataset"], "limit_queries": 20}
    run_study(ReproduceConfig.from_dict(values), progress=False, write_plots=False)
    return out


def test_the_agreements_cap_counts_documents_not_the_pairs_it_scored(agreeing, tiny_bert_dir):
    """The dev split holds fewer documents than the cap of 20, so the capped and the uncapped evaluation score the
    same pairs. Before: ``num_queries`` (the pairs, n(n-1)/2) was compared with the cap, both ways refused."""
    from biohicl.evaluation.comparison import cut_by_cap

    record = json.loads((agreeing / "study" / "tiny" / "base" / "eval.json").read_text(encoding="utf-8"))
    entry, dev = record["tasks"]["siml-agreement"], (agreeing / "dataset" / "summary.json")
    documents = json.loads(dev.read_text(encoding="utf-8"))["splits"]["dev"]
    assert entry["num_documents"] == documents < 20 and entry["num_queries"] == documents * (documents - 1) // 2 > 20
    assert cut_by_cap("siml-agreement", record) is None  # the whole split (before: Cut(cap=20, scored=pairs))
    tasks = {"tasks": ["biosses", f"siml-agreement@{agreeing}/dataset"]}
    for cap in (None, 20, documents):
        config = ReproduceConfig.from_dict(_values(agreeing, tiny_bert_dir) | tasks | {"limit_queries": cap})
        assert [r.status for r in plan_study(config)] == ["done", "done"]
    config = ReproduceConfig.from_dict(_values(agreeing, tiny_bert_dir) | tasks | {"limit_queries": documents - 1})
    with pytest.raises(ConfigError, match=rf"tiny/base now \(eval.json settings.limit_queries 20 → {documents - 1}\)"):
        plan_study(config)

"""The study's dataset folder, already built, is reused only when its ``summary.json`` can be the build the config's
``dataset`` asks for: another ``limit``, ``top_k``, ``seed``, ``mix_label_kinds``, source or ``decontaminate`` at
the same path is refused by name (biohicl.study.reuse.check_reused_dataset), under
``--dry_run`` too, never kept silently; and a refused config leaves the study's ``study_config.json`` as it was."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from biohicl.cli.reproduce import main as reproduce
from biohicl.errors import ConfigError
from biohicl.study import ReproduceConfig, plan_study, prepare_dataset, run_study
from tests.conftest import tiny_study_values


def _values(root: Path, tiny_bert_dir: Path, **dataset) -> dict:
    values = tiny_study_values(str(root / "study"), str(root / "dataset"), model=str(tiny_bert_dir))
    values["training"] = values["training"] | {"max_steps": 1}
    return values | {"variants": {"full": {}}, "dataset": values["dataset"] | dataset}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_bert_dir) -> Path:
    """A finished tiny study (the base and full/seed0, 1 step) on its 24-document dataset, copied by each test."""
    root = tmp_path_factory.mktemp("dataset_checks")
    run_study(ReproduceConfig.from_dict(_values(root, tiny_bert_dir)), progress=False, write_plots=False)
    return root


@pytest.fixture
def study(finished, tmp_path) -> Path:
    for name in ("study", "dataset"):
        shutil.copytree(finished / name, tmp_path / name)
    return tmp_path


def test_the_tiny_build_records_what_the_checks_compare(study):
    """The numbers the refusals below show, from the build itself: 24 PubMedQA documents at top_k 3, seed 0, the
    PubMedQA test abstracts excluded (none kept), decontaminated."""
    summary = json.loads((study / "dataset" / "summary.json").read_text(encoding="utf-8"))
    assert (summary["documents"], summary["top_k"], summary["seed"], summary["mix_label_kinds"]) == (24, 3, 0, False)
    assert summary["sources"] == {"pubmedqa": 24}
    assert summary["test_documents"] == 0 and summary["excluded_documents"] > 0
    assert summary["decontamination"]


def _refusal(dataset: Path, shown: str, accepts: str) -> str:
    return (
        f"{dataset}: a built dataset the config's dataset settings would not build (summary.json {shown}); "
        f"to reuse this build set {accepts} in the config, or move the folder away to build it again"
    )


@pytest.mark.parametrize(
    ("change", "shown", "accepts"),
    [
        ({"limit": 20}, "documents 24 → at most 20 (limit)", "dataset.limit: 24"),
        ({"top_k": 5}, "top_k 3 → 5", "dataset.top_k: 3"),
        ({"seed": 1}, "seed 0 → 1", "dataset.seed: 0"),
        # the default inputs (none given) take BC5CDR's mentions too under mix_label_kinds: another build
        ({"mix_label_kinds": True, "inputs": None}, "mix_label_kinds False → True", "dataset.mix_label_kinds: false"),
        (
            {"inputs": [{"source": "medline", "files": ["pubmedqa/ori_pqal.json"]}]},
            "sources ['pubmedqa'] → ['medline'] (inputs)",
            "dataset.inputs to the build's sources ['pubmedqa']",
        ),
        ({"decontaminate": False}, "decontamination on → off (decontaminate false)", "dataset.decontaminate: true"),
    ],
)
def test_a_build_of_other_settings_at_the_configs_path_is_refused_naming_the_folder_and_field(
    study, tiny_bert_dir, change, shown, accepts
):
    """Before: the old build was reused ("reusing the MeSH-pair dataset"), both runs planned ``done`` and their
    results reported as the changed config's (the runs saved the same dataset path, so they passed too)."""
    dataset = study / "dataset"
    summary = json.loads((dataset / "summary.json").read_text(encoding="utf-8"))
    changed = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, **change))
    expected = _refusal(dataset, shown, accepts)
    for call in (
        lambda: prepare_dataset(changed, progress=False),
        lambda: prepare_dataset(changed, progress=False, build=False),  # a report of the runs on it
        lambda: plan_study(changed),  # --dry_run
    ):
        with pytest.raises(ConfigError) as caught:
            call()
        assert str(caught.value) == expected
    assert json.loads((dataset / "summary.json").read_text(encoding="utf-8")) == summary  # left as it was


def test_exclude_test_is_not_compared_since_no_run_trains_on_the_test_split(study, tiny_bert_dir):
    """The committed studies trained on `biohicl build-dataset`'s build (PubMedQA test abstracts kept as the `test`
    split) under the study default ``exclude_test: true``: the GPU session stages that build, so refusing it would
    stop the staged study on the lent machine. Without a limit the train and dev splits are the same either way."""
    config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, exclude_test=False, limit=None))
    folder, summary = prepare_dataset(config, progress=False)
    assert folder == study / "dataset" and summary["excluded_documents"] > 0  # built under exclude_test true
    assert [r.status for r in plan_study(config)] == ["done", "done"]


def test_a_build_that_excluded_the_test_abstracts_under_a_limit_is_refused_by_a_config_keeping_them(
    study, tiny_bert_dir
):
    """The mirror case: the config's own build at limit 24 would keep the test abstracts among its 24 documents,
    so fewer train and dev ones. Before: accepted without a word."""
    excluded = json.loads((study / "dataset" / "summary.json").read_text(encoding="utf-8"))["excluded_documents"]
    config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, exclude_test=False))
    shown = f"excluded test documents {excluded} → 0 (exclude_test false, limit 24)"
    with pytest.raises(ConfigError, match=re.escape(f"{shown}); to reuse this build set dataset.exclude_test: true")):
        plan_study(config)


def test_exclude_test_under_a_limit_the_build_reached_with_test_abstracts_kept_is_refused(study, tiny_bert_dir):
    """The limit counts documents after the exclusion: 24 documents with PubMedQA's test abstracts kept (as
    `biohicl build-dataset` keeps them) leave fewer train and dev documents than 24 with them excluded, so another
    training set. Before: accepted as the config's dataset."""
    kept_values = _values(study, tiny_bert_dir, path=str(study / "kept"), exclude_test=False)
    kept = ReproduceConfig.from_dict(kept_values | {"output_dir": str(study / "elsewhere")})  # no runs to refuse
    _, summary = prepare_dataset(kept, progress=False)
    excluded = json.loads((study / "dataset" / "summary.json").read_text(encoding="utf-8"))
    test = summary["splits"]["test"]
    assert summary["documents"] == 24 and summary["test_documents"] == test > 0
    assert summary["splits"]["train"] + summary["splits"]["dev"] == 24 - test
    assert excluded["splits"]["train"] + excluded["splits"]["dev"] == 24  # the config's build: another training set
    config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, path=str(study / "kept")))  # exclude_test true
    expected = _refusal(
        study / "kept", f"test documents {test} → 0 (exclude_test true, limit 24)", "dataset.exclude_test: false"
    )
    for call in (lambda: prepare_dataset(config, progress=False), lambda: plan_study(config)):
        with pytest.raises(ConfigError) as caught:
            call()
        assert str(caught.value) == expected
    accepted = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, path=str(study / "kept"), exclude_test=False))
    assert prepare_dataset(accepted, progress=False)[1] == summary  # the setting the refusal names reuses it
    # no limit: exclude_test only drops the test split then, not compared (nor is the limit, which no summary records)
    config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, path=str(study / "kept"), limit=None))
    assert prepare_dataset(config, progress=False)[1] == summary


def test_a_config_giving_only_the_path_is_told_the_builds_settings(study, tiny_bert_dir):
    """``dataset.path`` alone ("a built dataset folder to reuse") is compared with the dataset defaults (top_k 10):
    the config never changed, so the fix is the build's own top_k, not "restore the config" (before)."""
    values = _values(study, tiny_bert_dir)
    only_path = ReproduceConfig.from_dict(values | {"dataset": {"path": str(study / "dataset")}})
    with pytest.raises(ConfigError) as caught:
        plan_study(only_path)
    assert str(caught.value) == _refusal(study / "dataset", "top_k 3 → 10", "dataset.top_k: 3")
    told = ReproduceConfig.from_dict(values | {"dataset": {"path": str(study / "dataset"), "top_k": 3}})
    assert [r.status for r in plan_study(told)] == ["done", "done"]


def test_mix_label_kinds_is_not_compared_where_it_changes_nothing(study, tiny_bert_dir):
    """The inputs given, and a build of one label kind (24 indexing-labelled PubMedQA documents): mix_label_kinds
    only allows a second kind, so the build is the same either way. Before: refused."""
    summary = json.loads((study / "dataset" / "summary.json").read_text(encoding="utf-8"))
    assert summary["label_kinds"] == {"indexing": 24}
    config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, mix_label_kinds=True))
    assert prepare_dataset(config, progress=False)[1] == summary
    assert [r.status for r in plan_study(config)] == ["done", "done"]
    summary["label_kinds"] = {"indexing": 20, "mention": 4}  # a build of both kinds would be refused without it
    (study / "dataset" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\(summary.json mix_label_kinds False → True\); to reuse this build set "):
        plan_study(config)


def test_several_differences_are_named_together(study, tiny_bert_dir):
    changed = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, top_k=5, seed=1))
    with pytest.raises(ConfigError) as caught:
        plan_study(changed)
    assert str(caught.value) == _refusal(
        study / "dataset", "top_k 3 → 5, seed 0 → 1", "dataset.top_k: 3, dataset.seed: 0"
    )


def test_dry_run_refuses_it_in_one_line(study, tiny_bert_dir, capsys):
    path = study / "changed.yaml"
    path.write_text(json.dumps(_values(study, tiny_bert_dir, top_k=5)), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{study}/dataset: a built dataset .*\(summary.json top_k 3 → 5\)"):
        reproduce(["--config", str(path), "--dry_run"])


def test_the_same_settings_reuse_the_build_and_its_runs(study, tiny_bert_dir):
    config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir))
    folder, summary = prepare_dataset(config, progress=False)
    assert folder == study / "dataset" and summary["documents"] == 24
    assert [r.status for r in plan_study(config)] == ["done", "done"]


def test_the_folder_moved_away_is_built_again_at_the_new_settings(study, tiny_bert_dir):
    """What the refusal tells the user to do: the new build has the config's settings (the runs trained on the old
    one, moved away too here, would be refused by theirs, as tests/test_study_reuse.py shows)."""
    shutil.move(study / "dataset", study / "old_dataset")
    shutil.move(study / "study", study / "old_study")
    folder, summary = prepare_dataset(ReproduceConfig.from_dict(_values(study, tiny_bert_dir, top_k=2)), progress=False)
    assert folder == study / "dataset" and summary["top_k"] == 2 and summary["pairs"] == 2 * summary["documents"]


def test_a_refused_config_leaves_the_study_config_as_it_was(study, tiny_bert_dir):
    """Before: run_study wrote study_config.json first, so a config refused a moment later had replaced the one
    the study ran with (the record of the study, and what a rerun from it reads)."""
    saved = study / "study" / "study_config.json"
    run_study(ReproduceConfig.from_dict(_values(study, tiny_bert_dir)), progress=False, write_plots=False)
    before = saved.read_text(encoding="utf-8")  # this copy's study, as run (all done: nothing trained again)
    assert json.loads(before)["dataset"]["top_k"] == 3 and json.loads(before)["output_dir"] == str(study / "study")
    for refused in (
        _values(study, tiny_bert_dir, top_k=5),  # the dataset check
        _values(study, tiny_bert_dir) | {"eval_dtype": "bfloat16"},  # the plan's check of the evaluated runs
    ):
        with pytest.raises(ConfigError):
            run_study(ReproduceConfig.from_dict(refused), progress=False, write_plots=False)
        assert saved.read_text(encoding="utf-8") == before
    rerun = run_study(ReproduceConfig.from_yaml(saved), progress=False, write_plots=False)  # it still reruns
    assert rerun["missing"] == []


def test_an_accepted_config_is_written(study, tiny_bert_dir):
    saved = study / "study" / "study_config.json"
    saved.unlink()
    config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir))
    run_study(config, progress=False, write_plots=False)
    assert json.loads(saved.read_text(encoding="utf-8")) == json.loads(json.dumps(config.to_dict()))


def test_mix_label_kinds_without_inputs_builds_the_default_corpora_with_bc5cdrs_mentions(tmp_path, monkeypatch):
    """As `biohicl build-dataset --mix_label_kinds` does; before, the study built the indexing corpora alone under
    `mix_label_kinds: true` (7,752 documents where build-dataset gives 9,251) and no message said so."""
    import biohicl.data.build as build

    seen = []

    def record(inputs, output_dir, **kwargs):
        seen.append([source for source, _ in inputs])
        raise RuntimeError("stop before building")

    monkeypatch.setattr(build, "build_dataset_from_files", record)
    for mix in (True, False):
        dataset = {"path": str(tmp_path / f"mix{mix}"), "mix_label_kinds": mix}
        config = ReproduceConfig.from_dict(
            tiny_study_values(str(tmp_path / "out"), str(tmp_path / "unused"), model="m") | {"dataset": dataset}
        )
        with pytest.raises(RuntimeError, match="stop before building"):
            prepare_dataset(config, progress=False)
    assert [s.count("pubtator") for s in seen] == [1, 0]
    assert seen[0][:-1] == seen[1]  # the indexing corpora, then BC5CDR's mentions

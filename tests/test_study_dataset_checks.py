"""The study's dataset folder, already built, is reused only when its ``summary.json`` can be the build the config's
``dataset`` asks for: another ``limit``, ``top_k``, ``seed``, ``mix_label_kinds``, source or ``decontaminate`` at
the same path is refused by name (biohicl.study.reuse.check_reused_dataset), under
``--dry_run`` too, never kept silently; and a refused config leaves the study's ``study_config.json`` as it was."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"limit": 20}, "documents 24 → at most 20 (limit)"),
        ({"top_k": 5}, "top_k 3 → 5"),
        ({"seed": 1}, "seed 0 → 1"),
        ({"mix_label_kinds": True}, "mix_label_kinds False → True"),
        (
            {"inputs": [{"source": "medline", "files": ["pubmedqa/ori_pqal.json"]}]},
            "sources ['pubmedqa'] → ['medline'] (inputs)",
        ),
        ({"decontaminate": False}, "decontamination on → off (decontaminate false)"),
    ],
)
def test_a_build_of_other_settings_at_the_configs_path_is_refused_naming_the_folder_and_field(
    study, tiny_bert_dir, change, shown
):
    """Before: the old build was reused ("reusing the MeSH-pair dataset"), both runs planned ``done`` and their
    results reported as the changed config's (the runs saved the same dataset path, so they passed too)."""
    dataset = study / "dataset"
    summary = json.loads((dataset / "summary.json").read_text(encoding="utf-8"))
    changed = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, **change))
    expected = (
        f"{dataset}: a built dataset the config's dataset settings would not build (summary.json {shown}); "
        "move the folder away to build it again, or restore the config"
    )
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
    stop the staged study on the lent machine. The train and dev splits are the same either way."""
    config = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, exclude_test=False))
    folder, summary = prepare_dataset(config, progress=False)
    assert folder == study / "dataset" and summary["excluded_documents"] > 0  # built under exclude_test true
    assert [r.status for r in plan_study(config)] == ["done", "done"]


def test_several_differences_are_named_together(study, tiny_bert_dir):
    changed = ReproduceConfig.from_dict(_values(study, tiny_bert_dir, top_k=5, seed=1))
    with pytest.raises(ConfigError, match=r"\(summary.json top_k 3 → 5, seed 0 → 1\); move the folder away"):
        plan_study(changed)


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

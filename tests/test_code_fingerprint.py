"""Every evaluation record names the code that made it (``versions.biohicl_source``, a digest of the package's
source), and a study whose runs were made by several versions of the code says so in ``results.json`` and
``results.md``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from biohicl import provenance
from biohicl.data import dataset_card
from biohicl.evaluation.runner import evaluate_model, save_results
from biohicl.hub import model_card
from biohicl.provenance import source_digest
from biohicl.study.config import ReproduceConfig
from biohicl.study.plan import TRAINING_DONE_NAME, run_dir_for
from biohicl.study.report import markdown_results
from biohicl.study.stats import aggregate
from tests.conftest import synthetic_documents, tiny_study_values
from tests.test_evaluation import write_beir
from tests.test_significance import VocabEncoder

WARNING = "**Warning**: these runs were made by"


def _package(root):
    """A fake package folder: Python files, a packaged data file and a resource."""
    (root / "sub").mkdir(parents=True)
    (root / "resources").mkdir()
    (root / "__init__.py").write_text('"""pkg"""\n')
    (root / "sub" / "mod.py").write_text("VALUE = 1\n")
    (root / "registry.json").write_text("{}\n")
    (root / "resources" / "table.tsv.gz").write_bytes(b"\x1f\x8b\x00\x01")
    return root


def test_the_digest_of_one_file_is_its_length_prefixed_path_and_bytes(tmp_path):
    (tmp_path / "a.py").write_bytes(b"x = 1\n")
    by_hand = hashlib.sha256((4).to_bytes(8, "big") + b"a.py" + (6).to_bytes(8, "big") + b"x = 1\n")
    assert source_digest(tmp_path) == by_hand.hexdigest()[:12]


def test_the_digest_is_stable_and_changes_only_with_the_sources_paths_and_bytes(tmp_path):
    package = _package(tmp_path / "one" / "pkg")
    digest = source_digest(package)
    assert len(digest) == 12 and int(digest, 16) >= 0
    assert source_digest(package) == digest
    # a clone elsewhere, written later, with bytecode, hidden files and other kinds of file beside: the same digest
    clone = tmp_path / "two" / "elsewhere"
    shutil.copytree(package, clone)
    os.utime(clone / "sub" / "mod.py", (1_000_000, 1_000_000))
    (clone / "sub" / "__pycache__").mkdir()
    (clone / "sub" / "__pycache__" / "mod.cpython-310.pyc").write_bytes(b"bytecode")
    (clone / ".mod.py.swp").write_bytes(b"editor")
    (clone / "notes.txt").write_text("not packaged\n")
    assert source_digest(clone) == digest

    (clone / "sub" / "mod.py").write_text("VALUE = 2\n")  # one byte of one source file
    assert source_digest(clone) != digest
    (clone / "sub" / "mod.py").write_text("VALUE = 1\n")
    assert source_digest(clone) == digest
    (clone / "resources" / "table.tsv.gz").write_bytes(b"\x1f\x8b\x00\x02")  # a resource
    assert source_digest(clone) != digest
    (clone / "resources" / "table.tsv.gz").write_bytes(b"\x1f\x8b\x00\x01")
    (clone / "registry.json").write_text('{"m": 1}\n')  # a packaged data file
    assert source_digest(clone) != digest
    (clone / "registry.json").write_text("{}\n")
    (clone / "sub" / "mod.py").rename(clone / "sub" / "other.py")  # the same bytes under another path
    assert source_digest(clone) != digest


MODEL_TEMPLATE, DATASET_TEMPLATE = b"# {{ model_name }} card\n", b"# {{ dataset }} card\n"


def _wheel(root):
    """The fake package as a wheel installs it: the card templates inside the package folder."""
    package = _package(root / "site-packages" / "biohicl")
    (package / "model_card_template.md").write_bytes(MODEL_TEMPLATE)
    (package / "data").mkdir()
    (package / "data" / "dataset_card_template.md").write_bytes(DATASET_TEMPLATE)
    return package


def _clone(root):
    """The fake package as a clone holds it: the card templates beside the package folder, at the top level and in
    ``hub/``."""
    package = _package(root / "repo" / "biohicl")
    (package / "data").mkdir()
    (root / "repo" / "model_card_template.md").write_bytes(MODEL_TEMPLATE)
    (root / "repo" / "hub").mkdir()
    (root / "repo" / "hub" / "dataset_card_template.md").write_bytes(DATASET_TEMPLATE)
    return package


def test_a_wheel_and_a_clone_of_the_same_sources_and_templates_give_the_same_digest(tmp_path):
    wheel, clone = _wheel(tmp_path / "wheel"), _clone(tmp_path / "clone")
    assert source_digest(wheel) == source_digest(clone)
    # the templates count: without them, or with other bytes in either layout, another digest
    assert source_digest(_package(tmp_path / "bare" / "biohicl")) != source_digest(clone)
    digest = source_digest(clone)
    (tmp_path / "clone" / "repo" / "hub" / "dataset_card_template.md").write_bytes(b"# another card\n")
    assert source_digest(clone) != digest
    (wheel / "model_card_template.md").write_bytes(b"# another card\n")
    assert source_digest(wheel) not in (digest, source_digest(clone))


@pytest.mark.parametrize(
    ("name", "card_module"),
    [("templates/model_card_template.md", model_card), ("templates/dataset_card_template.md", dataset_card)],
)
def test_the_card_code_reads_the_template_the_digest_names(tmp_path, monkeypatch, name, card_module):
    moved = tmp_path / "template.md"  # an absolute "packaged" path: the lookup finds it wherever the package is
    moved.write_text("# card\n", encoding="utf-8")
    monkeypatch.setitem(provenance.TEMPLATES, name, (str(moved), "nowhere.md"))
    assert card_module.template_path() == moved
    monkeypatch.setitem(provenance.TEMPLATES, name, ("nowhere.md", "nowhere.md"))
    with pytest.raises(FileNotFoundError, match=card_module.TEMPLATE_NAME):
        card_module.template_path()


def test_the_installed_packages_digest_is_computed_once_per_process():
    first = source_digest()
    assert source_digest() == first and len(first) == 12


def test_an_evaluation_record_names_the_source_digest(tmp_path):
    record = evaluate_model(VocabEncoder(["insulin", "heart"]), [str(write_beir(tmp_path / "beir"))])
    saved = json.loads(save_results(record, tmp_path / "eval.json").read_text(encoding="utf-8"))
    assert saved["versions"]["biohicl_source"] == source_digest()
    assert saved["versions"]["biohicl"] == "0.1.0"  # beside the version, which does not tell the code apart


def _study(tmp_path) -> ReproduceConfig:
    values = tiny_study_values(str(tmp_path / "study"), str(tmp_path / "dataset"), model="m", hub_id="org/m")
    return ReproduceConfig.from_dict({**values, "seeds": [0, 1]})


def _record(score: float, source: str | None) -> dict:
    versions = {"biohicl": "0.1.0"} | ({"biohicl_source": source} if source else {})
    task = {"task": "biosses", "main_metric": "spearman", "metrics": {"spearman": score}}
    return {"tasks": {"biosses": task}, "summary": {"biosses/spearman": score}, "versions": versions}


def test_a_study_of_runs_made_by_two_versions_of_the_code_says_so(tmp_path):
    records = {
        ("tiny", "base", None): _record(0.5, "aaaaaaaaaaaa"),
        ("tiny", "full", 0): _record(0.6, "aaaaaaaaaaaa"),
        ("tiny", "full", 1): _record(0.7, "bbbbbbbbbbbb"),
        ("tiny", "no_mse", 0): _record(0.55, None),  # evaluated before records kept the digest
    }
    results = aggregate(_study(tmp_path), records)
    assert results["code_versions"] == {
        "aaaaaaaaaaaa": ["tiny/base", "tiny/full/seed0"],
        "bbbbbbbbbbbb": ["tiny/full/seed1"],
        "unknown": ["tiny/no_mse/seed0"],
    }
    table = markdown_results(results)
    warning = (
        f"{WARNING} 2 versions of the code: `aaaaaaaaaaaa` (tiny/base, tiny/full/seed0); `bbbbbbbbbbbb` "
        "(tiny/full/seed1); `unknown` (tiny/no_mse/seed0)."
    )
    assert warning in table.splitlines() and table.count(WARNING) == 1


def test_tasks_added_by_other_code_count_as_that_codes_run(tmp_path):
    added = _record(0.6, "aaaaaaaaaaaa") | {"added": [{"versions": {"biohicl_source": "bbbbbbbbbbbb"}}]}
    results = aggregate(
        _study(tmp_path), {("tiny", "base", None): _record(0.5, "aaaaaaaaaaaa"), ("tiny", "full", 0): added}
    )
    assert results["code_versions"] == {
        "aaaaaaaaaaaa": ["tiny/base", "tiny/full/seed0"],
        "bbbbbbbbbbbb": ["tiny/full/seed0"],
    }
    assert f"{WARNING} 2 versions of the code" in markdown_results(results)


def test_a_run_trained_by_one_code_and_evaluated_by_another_is_filed_under_both(tmp_path):
    config = _study(tmp_path)
    run = run_dir_for(config, "tiny", "full", 0)
    run.mkdir(parents=True)
    summary = {"global_step": 2, "biohicl_source": ["aaaaaaaaaaaa", "cccccccccccc"]}  # trained, resumed by other code
    (run / TRAINING_DONE_NAME).write_text(json.dumps(summary), encoding="utf-8")
    records = {("tiny", "base", None): _record(0.5, "bbbbbbbbbbbb"), ("tiny", "full", 0): _record(0.6, "bbbbbbbbbbbb")}
    results = aggregate(config, records)
    assert results["code_versions"] == {
        "bbbbbbbbbbbb": ["tiny/base", "tiny/full/seed0"],
        "aaaaaaaaaaaa": ["tiny/full/seed0"],
        "cccccccccccc": ["tiny/full/seed0"],
    }
    assert f"{WARNING} 3 versions of the code" in markdown_results(results)
    # the summaries the study read for its dev pick are used as they are; a summary without the list adds none
    given = aggregate(config, records, training_summaries={("tiny", "full", 0): {"biohicl_source": ["aaaaaaaaaaaa"]}})
    assert given["code_versions"] == {
        "bbbbbbbbbbbb": ["tiny/base", "tiny/full/seed0"],
        "aaaaaaaaaaaa": ["tiny/full/seed0"],
    }
    (run / TRAINING_DONE_NAME).write_text(json.dumps({"global_step": 2}), encoding="utf-8")
    assert aggregate(config, records)["code_versions"] == {"bbbbbbbbbbbb": ["tiny/base", "tiny/full/seed0"]}


def test_one_version_of_the_code_and_records_without_one_give_no_warning(tmp_path):
    records = {
        ("tiny", "base", None): _record(0.5, None),
        ("tiny", "full", 0): _record(0.6, "aaaaaaaaaaaa"),
        ("tiny", "full", 1): _record(0.7, "aaaaaaaaaaaa"),
    }
    results = aggregate(_study(tmp_path), records)
    assert results["code_versions"] == {
        "aaaaaaaaaaaa": ["tiny/full/seed0", "tiny/full/seed1"],
        "unknown": ["tiny/base"],
    }
    assert WARNING not in markdown_results(results)
    only_old = aggregate(_study(tmp_path), {("tiny", "full", 0): _record(0.6, None)})
    assert only_old["code_versions"] == {"unknown": ["tiny/full/seed0"]}
    assert WARNING not in markdown_results(only_old)


def _train(tiny_bert_dir, tmp_path, **overrides):
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.run import train_biohicl

    docs = tmp_path / "documents.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    values = dict(
        output_dir=str(tmp_path / "run"), base_model=str(tiny_bert_dir), base_model_hub_id="test/tiny-bert",
        dataset_path=str(docs), max_steps=2, per_device_train_batch_size=4, max_length=32, save_strategy="steps",
        save_steps=1, report_to="none", lora_target_modules=["query", "value"], seed=7, disable_tqdm=True,
        use_cpu=True,
    )  # fmt: skip
    run = train_biohicl(BioHiCLTrainingArguments(**{**values, **overrides}))
    return json.loads((run / "training_summary.json").read_text(encoding="utf-8"))["biohicl_source"]


def _checkpoint_sources(checkpoint, sources):
    """Rewrite what a checkpoint says trained it (None: nothing, as a checkpoint written before it was kept)."""
    path = checkpoint / "trainer_state.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    kept = state["stateful_callbacks"]
    if sources is None:
        del kept["SourceRecord"]
    else:
        kept["SourceRecord"]["attributes"]["sources"] = sources
    path.write_text(json.dumps(state), encoding="utf-8")


def test_a_training_summary_lists_the_code_that_trained_the_run_across_resumes(tiny_bert_dir, tmp_path):
    here = source_digest()
    assert _train(tiny_bert_dir, tmp_path) == [here]
    first = tmp_path / "run" / "checkpoint-1"
    state = json.loads((first / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["stateful_callbacks"]["SourceRecord"]["attributes"]["sources"] == [here]  # kept in each checkpoint
    # step 1 trained by other code, resumed by this one: both, in order; the checkpoint it writes lists both
    _checkpoint_sources(first, ["aaaaaaaaaaaa"])
    assert _train(tiny_bert_dir, tmp_path, resume_from_checkpoint=str(first)) == ["aaaaaaaaaaaa", here]
    last = tmp_path / "run" / "checkpoint-2"
    state = json.loads((last / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["stateful_callbacks"]["SourceRecord"]["attributes"]["sources"] == ["aaaaaaaaaaaa", here]
    # resumed at the last step (nothing left to train): the checkpoint's list as it is, this code trained no step
    _checkpoint_sources(last, ["aaaaaaaaaaaa", here, "bbbbbbbbbbbb"])
    assert _train(tiny_bert_dir, tmp_path, resume_from_checkpoint=str(last)) == ["aaaaaaaaaaaa", here, "bbbbbbbbbbbb"]
    _checkpoint_sources(last, ["aaaaaaaaaaaa"])
    assert _train(tiny_bert_dir, tmp_path, resume_from_checkpoint=str(last)) == ["aaaaaaaaaaaa"]
    # a checkpoint written before the list was kept: its step was trained by code that kept none, then this code
    _checkpoint_sources(first, None)
    assert _train(tiny_bert_dir, tmp_path, resume_from_checkpoint=str(first)) == ["unknown", here]

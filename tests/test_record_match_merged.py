"""A record of an adapter run evaluated merged (``BioHiCL.from_pretrained(RUN, merge=True)``, as notebook 02 does)
says ``kind`` ``merged``, yet its ``model.weights_sha256`` is of the run folder's ``adapter_model.safetensors``: the
files it loaded. Publish compares it with the run's adapter as it does an adapter record's, so a record of an earlier
adapter of the same run folder (trained again into it) is refused; only a record whose digest is of other files (a
merged export's ``model.safetensors``, or an older record that does not say which it hashed) is warned."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from biohicl.errors import PublishError
from biohicl.hub.publish import build_model_repo_folder
from tests.test_hub import stub_safetensors

BASE_ID = "org/tiny-bert"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("biohicl")]


@pytest.fixture
def trained(tmp_path, tiny_bert_dir):
    """A run folder saved from an adapter over the tiny BERT (its LoRA B drawn, so the adapter file is its own), the
    model in memory to train again, and a BEIR folder to evaluate on."""
    import torch

    from biohicl.models.model import BioHiCL
    from tests.conftest import randomize_lora_b
    from tests.test_evaluation import write_beir

    run, beir = tmp_path / "run", write_beir(tmp_path / "beir")
    model = BioHiCL.from_base(str(tiny_bert_dir), hub_id=BASE_ID, max_length=32)
    model.add_lora(r=2, alpha=4, target_modules=["query", "value"], verbose=False)
    randomize_lora_b(model, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(run)
    (run / "training_summary.json").write_text(json.dumps({"global_step": 3}))
    return run, model, beir


def evaluate_merged(folder: Path, tiny_bert_dir: Path, beir: Path, out: Path) -> dict:
    """What notebook 02's evaluation cell writes: the folder loaded with ``merge=True``, evaluated, saved."""
    from biohicl.evaluation.runner import evaluate_model, save_results
    from biohicl.models.model import BioHiCL

    model = BioHiCL.from_pretrained(folder, base_model_path=str(tiny_bert_dir), merge=True)
    record = evaluate_model(model, [str(beir)], model_id=f"{BASE_ID} (BioHiCL)", show_progress_bar=False)
    save_results(record, out)
    return record


def test_a_merged_evaluation_of_the_runs_own_adapter_publishes_and_one_of_an_earlier_adapter_is_refused(
    trained, tiny_bert_dir, tmp_path, caplog
):
    import torch

    from tests.conftest import randomize_lora_b

    run, model, beir = trained
    first = sha256(run / "adapter_model.safetensors")
    record = evaluate_merged(run, tiny_bert_dir, beir, run / "eval_results.json")
    # the record says merged, and holds the digest of the adapter file it loaded
    assert record["model"]["config"]["kind"] == "merged"
    assert record["model"]["weights_sha256"] == first
    assert record["model"]["weights_files"] == ["adapter_model.safetensors"]

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        folder = build_model_repo_folder(run, tmp_path / "repo", license="mit")
    assert warnings(caplog) == []
    assert json.loads((folder / "eval_results.json").read_text())["model"]["weights_sha256"] == first

    # trained again into the same folder (MAX_STEPS changed, the training cell re-run), the push cell run again
    randomize_lora_b(model, generator=torch.Generator().manual_seed(1))
    model.save_pretrained(run)
    second = sha256(run / "adapter_model.safetensors")
    assert second != first
    with pytest.raises(PublishError) as error:
        build_model_repo_folder(run, tmp_path / "repo2", license="mit")
    assert str(error.value) == (
        f"{run / 'eval_results.json'}: model.weights_sha256 is {first[:12]}…, but the model published has "
        f"{second[:12]}… (adapter_model.safetensors in {run}): the record scored other weights (an earlier step of a "
        "resumed run?); evaluate the model again (`biohicl evaluate RUN --output FILE`) and pass that record"
    )
    assert not (tmp_path / "repo2").exists()

    # evaluated again, merged: the record of the adapter published
    evaluate_merged(run, tiny_bert_dir, beir, run / "eval_results.json")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_model_repo_folder(run, tmp_path / "repo2", license="mit")
    assert warnings(caplog) == []


def test_a_swapped_adapter_file_is_caught_by_a_merged_record_as_by_an_adapter_record(trained, tiny_bert_dir, tmp_path):
    run, _, beir = trained
    evaluate_merged(run, tiny_bert_dir, beir, run / "eval_results.json")
    given = sha256(run / "adapter_model.safetensors")
    swapped = stub_safetensors("another adapter")
    (run / "adapter_model.safetensors").write_bytes(swapped)  # the file swapped under the record
    ours = hashlib.sha256(swapped).hexdigest()
    with pytest.raises(PublishError, match=rf"^{run / 'eval_results.json'}: model.weights_sha256 is {given[:12]}…"):
        build_model_repo_folder(run, tmp_path / "repo", license="mit")
    with pytest.raises(PublishError, match=rf"but the model published has {ours[:12]}… \(adapter_model.safetensors"):
        build_model_repo_folder(run, tmp_path / "repo", license="mit")


def test_a_merged_exports_record_and_an_older_merged_record_cannot_be_compared_and_say_why(
    trained, tiny_bert_dir, tmp_path, caplog
):
    run, model, beir = trained
    model.save_merged(tmp_path / "merged")
    exported = evaluate_merged(tmp_path / "merged", tiny_bert_dir, beir, tmp_path / "merged.json")
    # a merged export's record: its digest is of the merged folder's file, which no adapter file matches
    assert exported["model"]["weights_files"] == ["model.safetensors"]
    assert exported["model"]["weights_sha256"] == sha256(tmp_path / "merged" / "model.safetensors")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_model_repo_folder(run, tmp_path / "repo", eval_results=tmp_path / "merged.json", license="mit")
    assert warnings(caplog) == [
        f"{tmp_path / 'merged.json'}: a record of a merged export: its model.weights_sha256 is of its "
        "model.safetensors, not of the adapter published (adapter_model.safetensors), so a record of other weights "
        "cannot be detected; evaluate the run as saved (`biohicl evaluate RUN`) to check it"
    ]

    # a merged record written before biohicl recorded which files it hashed: of an adapter loaded merged (checkable)
    # or of a merged export (not) cannot be told
    older = dict(exported, model={k: v for k, v in exported["model"].items() if k != "weights_files"})
    (tmp_path / "older.json").write_text(json.dumps(older))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_model_repo_folder(
            run, tmp_path / "repo", eval_results=tmp_path / "older.json", license="mit", overwrite=True
        )
    assert warnings(caplog) == [
        f"{tmp_path / 'older.json'}: a merged record written before biohicl recorded which files it hashed (it gives "
        "no model.weights_files): its model.weights_sha256 may be of a merged export's files rather than of an "
        "adapter loaded merged, so a record of other weights cannot be detected; evaluate the run as saved (`biohicl "
        "evaluate RUN`) to check it"
    ]

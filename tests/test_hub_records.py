"""What publish stages as a model's results and as the model: an evaluation record of this model as saved (not its
base's, not one scored at another max length), never a training checkpoint; the card shows the curves it uploads."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from biohicl.errors import PublishError
from biohicl.hub.publish import build_model_repo_folder, publish_folder
from tests.test_hub import PNG, RecordingHfApi, stub_safetensors

BASE_ID = "org/tiny-bert"
#: a run's biohicl_config.json as `biohicl train` saves an adapter over BASE_ID at 32 tokens
RUN_CONFIG = {
    "base_model": BASE_ID,
    "base_revision": None,
    "pooling": "mean",
    "normalize": True,
    "max_length": 32,
    "query_prompt": "",
    "document_prompt": "",
    "kind": "adapter",
}


def record(model_id: str, spearman: float, *, max_length: int = 32, **config: object) -> dict:
    """A record as `biohicl evaluate` writes it (results/base.json, results/mini.json of the review)."""
    model_config = {**RUN_CONFIG, "max_length": max_length, **config}
    return {
        "format": 1,
        "model": {"id": model_id, "revision": None, "config": model_config},
        "settings": {"split": "test", "limit_queries": None, "dtype": "float32", "max_length": max_length},
        "tasks": {"biosses": {"split": "all", "metrics": {"spearman": spearman}, "num_queries": 100}},
        "summary": {"biosses/spearman": spearman},
    }


#: the run's own record and its base's (`biohicl evaluate org/tiny-bert`: kind full, its own id)
TUNED = record(f"run (LoRA over {BASE_ID})", 0.71)
BASE = record(BASE_ID, 0.65, kind="full")


def fake_run(root: Path, name: str = "run", *, summary: bool = True) -> Path:
    """A run folder as `biohicl train` leaves it, its weights stand-ins (publish copies them, it never loads them)."""
    run = root / name
    run.mkdir(parents=True)
    (run / "biohicl_config.json").write_text(json.dumps(RUN_CONFIG))
    (run / "adapter_model.safetensors").write_bytes(stub_safetensors("weights"))
    (run / "trainer_state.json").write_text(json.dumps({"global_step": 2, "max_steps": 2}))
    (run / "training_curves.png").write_bytes(PNG)
    if summary:
        (run / "training_summary.json").write_text(json.dumps({"global_step": 2, "data": {"documents": 20}}))
    return run


def cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """``biohicl ARGV`` in-process: exit code 2 and its one stderr line."""
    from biohicl.cli.main import main as cli_main

    capsys.readouterr()
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def write(path: Path, value: dict) -> Path:
    path.write_text(json.dumps(value))
    return path


def test_the_base_record_as_the_models_results_is_refused_naming_the_file_and_field(tmp_path):
    # `publish runs/mini --eval_results results/base.json --base_eval_results results/base.json` filed the base's
    # numbers as the adapter's in the card table and model-index
    run = fake_run(tmp_path)
    base, tuned = write(tmp_path / "base.json", BASE), write(tmp_path / "mini.json", TUNED)
    config = run / "biohicl_config.json"
    with pytest.raises(PublishError) as error:
        build_model_repo_folder(run, tmp_path / "repo", eval_results=base, base_eval_results=base, license="mit")
    assert str(error.value) == (
        f"{base}: model.config.kind is 'full', but the model published ({config}) has 'adapter': the record is of "
        "another model, not this one's results; evaluate the run as saved (`biohicl evaluate RUN`, no --max_length "
        "or prompt options) and pass that"
    )
    # the adapter's record given as its base's
    with pytest.raises(PublishError, match=rf"^{tuned}: model.config.kind is 'adapter': a tuned model's record, not"):
        build_model_repo_folder(run, tmp_path / "repo", eval_results=tuned, base_eval_results=tuned)
    # another model's record as the base's
    other = write(tmp_path / "other.json", record("org/other", 0.5, kind="full", base_model="org/other"))
    with pytest.raises(PublishError) as error:
        build_model_repo_folder(run, tmp_path / "repo", eval_results=tuned, base_eval_results=other)
    assert str(error.value).startswith(
        f"{other}: model.config.base_model is 'org/other', not the base of the model published ({BASE_ID}, {config})"
    )
    # a different run's record (another pooling) copied in as the run's own eval.json
    write(run / "eval.json", record("run2 (LoRA over org/tiny-bert)", 0.7, pooling="cls"))
    with pytest.raises(PublishError, match=r"eval\.json: model\.config\.pooling is 'cls', but the model published"):
        build_model_repo_folder(run, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_a_record_scored_at_another_max_length_or_prompt_is_refused(tmp_path, capsys):
    run = fake_run(tmp_path)
    at_128 = write(tmp_path / "mini128.json", record("run", 0.74, max_length=128))
    with pytest.raises(PublishError) as error:
        build_model_repo_folder(run, tmp_path / "repo", eval_results=at_128)
    assert str(error.value).startswith(
        f"{at_128}: settings.max_length is 128, but the model published ({run / 'biohicl_config.json'}) has 32: its "
        "numbers are not the model's as its card describes it"
    )
    # a record whose settings do not say: its model's config does
    older = record("run", 0.74, max_length=128)
    del older["settings"]["max_length"]
    with pytest.raises(PublishError, match=r": model\.config\.max_length is 128, but the model published"):
        build_model_repo_folder(run, tmp_path / "repo", eval_results=write(tmp_path / "older.json", older))
    prompted = record("run", 0.74, query_prompt="query: ")
    with pytest.raises(
        PublishError, match=r": model\.config\.query_prompt is 'query: ', but the model published .* has '':"
    ):
        build_model_repo_folder(run, tmp_path / "repo", eval_results=write(tmp_path / "prompted.json", prompted))
    argv = ["publish", str(run), "--repo_id", "me/x", "--dry_run", "--eval_results", str(at_128)]
    assert "settings.max_length is 128" in cli_error(argv, capsys)


def test_the_runs_own_records_publish_with_the_measured_line_and_curves(tmp_path):
    run = fake_run(tmp_path)
    tuned, base = write(tmp_path / "mini.json", TUNED), write(tmp_path / "base.json", BASE)
    folder = build_model_repo_folder(
        run, tmp_path / "repo", repo_id="me/tiny", eval_results=tuned, base_eval_results=base, license="mit"
    )
    text = (folder / "README.md").read_text()
    assert "| BIOSSES (all) | Spearman | 0.6500 | 0.7100 | +0.0600 |" in text
    assert (
        "Measured at max length 32 tokens in float32 (`eval_results.json` settings.max_length, settings.dtype).\n"
        in text
    )
    assert "![training_curves.png](training_curves.png)" in text and (folder / "training_curves.png").is_file()
    results = ModelCard(text).data.to_dict()["model-index"][0]["results"]
    assert [m["value"] for r in results for m in r["metrics"]] == [0.71]
    # the record of the adapter's merged export scores the same weights
    merged = write(tmp_path / "merged.json", record("run-merged", 0.71, kind="merged"))
    build_model_repo_folder(run, tmp_path / "repo", eval_results=merged, base_eval_results=base, overwrite=True)
    # a record whose settings give no max length: the line names the field it came from
    older = record("run", 0.71)
    del older["settings"]["max_length"]
    folder = build_model_repo_folder(
        run, tmp_path / "repo", eval_results=write(tmp_path / "older.json", older), overwrite=True
    )
    assert (
        "Measured at max length 32 tokens in float32 (`eval_results.json` model.config.max_length, settings.dtype)."
        in (folder / "README.md").read_text()
    )
    # no curves staged: no image in the card
    (run / "training_curves.png").unlink()
    folder = build_model_repo_folder(run, tmp_path / "repo", eval_results=tuned, overwrite=True)
    assert "![" not in (folder / "README.md").read_text()


def test_a_checkpoint_folder_is_refused_pointing_at_the_run(tmp_path, capsys):
    # publishing runs/mini/checkpoint-2 succeeded with a card of the whole run (its max_steps, no optimizer steps)
    run = fake_run(tmp_path)
    checkpoint = run / "checkpoint-2"
    checkpoint.mkdir()
    for name in ("biohicl_config.json", "adapter_model.safetensors", "trainer_state.json"):
        (checkpoint / name).write_bytes((run / name).read_bytes())
    with pytest.raises(PublishError) as error:
        build_model_repo_folder(checkpoint, tmp_path / "repo", license="mit")
    assert str(error.value) == (
        f"{checkpoint}: a training checkpoint (step 2), not a finished run: its card would describe the whole run; "
        f"publish the run folder {run}, which holds the step `biohicl train` kept (--load_best_model_at_end keeps "
        "the selected one)"
    )
    # a checkpoint copied elsewhere under another name: trainer_state.json and no training_summary.json
    copied = fake_run(tmp_path, "step2", summary=False)
    with pytest.raises(PublishError, match=rf"^{copied}: a training checkpoint, not a finished run: .* publish the "):
        build_model_repo_folder(copied, tmp_path / "repo")
    argv = ["publish", str(checkpoint), "--repo_id", "me/x", "--dry_run", "--out", str(tmp_path / "r")]
    assert "a training checkpoint (step 2)" in cli_error(argv, capsys)
    assert not (tmp_path / "repo").exists() and not (tmp_path / "r").exists()
    assert build_model_repo_folder(run, tmp_path / "repo", license="mit").is_dir()  # the run itself publishes


def test_the_commit_message_names_the_repo_not_the_staging_folder(tmp_path):
    run = fake_run(tmp_path)
    folder = build_model_repo_folder(run, tmp_path / "staging", repo_id="me/tiny", license="mit")
    api = RecordingHfApi()
    publish_folder(api, folder, "me/tiny")
    assert api.calls[-1][2]["commit_message"] == "Upload me/tiny with biohicl"


def test_a_local_base_evaluated_from_its_folder_publishes_and_a_merged_export_is_not_the_base(
    tmp_path, tiny_bert_dir, capsys
):
    """Through `biohicl evaluate`: an adapter trained from a local base folder with a Hub id (the docs' remedy,
    --base_model_hub_id) publishes with the record of that folder (its base_model a path, which names no Hub model);
    the record of the adapter's merged export, given as the base's, is refused (its model.id is its base's Hub id)."""
    from biohicl.cli.main import main as cli_main
    from biohicl.models.model import BioHiCL
    from tests.test_evaluation import write_beir

    model = BioHiCL.from_base(str(tiny_bert_dir), hub_id=BASE_ID, max_length=32)
    model.add_lora(r=2, alpha=4, target_modules=["query", "value"], verbose=False)
    model.save_pretrained(tmp_path / "run")
    model.save_merged(tmp_path / "merged")
    for folder in ("run", "merged"):
        (tmp_path / folder / "training_summary.json").write_text(json.dumps({"global_step": 1}))
    beir = write_beir(tmp_path / "beir")
    for name, argv in (
        ("base", [str(tiny_bert_dir), "--max_length", "32"]),
        ("run", [str(tmp_path / "run"), "--base_model_path", str(tiny_bert_dir)]),
        ("merged", [str(tmp_path / "merged")]),
    ):
        out = str(tmp_path / f"{name}.json")
        assert cli_main(["evaluate", *argv, "--tasks", str(beir), "--no_progress", "--output", out]) == 0
    base = json.loads((tmp_path / "base.json").read_text())
    assert base["model"]["config"]["base_model"] == str(tiny_bert_dir.resolve())
    merged = json.loads((tmp_path / "merged.json").read_text())["model"]
    assert (merged["id"], merged["config"]["kind"]) == (BASE_ID, "merged")  # a local merged folder: its base's id
    assert (
        merged["weights_sha256"] == hashlib.sha256((tmp_path / "merged" / "model.safetensors").read_bytes()).hexdigest()
    )
    folder = build_model_repo_folder(
        tmp_path / "run",
        tmp_path / "repo",
        eval_results=tmp_path / "run.json",
        base_eval_results=tmp_path / "base.json",
        license="mit",
    )
    assert (folder / "base_eval_results.json").is_file()
    argv = ["publish", str(tmp_path / "run"), "--repo_id", "me/x", "--dry_run", "--eval_results"]
    argv += [str(tmp_path / "run.json"), "--base_eval_results", str(tmp_path / "merged.json")]
    assert cli_error(argv, capsys).endswith(
        f"{tmp_path / 'merged.json'}: model.config.kind is 'merged': a tuned model's record, not one of the base "
        f"{BASE_ID} ({tmp_path / 'run' / 'biohicl_config.json'}); pass the record of `biohicl evaluate {BASE_ID}` as "
        "--base_eval_results"
    )


def test_a_merged_record_that_gives_the_bases_id_is_refused_as_the_base(tmp_path):
    # an older merged export's record: `biohicl evaluate FOLDER` wrote the base's Hub id as its model.id
    run = fake_run(tmp_path)
    merged = write(tmp_path / "merged.json", record(BASE_ID, 0.71, kind="merged"))
    with pytest.raises(PublishError, match=rf"^{merged}: model.config.kind is 'merged': a tuned model's record"):
        build_model_repo_folder(
            run, tmp_path / "repo", eval_results=write(tmp_path / "t.json", TUNED), base_eval_results=merged
        )
    # a merged release used as the base: its model.id is the run's base, its base_model its own base
    release = write(tmp_path / "release.json", record(BASE_ID, 0.7, kind="merged", base_model="org/bert"))
    build_model_repo_folder(run, tmp_path / "repo", base_eval_results=release)


def test_a_record_of_other_weights_is_refused_an_older_record_warned_once_and_the_runs_own_publishes(
    tmp_path, tiny_bert_dir, caplog, capsys
):
    """Train, `biohicl evaluate RUN`, resume training (the adapter file changes), publish: the card showed the later
    step's optimizer steps beside the earlier weights' BIOSSES value without a word."""
    import torch

    from biohicl.cli.main import main as cli_main
    from biohicl.evaluation.runner import evaluate_model
    from biohicl.models.model import BioHiCL
    from tests.conftest import randomize_lora_b
    from tests.test_evaluation import write_beir

    run, beir = tmp_path / "run", write_beir(tmp_path / "beir")
    model = BioHiCL.from_base(str(tiny_bert_dir), hub_id=BASE_ID, max_length=32)
    model.add_lora(r=2, alpha=4, target_modules=["query", "value"], verbose=False)
    randomize_lora_b(model, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(run)
    (run / "training_summary.json").write_text(json.dumps({"global_step": 2}))
    # a model built in memory (as during training): no folder's files describe it, so no digest
    assert "weights_sha256" not in evaluate_model(model, [str(beir)], show_progress_bar=False)["model"]

    def evaluate(out: Path) -> dict:
        argv = ["evaluate", str(run), "--base_model_path", str(tiny_bert_dir), "--tasks", str(beir)]
        assert cli_main([*argv, "--no_progress", "--output", str(out)]) == 0
        return json.loads(out.read_text())

    at_step_2 = evaluate(run / "eval_results.json")
    step_2_digest = hashlib.sha256((run / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert at_step_2["model"]["weights_sha256"] == step_2_digest
    # training resumed: other adapter weights saved over the run
    randomize_lora_b(model, generator=torch.Generator().manual_seed(1))
    model.save_pretrained(run)
    step_4_digest = hashlib.sha256((run / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert step_4_digest != step_2_digest
    with pytest.raises(PublishError) as error:
        build_model_repo_folder(run, tmp_path / "repo", license="mit")
    assert str(error.value) == (
        f"{run / 'eval_results.json'}: model.weights_sha256 is {step_2_digest[:12]}…, but the model published has "
        f"{step_4_digest[:12]}… (adapter_model.safetensors in {run}): the record scored other weights (an earlier "
        "step of a resumed run?); evaluate the model again (`biohicl evaluate RUN --output FILE`) and pass that record"
    )
    argv = ["publish", str(run), "--repo_id", "me/x", "--dry_run", "--license", "mit", "--out", str(tmp_path / "r")]
    assert "eval_results.json: model.weights_sha256 is " in cli_error(argv, capsys)
    assert not (tmp_path / "repo").exists() and not (tmp_path / "r").exists()

    # the same record written before biohicl recorded the weights: one warning, and it publishes
    older = dict(at_step_2, model={k: v for k, v in at_step_2["model"].items() if k != "weights_sha256"})
    write(run / "eval_results.json", older)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_model_repo_folder(run, tmp_path / "repo", license="mit")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"{run / 'eval_results.json'} was written before biohicl recorded the weights it scored (it gives no "
        "model.weights_sha256): a record of other weights cannot be detected; evaluate the run as saved (`biohicl "
        "evaluate RUN`) to check it"
    ]

    # evaluated again: the record of the weights published, no warning
    assert evaluate(run / "eval_results.json")["model"]["weights_sha256"] == step_4_digest
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        folder = build_model_repo_folder(run, tmp_path / "repo", license="mit", overwrite=True)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert json.loads((folder / "eval_results.json").read_text())["model"]["weights_sha256"] == step_4_digest


def test_a_folders_weights_digest_is_its_adapter_file_else_its_model_file_else_its_shards_in_name_order(tmp_path):
    from biohicl.models.signature import folder_weights_sha256

    assert folder_weights_sha256(tmp_path) is None
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"second")
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"first")
    assert folder_weights_sha256(tmp_path) == hashlib.sha256(b"firstsecond").hexdigest()
    (tmp_path / "model.safetensors").write_bytes(b"merged")
    assert folder_weights_sha256(tmp_path) == hashlib.sha256(b"merged").hexdigest()
    (tmp_path / "adapter_model.safetensors").write_bytes(b"adapter")
    assert folder_weights_sha256(tmp_path) == hashlib.sha256(b"adapter").hexdigest()


def test_a_merged_exports_record_of_other_weights_warns_once_and_a_base_records_weights_are_not_compared(
    tmp_path, caplog
):
    run = fake_run(tmp_path)  # its adapter file: stub_safetensors("weights")
    ours = hashlib.sha256(stub_safetensors("weights")).hexdigest()
    merged = record("run-merged", 0.71, kind="merged")
    merged["model"]["weights_sha256"] = hashlib.sha256(b"merged weights").hexdigest()
    base = record(BASE_ID, 0.65, kind="full")
    base["model"]["weights_sha256"] = hashlib.sha256(b"the base's weights").hexdigest()
    tuned = record("run", 0.71)
    tuned["model"]["weights_sha256"] = ours
    with caplog.at_level(logging.WARNING):
        build_model_repo_folder(
            run,
            tmp_path / "repo",
            eval_results=write(tmp_path / "merged.json", merged),
            base_eval_results=write(tmp_path / "base.json", base),
            license="mit",
        )
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"{tmp_path / 'merged.json'}: a merged record written before biohicl recorded which files it hashed (it "
        "gives no model.weights_files): its model.weights_sha256 may be of a merged export's files rather than of an "
        "adapter loaded merged, so a record of other weights cannot be detected; evaluate the run as saved "
        "(`biohicl evaluate RUN`) to check it"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_model_repo_folder(
            run,
            tmp_path / "repo",
            eval_results=write(tmp_path / "tuned.json", tuned),
            base_eval_results=tmp_path / "base.json",
            overwrite=True,
        )
    assert not [r for r in caplog.records if r.name == "biohicl.hub.record_match"]


def test_a_committed_record_written_before_the_weights_were_recorded_publishes_with_one_warning(tmp_path, caplog):
    committed = Path(__file__).parents[1] / "docs/results/reproduce_minilm"
    tuned = json.loads((committed / "scifact-train-128tok.full-seed1.json").read_text())
    assert "weights_sha256" not in tuned["model"]
    run = tmp_path / "run"
    run.mkdir()
    config = {k: v for k, v in tuned["model"]["config"].items() if not isinstance(v, dict | list)}
    write(run / "biohicl_config.json", config)
    (run / "adapter_model.safetensors").write_bytes(stub_safetensors("weights"))
    write(run / "training_summary.json", {"global_step": 2})
    with caplog.at_level(logging.WARNING):
        folder = build_model_repo_folder(
            run,
            tmp_path / "repo",
            eval_results=committed / "scifact-train-128tok.full-seed1.json",
            base_eval_results=committed / "scifact-train-128tok.base.json",
            license="mit",
        )
    warnings = [r.getMessage() for r in caplog.records if r.name == "biohicl.hub.record_match"]
    assert len(warnings) == 1 and "full-seed1.json was written before biohicl recorded the weights" in warnings[0]
    assert (folder / "eval_results.json").is_file() and (folder / "base_eval_results.json").is_file()


def test_a_base_evaluated_from_a_relative_folder_publishes_and_another_hub_bases_record_is_refused(
    tmp_path, tiny_bert_dir, monkeypatch, capsys
):
    """`biohicl evaluate ./tiny` records base_model 'tiny', which reads as a Hub id; its model.source says a folder
    was loaded, so it publishes as the base of a run trained from that folder with a Hub id. A record of another Hub
    model, and an older record (no model.source) whose base_model is not a path, are still refused."""
    import shutil

    from biohicl.cli.main import main as cli_main
    from biohicl.models.model import BioHiCL
    from tests.test_evaluation import write_beir

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_bert_dir, tmp_path / "tiny")
    model = BioHiCL.from_base("tiny", hub_id=BASE_ID, max_length=32)
    model.add_lora(r=2, alpha=4, target_modules=["query", "value"], verbose=False)
    model.save_pretrained(tmp_path / "run")
    (tmp_path / "run" / "training_summary.json").write_text(json.dumps({"global_step": 1}))
    beir = write_beir(tmp_path / "beir")
    argv = ["evaluate", "./tiny", "--max_length", "32", "--tasks", str(beir), "--no_progress", "--output", "base.json"]
    assert cli_main(argv) == 0
    base = json.loads((tmp_path / "base.json").read_text())
    assert (base["model"]["config"]["base_model"], base["model"]["source"]) == (
        str((tmp_path / "tiny").resolve()),
        "path",
    )
    folder = build_model_repo_folder(tmp_path / "run", tmp_path / "repo", base_eval_results=tmp_path / "base.json")
    assert json.loads((folder / "base_eval_results.json").read_text())["summary"] == base["summary"]
    other = record("org/other-bert", 0.6, kind="full", base_model="org/other-bert")
    older = record("tiny", 0.6, kind="full", base_model="tiny")  # no model.source: today's path rule
    for name, value, source in (
        ("other.json", other, "repo"),
        ("other_path.json", other, None),
        ("old.json", older, None),
    ):
        if source:
            value = {**value, "model": {**value["model"], "source": source}}
        argv = [
            "publish",
            "run",
            "--repo_id",
            "me/x",
            "--dry_run",
            "--base_eval_results",
            str(write(tmp_path / name, value)),
        ]
        named = value["model"]["config"]["base_model"]
        assert cli_error(argv, capsys) == (
            f"biohicl publish: error: {tmp_path / name}: model.config.base_model is {named!r}, not the base of the "
            f"model published ({BASE_ID}, {Path('run') / 'biohicl_config.json'}); pass the record of `biohicl "
            f"evaluate {BASE_ID}` as --base_eval_results"
        )


def test_a_record_scored_by_a_quantised_backend_is_refused_and_the_onnx_backend_is_named_on_the_card(tmp_path):
    """`biohicl evaluate --backend onnx --quantize int8` records settings.backend 'onnx-int8': its numbers are not the
    published weights'; the fp32 ONNX backend's record publishes, the card's measured line naming the backend."""
    run = fake_run(tmp_path)

    def scored(value: dict, backend: str) -> dict:
        return {**value, "settings": {**value["settings"], "backend": backend}}

    for option, value in (("eval_results", TUNED), ("base_eval_results", BASE)):
        int8 = write(tmp_path / f"{option}_int8.json", scored(value, "onnx-int8"))
        with pytest.raises(PublishError) as error:
            build_model_repo_folder(run, tmp_path / "repo", overwrite=True, **{option: int8})
        assert str(error.value) == (
            f"{int8}: settings.backend is 'onnx-int8': scored by a quantised model, not the weights published; "
            "evaluate with the torch backend (`biohicl evaluate MODEL --output FILE`, no --quantize) and pass that"
        )
    onnx = write(tmp_path / "onnx.json", scored(TUNED, "onnx"))
    base = write(tmp_path / "base.json", scored(BASE, "onnx"))
    folder = build_model_repo_folder(run, tmp_path / "repo", eval_results=onnx, base_eval_results=base, overwrite=True)
    assert (
        "Measured at max length 32 tokens in float32 with the onnx backend (`eval_results.json` settings.max_length, "
        "settings.dtype, settings.backend).\n" in (folder / "README.md").read_text()
    )
    torch_run = write(tmp_path / "torch.json", scored(TUNED, "torch"))  # torch, the default: not named
    folder = build_model_repo_folder(run, tmp_path / "repo", eval_results=torch_run, overwrite=True)
    assert (
        "in float32 (`eval_results.json` settings.max_length, settings.dtype).\n" in (folder / "README.md").read_text()
    )


def test_the_measured_line_names_max_seq_length_when_it_read_that_field(tmp_path):
    # a record written before a SentenceTransformer's config said max_length: its length is model.config.max_seq_length
    run = fake_run(tmp_path)
    older = record("run", 0.71)
    del older["settings"]["max_length"], older["model"]["config"]["max_length"]
    older["model"]["config"]["max_seq_length"] = 32
    folder = build_model_repo_folder(run, tmp_path / "repo", eval_results=write(tmp_path / "older.json", older))
    assert (
        "Measured at max length 32 tokens in float32 (`eval_results.json` model.config.max_seq_length, settings.dtype)."
        in (folder / "README.md").read_text()
    )

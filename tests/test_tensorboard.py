"""TensorBoard and the other reporting integrations of ``biohicl train``: an integration whose package is missing is
refused when the arguments are checked (transformers' callback would refuse it only at ``Trainer`` init, after the
data and the model loaded, with a traceback); a fresh run writes its events into a new folder, a resumed run into the
folder its previous part wrote."""

from __future__ import annotations

import json
import os
import shutil
import time
from types import SimpleNamespace

import pytest
from transformers.integrations import TensorBoardCallback, integration_utils
from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

from biohicl.cli import main as cli
from biohicl.errors import ConfigError
from biohicl.training.arg_checks import INTEGRATION_ENVIRONMENT, INTEGRATION_PACKAGES, check_installed
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.reporting import (
    TENSORBOARD_FOLDER_NAME,
    TensorBoardFolderRecord,
    previous_tensorboard_folder,
    recorded_tensorboard_folder,
    resume_tensorboard_folder,
)
from biohicl.training.run import train_biohicl
from tests.conftest import synthetic_documents

TENSORBOARD_MISSING = (
    "report_to: tensorboard is not installed; pip install tensorboard (or tensorboardX), or leave tensorboard out of "
    "report_to"
)


@pytest.fixture
def no_tensorboard(monkeypatch):
    """transformers sees neither tensorboard nor tensorboardX (this environment has tensorboard)."""
    monkeypatch.setattr(integration_utils, "is_tensorboard_available", lambda: False)


def test_the_refusal_is_the_one_transformers_would_give_at_trainer_init(no_tensorboard):
    with pytest.raises(RuntimeError, match="TensorBoardCallback requires tensorboard to be installed"):
        TensorBoardCallback()  # what Trainer.__init__ builds from report_to, after the data and the model loaded


def test_report_to_tensorboard_without_it_installed_is_refused_when_the_arguments_are_checked(no_tensorboard):
    for value in ("tensorboard", ["tensorboard"]):
        with pytest.raises(ConfigError) as caught:
            BioHiCLTrainingArguments(output_dir="run", report_to=value)
        assert str(caught.value) == TENSORBOARD_MISSING


def test_none_and_all_need_no_package(no_tensorboard):
    assert BioHiCLTrainingArguments(output_dir="run", report_to="none").report_to == []
    everything = BioHiCLTrainingArguments(output_dir="run", report_to="all").report_to
    assert everything == integration_utils.get_available_reporting_integrations()  # what is installed, as transformers
    assert "tensorboard" not in everything  # sees it: not tensorboard here, and no refusal


def test_each_integration_with_a_package_is_refused_by_its_own_availability_function(monkeypatch):
    for name, (function, package) in INTEGRATION_PACKAGES.items():
        assert name in INTEGRATION_TO_CALLBACK and callable(getattr(integration_utils, function))
        with monkeypatch.context() as patch:
            patch.setattr(integration_utils, function, lambda: False)
            with pytest.raises(ConfigError) as caught:
                BioHiCLTrainingArguments(output_dir="run", report_to=name)
        assert str(caught.value).startswith(f"report_to: {name} is not installed; pip install {package}")
    with monkeypatch.context() as patch:
        patch.setattr(integration_utils, "is_wandb_available", lambda: False)
        with pytest.raises(ConfigError) as caught:
            BioHiCLTrainingArguments(output_dir="run", report_to="wandb")
    assert str(caught.value) == "report_to: wandb is not installed; pip install wandb, or leave wandb out of report_to"


def test_every_integration_of_transformers_is_checked():
    """A transformers upgrade that adds an integration with neither an entry nor the naming pattern's function fails
    here, instead of its report_to passing unchecked (comet_ml is checked by its callback's own test)."""
    for name in set(INTEGRATION_TO_CALLBACK) - {"comet_ml"} - set(INTEGRATION_ENVIRONMENT):
        pattern = f"is_{name.replace('_', '')}_available"
        assert name in INTEGRATION_PACKAGES or callable(getattr(integration_utils, pattern, None)), name


def test_kubeflow_and_comet_are_refused_in_one_line_as_their_callbacks_would(monkeypatch):
    """Both passed the check and failed at Trainer init with a traceback, after the data and the model loaded."""
    monkeypatch.delenv("KUBEFLOW_TRAINER_SERVER_URL", raising=False)
    with pytest.raises(ConfigError) as caught:
        BioHiCLTrainingArguments(output_dir="run", report_to="kubeflow")
    assert str(caught.value) == (
        "report_to: kubeflow needs KUBEFLOW_TRAINER_SERVER_URL (set inside a Kubeflow TrainJob), or leave kubeflow out"
    )
    monkeypatch.setenv("KUBEFLOW_TRAINER_SERVER_URL", "http://trainer")
    assert BioHiCLTrainingArguments(output_dir="run", report_to="kubeflow").report_to == ["kubeflow"]
    monkeypatch.delenv("KUBEFLOW_TRAINER_SERVER_URL")  # transformers adds kubeflow to any report_to where it is set
    monkeypatch.setattr(integration_utils, "_is_comet_installed", False)
    with pytest.raises(ConfigError, match=r"^report_to: comet_ml is not installed; pip install comet-ml, or leave"):
        BioHiCLTrainingArguments(output_dir="run", report_to="comet_ml")
    monkeypatch.setattr(integration_utils, "_is_comet_installed", True)
    monkeypatch.setattr(integration_utils, "_is_comet_recent_enough", True)
    assert BioHiCLTrainingArguments(output_dir="run", report_to="comet_ml").report_to == ["comet_ml"]  # no API key


def test_an_integration_not_in_the_table_is_checked_by_transformers_naming_pattern(monkeypatch):
    monkeypatch.setitem(INTEGRATION_TO_CALLBACK, "new_tracker", object)  # one a later transformers adds
    monkeypatch.setattr(integration_utils, "is_newtracker_available", lambda: False, raising=False)
    with pytest.raises(ConfigError) as caught:
        BioHiCLTrainingArguments(output_dir="run", report_to="new_tracker")
    expected = "report_to: new_tracker is not installed; pip install new-tracker, or leave new_tracker out of report_to"
    assert str(caught.value) == expected
    monkeypatch.setattr(integration_utils, "is_newtracker_available", lambda: True)
    check_installed("new_tracker", integration_utils)  # installed: passes


def test_biohicl_train_refuses_it_in_one_line_before_the_data_is_read(no_tensorboard, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "--dataset_path", str(tmp_path / "nope.jsonl"), "--output_dir", str(out),
                     "--report_to", "tensorboard", "--use_cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == f"biohicl train: error: {TENSORBOARD_MISSING}"
    assert not out.exists()  # the dataset does not exist: refused before it (and the model) was read


def test_a_resume_takes_the_folder_written_last_and_tensorboard_logging_dir_is_kept(monkeypatch, tmp_path):
    pytest.importorskip("tensorboard")  # the callback's writer needs it; the dev and demo extras
    out = tmp_path / "out"
    for name, mtime in (("Jan01_10-00-00_a", 2_000), ("Jan01_09-00-00_b", 3_000), ("Jan01_11-00-00_c", 1_000)):
        events = out / "runs" / name / f"events.out.tfevents.{mtime}.host"
        events.parent.mkdir(parents=True)
        events.write_bytes(b"")
        os.utime(events, (mtime, mtime))
    (out / "runs" / "empty").mkdir()  # no events: never chosen, however new
    assert previous_tensorboard_folder(out) == out / "runs" / "Jan01_09-00-00_b"  # written last, not named last
    assert previous_tensorboard_folder(tmp_path / "fresh") is None
    plain = TensorBoardCallback()
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "mine"))
    chosen = TensorBoardCallback()  # transformers reads the variable here
    trainer = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[plain, chosen, object()]))
    resume_tensorboard_folder(trainer, out, None)  # a fresh start: transformers names a new folder at train begin
    assert plain.logging_dir is None
    resume_tensorboard_folder(trainer, tmp_path / "fresh", str(tmp_path / "fresh" / "checkpoint-2"))
    assert plain.logging_dir is None  # a resume with no events yet: a new folder too
    resume_tensorboard_folder(trainer, out, str(out / "checkpoint-2"))
    assert plain.logging_dir == str(out / "runs" / "Jan01_09-00-00_b")
    assert chosen.logging_dir == str(tmp_path / "mine")  # the variable's folder, as transformers would use it


def _tensorboard_values(tiny_bert_dir, tmp_path, out, **overrides):
    docs = tmp_path / "documents.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    values = dict(output_dir=str(out), base_model=str(tiny_bert_dir), base_model_hub_id="test/tiny-bert",
                  dataset_path=str(docs), per_device_train_batch_size=8, max_length=32, logging_steps=1,
                  save_strategy="steps", save_steps=2, report_to="tensorboard", lora_target_modules=["query", "value"],
                  use_cpu=True, seed=7, disable_tqdm=True)  # fmt: skip
    return values | overrides


def _scalars(folder, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_two_fresh_runs_into_one_output_dir_are_two_tensorboard_runs(tiny_bert_dir, tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    for rate in (1e-3, 5e-2):
        train_biohicl(BioHiCLTrainingArguments(**_tensorboard_values(tiny_bert_dir, tmp_path, out), max_steps=2,
                                               learning_rate=rate, lr_scheduler_type="constant"))  # fmt: skip
        time.sleep(1.1)  # transformers names its folder by the second training begins
        for checkpoint in out.glob("checkpoint-*"):  # a fresh run over another's checkpoints is refused: removed
            shutil.rmtree(checkpoint)
    folders = sorted({f.parent for f in out.rglob("events.out.tfevents.*")}, key=lambda f: f.stat().st_mtime_ns)
    assert len(folders) == 2 and all(f.parent == out / "runs" for f in folders)  # runs/<date>_<host>, one each
    rates = [[value for _, value in _scalars(folder, "train/learning_rate")] for folder in folders]
    assert rates == [pytest.approx([1e-3, 1e-3]), pytest.approx([5e-2, 5e-2])]  # each run its own curve


def test_a_resumed_run_appends_its_tensorboard_events_to_the_folder_of_its_first_part(tiny_bert_dir, tmp_path):
    pytest.importorskip("tensorboard")  # the dev and demo extras; not in `make test-min`'s floors
    out = tmp_path / "run"
    from tests.test_trainer import StopAfter

    values = _tensorboard_values(tiny_bert_dir, tmp_path, out, max_steps=4)
    train_biohicl(BioHiCLTrainingArguments(**values), [StopAfter(2)])  # the first part ends after checkpoint-2
    time.sleep(1.1)  # transformers' own folder is named by the second training begins: a later resume, another name
    train_biohicl(BioHiCLTrainingArguments(**values, resume_from_checkpoint="last"))

    files = sorted(out.rglob("events.out.tfevents.*"))
    folder = files[0].parent
    assert len(files) == 2 and {f.parent for f in files} == {folder}  # the first part's and the resume's
    assert folder.parent == out / "runs"  # transformers' runs/<date>_<host> of the first part
    losses = dict(_scalars(folder, "train/loss"))
    logged = json.loads((out / "trainer_state.json").read_text())["log_history"]
    expected = {e["step"]: e["loss"] for e in logged if "loss" in e}  # the resumed state keeps steps 1-2 too
    assert sorted(expected) == [1, 2, 3, 4]
    assert losses == pytest.approx(expected, rel=1e-6)  # one curve of steps 1-4 (TensorBoard stores float32)


def test_a_resume_continues_the_folder_its_checkpoint_records_not_another_runs_written_since(tiny_bert_dir, tmp_path):
    """Run A saves checkpoints 2 and 4; run B starts fresh into the same output_dir and is killed before its first
    checkpoint, so B's events folder is the one written last; resuming A's checkpoint-4 continues A's folder."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    from tests.test_trainer import StopAfter

    out = tmp_path / "run"
    values = _tensorboard_values(tiny_bert_dir, tmp_path, out, max_steps=6)
    train_biohicl(BioHiCLTrainingArguments(**values), [StopAfter(4)])
    (first,) = {f.parent for f in out.rglob("events.out.tfevents.*")}
    for step in (2, 4):  # each checkpoint names A's folder, relative to output_dir
        assert (out / f"checkpoint-{step}" / TENSORBOARD_FOLDER_NAME).read_text() == f"runs/{first.name}\n"
    other = out / "runs" / "Zz_killed_run_b"  # run B: its step-1 loss logged, then killed before any checkpoint
    with SummaryWriter(log_dir=str(other)) as writer:
        writer.add_scalar("train/loss", 9.5, 1)
    later = time.time() + 60
    for events in other.glob("events.out.tfevents.*"):
        os.utime(events, (later, later))
    assert previous_tensorboard_folder(out) == other  # the mtime rule alone would continue B's curve
    time.sleep(1.1)  # event files sort by name, `<second>.<host>.<pid>.<uid>`: a later second keeps the resume second
    train_biohicl(BioHiCLTrainingArguments(**values, resume_from_checkpoint="last"))

    assert [step for step, _ in _scalars(first, "train/loss")] == [1, 2, 3, 4, 5, 6]  # A's steps 5-6 in A's folder
    assert _scalars(other, "train/loss") == [(1, 9.5)]  # B's curve untouched
    assert len(list(first.glob("events.out.tfevents.*"))) == 2


def test_the_record_names_a_folder_inside_the_run_and_a_bad_one_falls_back(tmp_path):
    out = tmp_path / "out"
    checkpoint = out / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    args = SimpleNamespace(output_dir=str(out), should_save=True)
    state = SimpleNamespace(global_step=2, is_world_process_zero=True)
    TensorBoardFolderRecord(SimpleNamespace(logging_dir=str(tmp_path / "elsewhere"))).on_save(args, state, None)
    assert not (checkpoint / TENSORBOARD_FOLDER_NAME).exists()  # TENSORBOARD_LOGGING_DIR outside the run: none
    TensorBoardFolderRecord(SimpleNamespace(logging_dir=str(out / "runs" / "A"))).on_save(args, state, None)
    assert (checkpoint / TENSORBOARD_FOLDER_NAME).read_text() == "runs/A\n"
    assert recorded_tensorboard_folder(checkpoint, out) == out / "runs" / "A"
    for bad in ("../../escape", "/abs/olute", ""):
        (checkpoint / TENSORBOARD_FOLDER_NAME).write_text(bad)
        assert recorded_tensorboard_folder(checkpoint, out) is None
    assert recorded_tensorboard_folder(out / "checkpoint-9", out) is None  # written before the record


def test_a_run_killed_after_its_last_checkpoint_logs_the_steps_since_twice_in_its_folder(tiny_bert_dir, tmp_path):
    pytest.importorskip("tensorboard")
    from tests.test_trainer import make_args, train_killed_after_save

    docs = tmp_path / "documents.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    out = tmp_path / "killed"
    common = dict(max_steps=6, save_strategy="steps", save_steps=2, report_to="tensorboard")
    train_killed_after_save(tiny_bert_dir, docs, out, 4, **common)  # a process SIGKILLed after logging step 4
    for path in sorted((out / "checkpoint-4").iterdir()):  # as if killed at step 4 before the save
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    (out / "checkpoint-4").rmdir()
    # TensorBoard reads a folder's event files in name order, `events.out.tfevents.<second>.<host>.<pid>...`: within
    # one second the killed process's larger pid would sort after this one (as a real restart never does)
    time.sleep(1.1)
    train_biohicl(make_args(tiny_bert_dir, docs, out, resume_from_checkpoint="last", **common))  # from step 2

    files = list(out.rglob("events.*"))
    assert len(files) == 2 and len({f.parent for f in files}) == 1 and files[0].parent.parent == out / "runs"
    logged = _scalars(files[0].parent, "train/loss")
    assert [step for step, _ in logged] == [1, 2, 3, 4, 3, 4, 5, 6]  # one series; steps 3-4 of both processes
    assert logged[2:4] == logged[4:6]  # the same values: the curve retraces itself

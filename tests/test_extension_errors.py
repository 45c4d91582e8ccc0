"""What a user's extension gets wrong, said in one line where it is made: a task registered in this process only in
a ``reproduce --workers`` study, a loss component that is not one number, a misspelt ``metric_for_best_model``, and a
resume without the ``peft_config`` the checkpoint was trained with. Tiny random BERT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from biohicl.errors import ConfigError
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.run import train_biohicl
from tests.conftest import synthetic_documents, tiny_study_values


@pytest.fixture(scope="module")
def docs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "documents.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    return path


def _args(tiny_bert_dir: Path, docs_file: Path, out: Path, **overrides) -> BioHiCLTrainingArguments:
    values = dict(
        output_dir=str(out), base_model=str(tiny_bert_dir), base_model_hub_id="test/tiny-bert",
        dataset_path=str(docs_file), max_steps=2, per_device_train_batch_size=8, max_length=32, logging_steps=2,
        save_strategy="no", report_to="none", lora_target_modules=["query", "value"], use_cpu=True, seed=7,
        disable_tqdm=True,
    )  # fmt: skip
    values.update(overrides)
    return BioHiCLTrainingArguments(**values)


# ------------------------------------------------------------------------------------------------ registered tasks
@pytest.fixture
def mysts(monkeypatch):
    """``mysts``, registered here as a user would: BIOSSES under another name; its calls are counted."""
    from biohicl.evaluation import tasks

    biosses, calls = tasks.TASKS["biosses"], []

    def my_sts(encoder, *, split=None, **kwargs):
        calls.append(split)
        return biosses(encoder, split=split, **kwargs)

    for table in (tasks.TASKS, tasks.REPORTED_METRICS, tasks.DEFAULT_SPLITS):
        monkeypatch.setitem(table, "mysts", None)  # taken out again after the test
    tasks.register_task("mysts", my_sts, reported=["spearman", "pearson"], default_split="all")
    return calls


def _study_with_mysts(tmp_path: Path, tiny_bert_dir: Path) -> Path:
    import yaml

    values = tiny_study_values(str(tmp_path / "study"), str(tmp_path / "dataset"), model=str(tiny_bert_dir))
    values["variants"] = {"full": {}}
    values["training"].update(eval_strategy="steps", eval_steps=1, eval_tasks=["mysts"],
                              metric_for_best_model="mysts_spearman", load_best_model_at_end=True)  # fmt: skip
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


REFUSED = (
    "biohicl reproduce: error: tasks: 'mysts' is registered in this process only; workers cannot see it: use "
    "--workers 1, or a BEIR folder path\n"
)


def test_workers_refuse_a_task_registered_here_before_anything_runs(tmp_path, tiny_bert_dir, mysts, monkeypatch,
                                                                     capsys):  # fmt: skip
    import biohicl.study as study_package
    from biohicl.cli import reproduce as command
    from biohicl.cli.main import main
    from biohicl.evaluation import runner

    def never(*args, **kwargs):
        raise AssertionError("ran before the refusal")

    for name in ("prepare_dataset", "evaluate_step0_once", "run_study"):
        monkeypatch.setattr(study_package, name, never)
    monkeypatch.setattr(command, "run_workers", never)
    monkeypatch.setattr(runner, "evaluate_model", never)
    path = _study_with_mysts(tmp_path, tiny_bert_dir)
    for extra in ([], ["--dry_run"]):  # the dry run, there to find what a study lacks, says it too
        assert main(["reproduce", "--config", str(path), "--workers", "2", "--threads", "1", *extra]) == 2
        captured = capsys.readouterr()
        assert captured.err == REFUSED and captured.out == ""
    assert mysts == [] and not (tmp_path / "study").exists() and not (tmp_path / "dataset").exists()


def test_one_worker_runs_a_study_with_a_task_registered_here(tmp_path, tiny_bert_dir, mysts, capsys):
    from biohicl.cli.main import main

    path = _study_with_mysts(tmp_path, tiny_bert_dir)
    assert main(["reproduce", "--config", str(path), "--dry_run", "--workers", "1"]) == 0
    assert "  ok      task mysts: data found\n" in capsys.readouterr().out
    assert main(["reproduce", "--config", str(path), "--workers", "1", "--threads", "1"]) == 0
    assert mysts and set(mysts) == {None}  # evaluated during training (its default split, given as None)
    state = json.loads((tmp_path / "study" / "tiny" / "full" / "seed0" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "eval_mysts_spearman" in e] == [0, 1, 2]


def test_which_tasks_a_fresh_process_cannot_resolve(tmp_path, tiny_bert_dir, mysts, monkeypatch):
    from biohicl.evaluation import tasks
    from biohicl.study import ReproduceConfig
    from biohicl.study.preflight import check_workers_see_tasks, process_only_tasks

    folder = tmp_path / "mybeir"
    folder.mkdir()
    values = tiny_study_values(str(tmp_path / "study"), str(tmp_path / "dataset"), model=str(tiny_bert_dir))
    values["tasks"] = ["biosses", str(folder), "mysts:dev", "siml-agreement@runs/pairs", "pubmedqa"]
    config = ReproduceConfig.from_dict(values)
    assert process_only_tasks(config) == ["mysts"]  # built-ins, a BEIR folder and a dataset task every process finds
    monkeypatch.setitem(tasks.TASKS, "pubmedqa", tasks.TASKS["biosses"])  # a built-in name given another function
    assert process_only_tasks(config) == ["mysts", "pubmedqa"]
    message = (
        r"^tasks: 'mysts', 'pubmedqa' are registered in this process only; workers cannot see them: use --workers 1, "
        r"or a BEIR folder path$"
    )
    with pytest.raises(ConfigError, match=message):
        check_workers_see_tasks(config)


# ------------------------------------------------------------------------------------------------ loss components
class _Components(torch.nn.Module):
    """The mean squared embedding as ``loss`` beside ``extra`` (a callable of the embeddings); counts its calls."""

    def __init__(self, extra):
        super().__init__()
        self.extra, self.calls = extra, 0

    def forward(self, embeddings, siml, pair_mask=None):
        self.calls += 1
        return {"loss": (embeddings**2).mean(), "loss_extra": self.extra(embeddings)}


def test_a_loss_component_that_is_not_a_scalar_is_named_at_the_first_step(tiny_bert_dir, docs_file, tmp_path):
    loss = _Components(lambda emb: (emb**2).sum(1))  # one value per document of the batch of 8
    with pytest.raises(ConfigError, match=r"^loss: component 'loss_extra' is not a scalar \(shape \[8\]\)$"):
        train_biohicl(_args(tiny_bert_dir, docs_file, tmp_path / "vector"), loss=loss)
    assert loss.calls == 1  # the first batch, not the first logging step (2)


def test_a_one_element_component_is_logged_as_its_number(tiny_bert_dir, docs_file, tmp_path):
    run = train_biohicl(_args(tiny_bert_dir, docs_file, tmp_path / "one"), loss=_Components(lambda emb: torch.ones(1)))
    logged = [e for e in json.loads((run / "trainer_state.json").read_text())["log_history"] if "loss_extra" in e]
    assert [(e["step"], e["loss_extra"]) for e in logged] == [(2, 1.0)]


# ------------------------------------------------------------------------------------------------ metric_for_best_model
def test_a_misspelt_selection_metric_lists_the_evaluation_metrics_only(tiny_bert_dir, docs_file, tmp_path):
    args = _args(
        tiny_bert_dir, docs_file, tmp_path / "x", eval_strategy="steps", eval_steps=2, save_strategy="steps",
        save_steps=2, eval_tasks=["mine"], metric_for_best_model="closenes", load_best_model_at_end=True,
    )  # fmt: skip
    message = r"^metric_for_best_model: eval_closenes is not an evaluation metric \(the tasks give eval_closeness\)$"
    with pytest.raises(ConfigError, match=message):  # not epoch, which the Trainer logs beside them
        train_biohicl(args, evaluator=lambda model: {"closeness": 0.5})


# ------------------------------------------------------------------------------------------ resume and peft_config
def _trained_checkpoint(tiny_bert_dir, docs_file, out: Path, peft_config) -> Path:
    kw = dict(max_steps=2, save_strategy="steps", save_steps=1)
    train_biohicl(_args(tiny_bert_dir, docs_file, out, **kw), peft_config=peft_config)
    return out / "checkpoint-1"


def test_resuming_without_the_checkpoints_peft_config_says_which_it_was(tiny_bert_dir, docs_file, tmp_path):
    from peft import IA3Config, LoraConfig

    dora = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], use_dora=True)
    checkpoint = _trained_checkpoint(tiny_bert_dir, docs_file, tmp_path / "dora", dora)
    resumed = tmp_path / "resumed"
    shutil.copytree(checkpoint, resumed / "checkpoint-1")
    weights = resumed / "checkpoint-1" / "trainable_weights.safetensors"
    kw = dict(max_steps=2, save_strategy="steps", save_steps=1, resume_from_checkpoint=str(weights.parent))
    with pytest.raises(ConfigError) as raised:  # the args' own LoRA, without DoRA's magnitude vectors
        train_biohicl(_args(tiny_bert_dir, docs_file, resumed, **kw))
    assert str(raised.value) == (
        f"{weights}: the checkpoint was trained with peft_type LORA with use_dora (its adapter_config.json), the "
        "model has LORA; resume with the adapter it was trained with (the same peft_config=; on the command line, the "
        "same --full_finetune and --lora_* options)"
    )
    message = (
        r"peft_type LORA with use_dora \(its adapter_config\.json\), the model has IA3; resume with the adapter it"
    )
    with pytest.raises(ConfigError, match=message):
        train_biohicl(_args(tiny_bert_dir, docs_file, resumed, **kw), peft_config=IA3Config())
    train_biohicl(_args(tiny_bert_dir, docs_file, resumed, **kw), peft_config=dora)  # the same config resumes
    assert json.loads((resumed / "trainer_state.json").read_text())["global_step"] == 2

    # a checkpoint folder without the file: the run folder's says it (else the key list, as before)
    (resumed / "checkpoint-1" / "adapter_config.json").unlink()
    with pytest.raises(ConfigError, match=r"use_dora \(the run folder's adapter_config\.json\), the model has LORA;"):
        train_biohicl(_args(tiny_bert_dir, docs_file, resumed, **kw))
    (resumed / "adapter_config.json").unlink()
    with pytest.raises(
        ConfigError, match=r"does not fit the model \(missing \[\], unexpected \[.*lora_magnitude_vector"
    ):
        train_biohicl(_args(tiny_bert_dir, docs_file, resumed, **kw))


def test_resuming_an_ia3_run_without_its_peft_config_says_ia3(tiny_bert_dir, docs_file, tmp_path):
    from peft import IA3Config

    weights = (
        _trained_checkpoint(tiny_bert_dir, docs_file, tmp_path / "ia3", IA3Config()) / "trainable_weights.safetensors"
    )
    kw = dict(max_steps=2, save_strategy="steps", save_steps=1, resume_from_checkpoint=str(weights.parent))
    with pytest.raises(ConfigError) as raised:
        train_biohicl(_args(tiny_bert_dir, docs_file, tmp_path / "ia3", **kw))
    assert str(raised.value) == (
        f"{weights}: the checkpoint was trained with peft_type IA3 (its adapter_config.json), the model has LORA; "
        "resume with the adapter it was trained with (the same peft_config=; on the command line, the same "
        "--full_finetune and --lora_* options)"
    )

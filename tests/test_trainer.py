"""BioHiCL training: the trainer (loss components, any loss, checkpoints, SIGKILL + resume, best-checkpoint selection
through the evaluator seam, peft configs such as DoRA), the training data, the CLI parser and the loss-curve plot.
Tiny random BERT; the batches themselves are tested in test_batches.py."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from biohicl.errors import ConfigError, DataError
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.checkpoint import (
    INITIAL_WEIGHTS_NAME,
    TRAINABLE_WEIGHTS_NAME,
    last_complete_checkpoint,
    resolve_resume,
)
from biohicl.training.objective import build_loss
from biohicl.training.run import train_biohicl
from biohicl.training.selection import guard_holds
from tests.conftest import run_torchrun, synthetic_documents


@pytest.fixture(scope="module")
def docs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "documents.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    return path


def make_values(tiny_bert_dir: Path, docs_file: Path, output_dir: Path, **overrides) -> dict:
    values = dict(
        output_dir=str(output_dir),
        base_model=str(tiny_bert_dir),
        base_model_hub_id="test/tiny-bert",
        dataset_path=str(docs_file),
        max_steps=4,
        per_device_train_batch_size=8,
        max_length=32,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        lora_target_modules=["query", "value"],
        use_cpu=True,
        seed=7,
        disable_tqdm=True,
    )
    values.update(overrides)
    return values


def make_args(tiny_bert_dir: Path, docs_file: Path, output_dir: Path, **overrides) -> BioHiCLTrainingArguments:
    return BioHiCLTrainingArguments(**make_values(tiny_bert_dir, docs_file, output_dir, **overrides))


class TrainedSteps(TrainerCallback):
    """The global step at which each optimizer step of this process begins: a resumed process starts at its
    checkpoint's step (a run that ignored the checkpoint would start again at 0)."""

    def __init__(self):
        self.steps: list[int] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


class EmbedAtTheEnd(TrainerCallback):
    """The trained model's embeddings of ``texts`` as training ends, before the run is saved."""

    def __init__(self, texts):
        self.texts = texts
        self.embeddings = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        model.eval()
        self.embeddings = model.encode(self.texts, convert_to="torch")
        model.train()


# ---------------------------------------------------------------------------------------------------------- training
def test_training_logs_components_and_saves_the_run(tiny_bert_dir, docs_file, tmp_path):
    from biohicl.models.model import BioHiCL

    texts = ["diabetes of the heart", "brain cells"]
    trained = EmbedAtTheEnd(texts)
    run = train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "run", max_steps=3), [trained])
    state = json.loads((run / "trainer_state.json").read_text())
    steps = [e for e in state["log_history"] if "loss_mse" in e]
    assert [e["step"] for e in steps] == [1, 2, 3]
    for entry in steps:  # total = L_mse + 0.1 · L_con, step by step
        assert entry["loss"] == pytest.approx(entry["loss_mse"] + 0.1 * entry["loss_con"], rel=1e-5)
        assert 0.0 < entry["positive_pairs"] <= 1.0
    for name in (
        "adapter_model.safetensors",
        "biohicl_config.json",
        "biohicl_training_args.json",
        "training_curves.png",
        "training_summary.json",
    ):
        assert (run / name).is_file(), name
    assert not (run / "dev_evaluations.json").exists()  # no evaluation during this run
    assert (run / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved_args = json.loads((run / "biohicl_training_args.json").read_text())
    assert saved_args["lambda_con"] == 0.1 and saved_args["beta"] == 0.3
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["data"]["documents"] == 20  # the 4 "test" documents are held out
    assert summary["global_step"] == 3

    # the saved adapter reloads to the trained model's embeddings (compared in float32)
    reloaded = BioHiCL.from_pretrained(run, base_model_path=tiny_bert_dir)
    assert reloaded.config.base_model == "test/tiny-bert"
    a = reloaded.encode(texts, convert_to="torch")
    assert torch.allclose(a, trained.embeddings, atol=1e-6)  # the model as training ended, not merely "not the base"
    adapter = load_file(str(run / "adapter_model.safetensors"))
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in adapter.items())
    base = BioHiCL.from_base(str(tiny_bert_dir), max_length=32).encode(texts, convert_to="torch")
    assert not torch.allclose(a, base, atol=1e-6)  # training moved the embeddings


def batch_siml_seen(monkeypatch) -> tuple[list, list]:
    """Spies: each batch's documents' labels (as the collator got them) and the SimL matrix compute_loss got."""
    from biohicl.data.collator import BioHiCLDataCollator
    from biohicl.training.trainer import BioHiCLTrainer

    labels, siml = [], []
    collate, compute_loss = BioHiCLDataCollator.__call__, BioHiCLTrainer.compute_loss

    def collate_spy(self, features):
        labels.append([self.mesh.known_labels(f["labels"]) for f in features])
        return collate(self, features)

    def compute_loss_spy(self, model, inputs, *args, **kwargs):
        siml.append(inputs["siml"].detach().cpu().clone())
        return compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(BioHiCLDataCollator, "__call__", collate_spy)
    monkeypatch.setattr(BioHiCLTrainer, "compute_loss", compute_loss_spy)
    return labels, siml


def assert_batches_have_siml(labels, siml, mesh, **variant):
    """Each batch's SimL is ``variant``'s (the loader may collate a batch ahead: batches pair up in order), and
    differs from the default SimL, so the check can tell them apart."""
    assert siml and len(labels) >= len(siml)
    for batch_labels, got in zip(labels, siml, strict=False):
        expected = torch.as_tensor(mesh.similarity_matrix(batch_labels, **variant), dtype=got.dtype)
        assert torch.allclose(got, expected, atol=1e-6), variant
        default = torch.as_tensor(mesh.similarity_matrix(batch_labels), dtype=got.dtype)
        assert not torch.allclose(got, default, atol=1e-3), variant


class LoggedKeys(TrainerCallback):
    """Every key ``on_log`` was given: what TensorBoard and the console show."""

    def __init__(self):
        self.keys: set[str] = set()

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.keys.update(logs or {})


def test_ablation_switches_reach_the_loss_and_the_model(tiny_bert_dir, docs_file, tmp_path, mesh, monkeypatch):
    labels, siml = batch_siml_seen(monkeypatch)
    args = make_args(
        tiny_bert_dir,
        docs_file,
        tmp_path / "ablate",
        max_steps=2,
        use_contrastive=False,
        full_finetune=True,
        batch_sampler="random",
        use_ancestors=False,
    )
    seen = LoggedKeys()
    run = train_biohicl(args, [seen])
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["loss"]["use_contrastive"] is False
    assert summary["batch_sampler"] == "RandomBatchSampler"
    assert summary["trainable_parameters"] == summary["total_parameters"]
    state = json.loads((run / "trainer_state.json").read_text())
    steps = [e for e in state["log_history"] if "loss_mse" in e]
    assert len(steps) == 2 and not any("loss_con" in e for e in state["log_history"])  # off: not logged as 0
    assert "loss_mse" in seen.keys and "loss_con" not in seen.keys  # what on_log (TensorBoard, the console) got
    for entry in steps:
        assert entry["loss"] == pytest.approx(entry["loss_mse"], rel=1e-6)
    assert len(siml) == 2
    assert_batches_have_siml(labels, siml, mesh, ancestors=False)  # the loss saw SimL without ancestors

    labels.clear()
    siml.clear()
    args = make_args(
        tiny_bert_dir, docs_file, tmp_path / "flat", max_steps=2, batch_sampler="random", use_depth_weight=False
    )
    train_biohicl(args)
    assert len(siml) == 2
    assert_batches_have_siml(labels, siml, mesh, depth_weight=False)  # ancestors, all of weight 1


def test_bf16_and_activation_checkpointing_run(tiny_bert_dir, docs_file, tmp_path):
    from biohicl.models.signature import unwrapped

    class Precision(TrainerCallback):
        """Per step: is checkpointing on in the backbone, and each pass through layer 0's (not LoRA) feed-forward
        Linear: the autocast state and its output's dtype. With checkpointing the backward pass runs it again."""

        def __init__(self):
            self.steps, self.passes = [], []

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.backbone = unwrapped(model.backbone)
            dense = self.backbone.encoder.layer[0].intermediate.dense
            dense.register_forward_hook(
                lambda module, inputs, output: self.passes.append(
                    (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), output.dtype)
                )
            )

        def on_step_begin(self, args, state, control, **kwargs):
            self.passes.clear()

        def on_step_end(self, args, state, control, **kwargs):
            checkpointing = getattr(self.backbone, "is_activation_checkpointing", None)
            if checkpointing is None:  # transformers < 5.23
                checkpointing = self.backbone.is_gradient_checkpointing
            self.steps.append((checkpointing, list(self.passes)))

    precision = Precision()
    run = train_biohicl(
        make_args(tiny_bert_dir, docs_file, tmp_path / "bf16", max_steps=2, bf16=True, activation_checkpointing=True),
        [precision],
    )
    bf16_pass = (True, torch.bfloat16, torch.bfloat16)
    # both steps: checkpointing on, the forward pass and its recomputation in the backward pass, both in bf16 autocast
    assert precision.steps == [(True, [bf16_pass, bf16_pass])] * 2
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert all(np.isfinite(e["loss"]) for e in state["log_history"] if "loss" in e)
    adapter = load_file(str(run / "adapter_model.safetensors"))  # LoRA got gradients through the checkpointed blocks
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in adapter.items())


def test_arguments_are_validated(tmp_path):
    with pytest.raises(ConfigError, match="pair_filter"):
        BioHiCLTrainingArguments(output_dir=str(tmp_path), pair_filter="some")
    # every term off: the arguments stand (extra terms may be the objective), the objective they alone build does not
    no_terms = BioHiCLTrainingArguments(output_dir=str(tmp_path), use_mse=False, use_contrastive=False)
    with pytest.raises(ConfigError, match=r"^use_mse, use_contrastive, lambda_con, distill_weight, title_weight: "):
        build_loss(no_terms)
    with pytest.raises(ConfigError, match="batch_sampler"):
        BioHiCLTrainingArguments(output_dir=str(tmp_path), batch_sampler="clever")
    with pytest.raises(ConfigError, match="contrastive_form: 'simclr' is not one of infonce, paper"):
        BioHiCLTrainingArguments(output_dir=str(tmp_path), contrastive_form="simclr")
    with pytest.raises(ConfigError, match=r"negative: the threshold of 'below:0.4' must be in \(0, beta = 0.3\]"):
        BioHiCLTrainingArguments(output_dir=str(tmp_path), negative="below:0.4")
    with pytest.raises(ConfigError, match="negative: 'lowest:x' is not one of"):
        BioHiCLTrainingArguments(output_dir=str(tmp_path), negative="lowest:x")
    with pytest.raises(ConfigError, match="batch_negatives: only the mesh_pairs batch sampler"):
        BioHiCLTrainingArguments(output_dir=str(tmp_path), batch_negatives=True, batch_sampler="random")
    for bad in (0, -3):  # refused before the run loads anything ([:0] would evaluate no query)
        with pytest.raises(ConfigError, match=rf"^eval_max_queries: must be a whole number of at least 1 .*got {bad}$"):
            BioHiCLTrainingArguments(output_dir=str(tmp_path), eval_max_queries=bad)
    assert BioHiCLTrainingArguments(output_dir=str(tmp_path), eval_max_queries=1).eval_max_queries == 1


# ---------------------------------------------------------------------------------------------------------- resume
KILLED_RUN = textwrap.dedent(
    """
    import json, os, signal, sys
    from transformers import TrainerCallback
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.run import train_biohicl

    class KillAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no atexit: like a crashed node

    args = BioHiCLTrainingArguments(**json.loads(open(sys.argv[1]).read()))
    train_biohicl(args, callbacks=[KillAfterSave()])
    """
)


def train_killed_after_save(tiny_bert_dir: Path, docs_file: Path, output_dir: Path, step: int, **overrides) -> None:
    """Train in another process that SIGKILLs itself right after saving checkpoint ``step`` (a crashed node)."""
    config = output_dir.parent / f"{output_dir.name}-args.json"
    config.write_text(json.dumps(make_values(tiny_bert_dir, docs_file, output_dir, **overrides)))
    script = output_dir.parent / f"{output_dir.name}-killed_run.py"
    script.write_text(KILLED_RUN)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run(
        [sys.executable, str(script), str(config), str(step)], env=env, capture_output=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]


def test_sigkill_then_resume_matches_an_uninterrupted_run(tiny_bert_dir, docs_file, tmp_path):
    common = dict(max_steps=6, save_strategy="steps", save_steps=1, per_device_train_batch_size=8)
    # 20 training documents / 8 per batch = 3 batches per epoch: the kill lands mid-epoch 1, resume crosses epochs
    reference = train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "reference", **common))

    killed_dir = tmp_path / "killed"
    train_killed_after_save(tiny_bert_dir, docs_file, killed_dir, 4, **common)
    assert last_complete_checkpoint(killed_dir) == killed_dir / "checkpoint-4"
    assert not (killed_dir / "adapter_model.safetensors").exists()  # the run never finished

    trained = TrainedSteps()
    args = make_args(tiny_bert_dir, docs_file, killed_dir, resume_from_checkpoint="last", **common)
    resumed = train_biohicl(args, callbacks=[trained])
    assert trained.steps == [4, 5]  # this process trained steps 5 and 6 only: it did start from checkpoint-4
    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    logged = [e["step"] for e in state["log_history"] if "loss_mse" in e]
    assert logged == [1, 2, 3, 4, 5, 6]  # steps 1–4 from the checkpoint, 5–6 after resuming; none lost or redone

    ref_state = json.loads((reference / "trainer_state.json").read_text())
    ref_losses = [e["loss"] for e in ref_state["log_history"] if "loss_mse" in e]
    got_losses = [e["loss"] for e in state["log_history"] if "loss_mse" in e]
    assert got_losses == ref_losses
    ref_weights = load_file(str(reference / "checkpoint-6" / TRAINABLE_WEIGHTS_NAME))
    got_weights = load_file(str(resumed / "checkpoint-6" / TRAINABLE_WEIGHTS_NAME))
    assert ref_weights.keys() == got_weights.keys()
    for name in ref_weights:
        assert torch.equal(got_weights[name], ref_weights[name]), name  # bit-exact: same batches, same RNG
    # the summary's loss is the whole run's (transformers' covers the resumed steps only), and it says it resumed
    ref_summary = json.loads((reference / "training_summary.json").read_text())
    summary = json.loads((resumed / "training_summary.json").read_text())
    assert summary["train_loss"] == pytest.approx(ref_summary["train_loss"], rel=1e-6)
    assert summary["train_loss"] == pytest.approx(sum(ref_losses) / 6, rel=1e-6)
    assert (summary["resumed_at_step"], ref_summary["resumed_at_step"]) == (4, None)


class StopAfter(TrainerCallback):
    """Ends training after optimizer step ``step`` (its checkpoint saved), as a kill right after that save leaves the
    run, but in this process and with the run's own arguments (a resume under others is refused)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_a_resume_whose_checkpoint_the_save_limit_deletes_still_finishes(tiny_bert_dir, docs_file, tmp_path):
    out = tmp_path / "run"  # a killed run left checkpoint-2; the rerun's saves rotate it away before the summary
    common = dict(max_steps=4, save_strategy="steps", save_steps=1, save_total_limit=1)
    killed = train_biohicl(make_args(tiny_bert_dir, docs_file, out, **common), [StopAfter(2)])
    for name in ("adapter_model.safetensors", "training_summary.json"):
        (killed / name).unlink()  # as after a kill at step 2
    assert last_complete_checkpoint(out) == out / "checkpoint-2"
    train_biohicl(make_args(tiny_bert_dir, docs_file, out, **common, resume_from_checkpoint="last"))
    assert not (out / "checkpoint-2").exists()  # the limit removed the checkpoint the run resumed from
    summary = json.loads((out / "training_summary.json").read_text())
    assert (summary["global_step"], summary["resumed_at_step"]) == (4, 2)


def test_a_named_checkpoint_without_its_trainer_state_is_refused(tiny_bert_dir, docs_file, tmp_path):
    out = tmp_path / "run"
    train_biohicl(make_args(tiny_bert_dir, docs_file, out, max_steps=2, save_strategy="steps", save_steps=2))
    checkpoint = out / "checkpoint-2"
    assert resolve_resume(str(checkpoint), out) == str(checkpoint)
    (checkpoint / "trainer_state.json").unlink()  # a kill between the weights and the trainer state
    assert last_complete_checkpoint(out) is None
    message = (
        rf"^resume_from_checkpoint: {re.escape(str(checkpoint))} is not a complete BioHiCL checkpoint "
        r"\(missing trainer_state\.json\)$"
    )
    with pytest.raises(ConfigError, match=message):
        resolve_resume(str(checkpoint), out)
    args = make_args(
        tiny_bert_dir, docs_file, out, max_steps=4, save_strategy="steps", save_steps=2,
        resume_from_checkpoint=str(checkpoint),
    )  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        train_biohicl(args)


class _RunsCode:
    """A pickle that runs code when loaded: what a planted checkpoint file could hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_file_that_would_run_code_is_refused_in_one_line(tiny_bert_dir, docs_file, tmp_path):
    out = tmp_path / "run"
    common = dict(max_steps=4, save_strategy="steps", save_steps=2)
    train_biohicl(make_args(tiny_bert_dir, docs_file, out, **common), [StopAfter(2)])
    checkpoint = out / "checkpoint-2"
    marker = tmp_path / "ran"
    torch.save({"state": _RunsCode(marker)}, checkpoint / "optimizer.pt")
    args = make_args(tiny_bert_dir, docs_file, out, **common, resume_from_checkpoint=str(checkpoint))
    with pytest.raises(DataError) as err:
        train_biohicl(args)
    message = str(err.value)
    assert message.startswith(f"{checkpoint}: refusing to resume: a file here is not one a training run wrote (")
    assert message.endswith("); never load it with weights_only=False") and "\n" not in message
    assert not marker.exists()  # weights_only loading never ran it


def test_run_records_are_written_over_a_planted_link_not_through_it(tiny_bert_dir, docs_file, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    for name in ("training_summary.json", "biohicl_training_args.json"):
        (out / name).symlink_to(victim)
    train_biohicl(make_args(tiny_bert_dir, docs_file, out, max_steps=1))
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert not (out / "training_summary.json").is_symlink()
    assert json.loads((out / "training_summary.json").read_text())["global_step"] == 1


# ---------------------------------------------------------------------------------------------------------- evaluation
class ScriptedEvaluator:
    """An evaluator returning the next score each call; it checks that the trainer put the model in eval mode."""

    def __init__(self, scores, extra=None):
        self.scores = iter(scores)
        self.extra = extra or {}
        self.calls = 0

    def __call__(self, model):
        assert not model.training
        self.calls += 1
        return {"biosses_spearman": next(self.scores), **self.extra}


def selection_args(tiny_bert_dir, docs_file, out, **overrides):
    values = dict(
        max_steps=6, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2, eval_tasks=["biosses"],
        metric_for_best_model="eval_biosses_spearman", load_best_model_at_end=True,
    )  # fmt: skip
    values.update(overrides)
    return make_args(tiny_bert_dir, docs_file, out, **values)


def test_evaluation_during_training_selects_the_best_checkpoint(tiny_bert_dir, docs_file, tmp_path):
    evaluator = ScriptedEvaluator([0.20, 0.30, 0.55, 0.40])  # step 0, 2, 4, 6: the best is step 4
    run = train_biohicl(selection_args(tiny_bert_dir, docs_file, tmp_path / "best"), evaluator=evaluator)
    assert evaluator.calls == 4  # step 0 (the base weights) is evaluated too
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["best_metric"] == 0.55 and state["best_model_checkpoint"].endswith("checkpoint-4")
    evals = [e for e in state["log_history"] if "eval_biosses_spearman" in e]
    assert [e["step"] for e in evals] == [0, 2, 4, 6]
    summary = json.loads((run / "training_summary.json").read_text())
    assert (summary["best_step"], summary["best_metric"], summary["step0_metric"]) == (4, 0.55, 0.20)
    assert summary["selected_base"] is False and summary["selection_metric"] == "eval_biosses_spearman"
    assert summary["selection"]["evaluations"] == [[0, 0.2], [2, 0.3], [4, 0.55], [6, 0.4]]
    # the saved final model is the best checkpoint's
    best = load_file(str(run / "checkpoint-4" / "adapter_model.safetensors"))
    final = load_file(str(run / "adapter_model.safetensors"))
    last = load_file(str(run / "checkpoint-6" / "adapter_model.safetensors"))
    for name in best:
        assert torch.equal(final[name], best[name]), name
    assert any(not torch.equal(last[n], best[n]) for n in best)


def test_nothing_beats_step_0_so_the_run_ends_with_the_base_weights(tiny_bert_dir, docs_file, tmp_path, caplog):
    from biohicl.models.model import BioHiCL

    evaluator = ScriptedEvaluator([0.60, 0.30, 0.50, 0.60])  # step 6 only ties step 0: a tie keeps the base
    with caplog.at_level("WARNING", logger="biohicl.training.trainer"):
        run = train_biohicl(selection_args(tiny_bert_dir, docs_file, tmp_path / "base"), evaluator=evaluator)
    assert [r.message for r in caplog.records if "beat step 0" in r.message] == [
        "model selection: no evaluation beat step 0 (eval_biosses_spearman = 0.6000, best later 0.6000); the run "
        "ends with the base model's weights"
    ]
    summary = json.loads((run / "training_summary.json").read_text())
    assert (summary["best_step"], summary["best_metric"], summary["step0_metric"]) == (0, 0.6, 0.6)
    assert summary["selected_base"] is True and summary["selection"]["loaded_best"] is True
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] is None and state["best_global_step"] == 0
    # the final adapter is the step-0 adapter bit for bit: LoRA B = 0, A as initialised
    initial = load_file(str(run / INITIAL_WEIGHTS_NAME))
    final = load_file(str(run / "adapter_model.safetensors"))
    trained = load_file(str(run / "checkpoint-6" / TRAINABLE_WEIGHTS_NAME))
    lora_b = [n for n in initial if "lora_B" in n]
    assert lora_b and all(not torch.equal(trained[n], initial[n]) for n in lora_b)  # training did move B
    for name, tensor in initial.items():
        saved = final[name.removeprefix("backbone.").replace(".default.", ".")]  # peft's saved key
        assert torch.equal(saved, tensor), name
        if "lora_B" in name:
            assert not tensor.any()
    # so the saved model embeds exactly as the base model does
    texts = ["diabetes of the heart", "brain cells"]
    reloaded = BioHiCL.from_pretrained(run, base_model_path=tiny_bert_dir).encode(texts, convert_to="torch")
    base = BioHiCL.from_base(str(tiny_bert_dir), max_length=32).encode(texts, convert_to="torch")
    assert torch.equal(reloaded, base)


def test_a_resumed_run_still_falls_back_to_the_step_0_weights(tiny_bert_dir, docs_file, tmp_path):
    out = tmp_path / "resumed"
    train_biohicl(selection_args(tiny_bert_dir, docs_file, out), evaluator=ScriptedEvaluator([0.60, 0.30, 0.50, 0.40]))
    initial = load_file(str(out / INITIAL_WEIGHTS_NAME))
    (out / "adapter_model.safetensors").unlink()
    # resume from step 4 (steps 0-4 evaluated by the first process): only step 6 is evaluated again
    evaluator = ScriptedEvaluator([0.55])
    args = selection_args(tiny_bert_dir, docs_file, out, resume_from_checkpoint=str(out / "checkpoint-4"))
    run = train_biohicl(args, evaluator=evaluator)
    assert evaluator.calls == 1  # no second "step 0" evaluation of the resumed weights
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["selection"]["evaluations"] == [[0, 0.6], [2, 0.3], [4, 0.5], [6, 0.55]]
    assert summary["selected_base"] is True and summary["step0_metric"] == 0.6
    final = load_file(str(run / "adapter_model.safetensors"))
    for name, tensor in initial.items():  # restored from the file the first process wrote
        assert torch.equal(final[name.removeprefix("backbone.").replace(".default.", ".")], tensor), name


def test_resuming_at_the_last_checkpoint_trains_no_further_step(tiny_bert_dir, docs_file, tmp_path):
    out = tmp_path / "done"
    common = dict(max_steps=4, save_strategy="steps", save_steps=2)
    train_biohicl(make_args(tiny_bert_dir, docs_file, out, **common))
    first = load_file(str(out / "adapter_model.safetensors"))
    for _ in range(2):  # each rerun of a finished run: nothing left to train
        trained = TrainedSteps()
        train_biohicl(make_args(tiny_bert_dir, docs_file, out, resume_from_checkpoint="last", **common), [trained])
        assert trained.steps == []  # not one step trained (a rerun from scratch would train 4 and end the same way)
        assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4
        assert last_complete_checkpoint(out) == out / "checkpoint-4"
        again = load_file(str(out / "adapter_model.safetensors"))
        assert again.keys() == first.keys() and all(torch.equal(again[n], first[n]) for n in first)
        summary = json.loads((out / "training_summary.json").read_text())
        assert summary["global_step"] == 4 and summary["train_loss"] > 0


def test_resuming_a_selected_run_at_its_last_checkpoint_keeps_the_selection(tiny_bert_dir, docs_file, tmp_path):
    out = tmp_path / "selected"
    # 4 steps of 3 batches per epoch: the last checkpoint is mid-epoch, where the Trainer would train a step more
    args = selection_args(tiny_bert_dir, docs_file, out, max_steps=4)
    train_biohicl(args, evaluator=ScriptedEvaluator([0.2, 0.55, 0.4]))
    first = load_file(str(out / "adapter_model.safetensors"))
    first_summary = json.loads((out / "training_summary.json").read_text())
    evaluator = ScriptedEvaluator([])
    args = selection_args(tiny_bert_dir, docs_file, out, max_steps=4, resume_from_checkpoint="last")
    train_biohicl(args, evaluator=evaluator)
    assert evaluator.calls == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["best_model_checkpoint"].endswith("checkpoint-2")
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["selection"] == first_summary["selection"] and summary["best_step"] == 2
    final = load_file(str(out / "adapter_model.safetensors"))  # the best checkpoint's weights, as before
    assert final.keys() == first.keys() and all(torch.equal(final[n], first[n]) for n in first)


def test_selection_on_the_mean_of_dev_metrics(tiny_bert_dir, docs_file, tmp_path):
    evaluator = ScriptedEvaluator([0.2, 0.4, 0.1, 0.3], extra={"pubmedqa_recall@1": 0.5})
    args = selection_args(
        tiny_bert_dir, docs_file, tmp_path / "mean", metric_for_best_model=None,
        selection_metrics=["biosses_spearman", "eval_pubmedqa_recall@1"],
    )  # fmt: skip
    assert args.metric_for_best_model == "dev_score" and args.greater_is_better is True
    run = train_biohicl(args, evaluator=evaluator)
    state = json.loads((run / "trainer_state.json").read_text())
    scores = [(e["step"], e["eval_dev_score"]) for e in state["log_history"] if "eval_dev_score" in e]
    assert scores == [(0, pytest.approx(0.35)), (2, pytest.approx(0.45)), (4, pytest.approx(0.3)),
                      (6, pytest.approx(0.4))]  # fmt: skip
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["best_step"] == 2 and summary["selected_base"] is False
    assert summary["best_metric"] == pytest.approx(0.45)


class ScriptedMetrics:
    """An evaluator returning the next dict of metrics each call."""

    def __init__(self, rows):
        self.rows = iter(rows)

    def __call__(self, model):
        return dict(next(self.rows))


def test_guarded_selection_keeps_the_best_objective_among_steps_that_hold_the_guard(tiny_bert_dir, docs_file, tmp_path):
    # step:               0     2     4     6
    agreement = [0.30, 0.40, 0.60, 0.50]  # the objective: step 4 is highest ...
    retrieval = [0.90, 0.91, 0.85, 0.90]  # ... but its dev retrieval fell below step 0's; step 6 ties the base
    evaluator = ScriptedMetrics(
        {"siml-agreement_spearman": a, "pubmedqa-dev_recall@1": r} for a, r in zip(agreement, retrieval, strict=True)
    )
    args = selection_args(
        tiny_bert_dir, docs_file, tmp_path / "guarded", metric_for_best_model=None,
        selection_metrics=["siml-agreement_spearman"], selection_guard=["pubmedqa-dev_recall@1"],
    )  # fmt: skip
    run = train_biohicl(args, evaluator=evaluator)
    state = json.loads((run / "trainer_state.json").read_text())
    evals = [e for e in state["log_history"] if "eval_dev_score" in e]
    assert [e["eval_dev_guard_passed"] for e in evals] == [1.0, 1.0, 0.0, 1.0]
    assert [e["eval_dev_score"] for e in evals] == [0.30, 0.40, 0.30, 0.50]  # step 4 scores the base's 0.30
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["best_step"] == 6 and summary["best_metric"] == 0.5 and summary["selected_base"] is False
    # every evaluation, metrics beside the score and the guard, is recorded apart from the Trainer's state
    rows = json.loads((run / "dev_evaluations.json").read_text())
    assert [r["step"] for r in rows] == [0, 2, 4, 6]
    assert [r["eval_siml-agreement_spearman"] for r in rows] == agreement
    assert [r["eval_dev_guard"] for r in rows] == retrieval
    assert [r["eval_dev_score"] for r in rows] == [0.30, 0.40, 0.30, 0.50]
    assert not any("eval_runtime" in r for r in rows)

    # with a tolerance of 0.05 step 4 passes (0.85 >= 0.90 - 0.05) and wins on agreement
    evaluator = ScriptedMetrics(
        {"siml-agreement_spearman": a, "pubmedqa-dev_recall@1": r} for a, r in zip(agreement, retrieval, strict=True)
    )
    args = selection_args(
        tiny_bert_dir, docs_file, tmp_path / "tolerant", metric_for_best_model=None,
        selection_metrics=["siml-agreement_spearman"], selection_guard=["pubmedqa-dev_recall@1"],
        selection_guard_tolerance=0.05 + 1e-9,
    )  # fmt: skip
    summary = json.loads((train_biohicl(args, evaluator=evaluator) / "training_summary.json").read_text())
    assert summary["best_step"] == 4 and summary["best_metric"] == 0.6


def test_guard_holds_on_the_mean_or_on_each_metric_by_hand():
    base = {"pubmedqa-dev_recall@5": 0.960, "scifact_ndcg@10": 0.6602}
    step = {"pubmedqa-dev_recall@5": 0.964, "scifact_ndcg@10": 0.6565}  # seed 5 at step 209: R@5 up, SciFact down
    names = ["pubmedqa-dev_recall@5", "eval_scifact_ndcg@10"]
    assert guard_holds(step, base, names, "mean")  # (0.964 + 0.6565) / 2 = 0.81025 >= 0.8101
    assert not guard_holds(step, base, names, "each")  # 0.6565 < 0.6602
    assert guard_holds(step, base, names, "each", tolerance=0.004)  # 0.6565 >= 0.6562
    with pytest.raises(ConfigError, match="selection_guard_mode: 'all' is not one of mean, each"):
        guard_holds(step, base, names, "all")


ISSUE15_RECORDS = Path(__file__).resolve().parents[1] / "docs/results/study_minilm_cpu_guarded_256"
ISSUE15_GUARD = ["pubmedqa-dev_recall@1", "pubmedqa-dev_recall@5", "scifact_ndcg@10"]


def committed_dev_rows(record: Path) -> list[dict]:
    """A committed ``dev_evaluations.json``, one dict per evaluated step, keys without the ``eval_`` prefix."""
    return [{k.removeprefix("eval_"): v for k, v in row.items()} for row in json.loads(record.read_text())]


def test_guard_modes_replayed_on_the_committed_issue15_dev_records():
    """`mean` reproduces every recorded guard decision; `each` would have kept the base in every seed of the
    distillation weights but the registered recipe's seeds 7 and 8 (docs/training.md)."""
    records = sorted(ISSUE15_RECORDS.glob("one_pass_distill*_seed*/dev_evaluations.json"))
    # weight 4 seed 3, weight 2 seeds 3-8, 1.5 and 1 seeds 3-5, all pairs seeds 3-8, negatives in every batch seeds 3-5
    assert len(records) == 22
    each_holds = {
        "one_pass_distill2_all_seed3": [False, True, True],
        "one_pass_distill2_all_seed4": [False, True, False],
        "one_pass_distill2_all_seed6": [False, True, True],
        "one_pass_distill2_all_seed7": [False, True, False],
        "one_pass_distill2_seed7": [False, False, True],
        "one_pass_distill2_seed8": [False, False, True],
    }
    kept_last = 0
    for record in records:
        rows = committed_dev_rows(record)
        base, later = rows[0], rows[1:]
        recorded = [bool(r["dev_guard_passed"]) for r in later]
        assert [guard_holds(r, base, ISSUE15_GUARD, "mean") for r in later] == recorded
        each = [guard_holds(r, base, ISSUE15_GUARD, "each") for r in later]
        # every guard metric at or above the base's at a later step: the all-pairs MSE's steps 140 and 209 of seeds 3
        # and 6 and step 140 of seeds 4 and 7 (their step 209 lost SciFact-train or questions; seeds 5 and 8 lost
        # SciFact-train or a question at every step), and step 209 of weight 2's seeds 7 and 8 (SciFact-train 0.6603
        # and 0.6608 against 0.6602)
        assert each == each_holds.get(record.parent.name, [False] * 3), record
        if later[-1]["dev_guard_passed"]:  # the runs that kept step 209: so does `each` with a tolerance
            assert guard_holds(later[-1], base, ISSUE15_GUARD, "each", tolerance=0.005), record
            kept_last += 1
    # weight 4, weight 2 x6, weight 1.5 seeds 3 and 4, all pairs seeds 3-6 (7 and 8 kept step 140); weight 1 kept its
    # base, negatives at most step 140
    assert kept_last == 13


def test_committed_records_replay_the_guard_and_the_selected_step():
    """Each committed seed of `two_pass_distill2` and `one_pass_distill2_neg` kept the step the guarded rule picks from
    its own dev record: the most agreement among the steps whose guard mean is at least step 0's, step 0 (the base)
    when no later step keeps the guard (docs/results.md, "Two passes at weight 2", "Negatives in every batch")."""
    kept = {}
    records = [*ISSUE15_RECORDS.glob("two_pass_distill2_seed*"), *ISSUE15_RECORDS.glob("one_pass_distill2_neg_seed*")]
    for record in sorted(folder / "dev_evaluations.json" for folder in records):
        rows = committed_dev_rows(record)
        steps = [0, 105, 210, 315, 418] if record.parent.name.startswith("two_pass") else [0, 70, 140, 209]
        assert [r["step"] for r in rows] == steps, record
        passed = [guard_holds(r, rows[0], ISSUE15_GUARD, "mean") for r in rows]
        assert passed == [bool(r["dev_guard_passed"]) for r in rows], record
        best = max((r for r, ok in zip(rows, passed, strict=True) if ok), key=lambda r: r["siml-agreement_spearman"])
        summary = json.loads((record.parent / "training_summary.json").read_text())
        assert summary["best_step"] == best["step"] and summary["best_metric"] == best["siml-agreement_spearman"]
        kept[record.parent.name] = best["step"]
    assert kept == {
        "two_pass_distill2_seed3": 418,
        "two_pass_distill2_seed4": 315,
        "two_pass_distill2_seed5": 210,
        "one_pass_distill2_neg_seed3": 0,
        "one_pass_distill2_neg_seed4": 0,
        "one_pass_distill2_neg_seed5": 140,
    }


def test_each_guard_mode_lets_no_guard_metric_fall(tiny_bert_dir, docs_file, tmp_path):
    # step:        0     2     4     6
    agreement = [0.30, 0.55, 0.60, 0.50]
    recall = [0.90, 0.95, 0.90, 0.90]  # step 2 pays for its SciFact loss with recall: passes `mean` only
    ndcg = [0.60, 0.58, 0.55, 0.60]  # step 4 loses on SciFact: fails both
    rows = zip(agreement, recall, ndcg, strict=True)
    metrics = [{"siml-agreement_spearman": a, "pubmedqa-dev_recall@1": r, "scifact_ndcg@10": n} for a, r, n in rows]
    guard = ["pubmedqa-dev_recall@1", "scifact_ndcg@10"]
    passed, best = {}, {}
    for mode in ("mean", "each"):
        args = selection_args(
            tiny_bert_dir, docs_file, tmp_path / mode, metric_for_best_model=None,
            selection_metrics=["siml-agreement_spearman"], selection_guard=guard, selection_guard_mode=mode,
        )  # fmt: skip
        run = train_biohicl(args, evaluator=ScriptedMetrics(dict(m) for m in metrics))
        passed[mode] = [r["eval_dev_guard_passed"] for r in json.loads((run / "dev_evaluations.json").read_text())]
        best[mode] = json.loads((run / "training_summary.json").read_text())["best_step"]
    assert passed == {"mean": [1.0, 1.0, 0.0, 1.0], "each": [1.0, 0.0, 0.0, 1.0]}
    assert best == {"mean": 2, "each": 6}  # `each` keeps step 6, the best that lost nothing
    with pytest.raises(ConfigError, match="selection_guard_mode: 'all' is not one of mean, each"):
        selection_args(
            tiny_bert_dir, docs_file, tmp_path / "bad", metric_for_best_model=None,
            selection_metrics=["siml-agreement_spearman"], selection_guard=guard, selection_guard_mode="all",
        )  # fmt: skip


def test_guarded_selection_says_when_the_guard_kept_the_base(tiny_bert_dir, docs_file, tmp_path, caplog):
    rows = [(0.30, 0.90), (0.40, 0.80), (0.20, 0.95), (0.50, 0.85)]  # (agreement, retrieval) at steps 0, 2, 4, 6
    evaluator = ScriptedMetrics({"siml-agreement_spearman": a, "pubmedqa-dev_recall@1": r} for a, r in rows)
    args = selection_args(
        tiny_bert_dir, docs_file, tmp_path / "kept", metric_for_best_model=None,
        selection_metrics=["siml-agreement_spearman"], selection_guard=["pubmedqa-dev_recall@1"],
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="biohicl.training.trainer"):
        run = train_biohicl(args, evaluator=evaluator)
    assert [r.message for r in caplog.records if "beat step 0" in r.message] == [
        "model selection: no evaluation beat step 0 (eval_dev_score = 0.3000, best later 0.3000; 2 of 3 later steps "
        "fell below step 0's dev guard); the run ends with the base model's weights"
    ]  # step 4 kept the guard but its agreement (0.20) is below the base's
    assert json.loads((run / "training_summary.json").read_text())["selected_base"] is True


def test_guarded_selection_is_refused_without_what_it_needs(tiny_bert_dir, docs_file, tmp_path):
    with pytest.raises(ConfigError, match="selection_guard: needs --selection_metrics"):
        selection_args(tiny_bert_dir, docs_file, tmp_path / "a", selection_guard=["pubmedqa-dev_recall@1"])
    with pytest.raises(ConfigError, match=r"selection_guard_tolerance: -0\.1 is negative"):
        selection_args(
            tiny_bert_dir, docs_file, tmp_path / "b", metric_for_best_model=None,
            selection_metrics=["biosses_spearman"], selection_guard=["biosses_spearman"],
            selection_guard_tolerance=-0.1,
        )  # fmt: skip
    args = selection_args(
        tiny_bert_dir, docs_file, tmp_path / "c", metric_for_best_model=None, selection_metrics=["biosses_spearman"],
        selection_guard=["scifact-train_ndcg@10"],
    )  # fmt: skip
    with pytest.raises(ConfigError, match="selection_guard: scifact-train_ndcg@10 is not an evaluation metric"):
        train_biohicl(args, evaluator=ScriptedEvaluator([0.2]))


def test_selection_metric_that_no_task_gives_fails_at_step_0(tiny_bert_dir, docs_file, tmp_path):
    args = selection_args(tiny_bert_dir, docs_file, tmp_path / "x", metric_for_best_model="scifact_ndcg@10")
    with pytest.raises(ConfigError, match=r"metric_for_best_model: eval_scifact_ndcg@10 is not an evaluation metric"):
        train_biohicl(args, evaluator=ScriptedEvaluator([0.2]))
    with pytest.raises(ConfigError, match="metric_for_best_model: load_best_model_at_end needs a dev metric"):
        make_args(tiny_bert_dir, docs_file, tmp_path / "y", eval_strategy="steps", eval_steps=2,
                  save_strategy="steps", save_steps=2, eval_tasks=["biosses"], load_best_model_at_end=True)  # fmt: skip
    # transformers' own check, as one line naming the field
    with pytest.raises(ConfigError, match=r"load_best_model_at_end: .*save and eval strategy to match"):
        make_args(
            tiny_bert_dir, docs_file, tmp_path / "z", eval_strategy="steps", eval_steps=2, save_strategy="no",
            eval_tasks=["biosses"], load_best_model_at_end=True, metric_for_best_model="biosses_spearman",
        )  # fmt: skip


def test_load_best_model_at_end_needs_every_evaluation_saved(tiny_bert_dir, docs_file, tmp_path):
    # transformers allows save_steps a multiple of eval_steps, but a best step that was never saved cannot be loaded
    message = r"^save_steps: must equal eval_steps \(2\) with load_best_model_at_end, got 4 \(a best step"
    with pytest.raises(ConfigError, match=message):
        selection_args(tiny_bert_dir, docs_file, tmp_path / "x", max_steps=8, save_steps=4)
    args = selection_args(tiny_bert_dir, docs_file, tmp_path / "y", max_steps=8, save_steps=2)
    assert (args.save_steps, args.eval_steps) == (2, 2)


def test_selection_guard_without_load_best_evaluates_step_0(tiny_bert_dir, docs_file, tmp_path):
    # the guard compares every step with step 0's evaluation: step 0 is evaluated without load_best_model_at_end too
    evaluator = ScriptedMetrics(
        {"siml-agreement_spearman": a, "pubmedqa-dev_recall@1": r}
        for a, r in zip([0.30, 0.40, 0.60], [0.90, 0.91, 0.85], strict=True)
    )
    args = make_args(
        tiny_bert_dir, docs_file, tmp_path / "guard", max_steps=4, eval_strategy="steps", eval_steps=2,
        eval_tasks=["biosses"], selection_metrics=["siml-agreement_spearman"],
        selection_guard=["pubmedqa-dev_recall@1"],
    )  # fmt: skip
    # --selection_metrics selects on dev_score without --load_best_model_at_end too (it needed the metric named)
    assert args.eval_on_start and not args.load_best_model_at_end and args.metric_for_best_model == "dev_score"
    run = train_biohicl(args, evaluator=evaluator)
    rows = json.loads((run / "dev_evaluations.json").read_text())
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert [r["eval_dev_guard_passed"] for r in rows] == [1.0, 1.0, 0.0]
    assert [r["eval_dev_score"] for r in rows] == [0.30, 0.40, 0.30]


def test_evaluation_without_tasks_or_evaluator_is_refused(tiny_bert_dir, docs_file, tmp_path):
    with pytest.raises(ConfigError, match="eval_tasks"):
        train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "x", eval_strategy="steps", eval_steps=1))
    args = make_args(
        tiny_bert_dir, docs_file, tmp_path / "x", eval_strategy="steps", eval_steps=1, eval_tasks=["biosses"]
    )
    with pytest.raises(ConfigError, match="eval_strategy: evaluation during training needs an evaluator"):
        train_biohicl(args)  # training never builds the harness evaluator itself: the caller passes one
    with pytest.raises(ConfigError, match="selection_metrics: needs --eval_tasks"):
        train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "x", selection_metrics=["biosses_spearman"]))


def test_an_evaluator_with_metric_names_is_checked_before_training(tiny_bert_dir, docs_file, tmp_path):
    class NamedEvaluator(ScriptedEvaluator):
        def metric_names(self):
            return ["biosses_spearman", "pubmedqa_recall@1"]

    args = selection_args(tiny_bert_dir, docs_file, tmp_path / "x", metric_for_best_model="scifact_ndcg@10")
    with pytest.raises(
        ConfigError, match=r"eval_scifact_ndcg@10 is not an evaluation metric \(the tasks give eval_bio"
    ):
        train_biohicl(args, evaluator=NamedEvaluator([]))
    args = selection_args(
        tiny_bert_dir, docs_file, tmp_path / "y", metric_for_best_model=None, selection_metrics=["pubmedqa_ndcg@10"]
    )
    with pytest.raises(ConfigError, match="selection_metrics: pubmedqa_ndcg@10 is not an evaluation metric"):
        train_biohicl(args, evaluator=NamedEvaluator([]))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # refused before any work


def test_a_misspelt_guard_metric_of_the_task_evaluator_stops_the_run_before_the_model_loads(
    tiny_bert_dir, docs_file, tmp_path, monkeypatch, data_dir
):
    import biohicl.training.run as run_module
    from biohicl.evaluation.evaluator import TaskEvaluator

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the selection metrics were checked")

    monkeypatch.setattr(run_module, "build_model", no_model)
    args = selection_args(
        tiny_bert_dir, docs_file, tmp_path / "x", metric_for_best_model=None, selection_metrics=["biosses_spearman"],
        selection_guard=["scifact-train_ndcg@10"],
    )  # fmt: skip
    with pytest.raises(
        ConfigError,
        match=r"^selection_guard: scifact-train_ndcg@10 is not an evaluation metric \(the tasks give biosses_pearson, "
        r"biosses_spearman, scifact_mrr@10, scifact_ndcg@10, scifact_recall@100\)$",
    ):
        train_biohicl(args, evaluator=TaskEvaluator(["biosses", "scifact:train"]))


def test_paper_contrastive_form_and_lowest_negatives_reach_the_loss(tiny_bert_dir, docs_file, tmp_path):
    args = make_args(
        tiny_bert_dir, docs_file, tmp_path / "paper", max_steps=2, contrastive_form="paper", negative="lowest:2"
    )
    assert args.contrastive_form == "paper" and args.negative == "lowest:2"
    run = train_biohicl(args)
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["loss"]["contrastive"]["form"] == "paper"
    assert summary["loss"]["contrastive"]["negative"] == "lowest:2"
    state = json.loads((run / "trainer_state.json").read_text())
    steps = [e for e in state["log_history"] if "loss_mse" in e]
    # 8 documents per batch, each anchor has its 2 lowest-SimL documents as negatives: many pairs are negatives
    assert len(steps) == 2 and all(e["negative_pairs"] > 0.2 for e in steps)


# ---------------------------------------------------------------------------------------------------------- distill
def test_base_model_embeddings_are_the_base_models(tiny_bert_dir):
    from biohicl.models.model import BioHiCL
    from biohicl.training.trainer import base_model_embeddings
    from tests.conftest import randomize_lora_b

    texts = ["diabetes of the heart", "brain cells", "cancer"]
    base = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    expected = base.encode(texts, convert_to="torch")
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    model.add_lora(r=4, alpha=8, dropout=0.1, target_modules=["query", "value"], verbose=False)
    randomize_lora_b(model, generator=torch.Generator().manual_seed(0))
    model.train()
    batch = dict(model.tokenize(texts))
    got = base_model_embeddings(model, batch)
    assert torch.allclose(got, expected, atol=1e-6) and not got.requires_grad
    assert model.training  # the train/eval mode is restored
    assert not torch.allclose(model.eval()(**batch), expected, atol=1e-3)  # the adapters are back on


def test_the_trainers_distillation_term_is_against_the_base_model(tiny_bert_dir, docs_file, tmp_path, mesh):
    from biohicl.data.collator import BioHiCLDataCollator
    from biohicl.losses.distillation import SimilarityDistillationLoss
    from biohicl.models.model import BioHiCL
    from biohicl.training.run import build_model
    from biohicl.training.trainer import BioHiCLTrainer
    from tests.conftest import randomize_lora_b

    args = make_args(tiny_bert_dir, docs_file, tmp_path / "unit", distill_weight=0.5, lora_dropout=0.0)
    model = build_model(args)
    randomize_lora_b(model, generator=torch.Generator().manual_seed(0))  # the tuned model is not the base
    collator = BioHiCLDataCollator(tokenize=model.tokenize, mesh=mesh)
    trainer = BioHiCLTrainer(model=model, args=args, data_collator=collator)
    features = [{"text": d["title"] + " " + d["abstract"], "labels": d["mesh"]} for d in synthetic_documents()[::3]]
    batch = collator(features)
    model.eval()  # no dropout: the embeddings below are the ones compute_loss saw
    total, outputs = trainer.compute_loss(model, batch, return_outputs=True)
    inputs = {k: v for k, v in batch.items() if k not in ("siml", "pair_mask")}
    with torch.no_grad():
        tuned = model(**inputs)
        base = BioHiCL.from_base(str(tiny_bert_dir), max_length=32).eval()(**inputs)  # a separate base model
    expected = SimilarityDistillationLoss()(tuned, base)
    # randomised LoRA B moves SimE away from the base's (a random tiny BERT's cosines are all near 0.99: small values)
    assert expected > 1e-6
    assert outputs["loss_distill"].item() == pytest.approx(expected.item(), rel=1e-3)
    assert torch.allclose(outputs["embeddings"], tuned, atol=1e-6)
    parts = outputs["loss_mse"] + 0.1 * outputs["loss_con"] + 0.5 * outputs["loss_distill"]
    assert total.item() == pytest.approx(parts.item(), rel=1e-5)


def test_training_with_self_distillation_logs_the_component(tiny_bert_dir, docs_file, tmp_path):
    run = train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "distill", max_steps=2, distill_weight=0.5))
    state = json.loads((run / "trainer_state.json").read_text())
    steps = [e for e in state["log_history"] if "loss_mse" in e]
    assert len(steps) == 2
    for entry in steps:
        # > 0 from step 1: the trained model runs with dropout, the base model's targets without
        assert entry["loss_distill"] > 0.0
        total = entry["loss_mse"] + 0.1 * entry["loss_con"] + 0.5 * entry["loss_distill"]
        assert entry["loss"] == pytest.approx(total, rel=1e-5)
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["loss"]["distill_weight"] == 0.5
    with pytest.raises(ConfigError, match="distill_weight: needs LoRA"):
        make_args(tiny_bert_dir, docs_file, tmp_path / "x", distill_weight=0.5, full_finetune=True)
    with pytest.raises(ConfigError, match="distill_weight: must be non-negative"):
        make_args(tiny_bert_dir, docs_file, tmp_path / "x", distill_weight=-1.0)


def test_training_with_the_title_term(tiny_bert_dir, docs_file, tmp_path):
    run = train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "title", max_steps=2, title_weight=0.5))
    state = json.loads((run / "trainer_state.json").read_text())
    steps = [e for e in state["log_history"] if "loss_mse" in e]
    assert len(steps) == 2
    for entry in steps:
        assert entry["loss_title"] > 0.0
        total = entry["loss_mse"] + 0.1 * entry["loss_con"] + 0.5 * entry["loss_title"]
        assert entry["loss"] == pytest.approx(total, rel=1e-5)
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["loss"]["title_weight"] == 0.5 and summary["loss"]["title"] == {"temperature": 0.05}


def test_any_loss_works_and_its_components_are_logged(tiny_bert_dir, docs_file, tmp_path):
    class SpreadLoss(torch.nn.Module):
        """Not a BioHiCL loss: push the batch's embeddings apart; reports two components of its own."""

        def forward(self, embeddings, siml, **inputs):
            unit = torch.nn.functional.normalize(embeddings, dim=-1)
            spread = (unit @ unit.T).mean()
            return {"loss": 2 * spread + 1, "loss_spread": spread, "loss_one": torch.ones(())}

    run = train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "any", max_steps=2), loss=SpreadLoss())
    state = json.loads((run / "trainer_state.json").read_text())
    steps = [e for e in state["log_history"] if "loss_spread" in e]
    assert len(steps) == 2 and all("loss_mse" not in e for e in steps)
    for entry in steps:
        assert entry["loss_one"] == 1.0 and entry["loss"] == pytest.approx(2 * entry["loss_spread"] + 1, rel=1e-5)
    assert json.loads((run / "training_summary.json").read_text())["loss"] == {"class": "SpreadLoss"}


def test_loss_terms_take_the_total_or_sum_the_components():
    from biohicl.training.trainer import loss_terms

    total, parts = loss_terms(torch.tensor(2.0))
    assert total.item() == 2.0 and parts == {}
    total, parts = loss_terms({"loss": torch.tensor(3.0), "loss_mse": torch.tensor(1.0), "con": torch.tensor(2.0)})
    assert total.item() == 3.0 and sorted(parts) == ["loss_con", "loss_mse"]  # every component logged as loss_*
    total, parts = loss_terms({"spread": torch.tensor(0.5), "loss_one": torch.tensor(1.0)})
    assert total.item() == 1.5 and sorted(parts) == ["loss_one", "loss_spread"]  # no total given: the sum
    with pytest.raises(ConfigError, match="loss: returned an empty dict"):
        loss_terms({})


# ---------------------------------------------------------------------------------------------------------- peft
def test_a_dora_config_replaces_the_lora_settings_trains_and_reloads(tiny_bert_dir, docs_file, tmp_path):
    from peft import LoraConfig
    from transformers import TrainerCallback

    from biohicl.models.model import BioHiCL

    texts = ["diabetes of the heart", "brain cells"]
    trained = {}

    class EmbedAtTheEnd(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kwargs):
            model.eval()
            trained["embeddings"] = model.encode(texts, convert_to="torch")
            model.train()

    dora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query"], use_dora=True)
    args = make_args(
        tiny_bert_dir, docs_file, tmp_path / "dora", max_steps=2, lora_r=16, learning_rate=1e-2, warmup_steps=0
    )
    run = train_biohicl(args, [EmbedAtTheEnd()], peft_config=dora)
    saved = json.loads((run / "adapter_config.json").read_text())
    assert saved["use_dora"] is True and saved["r"] == 4 and saved["target_modules"] == ["query"]  # not args' r=16
    adapter = load_file(str(run / "adapter_model.safetensors"))
    assert any("lora_magnitude_vector" in name for name in adapter)  # DoRA's magnitude vectors are saved
    assert not any(".value." in name for name in adapter)
    summary = json.loads((run / "training_summary.json").read_text())
    assert 0 < summary["trainable_parameters"] < summary["total_parameters"]
    reloaded = BioHiCL.from_pretrained(run, base_model_path=tiny_bert_dir)
    assert torch.allclose(reloaded.encode(texts, convert_to="torch"), trained["embeddings"], atol=1e-6)
    base = BioHiCL.from_base(str(tiny_bert_dir), max_length=32).encode(texts, convert_to="torch")
    assert not torch.allclose(trained["embeddings"], base, atol=1e-6)  # training moved the embeddings


def test_a_peft_config_and_a_full_finetune_exclude_each_other(tiny_bert_dir, docs_file, tmp_path):
    from peft import LoraConfig

    from biohicl.training.run import build_model

    args = make_args(tiny_bert_dir, docs_file, tmp_path / "x", full_finetune=True)
    with pytest.raises(ConfigError, match="peft_config: full_finetune trains every weight"):
        build_model(args, peft_config=LoraConfig(r=4, use_dora=True))


# ---------------------------------------------------------------------------------------------------------- CLI, curves
def test_cli_reads_a_yaml_config_and_options_override_it(tmp_path):
    from biohicl.cli.train import parse_args

    config = tmp_path / "run.yaml"
    config.write_text(f"output_dir: {tmp_path / 'out'}\nlambda_con: 0.2\neval_tasks: [biosses, scifact]\n")
    args = parse_args(["--config", str(config), "--beta", "0.4", "--no_use_ancestors"])
    assert (args.lambda_con, args.beta, args.use_ancestors) == (0.2, 0.4, False)
    assert args.eval_tasks == ["biosses", "scifact"] and args.output_dir == str(tmp_path / "out")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"output_dir": "x", "lamda_con": 0.2}))
    with pytest.raises(ConfigError, match="lamda_con"):
        parse_args(["--config", str(bad)])


def test_training_curves_draw_one_line_per_component(tmp_path):
    from biohicl.training.curves import curve_series, plot_training_curves

    history = [
        {"step": 1, "loss": 1.0, "loss_mse": 0.8, "loss_con": 2.0},
        {"step": 2, "loss": 0.9, "loss_mse": 0.7, "loss_con": 2.0},
        {"step": 2, "eval_biosses_spearman": 0.7, "eval_runtime": 3.0},
    ]
    assert curve_series(history, "loss_con") == ([1, 2], [2.0, 2.0])
    from biohicl.training.curves import loss_keys

    assert loss_keys([*history, {"step": 3, "loss_title": 0.1, "loss_distill": 0.2}]) == [
        "loss", "loss_mse", "loss_con", "loss_distill", "loss_title"
    ]  # fmt: skip
    out = plot_training_curves(history, tmp_path / "c.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    state = tmp_path / "trainer_state.json"
    state.write_text(json.dumps({"log_history": history}))
    assert plot_training_curves(tmp_path, tmp_path / "d.png").is_file()


def test_curves_draw_the_terms_a_run_logged_with_or_without_an_older_runs_zero_column(tmp_path, saved_figures):
    """A run whose L_con was off logs no loss_con (the curves draw loss and L_mse only); an older run's log with the
    switched-off term as a column of 0s still reads and draws it as logged."""
    from biohicl.training.curves import plot_training_curves

    new = [{"step": 1, "loss": 0.8, "loss_mse": 0.8}, {"step": 2, "loss": 0.7, "loss_mse": 0.7}]
    old = [{**entry, "loss_con": 0.0} for entry in new]
    for name, history in (("new", new), ("old", old)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer_state.json").write_text(json.dumps({"log_history": history}))
        plot_training_curves(tmp_path / name, tmp_path / f"{name}.png")
    drawn = [[line.get_label() for line in figure.axes[0].get_lines()] for figure in saved_figures]
    assert drawn == [["total L", "L_mse (filtered regression)"], ["total L", "L_mse (filtered regression)", "L_con"]]


def test_a_failed_save_of_the_training_curves_keeps_the_previous_plot(tmp_path, monkeypatch):
    import matplotlib.figure

    from biohicl.training.curves import plot_training_curves

    output = tmp_path / "training_curves.png"
    output.write_bytes(b"previous plot")

    def half_written(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise RuntimeError("killed mid-save")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_written)
    with pytest.raises(RuntimeError, match="killed mid-save"):
        plot_training_curves([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}], output)
    assert output.read_bytes() == b"previous plot" and sorted(p.name for p in tmp_path.iterdir()) == [output.name]
    monkeypatch.undo()
    assert plot_training_curves([{"step": 1, "loss": 1.0}], output).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ([], "expected a JSON object, got list"),
        ({"log_history": [{"step": 1, "loss": 1.0}, 3]}, "no log_history list of objects"),
        ({"log_history": [{"step": 1, "loss": 1.0}, {"step": 2, "loss": None}]},
         "log_history step 2: loss is None, not a number"),
        ({"log_history": [{"step": 2, "loss": 1.0}, {"step": 2, "eval_biosses_spearman": "0.7"}]},
         "log_history step 2: eval_biosses_spearman is '0.7', not a number"),
        ({"log_history": [{"step": float("nan"), "loss": 1.0}]}, "log_history: step nan (of loss) is not an integer"),
    ],
)  # fmt: skip
def test_a_malformed_trainer_state_is_a_data_error_naming_the_file(tmp_path, state, message):
    from biohicl.errors import DataError
    from biohicl.training.curves import curve_series, plot_training_curves, read_log_history

    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state))
    expected = f"^{re.escape(f'{path}: {message}')}$"
    with pytest.raises(DataError, match=expected):
        read_log_history(path)
    with pytest.raises(DataError, match=expected):
        plot_training_curves(tmp_path, tmp_path / "c.png")
    if isinstance(state, dict) and all(isinstance(e, dict) for e in state["log_history"]):
        with pytest.raises(DataError, match=f"^{re.escape(message)}$"):  # a list given directly: no file to name
            plot_training_curves(state["log_history"], tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()
    history = [{"step": 1, "loss": 1.0}, {"step": 2.0, "loss": float("nan")}]  # a NaN loss is still a number
    assert curve_series(history, "loss")[0] == [1, 2]


def test_drop_check_tags_removes_humans_from_siml(tmp_path, mesh):
    from biohicl.mesh.label_groups import check_tag_uis
    from biohicl.training.run import build_batch_sampler, load_training_data

    humans, male = mesh.resolve("Humans"), mesh.resolve("Male")
    assert {humans, male} <= check_tag_uis(mesh)
    docs = [
        {"title": "a", "abstract": "x", "mesh": [humans, male, "D003920"], "split": "train"},
        {"title": "b", "abstract": "y", "mesh": [humans, "D009203"], "split": "train"},
        {"title": "c", "abstract": "z", "mesh": [humans, "D001943"], "split": "test"},
    ]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    values = dict(output_dir=str(tmp_path / "o"), dataset_path=str(path), per_device_train_batch_size=2)
    kept = load_training_data(BioHiCLTrainingArguments(**values), mesh)
    # with the check tags, diabetes and myocardial-infarction abstracts look related through "Humans" alone
    assert mesh.label_similarity(*kept.documents["labels"]) > 0.3
    assert build_batch_sampler(BioHiCLTrainingArguments(**values), kept, mesh).partners[0].tolist() == [1]
    dropped = load_training_data(BioHiCLTrainingArguments(**values, drop_check_tags=True), mesh)
    assert dropped.documents["labels"] == [["D003920"], ["D009203"]]  # the test document is held out too
    # Humans twice; Male has no tree number in MeSH 2024, so it was already out of SimL: a known descriptor, counted
    # apart from unknown UIs (the card had shown 5,887 "unknown" labels that were Male and Female)
    assert dropped.stats["check_tags_dropped"] == 2 and dropped.stats["labels_without_tree_position"] == 1
    assert dropped.stats["labels_dropped_unknown"] == 0
    assert mesh.label_similarity(*dropped.documents["labels"]) == 0.0
    sampler = build_batch_sampler(BioHiCLTrainingArguments(**values, drop_check_tags=True), dropped, mesh)
    assert [p.tolist() for p in sampler.partners] == [[], []]


def test_a_documents_file_labelled_with_names_trains_on_their_uis(tmp_path, mesh):
    """A documents file (as `biohicl build-dataset`'s jsonl source reads) may name its descriptors: training used to
    take every label for a UI, so names were dropped as unknown and the run had nothing to learn from."""
    from biohicl.training.run import load_training_data

    docs = [
        {"title": "a", "abstract": "x", "mesh": ["Diabetes Mellitus, Type 2", "MESH:D006801"]},
        {"title": "b", "abstract": "y", "mesh": ["heart attack", "Humans"]},  # an entry term
        {"title": "c", "abstract": "z", "mesh": ["D001943", "not a descriptor"]},
    ]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    data = load_training_data(BioHiCLTrainingArguments(output_dir=str(tmp_path / "o"), dataset_path=str(path)), mesh)
    assert data.documents["labels"] == [["D003924", "D006801"], ["D009203", "D006801"], ["D001943"]]
    assert data.stats["labels_dropped_unknown"] == 1
    joined = [{**doc, "mesh": "|".join(doc["mesh"])} for doc in docs]  # one `|`-joined string per document
    path.write_text("".join(json.dumps(d) + "\n" for d in joined))
    again = load_training_data(BioHiCLTrainingArguments(output_dir=str(tmp_path / "o"), dataset_path=str(path)), mesh)
    assert again.documents["labels"] == data.documents["labels"]


class _FakeAccelerator:
    """``torch.accelerator`` as a machine with ``kind`` (``None``: none) reports it."""

    def __init__(self, kind: str | None) -> None:
        self.kind = kind

    def is_available(self) -> bool:
        return self.kind is not None

    def current_accelerator(self, check_available: bool = False) -> torch.device | None:
        return None if self.kind is None else torch.device(self.kind)


@pytest.mark.parametrize(
    ("environ", "kind", "expected"),
    [
        ({"WORLD_SIZE": "2"}, "mps", True),  # accelerate builds no process group on MPS: the CPU (gloo) one
        ({"LOCAL_RANK": "0"}, "mps", True),
        ({"WORLD_SIZE": "2"}, None, True),
        ({"WORLD_SIZE": "2"}, "cuda", False),  # NCCL: accelerate's own group
        ({}, "mps", False),  # not launched: a single process uses the accelerator as it is
        ({}, None, False),
    ],
)
def test_launched_without_accelerator_counts_mps_as_none(monkeypatch, environ, kind, expected):
    from biohicl.settings import launched_without_accelerator

    for name in ("WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch, "accelerator", _FakeAccelerator(kind))
    assert launched_without_accelerator() is expected


#: run under torchrun in place of ``-m biohicl.cli.main``: torch reports MPS as an Apple-silicon Mac's torch does
AS_ON_A_MAC = textwrap.dedent(
    """
    import runpy, sys
    import torch

    torch.accelerator.is_available = lambda: True
    torch.accelerator.current_accelerator = lambda check_available=False: torch.device("mps")
    sys.argv[0] = "biohicl"
    runpy.run_module("biohicl.cli.main", run_name="__main__", alter_sys=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("machine", ["cpu", "mps"])
def test_two_process_ddp_run_on_cpu(tiny_bert_dir, docs_file, tmp_path, machine):
    """``torchrun --nproc_per_node 2`` without ``--use_cpu`` on a machine without an accelerator, or with MPS only
    (accelerate builds no process group on it), so gloo on CPU: batches are sharded, components reduced, one save."""
    import yaml

    config = tmp_path / "ddp.yaml"
    values = make_values(tiny_bert_dir, docs_file, tmp_path / "ddp", max_steps=3, per_device_train_batch_size=4)
    values.pop("use_cpu")  # the documented launch: the processes must still join one CPU process group
    config.write_text(yaml.safe_dump(values))
    launch = ["-m", "biohicl.cli.main"]
    if machine == "mps":
        (tmp_path / "as_on_a_mac.py").write_text(AS_ON_A_MAC)
        launch = [str(tmp_path / "as_on_a_mac.py")]
    proc = run_torchrun([*launch, "train", "--config", str(config)], timeout=600)
    assert proc.returncode == 0, proc.stderr[-8000:]
    state = json.loads((tmp_path / "ddp" / "trainer_state.json").read_text())
    steps = [e for e in state["log_history"] if "loss_mse" in e]
    # 20 documents / 4 per batch = 5 batches, split over 2 processes → 3 steps per epoch
    assert [round(e["epoch"], 4) for e in steps] == [0.3333, 0.6667, 1.0]
    # each process ran 3 batches of 4 (the one short of a third loops back to the epoch's first): both summed
    assert json.loads((tmp_path / "ddp" / "training_summary.json").read_text())["documents_trained"] == 2 * 3 * 4
    assert (tmp_path / "ddp" / "adapter_model.safetensors").is_file()
    assert (proc.stdout + proc.stderr).count("saved the trained model") == 1  # the main process alone saves


# ---------------------------------------------------------------------------------------------------------- label kinds
def test_training_on_mixed_label_kinds(tiny_bert_dir, tmp_path):
    docs = synthetic_documents(per_topic=6)
    for i, doc in enumerate(docs):
        doc["label_kind"] = "mentions" if i % 3 == 0 else "indexing"
    path = tmp_path / "kinds.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    seen = []
    from biohicl.training.trainer import BioHiCLTrainer

    original = BioHiCLTrainer.compute_loss

    def spy(self, model, inputs, *a, **k):
        seen.append("pair_mask" in inputs)
        return original(self, model, inputs, *a, **k)

    BioHiCLTrainer.compute_loss = spy
    try:
        run = train_biohicl(
            make_args(tiny_bert_dir, path, tmp_path / "run", max_steps=3, per_device_train_batch_size=4)
        )
    finally:
        BioHiCLTrainer.compute_loss = original
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["data"]["label_kinds"] == {"mentions": 8, "indexing": 12}  # the 4 test documents held out
    assert seen == [False, False, False]  # one kind per batch: the collator never needed a mask


def test_build_batch_sampler_mines_negatives_when_asked(tmp_path, mesh, docs_file):
    from biohicl.training.run import build_batch_sampler, load_training_data

    values = dict(output_dir=str(tmp_path), dataset_path=str(docs_file), per_device_train_batch_size=4)
    args = BioHiCLTrainingArguments(**values, batch_negatives=True, negative="lowest:2")
    data = load_training_data(args, mesh)
    sampler = build_batch_sampler(args, data, mesh)
    assert sampler.negatives is not None and all(len(n) for n in sampler.negatives)
    assert build_batch_sampler(BioHiCLTrainingArguments(**values), data, mesh).negatives is None


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ({"src": [0, 1], "partner": [1, 2], "siml": [0.5, 0.6]},
         r"pairs: no anchor column \(one of anchor, anchor_idx, anchor_index; it has src, partner, siml\)$"),
        ({"anchor": [0, 1], "other": [1, 2], "siml": [0.5, 0.6]}, r"pairs: no partner column \(one of partner, "),
        ({"anchor": [0, 1], "partner": [1, 2]}, r"pairs: no siml column \(it has anchor, partner\)$"),
        ({"anchor": [0, 999], "partner": [1, 2], "siml": [0.5, 0.6]},
         r"pairs, record 2: anchor 999 is not a document index \(the dataset has 24 documents\)$"),
        ({"anchor": [0, 1], "partner": [1, -1], "siml": [0.5, 0.6]}, r"pairs, record 2: partner -1 is not a document"),
        ({"anchor": [0.0, 1.5], "partner": [1, 2], "siml": [0.5, 0.6]},
         r"pairs: anchor: expected integer document indices, got float64$"),
        ({"anchor": [0, 1], "partner": [1, 2], "siml": [0.5, float("nan")]},
         r"pairs, record 2: siml nan is not a finite number$"),
    ],
)  # fmt: skip
def test_a_malformed_pairs_table_is_a_one_line_data_error(tmp_path, mesh, pairs, message):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from biohicl.errors import DataError
    from biohicl.training.run import load_training_data

    (tmp_path / "documents").mkdir()
    (tmp_path / "pairs").mkdir()
    pq.write_table(pa.Table.from_pylist(synthetic_documents()), tmp_path / "documents" / "train.parquet")
    pq.write_table(pa.table(pairs), tmp_path / "pairs" / "train.parquet")
    args = BioHiCLTrainingArguments(output_dir=str(tmp_path / "o"), dataset_path=str(tmp_path), use_cpu=True)
    with pytest.raises(DataError, match=f"^{re.escape(str(tmp_path))}/{message}"):
        load_training_data(args, mesh)


def test_a_valid_pairs_table_is_reindexed_to_the_training_documents(tmp_path, mesh):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from biohicl.training.run import load_training_data

    docs = synthetic_documents()
    (tmp_path / "documents").mkdir()
    (tmp_path / "pairs").mkdir()
    pq.write_table(pa.Table.from_pylist(docs), tmp_path / "documents" / "train.parquet")
    train = [i for i, d in enumerate(docs) if d["split"] == "train"]
    held_out = next(i for i, d in enumerate(docs) if d["split"] != "train")
    table = {
        "anchor": [train[0], train[2], held_out],
        "partner": [train[1], train[3], train[0]],
        "siml": [0.5, 0.7, 0.9],
    }
    pq.write_table(pa.table(table), tmp_path / "pairs" / "train.parquet")
    args = BioHiCLTrainingArguments(output_dir=str(tmp_path / "o"), dataset_path=str(tmp_path), use_cpu=True)
    anchors, partners, siml = load_training_data(args, mesh).pairs
    assert (anchors.tolist(), partners.tolist(), siml.tolist()) == ([0, 2], [1, 3], [0.5, 0.7])


def test_training_data_is_read_by_whole_columns_not_row_by_row(tmp_path, mesh, monkeypatch):
    """datasets 5's ``Column.__iter__`` formats every row (6 s per 800k pairs): the reads go through arrow, and give
    the kept documents (a ``select`` indices mapping) in order, the same texts, labels, kinds and pair arrays."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    from biohicl.training.run import build_batch_sampler, load_training_data

    docs = synthetic_documents()
    for i, doc in enumerate(docs):
        doc["label_kind"] = "mentions" if i % 3 == 0 else "indexing"
    (tmp_path / "documents").mkdir()
    (tmp_path / "pairs").mkdir()
    pq.write_table(pa.Table.from_pylist(docs), tmp_path / "documents" / "train.parquet")
    train = [i for i, d in enumerate(docs) if d["split"] == "train"]
    table = pa.table(
        {
            "anchor": pa.array([train[0], train[2], 5, train[4]], pa.int32()),
            "partner": pa.array([train[1], train[3], train[0], train[7]], pa.int32()),
            "siml": pa.array([0.5, 0.75, 0.9, 0.25], pa.float32()),
        }
    )
    pq.write_table(table, tmp_path / "pairs" / "train.parquet")

    def row_by_row(self):
        raise AssertionError(f"{self.column_name} read row by row")

    monkeypatch.setattr(datasets.arrow_dataset.Column, "__iter__", row_by_row)
    args = BioHiCLTrainingArguments(
        output_dir=str(tmp_path / "o"), dataset_path=str(tmp_path), use_cpu=True, per_device_train_batch_size=4,
        batch_negatives=True, negative="lowest:2", title_weight=0.5,
    )  # fmt: skip
    data = load_training_data(args, mesh)
    table = data.documents.data.table
    assert table.column("text").to_pylist() == [f"{docs[i]['title']} {docs[i]['abstract']}" for i in train]
    assert table.column("labels").to_pylist() == [docs[i]["mesh"] for i in train]
    assert table.column("label_kind").to_pylist() == [docs[i]["label_kind"] for i in train]
    assert table.column("title").to_pylist() == [docs[i]["title"] for i in train]
    anchors, partners, siml = data.pairs  # document 5 is a test document: its pair is dropped
    assert (anchors.dtype, partners.dtype, siml.dtype) == (np.int64, np.int64, np.float64)
    assert (anchors.tolist(), partners.tolist()) == ([0, 2, 4], [1, 3, 7])
    assert siml.tolist() == [0.5, 0.75, 0.25]  # float32 values widened, as numpy widens their Python floats
    sampler = build_batch_sampler(args, data, mesh)
    assert sampler.negatives is not None and len(sampler.negatives) == len(train)
    kinds = np.array([docs[i]["label_kind"] for i in train])
    assert all((kinds[n] == kinds[i]).all() for i, n in enumerate(sampler.negatives))  # grouped by label kind


def test_max_train_documents_below_2_is_refused(tmp_path, mesh, docs_file):
    from biohicl.training.run import load_training_data

    values = dict(output_dir=str(tmp_path), dataset_path=str(docs_file), use_cpu=True)
    for bad in (-5, -1, 0, 1):
        with pytest.raises(ConfigError, match=rf"^max_train_documents: must be at least 2 \(.*\), got {bad}$"):
            BioHiCLTrainingArguments(**values, max_train_documents=bad)
    assert load_training_data(BioHiCLTrainingArguments(**values, max_train_documents=5), mesh).stats["documents"] == 5


def test_trainable_weights_are_readable_by_others_under_umask_022(tiny_bert_dir, tmp_path):
    import os

    from biohicl.models.model import BioHiCL
    from biohicl.training.checkpoint import load_trainable_weights, save_trainable_weights

    model = BioHiCL.from_base(str(tiny_bert_dir))
    model.add_lora(r=2, verbose=False)
    old = os.umask(0o022)
    try:
        save_trainable_weights(model, tmp_path / "trainable.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "trainable.safetensors").stat().st_mode & 0o777 == 0o644
    load_trainable_weights(model, tmp_path / "trainable.safetensors")  # still a valid file


def test_pubmedqa_dev_is_refused_on_a_dataset_whose_dev_split_was_drawn_otherwise(tmp_path):
    """`pubmedqa:dev` scores the harness's 250 dev questions of seed 0: on a dataset built with another --dev_seed or
    --pubmedqa_dev_size some of them are training documents, so selection on them is refused before training."""
    from types import SimpleNamespace

    from biohicl.training.run import check_pubmedqa_dev

    dataset = tmp_path / "dataset"
    dataset.mkdir()
    for task in ("pubmedqa:dev", "pubmedqa-context:dev"):  # both score the same dev questions
        args = SimpleNamespace(eval_tasks=["siml-agreement", task])
        for dev, refused in (({"seed": 0, "pubmedqa_size": 250}, False), ({"seed": 1, "pubmedqa_size": 250}, True),
                             ({"seed": 0, "pubmedqa_size": 100}, True), ({}, False)):  # fmt: skip
            (dataset / "summary.json").write_text(json.dumps({"dev": dev}), encoding="utf-8")
            if refused:
                with pytest.raises(ConfigError, match=rf"eval_tasks: {task} scores the 250 PubMedQA dev questions"):
                    check_pubmedqa_dev(args, dataset)
            else:
                check_pubmedqa_dev(args, dataset)
    check_pubmedqa_dev(SimpleNamespace(eval_tasks=["siml-agreement"]), dataset)  # without pubmedqa:dev: any split


def test_logged_components_are_means_over_optimizer_steps_like_the_logged_loss(tiny_bert_dir, docs_file, tmp_path):
    """3 batches per epoch with 2 micro-batches per optimizer step: steps of 2 and 1 micro-batches. transformers logs
    `loss` as the mean over optimizer steps of each step's mean; the components must be the same kind of mean, so
    L_mse + λ·L_con recombines to the logged loss in every window (a plain micro-batch mean did not, by ~4%)."""
    args = make_args(tiny_bert_dir, docs_file, tmp_path / "run", max_steps=-1, num_train_epochs=2.0,
                     gradient_accumulation_steps=2, logging_steps=2)  # fmt: skip
    run = train_biohicl(args)
    logs = [e for e in json.loads((run / "trainer_state.json").read_text())["log_history"] if "loss_mse" in e]
    assert len(logs) >= 2
    for entry in logs:
        assert entry["loss_mse"] + 0.1 * entry["loss_con"] == pytest.approx(entry["loss"], rel=1e-4), entry


def test_the_loss_runs_once_per_micro_batch_for_both_the_logs_and_backward(
    tiny_bert_dir, docs_file, tmp_path, monkeypatch
):
    """One loss forward per micro-batch gives both the logged components and the back-propagated total: 3 batches an
    epoch under 2 accumulation steps are 3 calls for 2 optimizer steps, and each step's logged loss_mse is the mean
    of its calls' own values."""
    from biohicl.losses.combined import BioHiCLLoss

    calls, forward = [], BioHiCLLoss.forward

    def counted(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        calls.append(float(out["loss_mse"].detach()))
        return out

    monkeypatch.setattr(BioHiCLLoss, "forward", counted)
    args = make_args(tiny_bert_dir, docs_file, tmp_path / "run", max_steps=-1, num_train_epochs=1.0,
                     gradient_accumulation_steps=2)  # fmt: skip
    run = train_biohicl(args)
    logs = [e for e in json.loads((run / "trainer_state.json").read_text())["log_history"] if "loss_mse" in e]
    assert len(calls) == 3 and [e["step"] for e in logs] == [1, 2]
    assert logs[0]["loss_mse"] == pytest.approx((calls[0] + calls[1]) / 2, rel=1e-6)
    assert logs[1]["loss_mse"] == pytest.approx(calls[2], rel=1e-6)


@pytest.mark.parametrize(
    ("overrides", "documents", "transformers_count"),
    [
        # 20 training documents, 3 sampler batches of 8 an epoch; 2 accumulation steps: steps of 2 and 1 batches.
        # transformers counts the dataset's rows × epochs: 20
        (dict(max_steps=-1, num_train_epochs=1.0, gradient_accumulation_steps=2), 3 * 8, 20),
        # a batch of 32 is capped at the 20 documents there are; transformers counts max_steps × 32
        (dict(max_steps=2, per_device_train_batch_size=32), 2 * 20, 2 * 32),
    ],
)
def test_documents_per_second_counts_the_documents_the_batches_held(
    tiny_bert_dir, docs_file, tmp_path, overrides, documents, transformers_count
):
    run = train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "run", **overrides))
    summary = json.loads((run / "training_summary.json").read_text())
    end = json.loads((run / "trainer_state.json").read_text())["log_history"][-1]
    assert summary["documents_trained"] == documents
    assert summary["documents_per_second"] == pytest.approx(documents / end["train_runtime"], rel=1e-3)
    counted = end["train_samples_per_second"] * end["train_runtime"]  # transformers' own figure, left as it is
    assert counted == pytest.approx(transformers_count, rel=0.05) and transformers_count != documents


def test_training_takes_the_bases_sentence_transformers_prompts_by_default(tiny_bert_dir, docs_file, tmp_path):
    """The prompt fields default to None: the base folder's own prompts (an e5-style "query: " / "passage: " base
    was trained and saved without them); "" still means none."""
    from biohicl.training.run import build_model

    base = Path(shutil.copytree(tiny_bert_dir, tmp_path / "st-base"))
    (base / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None})
    )
    model = build_model(make_args(base, docs_file, tmp_path / "run"))
    assert (model.config.query_prompt, model.config.document_prompt) == ("query: ", "passage: ")
    model = build_model(make_args(base, docs_file, tmp_path / "run", query_prompt="", document_prompt="doc: "))
    assert (model.config.query_prompt, model.config.document_prompt) == ("", "doc: ")
    assert BioHiCLTrainingArguments(output_dir=str(tmp_path / "x")).query_prompt is None


def test_a_custom_loss_gets_the_title_embeddings_and_batch_keys_it_asks_for(tiny_bert_dir, docs_file, tmp_path, mesh):
    """``extra_inputs`` routes to the loss: a custom collator's extra batch key (it went to the model, which dropped
    it) and the title embeddings (train_biohicl built its collator from title_weight alone, so they never came)."""
    from biohicl.data.collator import BioHiCLDataCollator
    from biohicl.training.run import build_model
    from biohicl.training.trainer import BioHiCLTrainer

    seen = []

    class Asking(torch.nn.Module):
        extra_inputs = frozenset({"title_embeddings", "doc_weight"})

        def forward(self, embeddings, siml, title_embeddings=None, abstract_embeddings=None, doc_weight=None, **_):
            seen.append((title_embeddings is not None and abstract_embeddings is not None, doc_weight))
            return {"loss": embeddings.pow(2).mean()}

    train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "titles", max_steps=1), loss=Asking())
    assert seen == [(True, None)]  # every synthetic document has a title

    args = make_args(tiny_bert_dir, docs_file, tmp_path / "keys", max_steps=1)
    model = build_model(args)
    collator = BioHiCLDataCollator(tokenize=model.tokenize, mesh=mesh)
    trainer = BioHiCLTrainer(model=model, args=args, data_collator=collator, loss=Asking())
    features = [{"text": d["title"] + " " + d["abstract"], "labels": d["mesh"]} for d in synthetic_documents()[:4]]
    batch = {**collator(features), "doc_weight": torch.arange(4.0)}
    trainer.compute_loss(model, batch)
    assert seen[-1][0] is False and torch.equal(seen[-1][1], torch.arange(4.0))


def test_an_evaluators_numpy_metrics_are_logged_and_checkpointed_as_floats(tiny_bert_dir, docs_file, tmp_path):
    import numpy as np

    def evaluator(model):  # what a sentence-transformers-style evaluator returns: numpy scalars
        return {"acc": np.float32(0.5), "n": np.int64(3)}

    args = make_args(
        tiny_bert_dir, docs_file, tmp_path / "np", max_steps=2, eval_strategy="steps", eval_steps=1, save_steps=1,
        save_strategy="steps", eval_tasks=["biosses"], selection_metrics=["acc"], load_best_model_at_end=True,
    )  # fmt: skip
    run = train_biohicl(args, evaluator=evaluator)  # a float32 in the log history broke trainer_state.json
    rows = json.loads((run / "dev_evaluations.json").read_text())
    assert [(r["step"], r["eval_acc"], r["eval_n"]) for r in rows] == [(0, 0.5, 3.0), (1, 0.5, 3.0), (2, 0.5, 3.0)]
    with pytest.raises(ConfigError, match=r"evaluator: metric 'acc' is not a number \('high'\)"):
        from biohicl.training.evaluator_checks import metric_floats

        metric_floats({"acc": "high"})


def test_the_dataloader_arguments_reach_the_training_dataloader(tiny_bert_dir, docs_file, tmp_path, monkeypatch):
    """--dataloader_persistent_workers / _prefetch_factor / _multiprocessing_context and the Trainer's worker seeding
    were dropped: the DataLoader had persistent_workers False, prefetch_factor 2 whatever the arguments said."""
    from biohicl.training.trainer import BioHiCLTrainer

    built = []
    original = BioHiCLTrainer.get_train_dataloader

    def spy(self):
        loader = original(self)
        built.append(getattr(loader, "base_dataloader", loader))
        return loader

    monkeypatch.setattr(BioHiCLTrainer, "get_train_dataloader", spy)
    args = make_args(tiny_bert_dir, docs_file, tmp_path / "run", max_steps=1, dataloader_num_workers=2,
                     dataloader_persistent_workers=True, dataloader_prefetch_factor=4,
                     dataloader_multiprocessing_context="fork")  # fmt: skip
    run = train_biohicl(args)
    loader = built[-1]
    assert (loader.num_workers, loader.persistent_workers, loader.prefetch_factor) == (2, True, 4)
    assert loader.multiprocessing_context.get_start_method() == "fork"
    assert loader.worker_init_fn.func.__name__ == "seed_worker" and loader.worker_init_fn.keywords["num_workers"] == 2
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and math.isfinite(state["log_history"][0]["loss"])


class TitleLoss(torch.nn.Module):
    """A loss that asks for the title term's inputs (so the collator tokenizes queries too)."""

    extra_inputs = frozenset({"title_embeddings", "abstract_embeddings"})


def pickled_modules(obj) -> list[str]:
    """The torch modules and tensors that pickling ``obj`` would write."""
    import io
    import pickle

    found = []

    class Spy(pickle.Pickler):
        def persistent_id(self, value):
            if isinstance(value, torch.nn.Module | torch.Tensor):
                found.append(type(value).__name__)
            return None

    Spy(io.BytesIO()).dump(obj)
    return found


def test_the_training_collator_pickles_without_the_model_and_tokenizes_as_the_model(tiny_bert_dir, tmp_path, mesh):
    """The collator held the bound model.tokenize, so each spawn worker unpickled the whole model (101 MiB for
    MiniLM); it holds the tokenizer and the config only, and tokenizes exactly as model.tokenize."""
    import pickle

    from biohicl.data.collator import BioHiCLDataCollator
    from biohicl.training.run import build_collator, build_model

    args = BioHiCLTrainingArguments(**make_values(tiny_bert_dir, tmp_path / "d.jsonl", tmp_path / "run",
                                                  query_prompt="query: ", document_prompt="passage: "))  # fmt: skip
    model = build_model(args)
    collator = build_collator(args, model, mesh, TitleLoss())
    assert pickled_modules(collator) == [] and pickled_modules(model)
    assert len(pickle.dumps(collator.tokenize)) < len(pickle.dumps(model)) / 10
    old = BioHiCLDataCollator(**{**collator.__dict__, "tokenize": model.tokenize})
    features = [{**d, "labels": d["mesh"]} for d in synthetic_documents()[:4]]
    features[0]["abstract"] = "the diabetes of the heart and brain cells " * 20  # longer than max_length 32

    def same(a, b):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], dict):
                same(a[key], b[key])
            else:
                assert torch.equal(a[key], b[key]), key

    for max_length in (32, 8):  # a later change of the model's max_length reaches the collator as model.tokenize
        model.set_max_length(max_length)
        new_batch, old_batch = collator(features), old(features)
        same(new_batch, old_batch)
        assert new_batch["input_ids"].shape[1] == max_length
        assert new_batch["title_inputs"]["input_ids"].shape == old_batch["title_inputs"]["input_ids"].shape
    unpickled = pickle.loads(pickle.dumps(collator))
    same(unpickled(features), collator(features))


def test_training_with_a_spawned_dataloader_worker(tiny_bert_dir, docs_file, tmp_path):
    args = make_args(tiny_bert_dir, docs_file, tmp_path / "run", max_steps=1, dataloader_num_workers=1,
                     dataloader_multiprocessing_context="spawn")  # fmt: skip
    run = train_biohicl(args)
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and math.isfinite(state["log_history"][0]["loss"])


def shares_the_old_way(siml, pair_mask, beta, contrastive) -> tuple[float, float]:
    """positive_pairs / negative_pairs as _accumulate computed them before (boolean-mask indexing)."""
    upper = torch.triu(torch.ones_like(siml, dtype=torch.bool), diagonal=1)
    if pair_mask is not None:
        upper &= pair_mask.bool()
    negative = contrastive.masks(siml, pair_mask)[1]
    positive = (siml[upper] > beta).float().mean().nan_to_num(0.0)
    return float(positive), float((negative | negative.T)[upper].float().mean().nan_to_num(0.0))


def test_logged_pair_shares_are_unchanged_and_need_no_device_sync(tiny_bert_dir, docs_file, tmp_path, monkeypatch):
    """_accumulate indexed siml with boolean masks (a host-device sync each, every step); the shares are now kept on
    the device until logged, with the same values."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from biohicl.training.trainer import BioHiCLTrainer

    aten = torch.ops.aten
    syncs = []

    class Syncs(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default) or (
                func is aten.index.Tensor and any(i is not None and i.dtype == torch.bool for i in args[1])
            ):
                syncs.append(str(func))
            return func(*args, **(kwargs or {}))

    batches = []
    original = BioHiCLTrainer._accumulate

    def accumulate(self, components, device, siml, pair_mask=None):
        batches.append(shares_the_old_way(siml, pair_mask, self.args.beta, self.loss.contrastive))
        with Syncs():
            original(self, components, device, siml, pair_mask)

    monkeypatch.setattr(BioHiCLTrainer, "_accumulate", accumulate)
    run = train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "run", max_steps=3))
    logs = [e for e in json.loads((run / "trainer_state.json").read_text())["log_history"] if "positive_pairs" in e]
    assert [(e["positive_pairs"], e["negative_pairs"]) for e in logs] == batches and len(batches) == 3
    assert syncs == []
    monkeypatch.undo()

    # a pair mask, and a batch with no pair at all (shares 0), on a stand-in trainer
    loss = build_loss(make_args(tiny_bert_dir, docs_file, tmp_path / "x"))
    stub = type("Stub", (), {"args": type("A", (), {"beta": 0.3})(), "loss": loss, "_components": {},
                             "_component_weights": {}, "current_gradient_accumulation_steps": 1})()  # fmt: skip
    siml = torch.rand(6, 6, generator=torch.Generator().manual_seed(0))
    siml = torch.where(siml < 0.4, 0.0, siml).triu(1)
    siml = siml + siml.T + torch.eye(6)
    kinds = torch.tensor([0, 0, 1, 1, 0, 1])
    for pair_mask in (None, kinds[:, None] == kinds[None, :], torch.zeros(6, 6, dtype=torch.bool)):
        stub._components, stub._component_weights = {}, {}
        loss(torch.randn(6, 8), siml, pair_mask)  # the shares are the loss's, of the forward just run
        with Syncs():
            BioHiCLTrainer._accumulate(stub, {}, torch.device("cpu"), siml, pair_mask)
        got = (float(stub._components["positive_pairs"]), float(stub._components["negative_pairs"]))
        assert got == shares_the_old_way(siml, pair_mask, 0.3, loss.contrastive)
    assert got == (0.0, 0.0) and syncs == []


def test_persistent_workers_change_the_second_epoch_on(tiny_bert_dir, docs_file, tmp_path):
    """docs/training.md: ``--dataloader_persistent_workers`` draws the workers' base seed from the global torch RNG
    once instead of every epoch, which shifts the LoRA-dropout stream from the second epoch on: the first epoch's
    losses are the same as without it, the second epoch's are not."""
    losses = {}
    for persistent in (False, True):
        args = make_args(
            tiny_bert_dir,
            docs_file,
            tmp_path / f"run-{persistent}",
            max_steps=-1,
            num_train_epochs=2,
            per_device_train_batch_size=4,
            dataloader_num_workers=1,
            dataloader_persistent_workers=persistent,
            dataloader_multiprocessing_context="fork",
        )
        state = json.loads((train_biohicl(args) / "trainer_state.json").read_text())
        losses[persistent] = [(e["epoch"], e["loss"]) for e in state["log_history"] if "loss" in e]
    first = [loss for epoch, loss in losses[False] if epoch <= 1]
    assert len(first) == 5 and first == [loss for epoch, loss in losses[True] if epoch <= 1]
    second = [[loss for epoch, loss in losses[p] if epoch > 1] for p in (False, True)]
    assert len(second[0]) == 5 and second[0] != second[1]


class LoggedTrainLoss(TrainerCallback):
    """The ``train_loss`` each ``on_log`` gets: what TensorBoard's train/train_loss and the console show."""

    def __init__(self):
        self.values: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if "train_loss" in (logs or {}):
            self.values.append(logs["train_loss"])


def test_a_resumed_runs_logged_train_loss_is_the_whole_runs(tiny_bert_dir, docs_file, tmp_path):
    common = dict(max_steps=6, save_strategy="steps", save_steps=1)
    reference = train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "reference", **common))
    ref_state = json.loads((reference / "trainer_state.json").read_text())
    whole = sum(e["loss"] for e in ref_state["log_history"] if "loss_mse" in e) / 6
    assert ref_state["log_history"][-1]["train_loss"] == pytest.approx(whole, rel=1e-6)

    out = tmp_path / "killed"
    train_killed_after_save(tiny_bert_dir, docs_file, out, 4, **common)
    seen = LoggedTrainLoss()
    train_biohicl(make_args(tiny_bert_dir, docs_file, out, resume_from_checkpoint="last", **common), [seen])
    final = json.loads((out / "trainer_state.json").read_text())["log_history"][-1]
    summary = json.loads((out / "training_summary.json").read_text())
    assert final["step"] == 6 and final["train_loss"] == pytest.approx(whole, rel=1e-6)  # not steps 5-6's mean
    assert summary["train_loss"] == pytest.approx(final["train_loss"], rel=1e-9)
    assert seen.values == [final["train_loss"]]  # what TensorBoard and the console were given

    # a rerun of the finished run: checkpoint-6 was saved before the end-of-training entry, which is added back
    seen = LoggedTrainLoss()
    train_biohicl(make_args(tiny_bert_dir, docs_file, out, resume_from_checkpoint="last", **common), [seen])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [e["step"] for e in history if "train_loss" in e] == [6]
    assert history[-1]["train_loss"] == pytest.approx(whole, rel=1e-6) and seen.values == [history[-1]["train_loss"]]


@pytest.fixture
def saved_figures(monkeypatch) -> list:
    """Every matplotlib figure saved while the test runs (saved as usual too)."""
    import matplotlib.figure

    figures, save = [], matplotlib.figure.Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return figures


def kept_lines(figure) -> list[tuple[str, list[float]]]:
    """(label, x data) of each panel's vertical lines (an axvline's x data is [x, x])."""
    return [
        (line.get_label(), [float(x) for x in line.get_xdata()])
        for axis in figure.axes
        for line in axis.get_lines()
        if line.get_label().startswith("kept")
    ]


def test_training_curves_mark_the_kept_step_and_leave_the_guard_flag_off(tmp_path, saved_figures):
    from biohicl.training.curves import plot_training_curves

    history = [
        {"step": 0, "eval_dev_score": 0.5, "eval_dev_guard": 0.9, "eval_dev_guard_passed": 1.0},
        {"step": 1, "loss": 1.0},
        {"step": 2, "loss": 0.9},
        {"step": 2, "eval_dev_score": 0.6, "eval_dev_guard": 0.95, "eval_dev_guard_passed": 1.0},
    ]
    plot_training_curves(history, tmp_path / "a.png", "t", selection={"best_step": 2})
    plot_training_curves(history, tmp_path / "b.png", selection={"best_step": 0})
    plot_training_curves(history, tmp_path / "c.png")  # no selection: no mark, as before
    marked, base, unmarked = saved_figures
    assert kept_lines(marked) == [("kept: step 2", [2.0, 2.0])] * 2  # on the loss and the evaluation panel
    assert kept_lines(base) == [("kept: base", [0.0, 0.0])] * 2 and kept_lines(unmarked) == []
    metrics = [line.get_label() for line in marked.axes[1].get_lines()]
    assert sorted(metrics) == ["dev_guard", "dev_score", "kept: step 2"]  # the 0/1 guard_passed flag is not a metric


def test_a_runs_training_curves_mark_the_step_selection_kept(tiny_bert_dir, docs_file, tmp_path, saved_figures):
    evaluator = ScriptedEvaluator([0.60, 0.30, 0.50, 0.60])  # nothing beats step 0
    run = train_biohicl(selection_args(tiny_bert_dir, docs_file, tmp_path / "base"), evaluator=evaluator)
    assert json.loads((run / "training_summary.json").read_text())["best_step"] == 0
    (figure,) = saved_figures
    assert kept_lines(figure) == [("kept: base", [0.0, 0.0])] * 2


def test_a_full_finetune_keeps_every_weight_at_step_0_and_twice_per_checkpoint(tiny_bert_dir, docs_file, tmp_path):
    args = selection_args(
        tiny_bert_dir, docs_file, tmp_path / "full", max_steps=2, full_finetune=True, learning_rate=1e-5
    )  # fmt: skip
    run = train_biohicl(args, evaluator=ScriptedEvaluator([0.2, 0.3]))
    initial = load_file(str(run / INITIAL_WEIGHTS_NAME))
    trainable = load_file(str(run / "checkpoint-2" / TRAINABLE_WEIGHTS_NAME))
    model = load_file(str(run / "checkpoint-2" / "model.safetensors"))
    assert initial.keys() == trainable.keys() and len(initial) > 10  # every weight of the model, not adapters
    assert sum(t.numel() for t in trainable.values()) == sum(t.numel() for t in model.values())  # the model, twice

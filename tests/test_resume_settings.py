"""A resume trains the run its checkpoint belongs to, or is refused in one line: another run's settings (what the
checkpoint's optimizer, scheduler and RNG state would silently override), another run's checkpoints under a fresh
run, another adapter's weights; and ``BioHiCLTrainer`` used directly trains what its arguments say (their LoRA,
seeded, with training's collator)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file
from test_trainer import docs_file, make_args  # noqa: F401  (docs_file is a fixture)

from biohicl.errors import ConfigError
from biohicl.models.model import BioHiCL
from biohicl.training.checkpoint import TRAINABLE_WEIGHTS_NAME, TRAINING_ARGS_JSON
from biohicl.training.run import train_biohicl
from biohicl.training.trainer import BioHiCLTrainer
from tests.conftest import synthetic_documents

WAY_OUT = "resume with its settings (its biohicl_training_args.json), or train a new run in another --output_dir"


def _evaluator(model):
    return {"a": 0.1, "b": 0.2}


def _selected(tiny_bert_dir, docs_file, out, **overrides):  # noqa: F811
    values = dict(
        max_steps=4, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2, eval_tasks=["biosses"],
        selection_metrics=["a"], load_best_model_at_end=True,
    )  # fmt: skip
    return make_args(tiny_bert_dir, docs_file, out, **{**values, **overrides})


CHANGES = [
    (dict(learning_rate=1e-3), "learning_rate 0.0002 → 0.001"),
    (dict(lr_scheduler_type="constant"), 'lr_scheduler_type "linear" → "constant"'),
    (dict(seed=8, lora_alpha=32), "lora_alpha 16 → 32, seed 7 → 8"),
    (dict(lambda_con=0.5), "lambda_con 0.1 → 0.5"),
    (dict(lora_r=4), "lora_r 8 → 4"),
    (dict(full_finetune=True), "full_finetune false → true"),
    (dict(selection_metrics=["b"]), 'selection_metrics ["a"] → ["b"]'),
    (dict(selection_guard=["b"]), 'selection_guard [] → ["b"]'),
]


def test_a_resume_with_other_settings_is_refused_naming_them(tiny_bert_dir, docs_file, tmp_path, monkeypatch):  # noqa: F811
    import biohicl.training.run as run

    out = tmp_path / "run"
    train_biohicl(_selected(tiny_bert_dir, docs_file, out), evaluator=_evaluator)
    saved = (out / TRAINING_ARGS_JSON).read_bytes()
    checkpoint = out / "checkpoint-2"

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    with monkeypatch.context() as patched:  # refused before the model loads
        patched.setattr(run, "build_model", no_model)
        for change, shown in CHANGES:
            args = _selected(tiny_bert_dir, docs_file, out, resume_from_checkpoint=str(checkpoint), **change)
            with pytest.raises(ConfigError) as raised:
                train_biohicl(args, evaluator=_evaluator)
            assert str(raised.value) == (
                f"resume_from_checkpoint: {checkpoint} was trained with other settings (checkpoint → this run: "
                f"{shown}); {WAY_OUT}"
            )
    assert (out / TRAINING_ARGS_JSON).read_bytes() == saved  # nothing written under the other settings

    # BioHiCLTrainer.train checks it too
    args = _selected(tiny_bert_dir, docs_file, out, learning_rate=1e-3)
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    trainer = BioHiCLTrainer(model=model, args=args, train_dataset=_documents(), evaluator=_evaluator)
    with pytest.raises(ConfigError, match=r"^resume_from_checkpoint: .*\(checkpoint → this run: learning_rate "):
        trainer.train(resume_from_checkpoint=str(checkpoint))

    # what does not change what trains or is selected (where it logs, saves or reports; workers) may differ
    args = _selected(
        tiny_bert_dir, docs_file, out, resume_from_checkpoint=str(checkpoint), logging_steps=3, save_total_limit=2,
        disable_tqdm=False, report_to="none", eval_cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    train_biohicl(args, evaluator=_evaluator)
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4


def test_a_fresh_run_over_another_runs_checkpoints_is_refused(tiny_bert_dir, docs_file, tmp_path, monkeypatch):  # noqa: F811
    import biohicl.training.run as run

    first = dict(max_steps=4, save_strategy="steps", save_steps=1)
    other = dict(max_steps=2, save_strategy="steps", save_steps=1, learning_rate=1e-3)
    out = tmp_path / "run"
    train_biohicl(make_args(tiny_bert_dir, docs_file, out, **first))
    kept = load_file(str(out / "checkpoint-4" / TRAINABLE_WEIGHTS_NAME))

    with monkeypatch.context() as patched:  # refused before the model loads
        patched.setattr(run, "build_model", lambda *a, **k: pytest.fail("the model was loaded"))
        with pytest.raises(ConfigError) as raised:
            train_biohicl(make_args(tiny_bert_dir, docs_file, out, **other))
    assert str(raised.value) == (
        f"{out} holds checkpoints of a run with other settings (checkpoint-4 → this run: learning_rate 0.0002 → "
        "0.001, max_steps 4 → 2): continue that run with its settings and --resume_from_checkpoint last, train in "
        "another --output_dir, or remove its checkpoint-* folders"
    )
    again = load_file(str(out / "checkpoint-4" / TRAINABLE_WEIGHTS_NAME))
    assert all(torch.equal(again[n], kept[n]) for n in kept)  # untouched

    # a folder where such a run was written over another before this check: `last` is the other run's checkpoint-4
    mixed, written = tmp_path / "mixed", tmp_path / "b"
    shutil.copytree(out, mixed)
    train_biohicl(make_args(tiny_bert_dir, docs_file, written, **other))
    for step in (1, 2):
        shutil.rmtree(mixed / f"checkpoint-{step}")
        shutil.copytree(written / f"checkpoint-{step}", mixed / f"checkpoint-{step}")
    with pytest.raises(ConfigError) as raised:  # not "nothing left to train" with the other run's weights
        train_biohicl(make_args(tiny_bert_dir, docs_file, mixed, resume_from_checkpoint="last", **other))
    assert str(raised.value) == (
        f"resume_from_checkpoint: {mixed / 'checkpoint-4'} was trained with other settings (checkpoint → this run: "
        f"learning_rate 0.0002 → 0.001, max_steps 4 → 2); {WAY_OUT}"
    )

    # the same settings train over their own checkpoints, as before
    train_biohicl(make_args(tiny_bert_dir, docs_file, out, **first))
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4


def test_paths_are_compared_by_the_folder_they_name_and_memory_settings_not_at_all(tmp_path, monkeypatch):
    """``biohicl train`` resumed with ``./tiny`` for ``tiny`` (or its absolute path), or with a smaller evaluation
    batch after running out of memory in evaluation: the same run. Another folder is still another setting."""
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.run_settings import settings_differences

    monkeypatch.chdir(tmp_path)
    for name in ("tiny", "data", "other"):
        (tmp_path / name).mkdir()
    (tmp_path / "mesh.xml").write_text("")
    saved = json.loads(
        BioHiCLTrainingArguments(
            output_dir="run", base_model="tiny", dataset_path="data", mesh_path="mesh.xml"
        ).to_json_string()
    )

    def now(**values):
        return BioHiCLTrainingArguments(**{"output_dir": "run", "base_model": "tiny", "dataset_path": "data", **values})

    same = now(base_model="./tiny", dataset_path=str(tmp_path / "data"), mesh_path="./mesh.xml")
    assert settings_differences(saved, same) == {}
    memory = dict(per_device_eval_batch_size=4, eval_accumulation_steps=2, torch_empty_cache_steps=10)
    assert settings_differences(saved, now(mesh_path="mesh.xml", gradient_checkpointing=True, **memory)) == {}
    assert settings_differences(saved, now(mesh_path="mesh.xml", dataset_path="other")) == {
        "dataset_path": ("data", "other")
    }
    assert settings_differences(saved, now(base_model="other", mesh_path="mesh.xml")) == {
        "base_model": ("tiny", "other")
    }


def test_a_setting_the_saved_run_predates_is_compared_with_the_default_it_trained_with(tmp_path):
    """A run saved before ``contrastive_mean`` existed trained with its default, ``positives``: resuming it so is the
    same run, resuming it with ``contrastable`` is refused naming the setting. An argument only the saved file has
    (a version that dropped it), or an inherited transformers one it lacks, is not compared."""
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.run_settings import ABSENT, predated_default, settings_differences

    def now(**values):
        return BioHiCLTrainingArguments(output_dir=str(tmp_path / "run"), **values)

    saved = json.loads(now().to_json_string())
    del saved["contrastive_mean"], saved["eval_do_concat_batches"]  # biohicl's and an inherited one
    saved["a_dropped_setting"] = 3
    assert settings_differences(saved, now()) == {}
    assert settings_differences(saved, now(contrastive_mean="contrastable", eval_do_concat_batches=False)) == {
        "contrastive_mean": ("positives", "contrastable")
    }
    assert predated_default(BioHiCLTrainingArguments, "contrastive_mean") == "positives"
    assert predated_default(BioHiCLTrainingArguments, "eval_tasks") == []  # a default_factory's value, as JSON
    assert predated_default(BioHiCLTrainingArguments, "eval_do_concat_batches") is ABSENT

    @dataclass
    class Subclassed(BioHiCLTrainingArguments):  # a user's arguments with a field of their own
        my_option: int = 3

    assert predated_default(Subclassed, "contrastive_mean") == "positives"  # looked up through the subclass
    assert predated_default(Subclassed, "my_option") == 3
    assert predated_default(Subclassed, "eval_do_concat_batches") is ABSENT
    subclassed = Subclassed(output_dir=str(tmp_path / "run"), contrastive_mean="contrastable")
    assert settings_differences(saved, subclassed) == {"contrastive_mean": ("positives", "contrastable")}


def test_every_biohicl_argument_records_its_default_as_predated_default_gives_it(tmp_path):
    """What :func:`predated_default` says an older run trained with is what a run of defaults records: a default
    rewritten after construction would otherwise read as a change of every older run."""
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.run_settings import ABSENT, predated_default

    recorded = json.loads(BioHiCLTrainingArguments(output_dir=str(tmp_path / "run")).to_json_string())
    own = [name for name in vars(BioHiCLTrainingArguments)["__annotations__"] if name in recorded]
    assert "contrastive_mean" in own and "eval_do_concat_batches" not in own
    differing = {
        name: (predated_default(BioHiCLTrainingArguments, name), recorded[name])
        for name in own
        if predated_default(BioHiCLTrainingArguments, name) not in (ABSENT, recorded[name])
    }
    assert differing == {}


def test_a_checkpoint_past_the_runs_last_step_is_refused(tiny_bert_dir, tmp_path):
    documents = tmp_path / "documents.jsonl"
    documents.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    common = dict(max_steps=-1, num_train_epochs=2, save_strategy="steps", save_steps=6)
    out = tmp_path / "run"
    train_biohicl(make_args(tiny_bert_dir, documents, out, **common))  # 20 documents / 8: 3 steps per epoch
    assert (out / "checkpoint-6").is_dir()
    kept = [d for d in synthetic_documents() if d.get("split", "train") == "train"][:12]
    documents.write_text("".join(json.dumps(d) + "\n" for d in kept), encoding="utf-8")  # 2 steps per epoch now
    with pytest.raises(ConfigError, match=r"checkpoint-6 was trained on other data \(dataset_path "):  # its digest
        train_biohicl(make_args(tiny_bert_dir, documents, out, resume_from_checkpoint="last", **common))
    state = out / "checkpoint-6" / "trainer_state.json"  # a checkpoint of code before the digest: by its step
    kept_state = json.loads(state.read_text(encoding="utf-8"))
    del kept_state["stateful_callbacks"]["SourceRecord"]["attributes"]["dataset_sha256"]
    state.write_text(json.dumps(kept_state), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        train_biohicl(make_args(tiny_bert_dir, documents, out, resume_from_checkpoint="last", **common))
    assert str(raised.value) == (
        f"resume_from_checkpoint: {out / 'checkpoint-6'} is at step 6, past this run's last step 4 (its training "
        "data changed?); train a new run in another --output_dir"
    )


# ------------------------------------------------------------------------------------------ adapters on resume
def test_weights_of_another_adapter_shape_are_refused_in_one_line(tiny_bert_dir, tmp_path):
    from biohicl.training.checkpoint import load_trainable_weights, save_trainable_weights

    small = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    small.add_lora(r=4, target_modules=["query", "value"], verbose=False)
    path = tmp_path / TRAINABLE_WEIGHTS_NAME
    save_trainable_weights(small, path)
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    model.add_lora(r=8, target_modules=["query", "value"], verbose=False)
    name = next(n for n, p in model.named_parameters() if "lora_A" in n)
    hidden = model.backbone.config.hidden_size
    message = (
        f"{path}: does not fit the model ({name} is [4, {hidden}] there, [8, {hidden}] in the model): resume "
        "with the adapter settings it was trained with"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        load_trainable_weights(model, path)


# ------------------------------------------------------------------------------------------ BioHiCLTrainer directly
def _documents():
    from biohicl.data.columns import in_memory_dataset

    docs = [d for d in synthetic_documents() if d.get("split", "train") == "train"]
    return in_memory_dataset(
        {"text": [d["title"] + " " + d["abstract"] for d in docs], "labels": [d["mesh"] for d in docs]}
    )


def _lora_a(tiny_bert_dir, tmp_path, peft_config):
    torch.manual_seed(int(torch.randint(0, 10**6, ()).item()) + 1)  # whatever state the caller's RNG is in
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    args = make_args(tiny_bert_dir, tmp_path / "unused.jsonl", tmp_path / "seed", seed=42)
    BioHiCLTrainer(model=model, args=args, peft_config=peft_config)
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_A" in n}


@pytest.mark.parametrize("peft", [True, False])
def test_the_trainers_adapters_are_drawn_from_the_runs_seed(tiny_bert_dir, tmp_path, peft):
    from peft import LoraConfig

    config = LoraConfig(r=4, target_modules=["query", "value"]) if peft else None
    first, second = _lora_a(tiny_bert_dir, tmp_path, config), _lora_a(tiny_bert_dir, tmp_path, config)
    assert first and first.keys() == second.keys()
    assert all(torch.equal(first[n], second[n]) for n in first)
    assert {t.shape[0] for t in first.values()} == {4 if peft else 8}  # without one: the arguments' lora_r


def test_the_trainer_alone_trains_the_arguments_lora_with_trainings_collator(tiny_bert_dir, docs_file, tmp_path):  # noqa: F811
    from peft import LoraConfig

    out = tmp_path / "api"
    args = make_args(
        tiny_bert_dir, docs_file, out, max_steps=2, eval_strategy="steps", eval_steps=1, save_strategy="steps",
        save_steps=1, eval_tasks=["biosses"], metric_for_best_model="a", load_best_model_at_end=True,
    )  # fmt: skip
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = BioHiCLTrainer(model=model, args=args, train_dataset=_documents(), evaluator=_evaluator)
    trainable = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    hidden = model.backbone.config.hidden_size
    assert trainable and all("lora_" in n for n in trainable)
    assert {s for n, s in trainable.items() if "lora_A" in n} == {(8, hidden)}  # lora_r 8, as the args say
    assert trainer.train().global_step == 2  # training's collator: step 0 evaluated, then 2 steps
    saved = json.loads((out / "checkpoint-2" / TRAINING_ARGS_JSON).read_text())
    assert (saved["full_finetune"], saved["lora_r"]) == (False, 8)
    for name, param in model.named_parameters():  # the base weights did not train
        if "lora_" not in name:
            assert torch.equal(param.detach(), base[name.replace(".base_layer", "").replace("base_model.model.", "")])

    full = make_args(tiny_bert_dir, docs_file, out, full_finetune=True)
    message = (
        r"^full_finetune: trains every weight of a model without adapters; give no peft_config= and a model without"
    )
    with pytest.raises(ConfigError, match=message):
        BioHiCLTrainer(model=BioHiCL.from_base(str(tiny_bert_dir)), args=full, peft_config=LoraConfig(r=4))

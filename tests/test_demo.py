"""The demo: base and tuned model evaluated at one length, what a rerun reuses, and a training config as its run."""

from __future__ import annotations

import pytest

from biohicl.models.model import BioHiCL
from biohicl.study.demo import evaluation_models


def test_base_and_tuned_model_are_evaluated_at_one_length(tiny_bert_dir, tmp_path):
    import torch

    from tests.conftest import randomize_lora_b

    tuned = BioHiCL.from_base(str(tiny_bert_dir), max_length=16)  # trained at 16 tokens
    tuned.add_lora(r=2, verbose=False)
    randomize_lora_b(tuned, generator=torch.Generator().manual_seed(0))  # the tuned model is not the base
    tuned.save_pretrained(tmp_path / "run")
    assert BioHiCL.from_pretrained(tmp_path / "run").config.max_length == 16  # what it would keep by itself
    loaded = {label: load() for label, load in evaluation_models(str(tiny_bert_dir), tmp_path / "run", 48)}
    assert sorted(loaded) == ["base", "biohicl"]
    assert {label: model.config.max_length for label, model in loaded.items()} == {"base": 48, "biohicl": 48}
    batch = loaded["biohicl"].tokenize(["word " * 100])
    assert batch["input_ids"].shape[1] == 48  # the length is what tokenization uses
    # "biohicl" is the saved run's model, "base" the base's (texts under 16 tokens: the lengths change nothing)
    texts = ["heart", "brain cells"]
    embed = {label: model.encode(texts, convert_to="torch") for label, model in loaded.items()}
    run = BioHiCL.from_pretrained(tmp_path / "run").encode(texts, convert_to="torch")
    base = BioHiCL.from_base(str(tiny_bert_dir)).encode(texts, convert_to="torch")
    assert torch.allclose(embed["biohicl"], run, atol=1e-5) and torch.allclose(embed["base"], base, atol=1e-6)
    assert not torch.allclose(run, base, atol=1e-3)


# ------------------------------------------------------------------------------------ what a rerun may reuse
def _short_run(tmp_path, **overrides):
    from biohicl.study.demo import DemoArguments, short_run_arguments

    args = DemoArguments(output_dir=str(tmp_path / "demo"), **overrides)
    return args, short_run_arguments(args)


def _save_run(training_args) -> None:
    """What a finished run leaves that a rerun looks at: its adapter and its training arguments."""
    from pathlib import Path

    from biohicl.training.checkpoint import TRAINING_ARGS_JSON

    run_dir = Path(training_args.output_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "adapter_model.safetensors").write_bytes(b"weights")
    (run_dir / TRAINING_ARGS_JSON).write_text(training_args.to_json_string(), encoding="utf-8")


def test_a_saved_run_is_the_same_run_only_with_the_same_settings(tmp_path):
    from biohicl.study.demo import run_differences

    _, training_args = _short_run(tmp_path)
    run_dir = tmp_path / "demo" / "run"
    assert run_differences(run_dir, training_args) is None  # nothing there yet
    _save_run(training_args)
    assert run_differences(run_dir, training_args) == []
    assert run_differences(run_dir, _short_run(tmp_path, max_steps=209, learning_rate=1e-4)[1]) == [
        "learning_rate", "max_steps"
    ]  # fmt: skip
    # where it is written, or whether progress bars show, is not a different run
    _, moved = _short_run(tmp_path)
    moved.output_dir = str(tmp_path / "elsewhere")
    moved.disable_tqdm = not training_args.disable_tqdm
    assert run_differences(run_dir, moved) == []


def test_a_demo_run_saved_before_a_setting_existed_is_reused_at_its_default(tmp_path):
    """A run an older version saved lacks ``contrastive_mean`` (and may hold a setting since dropped): at the
    default, ``positives``, it is the same run; with ``contrastable`` it is not."""
    import json

    from biohicl.study.demo import run_differences
    from biohicl.training.checkpoint import TRAINING_ARGS_JSON

    _, training_args = _short_run(tmp_path)
    _save_run(training_args)
    saved_file = tmp_path / "demo" / "run" / TRAINING_ARGS_JSON
    older = json.loads(saved_file.read_text(encoding="utf-8"))
    del older["contrastive_mean"]
    saved_file.write_text(json.dumps({**older, "a_dropped_setting": 1}), encoding="utf-8")
    assert run_differences(tmp_path / "demo" / "run", training_args) == []
    training_args.contrastive_mean = "contrastable"
    assert run_differences(tmp_path / "demo" / "run", training_args) == ["contrastive_mean"]


def test_the_demo_refuses_to_reuse_or_overwrite_a_run_of_other_settings(tmp_path, monkeypatch):
    import biohicl.data.storage as storage
    from biohicl.errors import ConfigError
    from biohicl.study.demo import run_demo

    args, training_args = _short_run(tmp_path)
    _save_run(training_args)
    (tmp_path / "demo" / "mesh-pairs").mkdir()
    (tmp_path / "demo" / "mesh-pairs" / "README.md").write_text("a dataset")
    monkeypatch.setattr(storage, "load_pair_dataset", lambda path: None)
    _, other = _short_run(tmp_path, max_steps=5)
    with pytest.raises(ConfigError, match=r"demo/run holds a run trained with other settings \(max_steps\): give"):
        run_demo(args, other)
    assert (tmp_path / "demo" / "run" / "adapter_model.safetensors").read_bytes() == b"weights"  # untouched
    _, misplaced = _short_run(tmp_path / "other")
    with pytest.raises(ConfigError, match="training_args: output_dir and dataset_path must be the demo's"):
        run_demo(args, misplaced)


def test_results_are_reused_only_for_the_same_model_length_dtype_and_tasks(tmp_path):
    from biohicl.evaluation.runner import save_results
    from biohicl.study.demo import reusable_results

    path = tmp_path / "results_base.json"
    tasks = ["biosses", "pubmedqa:dev"]
    assert reusable_results(path, "m (base)", 256, tasks, "float32") is None
    record = {"model": {"id": "m (base)"}, "settings": {"max_length": 256, "dtype": "float32"}}
    save_results({**record, "tasks": {"biosses": {"metrics": {}}, "pubmedqa-dev": {"metrics": {}}}}, path)
    assert reusable_results(path, "m (base)", 256, tasks, "float32")["model"]["id"] == "m (base)"
    assert reusable_results(path, "m (base)", 256, [" biosses"], "float32") is not None  # a subset is there
    assert reusable_results(path, "m (base)", 128, tasks, "float32") is None
    assert reusable_results(path, "other (base)", 256, tasks, "float32") is None
    assert reusable_results(path, "m (base)", 256, tasks, "bfloat16") is None  # another dtype: evaluate again
    # a rerun with more --tasks: the record lacks one of them, so it is evaluated again
    assert reusable_results(path, "m (base)", 256, [*tasks, "pubmedqa"], "float32") is None
    assert reusable_results(path, "m (base)", 256, ["biosses", str(tmp_path / "beir" / "nfcorpus")], "float32") is None


def test_a_demo_rerun_with_more_tasks_evaluates_again(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import biohicl.evaluation.runner as runner
    from biohicl.study import demo

    args, training_args = _short_run(tmp_path, tasks="biosses")
    _save_run(training_args)  # a finished run, and a finished dataset: only the evaluations are left
    (tmp_path / "demo" / "mesh-pairs").mkdir(parents=True)
    (tmp_path / "demo" / "mesh-pairs" / "README.md").write_text("done")
    monkeypatch.setattr("biohicl.data.storage.load_pair_dataset", lambda path: None)
    model = SimpleNamespace(config=SimpleNamespace(max_length=args.eval_max_length))
    monkeypatch.setattr(demo, "evaluation_models", lambda *a: [("base", lambda: model), ("biohicl", lambda: model)])
    evaluated = []

    def fake_evaluate(model, tasks, *, model_id, settings, **kwargs):
        evaluated.append((model_id, list(tasks)))
        return {"model": {"id": model_id}, "settings": settings, "tasks": {t: {"metrics": {}} for t in tasks}}

    monkeypatch.setattr(runner, "evaluate_model", fake_evaluate)
    monkeypatch.setattr(demo, "comparison_table", lambda records: "table")
    demo.run_demo(args, training_args)
    demo.run_demo(args, training_args)  # same tasks: both records reused
    assert len(evaluated) == 2
    args.tasks = "biosses,pubmedqa"
    demo.run_demo(args, training_args)  # one more task: neither record has it
    assert [tasks for _, tasks in evaluated[2:]] == [["biosses", "pubmedqa"]] * 2


def test_training_config_is_read_as_biohicl_train_reads_it(tmp_path, monkeypatch):
    """`biohicl demo --training_config F` trains what `biohicl train --config F` would, in the demo's folders."""
    from pathlib import Path

    import biohicl.study.demo as demo
    from biohicl.cli import demo as demo_cli
    from biohicl.cli import train

    seen = {}
    monkeypatch.setattr(
        demo, "run_demo", lambda args, training_args=None: seen.update(args=args, training=training_args)
    )
    config = str(Path(__file__).resolve().parents[1] / "configs" / "biohicl_minilm.yaml")
    out = tmp_path / "demo-minilm"
    assert demo_cli.main(["--training_config", config, "--output_dir", str(out)]) == 0
    expected = train.parse_args(
        ["--config", config, "--output_dir", str(out / "run"), "--dataset_path", str(out / "mesh-pairs")]
    )
    assert seen["training"].to_json_string() == expected.to_json_string()
    assert (seen["training"].distill_weight, seen["training"].max_length, seen["training"].seed) == (2.0, 256, 5)
    demo_cli.main(["--output_dir", str(out)])
    assert seen["training"] is None  # the short run


def test_the_demo_table_gives_each_delta_with_its_interval_when_both_records_kept_the_items():
    from biohicl.study.demo import comparison_table

    def record(label, hits):
        items = {"ids": [str(i) for i in range(len(hits))], "scores": hits}
        task = {"split": "test", "main_metric": "recall@1", "metrics": {"recall@1": sum(hits) / len(hits)}}
        return {"model": {"id": label}, "settings": {}, "tasks": {"pubmedqa": {**task, "per_item": items}}}

    base, tuned = record("m (base)", [1.0, 0.0] * 50), record("m (biohicl)", [1.0, 1.0] + [1.0, 0.0] * 49)
    table = comparison_table([base, tuned])
    assert "| base | 0.5000 |" in table and "| BioHiCL (LoRA) | 0.5100 |" in table
    assert "| pubmedqa | recall@1 | 100 | 0.5000 | 0.5100 | +1.00 | [+0.00, +3.00] | 0.3" in table
    reused = {**base, "tasks": {"pubmedqa": {k: v for k, v in base["tasks"]["pubmedqa"].items() if k != "per_item"}}}
    assert "interval" not in comparison_table([reused, tuned])  # results kept from before the items were


def test_a_failed_write_of_results_md_keeps_the_previous_table(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import biohicl.evaluation.runner as runner
    from biohicl.study import demo

    args, training_args = _short_run(tmp_path, tasks="biosses")
    _save_run(training_args)
    (tmp_path / "demo" / "mesh-pairs").mkdir(parents=True)
    (tmp_path / "demo" / "mesh-pairs" / "README.md").write_text("done")
    monkeypatch.setattr("biohicl.data.storage.load_pair_dataset", lambda path: None)
    model = SimpleNamespace(config=SimpleNamespace(max_length=args.eval_max_length))
    monkeypatch.setattr(demo, "evaluation_models", lambda *a: [("base", lambda: model), ("biohicl", lambda: model)])
    monkeypatch.setattr(
        runner, "evaluate_model", lambda m, tasks, *, model_id, settings, **k: {"model": {"id": model_id}, "tasks": {}}
    )
    results = tmp_path / "demo" / "results.md"
    results.write_text("the previous table\n", encoding="utf-8")
    monkeypatch.setattr(demo, "comparison_table", lambda records: "| a |\ud800")  # not encodable: the write fails
    with pytest.raises(UnicodeEncodeError):
        demo.run_demo(args, training_args)
    assert results.read_text(encoding="utf-8") == "the previous table\n"
    assert [p.name for p in results.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("task", ["scifakt", "nfcorpus"])
def test_the_demo_checks_its_tasks_before_building_the_dataset_and_training(tmp_path, monkeypatch, task):
    import biohicl.data.build as build
    import biohicl.training.run as run
    from biohicl.errors import BioHiCLError
    from biohicl.study.demo import DemoArguments, run_demo

    def never(*args, **kwargs):
        raise AssertionError("built or trained before the tasks were checked")

    monkeypatch.setattr(build, "build_default_dataset", never)
    monkeypatch.setattr(run, "train_biohicl", never)
    with pytest.raises(BioHiCLError, match=task):
        run_demo(DemoArguments(output_dir=str(tmp_path / "demo"), tasks=f"biosses,{task}"))
    assert not (tmp_path / "demo").exists()


def test_the_demo_takes_a_task_over_its_own_dataset_with_its_hierarchy(tmp_path, monkeypatch):
    import biohicl.data.build as build
    from biohicl.study.demo import DemoArguments, run_demo

    class Built(Exception):
        pass

    def reached(*args, **kwargs):
        raise Built

    monkeypatch.setattr(build, "build_default_dataset", reached)
    task = f"siml-agreement@{tmp_path}/demo/mesh-pairs#mesh={tmp_path}/icd10MeshTree.txt:dev"
    with pytest.raises(Built):  # checked once step 1 built the dataset, not refused before it
        run_demo(DemoArguments(output_dir=str(tmp_path / "demo"), tasks=task))


def test_max_steps_below_1_is_refused_only_when_the_demo_uses_it():
    """Without --training_config the demo trains --max_steps steps (it has no epochs option for -1 to mean); with one,
    the config's max_steps is used, so the demo's own is not checked."""
    from biohicl.errors import ConfigError
    from biohicl.study.demo import DemoArguments

    for steps in (0, -1):
        with pytest.raises(ConfigError, match=rf"^max_steps: the demo trains at least 1 step, got {steps}$"):
            DemoArguments(max_steps=steps)
        assert DemoArguments(max_steps=steps, training_config="configs/biohicl_minilm.yaml").max_steps == steps


def test_the_demo_run_is_saved_at_the_evaluation_length_and_publishes_with_its_results(tmp_path, monkeypatch):
    """The demo trains at 128 tokens and evaluates at 256: the run's biohicl_config.json says 256, as a study's run
    does, so `biohicl publish demo/run --eval_results demo/results_biohicl.json` passes the record check."""
    import json
    from types import SimpleNamespace

    import biohicl.evaluation.runner as runner
    from biohicl.hub.record_match import check_tuned_record
    from biohicl.study import demo

    args, training_args = _short_run(tmp_path, tasks="biosses")
    assert (training_args.max_length, args.eval_max_length) == (128, 256)
    _save_run(training_args)
    config_path = tmp_path / "demo" / "run" / "biohicl_config.json"
    saved = {"base_model": training_args.base_model, "kind": "adapter", "pooling": "mean", "normalize": True}
    config_path.write_text(json.dumps({**saved, "max_length": 128, "query_prompt": "", "document_prompt": ""}))
    (tmp_path / "demo" / "mesh-pairs").mkdir(parents=True)
    (tmp_path / "demo" / "mesh-pairs" / "README.md").write_text("done")
    monkeypatch.setattr("biohicl.data.storage.load_pair_dataset", lambda path: None)
    model = SimpleNamespace(config=SimpleNamespace(max_length=args.eval_max_length))
    monkeypatch.setattr(demo, "evaluation_models", lambda *a: [("base", lambda: model), ("biohicl", lambda: model)])

    def fake_evaluate(model, tasks, *, model_id, settings, **kwargs):
        config = {**saved, "max_length": model.config.max_length}
        return {"model": {"id": model_id, "config": config}, "settings": settings, "tasks": {}}

    monkeypatch.setattr(runner, "evaluate_model", fake_evaluate)
    monkeypatch.setattr(demo, "comparison_table", lambda records: "table")
    demo.run_demo(args, training_args)
    config = json.loads(config_path.read_text())
    assert config == {**saved, "max_length": 256, "query_prompt": "", "document_prompt": ""}
    results = tmp_path / "demo" / "results_biohicl.json"
    check_tuned_record(results, json.loads(results.read_text()), config, config_path)  # raises at 128


def test_no_skip_steps_done_trains_over_another_runs_checkpoints_and_the_default_refuses_them(tmp_path, monkeypatch):
    """train_biohicl refuses a fresh run over a checkpoint of other settings (``--resume_from_checkpoint last``
    would later pick it); ``--no_skip_steps_done`` trains over the demo's run folder, so it removes them first."""
    from biohicl.errors import ConfigError
    from biohicl.study.demo import DemoArguments, run_demo
    from biohicl.training.checkpoint import TRAINING_ARGS_JSON

    _stub_demo_steps(tmp_path, monkeypatch)
    _, training_args = _short_run(tmp_path)
    checkpoint = tmp_path / "demo" / "run" / "checkpoint-5"

    def interrupted_run_of_other_settings():
        checkpoint.mkdir(parents=True)
        for name in ("trainer_state.json", "trainable_weights.safetensors"):
            (checkpoint / name).write_text("{}")
        (checkpoint / TRAINING_ARGS_JSON).write_text(_short_run(tmp_path, max_steps=5)[1].to_json_string())

    interrupted_run_of_other_settings()
    with pytest.raises(ConfigError, match=r"run holds checkpoints of a run with other settings \(checkpoint-5 → this "):
        run_demo(DemoArguments(output_dir=str(tmp_path / "demo")), training_args)
    assert checkpoint.is_dir()  # nothing overwritten by default
    with pytest.raises(Trained):
        run_demo(DemoArguments(output_dir=str(tmp_path / "demo"), skip_steps_done=False), training_args)
    assert not checkpoint.exists()


def _stub_demo_steps(tmp_path, monkeypatch):
    """The demo's dataset, training and evaluation stubbed; the training stub makes train_biohicl's first check,
    which refuses another run's checkpoints, then stops (``Trained``)."""
    import biohicl.data.build as build
    import biohicl.data.storage as storage
    from biohicl.training.checkpoint import resolve_resume
    from biohicl.training.run_settings import check_run_folder

    def train(args, evaluator=None):
        check_run_folder(args, resolve_resume(args.resume_from_checkpoint, args.output_dir))
        raise Trained

    monkeypatch.setattr("biohicl.training.run.train_biohicl", train)
    monkeypatch.setattr("biohicl.evaluation.evaluator.evaluator_from_args", lambda args: None)
    monkeypatch.setattr(build, "build_default_dataset", lambda path, seed: (None, "built"))
    monkeypatch.setattr(storage, "load_pair_dataset", lambda path: None)
    (tmp_path / "demo" / "mesh-pairs").mkdir(parents=True)
    (tmp_path / "demo" / "mesh-pairs" / "README.md").write_text("a dataset")


class Trained(Exception):
    pass


def _checkpoint(folder, training_args):
    from biohicl.training.checkpoint import TRAINING_ARGS_JSON

    folder.mkdir(parents=True)
    for name in ("trainer_state.json", "trainable_weights.safetensors"):
        (folder / name).write_text("{}")
    (folder / TRAINING_ARGS_JSON).write_text(training_args.to_json_string())


def test_a_demo_killed_mid_run_and_rerun_with_other_settings_is_told_the_demos_options(tmp_path, monkeypatch):
    """The demo has no --resume_from_checkpoint: its refusal names --no_skip_steps_done and --output_dir."""
    from biohicl.errors import ConfigError
    from biohicl.study.demo import run_demo

    _stub_demo_steps(tmp_path, monkeypatch)
    _checkpoint(tmp_path / "demo" / "run" / "checkpoint-30", _short_run(tmp_path, max_steps=60)[1])  # killed there
    args, training_args = _short_run(tmp_path, max_steps=40)
    with pytest.raises(ConfigError) as raised:
        run_demo(args, training_args)
    assert str(raised.value) == (
        f"{tmp_path / 'demo' / 'run'} holds checkpoints of a run with other settings (checkpoint-30 → this run: "
        "max_steps 60 → 40): rerun the demo with that run's settings, give another --output_dir, or "
        "--no_skip_steps_done to train over it"
    )
    with pytest.raises(Trained):  # the same settings: the demo trains over its own run's checkpoints
        run_demo(*_short_run(tmp_path, max_steps=60))


def test_no_skip_steps_done_removes_only_the_numbered_checkpoints(tmp_path, monkeypatch):
    """A folder a user put beside the checkpoints (checkpoint-best-kept) is not one of the run's: it stays."""
    from biohicl.study.demo import run_demo

    _stub_demo_steps(tmp_path, monkeypatch)
    run_dir = tmp_path / "demo" / "run"
    _checkpoint(run_dir / "checkpoint-30", _short_run(tmp_path, max_steps=60)[1])
    (run_dir / "checkpoint-best-kept").mkdir()
    (run_dir / "checkpoint-best-kept" / "notes.txt").write_text("mine")
    args, training_args = _short_run(tmp_path, max_steps=40, skip_steps_done=False)
    with pytest.raises(Trained):
        run_demo(args, training_args)
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint-best-kept"]
    assert (run_dir / "checkpoint-best-kept" / "notes.txt").read_text() == "mine"


def test_dry_run_in_a_training_config_is_refused_as_an_option_of_biohicl_train(tmp_path, monkeypatch):
    """`dry_run: true` in a `biohicl train --config` file checks a run; the demo would train it for real."""
    import re

    import biohicl.study.demo as demo
    from biohicl.cli import demo as demo_cli
    from biohicl.errors import ConfigError

    monkeypatch.setattr(demo, "run_demo", lambda *args: pytest.fail("the demo ran"))
    config = tmp_path / "run.yaml"
    config.write_text("max_steps: 3\ndry_run: true\n")
    message = (
        f"{config}: dry_run is an option of `biohicl train` (biohicl train --config {config} --dry_run), "
        "not of the demo; remove it to train this run in the demo"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        demo_cli.main(["--training_config", str(config), "--output_dir", str(tmp_path / "demo")])

"""``biohicl train --dry_run``: a run's configuration checked as a real run checks it (arguments, evaluation tasks'
data, the output folder's resume and checkpoint checks, the base model offline, the dataset read and batched) and
its plan printed; nothing trained, no model loaded, nothing left in the output folder; exit 1 naming what is
missing. Tiny built dataset (24 training documents), tiny BERT folder, a tiny BEIR folder as the dev task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biohicl.cli.main import main
from tests.conftest import synthetic_documents


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A built dataset of the 24 synthetic documents, all of split ``train`` (no dev split drawn)."""
    from biohicl.data.build import build_dataset_from_files
    from biohicl.mesh.hierarchy import MeshHierarchy

    root = tmp_path_factory.mktemp("dry-run-data")
    docs = root / "docs.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    build_dataset_from_files(
        [("auto", [docs])], root / "ds", MeshHierarchy.load(), top_k=3, progress=False, decontaminate=False,
        dev_split=None,
    )  # fmt: skip
    return root / "ds"


@pytest.fixture(scope="module")
def beir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("beir") / "toy"
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": "", "text": f"heart {i}"} for i in range(3)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "heart"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return folder


@pytest.fixture
def no_model(monkeypatch):
    """Loading any model fails the test."""
    import transformers

    from biohicl.models.model import BioHiCL

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run loaded a model")

    monkeypatch.setattr(BioHiCL, "from_base", refuse)
    monkeypatch.setattr("biohicl.training.run.build_model", refuse)
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)


def options(tiny_bert_dir: Path, dataset: Path, output_dir: Path, *more: str) -> list[str]:
    return [
        "train", "--dataset_path", str(dataset), "--output_dir", str(output_dir), "--base_model", str(tiny_bert_dir),
        "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2", "--report_to", "none",
        "--use_cpu", *more,
    ]  # fmt: skip


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("length", "steps"),
    [
        # 24 documents / 4 per batch = 6 batches an epoch; / 2 accumulation steps = 3 optimizer steps; × 3 epochs = 9
        (["--num_train_epochs", "3"], "optimizer steps: 3 per epoch, 9 in all (3 epochs)"),
        (["--max_steps", "7"], "optimizer steps: 3 per epoch, 7 in all (max_steps 7)"),
    ],
)
def test_a_dry_run_prints_the_plan_and_trains_nothing(
    tiny_bert_dir, dataset, beir, tmp_path, capsys, no_model, length, steps
):
    output_dir = tmp_path / "run"
    tasks = ["--eval_tasks", str(beir), "--eval_strategy", "steps", "--eval_steps", "2"]
    assert main([*options(tiny_bert_dir, dataset, output_dir, *length, *tasks), "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert f"  documents: 24 of 24 in {dataset} (split train);" in out
    assert "  batches: 4 documents, 6 per epoch; 8 documents per optimizer step (2 accumulation steps)\n" in out
    assert f"  {steps}\n" in out
    assert f"  evaluation: every 2 steps on {beir} (no --load_best_model_at_end): the run keeps its last step " in out
    assert f"  output: {output_dir} (created by the run)\n" in out
    assert f"  ok      model base_model: {tiny_bert_dir} → {tiny_bert_dir}\n" in out
    assert f"  ok      task {beir}: data found\n" in out
    assert not output_dir.exists()  # nothing written


@pytest.mark.parametrize(
    ("more", "objective"),
    [
        ([], "mse(zero_or_positive pairs) + 0.1·contrastive(infonce, β 0.3, τ 0.05, negative zero)"),
        (
            ["--distill_weight", "0.5", "--title_weight", "0.2", "--negative", "lowest:4", "--pair_filter", "all"],
            "mse(all pairs) + 0.1·contrastive(infonce, β 0.3, τ 0.05, negative lowest:4) + 0.5·distill "
            "+ 0.2·title(τ 0.05)",
        ),
        (
            ["--use_mse", "false", "--contrastive_form", "paper", "--lambda_con", "1", "--beta", "0.4"],
            "1·contrastive(paper, β 0.4, negative zero)",
        ),
        (["--no_use_contrastive", "--no_weight_positives"], "mse(zero_or_positive pairs)"),
        (
            ["--lambda_con", "0.2", "--no_weight_positives"],
            "mse(zero_or_positive pairs) + "
            "0.2·contrastive(infonce, β 0.3, τ 0.05, negative zero, positives unweighted)",
        ),
    ],
)
def test_the_plan_names_the_objective_that_would_train(
    tiny_bert_dir, dataset, tmp_path, capsys, no_model, more, objective
):
    assert main([*options(tiny_bert_dir, dataset, tmp_path / "run", "--max_steps", "2", *more), "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert f"  objective: {objective}\n  evaluation: none (no --eval_tasks): the run keeps its last step " in out


def test_the_plan_says_a_run_without_evaluation_keeps_its_last_step(tiny_bert_dir, dataset, tmp_path, capsys, no_model):
    """The evaluation line of a run without ``--eval_tasks`` is the run's own warning line, as the plan's."""
    from biohicl.cli.train import parse_args
    from biohicl.training.run_settings import dev_selection_notice, last_step_notice

    argv = options(tiny_bert_dir, dataset, tmp_path / "run", "--max_steps", "2")
    assert main([*argv, "--dry_run"]) == 0
    kept = last_step_notice(parse_args(argv[1:]))
    assert dev_selection_notice(parse_args(argv[1:])) == f"no dev evaluation (no --eval_tasks), so {kept}"
    assert kept.startswith("the run keeps its last step whatever it scores; to select a step on ")
    assert f"  evaluation: none (no --eval_tasks): {kept}\n" in capsys.readouterr().out


def test_the_plan_says_an_evaluating_run_without_best_model_loading_keeps_its_last_step(
    tiny_bert_dir, dataset, beir, tmp_path, capsys, no_model
):
    """The run's own warning, after when and where it evaluates; a run that loads its best step plans step 0."""
    from biohicl.training.run_settings import dev_selection_notice

    tasks = ["--eval_tasks", str(beir), "--eval_strategy", "steps", "--eval_steps", "2", "--max_steps", "4"]
    assert main([*options(tiny_bert_dir, dataset, tmp_path / "run", *tasks), "--dry_run"]) == 0
    line = (
        f"  evaluation: every 2 steps on {beir} (no --load_best_model_at_end): the run keeps its last step whatever it "
        "scores; to select a step on dev data, step 0 (the base) a candidate, add e.g. --save_steps 2 "
        "--load_best_model_at_end --metric_for_best_model METRIC (METRIC: a metric of its --eval_tasks, as its "
        'evaluation logs it; docs/training.md, "Model selection on dev data"), or train with --config '
        "configs/biohicl_minilm.yaml, the registry's recipe\n"
    )
    assert line in capsys.readouterr().out
    from biohicl.cli.train import parse_args

    args = parse_args(options(tiny_bert_dir, dataset, tmp_path / "run", *tasks)[1:])
    assert (
        dev_selection_notice(args)
        == "dev evaluation without --load_best_model_at_end, so " + line.split(": ", 2)[2][:-1]
    )
    selects = ["--save_steps", "2", "--load_best_model_at_end", "--metric_for_best_model", "toy_ndcg@10"]
    assert main([*options(tiny_bert_dir, dataset, tmp_path / "run", *tasks, *selects), "--dry_run"]) == 0
    assert f"  evaluation: every 2 steps and at step 0 on {beir}\n" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("more", "cuda", "device"),
    [
        (["--use_cpu"], False, "cpu (use_cpu)"),
        (["--use_cpu"], True, "cpu (use_cpu; this machine has a GPU: --use_cpu false trains on it)"),
        (["--use_cpu", "false"], None, None),  # TrainingArguments.device: cuda:0 on a GPU machine, else cpu
    ],
)
def test_the_plan_names_the_device_the_run_trains_on(
    tiny_bert_dir, dataset, tmp_path, capsys, no_model, monkeypatch, more, cuda, device
):
    import torch

    plain = [o for o in options(tiny_bert_dir, dataset, tmp_path / "run", "--max_steps", "2") if o != "--use_cpu"]
    device = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    with monkeypatch.context() as patch:
        if cuda is not None:  # the plan's hint only: args.device is set up by then
            patch.setattr(torch.cuda, "is_available", lambda: cuda)
        assert main([*plain, *more, "--dry_run"]) == 0
    assert f"\n  device: {device}\n" in capsys.readouterr().out


def test_the_device_line_is_what_the_training_arguments_train_on(monkeypatch, tmp_path):
    """Without use_cpu the line is ``args.device``, as transformers decides it (a GPU when there is one)."""
    import torch

    from biohicl.cli.train_plan import device_plan
    from biohicl.training.args import BioHiCLTrainingArguments

    args = BioHiCLTrainingArguments(output_dir=str(tmp_path), use_cpu=False)
    assert device_plan(args) == str(args.device)
    monkeypatch.setattr(type(args), "device", property(lambda self: torch.device("cuda", 0)))
    assert device_plan(args) == "cuda:0"
    args.use_cpu = True
    assert device_plan(args).startswith("cpu (use_cpu")


def test_the_objective_line_names_extra_terms_and_a_loss_of_ones_own(tmp_path):
    from torch import nn

    from biohicl.cli.train_plan import objective_plan
    from biohicl.losses import FilteredMSELoss
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.objective import build_loss

    class Margin(nn.Module):
        def forward(self, embeddings, siml, pair_mask=None, **inputs):
            return embeddings.sum() * 0

    args = BioHiCLTrainingArguments(output_dir=str(tmp_path), use_mse=False, use_contrastive=False)
    loss = build_loss(args, extra_terms={"margin": (Margin(), 0.5), "drift": (Margin(), 0.0)})
    assert objective_plan(loss) == "0.5·margin(Margin)"  # drift, of weight 0, is logged, not trained
    assert (
        objective_plan(FilteredMSELoss(pair_filter="positive"))
        == 'FilteredMSELoss {"pair_filter": "positive", "beta": 0.3}'
    )
    assert objective_plan(Margin()) == "Margin"


@pytest.mark.parametrize(
    ("weights", "plan", "cited"),
    [
        ({"lambda_con": 0.0}, "mse(zero_or_positive pairs)", ["BioHiCLLoss", "FilteredMSELoss"]),
        (
            {"use_mse": False, "lambda_con": 0.5, "distill_weight": 0.0, "title_weight": 0.2},
            "0.5·contrastive(infonce, β 0.3, τ 0.05, negative zero) + 0.2·title(τ 0.05)",
            ["BioHiCLLoss", "HierarchicalContrastiveLoss", "TitleInfoNCELoss"],
        ),
        (  # the InfoNCE mean over the contrastable pairs: named in the plan, one card row under its argument's name
            {"lambda_con": 0.1, "contrastive_mean": "contrastable"},
            "mse(zero_or_positive pairs) + 0.1·contrastive(infonce, β 0.3, τ 0.05, negative zero, mean over "
            "contrastable)",
            ["BioHiCLLoss", "FilteredMSELoss", "HierarchicalContrastiveLoss"],
        ),
        (  # distillation alone, with the contrastive term weighing 0 (or off: tests/test_losses.py)
            {"use_mse": False, "lambda_con": 0.0, "distill_weight": 2.0},
            "2·distill",
            ["BioHiCLLoss", "SimilarityDistillationLoss"],
        ),
    ],
)
def test_the_objective_line_and_the_card_agree_on_what_trains(tmp_path, weights, plan, cited):
    """One rule decides which terms train (a term of weight 0, ``lambda_con=0``, is computed and logged, not
    trained): the dry run's objective line names the terms the card cites, and the card shows settings of those
    alone."""
    from biohicl.cli.train_plan import objective_plan
    from biohicl.hub.card_hyperparameters import loss_citations, loss_rows
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.objective import build_loss, objective_record

    loss = build_loss(BioHiCLTrainingArguments(output_dir=str(tmp_path), **weights))
    record = objective_record(loss)
    assert objective_plan(loss) == plan
    assert list(loss_citations(record)) == cited
    rows = loss_rows(record)
    assert rows["lambda_con"] == weights["lambda_con"]  # a weight is a row whatever it is
    assert ("temperature" in rows) == ("HierarchicalContrastiveLoss" in cited)  # a term's settings only if it trains
    assert "mean" not in rows and rows.get("contrastive_mean") == weights.get("contrastive_mean")


@pytest.mark.parametrize(
    "switches",
    [
        ["--use_mse", "false", "--lambda_con", "0", "--distill_weight", "0"],  # the contrastive term on, weighing 0
        ["--use_mse", "false", "--use_contrastive", "false"],
    ],
)
def test_a_dry_run_where_no_term_trains_is_refused_in_one_line(tiny_bert_dir, dataset, tmp_path, capsys, switches):
    """An objective where no term trains would train with loss 0 every step and save as a success: refused, naming
    each term's fields, as the real run refuses it."""
    assert main([*options(tiny_bert_dir, dataset, tmp_path / "run", *switches), "--dry_run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "biohicl train: error: use_mse, use_contrastive, lambda_con, distill_weight, title_weight: at least one loss"
    )
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("contrastive", [["--lambda_con", "0"], ["--use_contrastive", "false"]])
def test_a_dry_run_of_distillation_alone_plans_it(tiny_bert_dir, dataset, tmp_path, capsys, no_model, contrastive):
    argv = options(tiny_bert_dir, dataset, tmp_path / "run", "--use_mse", "false", *contrastive)
    assert main([*argv, "--distill_weight", "2", "--dry_run"]) == 0
    assert "  objective: 2·distill\n" in capsys.readouterr().out


def test_the_objective_is_planned_when_the_dataset_is_missing(tiny_bert_dir, tmp_path, capsys, no_model):
    argv = options(tiny_bert_dir, tmp_path / "no-dataset", tmp_path / "run", "--max_steps", "2", "--lambda_con", "0")
    assert main([*argv, "--dry_run"]) == 1
    out = capsys.readouterr().out
    assert "  objective: mse(zero_or_positive pairs)\n" in out  # lambda_con 0: the contrastive term does not train


def test_a_share_of_the_steps_as_eval_steps_is_counted_as_the_trainer_counts_it(
    tiny_bert_dir, dataset, beir, tmp_path, capsys, no_model
):
    tasks = ["--eval_tasks", str(beir), "--eval_strategy", "steps", "--eval_steps", "0.5", "--max_steps", "9"]
    assert main([*options(tiny_bert_dir, dataset, tmp_path / "run", *tasks), "--dry_run"]) == 0
    assert (
        f"  evaluation: every 5 steps on {beir} (no --load_best_model_at_end): " in capsys.readouterr().out
    )  # 9 × 0.5


def test_a_missing_dataset_and_task_data_exit_1_naming_them(tiny_bert_dir, tmp_path, capsys, no_model):
    output_dir, dataset, task = tmp_path / "run", tmp_path / "no-dataset", tmp_path / "no-beir"
    tasks = ["--eval_tasks", str(task), "--eval_strategy", "steps", "--eval_steps", "2"]
    assert main([*options(tiny_bert_dir, dataset, output_dir, *tasks), "--dry_run"]) == 1
    captured = capsys.readouterr()
    assert "  documents, batches, optimizer steps: counted once the dataset is found\n" in captured.out
    assert f"  MISSING dataset: {dataset}: no such file or folder\n" in captured.out
    assert f"  MISSING task {task}: {task}: no such directory (a BEIR folder path)\n" in captured.out
    assert "  ok      model base_model:" in captured.out
    assert captured.err.strip().endswith(f"missing before the run can train: dataset, task {task}")
    assert not output_dir.exists()


def test_a_base_model_that_does_not_resolve_offline_exits_1(dataset, tmp_path, capsys, no_model, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    argv = options(Path("nobody/no-such-model-xyz"), dataset, tmp_path / "run", "--max_steps", "2")
    assert main([*argv, "--dry_run"]) == 1
    captured = capsys.readouterr()
    assert "  MISSING model base_model: nobody/no-such-model-xyz cannot be loaded offline (" in captured.out
    assert captured.err.strip().endswith("missing before the run can train: model base_model")


def test_the_real_runs_refusals_come_first(tiny_bert_dir, dataset, beir, tmp_path, capsys, no_model):
    """An argument a run refuses, and evaluation tasks without an eval_strategy, are refused as a real run refuses
    them (one line, exit 2), not listed."""
    output_dir = tmp_path / "run"
    assert main([*options(tiny_bert_dir, dataset, output_dir, "--lambda_con", "-1"), "--dry_run"]) == 2
    assert "lambda_con: must be non-negative, got -1.0" in capsys.readouterr().err
    assert main([*options(tiny_bert_dir, dataset, output_dir, "--eval_tasks", str(beir)), "--dry_run"]) == 2
    assert "eval_tasks: set --eval_strategy steps|epoch to evaluate them" in capsys.readouterr().err
    assert not output_dir.exists()


def write_checkpoint(folder: Path, step: int, arguments: str) -> Path:
    """A complete checkpoint as far as the resume checks look: its state, weights file and arguments."""
    from biohicl.training.checkpoint import TRAINABLE_WEIGHTS_NAME, TRAINING_ARGS_JSON

    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (folder / TRAINABLE_WEIGHTS_NAME).write_bytes(b"")
    (folder / TRAINING_ARGS_JSON).write_text(arguments)
    return folder


def test_the_output_folder_checks_of_a_real_run(tiny_bert_dir, dataset, tmp_path, capsys, no_model):
    """A fresh run over another run's checkpoints is refused; a resume of this run's checkpoint is planned from its
    step; the folder is left as it was."""
    from biohicl.cli.train import parse_args

    output_dir = tmp_path / "run"
    argv = options(tiny_bert_dir, dataset, output_dir, "--max_steps", "5")
    other = parse_args([*argv[1:], "--lambda_con", "0.5"]).to_json_string()
    write_checkpoint(output_dir / "checkpoint-2", 2, other)
    before = tree(output_dir)
    assert main([*argv, "--dry_run"]) == 2
    assert "holds checkpoints of a run with other settings (checkpoint-2 → this run: lambda_con 0.5 → 0.1)" in (
        capsys.readouterr().err
    )
    assert tree(output_dir) == before
    write_checkpoint(output_dir / "checkpoint-3", 3, parse_args(argv[1:]).to_json_string())
    before = tree(output_dir)
    assert main([*argv, "--resume_from_checkpoint", "last", "--dry_run"]) == 0
    assert f"  output: {output_dir} (resumes {output_dir / 'checkpoint-3'} at step 3)\n" in capsys.readouterr().out
    assert tree(output_dir) == before


def test_dry_run_is_an_option_of_the_command_not_of_the_run(tiny_bert_dir, dataset, tmp_path):
    from biohicl.cli.train import parse_args, parse_command_line
    from biohicl.training.args import BioHiCLTrainingArguments

    argv = options(tiny_bert_dir, dataset, tmp_path / "run")[1:]
    args, command = parse_command_line([*argv, "--dry_run"])
    assert isinstance(args, BioHiCLTrainingArguments) and command.dry_run is True
    assert "dry_run" not in json.loads(args.to_json_string())  # never in a run's biohicl_training_args.json
    assert parse_command_line(argv)[1].dry_run is False
    assert parse_args([*argv, "--dry_run"]).to_json_string() == parse_args(argv).to_json_string()
    config = tmp_path / "run.yaml"
    config.write_text("dry_run: true\n")
    assert parse_command_line(["--config", str(config), *argv])[1].dry_run is True


def test_steps_counted_where_they_round_are_the_steps_a_real_run_takes(tiny_bert_dir, dataset, tmp_path, capsys):
    """24 documents / 5 per batch = 5 batches an epoch; / 4 accumulation steps = 2 optimizer steps (the last of 1
    batch); × 1.5 epochs = 3: the dry run's count is the real run's last step."""
    output_dir = tmp_path / "run"
    argv = options(tiny_bert_dir, dataset, output_dir, "--per_device_train_batch_size", "5")
    argv += ["--gradient_accumulation_steps", "4", "--num_train_epochs", "1.5", "--save_strategy", "no"]
    assert main([*argv, "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "  batches: 5 documents, 5 per epoch; 20 documents per optimizer step (4 accumulation steps)\n" in out
    assert "  optimizer steps: 2 per epoch, 3 in all (1.5 epochs)\n" in out
    assert main([*argv, "--disable_tqdm", "true"]) == 0
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == 3


def test_a_checkpoint_past_the_runs_last_step_is_refused_as_the_real_run_refuses_it(
    tiny_bert_dir, dataset, tmp_path, capsys
):
    """A checkpoint at step 6 of a run whose data now give 3 steps (1 epoch of 3): the real run's one line, exit 2,
    in a dry run; one at step 3 is the run's end, nothing left to train."""
    from biohicl.cli.train import parse_args

    output_dir = tmp_path / "run"
    argv = options(tiny_bert_dir, dataset, output_dir, "--num_train_epochs", "1", "--resume_from_checkpoint", "last")
    write_checkpoint(output_dir / "checkpoint-3", 3, parse_args(argv[1:]).to_json_string())
    assert main([*argv, "--dry_run"]) == 0
    line = f"  output: {output_dir} ({output_dir / 'checkpoint-3'}, step 3, is at the last step: nothing left to train)"
    assert f"{line}\n" in capsys.readouterr().out
    write_checkpoint(output_dir / "checkpoint-6", 6, parse_args(argv[1:]).to_json_string())
    before = tree(output_dir)
    assert main([*argv, "--dry_run"]) == 2
    refused = capsys.readouterr().err
    assert refused == (
        f"biohicl train: error: resume_from_checkpoint: {output_dir / 'checkpoint-6'} is at step 6, past this run's "
        "last step 3 (its training data changed?); train a new run in another --output_dir\n"
    )
    assert tree(output_dir) == before
    assert main(argv) == 2  # the real run: the same line, once the model is loaded
    assert capsys.readouterr().err.endswith(refused)


def sentence_transformers_base(tiny_bert_dir: Path, folder: Path, modules: list[str], pooling: dict) -> Path:
    """The tiny BERT as a sentence-transformers folder of ``modules`` (``Transformer``, ``Pooling``, ``Dense`` ...)."""
    import shutil

    shutil.copytree(tiny_bert_dir, folder)
    paths = {"Transformer": "", "Pooling": "1_Pooling"}
    listed = [
        {
            "idx": i,
            "name": str(i),
            "path": paths.get(kind, f"{i}_{kind}"),
            "type": f"sentence_transformers.models.{kind}",
        }
        for i, kind in enumerate(modules)
    ]
    (folder / "modules.json").write_text(json.dumps(listed))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "mean", **pooling}))
    return folder


@pytest.mark.parametrize(
    ("modules", "pooling", "more", "refused"),
    [
        (
            ["Transformer", "Dense"],
            {},
            [],
            "modules.json: module 'sentence_transformers.models.Dense' (path '1_Dense')",
        ),
        (
            ["Transformer", "Pooling"],
            {"include_prompt": False},
            ["--query_prompt", "query: "],
            "1_Pooling/config.json: field include_prompt is false",
        ),
    ],
)
def test_a_sentence_transformers_base_the_run_refuses_is_refused_with_its_line(
    tiny_bert_dir, dataset, tmp_path, capsys, monkeypatch, modules, pooling, more, refused
):
    """The base's sentence-transformers files are read as the run reads them, with the run's settings (a prompt
    given on the command line): a module biohicl does not apply, or a prompt the pooling leaves out, is the real
    run's one line, exit 2, without loading the model."""
    base = sentence_transformers_base(tiny_bert_dir, tmp_path / "st-base", modules, pooling)
    argv = options(base, dataset, tmp_path / "run", "--max_steps", "2", *more)
    assert main(argv) == 2
    real = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{base}/{refused}" in real
    monkeypatch.setattr("biohicl.training.run.build_model", lambda *args: pytest.fail("a dry run loaded a model"))
    assert main([*argv, "--dry_run"]) == 2
    assert capsys.readouterr().err.strip() == real
    assert not (tmp_path / "run").exists()


def test_a_local_base_folder_with_a_revision_passes_as_the_run_takes_it(tiny_bert_dir, dataset, tmp_path, capsys):
    """A run loads a folder as it is, whatever ``--base_revision`` says (``resolve_base``); the dry run's checks had
    refused the folder ("a revision only applies to Hub repos"), so a run that trains was reported missing."""
    from biohicl.models.resolver import resolve_base

    assert resolve_base(str(tiny_bert_dir), "abc") == tiny_bert_dir  # what the run loads
    more = ("--max_steps", "1", "--base_revision", "abc")
    assert main([*options(tiny_bert_dir, dataset, tmp_path / "run", *more), "--dry_run"]) == 0
    assert f"  ok      model base_model: {tiny_bert_dir} → {tiny_bert_dir}\n" in capsys.readouterr().out


def adapter_base_run(root: Path) -> Path:
    """``root/run``: a saved BioHiCL adapter whose ``biohicl_config.json`` records its base as ``org/tiny-bert``
    (saved at ``root/base``, not in the Hugging Face cache)."""
    from tests.conftest import save_tiny_adapter_run

    run = save_tiny_adapter_run(root)
    assert json.loads((run / "biohicl_config.json").read_text())["base_model"] == "org/tiny-bert"
    return run


def test_an_adapter_base_whose_own_base_is_not_here_is_missing_with_the_runs_reason(
    dataset, tmp_path, capsys, monkeypatch
):
    """A BioHiCL adapter given as the base loads merged into the base its config records (``BioHiCL._backbone``):
    the dry run checks that one offline too. It passed (``ok``, exit 0) while the real run failed on it, after
    reading the data."""
    from huggingface_hub import constants

    run = adapter_base_run(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    argv = [*options(run, dataset, tmp_path / "out", "--max_steps", "1"), "--lora_target_modules", "query", "value"]
    assert main(argv) == 2
    reason = capsys.readouterr().err.strip().splitlines()[-1].removeprefix("biohicl train: error: ")
    assert reason.startswith("org/tiny-bert at revision main is not in the Hugging Face cache")
    monkeypatch.setattr("biohicl.training.run.build_model", lambda *args: pytest.fail("a dry run loaded a model"))
    assert main([*argv, "--dry_run"]) == 1
    captured = capsys.readouterr()
    missing = f"  MISSING model base_model: {run} is an adapter; its base org/tiny-bert cannot be loaded offline ("
    assert missing + reason in captured.out
    assert captured.err.strip().endswith("missing before the run can train: model base_model")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the run would download it
    assert main([*argv, "--dry_run"]) == 0
    ok = f"  ok      model base_model: {run} → {run} (an adapter; its base org/tiny-bert is not in the cache: "
    assert ok + "downloaded when training starts)\n" in capsys.readouterr().out
    base, config = tmp_path / "base", json.loads((run / "biohicl_config.json").read_text())
    (run / "biohicl_config.json").write_text(json.dumps({**config, "base_model": str(base)}))
    assert main([*argv, "--dry_run"]) == 0  # recorded as a folder on this machine
    assert f"  ok      model base_model: {run} → {run} (an adapter; its base {base} → {base})\n" in (
        capsys.readouterr().out
    )
    assert not (tmp_path / "out").exists()


def test_the_data_is_refused_before_the_base_as_the_run_reads_them(tiny_bert_dir, tmp_path, capsys, monkeypatch):
    """The run reads its data, then builds the model: with both refused, the dry run gives the data's line, as the
    run does (it gave the base's)."""
    base = sentence_transformers_base(tiny_bert_dir, tmp_path / "st-base", ["Transformer", "Dense"], {})
    docs = tmp_path / "docs.jsonl"  # every document in split test: none to train on
    docs.write_text("".join(json.dumps(d | {"split": "test"}) + "\n" for d in synthetic_documents()))
    argv = options(base, docs, tmp_path / "run", "--max_steps", "2")
    assert main(argv) == 2
    real = capsys.readouterr().err.strip().splitlines()[-1]
    assert real.startswith(f"biohicl train: error: {docs}")
    monkeypatch.setattr("biohicl.training.run.build_model", lambda *args: pytest.fail("a dry run loaded a model"))
    assert main([*argv, "--dry_run"]) == 2
    assert capsys.readouterr().err.strip() == real


def test_the_base_check_reads_the_folder_the_model_check_resolved(tiny_bert_dir, monkeypatch):
    """One rule resolves the base (a folder drops its revision): ``model_check`` gives the folder it found, which
    the base's encoding check reads; None where the base is not on this machine."""
    from huggingface_hub import constants

    from biohicl.study.preflight import model_check

    assert model_check("model", str(tiny_bert_dir), "abc").path == tiny_bert_dir
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert model_check("model", "nobody/no-such-model-xyz").path is None


def test_adapter_bases_that_form_a_loop_are_refused_as_the_run_refuses_them(dataset, tmp_path, capsys):
    """Two adapters, each recording the other as its base: the real run refuses the loop; the dry run had found it
    and passed it (``ok``, exit 0)."""
    import shutil

    run = adapter_base_run(tmp_path)
    other = tmp_path / "run2"
    shutil.copytree(run, other)
    for folder, base in ((run, other), (other, run)):
        config = json.loads((folder / "biohicl_config.json").read_text())
        (folder / "biohicl_config.json").write_text(json.dumps({**config, "base_model": str(base)}))
    argv = [*options(run, dataset, tmp_path / "out", "--max_steps", "1"), "--lora_target_modules", "query", "value"]
    assert main(argv) == 2
    assert "the adapters' bases form a loop" in capsys.readouterr().err
    assert main([*argv, "--dry_run"]) == 1
    loop = f"the adapters' bases form a loop ({run} → {other} → {run}); give a base that is not an adapter"
    assert f"  MISSING model base_model: {run} is an adapter; its base {other} is an adapter; its base {loop}\n" in (
        capsys.readouterr().out
    )


def test_a_missing_dataset_is_listed_before_a_base_the_run_would_not_reach(tiny_bert_dir, tmp_path, capsys):
    """The run refuses a missing dataset before it reads the base's files: the dry run lists it (exit 1) rather than
    giving the base's refusal (exit 2), which the run would not reach."""
    base = sentence_transformers_base(tiny_bert_dir, tmp_path / "st-base", ["Transformer", "Dense"], {})
    argv = options(base, tmp_path / "nodata.jsonl", tmp_path / "run", "--max_steps", "2")
    assert main([*argv, "--dry_run"]) == 1
    assert f"  MISSING dataset: {tmp_path / 'nodata.jsonl'}: no such file or folder\n" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("more", "pool"),
    [
        ([], "the dataset's mined pairs"),
        (["--drop_check_tags"], "every pair, mined with the run's SimL"),
        (
            ["--drop_check_tags", "--max_partners", "3"],
            "every pair, mined with the run's SimL, at most 3 partners a document",
        ),
    ],
)
def test_the_plan_says_which_pairs_its_positive_pair_count_is_of(
    tiny_bert_dir, dataset, tmp_path, capsys, no_model, more, pool
):
    # the build's top_k pairs per document, or every pair above β mined again under the run's own SimL: the two
    # counts are of different pools (a docs tester read 13,293 vs 38,611 as dropping check tags adding pairs)
    assert main([*options(tiny_bert_dir, dataset, tmp_path / "run", *more), "--dry_run"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("  documents: "))
    assert line.endswith(f" positive pairs (SimL > 0.3; {pool})")

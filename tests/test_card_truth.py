"""What a generated model card says is what trained: a full fine-tune is not called LoRA, the install line is one
that works, the label counts say whose count they are, the hyperparameter table shows the epochs and warm-up steps
the run had, and a training_summary.json of the wrong shape is one line naming the file and field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import build_tiny_bert

from biohicl.errors import PublishError
from biohicl.hub.card_hyperparameters import trained_hyperparameters
from biohicl.hub.model_card import BioHiCLModelCardData, render_model_card
from biohicl.hub.publish import build_model_repo_folder
from biohicl.models.model import BioHiCL

CONFIG = {"base_model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean", "max_length": 64}


def _card(**kwargs) -> BioHiCLModelCardData:
    return BioHiCLModelCardData(model_name="M", base_model="org/base", repo_id="me/m", **kwargs)


def _run(tmp_path: Path, args: dict, summary: dict, state: dict | None = None) -> Path:
    run = tmp_path / "run"
    run.mkdir(parents=True)
    (run / "biohicl_config.json").write_text(json.dumps(CONFIG))
    (run / "biohicl_training_args.json").write_text(json.dumps(args))
    (run / "training_summary.json").write_text(json.dumps(summary))
    if state is not None:
        (run / "trainer_state.json").write_text(json.dumps(state))
    return run


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("card-truth") / "base")


# ------------------------------------------------------------------ 1. a full fine-tune is not a LoRA
def test_a_full_finetunes_card_says_every_weight_was_trained_and_never_lora(tiny_base, tmp_path):
    model = BioHiCL.from_base(str(tiny_base), hub_id="org/tiny-bert", pooling="mean", max_length=64)
    model.save_pretrained(tmp_path / "run")
    args = {"full_finetune": True, "learning_rate": 2e-5, "lora_r": 8}
    (tmp_path / "run" / "biohicl_training_args.json").write_text(json.dumps(args))
    summary = {"global_step": 3, "trainable_parameters": 100, "total_parameters": 100}
    (tmp_path / "run" / "training_summary.json").write_text(json.dumps(summary))
    text = (
        build_model_repo_folder(tmp_path / "run", tmp_path / "repo", repo_id="me/tiny-full") / "README.md"
    ).read_text()
    assert "LoRA" not in text and "merged" not in text and "folded" not in text
    assert "This repository holds a **fully fine-tuned model**: every weight of the encoder was trained" in text
    assert "and every weight of the encoder is fine-tuned so that the cosine similarity" in text
    assert "| Weights | full model, every weight fine-tuned |" in text
    assert BioHiCLModelCardData.from_biohicl_config({**CONFIG, "kind": "full"}, "M").kind == "full"


def test_merged_and_adapter_cards_still_name_their_lora(tiny_base):
    merged = render_model_card(_card(kind="merged"))
    assert "This repository holds a **full (merged) model**: the LoRA update is folded into the weights" in merged
    assert "the encoder is tuned with LoRA so that" in merged and "| Weights | merged full model |" in merged
    adapter = render_model_card(_card(kind="adapter"))
    assert "This repository holds a **LoRA adapter** (peft)" in adapter
    assert "the encoder is tuned with LoRA so that" in adapter and "| Weights | LoRA adapter (peft) |" in adapter


# ------------------------------------------------------------------ 2. an install line that works
def test_the_card_installs_biohicl_from_its_repository_not_pypi():
    from biohicl.hub.model_card import INSTALL_COMMAND

    assert INSTALL_COMMAND == 'pip install "biohicl @ git+https://github.com/biohicl/biohicl"'
    text = render_model_card(_card())
    assert 'With `biohicl` (`pip install "biohicl @ git+https://github.com/biohicl/biohicl"`):' in text
    assert "`pip install biohicl`" not in text


def test_the_notebooks_install_what_the_card_installs():
    from biohicl.hub.model_card import INSTALL_COMMAND

    script = (Path(__file__).resolve().parents[1] / "scripts" / "build_notebooks.py").read_text()
    assert f'%pip install -q "biohicl @ git+{INSTALL_COMMAND.split("git+")[1]}' in script


# ------------------------------------------------------------------ 3. whose label count it is
def test_the_build_and_training_time_label_drops_are_rows_of_their_own(tmp_path, monkeypatch):
    dataset = tmp_path / "ds"
    dataset.mkdir()
    build = {"documents": 200, "read": {"labels_dropped": {"MeSH name not in this MeSH release": 17, "other": 2}}}
    (dataset / "summary.json").write_text(json.dumps(build))
    data = {"documents": 40, "labels_dropped_unknown": 0, "labels_without_tree_position": 62}
    run = _run(tmp_path, {"dataset_path": str(dataset)}, {"data": data})
    monkeypatch.chdir(tmp_path)
    counts = BioHiCLModelCardData.from_run_dir(run, "M").training_counts
    assert list(counts.items()) == [
        ("training documents", 40),
        ("MeSH labels dropped when the dataset was built (all splits)", 19),
        ("MeSH labels unknown to the MeSH table at training time (dropped)", 0),
        ("MeSH labels with no tree position (not in SimL, e.g. Male)", 62),
    ]
    assert "dropped (unknown to the MeSH release)" not in render_model_card(BioHiCLModelCardData.from_run_dir(run, "M"))


def test_without_the_datasets_summary_only_the_training_time_row_is_shown(tmp_path, monkeypatch):
    data = {"documents": 40, "labels_dropped_unknown": 3}
    run = _run(tmp_path, {"dataset_path": str(tmp_path / "gone")}, {"data": data})
    monkeypatch.chdir(tmp_path)
    counts = BioHiCLModelCardData.from_run_dir(run, "M").training_counts
    assert counts == {"training documents": 40, "MeSH labels unknown to the MeSH table at training time (dropped)": 3}


# ------------------------------------------------------------------ 4. the schedule that trained
def test_max_steps_shows_the_epochs_trained_and_the_warmup_steps_taken(tmp_path):
    args = {"num_train_epochs": 3.0, "max_steps": 6, "warmup_steps": 0.1, "lr_scheduler_type": "linear"}
    run = _run(tmp_path, args, {"global_step": 6}, state={"epoch": 1.2, "max_steps": 6, "global_step": 6})
    rows = BioHiCLModelCardData.from_run_dir(run, "M").hyperparameters
    assert (rows["num_train_epochs"], rows["max_steps"], rows["warmup_steps"]) == (1.2, 6, 1)  # ceil(6 × 0.1)
    text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "M"))
    assert "| `num_train_epochs` | 1.2 |" in text and "| `warmup_steps` | 1 |" in text
    assert "| `num_train_epochs` | 3.0 |" not in text and "| `warmup_steps` | 0.1 |" not in text


@pytest.mark.parametrize(
    ("args", "state", "expected"),
    [
        # max_steps governs, no trainer state: the epochs are not known, so no row; warm-up from max_steps
        ({"num_train_epochs": 3.0, "max_steps": 6, "warmup_steps": 0.1}, None, {"max_steps": 6, "warmup_steps": 1}),
        # epochs govern: the trainer state's max_steps is the run's optimizer steps (transformers' num_training_steps)
        (
            {"num_train_epochs": 2.0, "max_steps": -1, "warmup_steps": 0.05},
            {"epoch": 2.0, "max_steps": 90},
            {"num_train_epochs": 2.0, "warmup_steps": 5},  # ceil(90 × 0.05) = ceil(4.5)
        ),
        # a whole number of steps: transformers takes int(warmup_steps)
        ({"num_train_epochs": 1.0, "warmup_steps": 2.5}, None, {"num_train_epochs": 1.0, "warmup_steps": 2}),
        # a ratio with no known total: said as a share of the steps
        (
            {"num_train_epochs": 1.0, "warmup_steps": 0.1},
            None,
            {"num_train_epochs": 1.0, "warmup_steps": "10% of the steps"},
        ),
        # a schedule that takes no warm-up: no warm-up row
        (
            {"max_steps": 6, "warmup_steps": 0.1, "lr_scheduler_type": "constant"},
            {"epoch": 1.2, "max_steps": 6},
            {"num_train_epochs": 1.2, "max_steps": 6, "lr_scheduler_type": "constant"},
        ),
    ],
)
def test_the_schedule_rows_are_what_trained(args, state, expected):
    assert trained_hyperparameters(args, None, None, state=state) == expected


# ------------------------------------------------------------------ 5. a summary of the wrong shape
@pytest.fixture(scope="module")
def lora_run(tiny_base, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crafted-summary")
    model = BioHiCL.from_base(str(tiny_base), hub_id="org/tiny-bert", pooling="mean", max_length=64)
    model.add_lora(r=2, target_modules=["value", "query"], verbose=False)
    model.save_pretrained(root / "run")
    return root / "run"


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ([1, 2], "expected a JSON object, got list"),
        ({"selection": [1]}, "field selection must be a JSON object, got [1]"),
        ({"data": [1]}, "field data must be a JSON object, got [1]"),
        ({"runtime_s": "fast"}, "field runtime_s must be a number, got 'fast'"),
        ({"global_step": "six"}, "field global_step must be an integer, got 'six'"),
        ({"trainable_parameters": "10"}, "field trainable_parameters must be an integer, got '10'"),
        (
            {"loss": {"class": "BioHiCLLoss", "lambda_con": 0.1, "regression": 3}},
            "field loss.regression must be a JSON object, got 3",
        ),
        (
            {"selection": {"loaded_best": True, "evaluations": [[0]]}},
            "field selection.evaluations must be a list of [step, score] pairs, got [[0]]",
        ),
        (
            {"selection": {"loaded_best": True, "best_metric": "high"}},
            "field selection.best_metric must be a number, got 'high'",
        ),
    ],
)
def test_a_training_summary_of_the_wrong_shape_is_one_line_naming_the_file_and_field(
    lora_run, tmp_path, summary, expected
):
    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    (run / "training_summary.json").write_text(json.dumps(summary))
    with pytest.raises(PublishError) as err:
        build_model_repo_folder(run, tmp_path / "out", repo_id="me/tiny")
    assert str(err.value) == f"{run / 'training_summary.json'}: {expected}"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("biohicl_training_args.json", [1], "expected a JSON object, got list"),
        ("trainer_state.json", [1], "expected a JSON object, got list"),
        ("trainer_state.json", {"epoch": "one"}, "field epoch must be a number, got 'one'"),
        ("dev_evaluations.json", {"step": 0}, "expected a JSON list, got dict"),
    ],
)
def test_the_other_run_records_the_card_reads_are_checked_alike(lora_run, tmp_path, name, value, expected):
    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    (run / "training_summary.json").write_text(json.dumps({"global_step": 1}))  # a finished run, not a checkpoint
    (run / name).write_text(json.dumps(value))
    with pytest.raises(PublishError) as err:
        build_model_repo_folder(run, tmp_path / "out", repo_id="me/tiny")
    assert str(err.value) == f"{run / name}: {expected}"


def test_a_well_formed_summary_still_publishes(lora_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    summary = {"data": {"documents": 5}, "global_step": 2, "runtime_s": 3.4, "trainable_parameters": 10}
    (run / "training_summary.json").write_text(json.dumps({**summary, "total_parameters": 100}))
    text = (build_model_repo_folder(run, tmp_path / "out", repo_id="me/tiny") / "README.md").read_text()
    assert "| training documents | 5 |" in text and "| optimizer steps | 2 |" in text
    assert "Training time: 3 s wall time." in text


# ------------------------------------------------------------------ the fields of the other records, checked alike
SELECTED = {
    "global_step": 2,
    "selection": {
        "loaded_best": True,
        "best_step": 2,
        "best_metric": 0.625,
        "step0_metric": 0.5,
        "evaluations": [[0, 0.5], [2, 0.625]],
    },
}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        # dev_evaluations.json: were int('x') and float('b') tracebacks
        ("dev_evaluations.json", [{"step": "x"}], "row 1: field step must be an integer, got 'x'"),
        ("dev_evaluations.json", [{"step": 0}, 7], "row 2 must be a JSON object, got 7"),
        (
            "dev_evaluations.json",
            [{"step": 0, "eval_dev_score": 0.1}, {"step": 2, "eval_dev_score": "b"}],
            "step 2: field eval_dev_score must be a number, got 'b'",
        ),
        (
            "dev_evaluations.json",
            [{"step": 0, "eval_dev_score": True}],
            "step 0: field eval_dev_score must be a number, got True",
        ),
        # biohicl_training_args.json: selection_metrics 5 was a TypeError; max_steps "3" showed the epochs as governing
        (
            "biohicl_training_args.json",
            {"selection_metrics": 5},
            "field selection_metrics must be a list of strings, got 5",
        ),
        (
            "biohicl_training_args.json",
            {"selection_metrics": "dev"},
            "field selection_metrics must be a list of strings, got 'dev'",
        ),
        (
            "biohicl_training_args.json",
            {"selection_guard": [1]},
            "field selection_guard must be a list of strings, got [1]",
        ),
        ("biohicl_training_args.json", {"max_steps": "3"}, "field max_steps must be an integer, got '3'"),
        ("biohicl_training_args.json", {"num_train_epochs": [3]}, "field num_train_epochs must be a number, got [3]"),
        ("biohicl_training_args.json", {"learning_rate": True}, "field learning_rate must be a number, got True"),
        ("biohicl_training_args.json", {"lora_r": 2.5}, "field lora_r must be an integer, got 2.5"),
        (
            "biohicl_training_args.json",
            {"selection_guard_tolerance": "0"},
            "field selection_guard_tolerance must be a number, got '0'",
        ),
        # soup.json: adapters 5 was a TypeError, a word for a weight a ValueError
        ("soup.json", {"adapters": 5}, "field adapters must be a list of strings, got 5"),
        ("soup.json", {"adapters": ["a/b"], "weights": ["x"]}, "field weights must be a list of numbers, got ['x']"),
        ("soup.json", {"adapters": ["a/b"], "weights": [1.0], "rank": "8"}, "field rank must be an integer, got '8'"),
    ],
)
def test_the_fields_the_card_reads_from_dev_rows_training_arguments_and_soup_are_one_line_errors(
    lora_run, tmp_path, name, value, expected
):
    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    (run / "training_summary.json").write_text(json.dumps(SELECTED))
    (run / name).write_text(json.dumps(value))
    with pytest.raises(PublishError) as err:
        build_model_repo_folder(run, tmp_path / "out", repo_id="me/tiny")
    assert str(err.value) == f"{run / name}: {expected}"


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        ({"class": "BioHiCLLoss", "lambda_con": "big"}, "field loss.lambda_con must be a number, got 'big'"),
        (
            {"class": "BioHiCLLoss", "lambda_con": 0.1, "contrastive": {"temperature": [1]}},
            "field loss.contrastive.temperature must be a number, got [1]",
        ),
        # a selection that kept its best step without its score was a TypeError in the card's template
        (None, "field selection.best_metric must be a number (selection.loaded_best), got None"),
    ],
)
def test_the_recorded_loss_and_selection_the_card_shows_are_numbers(lora_run, tmp_path, loss, expected):
    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    summary = {"global_step": 1, "loss": loss}
    if loss is None:
        summary = {**SELECTED, "selection": {**SELECTED["selection"], "best_metric": None}}
    (run / "training_summary.json").write_text(json.dumps(summary))
    with pytest.raises(PublishError) as err:
        build_model_repo_folder(run, tmp_path / "out", repo_id="me/tiny")
    assert str(err.value) == f"{run / 'training_summary.json'}: {expected}"


def test_well_formed_dev_rows_arguments_and_soup_still_publish(lora_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    (run / "training_summary.json").write_text(json.dumps(SELECTED))
    args = {"max_steps": 2, "num_train_epochs": 3.0, "selection_metrics": ["siml-agreement_spearman"], "lora_r": 2}
    (run / "biohicl_training_args.json").write_text(json.dumps(args))
    rows = [
        {"epoch": 0, "eval_siml-agreement_spearman": 0.5, "step": 0},
        {"epoch": 1.0, "eval_siml-agreement_spearman": 0.625, "step": 2},
    ]
    (run / "dev_evaluations.json").write_text(json.dumps(rows))
    text = (build_model_repo_folder(run, tmp_path / "out", repo_id="me/tiny") / "README.md").read_text()
    assert "| `max_steps` | 2 |" in text and "num_train_epochs" not in text  # max_steps governed; no trainer state
    assert "| 0.5000 | 0.6250 | +0.1250 |" in text  # the dev metric at step 0 and at the kept step


# ------------------------------------------------------------------ the extras' install hints work too
GIT = "git+https://github.com/biohicl/biohicl"


def test_a_missing_onnxruntime_or_faiss_says_an_install_that_works(monkeypatch):
    # biohicl is not on PyPI: `pip install biohicl[onnx]` could not work
    from biohicl.errors import ModelLoadError
    from biohicl.models.onnx_export import require_onnxruntime
    from biohicl.search.faiss_index import _faiss

    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # its import fails
    monkeypatch.setitem(__import__("sys").modules, "faiss", None)
    with pytest.raises(ModelLoadError) as onnx:
        require_onnxruntime()
    assert str(onnx.value) == (
        f'the ONNX backend needs onnxruntime and onnx: `pip install -e ".[onnx]"` in a checkout, or '
        f'`pip install "biohicl[onnx] @ {GIT}"` (onnx onnxruntime onnxscript)'
    )
    with pytest.raises(ModelLoadError) as faiss:
        _faiss()
    assert str(faiss.value) == (
        f'the FAISS backend needs faiss: `pip install faiss-cpu` (or the faiss extra: `pip install -e ".[faiss]"` in '
        f'a checkout, or `pip install "biohicl[faiss] @ {GIT}"`)'
    )


def test_no_source_names_a_pypi_install_of_an_extra():
    root = Path(__file__).resolve().parents[1]
    for name in ("biohicl/models/onnx_export.py", "biohicl/search/faiss_index.py", "benchmarks/bench_gpu.py"):
        text = (root / name).read_text(encoding="utf-8")
        assert "biohicl[" not in text.replace("biohicl[onnx] @ ", "").replace("biohicl[faiss] @ ", ""), name
    assert '``pip install -e ".[mpnet]"`` in a checkout' in (root / "benchmarks/bench_gpu.py").read_text()

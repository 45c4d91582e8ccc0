"""The notebooks as a notebook user runs them: cells run again after a change or a runtime reset, outside Colab,
with another model; the messages name what a notebook user can change (its parameters, its cells), not CLI options.

Each test executes the cells it checks (the parameters cell, the setup cell after it, then the cell in question) with
the slow parts faked, as ``tests/test_notebooks.py`` does for the training cell.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_notebooks import (  # noqa: F401  (tiny_adapter_dir is a fixture)
    RECIPE,
    fake_downloads,
    load,
    parameter_cells,
    run_setup_cell,
    tiny_adapter_dir,
)

TRAIN = "02_train_biohicl.ipynb"
EVALUATE = "03_evaluate.ipynb"


class Trained(Exception):
    """Raised by the faked train_biohicl: the training cell got as far as training."""


def cell_with(name: str, text: str) -> str:
    (source,) = [c.source for c in load(name).cells if c.cell_type == "code" and text in c.source]
    return source


def markdown_with(name: str, text: str) -> str:
    (source,) = [c.source for c in load(name).cells if c.cell_type == "markdown" and text in c.source]
    return source


def fake_training(monkeypatch, summary: dict | None = None) -> list:
    """train_biohicl faked: records its arguments, then raises :class:`Trained` or, given ``summary``, writes it as
    the run's ``training_summary.json`` (what the cell reads after training)."""
    import biohicl.evaluation.evaluator as evaluator_module
    import biohicl.training.run as run_module

    calls: list = []
    notices = fake_training.notices = []  # each call's selection_notice

    def train_biohicl(args, evaluator=None, selection_notice=None):
        calls.append(args)
        notices.append(selection_notice)
        if summary is None:
            raise Trained
        run_dir = Path(args.output_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "training_summary.json").write_text(json.dumps(summary), encoding="utf-8")
        return run_dir

    monkeypatch.setattr(run_module, "train_biohicl", train_biohicl)
    monkeypatch.setattr(evaluator_module, "evaluator_from_args", lambda args: None)
    return calls


# ------------------------------------------------------------------------------------------------ 1. run again
def write_checkpoint(run_dir: Path, step: int, settings: dict) -> None:
    """A complete checkpoint (the files a complete one has) whose run had ``settings``."""
    checkpoint = run_dir / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}", encoding="utf-8")
    (checkpoint / "trainable_weights.safetensors").write_bytes(b"")
    (checkpoint / "biohicl_training_args.json").write_text(json.dumps(settings), encoding="utf-8")


def saved_settings(namespace: dict, monkeypatch, **changes) -> dict:
    """The arguments file an earlier run of the training cell saved (every argument, as a run saves them: a file
    missing one is compared at its default), with ``changes``."""
    calls = fake_training(monkeypatch)
    with pytest.raises(Trained):
        exec(cell_with(TRAIN, "train_biohicl("), namespace)
    return {**json.loads(calls[0].to_json_string()), **changes}


def test_training_again_with_another_setting_says_what_to_change_in_the_notebook(tmp_path, monkeypatch):
    """The checkpoints an earlier run left (save_total_limit keeps two) with another learning rate: the cell stops
    before training, in the notebook's terms (OUTPUT_DIR, its run folder's checkpoint-* folders), not the CLI's."""
    from biohicl.errors import ConfigError

    output_dir = str(tmp_path / "nb")
    namespace = run_setup_cell(TRAIN, monkeypatch, cuda=False, native_bf16=False, values={"OUTPUT_DIR": output_dir})
    run_dir = namespace["run_dir"]  # the setup cell's
    assert run_dir == tmp_path / "nb" / "run"
    write_checkpoint(run_dir, 6, saved_settings(namespace, monkeypatch, learning_rate=0.0001))
    calls = fake_training(monkeypatch)
    with pytest.raises(ConfigError) as raised:
        exec(cell_with(TRAIN, "train_biohicl("), namespace)
    assert calls == []  # stopped before training
    assert str(raised.value) == (
        f"{run_dir} holds checkpoints of a run with other settings (checkpoint-6 → this run: learning_rate 0.0001 → "
        f"0.0002): set OUTPUT_DIR to another folder in the parameters cell (it is '{output_dir}') and run the setup "
        f"and dataset cells again, or delete that run's checkpoints ({run_dir}/checkpoint-*) to train over it"
    )
    assert "--" not in str(raised.value)  # no command-line option


def test_training_again_with_the_same_settings_trains(tmp_path, monkeypatch):
    namespace = run_setup_cell(
        TRAIN, monkeypatch, cuda=False, native_bf16=False, values={"OUTPUT_DIR": str(tmp_path / "nb")}
    )
    run_dir = namespace["run_dir"]  # the setup cell's
    assert run_dir == tmp_path / "nb" / "run"
    write_checkpoint(run_dir, 6, saved_settings(namespace, monkeypatch, learning_rate=0.0002))
    calls = fake_training(monkeypatch)
    with pytest.raises(Trained):
        exec(cell_with(TRAIN, "train_biohicl("), namespace)
    assert len(calls) == 1


def test_train_section_says_checkpoints_stay_behind():
    text = " ".join(markdown_with(TRAIN, "**Checkpoints stay behind.**").split())
    assert "With `save_total_limit` 2 the run folder keeps two checkpoints after the run" in text
    # when selection keeps step 0 (the base: no checkpoint-0) the last two stay
    assert "(`OUTPUT_DIR/run/checkpoint-*`: the last two, or the kept step's and the last)" in text
    assert (
        "set another `OUTPUT_DIR` and run the setup and dataset cells again (the dataset is built in "
        "`OUTPUT_DIR/mesh-pairs`), or delete those `checkpoint-*` folders" in text
    )


def build_dataset_in_place(monkeypatch) -> list:
    """02's dataset build faked: it makes the dataset folder it is given (what the training cell's dataset_path
    names) and records it."""
    import biohicl.data.build as build_module

    built: list = []

    def build(inputs, output, *args, **kwargs):
        Path(output).mkdir(parents=True)
        built.append(Path(output))
        return {}, ""

    monkeypatch.setattr(build_module, "build_dataset_from_files", build)
    return built


def test_following_the_remedy_trains_in_the_other_folder(tmp_path, monkeypatch):
    """The remedy followed: OUTPUT_DIR changed, then the setup and dataset cells run again; the run trains in the new
    folder on a dataset there. Changed without running the setup cell again, the message says so."""
    from biohicl.errors import ConfigError

    first, second = tmp_path / "first", tmp_path / "second"
    (tmp_path / "data" / "pubmedqa").mkdir(parents=True)
    (tmp_path / "data" / "pubmedqa" / "ori_pqal.json").write_text("{}", encoding="utf-8")
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(tmp_path / "data"))  # PubMedQA alone, as the data cell fetches it
    built = build_dataset_in_place(monkeypatch)
    namespace = run_setup_cell(TRAIN, monkeypatch, cuda=False, native_bf16=False, values={"OUTPUT_DIR": str(first)})
    dataset_cell, training_cell = cell_with(TRAIN, "default_inputs()"), cell_with(TRAIN, "train_biohicl(")
    exec(dataset_cell, namespace)
    write_checkpoint(first / "run", 6, saved_settings(namespace, monkeypatch, learning_rate=0.0001))
    nb = load(TRAIN)
    setup_cell = nb.cells[parameter_cells(nb)[0] + 1].source
    calls = fake_training(monkeypatch)
    namespace["OUTPUT_DIR"] = str(second)  # changed in the parameters cell; the setup cell not run again
    with pytest.raises(ConfigError) as raised:
        exec(training_cell, namespace)
    assert str(raised.value) == (
        f"{first / 'run'} holds checkpoints of a run with other settings (checkpoint-6 → this run: learning_rate "
        f"0.0001 → 0.0002): OUTPUT_DIR is '{second}' but the setup cell last ran with '{first}': run the setup and "
        "dataset cells again"
    )
    exec(setup_cell, namespace)  # the setup cell alone: the dataset is still in the first folder
    assert namespace["run_dir"] == second / "run" and not (second / "mesh-pairs").exists()
    exec(dataset_cell, namespace)  # and the dataset cell, as the remedy says
    with pytest.raises(Trained):
        exec(training_cell, namespace)
    assert built == [first / "mesh-pairs", second / "mesh-pairs"]
    assert (calls[0].output_dir, calls[0].dataset_path) == (str(second / "run"), str(second / "mesh-pairs"))


# ------------------------------------------------------------------------------------------------ 2. outside Colab
def test_data_cell_outside_colab_downloads_only_when_asked(tmp_path, monkeypatch, capsys):
    """Off Colab nothing is fetched (and the printed line says how to get the data); DOWNLOAD = True fetches there."""
    fetched = fake_downloads(tmp_path, monkeypatch)
    monkeypatch.delitem(sys.modules, "google.colab")  # not on Colab
    monkeypatch.setattr("biohicl.settings.__file__", str(tmp_path / "src" / "biohicl" / "settings.py"))
    source = cell_with("01_quickstart.ipynb", "DATA_FILES = {")
    exec(source, {})
    assert fetched == [] and not (tmp_path / "biohicl-data").exists()
    assert capsys.readouterr().out == "data directory: none (set BIOHICL_DATA_DIR, or DOWNLOAD = True above)\n"
    asked = source.replace("DOWNLOAD = IN_COLAB", "DOWNLOAD = True")
    assert asked != source
    exec(asked, {})
    assert len(fetched) == 2 and (tmp_path / "biohicl-data" / "pubmedqa" / "ori_pqal.json").is_file()


def test_task_cells_name_the_data_cell_as_it_behaves():
    message = (
        '"no task has its data: set BIOHICL_DATA_DIR (docs/data.md), or run the data cell above (it downloads on "\n'
        '        "Colab; elsewhere set DOWNLOAD = True in it first)"'
    )
    for name in (TRAIN, EVALUATE):
        assert message in cell_with(name, "no task has its data"), name
        assert "run the download cell" not in cell_with(name, "no task has its data")


def run_dataset_cell(tmp_path, monkeypatch, data: Path) -> tuple[dict, list]:
    """02's dataset cell with ``BIOHICL_DATA_DIR`` = ``data`` and the build faked (its inputs recorded)."""
    import biohicl.data.build as build_module

    built: list = []
    monkeypatch.setattr(
        build_module, "build_dataset_from_files", lambda inputs, *a, **k: built.append(inputs) or ({}, "")
    )
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(data))
    namespace = {"out": tmp_path / "nb", "TOP_K_PAIRS": 10, "NUM_DOCUMENTS": None}
    exec(cell_with(TRAIN, "default_inputs()"), namespace)
    return namespace, built


def test_dataset_cell_without_pubmedqa_stops_without_announcing_a_fallback(tmp_path, monkeypatch, capsys):
    from biohicl.errors import ConfigError

    empty = tmp_path / "data"
    empty.mkdir()
    with pytest.raises(ConfigError) as raised:
        run_dataset_cell(tmp_path, monkeypatch, empty)
    assert capsys.readouterr().out == ""  # no "building from PubMedQA alone"
    assert str(raised.value) == (
        f"{empty} holds no pubmedqa/ori_pqal.json: set BIOHICL_DATA_DIR (docs/data.md), or run the data cell above "
        "(it downloads on Colab; elsewhere set DOWNLOAD = True in it first)"
    )


def test_dataset_cell_with_pubmedqa_alone_builds_from_it(tmp_path, monkeypatch, capsys):
    """What the data cell fetches on Colab: PubMedQA without the other corpora."""
    data = tmp_path / "data"
    (data / "pubmedqa").mkdir(parents=True)
    (data / "pubmedqa" / "ori_pqal.json").write_text("{}", encoding="utf-8")
    _, built = run_dataset_cell(tmp_path, monkeypatch, data)
    assert built == [[("pubmedqa", [data / "pubmedqa" / "ori_pqal.json"])]]
    assert capsys.readouterr().out.splitlines()[0].endswith(": building from PubMedQA alone")


# ------------------------------------------------------------------------------------------------ 3. the recipe
def recipe_and_notebook_arguments(tmp_path, monkeypatch):
    from biohicl.cli.parser import parse_command
    from biohicl.training.args import BioHiCLTrainingArguments

    namespace = run_setup_cell(
        TRAIN, monkeypatch, cuda=False, native_bf16=False, values={"OUTPUT_DIR": str(tmp_path / "nb")}
    )
    calls = fake_training(monkeypatch)
    with pytest.raises(Trained):
        exec(cell_with(TRAIN, "train_biohicl("), namespace)
    argv = ["--config", str(RECIPE), "--output_dir", str(tmp_path / "recipe")]
    (recipe,) = parse_command(BioHiCLTrainingArguments, argv, prog="biohicl train")
    return namespace, calls[0], recipe


def test_train_section_names_every_setting_the_recipe_trains_otherwise(tmp_path, monkeypatch):
    """Every argument that changes what trains or what is selected (not a path or a memory setting) and that the
    registered recipe sets otherwise than the notebook's defaults is named in the Train section."""
    from biohicl.training.run_settings import RUN_NEUTRAL_ARGS

    _, args, recipe = recipe_and_notebook_arguments(tmp_path, monkeypatch)
    ours, theirs = json.loads(args.to_json_string()), json.loads(recipe.to_json_string())
    differing = {name for name in ours if ours[name] != theirs.get(name)} - RUN_NEUTRAL_ARGS - {"dataset_path"}
    assert {"base_model", "max_length", "num_train_epochs", "learning_rate", "lr_scheduler_type"} <= differing
    assert {"distill_weight", "seed", "warmup_steps", "use_cpu", "eval_steps"} <= differing
    text = " ".join(markdown_with(TRAIN, "**The recipe's other settings").split())
    assert sorted(name for name in differing if f"`{name}`" not in text) == []
    for said in ("`distill_weight` 2.0", "`learning_rate` 1e-4 (here 2e-4)", "constant_with_warmup", "docs/results.md"):
        assert said in text
    assert "`DISTILL_WEIGHT = 2.0` trains with it" in text


def test_distill_weight_is_a_parameter_the_run_trains_with(tmp_path, monkeypatch):
    namespace, args, _ = recipe_and_notebook_arguments(tmp_path, monkeypatch)
    assert namespace["DISTILL_WEIGHT"] == 0.0 and args.distill_weight == 0.0  # the notebook's behaviour so far
    namespace["DISTILL_WEIGHT"] = 2.0  # as an injected-parameters cell sets it
    calls = fake_training(monkeypatch)
    with pytest.raises(Trained):
        exec(cell_with(TRAIN, "train_biohicl("), namespace)
    assert calls[0].distill_weight == 2.0


# ------------------------------------------------------------------------------------------------ 4, 5. notebook 03
def run_evaluate_load_cell(monkeypatch, values: dict) -> dict:
    namespace = run_setup_cell(EVALUATE, monkeypatch, cuda=False, native_bf16=False, values=values)
    exec(cell_with(EVALUATE, "load_model(MODEL)"), namespace)
    return namespace


def test_evaluate_max_length_none_keeps_the_models_own_length(monkeypatch, capsys, tiny_adapter_dir):  # noqa: F811
    """The default re-encodes at the length the model records (the adapter's 32), not 512 capped at 128."""
    namespace = run_evaluate_load_cell(monkeypatch, {"MODEL": str(tiny_adapter_dir), "LIMIT_QUERIES": 5})
    assert namespace["MAX_LENGTH"] is None
    assert namespace["model"].config.max_length == namespace["base"].config.max_length == 32
    assert "capped" not in capsys.readouterr().out


def test_evaluate_max_length_number_still_sets_it(monkeypatch, tiny_adapter_dir):  # noqa: F811
    namespace = run_evaluate_load_cell(monkeypatch, {"MODEL": str(tiny_adapter_dir), "MAX_LENGTH": 64})
    assert namespace["model"].config.max_length == namespace["base"].config.max_length == 64


def test_evaluate_a_model_that_is_its_own_base_scores_it_once(monkeypatch, capsys, tiny_bert_dir):
    """A plain model (no adapter, no base of its own): one line, one encoding, no comparison with itself."""
    import biohicl.evaluation.runner as runner

    namespace = run_evaluate_load_cell(monkeypatch, {"MODEL": str(tiny_bert_dir), "TASKS": ["biosses"]})
    printed = capsys.readouterr().out
    assert namespace["base"] is None
    assert f"{tiny_bert_dir} is its own base: it is scored once, with no base to compare it with\n" in printed
    scored = []
    monkeypatch.setattr(runner, "evaluate_model", lambda encoder, tasks, **kw: scored.append(kw["model_id"]) or {})
    monkeypatch.setattr(runner, "save_results", lambda record, path: None)
    namespace["tasks"] = ["biosses"]
    exec(cell_with(EVALUATE, "evaluate_model("), namespace)
    assert scored == [str(tiny_bert_dir)] and list(namespace["records"]) == ["model"]


def test_evaluate_a_plain_hub_model_at_a_revision_is_its_own_base(tmp_path, monkeypatch, capsys, tiny_bert_dir):
    """``MODEL = "owner/name@<sha>"``, the form the parameters cell's comment gives: the model records its base as
    ``owner/name`` (no revision), which is still the model itself, so it is scored once."""
    from huggingface_hub import constants
    from test_loader import add_to_hub_cache

    import biohicl.evaluation.runner as runner

    sha = "a" * 40
    cache = tmp_path / "hub"
    add_to_hub_cache(cache, "someone/plain-model", tiny_bert_dir, sha)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    model = f"someone/plain-model@{sha}"
    namespace = run_evaluate_load_cell(monkeypatch, {"MODEL": model, "TASKS": ["biosses"]})
    assert namespace["config"].base_model == "someone/plain-model" and namespace["base"] is None
    assert f"{model} is its own base: it is scored once, with no base to compare it with\n" in capsys.readouterr().out
    scored = []
    monkeypatch.setattr(runner, "evaluate_model", lambda encoder, tasks, **kw: scored.append(kw["model_id"]) or {})
    monkeypatch.setattr(runner, "save_results", lambda record, path: None)
    namespace["tasks"] = ["biosses"]
    exec(cell_with(EVALUATE, "evaluate_model("), namespace)
    assert scored == [model] and list(namespace["records"]) == ["model"]


def test_evaluate_a_model_over_a_base_still_scores_both(monkeypatch, tiny_adapter_dir, tiny_bert_dir):  # noqa: F811
    namespace = run_evaluate_load_cell(monkeypatch, {"MODEL": str(tiny_adapter_dir)})
    assert namespace["base"] is not None and namespace["base"].config.base_model == str(tiny_bert_dir)


# ------------------------------------------------------------------------------------------------ 6. CPU estimate
def test_cpu_estimate_adds_the_evaluations_and_says_gpu_times_are_not_measured():
    text = " ".join(markdown_with(TRAIN, "## Settings").split())
    assert "each dev evaluation took 132–190 s, five of them (steps 0, 15, 30, 45 and 60) about 11–16 minutes" in text
    assert "measured on a loaded machine (2 shared cores at load average 6–10)" in text
    assert "No time was measured here on a Colab T4 or A100" in text


# ------------------------------------------------------------------------------------------------ 7. reset, rerun
def test_after_a_runtime_reset_the_parameters_and_setup_cells_define_the_run_folder(tmp_path, monkeypatch):
    namespace = run_setup_cell(
        TRAIN, monkeypatch, cuda=False, native_bf16=False, values={"OUTPUT_DIR": str(tmp_path / "nb")}
    )
    assert namespace["run_dir"] == tmp_path / "nb" / "run" and namespace["out"] == tmp_path / "nb"


def test_after_a_runtime_reset_the_evaluation_needs_the_data_cell_again(tmp_path, monkeypatch, data_dir):
    """Colab after "Restart session": the disk (./biohicl-data, the run) is kept, BIOHICL_DATA_DIR the data cell set is
    gone. The parameters and setup cells alone leave the evaluation no task; the data cell run again fetches nothing
    and sets it, and the evaluation scores its tasks."""
    import IPython.display

    import biohicl.evaluation.report as report
    import biohicl.evaluation.runner as runner
    from biohicl.errors import DataError
    from biohicl.models.model import BioHiCL

    data = tmp_path / "biohicl-data"  # what the data cell fetched before the reset
    (data / "pubmedqa").mkdir(parents=True)
    (data / "biosses").mkdir()
    for rel in ("pubmedqa/ori_pqal.json", "pubmedqa/test_ground_truth.json"):
        (data / rel).write_text("{}", encoding="utf-8")
    (data / "biosses" / "biosses.tsv").write_bytes((data_dir / "biosses" / "biosses.tsv").read_bytes())
    fetched = fake_downloads(tmp_path, monkeypatch)  # on Colab, BIOHICL_DATA_DIR unset
    monkeypatch.setattr("biohicl.settings.__file__", str(tmp_path / "src" / "biohicl" / "settings.py"))
    values = {"OUTPUT_DIR": str(tmp_path / "nb"), "EVAL_TASKS": ["biosses", "pubmedqa"], "DEV_TASKS": []}
    namespace = run_setup_cell(TRAIN, monkeypatch, cuda=False, native_bf16=False, values=values)
    evaluation = cell_with(TRAIN, "model_ids = {")
    with pytest.raises(DataError) as raised:
        exec(evaluation, namespace)
    assert "no task has its data" in str(raised.value)

    scored = []
    encoder = type("Encoder", (), {"config": type("Config", (), {"max_length": 128})(), "to": lambda self, d: self})()
    monkeypatch.setattr(BioHiCL, "from_base", lambda *a, **k: encoder)
    monkeypatch.setattr(BioHiCL, "from_pretrained", lambda *a, **k: encoder)
    monkeypatch.setattr(runner, "evaluate_model", lambda enc, tasks, **kw: scored.append(tasks) or {})
    monkeypatch.setattr(runner, "save_results", lambda record, path: None)
    monkeypatch.setattr(report, "markdown_report", lambda *a, **k: "")
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: None)
    exec(cell_with(TRAIN, "DATA_FILES = {"), namespace)  # the data cell again
    assert fetched == [] and Path(namespace["data_root"]) == data.resolve()
    exec(evaluation, namespace)
    assert scored == [["biosses", "pubmedqa"], ["biosses", "pubmedqa"]]  # the base, then the kept model
    text = " ".join(markdown_with(TRAIN, "## Evaluate against the base").split())
    assert (
        "After a runtime reset, run the parameters, setup and data cells again before this one (the data cell sets "
        "`BIOHICL_DATA_DIR` again and fetches nothing already there)" in text
    )


def test_running_the_parameters_cell_again_keeps_the_setup_cells_dtype(tmp_path, monkeypatch, capsys):
    """On a T4 the setup cell trains in float16; running only the parameters cell again (after changing a setting)
    leaves it so: the run does not switch to emulated bfloat16."""
    namespace = run_setup_cell(
        TRAIN, monkeypatch, cuda=True, native_bf16=False, values={"OUTPUT_DIR": str(tmp_path / "nb")}
    )
    import torch

    nb = load(TRAIN)
    exec(nb.cells[parameter_cells(nb)[0]].source, namespace)  # the parameters cell again
    namespace["OUTPUT_DIR"] = str(tmp_path / "nb")
    assert (namespace["DTYPE"], namespace["dtype"]) == ("bfloat16", "float16")
    # the arguments built here on the CPU (transformers would set a CUDA device for the faked T4)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    calls = fake_training(monkeypatch)
    with pytest.raises(Trained):
        exec(cell_with(TRAIN, "train_biohicl("), namespace)
    assert (calls[0].fp16, calls[0].bf16) == (True, False)


# ------------------------------------------------------------------------------------------------ 8. charts, lines
def test_kept_step_line_names_the_metric_it_selected_on(tmp_path, monkeypatch, capsys):
    from biohicl.training.selection import selection_record, selection_summary

    history = [{"step": 0, "eval_dev_score": 0.2263}, {"step": 1, "eval_dev_score": 0.2263}]
    history.append({"step": 2, "eval_dev_score": 0.2281})
    summary = selection_summary(selection_record(history, "eval_dev_score", True, True))
    namespace = run_setup_cell(
        TRAIN, monkeypatch, cuda=False, native_bf16=False, values={"OUTPUT_DIR": str(tmp_path / "nb")}
    )
    fake_training(monkeypatch, summary)
    exec(cell_with(TRAIN, "train_biohicl("), namespace)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "model selection on dev data: kept step 2, eval_dev_score (siml-agreement_spearman) 0.2281 (step 0: 0.2263; "
        "evaluated at "
        "steps 0, 1, 2)"
    )


def test_loss_chart_leaves_gaps_where_a_term_was_not_logged_and_names_the_terms(tmp_path, monkeypatch):
    """After a runtime reset (parameters and setup run again, not training) the chart reads the saved run; L_con,
    logged at steps 2, 3, 7 and 8 of 8, is not drawn through steps 4-6."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace = run_setup_cell(
        TRAIN, monkeypatch, cuda=False, native_bf16=False, values={"OUTPUT_DIR": str(tmp_path / "nb")}
    )
    con = {2: 0.93, 3: 0.38, 7: 1.35, 8: 0.2}
    log = [
        {"step": s, "loss": 0.1, "loss_mse": 0.09, **({"loss_con": con[s]} if s in con else {})} for s in range(1, 9)
    ]
    run_dir = namespace["run_dir"]  # the setup cell's
    assert run_dir == tmp_path / "nb" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "trainer_state.json").write_text(json.dumps({"log_history": log}), encoding="utf-8")
    source = cell_with(TRAIN, "read_log_history(run_dir)").replace("%matplotlib inline", "")
    try:
        exec(source, namespace)
        lines = {line.get_label(): line for line in namespace["ax"].get_lines()}
        assert list(lines) == ["total L", "L_mse (filtered regression)", "L_con"]
        steps, values = lines["L_con"].get_data()
        assert list(steps) == list(range(1, 9))
        assert [None if math.isnan(v) else v for v in values] == [None, 0.93, 0.38, None, None, None, 1.35, 0.2]
        assert lines["L_con"].get_marker() == "o"  # a value between two gaps still shows
    finally:
        plt.close("all")


def test_evaluate_chart_title_says_which_tasks_the_query_cap_cut(tmp_path, monkeypatch):
    import IPython.display

    import biohicl.evaluation.plots as plots
    import biohicl.evaluation.report as report

    def record(model: str) -> dict:
        return {
            "model": model,
            "settings": {"limit_queries": 5},
            "tasks": {
                "biosses": {"split": "all", "num_queries": 100, "metrics": {"spearman": 0.8}},
                "pubmedqa": {"split": "test", "num_queries": 5, "metrics": {"recall@1": 0.8}},
            },
        }

    titles = []
    monkeypatch.setattr(plots, "plot_results", lambda records, output, labels, title: titles.append(title) or output)
    monkeypatch.setattr(report, "markdown_report", lambda *a, **k: "")
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: None)
    monkeypatch.setattr(IPython.display, "Image", lambda filename: None)
    base = type("Base", (), {"config": type("Config", (), {"base_model": "tiny"})()})()
    namespace = {"records": {"base": record("tiny"), "model": record("m")}, "base": base, "MODEL": "m"}
    namespace.update(LIMIT_QUERIES=5, out=tmp_path)
    exec(cell_with(EVALUATE, "plot_results("), namespace)
    assert titles == ["base vs. model (pubmedqa: first 5 queries only)"]  # BIOSSES ignores the cap


def test_a_run_without_dev_tasks_warns_in_the_notebooks_terms(tmp_path, monkeypatch):
    """DEV_TASKS = []: the run's keep-last-step warning names the notebook's parameter, not biohicl train's options
    (--eval_tasks ..., --config configs/biohicl_minilm.yaml); with DEV_TASKS the run selects and says nothing."""
    for tasks, expected in (([], "DEV_TASKS is empty"), (["pubmedqa:dev"], None)):
        values = {"OUTPUT_DIR": str(tmp_path / str(len(tasks))), "DEV_TASKS": tasks}
        namespace = run_setup_cell(TRAIN, monkeypatch, cuda=False, native_bf16=False, values=values)
        calls = fake_training(monkeypatch)
        with pytest.raises(Trained):
            exec(cell_with(TRAIN, "train_biohicl("), namespace)
        notice = fake_training.notices[0](calls[0])
        if expected is None:
            assert notice is None
        else:
            assert notice.startswith(expected) and "--" not in notice
            assert notice.endswith('set DEV_TASKS in the parameters cell (e.g. ["pubmedqa:dev"])')

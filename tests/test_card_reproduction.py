"""A published model can be retrained from what it ships: its card lists every training argument that changes what
trains (those outside ``RUN_NEUTRAL_ARGS``: the named rows always, any other where it is not at its default), names
the dataset's sha256 and the code's digest, and the repo holds ``biohicl_training_args.json`` and
``training_summary.json`` (local paths reduced to their names), from which ``biohicl train --config`` retrains the
same weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import build_tiny_bert, synthetic_documents
from test_card_loss_rows import DEFAULT_LOSS
from test_hub import RecordingHfApi

from biohicl.cli import publish as publish_cmd
from biohicl.hub.card_hyperparameters import HYPERPARAMETERS, trained_hyperparameters
from biohicl.hub.model_card import BioHiCLModelCardData, render_model_card
from biohicl.hub.publish import build_model_repo_folder
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.run_settings import RUN_NEUTRAL_ARGS

DATASET_SHA = "fb174bd00fe83a9217fd1e709174c0a99739a010230fb3067381155ef3579357"
#: settings the reviewer's run changed that the card left out (batch_negatives is the study's `neg_lowest` lever)
CHANGED = {
    "batch_negatives": True,
    "drop_check_tags": True,
    "max_partners": 3,
    "data_seed": 11,
    "train_splits": ["train", "dev"],
    "max_train_documents": 100,
    "weight_decay": 0.01,
    "max_grad_norm": 0.5,
    "gradient_accumulation_steps": 2,
    "optim": "adamw_torch",
}


def saved_arguments(output_dir: Path, **values) -> dict:
    """``biohicl_training_args.json`` as a run records it: every argument, as JSON."""
    args = BioHiCLTrainingArguments(output_dir=str(output_dir), dataset_path=str(output_dir.parent / "ds"), **values)
    return json.loads(args.to_json_string())


def write_run(run: Path, args: dict, summary: dict) -> Path:
    run.mkdir(parents=True)
    config = {"base_model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean", "max_length": 256}
    for name, values in (("biohicl_config", config), ("biohicl_training_args", args), ("training_summary", summary)):
        (run / f"{name}.json").write_text(json.dumps(values), encoding="utf-8")
    return run


def test_every_setting_that_changes_training_has_a_row_and_a_neutral_one_none(tmp_path):
    args = saved_arguments(tmp_path / "run", **CHANGED, logging_steps=7, dataloader_num_workers=2)
    rows = trained_hyperparameters(args, None, None)
    assert {key: rows.get(key) for key in CHANGED} == CHANGED
    # what does not change training (where it writes, how it logs, how batches load) has no row, nor a path
    assert not {"output_dir", "logging_steps", "dataloader_num_workers", "dataset_path"} & set(rows)
    # the optimizer is always named; another argument at its default is not (biohicl_training_args.json has it)
    defaults = saved_arguments(tmp_path / "default-run")
    plain = trained_hyperparameters(defaults, None, None)
    assert {k: plain[k] for k in ("optim", "weight_decay", "max_grad_norm", "gradient_accumulation_steps")} == {
        k: defaults[k] for k in ("optim", "weight_decay", "max_grad_norm", "gradient_accumulation_steps")
    }
    assert not {"batch_negatives", "drop_check_tags", "max_partners", "data_seed", "adam_beta1"} & set(plain)


def test_any_argument_outside_the_neutral_ones_off_its_default_has_a_row(tmp_path):
    """The rows come from RUN_NEUTRAL_ARGS, not a second list: every other argument that differs from its default
    gets a row, except what the card states elsewhere (the base, its encoding, the dataset)."""
    from biohicl.hub.card_hyperparameters import STATED_ELSEWHERE

    defaults = saved_arguments(tmp_path / "run")
    changed = {"adam_beta2": 0.98, "label_smoothing_factor": 0.1, "neftune_noise_alpha": 5.0, "title_weight": 0.2}
    changed |= {"accelerator_config": {**defaults["accelerator_config"], "even_batches": False}}
    rows = trained_hyperparameters({**defaults, **changed}, None, None)
    assert {key: rows.get(key) for key in changed} == changed
    trains = set(defaults) - RUN_NEUTRAL_ARGS - STATED_ELSEWHERE
    assert set(rows) <= trains  # no row for a neutral argument or one stated elsewhere
    assert set(HYPERPARAMETERS) - set(defaults) == {"world_size", "documents_per_optimizer_step"}  # training_summary's


def test_a_local_path_in_a_row_is_reduced_to_its_name(tmp_path):
    args = saved_arguments(tmp_path / "run", mesh_path=str(tmp_path / "mesh" / "tree.tsv"))
    assert trained_hyperparameters(args, None, None)["mesh_path"] == "tree.tsv"


def test_the_card_shows_the_rows_the_digests_and_how_to_retrain(tmp_path):
    args = saved_arguments(tmp_path / "run", **CHANGED)
    summary = {"global_step": 4, "dataset_sha256": DATASET_SHA, "biohicl_source": ["59077db0f84d"]}
    text = render_model_card(BioHiCLModelCardData.from_run_dir(write_run(tmp_path / "run", args, summary), "M"))
    assert "| `batch_negatives` | True |" in text and "| `weight_decay` | 0.01 |" in text
    assert "| `train_splits` | ['train', 'dev'] |" in text and "| `optim` | adamw_torch |" in text
    assert f"`{DATASET_SHA}`" in text and "`59077db0f84d`" in text
    command = "biohicl train --config biohicl_training_args.json --dataset_path ds --output_dir retrained"
    assert command in text
    assert str(tmp_path) not in text
    # a run folder without its arguments (a soup, an old run): no command to give
    (tmp_path / "run" / "biohicl_training_args.json").unlink()
    assert "biohicl train --config" not in render_model_card(BioHiCLModelCardData.from_run_dir(tmp_path / "run", "M"))


LORA = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["value", "query"]}


@pytest.mark.parametrize(
    ("loss", "adapter", "said"),
    [
        (DEFAULT_LOSS, LORA, None),  # what the arguments build: the command retrains it
        ({**DEFAULT_LOSS, "lambda_con": 0.5}, LORA, "a loss whose lambda_con is 0.5"),  # train_biohicl(loss=...)
        ({"class": "FilteredMSELoss", "pair_filter": "all", "beta": 0.3}, LORA, "the loss FilteredMSELoss"),
        ({**DEFAULT_LOSS, "extra_terms": {"margin": {"class": "M", "weight": 0.5}}}, LORA, "extra loss terms (margin)"),
        (DEFAULT_LOSS, {**LORA, "use_dora": True}, "a DoRA adapter"),  # train_biohicl(peft_config=...)
        (DEFAULT_LOSS, {**LORA, "r": 4}, "a LoRA adapter whose r is 4"),
        (DEFAULT_LOSS, {**LORA, "target_modules": ["dense"]}, "a LoRA adapter on ['dense']"),
    ],
)
def test_the_card_gives_the_command_only_for_a_run_its_arguments_build(tmp_path, loss, adapter, said):
    args = saved_arguments(tmp_path / "run", lora_target_modules=["query", "value"])
    run = write_run(tmp_path / "run", args, {"global_step": 4, "loss": loss})
    (run / "adapter_config.json").write_text(json.dumps(adapter), encoding="utf-8")
    text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "M"))
    assert ("biohicl train --config biohicl_training_args.json --dataset_path" in text) is (said is None)
    if said:
        assert f"This run trained {said}, given in Python" in text and "would train another\nmodel" in text


# ------------------------------------------------------------------ a real run, published and retrained
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny `biohicl train` run with batch_negatives (and its documents file, base and folder)."""
    from biohicl.cli import train

    root = tmp_path_factory.mktemp("retrain")
    base = build_tiny_bert(root / "tiny-base")
    docs = root / "documents.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    run = root / "run"
    argv = ["--output_dir", str(run), "--base_model", str(base), "--base_model_hub_id", "org/tiny-bert"]
    argv += ["--dataset_path", str(docs), "--max_steps", "3", "--per_device_train_batch_size", "8"]
    argv += ["--max_length", "32", "--learning_rate", "0.01", "--lora_r", "4", "--lora_target_modules", "query"]
    argv += ["--negative", "lowest:2", "--batch_negatives", "--weight_decay", "0.01", "--report_to", "none"]
    argv += ["--use_cpu", "--seed", "5", "--save_strategy", "no", "--disable_tqdm", "--logging_steps", "1"]
    assert train.main(argv) == 0
    return run, base, docs


def test_publish_uploads_the_training_arguments_and_summary_without_local_paths(trained, tmp_path):
    run, _, _ = trained
    api = RecordingHfApi()
    assert publish_cmd.main([str(run), "--repo_id", "me/tiny", "--out", str(tmp_path / "repo")], api=api) == 0
    uploaded = {name: api.uploaded.get(name) for name in ("biohicl_training_args.json", "training_summary.json")}
    assert None not in uploaded.values()
    args = json.loads(uploaded["biohicl_training_args.json"])
    summary = json.loads(uploaded["training_summary.json"])
    assert (args["batch_negatives"], args["negative"], args["weight_decay"], args["seed"]) == (
        True,
        "lowest:2",
        0.01,
        5,
    )
    assert (args["output_dir"], args["dataset_path"], args["base_model"]) == ("run", "documents.jsonl", "tiny-base")
    assert args["base_model_hub_id"] == "org/tiny-bert" and args["hub_token"] == "<HUB_TOKEN>"
    recorded = json.loads((run / "training_summary.json").read_text())
    assert summary["dataset_sha256"] == recorded["dataset_sha256"] is not None
    assert summary["biohicl_source"] == recorded["biohicl_source"]
    machine = str(run.parent.parent).encode()
    assert [name for name, data in api.uploaded.items() if machine in data] == []
    card = api.uploaded["README.md"].decode()
    assert "| `batch_negatives` | True |" in card and f"`{recorded['dataset_sha256']}`" in card
    assert "--base_model org/tiny-bert" in card  # trained from a local copy of its base


def test_the_cards_command_retrains_the_same_weights_from_the_repo_folder(trained, tmp_path, monkeypatch):
    from biohicl.cli import train

    run, base, docs = trained
    repo = build_model_repo_folder(run, tmp_path / "downloaded", repo_id="me/tiny")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(docs, elsewhere / "mine.jsonl")
    monkeypatch.chdir(elsewhere)
    # the card's command, with the dataset and the local copy of the base given as the card says
    argv = ["--config", str(repo / "biohicl_training_args.json"), "--dataset_path", "mine.jsonl"]
    assert train.main([*argv, "--output_dir", "retrained", "--base_model", str(base)]) == 0
    again = elsewhere / "retrained"
    assert (again / "adapter_model.safetensors").read_bytes() == (run / "adapter_model.safetensors").read_bytes()
    summary = json.loads((again / "training_summary.json").read_text())
    assert summary["dataset_sha256"] == json.loads((repo / "training_summary.json").read_text())["dataset_sha256"]


# ------------------------------------------------------------------ what the uploaded arguments and the command hold
def test_the_uploaded_arguments_leave_out_the_checkpoint_and_the_free_text_names(tmp_path):
    """A resumed run's `resume_from_checkpoint` (`checkpoint-2` once shortened) made `--config` refuse the card's
    command; `run_name` and `hub_model_id` are words the trainer wrote (`alice on host-7 x`), not settings; an older
    run's `logging_dir` (transformers 4's `runs/<date>_<hostname>`) names the training machine."""
    from biohicl.hub.run_sources import copy_without_machine_paths, run_records

    values = {"resume_from_checkpoint": str(tmp_path / "run" / "checkpoint-2"), "run_name": "alice on host-7 x"}
    older = {"hub_model_id": "alice/private-x", "logging_dir": "runs/May01_12-00-00_host-7"}  # an older run's
    args = saved_arguments(tmp_path / "run", **values, seed=5) | older
    run = write_run(tmp_path / "run", args, {"global_step": 4, "run_name": "kept"})
    out = tmp_path / "repo"
    out.mkdir()
    for name, src in run_records(run).items():
        copy_without_machine_paths(src, out / name)
    uploaded = json.loads((out / "biohicl_training_args.json").read_text())
    cleared = ("resume_from_checkpoint", "run_name", "hub_model_id", "logging_dir")
    assert [uploaded[key] for key in cleared] == [None, None, None, None]
    assert (uploaded["seed"], uploaded["dataset_path"]) == (5, "ds")
    assert json.loads((out / "training_summary.json").read_text())["run_name"] == "kept"  # another record: as it is
    assert json.loads((run / "biohicl_training_args.json").read_text())["run_name"] == "alice on host-7 x"


def test_no_row_for_a_log_folder_a_masked_token_or_a_field_this_release_does_not_know(tmp_path):
    args = saved_arguments(tmp_path / "run", seed=5)
    old = {"logging_dir": "runs/x/logs", "push_to_hub_token": "<PUSH_TO_HUB_TOKEN>"}
    old |= {"save_safetensors": False, "evaluation_strategy": "steps"}
    rows = trained_hyperparameters({**args, **old}, None, None)
    assert not set(old) & set(rows)
    assert rows["seed"] == 5


def test_the_command_names_each_shortened_path_it_needs(tmp_path):
    """`mesh_path`, a task's local files, `deepspeed`, `fsdp_config` are published by name only: the command gives
    each, as it gives the dataset."""
    tasks = ["biosses", f"siml-agreement@{tmp_path}/pairs#mesh={tmp_path}/t.txt:dev"]
    args = saved_arguments(tmp_path / "run", mesh_path=str(tmp_path / "mesh" / "tree.tsv"), eval_tasks=tasks)
    args["deepspeed"] = str(tmp_path / "ds_config.json")  # (deepspeed is not installed here to check it)
    run = write_run(tmp_path / "run", args, {"global_step": 4})
    text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "M"))
    command = "biohicl train --config biohicl_training_args.json --dataset_path ds --output_dir retrained"
    command += (
        " --mesh_path tree.tsv --deepspeed ds_config.json --eval_tasks biosses 'siml-agreement@pairs#mesh=t.txt:dev'"
    )
    assert command in text
    assert "`--mesh_path` for `tree.tsv`" in text and "`--deepspeed` for `ds_config.json`" in text
    assert str(tmp_path) not in text
    # a run without such paths: the command as before
    plain = write_run(tmp_path / "plain", saved_arguments(tmp_path / "plain"), {"global_step": 4})
    text = render_model_card(BioHiCLModelCardData.from_run_dir(plain, "M"))
    assert "--output_dir retrained\n" in text and "--mesh_path" not in text


def test_the_retrain_installs_the_commit_that_trained_it_and_names_its_transformers(tmp_path):
    from biohicl.provenance import REPOSITORY_URL

    commit = "0123456789abcdef0123456789abcdef01234567"
    summary = {"global_step": 4, "source_git": {"commit": commit, "dirty": False}}
    summary["versions"] = {"transformers": "4.99.1", "torch": "2.9.0"}
    run = write_run(tmp_path / "run", saved_arguments(tmp_path / "run"), summary)
    text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "M"))
    assert (
        f'(`pip install "biohicl @ git+{REPOSITORY_URL}@{commit}"`: the commit that trained it, which pip can fetch '
        f'once it is pushed there, else `pip install "biohicl @ git+{REPOSITORY_URL}"`, and transformers'
    ) in text  # a commit of a checkout never pushed would not install: the repository's install is named beside it
    assert "and transformers 4.99.1, which it trained with)" in text
    # a dirty checkout, or none recorded: the repository's install, no commit claimed
    summary["source_git"] = {"commit": commit, "dirty": True}
    run = write_run(tmp_path / "dirty", saved_arguments(tmp_path / "dirty"), summary)
    text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "M"))
    assert f"@{commit}" not in text and f'(`pip install "biohicl @ git+{REPOSITORY_URL}"`, and transformers' in text


def test_the_retrain_pins_one_code_only(tmp_path):
    """An older summary's `source_git` names the code that last trained the run: a run resumed under other code (two
    `biohicl_source` digests) was not trained by that commit alone, so the card claims no commit for it."""
    from biohicl.provenance import REPOSITORY_URL

    commit = "0123456789abcdef0123456789abcdef01234567"
    for name, sources, pinned in (("one", ["59077db0f84d"], True), ("word", "59077db0f84d", True),
                                  ("resumed", ["59077db0f84d", "a1b2c3d4e5f6"], False),
                                  ("unknown", ["unknown", "59077db0f84d"], False)):  # fmt: skip
        summary = {"global_step": 4, "source_git": {"commit": commit, "dirty": False}, "biohicl_source": sources}
        run = write_run(tmp_path / name, saved_arguments(tmp_path / name), summary)
        text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "M"))
        assert (f"@{commit}" in text) is pinned, name
        assert f'To train it again, with biohicl installed (`pip install "biohicl @ git+{REPOSITORY_URL}' in text


def card_command(text: str) -> list[str]:
    """The card's `biohicl train` command, split as a shell splits it."""
    import shlex

    line = next(line for line in text.splitlines() if line.startswith("biohicl train --config"))
    return shlex.split(line)


def test_the_command_pins_the_base_commit_and_quotes_its_values(tmp_path):
    """A run given `--base_model org/x` and no `--base_revision` loaded the commit `biohicl_config.json` records; the
    arguments' null would load what main holds then. A dataset named with a space is one word of the command."""
    from biohicl.cli.train import parse_args

    sha = "a" * 40
    for name, revision, given in (("none", None, True), ("branch", "main", True), ("same", sha, False)):
        dataset = str(tmp_path / name / "pairs v2")
        args = saved_arguments(tmp_path / name, base_model="org/tiny-bert", base_revision=revision)
        run = write_run(tmp_path / name, args | {"dataset_path": dataset}, {"global_step": 4})
        config = {"base_model": "org/tiny-bert", "base_revision": sha, "pooling": "mean", "max_length": 256}
        (run / "biohicl_config.json").write_text(json.dumps(config), encoding="utf-8")
        text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "M"))
        command = card_command(text)
        assert command[command.index("--dataset_path") + 1] == "pairs v2" and "--base_model" not in command
        assert ("--base_revision" in command) is given, name
        assert ("`--base_revision` pins the base to the commit it trained from" in text) is given
        # biohicl train takes the command as the card gives it, from a folder holding the uploaded arguments
        parsed = parse_args(["--config", str(run / "biohicl_training_args.json"), *command[4:]])
        assert (parsed.dataset_path, parsed.base_model, parsed.base_revision) == ("pairs v2", "org/tiny-bert", sha)

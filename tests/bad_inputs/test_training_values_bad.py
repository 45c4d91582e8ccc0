"""``biohicl train``'s numeric settings, its own and the ones it inherits from ``TrainingArguments``: a value that
would fail (or train garbage) only after the data and the model loaded is a one-line refusal naming the field,
before anything is read."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from biohicl.training.args import BioHiCLTrainingArguments


def train_argv(tiny_bert_dir: Path, dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--dataset_path", str(dataset), "--output_dir", str(out), "--base_model", str(tiny_bert_dir),
            "--max_steps", "1", "--per_device_train_batch_size", "4", "--max_length", "16", "--report_to", "none",
            "--use_cpu", "--disable_tqdm", "true", "--save_strategy", "no", *extra]  # fmt: skip


def _float_fields() -> list[str]:
    hints = typing.get_type_hints(BioHiCLTrainingArguments)
    return [f.name for f in dataclasses.fields(BioHiCLTrainingArguments) if f.init and "float" in str(hints[f.name])]


FLOAT_FIELDS = _float_fields()


def test_the_float_fields_are_the_ones_the_losses_and_the_optimizer_read():
    # the reviewer's list and the inherited ones: a field added later is checked by the same loop
    assert {"lambda_con", "temperature", "title_temperature", "distill_weight", "title_weight", "beta",
            "lora_dropout", "selection_guard_tolerance", "learning_rate", "warmup_steps", "adam_epsilon",
            "max_grad_norm"} <= set(FLOAT_FIELDS)  # fmt: skip


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("field", FLOAT_FIELDS)
def test_a_non_finite_float_is_refused_naming_the_field(tiny_bert_dir, tmp_path, run_cli, field, value):
    # the dataset does not exist: a refusal naming the field came before the data (and so the model) was read
    out = tmp_path / "run"  # --field=-inf: a separate -inf would read as an option
    result = run_cli(train_argv(tiny_bert_dir, tmp_path / "nope.jsonl", out, f"--{field}={value}"))
    assert result.err.strip() == f"biohicl train: error: {field}: must be a finite number, got {float(value)}"
    assert not out.exists()


def test_a_non_finite_loss_weight_is_refused_from_python_too(tmp_path):
    from biohicl.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^lambda_con: must be a finite number, got nan$"):
        BioHiCLTrainingArguments(output_dir=str(tmp_path / "r"), lambda_con=float("nan"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--gradient_accumulation_steps", "0"], "gradient_accumulation_steps: must be a whole number of at least 1, "
         "got 0"),
        (["--per_device_eval_batch_size", "0"], "per_device_eval_batch_size: must be a whole number of at least 1, "
         "got 0"),
        (["--learning_rate", "-1"], "learning_rate: must be non-negative, got -1.0"),
        (["--num_train_epochs", "0", "--max_steps", "-1"], "num_train_epochs: must be positive when max_steps is -1 "
         "(training by epochs), got 0.0"),
        (["--num_train_epochs", "-2", "--max_steps", "-1"], "num_train_epochs: must be positive when max_steps is -1 "
         "(training by epochs), got -2.0"),
        (["--warmup_steps", "-0.5"], "warmup_steps: must be non-negative (steps, or a fraction of all steps if < 1), "
         "got -0.5"),
        (["--adam_beta1", "1.5"], "adam_beta1: must be in [0, 1), got 1.5"),
        (["--adam_beta2=-0.1"], "adam_beta2: must be in [0, 1), got -0.1"),
        (["--adam_epsilon", "-1"], "adam_epsilon: must be non-negative, got -1.0"),
        (["--dataloader_num_workers", "-1"], "dataloader_num_workers: must be non-negative (0: load in the main "
         "process), got -1"),
        (["--dataloader_num_workers", "2", "--dataloader_prefetch_factor", "0"], "dataloader_prefetch_factor: must be "
         "a whole number of at least 1, got 0"),
        (["--logging_steps", "-1"], "logging_steps: must be positive, got -1.0"),
        (["--save_strategy", "steps", "--save_steps", "-1"], "save_steps: must be positive, got -1.0"),
        (["--eval_strategy", "steps", "--eval_steps", "-1"], "eval_steps: must be positive, got -1.0"),
        (["--neftune_noise_alpha", "5"], "neftune_noise_alpha: NEFTune adds noise to a generative language model's "
         "input embeddings, which biohicl train does not support; leave it unset"),
        (["--enable_jit_checkpoint"], "enable_jit_checkpoint: a SIGTERM then ends the run as if it finished (its "
         "model saved, exit 0) and its checkpoint does not resume bit-exact; leave it unset and save checkpoints "
         "with --save_strategy steps --save_steps N, then --resume_from_checkpoint last"),
    ],
)  # fmt: skip
def test_an_inherited_setting_that_would_fail_after_loading_is_refused_first(tiny_bert_dir, tmp_path, run_cli, options,
                                                                              message):  # fmt: skip
    # before: gradient_accumulation_steps 0 a ZeroDivisionError, learning_rate -1, the adam values and num_workers -1
    # an optimizer's or DataLoader's ValueError traceback, neftune an AttributeError (no get_input_embeddings), all
    # after the model loaded; num_train_epochs 0 trained 0 steps and "saved the trained model"; logging_steps -1
    # logged once
    out = tmp_path / "run"
    result = run_cli(train_argv(tiny_bert_dir, tmp_path / "nope.jsonl", out, *options))
    assert result.err.strip() == f"biohicl train: error: {message}"
    assert not out.exists()


def test_inherited_settings_at_their_limits_are_accepted(tmp_path):
    args = BioHiCLTrainingArguments(
        output_dir=str(tmp_path / "r"), learning_rate=0.0, warmup_steps=0, adam_beta1=0.0, adam_epsilon=0.0,
        gradient_accumulation_steps=1, per_device_eval_batch_size=1, dataloader_num_workers=0, num_train_epochs=0,
        max_steps=5, logging_steps=0.5,
    )  # fmt: skip
    assert (args.learning_rate, args.num_train_epochs, args.max_steps, args.logging_steps) == (0.0, 0, 5, 0.5)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("r.yaml", "resume_from_checkpoint: true\n", "true"),
        ("r.yaml", "resume_from_checkpoint: yes\n", "true"),
        ("r.yaml", "resume_from_checkpoint: false\n", "false"),
        ("r.json", '{"resume_from_checkpoint": true}', "true"),
        ("r.json", '{"resume_from_checkpoint": false}', "false"),
        ("r.yaml", "resume_from_checkpoint: last\n", "last"),
    ],
)
def test_resume_from_checkpoint_takes_a_config_file_boolean_as_its_word(tmp_path, name, text, expected):
    # --help and docs/training.md: `last` (also true, yes); a file's `true` was refused as YAML's reading of a word
    from biohicl.cli.parser import parse_command
    from biohicl.training.checkpoint import resolve_resume

    config = tmp_path / name
    config.write_text(text)
    argv = ["--config", str(config), "--output_dir", str(tmp_path / "r")]
    (args,) = parse_command(BioHiCLTrainingArguments, argv, prog="biohicl train")
    assert args.resume_from_checkpoint == expected  # the word the command line gives
    assert resolve_resume(args.resume_from_checkpoint, tmp_path / "r") is None  # no checkpoint yet: a fresh start


def test_a_json_boolean_for_a_text_option_is_refused_without_speaking_of_yaml(tmp_path, run_cli):
    config = tmp_path / "c.json"
    config.write_text(f'{{"save_strategy": false, "output_dir": "{tmp_path / "r"}"}}')
    result = run_cli(["train", "--config", str(config)])
    assert result.err.strip() == (
        f"biohicl train: error: {config}: save_strategy: false is a JSON boolean, not text; quote the word for a text "
        'option ("save_strategy": "no")'
    )


def test_help_says_what_biohicl_does_with_metric_for_best_model_and_title_weight(run_cli):
    result = run_cli(["train", "--help"], expect_error=False)
    assert result.code == 0
    text = " ".join(result.out.split("\noptions:", 1)[1].split())  # the option list (not usage), unwrapped
    # transformers' inherited help said "Defaults to 'loss'", which biohicl refuses (no evaluation metric)
    assert "Defaults to 'loss'" not in text
    metric = re.split(r" --[\w-]+ \[?[A-Z]", text.split("--metric-for-best-model METRIC_FOR_BEST_MODEL ", 1)[1])[0]
    assert "required with --load_best_model_at_end" in metric and "dev_score" in metric
    assert "the training loss is not one" in metric
    title = text.split("--title-weight TITLE_WEIGHT ", 1)[1].split("(default: 0.0)", 1)[0]
    assert "its own document (title + abstract)" not in title  # data/collator.py pairs each title with its abstract
    assert "must pick its own abstract (embedded alone, as a document) among the batch's titled documents'" in title


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("lambda_con: -1\n", [], "{config}: lambda_con: must be non-negative, got -1.0"),
        ("lambda_con: .nan\n", [], "{config}: lambda_con: must be a finite number, got nan"),
        ("gradient_accumulation_steps: 0\n", [], "{config}: gradient_accumulation_steps: must be a whole number of at "
         "least 1, got 0"),
        ("logging_steps: 2.5\n", [], "{config}: logging_steps: --logging_steps must be an integer if bigger than 1: "
         "2.5"),  # transformers' own check, made one line naming the field
        # the command line's value is not the file's: the file is not named
        ("lambda_con: 0.2\n", ["--lambda_con=-1"], "lambda_con: must be non-negative, got -1.0"),
        ("lambda_con: 0.2\n", ["--temperature", "0"], "temperature: must be positive, got 0.0"),
    ],
)  # fmt: skip
def test_a_bad_value_from_a_config_file_names_the_file(tmp_path, run_cli, text, extra, message):
    # type errors named the file, value errors (checked once the arguments are built) did not
    config = tmp_path / "bad2.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    result = run_cli(["train", "--config", str(config), "--output_dir", str(out), *extra])
    assert result.err.strip() == "biohicl train: error: " + message.format(config=config)
    assert not out.exists()

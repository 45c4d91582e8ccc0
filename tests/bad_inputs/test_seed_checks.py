"""One seed rule per use (:func:`biohicl.training.arg_checks.check_seed`): training's seeds go to ``set_seed``, whose
numpy takes ``[0, 2**32)``; the dataset build's (``build-dataset --seed/--dev_seed``, a study's ``dataset.seed``) go
to ``numpy.random.default_rng`` and a hash, which take any whole number from 0. And the LoRA values ``biohicl train``
refuses are not checked under ``--full_finetune``, which builds no LoRA."""

from __future__ import annotations

import json

import pytest

from biohicl.errors import ConfigError
from biohicl.training.arg_checks import SEED_LIMIT, check_seed


@pytest.mark.parametrize(
    ("value", "upper", "message"),
    [
        (-1, SEED_LIMIT, "seed: must be in [0, 2**32), got -1"),
        (2**32, SEED_LIMIT, "seed: must be in [0, 2**32), got 4294967296"),
        (1000, 1000, "seed: must be in [0, 1000), got 1000"),
        (-1, None, "seed: must be >= 0, got -1"),
    ],
)
def test_a_seed_outside_its_rule_is_refused_naming_it(value, upper, message):
    with pytest.raises(ConfigError) as caught:
        check_seed(value, "seed", upper)
    assert str(caught.value) == message


@pytest.mark.parametrize(("value", "upper"), [(0, SEED_LIMIT), (2**32 - 1, SEED_LIMIT), (0, None), (2**64, None)])
def test_a_seed_inside_its_rule_is_taken(value, upper):
    check_seed(value, "seed", upper)  # no error


def test_build_dataset_takes_any_seed_from_0_as_the_mining_does(tmp_path, run_cli):
    import numpy as np

    np.random.default_rng(2**32).permutation(3)  # what the mining does with it: numpy takes it
    out = tmp_path / "out"
    result = run_cli(["build-dataset", "--source", "bioasq", "--input", str(tmp_path / "nope.json"), "--output",
                      str(out), "--no_progress", "--seed", str(2**32)])  # fmt: skip
    assert "nope.json" in result.err and "seed" not in result.err  # past the seed check, refused for the input
    result = run_cli(["build-dataset", "--source", "bioasq", "--input", str(tmp_path / "nope.json"), "--output",
                      str(out), "--no_progress", "--dev_seed", "-1"])  # fmt: skip
    assert result.err.strip() == "biohicl build-dataset: error: --dev_seed: must be >= 0, got -1"
    assert not out.exists()


def test_lora_values_are_not_checked_under_full_finetune(tmp_path):
    from biohicl.training.args import BioHiCLTrainingArguments

    bad_lora = {"lora_r": 0, "lora_alpha": 0, "lora_dropout": 1.0}
    args = BioHiCLTrainingArguments(output_dir=str(tmp_path / "run"), full_finetune=True, **bad_lora)
    assert (args.full_finetune, args.lora_r, args.lora_alpha, args.lora_dropout) == (True, 0, 0, 1.0)
    with pytest.raises(ConfigError, match=r"^lora_r: the adapter's rank must be at least 1, got 0$"):
        BioHiCLTrainingArguments(output_dir=str(tmp_path / "run"), **bad_lora)
    with pytest.raises(ConfigError, match=r"^seed: must be in \[0, 2\*\*32\), got -1$"):  # other values still are
        BioHiCLTrainingArguments(output_dir=str(tmp_path / "run"), full_finetune=True, seed=-1, **bad_lora)


def test_biohicl_train_full_finetune_with_lora_r_0_trains_every_weight(tiny_bert_dir, tmp_path, run_cli):
    docs = tmp_path / "docs.jsonl"
    labels = [["D003920"], ["D003920"], ["D009203"], ["D009203"]]
    rows = [{"pmid": str(i), "title": f"t{i}", "abstract": "the cells of patients", "mesh": mesh}
            for i, mesh in enumerate(labels)]  # fmt: skip
    docs.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--dataset_path", str(docs), "--output_dir", str(out), "--base_model", str(tiny_bert_dir),
            "--base_model_hub_id", "test/tiny-bert", "--max_steps", "1", "--per_device_train_batch_size", "4",
            "--max_length", "16", "--report_to", "none", "--use_cpu", "--disable_tqdm", "true", "--save_strategy",
            "no", "--full_finetune", "--lora_r", "0"]  # fmt: skip
    result = run_cli(argv, expect_error=False)
    assert result.code == 0, result.err
    saved = json.loads((out / "biohicl_training_args.json").read_text(encoding="utf-8"))
    assert (saved["full_finetune"], saved["lora_r"]) == (True, 0)
    assert not list(out.rglob("adapter_config.json"))  # no LoRA was built

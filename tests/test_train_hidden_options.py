"""``biohicl train`` refuses ``--enable_jit_checkpoint`` and ``--neftune_noise_alpha``
(:mod:`biohicl.training.arg_checks`), inherited from ``TrainingArguments``: ``--help`` no longer offers them, and
passing one is still the one-line refusal."""

from __future__ import annotations

import pytest

from biohicl.cli.main import main


def test_train_help_does_not_offer_the_refused_option(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "--output_dir" in text and "--save_strategy" in text  # the help is there
    assert "jit_checkpoint" not in text and "neftune" not in text


def test_passing_the_hidden_option_is_still_refused_in_one_line(tiny_bert_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset_path", str(tmp_path / "nope.jsonl"), "--output_dir", str(out), "--base_model"]
    argv += [str(tiny_bert_dir), "--max_steps", "1", "--report_to", "none", "--use_cpu", "--enable_jit_checkpoint"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "biohicl train: error: enable_jit_checkpoint: a SIGTERM then ends the run as if it finished (its model saved, "
        "exit 0) and its checkpoint does not resume bit-exact; leave it unset and save checkpoints with "
        "--save_strategy steps --save_steps N, then --resume_from_checkpoint last"
    )
    assert not out.exists()


def test_passing_neftune_is_still_refused_in_one_line(tiny_bert_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset_path", str(tmp_path / "nope.jsonl"), "--output_dir", str(out), "--base_model"]
    argv += [str(tiny_bert_dir), "--max_steps", "1", "--report_to", "none", "--use_cpu", "--neftune_noise_alpha", "5"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "biohicl train: error: neftune_noise_alpha: NEFTune adds noise to a generative language model's input "
        "embeddings, which biohicl train does not support; leave it unset"
    )
    assert not out.exists()

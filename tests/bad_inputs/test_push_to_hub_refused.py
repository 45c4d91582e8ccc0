"""``biohicl train`` never pushes to the Hub itself: transformers' push (``Trainer._push_from_checkpoint``) pickled
the arguments, the hub token in clear text, into ``training_args.bin`` and uploaded it with the checkpoints' pickles
(``optimizer.pt``, ``rng_state.pth``, ``scheduler.pt``), no card, no token scan, and not the kept step. So
``push_to_hub`` and the options only a push reads are refused in one line naming the field, before anything is read,
pointing to ``biohicl publish`` (the one publishing seam); ``hub_token`` alone is accepted, unused and never
written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from biohicl.errors import ConfigError
from biohicl.training.args import BioHiCLTrainingArguments

FAKE_TOKEN = "hf_" + "Q" * 34


def push_refusal(field: str, run_dir: Path | str = "RUN_DIR", repo_id: str = "OWNER/NAME") -> str:
    return (
        f"{field}: biohicl train does not push to the Hub (transformers' push uploads the checkpoints' pickles and "
        f"the arguments with the token, without a card); train, then run `biohicl publish {run_dir} --repo_id "
        f"{repo_id}`, which publishes the kept step with its card"
    )


def train_argv(tiny_bert_dir: Path, dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--dataset_path", str(dataset), "--output_dir", str(out), "--base_model", str(tiny_bert_dir),
            "--max_steps", "1", "--per_device_train_batch_size", "4", "--max_length", "16", "--report_to", "none",
            "--use_cpu", "--disable_tqdm", "true", *extra]  # fmt: skip


def test_push_to_hub_is_refused_in_one_line_before_anything_is_read(tiny_bert_dir, tmp_path, run_cli):
    # the reviewer's command: the dataset does not exist, so the refusal came before the data (and the model)
    out = tmp_path / "run"
    extra = ["--push_to_hub", "--hub_model_id", "me/x", "--hub_token", FAKE_TOKEN, "--hub_strategy", "checkpoint"]
    result = run_cli(train_argv(tiny_bert_dir, tmp_path / "nope.jsonl", out, *extra))
    assert result.err.strip() == "biohicl train: error: " + push_refusal("push_to_hub", out, "me/x")
    assert FAKE_TOKEN not in result.out + result.err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "field", "repo_id"),
    [
        (["--hub_model_id", "me/x"], "hub_model_id", "me/x"),
        (["--hub_model_id", "x"], "hub_model_id", "OWNER/NAME"),  # not an owner/name publish takes
        (["--hub_strategy", "checkpoint"], "hub_strategy", "OWNER/NAME"),
        (["--hub_strategy", "end"], "hub_strategy", "OWNER/NAME"),
        (["--hub_always_push"], "hub_always_push", "OWNER/NAME"),
        (["--hub_revision", "main"], "hub_revision", "OWNER/NAME"),
    ],
)
def test_an_option_only_a_push_reads_is_refused_alone(tiny_bert_dir, tmp_path, run_cli, options, field, repo_id):
    # without push_to_hub transformers ignores it: the user asked for a push that would silently not happen
    out = tmp_path / "run"
    result = run_cli(train_argv(tiny_bert_dir, tmp_path / "nope.jsonl", out, *options))
    assert result.err.strip() == "biohicl train: error: " + push_refusal(field, out, repo_id)
    assert not out.exists()


def test_a_config_file_asking_for_a_push_is_refused_naming_the_file(tmp_path, run_cli):
    config = tmp_path / "train.yaml"
    out = tmp_path / "run"
    config.write_text(f"output_dir: {out}\npush_to_hub: true\nhub_model_id: me/x\nhub_token: {FAKE_TOKEN}\n")
    result = run_cli(["train", "--config", str(config)])
    assert result.err.strip() == f"biohicl train: error: {config}: " + push_refusal("push_to_hub", out, "me/x")
    assert FAKE_TOKEN not in result.out + result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.yaml"]


def test_the_python_arguments_refuse_a_push_and_keep_a_token_alone(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(ConfigError) as caught:
        BioHiCLTrainingArguments(output_dir=str(out), push_to_hub=True, hub_token=FAKE_TOKEN)
    assert str(caught.value) == push_refusal("push_to_hub", out)
    # a token alone is accepted (HF_TOKEN's role), read by nothing and written nowhere (tests/test_security.py)
    args = BioHiCLTrainingArguments(output_dir=str(out), hub_token=FAKE_TOKEN)
    assert args.hub_token == FAKE_TOKEN and args.push_to_hub is False
    assert json.loads(args.to_json_string())["hub_token"] == "<HUB_TOKEN>"


@pytest.mark.parametrize("scope", ["training", "variants.full"])
def test_a_study_asking_for_a_push_is_refused_when_its_config_is_read(tmp_path, scope):
    from biohicl.study.config import ReproduceConfig

    values = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "reproduce_tiny.yaml").read_text())
    values = {**values, "output_dir": str(tmp_path / "study")}
    if scope == "training":
        values["training"] = {**values["training"], "push_to_hub": True}
    else:
        values["variants"] = {"full": {"push_to_hub": True}}
    with pytest.raises(ConfigError) as caught:
        ReproduceConfig.from_dict(values, source="study.yaml")
    assert str(caught.value) == f"study.yaml: {scope}: " + push_refusal("push_to_hub")


class RecordingHubApi:
    """What transformers' ``hf_api()`` gives, recording each call instead of reaching the Hub."""

    def __init__(self):
        self.calls: list[str] = []

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append(name)
            raise AssertionError(f"the trainer called the Hub: {name}")

        return record


def test_the_trainer_built_directly_never_pushes(tiny_bert_dir, tmp_path, monkeypatch):
    import transformers.trainer

    from biohicl.models.model import BioHiCL
    from biohicl.training.trainer import BioHiCLTrainer

    api = RecordingHubApi()
    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: api)
    out = tmp_path / "o"
    args = BioHiCLTrainingArguments(output_dir=str(out), base_model=str(tiny_bert_dir), max_length=16, use_cpu=True,
                                    report_to="none", lora_target_modules=["query"], hub_token=FAKE_TOKEN)  # fmt: skip
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=16)
    args.set_push_to_hub("me/x", strategy="checkpoint")  # after the arguments' checks: transformers' own setter
    with pytest.raises(ConfigError) as caught:
        BioHiCLTrainer(model=model, args=args)
    assert str(caught.value) == push_refusal("push_to_hub", out, "me/x")
    args.push_to_hub = False
    trainer = BioHiCLTrainer(model=model, args=args)
    args.push_to_hub = True  # set once the trainer is built: each push is refused still
    for push in (trainer.push_to_hub, trainer.init_hf_repo, lambda: trainer._push_from_checkpoint(str(out))):
        with pytest.raises(ConfigError) as caught:
            push()
        assert str(caught.value) == push_refusal("push_to_hub", out, "me/x")
    assert api.calls == []
    assert not (out / "training_args.bin").exists()


def test_hub_private_repo_alone_is_accepted_for_trackio(tmp_path):
    # transformers' TrackioCallback passes args.hub_private_repo to trackio.init: the training log's Space is public
    # unless it is set, so it is not an option only a push reads
    from biohicl.training.arg_checks import check_hub_values

    class Args:
        push_to_hub = False
        hub_private_repo = True
        output_dir = str(tmp_path / "run")

    check_hub_values(Args())

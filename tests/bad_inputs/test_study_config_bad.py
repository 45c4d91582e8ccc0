"""A study config's seeds and training values: each seed must be one training can take (``set_seed`` seeds numpy:
0 to 2**32 - 1; the mining's ``dataset.seed`` any from 0, as build-dataset's ``--seed``), and each value a run trains
with one ``biohicl train`` takes; refused when the config is read, so ``biohicl reproduce --dry_run`` refuses it too,
not the run that would train on it, naming the scope that set it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from biohicl.errors import ConfigError
from biohicl.study.config import ReproduceConfig

TINY = Path(__file__).resolve().parents[2] / "configs" / "reproduce_tiny.yaml"


def tiny_config(tmp_path: Path, **changes) -> dict:
    values = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    return {**values, "output_dir": str(tmp_path / "study"), **changes}


def test_dry_run_refuses_a_negative_seed(tmp_path, run_cli):
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path, seeds=[0, -1])), encoding="utf-8")
    result = run_cli(["reproduce", "--config", str(config), "--dry_run"])
    assert result.err.strip() == (f"biohicl reproduce: error: {config}: seeds: must be in [0, 2**32), got -1")
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seeds": [2**32]}, "seeds: must be in [0, 2**32), got 4294967296"),
        ({"seeds_per_variant": {"full": [-3]}}, "seeds_per_variant.full: must be in [0, 2**32), got -3"),
        (
            {"models": [{"name": "minilm", "model": "sentence-transformers/all-MiniLM-L6-v2", "seeds": [1, -1]}]},
            "models[minilm].seeds: must be in [0, 2**32), got -1",
        ),
        ({"dataset": {"seed": -1}}, "dataset.seed: must be >= 0, got -1"),  # the mining's: build-dataset refuses it
    ],
)
def test_every_place_a_seed_is_given_is_checked(tmp_path, changes, message):
    with pytest.raises(ConfigError) as caught:
        ReproduceConfig.from_dict(tiny_config(tmp_path, **changes), source="study.yaml")
    assert str(caught.value) == f"study.yaml: {message}"


def test_the_mining_seed_has_build_datasets_rule_not_trainings(tmp_path):
    # default_rng takes any seed from 0: build-dataset --seed 4294967296 builds, so the study's dataset.seed may too
    config = ReproduceConfig.from_dict(tiny_config(tmp_path, dataset={"seed": 2**32}), source="study.yaml")
    assert config.dataset.seed == 4294967296


def test_the_largest_seed_is_accepted_and_seeds_from_the_command_line_are_checked(tmp_path):
    config = ReproduceConfig.from_dict(tiny_config(tmp_path, seeds=[0, 2**32 - 1]), source="study.yaml")
    assert config.seeds == [0, 4294967295]
    with pytest.raises(ConfigError, match=r"^--seeds: must be in \[0, 2\*\*32\), got -2$"):
        config.select(seeds=[-2])


#: Values ``biohicl train`` refuses before loading, and its one-line reason for each.
BAD_TRAINING_VALUES = [
    (
        "lora_alpha",
        0,
        "lora_alpha: 0 scales the adapter's update to nothing; give a nonzero value (e.g. twice the rank)",
    ),
    ("max_steps", 0, "max_steps: give a positive number, or -1 to train num_train_epochs; got 0"),
    ("data_seed", -1, "data_seed: must be in [0, 2**32), got -1"),
    ("lora_dropout", 1, "lora_dropout: must be in [0, 1), got 1"),
    ("lr_scheduler_kwargs", "[1, 2]", "lr_scheduler_kwargs: expected a JSON object of keyword arguments, got '[1, 2]'"),
    (
        "report_to",
        "tensorbord",
        "report_to: 'tensorbord' is not an integration transformers reports to (did you mean tensorboard?); one of ",
    ),
]
MINILM = {"name": "minilm", "model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean", "max_length": 64}


def in_scope(tmp_path: Path, scope: str, name: str, value) -> dict:
    """The tiny study with ``name: value`` set in ``scope``: the study's training, variant full, or minilm's."""
    values = tiny_config(tmp_path)
    if scope == "training":
        return {**values, "training": {**values["training"], name: value}}
    if scope == "variants.full":
        return {**values, "variants": {"full": {name: value}, "no_mse": {"use_mse": False}}}
    return {**values, "models": [{**MINILM, "training": {name: value}}]}


@pytest.mark.parametrize("scope", ["training", "variants.full", "models[minilm].training"])
@pytest.mark.parametrize(("name", "value", "reason"), BAD_TRAINING_VALUES)
def test_a_training_value_biohicl_train_refuses_is_refused_when_the_config_is_read(
    tmp_path, scope, name, value, reason
):
    with pytest.raises(ConfigError) as caught:
        ReproduceConfig.from_dict(in_scope(tmp_path, scope, name, value), source="study.yaml")
    assert str(caught.value).startswith(f"study.yaml: {scope}: {reason}")


@pytest.mark.parametrize("scope", ["training", "variants.full", "models[minilm].training"])
def test_dry_run_refuses_a_bad_training_value_and_builds_nothing(tmp_path, run_cli, scope):
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(in_scope(tmp_path, scope, "lora_alpha", 0)), encoding="utf-8")
    result = run_cli(["reproduce", "--config", str(config), "--dry_run"])
    assert result.err.strip() == (
        f"biohicl reproduce: error: {config}: {scope}: lora_alpha: 0 scales the adapter's update to nothing; give a "
        "nonzero value (e.g. twice the rank)"
    )
    assert not (tmp_path / "study").exists()


def test_a_variant_overriding_a_bad_value_and_a_full_finetune_are_not_refused(tmp_path):
    # the value a run trains with is checked: the variant's lora_alpha wins over the study's 0, and full_finetune
    # builds no LoRA, so its LoRA values are never used
    values = tiny_config(tmp_path, variants={"full": {"lora_alpha": 16}, "full_finetune": {"full_finetune": True}})
    config = ReproduceConfig.from_dict({**values, "training": {**values["training"], "lora_alpha": 0}})
    assert config.training["lora_alpha"] == 0 and config.variants["full"]["lora_alpha"] == 16
    with pytest.raises(ConfigError, match=r"^config: training: lora_r: the adapter's rank must be at least 1, got 0$"):
        ReproduceConfig.from_dict({**values, "training": {**values["training"], "lora_r": 0}})
    only_full_finetune = {**values, "variants": {"full_finetune": {"full_finetune": True}}}
    training = {**values["training"], "lora_r": 0, "lora_alpha": 0, "lora_dropout": 1.0}
    config = ReproduceConfig.from_dict({**only_full_finetune, "training": training})
    assert (config.training["lora_r"], config.training["lora_alpha"]) == (0, 0)


def test_a_gpu_study_config_reads_on_a_cpu(tmp_path):
    # transformers refuses bf16 where no GPU supports it, when the arguments are built: the config's check does not
    # build them, so a GPU study's config is read (reported, dry-run) on any machine
    values = tiny_config(tmp_path)
    config = ReproduceConfig.from_dict({**values, "training": {**values["training"], "bf16": True}})
    assert config.training["bf16"] is True


def test_a_variant_no_run_trains_is_checked_too(tmp_path):
    # as an unknown key in it is: the file is wrong whether or not this study trains the variant
    values = tiny_config(tmp_path, variants={"full": {}, "bad": {"lora_alpha": 0}}, seeds_per_variant={"bad": []})
    with pytest.raises(ConfigError, match=r"^config: variants\.bad: lora_alpha: 0 scales"):
        ReproduceConfig.from_dict(values)


PLAIN = "(letters, digits, '.', '_' and '-', not starting with '.')"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("base", "'base' is reserved for the untrained base"),  # its seeds' folder would be the base's own
        ("../x", f"'../x' is not a plain folder name {PLAIN}"),  # outside output_dir
        (".", f"'.' is not a plain folder name {PLAIN}"),  # <model>/./seed0 is <model>/seed0
        ("a/b", f"'a/b' is not a plain folder name {PLAIN}"),  # nested
        ("x,y", f"'x,y' is not a plain folder name {PLAIN}"),  # --only x,y selects x and y
        ("no mse", f"'no mse' is not a plain folder name {PLAIN}"),  # study_from_logs reads a word
        ("", f"'' is not a plain folder name {PLAIN}"),
    ],
)
@pytest.mark.parametrize("field", ["variants", "models"])
def test_a_variant_or_model_name_that_is_not_its_own_plain_folder_is_refused(tmp_path, field, name, message):
    if field == "variants":
        values = tiny_config(tmp_path, variants={"full": {}, name: {"use_mse": False}})
    else:
        values = tiny_config(tmp_path)
        values["models"] = [{**values["models"][0], "name": name}]
    with pytest.raises(ConfigError) as caught:
        ReproduceConfig.from_dict(values, source="study.yaml")
    assert str(caught.value) == f"study.yaml: {field}: {message}"


def test_plain_names_with_dots_dashes_and_underscores_are_kept(tmp_path):
    variants = {"full": {}, "one_pass_distill1.5": {}, "no-mse": {"use_mse": False}}
    config = ReproduceConfig.from_dict(tiny_config(tmp_path, variants=variants), source="study.yaml")
    assert list(config.variants) == ["full", "one_pass_distill1.5", "no-mse"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tasks": ["biosses", "pubmedqa:deV"]}, "tasks: pubmedqa:deV: pubmedqa has no split 'deV'"),
        ({"tasks": ["biosses:dev"]}, "tasks: biosses:dev: biosses has no split 'dev'"),
        (
            {"tasks": ["biosses"], "tasks_per_variant": {"full": ["pubmedqa-context:Test"]}},
            "tasks_per_variant.full: pubmedqa-context:Test: pubmedqa-context has no split 'Test'",
        ),
    ],
)
def test_a_split_a_built_in_task_has_not_is_refused_when_the_config_is_read(tmp_path, changes, message):
    with pytest.raises(ConfigError) as caught:
        ReproduceConfig.from_dict(tiny_config(tmp_path, **changes), source="study.yaml")
    assert str(caught.value).startswith(f"study.yaml: {message} (its splits: ")


def test_dry_run_refuses_a_mistyped_split_naming_the_task_and_encodes_nothing(tmp_path, run_cli):
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path, tasks=["pubmedqa:deV"])), encoding="utf-8")
    result = run_cli(["reproduce", "--config", str(config), "--dry_run"])
    assert result.err.strip() == (
        f"biohicl reproduce: error: {config}: tasks: pubmedqa:deV: pubmedqa has no split 'deV' "
        "(its splits: test, train, dev, all)"
    )
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("pubmedqa:deV", "pubmedqa has no split 'deV' (its splits: test, train, dev, all)"),
        ("biosses:dev", "biosses has no split 'dev' (its splits: all)"),
    ],
)
def test_evaluate_refuses_a_split_the_task_has_not_in_one_line(run_cli, spec, message):
    result = run_cli(["evaluate", "sentence-transformers/all-MiniLM-L6-v2", "--tasks", spec])
    assert result.err.strip() == f"biohicl evaluate: error: tasks: {spec}: {message}"


def test_the_task_check_itself_refuses_the_split(monkeypatch):
    """What ``--dry_run``'s pre-flight and ``biohicl evaluate`` call: the split before the files."""
    from biohicl.evaluation.tasks import check_task

    monkeypatch.setenv("BIOHICL_DATA_DIR", "/nonexistent")  # the split is refused before any file is looked for
    with pytest.raises(ConfigError, match=r"^tasks: pubmedqa-context:deV: pubmedqa-context has no split 'deV'"):
        check_task("pubmedqa-context", "deV")

"""The committed configs stay valid, and the registered recipe is the study run it claims to be."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from biohicl.cli import train
from biohicl.hub.manifest import ReleaseManifest
from biohicl.models.registry import get_entry
from biohicl.study import ReproduceConfig
from biohicl.study.config import training_arguments

ROOT = Path(__file__).resolve().parents[1]
STUDY_CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml") if p.name != "biohicl_minilm.yaml")


@pytest.mark.parametrize("path", STUDY_CONFIGS, ids=lambda p: p.name)
def test_every_committed_study_config_loads(path):
    config = ReproduceConfig.from_yaml(path)
    assert config.models and config.variants


@pytest.mark.parametrize("path", STUDY_CONFIGS, ids=lambda p: p.name)
def test_every_variant_of_every_committed_study_config_makes_valid_training_arguments(path, tmp_path):
    """Each run a config plans gets arguments that pass their checks (bf16 off: this machine may have no GPU)."""
    config = ReproduceConfig.from_yaml(path)
    config.training.pop("bf16", None)
    for model in config.models:
        model.training.pop("bf16", None)
        for variant in config.model_variants(model):
            seed = config.run_seeds(model, variant)[0]
            args = training_arguments(config, model, variant, seed, tmp_path / "dataset", tmp_path / variant)
            assert args.seed == seed and args.output_dir == str(tmp_path / variant)


def test_biohicl_minilm_config_is_the_registered_study_run(tmp_path):
    """configs/biohicl_minilm.yaml (one `biohicl train`) = one_pass_distill2 seed 5 of the 256-token study."""
    out = str(tmp_path / "run")
    single = train.parse_args(["--config", str(ROOT / "configs/biohicl_minilm.yaml"), "--output_dir", out])
    study = ReproduceConfig.from_yaml(ROOT / "configs/study_minilm_cpu_guarded_256.yaml")
    model = study.models[0]
    from_study = training_arguments(study, model, "one_pass_distill2", 5, Path(single.dataset_path), Path(out))
    # the study resumes its runs, records the base's hub id and shares step 0's evaluation; none changes what is trained
    ignored = {"resume_from_checkpoint", "base_model_hub_id", "eval_cache_dir"}
    differences = {
        f.name: (getattr(single, f.name), getattr(from_study, f.name))
        for f in fields(single)
        if f.init and f.name not in ignored and getattr(single, f.name) != getattr(from_study, f.name)
    }
    assert differences == {}
    assert (single.distill_weight, single.max_length, single.seed) == (2.0, 256, 5)


def test_registry_minilm_entry_and_its_manifest_agree():
    manifest = ReleaseManifest.load(ROOT / "hub/models/biohicl-minilm.yaml")
    entry = get_entry(manifest.registry_name)
    assert entry.repo_id == manifest.repo_id
    # the manifest names the study run of the config above; its records are committed, not left in runs/
    assert manifest.source.endswith("one_pass_distill2/seed5")
    for record in (manifest.eval_results, manifest.base_eval_results):
        assert (ROOT / record).is_file(), record
    assert entry.max_length == 256


def test_the_training_argument_defaults_are_the_documented_recipe(tmp_path):
    """docs/training.md's recipe: LoRA r 8, alpha 16, dropout 0.1; λ 0.1, β 0.3, τ 0.05, zero_or_positive pairs."""
    import inspect

    from biohicl.models.model import BioHiCL
    from biohicl.training.args import BioHiCLTrainingArguments

    args = BioHiCLTrainingArguments(output_dir=str(tmp_path))
    recipe = {name: getattr(args, name) for name in (
        "lora_r", "lora_alpha", "lora_dropout", "lambda_con", "beta", "temperature", "pair_filter")}  # fmt: skip
    assert recipe == {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "lambda_con": 0.1, "beta": 0.3,
                      "temperature": 0.05, "pair_filter": "zero_or_positive"}  # fmt: skip
    add_lora = {k: p.default for k, p in inspect.signature(BioHiCL.add_lora).parameters.items() if k != "self"}
    assert (add_lora["r"], add_lora["alpha"], add_lora["dropout"]) == (8, 16, 0.1)  # the same as the trainer's


def test_every_config_file_the_docs_and_help_name_exists():
    """A command pasted from the docs or ``--help`` finds its config: ``configs/run.yaml`` once named none."""
    import re

    texts = [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "biohicl" / "cli").glob("*.py")),
    ]
    named = {
        (text.name, match)
        for text in texts
        for match in re.findall(r"(?<![\w/.-])configs/[\w.-]+\.(?:yaml|json)", text.read_text(encoding="utf-8"))
    }
    assert named, "no config named anywhere: the pattern is wrong"
    assert sorted((name, path) for name, path in named if not (ROOT / path).is_file()) == []


def test_a_configs_path_not_in_the_working_folder_reads_the_copy_that_ships_with_biohicl(tmp_path, monkeypatch, caplog):
    """``biohicl train --config configs/biohicl_minilm.yaml``, as ``--help``, the docs and the registry's messages
    name it, works from any folder: from a pip install (the wheel's ``biohicl/configs/``) or outside a clone's root
    (the repository's ``configs/``); one INFO line names the file read."""
    import logging

    out = str(tmp_path / "run")
    expected = train.parse_args(["--config", str(ROOT / "configs/biohicl_minilm.yaml"), "--output_dir", out])
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="biohicl"):
        shipped = train.parse_args(["--config", "configs/biohicl_minilm.yaml", "--output_dir", out])
    assert shipped.to_dict() == expected.to_dict()
    assert (shipped.distill_weight, shipped.max_length, shipped.dataset_path) == (2.0, 256, "runs/study/dataset")
    assert [r.getMessage() for r in caplog.records if "biohicl_minilm.yaml" in r.getMessage()] == [
        f"configs/biohicl_minilm.yaml is not in {tmp_path}: reading the copy that ships with biohicl, "
        f"{ROOT / 'configs' / 'biohicl_minilm.yaml'}"
    ]
    study = ReproduceConfig.from_yaml("configs/reproduce_minilm.yaml")  # `biohicl reproduce --config` reads it alike
    assert study.to_dict() == ReproduceConfig.from_yaml(ROOT / "configs/reproduce_minilm.yaml").to_dict()


def test_the_shipped_configs_are_the_wheels_copy_else_the_ones_beside_the_package(tmp_path):
    from biohicl.config_values import shipped_config

    installed = tmp_path / "site-packages" / "biohicl"
    (installed / "configs").mkdir(parents=True)
    (installed / "configs" / "a.yaml").write_text("seed: 1\n", encoding="utf-8")
    assert shipped_config(Path("configs/a.yaml"), installed) == installed / "configs" / "a.yaml"
    assert shipped_config(Path("./configs/a.yaml"), installed) == installed / "configs" / "a.yaml"
    checkout = tmp_path / "clone" / "biohicl"
    checkout.mkdir(parents=True)
    (checkout.parent / "configs").mkdir()
    (checkout.parent / "configs" / "b.yaml").write_text("seed: 2\n", encoding="utf-8")
    assert shipped_config(Path("configs/b.yaml"), checkout) == checkout.parent / "configs" / "b.yaml"
    # only a relative path under configs/ naming a file that is there; never one that climbs out
    for path in ("configs/nope.yaml", "a.yaml", "other/configs/a.yaml", str(tmp_path / "configs/a.yaml"),
                 "configs/../configs/a.yaml", "configs"):  # fmt: skip
        assert shipped_config(Path(path), installed) is None, path


def test_a_users_own_configs_folder_wins_over_the_shipped_copy(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "biohicl_minilm.yaml").write_text("seed: 11\nmax_length: 64\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args = train.parse_args(["--config", "configs/biohicl_minilm.yaml", "--output_dir", str(tmp_path / "run")])
    assert (args.seed, args.max_length, args.distill_weight) == (11, 64, 0.0)


def test_a_missing_configs_file_is_still_one_line(tmp_path, monkeypatch):
    from biohicl.config_values import read_config
    from biohicl.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as missing:
        read_config("configs/nope.yaml")
    assert str(missing.value) == "configs/nope.yaml: config file not found"


def test_the_command_says_on_the_console_which_shipped_config_it_read(tmp_path, monkeypatch, capsys):
    """``biohicl train --config configs/...`` from a folder without one prints the line naming the copy it read (its
    logger is one of the console's), before the dry run's plan."""
    from biohicl.cli.main import main

    monkeypatch.chdir(tmp_path)
    argv = ["train", "--config", "configs/biohicl_minilm.yaml", "--output_dir", "run", "--dry_run"]
    main([*argv, "--dataset_path", str(tmp_path / "none")])
    out = capsys.readouterr()
    assert "configs/biohicl_minilm.yaml is not in" in out.out + out.err
    assert "reading the copy that ships with biohicl" in out.out

"""A study config's seeds: each must be one training can take (``set_seed`` seeds numpy: 0 to 2**32 - 1), refused
when the config is read, so ``biohicl reproduce --dry_run`` refuses it too, not the run that would train on it."""

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
    assert result.err.strip() == (
        f"biohicl reproduce: error: {config}: seeds: -1 is not a seed (a whole number from 0 to 4294967295)"
    )
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seeds": [2**32]}, "seeds: 4294967296 is not a seed"),
        ({"seeds_per_variant": {"full": [-3]}}, r"seeds_per_variant\.full: -3 is not a seed"),
        (
            {"models": [{"name": "minilm", "model": "sentence-transformers/all-MiniLM-L6-v2", "seeds": [1, -1]}]},
            r"models\[minilm\]\.seeds: -1 is not a seed",
        ),
        ({"dataset": {"seed": -1}}, r"dataset\.seed: -1 is not a seed"),  # the mining's: build-dataset refuses it
    ],
)
def test_every_place_a_seed_is_given_is_checked(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=rf"^study\.yaml: {message} \(a whole number from 0 to 4294967295\)$"):
        ReproduceConfig.from_dict(tiny_config(tmp_path, **changes), source="study.yaml")


def test_the_largest_seed_is_accepted_and_seeds_from_the_command_line_are_checked(tmp_path):
    config = ReproduceConfig.from_dict(tiny_config(tmp_path, seeds=[0, 2**32 - 1]), source="study.yaml")
    assert config.seeds == [0, 4294967295]
    with pytest.raises(ConfigError, match=r"^--seeds: -2 is not a seed"):
        config.select(seeds=[-2])

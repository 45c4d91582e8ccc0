"""Publishing a run whose saved JSON was crafted (a list for an object, numbers for module names): one line naming
the file and field, never a traceback from the card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import build_tiny_bert

from biohicl.errors import PublishError
from biohicl.hub.publish import build_model_repo_folder
from biohicl.models.model import BioHiCL


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> Path:
    """A tiny LoRA adapter saved as ``biohicl train`` leaves it (no card data, no training records)."""
    root = tmp_path_factory.mktemp("crafted")
    base = build_tiny_bert(root / "base")
    model = BioHiCL.from_base(str(base), hub_id="org/tiny-bert", pooling="mean", max_length=64)
    model.add_lora(r=2, target_modules=["value", "query"], verbose=False)
    model.save_pretrained(root / "run")
    return root / "run"


def crafted(lora_run: Path, tmp_path: Path, name: str, edit) -> Path:
    """A copy of ``lora_run`` with its JSON file ``name`` replaced by ``edit(its value)``."""
    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    path = run / name
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return run


def publish_error(run: Path, tmp_path: Path) -> str:
    with pytest.raises(PublishError) as err:
        build_model_repo_folder(run, tmp_path / "out", repo_id="me/tiny")
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_valid_adapter_config_gives_its_sorted_target_modules_on_the_card(lora_run, tmp_path):
    folder = build_model_repo_folder(lora_run, tmp_path / "out", repo_id="me/tiny")
    assert "['query', 'value']" in (folder / "README.md").read_text()


def test_an_adapter_config_that_is_a_json_list_is_one_line_naming_the_file(lora_run, tmp_path):
    run = crafted(lora_run, tmp_path, "adapter_config.json", lambda config: [config])
    message = publish_error(run, tmp_path)
    assert "adapter_config.json" in message and "expected a JSON object, got list" in message


@pytest.mark.parametrize(
    ("peft_type", "field"),
    [("LORA", "target_modules"), ("IA3", "target_modules"), ("IA3", "feedforward_modules"), ("IA3", "modules_to_save")],
)
def test_module_names_that_are_not_strings_are_one_line_naming_the_file_and_field(lora_run, tmp_path, peft_type, field):
    def edit(config: dict) -> dict:
        return {**config, "peft_type": peft_type, field: [1, "a"]}

    message = publish_error(crafted(lora_run, tmp_path, "adapter_config.json", edit), tmp_path)
    assert message == (
        f"adapter_config.json: field {field} must be a module name or a list of module names, got [1, 'a']"
    )


def test_a_biohicl_config_that_is_a_json_list_is_one_line_naming_the_file(lora_run, tmp_path):
    run = crafted(lora_run, tmp_path, "biohicl_config.json", lambda config: [config])
    message = publish_error(run, tmp_path)
    assert message == f"{run / 'biohicl_config.json'}: expected a JSON object, got list"

"""A study's model and variant names are folders (``<model>/<variant>/seed<k>``, ``<model>_bars.png``): names a
case-insensitive file system (macOS' default, Windows) makes one folder, a name Windows drops the trailing ``.`` of,
and a Windows device name (``con``, ``nul.txt``) are refused in one line when the config is read, so
``--dry_run`` refuses them, not a run that finds another variant's run in its folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from biohicl.cli import main as cli
from biohicl.errors import ConfigError
from biohicl.study.config import ReproduceConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "reproduce_tiny.yaml"
CASE = "are one folder where case is ignored (macOS, Windows); give names that differ in more than case"
DEVICE = "is a Windows device name (con, prn, aux, nul, com1-9, lpt1-9, with any extension)"


def tiny_config(tmp_path: Path, **changes) -> dict:
    values = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    return {**values, "output_dir": str(tmp_path / "study"), **changes}


def with_models(values: dict, *names: str) -> dict:
    return {**values, "models": [{**values["models"][0], "name": name} for name in names]}


def refusal(values: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        ReproduceConfig.from_dict(values, source="study.yaml")
    return str(caught.value)


def test_variants_equal_but_for_case_are_refused_by_the_dry_run(tmp_path, capsys):
    # the reviewer's case: on macOS/Windows tiny/Full and tiny/full are one run folder, and the second variant found
    # the first's run ("trained with other settings than the config gives ... restore the config")
    config = tmp_path / "study.yaml"
    values = tiny_config(tmp_path, variants={"Full": {"lambda_con": 0.1}, "full": {"lambda_con": 0.5}})
    config.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    assert cli.main(["reproduce", "--config", str(config), "--dry_run"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"biohicl reproduce: error: {config}: variants: 'Full' and 'full' {CASE}"
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize(
    ("variants", "pair"),
    [
        ({"full": {}, "no_mse": {}, "No_MSE": {}}, "'no_mse' and 'No_MSE'"),
        ({"Strasse": {}, "STRASSE": {}}, "'Strasse' and 'STRASSE'"),
    ],
)
def test_each_variant_pair_equal_ignoring_case_is_named(tmp_path, variants, pair):
    assert refusal(tiny_config(tmp_path, variants=variants)) == f"study.yaml: variants: {pair} {CASE}"


def test_models_equal_but_for_case_are_refused(tmp_path):
    # <model>_bars.png and the <model>/ folder would be one file and one folder
    values = with_models(tiny_config(tmp_path), "MiniLM", "minilm")
    assert refusal(values) == f"study.yaml: models: 'MiniLM' and 'minilm' {CASE}"


def test_a_model_and_a_variant_may_share_a_name_in_any_case(tmp_path):
    # <model>/ and <model>/<variant>/ are folders of different levels: they never meet
    values = with_models(tiny_config(tmp_path, variants={"full": {}, "Tiny": {}}), "tiny", "full")
    config = ReproduceConfig.from_dict(values, source="study.yaml")
    assert [m.name for m in config.models] == ["tiny", "full"]
    assert list(config.variants) == ["full", "Tiny"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Base", f"'Base' is reserved for the untrained base: it and 'base' {CASE.partition(';')[0]}"),
        ("full.", "'full.' is not a portable folder name: Windows drops its trailing '.'"),
        ("a..", "'a..' is not a portable folder name: Windows drops its trailing '.'"),
        ("con", f"'con' is not a portable folder name: 'con' {DEVICE}"),
        ("NUL", f"'NUL' is not a portable folder name: 'NUL' {DEVICE}"),
        ("Aux", f"'Aux' is not a portable folder name: 'Aux' {DEVICE}"),
        ("prn", f"'prn' is not a portable folder name: 'prn' {DEVICE}"),
        ("com1", f"'com1' is not a portable folder name: 'com1' {DEVICE}"),
        ("LPT9", f"'LPT9' is not a portable folder name: 'LPT9' {DEVICE}"),
        ("nul.txt", f"'nul.txt' is not a portable folder name: 'nul' {DEVICE}"),
        ("con.v1.5", f"'con.v1.5' is not a portable folder name: 'con' {DEVICE}"),
        # a trailing space is not a plain folder name already
        ("full ", "'full ' is not a plain folder name (letters, digits, '.', '_' and '-', not starting with '.')"),
    ],
)
@pytest.mark.parametrize("field", ["variants", "models"])
def test_a_name_windows_cannot_make_its_own_folder_is_refused(tmp_path, field, name, message):
    if field == "variants":
        values = tiny_config(tmp_path, variants={"full": {}, name: {"use_mse": False}})
    else:
        values = with_models(tiny_config(tmp_path), name)
    assert refusal(values) == f"study.yaml: {field}: {message}"


@pytest.mark.parametrize("name", ["com", "com0", "com10", "lpt", "console", "nulls", "auxiliary", "a.con", "x.nul"])
def test_names_near_the_device_names_are_kept(tmp_path, name):
    # only the part before the first '.' being a device name makes the device
    config = ReproduceConfig.from_dict(tiny_config(tmp_path, variants={"full": {}, name: {}}), source="study.yaml")
    assert list(config.variants) == ["full", name]


def test_every_committed_study_config_still_reads():
    # none of the shipped study configs may become refused by the stricter names (biohicl_minilm.yaml is train's)
    paths = sorted(p for p in (ROOT / "configs").glob("*.yaml") if p.name != "biohicl_minilm.yaml")
    names = {p.name: list(ReproduceConfig.from_yaml(p).variants) for p in paths}
    assert len(names) == 13
    assert all(names.values())


@pytest.mark.parametrize("name", ["dataset", "Dataset"])
def test_a_model_named_as_the_studys_dataset_folder_is_refused(tmp_path, name):
    # <output_dir>/<model>/ would be <output_dir>/dataset/, where the study builds its dataset
    values = with_models(tiny_config(tmp_path), name)
    expected = f"study.yaml: models: {name!r} is the folder of the dataset the study builds; name the model otherwise"
    assert refusal(values) == expected


def test_a_variant_may_be_named_dataset(tmp_path):
    # <output_dir>/<model>/dataset/ is a level below the dataset's folder
    config = ReproduceConfig.from_dict(tiny_config(tmp_path, variants={"dataset": {}}), source="study.yaml")
    assert list(config.variants) == ["dataset"]

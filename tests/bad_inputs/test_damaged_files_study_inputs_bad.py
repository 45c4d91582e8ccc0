"""Session 34's bad inputs of publishing and study configs: a run whose weights or JSON files are damaged is refused
before anything is staged (a real publish mirrors the folder, so it would replace a good release with files that do
not load); a study config's unknown corpus source, unknown key in an input, non-positive ``limit`` and repeated seed
are refused when the config is read, naming the file and field, as ``build_dataset_from_files`` refuses an unknown
source and a non-positive limit."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
import yaml
from conftest import TOPICS, save_tiny_adapter_run, tiny_study_values

from biohicl.data.build import build_dataset_from_files
from biohicl.data.pairs import build_pair_dataset
from biohicl.data.records import MeshRecord
from biohicl.errors import ConfigError, PublishError
from biohicl.hub.folder_checks import check_folder
from biohicl.hub.publish import build_model_repo_folder, publish_folder
from biohicl.study.config import ReproduceConfig

DAMAGED_JSON = ["modules.json", "tokenizer.json", "tokenizer_config.json", "sentence_bert_config.json",
                "1_Pooling/config.json"]  # fmt: skip


class RecordingHfApi:
    def __init__(self):
        self.token, self.calls = None, []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append(name)

        return call


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    return save_tiny_adapter_run(tmp_path_factory.mktemp("publish-damaged"))


@pytest.fixture
def run_dir(good_run, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(good_run, tmp_path / "run"))


def truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


def publish_argv(run: Path, out: Path, *extra: str) -> list[str]:
    return ["publish", str(run), "--repo_id", "org/test", "--dry_run", "--out", str(out), "--license", "mit", *extra]


def test_the_intact_run_publishes(run_dir, tmp_path, run_cli):
    result = run_cli(publish_argv(run_dir, tmp_path / "po"), expect_error=False)
    assert result.code == 0, result.err
    assert (tmp_path / "po" / "adapter_model.safetensors").read_bytes() == (
        run_dir / "adapter_model.safetensors"
    ).read_bytes()


def test_truncated_weights_and_modules_json_are_refused_naming_the_file(run_dir, tmp_path, run_cli):
    truncate(run_dir / "adapter_model.safetensors", 200)
    truncate(run_dir / "modules.json", 20)
    out = tmp_path / "po"
    result = run_cli(publish_argv(run_dir, out))
    line = result.err.strip().splitlines()[-1]
    weights = run_dir / "adapter_model.safetensors"
    assert re.fullmatch(
        rf"biohicl publish: error: {re.escape(str(weights))}: not a complete safetensors file: its header says \d+ "
        r"bytes, the file has 200 bytes \(truncated\?\); refusing to publish it",
        line,
    ), line
    assert "would upload" not in result.out
    assert not out.exists()  # nothing staged


@pytest.mark.parametrize("name", DAMAGED_JSON)
def test_each_truncated_json_file_is_refused_naming_it(run_dir, tmp_path, run_cli, name):
    truncate(run_dir / name, 20)
    out = tmp_path / "po"
    result = run_cli(publish_argv(run_dir, out))
    line = result.err.strip().splitlines()[-1]
    assert re.match(rf"biohicl publish: error: {re.escape(str(run_dir / name))}: line \d+: not valid JSON \(", line), (
        line
    )
    assert not out.exists()


def test_an_earlier_good_out_is_kept_when_the_run_is_damaged(run_dir, tmp_path, run_cli):
    out = tmp_path / "po"
    assert run_cli(publish_argv(run_dir, out), expect_error=False).code == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    truncate(run_dir / "tokenizer.json", 20)
    run_cli(publish_argv(run_dir, out, "--overwrite"))
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_weights_cut_after_the_header_are_refused(run_dir, tmp_path):
    weights = run_dir / "adapter_model.safetensors"
    data = weights.read_bytes()
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    truncate(weights, header_end + 100)  # the header parses; its tensors need more bytes than the file holds
    with pytest.raises(PublishError) as err:
        build_model_repo_folder(run_dir, tmp_path / "po", repo_id="org/test", license="mit")
    assert str(err.value) == (
        f"{weights}: not a complete safetensors file: its tensors end at byte {len(data)}, the file has "
        f"{header_end + 100} bytes (truncated?); refusing to publish it"
    )
    assert not (tmp_path / "po").exists()


def test_merge_is_refused_before_the_base_loads(run_dir, tmp_path):
    truncate(run_dir / "tokenizer_config.json", 20)
    with pytest.raises(PublishError, match=r"/run/tokenizer_config\.json: line \d+: not valid JSON"):
        build_model_repo_folder(
            run_dir, tmp_path / "po", repo_id="org/test", merge=True, base_model_path=run_dir.parent / "base"
        )
    assert not (tmp_path / "po").exists()


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "weights.safetensors",
            b"\x05\x00",
            "weights.safetensors: not a complete safetensors file: the file has 2 bytes",
        ),
        ("weights.safetensors", struct.pack("<Q", 4) + b"[1,]", "weights.safetensors: its header is not valid JSON"),
        ("config.json", b'{"a": ', "config.json: line 1: not valid JSON"),
    ],
)
def test_a_hand_built_folder_with_a_damaged_file_is_not_uploaded(tmp_path, name, content, expected):
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "README.md").write_text("# x\n")
    (folder / name).write_bytes(content)
    api = RecordingHfApi()
    with pytest.raises(PublishError, match=expected.replace(".", r"\.").replace("(", r"\(")):
        publish_folder(api, folder, "me/x")
    assert api.calls == []


def test_check_folder_accepts_a_whole_safetensors_file(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    folder = tmp_path / "repo"
    folder.mkdir()
    save_file({"w": np.zeros((3, 2), dtype="float32")}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"a": 1}')
    assert [f.path for f in check_folder(folder)] == ["config.json", "model.safetensors"]


# ---------------------------------------------------------------------------------------------------- study configs


def study_file(tmp_path: Path, **dataset) -> Path:
    values = tiny_study_values(str(tmp_path / "st"), str(tmp_path / "st" / "dataset"), model="org/tiny-bert")
    values["dataset"].update(dataset)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        ReproduceConfig.from_yaml(path)
    return str(err.value)


def test_an_unknown_source_is_refused_when_the_config_is_read(tmp_path, run_cli):
    path = study_file(tmp_path, inputs=[{"source": "pubmedQA", "files": ["pubmedqa/ori_pqal.json"]}])
    expected = f"{path}: dataset.inputs[0].source: unknown 'pubmedQA' (did you mean pubmedqa)"
    assert refusal(path).startswith(expected)
    for flag in ("--dry_run", "--dataset_only"):
        result = run_cli(["reproduce", "--config", str(path), flag])
        assert result.err.strip().startswith(f"biohicl reproduce: error: {expected}; choose one of bioasq, jsonl,")
    assert not (tmp_path / "st").exists()


def test_build_dataset_from_files_refuses_an_unknown_source(tmp_path, data_dir):
    with pytest.raises(ConfigError) as err:
        build_dataset_from_files([("pubmedQA", [data_dir / "pubmedqa" / "ori_pqal.json"])], tmp_path / "d")
    assert str(err.value).startswith("source: unknown 'pubmedQA' (did you mean pubmedqa); choose one of bioasq,")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("limit", [0, -64])
def test_a_limit_below_one_is_refused_when_the_config_is_read(tmp_path, limit):
    assert refusal(study_file(tmp_path, limit=limit)) == (
        f"{tmp_path / 's.yaml'}: dataset.limit: must be a whole number of at least 1 (the most documents to use), "
        f"got {limit}"
    )


def test_an_unknown_key_in_an_input_is_refused(tmp_path):
    path = study_file(tmp_path, inputs=[{"source": "pubmedqa", "files": ["pubmedqa/ori_pqal.json"], "limt": 5}])
    assert refusal(path) == f"{path}: dataset.inputs[0]: unknown field(s) limt; known: files, source"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"source": "pubmedqa"}, "dataset.inputs[0]: missing field(s) files"),
        ({"source": "pubmedqa", "files": "pubmedqa/ori_pqal.json"}, "dataset.inputs[0].files: expected a list of "),
        ({"source": 3, "files": ["x"]}, "dataset.inputs[0].source: unknown 3"),
    ],
)
def test_a_malformed_input_is_refused(tmp_path, item, message):
    path = study_file(tmp_path, inputs=[item])
    assert refusal(path).startswith(f"{path}: {message}")


def test_the_api_refuses_a_limit_below_one(tmp_path, data_dir, mesh):
    with pytest.raises(ConfigError, match=r"^limit: must be a whole number of at least 1 .*got -5$"):
        build_dataset_from_files([("pubmedqa", [data_dir / "pubmedqa" / "ori_pqal.json"])], None, limit=-5,
                                 progress=False)  # fmt: skip
    records = [MeshRecord(f"{i}", "t", "a", (TOPICS["heart"][i],), "bioasq") for i in range(3)]
    with pytest.raises(ConfigError, match=r"got 0$"):
        build_pair_dataset(records, mesh, limit=0)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"seeds": [0, 0]}, "seeds: seed 0 is given twice; give each seed once"),
        ({"seeds": [1, 2, 1]}, "seeds: seed 1 is given twice; give each seed once"),
        ({"seeds_per_variant": {"full": [3, 3]}}, "seeds_per_variant.full: seed 3 is given twice"),
    ],
)
def test_a_repeated_seed_is_refused(tmp_path, where, message):
    path = study_file(tmp_path)
    values = yaml.safe_load(path.read_text())
    values.update(where)
    path.write_text(yaml.safe_dump(values))
    assert refusal(path).startswith(f"{path}: {message}")


def test_the_intact_study_config_is_read(tmp_path):
    config = ReproduceConfig.from_yaml(study_file(tmp_path))
    assert config.dataset.limit == 24 and config.seeds == [0]
    assert config.dataset.inputs == [{"source": "pubmedqa", "files": ["pubmedqa/ori_pqal.json"]}]
    assert json.loads(json.dumps(config.to_dict()))["dataset"]["limit"] == 24

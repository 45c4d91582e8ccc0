"""A build records how to rebuild it (``summary.json``'s ``command``, ``mesh_sha256`` and ``input_sha256``, the
command on the dataset card), and an identical rebuild keeps its publication link: the build's wall time and command
are no part of what a publication record ties the Hub repo to."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from biohicl.cli.build_dataset import main as build_main
from biohicl.data.build import build_dataset_from_files
from biohicl.hub.card_data_source import HubDataset, dataset_contents, published_dataset
from biohicl.hub.dataset_repo import record_dataset_publication
from biohicl.mesh import hierarchy
from biohicl.mesh.hierarchy import PACKAGED_TABLE
from biohicl.provenance import files_sha256

ROWS = [
    {"pmid": "1", "title": "Heart", "abstract": "On the heart.", "mesh": ["Heart", "Heart Diseases"]},
    {"pmid": "2", "title": "Heart failure", "abstract": "On failure.", "mesh": ["Heart Failure", "Heart"]},
    {"pmid": "3", "title": "Obesity", "abstract": "On obesity.", "mesh": ["Obesity", "Diabetes Mellitus"]},
    {"pmid": "4", "title": "Diabetes", "abstract": "On diabetes.", "mesh": ["Diabetes Mellitus", "Obesity"]},
]
QUICK = dict(top_k=2, progress=False, arrow=False, decontaminate=False, dev_split=None)


def write_rows(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return path


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))


def no_data(tmp_path: Path, monkeypatch) -> None:
    """An empty data directory: no PubMedQA test-id file is found (``input_sha256`` lists the inputs only)."""
    (tmp_path / "no data").mkdir()
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(tmp_path / "no data"))


def slower(folder: Path, seconds: float = 12.5) -> None:
    """The folder as a rebuild on a slower machine leaves it: the same rows, another build time."""
    summary = summary_of(folder)
    summary["seconds"] = seconds
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------- 6: an identical rebuild keeps its link
def test_two_builds_of_the_same_inputs_have_the_same_contents(tmp_path, mesh):
    rows = write_rows(tmp_path / "rows.jsonl")
    build_dataset_from_files([("jsonl", [rows])], tmp_path / "a", mesh, **QUICK)
    build_dataset_from_files([("jsonl", [rows])], tmp_path / "b", mesh, **QUICK)
    slower(tmp_path / "b")
    assert summary_of(tmp_path / "a")["seconds"] != 12.5
    assert dataset_contents(tmp_path / "a") == dataset_contents(tmp_path / "b")


def test_an_identical_rebuild_stays_linked_to_its_publication(tmp_path, mesh, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    rows = write_rows(tmp_path / "rows.jsonl")
    build_dataset_from_files([("jsonl", [rows])], "ds", mesh, **QUICK)
    record_dataset_publication("ds", "org/tiny-pairs")
    build_dataset_from_files([("jsonl", [rows])], "ds", mesh, **QUICK)  # the same command again
    slower(tmp_path / "ds")
    with caplog.at_level(logging.WARNING, logger="biohicl.hub.card_data_source"):
        assert published_dataset("ds") == HubDataset("org/tiny-pairs")
    assert not caplog.records
    # other rows are still other contents
    write_rows(rows).write_text(rows.read_text().replace('"Obesity", "Diabetes', '"Heart", "Diabetes'))
    build_dataset_from_files([("jsonl", [rows])], "ds", mesh, **QUICK)
    assert published_dataset("ds") is None


def test_a_record_of_older_code_still_links_the_folder_it_was_made_from(tmp_path, mesh, monkeypatch):
    # records written before this change hold the sha256 of the whole summary.json file
    monkeypatch.chdir(tmp_path)
    build_dataset_from_files([("jsonl", [write_rows(tmp_path / "rows.jsonl")])], "ds", mesh, **QUICK)
    record = {
        "repo_id": "org/tiny-pairs",
        "revision": None,
        "summary_sha256": files_sha256([tmp_path / "ds" / "summary.json"]),
        "data_sha256": dataset_contents("ds")["data_sha256"],
    }
    (tmp_path / "ds.published.json").write_text(json.dumps(record), encoding="utf-8")
    assert published_dataset("ds") == HubDataset("org/tiny-pairs")
    slower(tmp_path / "ds")  # such a record holds no digest without the build time: a rebuild needs a new publish
    assert published_dataset("ds") is None


# ---------------------------------------------------------------------- 4: how to rebuild it
def test_the_cli_records_its_command_and_the_digests_of_the_mesh_and_input_files(tmp_path, mesh, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(data))
    monkeypatch.chdir(tmp_path)
    inside = write_rows(data / "mine" / "rows.jsonl")
    outside = write_rows(tmp_path / "elsewhere" / "more rows.jsonl")
    argv = [
        "--source",
        "jsonl",
        "--input",
        str(inside),
        str(outside),
        "--top_k",
        "2",
        "--output",
        "out/ds",
        "--no_decontaminate",
        "--dev_fraction",
        "0",
        "--pubmedqa_dev_size",
        "0",
        "--no_progress",
        "--no_arrow",
    ]
    assert build_main(argv) == 0
    summary = summary_of(tmp_path / "out" / "ds")
    # no machine path: the data directory by its variable, another absolute path by its folder and name
    assert summary["command"] == (
        'biohicl build-dataset --source jsonl --input "$BIOHICL_DATA_DIR"/mine/rows.jsonl '
        "'elsewhere/more rows.jsonl' --top_k 2 --output out/ds --no_decontaminate --dev_fraction 0 "
        "--pubmedqa_dev_size 0 --no_progress --no_arrow"
    )
    assert summary["mesh_source"] == Path(mesh.source).name
    assert summary["mesh_sha256"] == files_sha256(
        [Path(hierarchy.__file__).parent.parent / "resources" / PACKAGED_TABLE]
    )
    assert summary["input_sha256"] == [
        {"path": "mine/rows.jsonl", "sha256": files_sha256([inside])},
        {"path": "elsewhere/more rows.jsonl", "sha256": files_sha256([outside])},
    ]
    card = (tmp_path / "out" / "ds" / "README.md").read_text(encoding="utf-8")
    assert f"Built with `{summary['command']}`" in card
    assert f"sha256 `{summary['mesh_sha256']}`" in card


def test_the_python_api_records_no_command_unless_given(tmp_path, mesh, monkeypatch):
    no_data(tmp_path, monkeypatch)
    rows = write_rows(tmp_path / "rows.jsonl")
    build_dataset_from_files([("jsonl", [rows])], tmp_path / "a", mesh, **QUICK)
    summary = summary_of(tmp_path / "a")
    assert summary["command"] is None
    assert summary["input_sha256"] == [{"path": f"{tmp_path.name}/rows.jsonl", "sha256": files_sha256([rows])}]
    assert "Built with `biohicl build-dataset`." in (tmp_path / "a" / "README.md").read_text(encoding="utf-8")
    _, given = build_dataset_from_files(
        [("jsonl", [rows])], tmp_path / "b", mesh, command="biohicl build-dataset --input rows.jsonl", **QUICK
    )
    assert given.command == summary_of(tmp_path / "b")["command"] == "biohicl build-dataset --input rows.jsonl"


@pytest.mark.parametrize("older", [{"seconds": 1.0}, {}])
def test_a_summary_without_the_new_keys_still_renders_its_card(tmp_path, mesh, older):
    from biohicl.data.dataset_card import render_dataset_card
    from biohicl.data.storage import load_pair_dataset

    build_dataset_from_files([("jsonl", [write_rows(tmp_path / "rows.jsonl")])], tmp_path / "a", mesh, **QUICK)
    summary = {
        k: v for k, v in summary_of(tmp_path / "a").items() if k not in ("command", "mesh_sha256", "input_sha256")
    }
    text = render_dataset_card(load_pair_dataset(tmp_path / "a"), {**summary, **older})
    assert "Built with `biohicl build-dataset`." in text and "sha256" not in text


# ---------------------------------------------------------------------- every input's digest, by a path shown once
def test_two_inputs_of_one_recorded_name_each_keep_their_digest(tmp_path, mesh, monkeypatch):
    # a/x/data.jsonl and b/x/data.jsonl both read as x/data.jsonl: neither digest may overwrite the other
    no_data(tmp_path, monkeypatch)
    first = write_rows(tmp_path / "a" / "x" / "data.jsonl")
    second = tmp_path / "b" / "x" / "data.jsonl"
    write_rows(second).write_text(first.read_text().replace('"pmid": "', '"pmid": "9'), encoding="utf-8")
    build_dataset_from_files([("jsonl", [first, second])], tmp_path / "ds", mesh, **QUICK)
    assert files_sha256([first]) != files_sha256([second])
    assert summary_of(tmp_path / "ds")["input_sha256"] == [
        {"path": "x/data.jsonl", "sha256": files_sha256([first])},
        {"path": "x/data.jsonl", "sha256": files_sha256([second])},
    ]


def test_the_command_names_the_data_directory_by_its_variable_only_when_it_is_set(tmp_path, monkeypatch):
    # the data directory found as ../shared/data: a $BIOHICL_DATA_DIR/... path would be /... in that shell
    from biohicl.cli.build_dataset import command_line

    monkeypatch.delenv("BIOHICL_DATA_DIR", raising=False)
    data = tmp_path / "shared" / "data"
    (data / "pubmedqa").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    given = str(data / "pubmedqa" / "ori_pqal.json")
    assert command_line(["--input", given, f"--test_ids={given}"]) == (
        "biohicl build-dataset --input pubmedqa/ori_pqal.json --test_ids=pubmedqa/ori_pqal.json"
    )
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(data))
    assert command_line(["--input", given]) == (
        'biohicl build-dataset --input "$BIOHICL_DATA_DIR"/pubmedqa/ori_pqal.json'
    )


def test_the_command_keeps_a_data_directory_with_a_space_one_word(tmp_path, monkeypatch):
    # "$BIOHICL_DATA_DIR"/x, not $BIOHICL_DATA_DIR/x: unquoted, a shell splits the variable's value at the space
    import shlex
    import shutil
    import subprocess

    from biohicl.cli.build_dataset import command_line

    data = tmp_path / "my data"
    data.mkdir()
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(data))
    monkeypatch.chdir(tmp_path)
    rows, ids = data / "sub dir" / "rows.jsonl", data / "pubmedqa" / "test_ground_truth.json"
    command = command_line(["--input", str(rows), f"--test_ids={ids}", "--output", "out"])
    assert command == (
        "biohicl build-dataset --input \"$BIOHICL_DATA_DIR\"/'sub dir/rows.jsonl' "
        '--test_ids="$BIOHICL_DATA_DIR"/pubmedqa/test_ground_truth.json --output out'
    )
    words = shlex.split(command)
    assert words == [
        "biohicl",
        "build-dataset",
        "--input",
        "$BIOHICL_DATA_DIR/sub dir/rows.jsonl",
        "--test_ids=$BIOHICL_DATA_DIR/pubmedqa/test_ground_truth.json",
        "--output",
        "out",
    ]
    if shutil.which("sh") is None:
        pytest.skip("no POSIX shell to expand the variable")
    arguments = command.removeprefix("biohicl build-dataset ")
    done = subprocess.run(["sh", "-c", f"printf '%s\\n' {arguments}"], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["--input", str(rows), f"--test_ids={ids}", "--output", "out"]


# ---------------------------------------------------------------------- one file, one recorded path from any folder
def test_an_identical_rebuild_from_another_folder_stays_linked_to_its_publication(tmp_path, mesh, monkeypatch):
    # data/rows.jsonl typed in data's parent and rows.jsonl typed inside data/ are one file: one recorded path
    no_data(tmp_path, monkeypatch)
    rows = write_rows(tmp_path / "data" / "rows.jsonl")
    monkeypatch.chdir(tmp_path)
    build_dataset_from_files([("jsonl", ["data/rows.jsonl"])], tmp_path / "ds", mesh, **QUICK)
    record_dataset_publication(tmp_path / "ds", "org/tiny-pairs")
    monkeypatch.chdir(tmp_path / "data")
    build_dataset_from_files([("jsonl", ["rows.jsonl"])], tmp_path / "ds", mesh, **QUICK)
    summary = summary_of(tmp_path / "ds")
    assert summary["read"]["files"] == ["data/rows.jsonl"]
    assert summary["read"]["per_file"] == {"data/rows.jsonl": {"read": 4, "kept": 4}}
    assert summary["input_sha256"] == [{"path": "data/rows.jsonl", "sha256": files_sha256([rows])}]
    assert published_dataset(tmp_path / "ds") == HubDataset("org/tiny-pairs")


def test_an_example_names_its_file_once_rewritten(tmp_path, mesh, monkeypatch):
    # x.jsonl is recorded as d/x.jsonl: the example of ax.jsonl is d/ax.jsonl, not rewritten again to d/ad/x.jsonl
    no_data(tmp_path, monkeypatch)
    write_rows(tmp_path / "d" / "x.jsonl")
    other = tmp_path / "d" / "ax.jsonl"
    other.write_text("".join(json.dumps({**row, "pmid": "9" + row["pmid"]}) + "\n" for row in ROWS) + "{\n")
    monkeypatch.chdir(tmp_path / "d")
    build_dataset_from_files([("jsonl", ["x.jsonl", "ax.jsonl"])], tmp_path / "ds", mesh, **QUICK)
    read = summary_of(tmp_path / "ds")["read"]
    assert read["files"] == ["d/x.jsonl", "d/ax.jsonl"]
    assert [text.split(":")[0] for texts in read["examples"].values() for text in texts] == ["d/ax.jsonl"]


# ---------------------------------------------------------------------- the test-id file that decides the test split
def pqal(path: Path) -> Path:
    """A PubMedQA PQA-L file of ROWS' four items."""
    items = {row["pmid"]: {"QUESTION": "Q?", "CONTEXTS": [row["abstract"]], "MESHES": row["mesh"]} for row in ROWS}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def test_the_test_id_file_is_recorded_with_its_digest(tmp_path, mesh, monkeypatch):
    # two test-id files, two test splits: the summaries record two digests
    no_data(tmp_path, monkeypatch)
    items = pqal(tmp_path / "pqa" / "ori_pqal.json")
    summaries = {}
    for name, ids in (("a", ["1", "2"]), ("b", ["1"])):
        test_ids = tmp_path / f"ids_{name}" / "test_ground_truth.json"
        test_ids.parent.mkdir()
        test_ids.write_text(json.dumps(dict.fromkeys(ids, "yes")), encoding="utf-8")
        build_dataset_from_files([("pubmedqa", [items])], tmp_path / name, mesh, test_ids=test_ids, **QUICK)
        summaries[name] = summary_of(tmp_path / name)
        assert summaries[name]["splits"]["test"] == len(ids)
        assert summaries[name]["input_sha256"] == [
            {"path": "pqa/ori_pqal.json", "sha256": files_sha256([items])},
            {"path": f"ids_{name}/test_ground_truth.json", "sha256": files_sha256([test_ids]), "role": "test_ids"},
        ]
    assert summaries["a"]["input_sha256"][1]["sha256"] != summaries["b"]["input_sha256"][1]["sha256"]


def test_the_test_id_file_found_in_the_data_directory_is_recorded_relative_to_it(tmp_path, mesh, monkeypatch):
    data = tmp_path / "data"
    test_ids = data / "pubmedqa" / "test_ground_truth.json"
    test_ids.parent.mkdir(parents=True)
    test_ids.write_text(json.dumps({"3": "no"}), encoding="utf-8")
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(data))
    items = pqal(tmp_path / "mine" / "ori_pqal.json")
    build_dataset_from_files([("pubmedqa", [items])], tmp_path / "ds", mesh, **QUICK)
    summary = summary_of(tmp_path / "ds")
    assert summary["splits"]["test"] == 1
    assert summary["input_sha256"][1:] == [
        {"path": "pubmedqa/test_ground_truth.json", "sha256": files_sha256([test_ids]), "role": "test_ids"}
    ]

"""The Hub layout of a MeSH-pair dataset (``biohicl publish --dataset``): one file per split, remapped pair indices,
no local paths, no Arrow copies; and the publish refusals of dataset manifests and merged uploads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import TOPICS, read_card_metadata
from test_hub import RecordingHfApi

from biohicl.cli import publish as publish_cmd
from biohicl.data.pairs import build_pair_dataset
from biohicl.data.records import MeshRecord
from biohicl.data.storage import load_pair_dataset, save_pair_dataset
from biohicl.errors import BioHiCLError, ConfigError, PublishError
from biohicl.hub.dataset_repo import build_dataset_repo_folder
from biohicl.hub.manifest import ReleaseManifest

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGED_FILES = [
    "LICENSE.md",
    "README.md",
    "documents/dev-00000-of-00001.parquet",
    "documents/test-00000-of-00001.parquet",
    "documents/train-00000-of-00001.parquet",
    "pairs/dev-00000-of-00001.parquet",
    "pairs/test-00000-of-00001.parquet",
    "pairs/train-00000-of-00001.parquet",
    "summary.json",
]


def _records() -> list[MeshRecord]:
    """Per topic: two PubMedQA test abstracts, two other PubMedQA abstracts (the dev pool) and three BioASQ training
    abstracts, topic after topic, so the three splits interleave in build order."""
    records = []
    for topic, uis in TOPICS.items():
        for i in range(7):
            source, split = ("pubmedqa", "test") if i < 2 else ("pubmedqa", "train") if i < 4 else ("bioasq", "train")
            pmid = str(5000 + len(records))
            records.append(MeshRecord(pmid, f"{topic} {i}", f"about {topic} {i}", (uis[i % 4], uis[(i + 1) % 4]),
                                      source, split=split))  # fmt: skip
    return records


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def built(tmp_path_factory, mesh):
    """A local build (storage layout, Arrow copy included) whose summary.json holds absolute paths."""
    root = tmp_path_factory.mktemp("dataset-repo")
    dataset, summary = build_pair_dataset(_records(), mesh, top_k=3)
    source = save_pair_dataset(dataset, root / "build", summary)
    record = json.loads((source / "summary.json").read_text())
    local = f"{root}/data/medline_sample/pubmed24n0001.xml.gz"
    record["mesh_source"] = f"{root}/mesh/desc2024.xml"
    examples = {"empty abstract": [f"{local}, record 109"]}
    record["read"] = {"read": 29, "kept": 28, "skipped": {"empty abstract": 1}, "labels_dropped": {},
                      "labels_ignored": {}, "files": [local], "examples": examples}  # fmt: skip
    (source / "summary.json").write_text(json.dumps(record, indent=2))
    return source, dataset


def _checksums(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in _files(folder)}


def test_staged_splits_load_apart_from_the_hub_card(built, tmp_path):
    from datasets import load_dataset

    source, dataset = built
    assert set(dataset["documents"]["split"]) == {"train", "dev", "test"}
    before = _checksums(source)
    staged = build_dataset_repo_folder(source, tmp_path / "staged")
    assert _checksums(source) == before  # the local build is left as it is
    for config in ("documents", "pairs"):
        counts = {}
        for split in ("train", "dev", "test"):
            rows = load_dataset(str(staged), config, split=split)
            assert set(rows["split"]) == {split}, (config, split)
            counts[split] = len(rows)
        expected = {s: dataset[config]["split"].count(s) for s in ("train", "dev", "test")}
        assert counts == expected and min(counts.values()) > 0
    meta = read_card_metadata(staged / "README.md")
    assert meta["configs"][1] == {
        "config_name": "pairs",
        "data_files": [{"split": s, "path": f"pairs/{s}-00000-of-00001.parquet"} for s in ("dev", "test", "train")],
    }
    assert "dataset_info" not in meta and "dataset_info" not in read_card_metadata(source / "README.md")
    assert (meta["license"], meta["license_name"], meta["license_link"]) == ("other", "biohicl-mixed-sources",
                                                                             "LICENSE.md")  # fmt: skip
    assert "PubMedQA (PQA-L, ori_pqal.json)** (`pubmedqa`): MIT" in (staged / "LICENSE.md").read_text()
    card = (staged / "README.md").read_text()
    assert 'split="dev+test+train"' in card and "pairs never cross splits" in card
    all_documents = load_dataset(str(staged), "documents", split="dev+test+train")
    assert all_documents["pmid"] == load_pair_dataset(staged)["documents"]["pmid"]


def test_remapped_pairs_point_at_their_documents(built, tmp_path, mesh):
    source, dataset = built
    staged = load_pair_dataset(build_dataset_repo_folder(source, tmp_path / "staged"))
    docs, pairs = staged["documents"], staged["pairs"]
    assert docs["split"] == sorted(docs["split"])  # dev rows, then test, then train
    assert docs["pmid"] != dataset["documents"]["pmid"]  # the build interleaves the splits: indices had to move
    by_pmid = {d["pmid"]: d for d in dataset["documents"]}
    assert [by_pmid[p]["split"] for p in docs["pmid"]] == docs["split"]
    for row in pairs:
        anchor, partner = docs[row["anchor"]], docs[row["partner"]]
        assert (anchor["pmid"], partner["pmid"]) == (row["anchor_pmid"], row["partner_pmid"])
        assert anchor["split"] == partner["split"] == row["split"]
        assert row["siml"] == pytest.approx(mesh.label_similarity(anchor["mesh"], partner["mesh"]), abs=1e-6)
    key = ("anchor_pmid", "partner_pmid", "siml", "rank", "split")
    assert sorted(zip(*(pairs[k] for k in key), strict=True)) == sorted(
        zip(*(dataset["pairs"][k] for k in key), strict=True)
    )


def test_staging_reads_whole_columns_not_row_by_row(built, tmp_path, monkeypatch):
    """datasets 5's ``Column.__iter__`` formats every row (6 s per 800k pairs): staging reads the split, source and
    index columns through arrow, and stages the very same files."""
    import datasets

    source, _ = built
    expected = _checksums(build_dataset_repo_folder(source, tmp_path / "rows"))

    def row_by_row(self):
        raise AssertionError(f"{self.column_name} read row by row")

    monkeypatch.setattr(datasets.arrow_dataset.Column, "__iter__", row_by_row)
    assert _checksums(build_dataset_repo_folder(source, tmp_path / "columns")) == expected
    assert list(expected) == STAGED_FILES


def test_staged_summary_has_no_local_path_and_no_arrow_copy(built, tmp_path):
    source, _ = built
    assert str(source.parent) in (source / "summary.json").read_text()
    assert (source / "documents" / "data-00000-of-00001.arrow").is_file()
    staged = build_dataset_repo_folder(source, tmp_path / "staged")
    assert _files(staged) == STAGED_FILES
    summary = json.loads((staged / "summary.json").read_text())
    assert summary["read"]["examples"]["empty abstract"] == ["pubmed24n0001.xml.gz, record 109"]
    assert summary["mesh_source"] == "desc2024.xml"
    for name in STAGED_FILES:
        assert str(source.parent).encode() not in (staged / name).read_bytes(), name
    assert not [n for n in _files(staged) if n.endswith((".arrow", "state.json", "dataset_info.json", "_dict.json"))]


def test_cli_publish_uploads_exactly_the_staged_files(built, tmp_path, capsys):
    source, _ = built
    api = RecordingHfApi()
    out = tmp_path / "staged"
    assert publish_cmd.main([str(source), "--dataset", "--repo_id", "me/pairs", "--out", str(out)], api=api) == 0
    upload = api.calls[-1][2]
    assert (upload["repo_type"], upload["folder_path"]) == ("dataset", str(out))
    assert upload["allow_patterns"] == STAGED_FILES == sorted(api.uploaded)
    assert all(api.uploaded[name] == (out / name).read_bytes() for name in STAGED_FILES)
    assert 'load_dataset("me/pairs", "pairs", split="train")' in api.uploaded["README.md"].decode()
    # the dry run shows the same staged files, and --license is written into the card
    dry = tmp_path / "dry"
    argv = [str(source), "--dataset", "--repo_id", "me/pairs", "--dry_run", "--out", str(dry), "--license", "cc0-1.0"]
    assert publish_cmd.main(argv) == 0
    printed = capsys.readouterr().out
    assert "would upload 8 files" in printed and "documents/test-00000-of-00001.parquet" in printed
    assert ".arrow" not in printed and read_card_metadata(dry / "README.md")["license"] == "cc0-1.0"
    assert "license_name" not in read_card_metadata(dry / "README.md") and not (dry / "LICENSE.md").exists()
    assert "temporary" not in printed  # --out keeps the staged folder
    assert publish_cmd.main([str(source), "--dataset", "--repo_id", "me/pairs", "--dry_run"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("would upload"))
    assert "(a temporary folder, deleted when the command ends; --out DIR keeps it) to me/pairs" in line


def test_staging_refuses_cross_split_pairs_and_unsafe_outputs(built, tmp_path):
    source, dataset = built
    pairs = dataset["pairs"].to_dict()
    docs = dataset["documents"]
    other = next(i for i, s in enumerate(docs["split"]) if s != pairs["split"][0])
    pairs["partner"][0], pairs["partner_pmid"][0] = other, docs["pmid"][other]
    broken = dataset.copy()
    broken["pairs"] = type(dataset["pairs"]).from_dict(pairs, features=dataset["pairs"].features)
    folder = save_pair_dataset(broken, tmp_path / "broken", arrow=False)
    with pytest.raises(PublishError, match=r"pairs: row 0 .*pairs must stay within one split"):
        build_dataset_repo_folder(folder, tmp_path / "staged")
    for out in (source, source / "documents", source.parent):
        with pytest.raises(PublishError, match="staging there would delete it"):
            build_dataset_repo_folder(source, out, overwrite=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(PublishError, match="not empty"):
        build_dataset_repo_folder(source, tmp_path / "full")


def test_dataset_manifest_refuses_model_only_fields(built, tmp_path):
    source, _ = built
    manifest = tmp_path / "pairs.yaml"
    for line in ("merge: true", "eval_results: eval.json", "base_eval_results: base.json"):
        field = line.split(":")[0]
        manifest.write_text(f"repo_id: me/pairs\nrepo_type: dataset\nsource: {source}\nlicense: other\n{line}\n")
        api = RecordingHfApi()
        with pytest.raises(ConfigError, match=rf"^{manifest}: field '{field}': is for model releases"):
            publish_cmd.main(["--manifest", str(manifest)], api=api)
        assert api.calls == []
    with pytest.raises(ConfigError, match=r"^--merge: is for model releases"):
        publish_cmd.main([str(source), "--dataset", "--merge", "--repo_id", "me/pairs"], api=RecordingHfApi())


def test_shipped_dataset_manifest_names_the_documented_build():
    path = REPO_ROOT / "hub" / "datasets" / "mesh-pairs.yaml"
    manifest = ReleaseManifest.load(path)
    assert manifest.source == "runs/study/dataset"
    assert f"biohicl build-dataset --output {manifest.source}" in path.read_text()
    assert (manifest.merge, manifest.eval_results, manifest.base_eval_results) == (False, None, None)


def test_merge_refuses_a_repo_the_registry_lists_as_an_adapter(tmp_path):
    api = RecordingHfApi()
    argv = [str(tmp_path / "run"), "--repo_id", "biohicl/BioHiCL-MiniLM-L6", "--merge", "--dry_run"]
    with pytest.raises(ConfigError, match=r"lists biohicl/BioHiCL-MiniLM-L6 \(BioHiCL-MiniLM\) as an adapter.*"
                                          r"e\.g\. biohicl/BioHiCL-MiniLM-L6-merged$"):  # fmt: skip
        publish_cmd.main(argv, api=api)
    with pytest.raises(ConfigError, match="as an adapter"):
        publish_cmd.main(["--manifest", str(REPO_ROOT / "hub/models/biohicl-minilm.yaml"), "--merge"], api=api)
    assert api.calls == []
    # another repo id is built as usual (here: no such run, so the build's own error)
    with pytest.raises(PublishError, match="no such run folder"):
        publish_cmd.main([*argv[:2], "me/BioHiCL-MiniLM-L6-merged", "--merge"], api=api)


def _copy_build(source: Path, to: Path, summary: object) -> Path:
    import shutil

    shutil.copytree(source, to, ignore=shutil.ignore_patterns("summary.json"))
    (to / "summary.json").write_text(json.dumps(summary))
    return to


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"pairs": 3}, "no `documents` (the dataset card needs it)"),
        ({"top_k": "3"}, "`top_k` is str, not int (the dataset card needs it)"),
        ({"mean_siml": None}, "`mean_siml` is NoneType, not int or float (the dataset card needs it)"),
        (
            {"splits": {"train": "many"}, "composition": [{"source": "x"}]},
            "a field the dataset card reads is malformed",
        ),
    ],
)
def test_a_malformed_summary_is_one_line_and_leaves_no_half_built_output(built, tmp_path, capsys, change, why):
    # `publish --dataset` with summary.json {"pairs": 3} ended in jinja2's UndefinedError traceback, leaving --out
    # with parquet files and summary.json but no card
    from biohicl.cli.main import main as cli_main

    source, _ = built
    summary = change if "pairs" in change else {**json.loads((source / "summary.json").read_text()), **change}
    folder = _copy_build(source, tmp_path / "build", summary)
    out = tmp_path / "stage" / "repo"
    with pytest.raises(PublishError) as error:
        build_dataset_repo_folder(folder, out)
    assert str(error.value).startswith(f"{folder / 'summary.json'}: {why}")
    capsys.readouterr()
    argv = ["publish", str(folder), "--dataset", "--repo_id", "me/x", "--dry_run", "--out", str(out)]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert f"{folder / 'summary.json'}: {why}" in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "stage").exists()  # checked before anything is written


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('["x"]', "expected a JSON object (the dataset's build summary)"),
        ("null", "expected a JSON object (the dataset's build summary)"),
        ('{"documents": 3', "line 1: not valid JSON (Expecting ',' delimiter at column 16)"),
    ],
)
def test_a_damaged_summary_is_refused_as_its_one_reader_words_it(built, tmp_path, text, why):
    """``summary.json`` is read by :func:`~biohicl.data.storage.read_build_summary`, as training, the model card and
    the study read it, in a :class:`PublishError` with the rebuild hint; publishing had its own reader and words."""
    from biohicl.data.storage import read_build_summary
    from biohicl.errors import DataError

    source, _ = built
    folder = _copy_build(source, tmp_path / "build", {})
    (folder / "summary.json").write_text(text)
    with pytest.raises(DataError) as read:
        read_build_summary(folder)
    assert str(read.value) == f"{folder / 'summary.json'}: {why}"
    with pytest.raises(PublishError) as error:
        build_dataset_repo_folder(folder, tmp_path / "out")
    assert str(error.value) == f"{read.value}; rebuild it with `biohicl build-dataset`"
    assert not (tmp_path / "out").exists()


def test_a_failed_staging_leaves_neither_output_nor_staging_folder(built, tmp_path, monkeypatch):
    import biohicl.hub.dataset_repo as dataset_repo

    source, _ = built
    out = tmp_path / "repo"
    out.mkdir()
    (out / "README.md").write_text("the previous staging")

    def failing_license(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dataset_repo, "render_license_file", failing_license)
    # named as --out, as the model build's full disk is (it named a file of the staging folder, deleted by then)
    with pytest.raises(BioHiCLError, match=f"^{out}: no space left on device; nothing was written there$"):
        build_dataset_repo_folder(source, out, overwrite=True)
    assert _files(tmp_path) == ["repo/README.md"] and (out / "README.md").read_text() == "the previous staging"
    monkeypatch.undo()
    build_dataset_repo_folder(source, out, overwrite=True)
    assert _files(out) == STAGED_FILES and [p.name for p in tmp_path.iterdir()] == ["repo"]


def test_a_symlinked_out_is_written_into_its_target(built, tmp_path, capsys):
    source, _ = built
    real, link = tmp_path / "real", tmp_path / "out"
    real.mkdir()
    (real / "README.md").write_text("the previous staging")
    link.symlink_to(real)
    argv = [str(source), "--dataset", "--repo_id", "me/pairs", "--dry_run", "--out", str(link), "--overwrite"]
    assert publish_cmd.main(argv) == 0
    assert f"would upload 9 files from {real.resolve()}" in capsys.readouterr().out
    assert link.is_symlink() and link.resolve() == real.resolve() and _files(real) == STAGED_FILES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "real"]  # no staging folder left


def test_a_failed_replace_keeps_the_old_out_and_leaves_no_staging_folder(built, tmp_path, monkeypatch):
    # the build is swapped in by biohicl.atomic.atomic_directory, as a model's is: the previous --out is moved aside,
    # and moved back when the staged folder cannot take its place
    import os

    source, _ = built
    out = tmp_path / "repo"
    out.mkdir()
    (out / "README.md").write_text("the previous staging")
    replace = os.replace

    def failing_replace(src, dst):
        if str(src).endswith(".tmp"):  # the staged folder
            raise OSError(18, "Invalid cross-device link")
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(BioHiCLError, match=f"^{out}: Invalid cross-device link$"):
        build_dataset_repo_folder(source, out, overwrite=True)
    assert _files(tmp_path) == ["repo/README.md"] and (out / "README.md").read_text() == "the previous staging"


def test_an_out_that_is_a_file_is_refused_in_one_line_and_left_as_is(built, tmp_path, capsys):
    # it was "repo: Not a directory", the not-empty check listing the file; now the model build's words
    from biohicl.cli.main import main as cli_main

    source, _ = built
    out = tmp_path / "repo"
    out.write_text("mine")
    argv = ["publish", str(source), "--dataset", "--repo_id", "me/x", "--dry_run", "--out", str(out), "--overwrite"]
    assert cli_main(argv) == 2
    assert capsys.readouterr().err == f"biohicl publish: error: {out} is a file, not a folder\n"
    assert out.read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["repo"]

"""The dataset builder on bad input and a bad environment: everything skipped, all-identical label sets, documents
without labels, bad options, a read-only output folder, a full disk. One line at the CLI, the previous build intact,
no temporary folder left behind."""

from __future__ import annotations

import builtins
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from biohicl.data.mining import mine_top_k
from biohicl.data.pairs import build_pair_dataset
from biohicl.data.records import MeshRecord
from biohicl.errors import BioHiCLError, DataError

NAMES = [["Diabetes Mellitus, Type 2", "Humans"], ["Diabetes Mellitus", "Humans"], ["Heart Diseases"],
         ["Brain Neoplasms", "Humans"], ["Insulin Resistance"]]  # fmt: skip


def write_bioasq(path: Path, n: int = 10) -> Path:
    articles = [
        {"pmid": str(100 + i), "title": f"Title {i}", "abstractText": f"Abstract {i}.", "meshMajor": NAMES[i % 5]}
        for i in range(n)
    ]
    path.write_text(json.dumps({"articles": articles}), encoding="utf-8")
    return path


def build_argv(inp: Path, out: Path, *extra: str) -> list[str]:
    return ["build-dataset", "--source", "bioasq", "--input", str(inp), "--output", str(out), "--no_progress",
            "--no_arrow", *extra]  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def previous_build(tmp_path, run_cli):
    """A finished build in tmp_path/out (what a failed rebuild must leave untouched)."""
    inp = write_bioasq(tmp_path / "allMeSH.json")
    out = tmp_path / "out"
    result = run_cli(build_argv(inp, out), expect_error=False)
    assert result.code == 0, result.err
    return inp, out, snapshot(out)


def no_temporaries(folder: Path) -> bool:
    return not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_every_record_skipped_is_one_line(tmp_path, run_cli):
    inp = tmp_path / "a.json"
    inp.write_text(json.dumps({"articles": [{"pmid": "1", "abstractText": "", "meshMajor": ["Humans"]}]}))
    result = run_cli(build_argv(inp, tmp_path / "out"))
    assert "no documents to build a dataset from" in result.err
    assert not (tmp_path / "out").exists()


def test_every_record_skipped_says_why_in_its_one_line(tmp_path, run_cli):
    inp = tmp_path / "trees.jsonl"  # tree numbers no descriptor of MeSH 2024 has: no label resolves
    rows = [{"pmid": "1", "title": "T", "abstract": "A.", "mesh": ["C18.452.394.999", "C99.280"]},
            {"pmid": "2", "title": "T", "abstract": "B.", "mesh": ["C18.452.394.999"]}]  # fmt: skip
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    argv = ["build-dataset", "--source", "jsonl", "--input", str(inp), "--output", str(tmp_path / "out"),
            "--no_progress", "--no_arrow"]  # fmt: skip
    result = run_cli(argv)
    last = result.err.strip().splitlines()[-1]
    assert last == (
        "biohicl build-dataset: error: no documents to build a dataset from (every record was skipped or excluded): "
        "2 read, 2 skipped (no MeSH label left: 2); 3 labels dropped (tree number not in this MeSH release: 3), "
        "e.g. 'C18.452.394.999'"
    )
    assert not (tmp_path / "out").exists()


def test_strict_stops_at_the_first_bad_record_naming_it(tmp_path, run_cli):
    inp = write_bioasq(tmp_path / "a.json")
    data = json.loads(inp.read_text())
    data["articles"][3]["meshMajor"] = ["Diabetis Mellitus"]
    inp.write_text(json.dumps(data))
    result = run_cli(build_argv(inp, tmp_path / "out", "--strict"))
    assert "a.json, record 4: MeSH name not in this MeSH release: 'Diabetis Mellitus'" in result.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--top_k", "0"], "--top_k must be >= 1"),
        (["--limit", "-3"], "--limit must be >= 1"),
        (["--top-kk", "3"], "did you mean --top-kk → --top_k"),
        (["--source", "pubmed"], "invalid choice: 'pubmed'"),
        (["--dev_fraction", "1"], "dev fraction must be in [0, 1), got 1.0"),
        (["--pubmedqa_dev_size", "-5"], "PubMedQA dev size must be >= 0, got -5"),
        (["--beir", "/nonexistent/beir-folder"], "beir-folder: not a BEIR folder with a corpus"),
        (["--no_decontaminate", "--beir", "x"], "--beir names evaluation sets to decontaminate against"),
    ],
)
def test_bad_options(tmp_path, run_cli, extra, message):
    inp = write_bioasq(tmp_path / "a.json")
    result = run_cli(build_argv(inp, tmp_path / "out", *extra))
    assert message in result.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--seed", "--dev_seed"])
def test_a_negative_seed_is_refused_before_the_inputs_are_read(tmp_path, run_cli, option):
    result = run_cli(build_argv(tmp_path / "nope.json", tmp_path / "out", option, "-1"))  # the input is never looked at
    assert result.err.strip() == f"biohicl build-dataset: error: {option}: must be >= 0, got -1"
    assert not (tmp_path / "out").exists()


def test_an_unreadable_input_is_one_line_not_left_out(tmp_path, run_cli, monkeypatch):
    """Format detection (no --source) must not mistake a file it cannot open for a file in no known format: the
    build would go on without it. We run as root, so the open is refused by a patched ``open``."""
    good, locked = write_bioasq(tmp_path / "a.json"), write_bioasq(tmp_path / "b.json")
    real_open = builtins.open

    def refuse(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refuse)
    argv = ["build-dataset", "--input", str(good), str(locked), "--output", str(tmp_path / "out"), "--no_progress",
            "--no_arrow"]  # fmt: skip
    result = run_cli(argv)
    assert result.err.strip() == f"biohicl build-dataset: error: {locked}: cannot read: Permission denied"
    assert not (tmp_path / "out").exists()


def test_missing_input_and_missing_mesh_file(tmp_path, run_cli):
    result = run_cli(build_argv(tmp_path / "nope.json", tmp_path / "out"))
    assert "nope.json: input file not found" in result.err
    inp = write_bioasq(tmp_path / "a.json")
    result = run_cli(build_argv(inp, tmp_path / "out", "--mesh", str(tmp_path / "desc2025.xml")))
    assert "desc2025.xml: MeSH file not found" in result.err


def test_truncated_mesh_descriptor_xml(tmp_path, run_cli):
    mesh_file = tmp_path / "desc2025.xml"
    mesh_file.write_text("<DescriptorRecordSet><DescriptorRecord><DescriptorUI>D000001</DescriptorUI><Descr")
    result = run_cli(build_argv(write_bioasq(tmp_path / "a.json"), tmp_path / "out", "--mesh", str(mesh_file)))
    assert "desc2025.xml, record 1: malformed descriptor XML" in result.err


def test_malformed_test_ids_file(tmp_path, run_cli):
    ids = tmp_path / "test_ground_truth.json"
    ids.write_text('{"123": "yes", ')
    result = run_cli(build_argv(write_bioasq(tmp_path / "a.json"), tmp_path / "out", "--exclude_test",
                                "--test_ids", str(ids)))  # fmt: skip
    message = "not valid JSON (Expecting property name enclosed in double quotes at column 16)"
    assert f"test_ground_truth.json: line 1: {message}" in result.err


def test_output_that_is_not_a_dataset_is_left_alone(tmp_path, run_cli):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    result = run_cli(build_argv(write_bioasq(tmp_path / "a.json"), out))
    assert "is not empty and is not a MeSH-pair dataset" in result.err
    assert (out / "thesis.tex").read_text() == "precious" and sorted(os.listdir(out)) == ["thesis.tex"]


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_read_only_output_folder_keeps_the_previous_build(previous_build, tmp_path, run_cli, monkeypatch, code):
    inp, out, before = previous_build
    real_mkdir = os.mkdir

    def refuse(path, *args, **kwargs):  # we run as root: simulate a read-only / forbidden folder
        if ".out.tmp-" in str(path):
            raise OSError(code, os.strerror(code), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", refuse)
    result = run_cli(build_argv(inp, out, "--top_k", "2"))
    assert f"out: cannot write here ({os.strerror(code)})" in result.err
    assert snapshot(out) == before and no_temporaries(tmp_path)


def test_full_disk_keeps_the_previous_build(previous_build, tmp_path, run_cli, monkeypatch):
    inp, out, before = previous_build
    real_write_text = Path.write_text

    def full(self, *args, **kwargs):
        if self.name == "README.md" and ".out.tmp-" in str(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    result = run_cli(build_argv(inp, out, "--top_k", "2"))
    assert "out: no space left on device; nothing was written there" in result.err
    assert snapshot(out) == before and no_temporaries(tmp_path)


def test_failed_final_rename_puts_the_previous_build_back(previous_build, tmp_path, run_cli, monkeypatch):
    inp, out, before = previous_build
    real_rename = Path.rename

    def rename(self, target):
        if ".out.tmp-" in self.name:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(self))
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    result = run_cli(build_argv(inp, out, "--top_k", "2"))
    assert "Input/output error" in result.err
    assert snapshot(out) == before and no_temporaries(tmp_path)


# ------------------------------------------------------------------------------------------- the API, no files
def record(pmid: str, mesh: tuple[str, ...]) -> MeshRecord:
    return MeshRecord(pmid, "t", "an abstract", mesh, "bioasq")


def test_all_identical_label_sets_give_siml_one_not_nan(mesh):
    labels = [["D003924", "D006801"]] * 6
    mined = mine_top_k(labels, mesh, top_k=3)
    assert len(mined) == 18 and np.all(mined.siml == np.float32(1.0))
    assert np.all(mined.anchor != mined.partner)
    dataset, summary = build_pair_dataset([record(str(i), tuple(lab)) for i, lab in enumerate(labels)], mesh, top_k=3)
    assert summary.mean_siml == pytest.approx(1.0) and len(dataset["pairs"]) == 18


def test_documents_without_labels_get_no_pairs(mesh):
    records = [record("1", ()), record("2", ("D003924",)), record("3", ("D003920",)), record("4", ())]
    dataset, summary = build_pair_dataset(records, mesh, top_k=3)
    pmids = set(dataset["pairs"]["anchor_pmid"]) | set(dataset["pairs"]["partner_pmid"])
    assert pmids == {"2", "3"} and np.isfinite(dataset["pairs"]["siml"]).all()
    assert summary.documents == 4


def test_single_document_gives_no_pairs_and_no_nan(mesh):
    dataset, summary = build_pair_dataset([record("1", ("D003924",))], mesh)
    assert len(dataset["pairs"]) == 0 and summary.mean_siml == 0.0


def test_unknown_descriptor_in_records_names_it(mesh):
    with pytest.raises(KeyError, match="D999999"):
        build_pair_dataset([record("1", ("D003924",)), record("2", ("D999999",))], mesh)


def test_everything_excluded(mesh):
    with pytest.raises(DataError, match=r"every record was skipped or excluded\): 1 excluded \(by pmid or as test\)$"):
        build_pair_dataset([record("1", ("D003924",))], mesh, exclude_pmids=["1"])


def test_environment_errors_are_biohicl_errors():
    assert issubclass(DataError, BioHiCLError)


def test_mixing_label_kinds_needs_the_option(tmp_path, run_cli):
    pubtator = tmp_path / "cdr.txt"
    pubtator.write_text("1|t|Title\n1|a|Abstract.\n1\t0\t5\tx\tDisease\tD003920\n")
    argv = ["build-dataset", "--input", str(write_bioasq(tmp_path / "a.json")), str(pubtator), "--output",
            str(tmp_path / "out"), "--no_progress", "--no_arrow"]  # fmt: skip
    result = run_cli(argv)
    assert "the inputs mix MeSH label kinds: bioasq (indexing)" in result.err and "--mix_label_kinds" in result.err
    assert not (tmp_path / "out").exists()
    assert run_cli([*argv, "--mix_label_kinds"], expect_error=False).code == 0


def test_no_input_in_a_known_format_is_one_line(tmp_path, run_cli):
    notes = tmp_path / "notes.txt"
    notes.write_text("my search strategy\n")
    result = run_cli(["build-dataset", "--input", str(notes), "--output", str(tmp_path / "out"), "--no_progress"])
    assert "no input file is in a format biohicl reads" in result.err and "notes.txt" in result.err
    assert not (tmp_path / "out").exists()

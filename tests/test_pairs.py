"""MeSH-pair dataset: top-k mining against brute force, determinism, splits/exclusion, parquet + card, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import HF_DATASETS_CACHE, read_card_metadata

from biohicl.data.build import build_dataset_from_files, build_default_dataset
from biohicl.data.mining import SIML_DECIMALS, mine_top_k
from biohicl.data.pairs import build_pair_dataset
from biohicl.data.records import MeshRecord
from biohicl.data.splits import DevSplit
from biohicl.data.storage import load_pair_dataset, save_pair_dataset
from biohicl.errors import ConfigError, DataError

DM, T2, HEART = "D003920", "D003924", "D006321"


def _real_labels(data_dir, mesh, n):
    with open(data_dir / "pubmedqa" / "ori_pqal.json", encoding="utf-8") as handle:
        items = list(json.load(handle).values())[:n]
    return [[u for u in (mesh.try_resolve(x) for x in item["MESHES"]) if u] for item in items]


def brute_force(mesh, labels, k):
    """Per anchor: partners with SimL > 0 sorted by (rounded SimL desc), as {anchor: [(partner, siml)]}."""
    matrix = mesh.similarity_matrix(labels).numpy().astype(np.float64)
    rounded = np.round(matrix, SIML_DECIMALS)
    out = {}
    for i in range(len(labels)):
        cands = [(j, rounded[i, j]) for j in range(len(labels)) if j != i and rounded[i, j] > 0]
        out[i] = sorted(cands, key=lambda x: -x[1])[:k]
    return out


def test_mine_top_k_matches_brute_force(mesh, data_dir):
    labels = [*_real_labels(data_dir, mesh, 80), [HEART], [DM], [T2]]
    mined = mine_top_k(labels, mesh, top_k=5, seed=0, block_size=16)
    expected = brute_force(mesh, labels, 5)
    assert len(mined) == sum(len(v) for v in expected.values())
    for i, partners in expected.items():
        rows = np.flatnonzero(mined.anchor == i)
        assert list(mined.rank[rows]) == list(range(1, len(partners) + 1))
        np.testing.assert_allclose(mined.siml[rows], [s for _, s in partners], atol=2e-6)
        assert i not in mined.partner[rows]
        # same partners up to ties: each mined partner's SimL equals the brute-force value at that rank
        sims = mesh.similarity_matrix(labels).numpy()
        np.testing.assert_allclose(sims[i, mined.partner[rows]], mined.siml[rows], atol=2e-6)
    assert np.all(np.diff(mined.siml[mined.anchor == 0]) <= 0)


def test_mine_block_size_does_not_change_result(mesh, data_dir):
    labels = _real_labels(data_dir, mesh, 60)
    a = mine_top_k(labels, mesh, top_k=4, seed=3, block_size=7)
    b = mine_top_k(labels, mesh, top_k=4, seed=3)
    np.testing.assert_array_equal(a.anchor, b.anchor)
    np.testing.assert_array_equal(a.partner, b.partner)
    # BLAS kernels differ by block shape in the last float32 bit: a 6-decimal rounding may move by 1e-6
    np.testing.assert_allclose(a.siml, b.siml, atol=1.5e-6)


def test_ties_broken_by_seed_deterministically(mesh):
    labels = [[DM]] + [[T2]] * 6 + [[HEART]]  # anchor 0 has six partners tied at SimL 0.778
    first = mine_top_k(labels, mesh, top_k=3, seed=0)
    again = mine_top_k(labels, mesh, top_k=3, seed=0)
    np.testing.assert_array_equal(first.partner, again.partner)
    chosen = {seed: tuple(mine_top_k(labels, mesh, top_k=3, seed=seed).partner[:3]) for seed in range(6)}
    assert all(set(p) <= {1, 2, 3, 4, 5, 6} for p in chosen.values())
    assert len(set(chosen.values())) > 1  # another seed picks other tied partners
    np.testing.assert_allclose(first.siml[:3], round(mesh.label_similarity([DM], [T2]), 6))
    # HEART (A07) shares no node with the diabetes documents: no pair with SimL 0
    assert 7 not in first.anchor and 7 not in first.partner


def test_mine_edge_cases(mesh):
    assert len(mine_top_k([[DM]], mesh, top_k=3)) == 0
    mined = mine_top_k([[DM], [T2]], mesh, top_k=10)
    assert list(mined.anchor) == [0, 1] and list(mined.partner) == [1, 0] and list(mined.rank) == [1, 1]
    with pytest.raises(ConfigError, match="top_k"):
        mine_top_k([[DM], [T2]], mesh, top_k=0)


@pytest.mark.parametrize("labels", [[[DM], [T2], [DM, T2]], [[DM], [T2], [DM, T2], [DM]]], ids=["3", "4"])
def test_a_top_k_above_n_gives_every_document_all_n_minus_1_others(mesh, labels):
    """Every pair of these documents is related (SimL > 0), so with top_k=10 each has all n - 1 others as partners."""
    n = len(labels)
    mined = mine_top_k(labels, mesh, top_k=10)
    assert len(mined) == n * (n - 1)
    for i in range(n):
        rows = np.flatnonzero(mined.anchor == i)
        assert sorted(mined.partner[rows]) == [j for j in range(n) if j != i]
        assert list(mined.rank[rows]) == list(range(1, n))
    assert np.all(mined.siml > 0)


def _records():
    return [
        MeshRecord("1", "t1", "a1", (DM,), "pubmedqa", split="test", question="q1?"),
        MeshRecord("2", "t2", "a2", (T2,), "pubmedqa"),
        MeshRecord("3", "t3", "a3", (DM, HEART), "bioasq"),
        MeshRecord("4", "t4", "a4", (HEART,), "bioasq"),
        MeshRecord("5", "t5", "a5", ("D006331",), "bioasq"),  # Heart Diseases
    ]


def test_build_pair_dataset_columns_and_splits(mesh):
    records = _records()
    records[0].split, records[4].split = "train", "test"
    # by default the PubMedQA records outside test are the pool of the (250) PubMedQA dev items: here both
    ds, _ = build_pair_dataset(records, mesh, top_k=2)
    assert ds["documents"]["split"] == ["dev", "dev", "train", "train", "test"]
    assert [r.split for r in records] == ["train", "train", "train", "train", "test"]  # inputs left unchanged
    ds, summary = build_pair_dataset(records, mesh, top_k=2, seed=0, dev_split=DevSplit(pubmedqa_size=0))
    docs, pairs = ds["documents"], ds["pairs"]
    assert docs["pmid"] == ["1", "2", "3", "4", "5"]
    assert docs[0]["mesh"] == [DM] and docs[0]["tree_numbers"] == ["C18.452.394.750", "C19.246"]
    assert docs["split"] == ["train", "train", "train", "train", "test"]  # none of 1-4 hashes into dev
    assert docs["label_kind"] == ["indexing"] * 5
    assert docs[0]["question"] == "q1?"
    assert set(pairs.column_names) == {"anchor", "anchor_pmid", "partner", "partner_pmid", "siml", "rank", "split"}
    for row in pairs:
        assert row["anchor_pmid"] == docs[row["anchor"]]["pmid"] and row["partner_pmid"] == docs[row["partner"]]["pmid"]
        assert row["siml"] == pytest.approx(
            mesh.label_similarity(docs[row["anchor"]]["mesh"], docs[row["partner"]]["mesh"]), abs=1e-6
        )
        assert row["split"] == "train"
        assert "5" not in (row["anchor_pmid"], row["partner_pmid"])  # the test document has no train partner
    first = pairs.filter(lambda r: r["anchor"] == 0)
    # DM vs {DM, Heart}: sqrt(7.887 / (7.887 + ln²2 + ln²3)) = 0.908 beats DM vs Type 2 (0.778)
    assert first["partner_pmid"] == ["3", "2"] and first["rank"] == [1, 2]
    l2, l3, l4, l5 = (math.log(d + 1) for d in range(1, 5))
    dm = 2 * l2**2 + 2 * l3**2 + l4**2 + l5**2  # |DM|²; Heart adds A07 (depth 1) and A07.541 (depth 2)
    assert first["siml"] == pytest.approx([math.sqrt(dm / (dm + l2**2 + l3**2)), 0.77833], abs=1e-5)
    assert summary.documents == 5 and summary.test_documents == 1 and summary.pairs == len(pairs)
    assert summary.splits == {"train": 4, "dev": 0, "test": 1} and summary.label_kinds == {"indexing": 5}
    assert summary.mean_labels_per_document == pytest.approx(6 / 5)
    assert summary.mean_siml == pytest.approx(float(np.mean(pairs["siml"])), abs=1e-6)
    assert summary.mesh_version == "2024"


def test_pairs_never_cross_label_kinds_or_splits(mesh):
    """Mentions and indexing documents with identical labels are never paired; dev documents pair among
    themselves; mixing kinds needs the explicit option."""
    records = [
        MeshRecord("1", "", "a", (DM,), "bioasq"),
        MeshRecord("2", "", "b", (T2,), "bioasq"),
        MeshRecord("3", "", "c", (DM,), "pubtator"),
        MeshRecord("4", "", "d", (T2,), "pubtator"),
        MeshRecord("12", "", "e", (DM,), "bioasq"),  # is_dev_document("12") at the default seed and fraction
        MeshRecord("24", "", "f", (T2,), "bioasq"),  # … and "24"
    ]
    with pytest.raises(DataError, match=r"mix MeSH label kinds: bioasq \(indexing\) 4, pubtator \(mentions\) 2"):
        build_pair_dataset(records, mesh, top_k=5)
    ds, summary = build_pair_dataset(records, mesh, top_k=5, mix_label_kinds=True)
    docs, pairs = ds["documents"], ds["pairs"]
    assert docs["label_kind"] == ["indexing", "indexing", "mentions", "mentions", "indexing", "indexing"]
    assert docs["split"] == ["train", "train", "train", "train", "dev", "dev"]
    got = sorted(zip(pairs["anchor_pmid"], pairs["partner_pmid"], pairs["split"], strict=True))
    assert got == [("1", "2", "train"), ("12", "24", "dev"), ("2", "1", "train"), ("24", "12", "dev"),
                   ("3", "4", "train"), ("4", "3", "train")]  # fmt: skip
    assert list(pairs["anchor"]) == sorted(pairs["anchor"])  # anchor-major
    assert summary.label_kinds == {"indexing": 4, "mentions": 2} and summary.splits["dev"] == 2
    assert summary.pairs_by_split == {"train": 4, "dev": 2, "test": 0}
    assert {(c["source"], c["label_kind"], c["train"], c["dev"]) for c in summary.composition} == {
        ("bioasq", "indexing", 2, 2), ("pubtator", "mentions", 2, 0)
    }  # fmt: skip
    ds, _ = build_pair_dataset(records[:2] + records[4:], mesh, dev_split=None)
    assert set(ds["documents"]["split"]) == {"train"}


def test_pubmedqa_test_copy_wins_when_another_copy_of_its_pmid_is_read_first(mesh):
    """Python API order (MEDLINE copy first, PubMedQA test item after): the test item stays in the dataset as
    PubMedQA's own record, not removed by decontamination as "PMID of a PubMedQA test item"."""
    from biohicl.data.decontamination import Decontaminator
    from biohicl.data.read_report import ReadReport
    from biohicl.data.sources import unique_records

    def stream():
        yield MeshRecord("7", "Heart failure copy.", "About the heart.", (DM,), "medline-text")
        yield MeshRecord("8", "Other.", "Something else.", (DM,), "medline-text")
        yield MeshRecord("7", "Heart failure?", "About the heart.", (DM,), "pubmedqa", "test", question="q7?")

    for exclude_test in (False, True):
        decontaminator = Decontaminator(pubmedqa_test={"7"})
        report = ReadReport()
        report.kept = 3
        ds, summary = build_pair_dataset(
            unique_records(stream(), report), mesh, top_k=1, decontaminator=decontaminator,
            exclude_test=exclude_test, dev_split=None,
        )  # fmt: skip
        docs = ds["documents"]
        assert decontaminator.to_dict()["documents"] == [] and report.kept == 2
        if exclude_test:
            assert docs["pmid"] == ["8"] and summary.excluded_documents == 1
        else:
            assert docs["pmid"] == ["7", "8"] and docs["split"] == ["test", "train"]
            assert docs["source"] == ["pubmedqa", "medline-text"] and docs[0]["question"] == "q7?"


def test_exclusion_and_limit(mesh):
    ds, summary = build_pair_dataset(_records(), mesh, top_k=2, exclude_test=True)
    assert "1" not in ds["documents"]["pmid"] and summary.excluded_documents == 1
    assert "1" not in [*ds["pairs"]["anchor_pmid"], *ds["pairs"]["partner_pmid"]]
    assert set(ds["pairs"]["split"]) == {"train"}
    ds, summary = build_pair_dataset(_records(), mesh, exclude_pmids=["2", "3"], limit=2)
    assert ds["documents"]["pmid"] == ["1", "4"] and summary.excluded_documents == 2
    with pytest.raises(DataError, match="no documents"):
        build_pair_dataset(_records(), mesh, exclude_pmids=["1", "2", "3", "4", "5"])


def test_save_reload_parquet_and_disk(tmp_path, mesh):
    from datasets import load_dataset, load_from_disk

    ds, summary = build_pair_dataset(_records(), mesh, top_k=2)
    out = save_pair_dataset(ds, tmp_path / "mesh-pairs", summary)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "README.md", "dataset_dict.json", "documents", "pairs", "summary.json",
    ]  # fmt: skip
    assert not list(tmp_path.glob(".mesh-pairs*"))  # no temp folder left behind
    for config in ("documents", "pairs"):
        reloaded = load_dataset("parquet", data_files=str(out / config / "*.parquet"), split="train")
        assert reloaded.to_dict() == ds[config].to_dict()
        assert reloaded.features == ds[config].features
        # its Arrow cache is in the session's folder (tests/conftest.py), not ~/.cache/huggingface/datasets
        cached = [Path(f["filename"]) for f in reloaded.cache_files]
        assert cached and all(f.is_relative_to(HF_DATASETS_CACHE) for f in cached)
    assert load_from_disk(str(out))["pairs"].to_dict() == ds["pairs"].to_dict()
    assert load_pair_dataset(out)["documents"].to_dict() == ds["documents"].to_dict()
    meta = read_card_metadata(out / "README.md")
    assert meta["configs"] == [
        {
            "config_name": "documents",
            "data_files": [{"split": "train", "path": "documents/*.parquet"}],
            "default": True,
        },
        {"config_name": "pairs", "data_files": [{"split": "train", "path": "pairs/*.parquet"}]},
    ]
    assert meta["license"] == "other" and "pubmedqa: MIT" in meta["license_name"]
    card = (out / "README.md").read_text()
    assert "SimL(p, q) = cos(y_p ⊙ w, y_q ⊙ w)" in card and "log(depth_j + 1)" in card
    assert f"mined pairs: {len(ds['pairs']):,}" in card and "MeSH version: 2024" in card
    # rebuilding over a previous build replaces it; a foreign non-empty folder is refused
    ds2, _ = build_pair_dataset(_records()[:3], mesh, top_k=1)
    save_pair_dataset(ds2, out, arrow=False)
    assert load_pair_dataset(out)["documents"].num_rows == 3 and not (out / "dataset_dict.json").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a MeSH-pair dataset"):
        save_pair_dataset(ds, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_build_refuses_an_output_that_is_a_file_before_reading(tmp_path, mesh):
    (tmp_path / "afile").write_text("x")
    missing_input = [("bioasq", [tmp_path / "never_read.json"])]
    with pytest.raises(ConfigError, match=rf"^--output {tmp_path / 'afile'} is a file, not a folder$"):
        build_dataset_from_files(missing_input, tmp_path / "afile", mesh, progress=False)
    out = tmp_path / "afile" / "out"
    with pytest.raises(ConfigError, match=rf"^--output {out}: {tmp_path / 'afile'} is a file, not a folder$"):
        build_dataset_from_files(missing_input, out, mesh, progress=False)
    assert (tmp_path / "afile").read_text() == "x"


def test_cli_build_dataset(tmp_path, capsys):
    from biohicl.cli.main import main

    pubtator = tmp_path / "tiny.PubTator.txt"
    pubtator.write_text(
        "1|t|Diabetes.\n1|a|About diabetes.\n1\t0\t8\tdiabetes\tDisease\tD003920\n\n"
        "2|t|Type 2.\n2|a|About type 2.\n2\t0\t6\tT2DM\tDisease\tD003924\n\n"
        "3|t|Heart.\n3|a|\n3\t0\t5\theart\tDisease\tD006321\n"
    )
    bioasq = tmp_path / "allMeSH.json"
    bioasq.write_text(
        json.dumps({"articles": [{"pmid": "9", "title": "x", "abstractText": "y", "meshMajor": ["Heart"]}]})
    )
    out = tmp_path / "out"
    argv = ["build-dataset", "--source", "pubtator", "--input", str(pubtator), "--source", "bioasq", "--input",
            str(bioasq), "--output", str(out), "--top_k", "3", "--no_progress"]  # fmt: skip
    assert main(argv) == 2  # PubTator mentions and BioASQ indexing: mixing needs the option
    assert "mix MeSH label kinds" in capsys.readouterr().err and not out.exists()
    argv.append("--mix_label_kinds")
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "documents read: 4; kept: 3; skipped: 1" in text and "skipped (empty abstract): 1" in text
    assert "mined pairs: 2 (top-3, seed 0)" in text
    assert load_pair_dataset(out)["documents"]["pmid"] == ["1", "2", "9"]
    assert main([*argv, "--strict"]) == 2  # the empty abstract is an error in strict mode
    assert "record 3: empty abstract" in capsys.readouterr().err
    assert main(["build-dataset", "--source", "pubtator", "--source", "bioasq", "--input", "x", "--output", "o"]) == 2
    assert "--source pubtator has no --input after it" in capsys.readouterr().err


def test_cli_build_dataset_source_applies_to_the_inputs_after_it_in_command_line_order(tmp_path, capsys):
    """An --input before any --source is format-detected, not read with the later --source's reader; one --source
    covers every --input group after it up to the next --source."""
    from biohicl.cli import build_dataset
    from biohicl.cli.main import main

    def groups(*argv):
        return build_dataset.parse_args(["--output", "o", *argv]).groups()

    assert groups("--input", "X.nbib", "--source", "pubtator", "--input", "b.txt") == [
        ("auto", ["X.nbib"]), ("pubtator", ["b.txt"])
    ]  # fmt: skip
    assert groups("--source", "pubtator", "--input", "a", "--input", "b", "--source", "bioasq", "--input", "c") == [
        ("pubtator", ["a", "b"]), ("bioasq", ["c"])
    ]  # fmt: skip
    assert groups("--input", "a", "--input", "b") == [("auto", ["a", "b"])]
    nbib = tmp_path / "X.nbib"
    nbib.write_text(
        "PMID- 7\nTI  - Heart failure.\nAB  - About the heart.\nMH  - Heart Failure\n\n"
        "PMID- 8\nTI  - Diabetes.\nAB  - About diabetes.\nMH  - Diabetes Mellitus\n\n"
    )
    pubtator = tmp_path / "b.PubTator.txt"
    pubtator.write_text("1|t|Diabetes.\n1|a|About diabetes.\n1\t0\t8\tdiabetes\tDisease\tD003920\n\n")
    out = tmp_path / "out"
    argv = ["build-dataset", "--input", str(nbib), "--source", "pubtator", "--input", str(pubtator),
            "--output", str(out), "--top_k", "1", "--no_progress"]  # fmt: skip
    assert main(argv) == 2  # MEDLINE indexing and PubTator mentions: the mixing check sees the .nbib's kind
    assert "mix MeSH label kinds" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--mix_label_kinds"]) == 0
    text = capsys.readouterr().out
    assert "documents read: 3; kept: 3" in text
    assert sorted(load_pair_dataset(out)["documents"]["pmid"]) == ["1", "7", "8"]


def test_build_default_dataset_real_data(tmp_path, data_dir):
    """The default dataset: indexing only (PubMedQA, MEDLINE sample, bioasq_sample, pubmed_exports),
    decontaminated, with the dev split; counts as in docs/data.md."""
    from biohicl.data.splits import pubmedqa_dev_pmids

    ds, summary = build_default_dataset(tmp_path / "default", progress=False)
    docs, pairs = ds["documents"], ds["pairs"]
    assert summary.sources == {"pubmedqa": 1000, "medline": 2315, "bioasq": 2599, "medline-text": 1838}
    assert summary.documents == 7752 == len(docs) and summary.label_kinds == {"indexing": 7752}
    assert set(docs["label_kind"]) == {"indexing"} and "pubtator" not in docs["source"]
    assert summary.test_documents == 500 and docs["split"].count("test") == 500
    assert summary.splits == {"train": 6665, "dev": 587, "test": 500}
    assert summary.duplicates == 56
    # PubMedQA dev: the 250 drawn from the 500 non-test PQA-L ids, exactly the evaluation harness's draw
    items = json.loads((data_dir / "pubmedqa" / "ori_pqal.json").read_text())
    tests = set(json.loads((data_dir / "pubmedqa" / "test_ground_truth.json").read_text()))
    dev = set(pubmedqa_dev_pmids(set(items) - tests))
    split = dict(zip(docs["pmid"], docs["split"], strict=True))
    assert len(dev) == 250 and {split[p] for p in dev} == {"dev"} and {split[p] for p in tests} == {"test"}
    assert summary.dev == {"seed": 0, "fraction": 0.05, "pubmedqa_size": 250, "pubmedqa_dev": 250, "held_out": 337}
    # decontamination: the SciFact titles among the inputs are gone
    removed = summary.decontamination["documents"]
    assert sorted(r["pmid"] for r in removed) == ["15155677", "23263487", "25781442"]
    assert {r["evaluation_set"] for r in removed} == {"scifact"} and not set(docs["pmid"]) & {"15155677"}
    assert summary.decontamination["sets"] == {"pubmedqa-test": 500, "scifact": 5183, "biosses": 200}
    # pairs stay inside a split: no training pair touches a dev or test document
    assert summary.pairs == len(pairs) == 77_520
    assert all(split[a] == split[b] == s for a, b, s in zip(pairs["anchor_pmid"], pairs["partner_pmid"],
                                                            pairs["split"], strict=True))  # fmt: skip
    assert 0.3 < summary.mean_siml < 0.9
    card = (tmp_path / "default" / "README.md").read_text()
    assert "https://github.com/biohicl/biohicl" in card and "](https://github.com/)" not in card


def test_build_from_nlm_baseline_and_updates_applies_revisions_and_deletions(tmp_path, mesh):
    """The reviewer's synthetic NLM files in any order: a revised citation replaces the baseline's, a PMID a later
    update file deletes is left out (also when it was read before the deletion), a deletion-only file is read."""
    import gzip

    dm, heart = "D003920", "D006321"

    def nlm(name, citations=(), deletions=()):
        body = "".join(
            f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{p}</PMID><Article>'
            f"<ArticleTitle>T{p}.</ArticleTitle><Abstract><AbstractText>{a}</AbstractText></Abstract></Article>"
            f'<MeshHeadingList><MeshHeading><DescriptorName UI="{u}">x</DescriptorName></MeshHeading>'
            "</MeshHeadingList></MedlineCitation></PubmedArticle>"
            for p, a, u in citations
        )
        body += "<DeleteCitation>" + "".join(f"<PMID>{p}</PMID>" for p in deletions) + "</DeleteCitation>"
        with gzip.open(tmp_path / name, "wt") as handle:
            handle.write(f"<PubmedArticleSet>{body}</PubmedArticleSet>")
        return tmp_path / name

    base = nlm("pubmed25n0001.xml.gz", [("1", "Old one.", dm), ("2", "Two.", dm), ("3", "Three.", heart)])
    update = nlm("pubmed25n1275.xml.gz", [("1", "Revised one.", heart)], deletions=["3"])
    last = nlm("pubmed25n1276.xml.gz", deletions=["2"])
    for files in ([base, update, last], [last, update, base]):
        ds, summary = build_dataset_from_files(
            [("auto", files)], None, mesh, top_k=1, progress=False, decontaminate=False, dev_split=None,
        )  # fmt: skip
        docs = ds["documents"]
        assert list(zip(docs["pmid"], docs["abstract"], strict=True)) == [("1", "Revised one.")]
        assert summary.read["kept"] == 1 and summary.read["unrecognised_files"] == []
        assert summary.read["skipped"] == {"revised by a later update file": 1, "deleted by an update file": 2}

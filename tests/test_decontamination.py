"""Decontamination (evaluation documents never trained on) and the dev split, on hand-made sets and the real data."""

from __future__ import annotations

import json

import pytest

from biohicl.data.build import build_dataset_from_files
from biohicl.data.decontamination import MIN_TITLE_CHARS, UNCHECKED_RETRIEVAL_TASKS, Decontaminator, normalise
from biohicl.data.pairs import build_pair_dataset
from biohicl.data.records import MeshRecord
from biohicl.data.splits import DevSplit, is_dev_document, pubmedqa_dev_pmids, pubmedqa_non_test_pmids
from biohicl.data.storage import load_pair_dataset
from biohicl.errors import ConfigError, DataError

DM, T2, HEART = "D003920", "D003924", "D006321"
SCIFACT_TITLE = "Helicobacter pylori induces AGS cell motility and elongation via independent signaling pathways."
SENTENCE = "It has recently been shown that Craf is essential for Kras G12D-induced NSCLC."


def _beir(folder, docs):
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return folder


def _sets(tmp_path):
    root = tmp_path / "data"
    (root / "pubmedqa").mkdir(parents=True)
    (root / "pubmedqa" / "test_ground_truth.json").write_text(json.dumps({"900": "yes"}))
    _beir(root / "scifact", [{"_id": "s1", "title": "Helicobacter pylori induces AGS cell motility.", "text": "x"}])
    (root / "biosses").mkdir()
    (root / "biosses" / "biosses.tsv").write_text(f"id\tsentence1\tsentence2\n1\t{SENTENCE}\tOther sentence here.\n")
    beir = _beir(
        tmp_path / "mycorpus",
        [{"_id": "b7", "title": "", "text": "A benchmark abstract that is long enough to be matched."}],
    )
    return root, beir


def test_normalise():
    assert (
        normalise("  Helicobacter pylori induces AGS-cell   motility.\u00a0")
        == "helicobacter pylori induces ags cell motility"
    )
    assert normalise("ＡＢＣ_déjà") == "abc déjà"  # NFKC, case folded, underscores are separators


def test_decontaminator_matches_each_kind_of_set(tmp_path):
    root, beir = _sets(tmp_path)
    dec = Decontaminator.from_data_dir(root, beir=[beir])
    assert dec.sets == {"pubmedqa-test": 1, "scifact": 1, "biosses": 2, "mycorpus": 1}
    assert dec.missing == ["nfcorpus", "trec-covid", "scidocs"]  # evaluated, but no corpus here
    records = [
        MeshRecord("1", "HELICOBACTER PYLORI induces AGS cell motility", "Anything.", (DM,), "medline-text"),
        MeshRecord("2", "Other", "Intro. " + SENTENCE.lower() + " More text.", (DM,), "bioasq"),
        MeshRecord("3", "", "A benchmark abstract, that is long enough to be matched!", (DM,), "medline"),
        MeshRecord("900", "", "A PubMedQA test abstract copied elsewhere.", (DM,), "bioasq"),
        MeshRecord("900", "", "The PubMedQA item itself keeps split=test.", (DM,), "pubmedqa", split="test"),
        MeshRecord("4", "Editorial", "x", (DM,), "bioasq"),  # short titles never match
        MeshRecord("5", "Helicobacter pylori and AGS cells", "Unrelated.", (DM,), "bioasq"),
    ]
    why = [dec.check(r) for r in records]
    assert [(w.evaluation_set, w.reason) if w else None for w in why] == [
        ("scifact", "same title"),
        ("biosses", "contains a BIOSSES sentence"),
        ("mycorpus", "same abstract"),
        ("pubmedqa-test", "PMID of a PubMedQA test item"),
        None,
        None,
        None,
    ]
    assert why[1].match == "biosses pair 1 sentence1" and why[2].match == "mycorpus doc b7"
    log = dec.to_dict()
    assert log["removed"] == 4 and log["by_set"] == {"scifact": 1, "biosses": 1, "mycorpus": 1, "pubmedqa-test": 1}
    assert [d["pmid"] for d in log["documents"]] == ["1", "2", "3", "900"]
    unmarked = MeshRecord("900", "", "A PubMedQA test item read without its test ids.", (DM,), "pubmedqa")
    assert dec.check(unmarked).evaluation_set == "pubmedqa-test"


def test_a_title_of_exactly_the_minimum_length_matches_one_shorter_does_not(tmp_path):
    """Titles of at least MIN_TITLE_CHARS normalised characters are matched: exactly 20 is, 19 is not."""
    at, short = "Aspirin, and the GUTS!", "Aspirin and the gut."
    assert len(normalise(at)) == MIN_TITLE_CHARS and len(normalise(short)) == MIN_TITLE_CHARS - 1
    root = tmp_path / "data"
    root.mkdir()
    _beir(root / "scifact", [{"_id": "s1", "title": at, "text": "x"}, {"_id": "s2", "title": short, "text": "y"}])
    dec = Decontaminator.from_data_dir(root)
    same = dec.check(MeshRecord("1", "aspirin and the guts", "Other text.", (DM,), "bioasq"))
    assert same is not None and (same.evaluation_set, same.reason) == ("scifact", "same title")
    assert dec.check(MeshRecord("2", "ASPIRIN AND THE GUT", "Other text.", (DM,), "bioasq")) is None


def test_decontaminator_missing_sets_and_bad_beir(tmp_path):
    dec = Decontaminator.from_data_dir(tmp_path)
    assert dec.sets == {} and dec.missing == [
        "pubmedqa-test",
        "scifact",
        "biosses",
        "nfcorpus",
        "trec-covid",
        "scidocs",
    ]
    (tmp_path / "nocorpus").mkdir()
    with pytest.raises(DataError, match=r"nocorpus: not a BEIR folder with a corpus"):
        Decontaminator.from_data_dir(tmp_path, beir=[tmp_path / "nocorpus"])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "corpus.jsonl").write_text('{"_id": "1", "title": "t"}\n{"title": "no id"}\n')
    with pytest.raises(DataError, match=r"broken/corpus\.jsonl: line 2: malformed BEIR corpus line"):
        Decontaminator.from_data_dir(tmp_path, beir=[tmp_path / "broken"])
    (tmp_path / "latin1").mkdir()
    (tmp_path / "latin1" / "corpus.jsonl").write_bytes(b'{"_id": "1", "text": "ok"}\n{"_id": "2", "text": "caf\xe9"}\n')
    with pytest.raises(
        DataError, match=r"latin1/corpus\.jsonl: line 2: cannot decode the line: byte 0xe9 is not UTF-8"
    ):
        Decontaminator.from_data_dir(tmp_path, beir=[tmp_path / "latin1"])
    (tmp_path / "biosses").mkdir()
    (tmp_path / "biosses" / "biosses.tsv").write_bytes(b"id\tsentence1\tsentence2\n1\tA\tB\n2\tcaf\xe9\tC\n")
    with pytest.raises(DataError, match=r"biosses\.tsv: line 3: cannot decode the line: byte 0xe9 is not UTF-8"):
        Decontaminator.from_data_dir(tmp_path)


def test_an_explicit_test_ids_file_that_does_not_exist_is_an_error(tmp_path):
    root, _ = _sets(tmp_path)
    typo = tmp_path / "test_ground_truht.json"
    with pytest.raises(DataError, match=r"^\S*test_ground_truht\.json: input file not found$"):
        Decontaminator.from_data_dir(root, test_ids=typo)
    pqal = root / "pubmedqa" / "ori_pqal.json"
    pqal.write_text(json.dumps({"900": {}, "901": {}}))
    assert pubmedqa_non_test_pmids(pqal) == {"901"}  # the default file beside it
    with pytest.raises(DataError, match=r"^\S*test_ground_truht\.json: input file not found$"):
        pubmedqa_non_test_pmids(pqal, typo)


@pytest.mark.parametrize("where", ["explicit", "data_dir", "beside"])
def test_build_marks_the_pubmedqa_test_items_wherever_their_file_is(tmp_path, mesh, monkeypatch, where):
    items = {
        str(100 + i): {"QUESTION": f"Q{i}?", "CONTEXTS": [f"Abstract {i}."], "MESHES": ["Heart"]} for i in range(30)
    }
    tests = {str(100 + i): "yes" for i in range(10)}
    (tmp_path / "pq").mkdir()
    pqal = tmp_path / "pq" / "ori_pqal.json"
    pqal.write_text(json.dumps(items))
    root, _ = _sets(tmp_path)  # its pubmedqa/test_ground_truth.json holds "900" only
    ids = {"explicit": tmp_path / "ids.json", "data_dir": root / "pubmedqa" / "test_ground_truth.json"}.get(
        where, tmp_path / "pq" / "test_ground_truth.json"
    )
    ids.write_text(json.dumps(tests))
    if where == "beside":
        (root / "pubmedqa" / "test_ground_truth.json").unlink()
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(root))
    dev_split = DevSplit(fraction=0.0, pubmedqa_size=5)
    ds, summary = build_dataset_from_files(
        [("pubmedqa", [pqal])], None, mesh, progress=False, test_ids=ids if where == "explicit" else None,
        dev_split=dev_split,
    )  # fmt: skip
    split = dict(zip(ds["documents"]["pmid"], ds["documents"]["split"], strict=True))
    assert {p for p, s in split.items() if s == "test"} == set(tests)
    assert {p for p, s in split.items() if s == "dev"} == set(pubmedqa_dev_pmids(set(items) - set(tests), 5))
    assert summary.test_documents == 10 and summary.decontamination["sets"]["pubmedqa-test"] == 10


def test_build_removes_evaluation_documents_and_reports_them(tmp_path, mesh):
    root, beir = _sets(tmp_path)
    dec = Decontaminator.from_data_dir(root, beir=[beir])
    records = [
        MeshRecord("1", "Helicobacter pylori induces AGS cell motility.", "a", (DM,), "bioasq"),
        MeshRecord("2", "t", "b", (T2,), "bioasq"),
        MeshRecord("3", "t", "c", (DM, HEART), "bioasq"),
    ]
    ds, summary = build_pair_dataset(records, mesh, decontaminator=dec)
    assert ds["documents"]["pmid"] == ["2", "3"]
    assert summary.decontamination["removed"] == 1
    assert summary.decontamination["documents"] == [
        {"pmid": "1", "source": "bioasq", "evaluation_set": "scifact", "reason": "same title",
         "match": "Helicobacter pylori induces AGS cell motility."}
    ]  # fmt: skip
    assert "removed pmid '1' (bioasq): scifact: same title" in str(summary)


def test_dev_split_rules():
    split = DevSplit()
    assert split.split_of("21645374", "test", {"21645374"}) == "test"  # test is never re-labelled
    assert split.split_of("7", "train", {"7"}) == "dev"
    assert split.split_of("12", "train", set()) == "dev" and is_dev_document("12")
    assert split.split_of("1", "train", set()) == "train"
    share = sum(is_dev_document(str(p)) for p in range(20_000)) / 20_000
    assert 0.045 < share < 0.055  # the 5 % held out, by a hash of the PMID
    assert not any(is_dev_document(str(p), fraction=0) for p in range(1000))
    assert [is_dev_document(str(p), seed=1) for p in range(200)] != [is_dev_document(str(p)) for p in range(200)]
    for bad in ({"fraction": 1.0}, {"fraction": -0.1}, {"pubmedqa_size": -1}):
        with pytest.raises(ConfigError):
            DevSplit(**bad)


def test_the_dev_seed_picks_which_documents_are_held_out():
    """``DevSplit.split_of`` hashes with its own seed: seeds 0 and 1 hold out different PMIDs, one seed the same."""
    pmids = [str(p) for p in range(2000)]

    def dev(split: DevSplit) -> set[str]:
        return {p for p in pmids if split.split_of(p, "train", set()) == "dev"}

    zero, one = dev(DevSplit(seed=0)), dev(DevSplit(seed=1))
    assert zero == {p for p in pmids if is_dev_document(p, seed=0)} and 60 < len(zero) < 140
    assert one == {p for p in pmids if is_dev_document(p, seed=1)} and 60 < len(one) < 140
    assert zero != one and len(zero & one) < len(zero) / 2  # nearly independent draws, not the same set
    assert dev(DevSplit(seed=1)) == one  # the same seed gives the same split


def test_pubmedqa_dev_from_the_real_non_test_items(data_dir):
    non_test = pubmedqa_non_test_pmids(data_dir / "pubmedqa" / "ori_pqal.json")
    items = json.loads((data_dir / "pubmedqa" / "ori_pqal.json").read_text())
    tests = json.loads((data_dir / "pubmedqa" / "test_ground_truth.json").read_text())
    assert non_test == set(items) - set(tests) and len(non_test) == 500
    dev = DevSplit().pubmedqa_dev()  # no pool given and none recorded: empty
    assert dev == set()
    dev = DevSplit(pubmedqa_non_test=non_test).pubmedqa_dev()
    assert dev == set(pubmedqa_dev_pmids(non_test)) and len(dev) == 250 and dev <= non_test
    assert DevSplit(pubmedqa_non_test=non_test, pubmedqa_size=0).pubmedqa_dev() == set()


def test_cli_detects_formats_decontaminates_and_records_the_dev_split(tmp_path, capsys, data_dir):
    from biohicl.cli.main import main

    exports = tmp_path / "exports"
    exports.mkdir()
    text = "PMID- {pmid}\nTI  - {title}\nAB  - Abstract {pmid}.\nMH  - {mh}\nMH  - *Humans\n\n"
    (exports / "a.nbib").write_text(
        text.format(pmid=101, title="Heart study.", mh="Heart/physiology")
        + text.format(pmid=102, title=SCIFACT_TITLE, mh="Diabetes Mellitus")
        + text.format(pmid=12, title="A held-out one.", mh="Diabetes Mellitus, Type 2"),
        encoding="utf-8",
    )
    (exports / "b.xml").write_text(
        '<?xml version="1.0"?><PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>101</PMID><Article>'
        "<ArticleTitle>Duplicate</ArticleTitle><Abstract><AbstractText>Again.</AbstractText></Abstract></Article>"
        '<MeshHeadingList><MeshHeading><DescriptorName UI="D006321">Heart</DescriptorName></MeshHeading>'
        "</MeshHeadingList></MedlineCitation></PubmedArticle></PubmedArticleSet>",
        encoding="utf-8",
    )
    (exports / "README.md").write_text("# my exports\n")
    out = tmp_path / "out"
    argv = ["build-dataset", "--input", *map(str, sorted(exports.iterdir())), "--output", str(out), "--no_progress",
            "--pubmedqa_dev_size", "10", "--dev_seed", "0"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "files not read (format not recognised): exports/README.md" in printed  # as summary.json records it
    docs = load_pair_dataset(out)["documents"]
    assert docs["pmid"] == ["101", "12"] and docs["source"] == ["medline-text", "medline-text"]
    assert docs["split"] == ["train", "dev"] and docs["major_mesh"] == [["D006801"], ["D006801"]]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dev"] == {"seed": 0, "fraction": 0.05, "pubmedqa_size": 10, "pubmedqa_dev": 0, "held_out": 1}
    assert summary["duplicates"] == 1 and summary["read"]["unrecognised_files"] == ["exports/README.md"]
    assert summary["read"]["examples"]["duplicate pmid"] == [
        "exports/b.xml, record 1: pmid '101' (also in exports/a.nbib, record 1)"
    ]
    assert str(tmp_path) not in (out / "summary.json").read_text()  # no machine path in what is published
    assert [(d["pmid"], d["evaluation_set"]) for d in summary["decontamination"]["documents"]] == [("102", "scifact")]
    assert "removed pmid '102' (medline-text): scifact: same title" in printed
    card = (out / "README.md").read_text()
    assert "scifact" in card and "102" in card and "held out" in card
    assert "No training document is part of an evaluation set" not in card  # not with sets left unchecked
    assert "; not checked (no corpus here): nfcorpus, trec-covid, scidocs (to include one, give its BEIR " in card
    assert "matched by PMID and, when `ori_pqal.json` is beside the test ids, by normalised abstract" in card
    assert main([*argv, "--no_decontaminate"]) == 0
    assert load_pair_dataset(out)["documents"]["pmid"] == ["101", "102", "12"]
    capsys.readouterr()
    assert main([*argv, "--dev_fraction", "1.5"]) == 2
    assert "dev fraction must be in [0, 1)" in capsys.readouterr().err


@pytest.mark.parametrize("pubmedqa_first", [True, False])
def test_a_pubmedqa_item_is_its_pubmedqa_record_whatever_the_input_order(tmp_path, mesh, monkeypatch, pubmedqa_first):
    """A copy of a PubMedQA test (or dev) item under the same PMID in another corpus, read before ori_pqal.json,
    neither removes the test item (as "pubmedqa-test") nor takes the dev item's place."""
    items = {
        str(100 + i): {"QUESTION": f"Q{i}?", "CONTEXTS": [f"Abstract {i}."], "MESHES": ["Heart"]} for i in range(20)
    }
    tests = {str(100 + i): "yes" for i in range(10)}
    root, _ = _sets(tmp_path)
    (root / "pubmedqa" / "test_ground_truth.json").write_text(json.dumps(tests))
    pqal = root / "pubmedqa" / "ori_pqal.json"
    pqal.write_text(json.dumps(items))
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(root))
    dev_split = DevSplit(fraction=0.0, pubmedqa_size=5)
    dev = pubmedqa_dev_pmids(set(items) - set(tests), 5)
    copies = tmp_path / "copies.txt"
    text = "PMID- {pmid}\nTI  - A copy of {pmid}\nAB  - Copied abstract {pmid}.\nMH  - Diabetes Mellitus\n\n"
    copies.write_text(text.format(pmid="103") + text.format(pmid=dev[0]) + text.format(pmid="7"), encoding="utf-8")
    inputs = [pqal, copies] if pubmedqa_first else [copies, pqal]
    ds, summary = build_dataset_from_files([("auto", inputs)], None, mesh, progress=False, dev_split=dev_split)
    docs = ds["documents"]
    by_pmid = {p: (s, sp) for p, s, sp in zip(docs["pmid"], docs["source"], docs["split"], strict=True)}
    assert {p for p, (_, sp) in by_pmid.items() if sp == "test"} == set(tests) and summary.test_documents == 10
    assert by_pmid["103"] == ("pubmedqa", "test") and by_pmid[dev[0]] == ("pubmedqa", "dev")
    assert {p for p, (_, sp) in by_pmid.items() if sp == "dev"} == set(dev)
    assert by_pmid["7"] == ("medline-text", "train") and len(docs) == 21
    assert summary.duplicates == 2 and summary.decontamination["removed"] == 0


def test_a_copy_of_a_pubmedqa_test_abstract_under_another_pmid_is_removed(tmp_path, mesh, monkeypatch):
    root, _ = _sets(tmp_path)  # test ids: "900"
    contexts = ["Sublingual varices have earlier been related to ageing.", "We studied 1,000 adults (RESULTS)."]
    items = {
        "900": {"QUESTION": "Q?", "CONTEXTS": contexts, "LONG_ANSWER": "They are related.", "MESHES": ["Heart"]},
        "901": {"QUESTION": "Q2?", "CONTEXTS": ["A non-test PubMedQA item with an abstract long enough."],
                "MESHES": ["Heart"]},
    }  # fmt: skip
    (root / "pubmedqa" / "ori_pqal.json").write_text(json.dumps(items))
    dec = Decontaminator.from_data_dir(root)
    assert dec.sets["pubmedqa-test"] == 1 and dec.missing == ["nfcorpus", "trec-covid", "scidocs"]
    records = [
        MeshRecord("1", "Other", "SUBLINGUAL varices have earlier been related to ageing.\nWe studied 1,000 adults "
                   "(results)", (DM,), "medline-text"),
        MeshRecord("2", "", " ".join(contexts) + " They are related.", (DM,), "bioasq"),  # the whole abstract
        MeshRecord("3", "", contexts[0], (DM,), "bioasq"),  # one context only: not the abstract
        MeshRecord("4", "", items["901"]["CONTEXTS"][0], (DM,), "bioasq"),  # a non-test item is no evaluation text
    ]  # fmt: skip
    why = [dec.check(r) for r in records]
    assert [(w.evaluation_set, w.reason, w.match) if w else None for w in why] == [
        ("pubmedqa-test", "same abstract", "pubmedqa-test doc 900"),
        ("pubmedqa-test", "same abstract", "pubmedqa-test doc 900"),
        None,
        None,
    ]
    copies = tmp_path / "copies.txt"
    copies.write_text(f"PMID- 5\nTI  - A copy\nAB  - {' '.join(contexts)}\nMH  - Heart\n\n", encoding="utf-8")
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(root))
    ds, summary = build_dataset_from_files([("auto", [copies, root / "pubmedqa" / "ori_pqal.json"])], None, mesh,
                                           progress=False, dev_split=None)  # fmt: skip
    assert sorted(ds["documents"]["pmid"]) == ["900", "901"]
    assert summary.decontamination["by_set"] == {"pubmedqa-test": 1}
    assert "removed pmid '5' (medline-text): pubmedqa-test: same abstract: pubmedqa-test doc 900" in str(summary)


def test_every_evaluated_retrieval_task_is_checked_or_named_missing(tmp_path):
    from biohicl.evaluation import tasks

    # the retrieval tasks biohicl evaluates: SciFact (in the data dir) and the ones whose corpus is not there
    retrieval = {name for name in tasks.TASKS if tasks.is_retrieval_task(name)}
    assert retrieval == {"scifact", *UNCHECKED_RETRIEVAL_TASKS}
    root, _ = _sets(tmp_path)
    (root / "nfcorpus").mkdir()
    (root / "nfcorpus" / "qrels.beir-v1.0.0-nfcorpus.test.txt").write_text("1 0 MED-1 2\n")  # qrels only: unchecked
    dec = Decontaminator.from_data_dir(root)
    assert dec.missing == ["nfcorpus", "trec-covid", "scidocs"] and "nfcorpus" not in dec.sets
    # a corpus under the data dir, or a --beir folder of that name, is checked
    (root / "nfcorpus" / "corpus.jsonl").write_text(
        '{"_id": "MED-1", "title": "Statin use and breast cancer survival", "text": "x"}\n'
    )
    given = tmp_path / "given" / "scidocs"
    given.mkdir(parents=True)
    (given / "corpus.jsonl").write_text('{"_id": "s1", "title": "A citation-informed transformer", "text": "y"}\n')
    dec = Decontaminator.from_data_dir(root, beir=[given])
    assert dec.sets["nfcorpus"] == 1 and dec.sets["scidocs"] == 1 and dec.missing == ["trec-covid"]
    record = MeshRecord("5", "Statin use and breast cancer survival", "Anything else.", (DM,), "medline-text")
    assert dec.check(record).evaluation_set == "nfcorpus"

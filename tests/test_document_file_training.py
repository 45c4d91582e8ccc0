"""Training on a documents FILE (``biohicl train --dataset_path docs.jsonl``) drops what ``biohicl build-dataset``
would: evaluation test data (the build's decontamination, by PMID and by text), later copies of an id and, when
``pubmedqa:dev`` is an evaluation task, the PubMedQA dev items; and it composes a document's text as the jsonl source
does (title + the first non-blank of ``abstract``/``text``), keeping the title for the title term."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from biohicl.settings import data_path
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.run import load_training_data, train_biohicl
from tests.conftest import synthetic_documents

TEST_PMID = "21645374"  # an official PubMedQA test item (test_ground_truth.json)
DEV_PMID = "10411439"  # one of the 250 PubMedQA dev items of seed 0 (biohicl.data.splits.pubmedqa_dev_pmids)
TEXT_COPY_OF = "16418930"  # another test item, planted under a non-PubMed id with its abstract only
SCIFACT_TITLE = (  # SciFact corpus document 4983's
    "Microstructural development of human newborn cerebral white matter assessed in vivo by diffusion tensor "
    "magnetic resonance imaging."
)


@pytest.fixture(scope="module")
def pqal() -> dict:
    path = data_path("pubmedqa", "ori_pqal.json")
    if not path.is_file():
        pytest.skip("no PubMedQA data in BIOHICL_DATA_DIR")
    return json.loads(path.read_text(encoding="utf-8"))


def pqal_row(pqal: dict, pmid: str, **extra) -> dict:
    item = pqal[pmid]
    return {"pmid": pmid, "title": "", "abstract": " ".join(item["CONTEXTS"]), "mesh": item["MESHES"], **extra}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def contaminated_file(tmp_path: Path, pqal: dict) -> tuple[Path, list[dict]]:
    """The synthetic training documents (20 ``train``, 4 ``test`` by their ``split``) with a PubMedQA test item,
    a copy of another test item's abstract under the id ``own-1``, a PubMedQA dev item, a later copy of document
    1000's id and a SciFact document's title under the id ``own-2``, all marked ``train``; and the training
    documents expected of it (without ``pubmedqa:dev``)."""
    docs = synthetic_documents()
    copy = {**docs[3], "title": "a second copy", "abstract": "of document 1000's id"}
    copy["pmid"] = docs[0]["pmid"]
    planted = [
        pqal_row(pqal, TEST_PMID, split="train"),
        {**pqal_row(pqal, TEXT_COPY_OF, split="train"), "pmid": "own-1", "title": "my own copy"},
        pqal_row(pqal, DEV_PMID, split="train"),
        copy,
        {
            "id": "own-2",
            "title": SCIFACT_TITLE,
            "abstract": "a SciFact document's title",
            "mesh": ["D001943"],
            "split": "train",
        },
    ]
    rows = docs[:6] + planted + docs[6:]
    expected = [r for r in docs if r["split"] == "train"]
    expected.insert(5, planted[2])  # the dev item, where it stands: the test items and the copy are gone
    return write_jsonl(tmp_path / "docs.jsonl", rows), expected


def texts(rows: list[dict]) -> list[str]:
    return [f"{r['title']} {r['abstract']}".strip() for r in rows]


def file_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "biohicl.training.document_file"]


def test_evaluation_test_data_and_later_copies_of_an_id_are_dropped(tmp_path, mesh, pqal, caplog):
    path, expected = contaminated_file(tmp_path, pqal)
    args = BioHiCLTrainingArguments(output_dir=str(tmp_path / "o"), dataset_path=str(path))
    with caplog.at_level(logging.WARNING):
        data = load_training_data(args, mesh)
    assert data.documents["text"] == texts(expected)  # the dev item is trained on: pubmedqa:dev is not evaluated
    assert data.stats["documents"] == 21 and data.stats["documents_in_dataset"] == 29
    assert data.stats["document_file"] == {
        "rows": 29,
        "evaluation_data_removed": 3,
        "evaluation_data_by_set": {"pubmedqa-test": 2, "scifact": 1},
        "duplicate_ids_removed": 1,
        "pubmedqa_dev_removed": 0,
        "no_label_removed": 0,
        "empty_abstract_removed": 0,
    }
    messages = file_warnings(caplog)
    assert len(messages) == 2, messages
    assert messages[0] == (
        f"{path}: 3 documents of evaluation test data dropped, as biohicl build-dataset drops them "
        f"(pubmedqa-test 2, scifact 1), e.g. id {TEST_PMID}: PMID of a PubMedQA test item"
    )
    assert messages[1] == f"{path}: 1 later copy of a document id dropped (the first is kept), e.g. id 1000"


@pytest.mark.parametrize("task", ["pubmedqa:dev", "pubmedqa-context:dev"])
def test_pubmedqa_dev_items_are_dropped_when_pubmedqa_dev_is_evaluated(tmp_path, mesh, pqal, caplog, task):
    path, expected = contaminated_file(tmp_path, pqal)
    args = BioHiCLTrainingArguments(
        output_dir=str(tmp_path / "o"), dataset_path=str(path), eval_tasks=["biosses", task], eval_strategy="steps"
    )
    with caplog.at_level(logging.WARNING):
        data = load_training_data(args, mesh)
    assert data.documents["text"] == texts([r for r in expected if r.get("pmid") != DEV_PMID])
    assert data.stats["document_file"]["pubmedqa_dev_removed"] == 1
    assert data.stats["documents"] == 20
    assert file_warnings(caplog)[-1] == (
        f"{path}: 1 PubMedQA dev item dropped: {task}, an evaluation task of this run, scores on them, "
        f"e.g. id {DEV_PMID}"
    )


def test_a_test_item_outside_the_training_splits_is_left_to_the_split(tmp_path, mesh, pqal, caplog):
    """A row marked ``test`` is dropped by ``train_splits``, as in a built dataset (where PubMedQA's own test records
    keep ``split="test"``): not counted as evaluation data removed."""
    docs = synthetic_documents()
    path = write_jsonl(tmp_path / "docs.jsonl", [pqal_row(pqal, TEST_PMID, split="test"), *docs])
    args = BioHiCLTrainingArguments(output_dir=str(tmp_path / "o"), dataset_path=str(path))
    with caplog.at_level(logging.WARNING):
        data = load_training_data(args, mesh)
    assert data.documents["text"] == texts([d for d in docs if d["split"] == "train"])
    assert data.stats["document_file"]["evaluation_data_removed"] == 0
    assert file_warnings(caplog) == []


def test_a_file_with_no_document_in_the_training_splits_says_so(tmp_path, mesh):
    """Every row outside ``train_splits`` is no document dropped: the file is refused as a dataset folder without
    one is, naming the splits; it read ``no training document left (, as biohicl build-dataset drops them)``."""
    from biohicl.errors import ConfigError

    path = write_jsonl(tmp_path / "docs.jsonl", [{**d, "split": "test"} for d in synthetic_documents()])
    args = BioHiCLTrainingArguments(output_dir=str(tmp_path / "o"), dataset_path=str(path))
    with pytest.raises(ConfigError) as error:
        load_training_data(args, mesh)
    assert str(error.value) == f"{path}: no documents in split(s) train"


def hf_export(tmp_path: Path) -> Path:
    """The synthetic training documents as a Hugging Face ``to_json`` export writes them: ``"text": null`` on every
    line (no ``split`` column), with a later copy of an id."""
    rows = [{**d, "text": None} for d in synthetic_documents() if d.pop("split") == "train"]
    rows.append({**rows[5], "title": "a later copy", "abstract": "dropped"})
    rows[1] = {**rows[1], "abstract": "", "text": "the text of a document whose abstract is blank"}
    rows[2] = {**rows[2], "abstract": None}
    rows[2]["text"] = "another text under a null abstract"
    return write_jsonl(tmp_path / "export.jsonl", rows)


def test_a_null_text_column_keeps_title_and_abstract(tmp_path, mesh):
    path = hf_export(tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()][:-1]  # the later copy is dropped
    args = BioHiCLTrainingArguments(output_dir=str(tmp_path / "o"), dataset_path=str(path), title_weight=0.5)
    data = load_training_data(args, mesh)  # with the title term, which reads title and abstract
    abstracts = [r["abstract"] or r["text"] for r in rows]  # the first non-blank, as the jsonl source reads
    assert data.documents["text"] == [f"{r['title']} {a}" for r, a in zip(rows, abstracts, strict=True)]
    assert data.documents["title"] == [r["title"] for r in rows]
    assert data.documents["abstract"] == abstracts


def test_a_dataset_folder_with_an_empty_text_column_trains_on_what_evaluation_encodes(tmp_path, mesh):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from biohicl.data.documents import split_documents

    docs = synthetic_documents()
    for i, doc in enumerate(docs):  # an empty or blank `text` falls back to title + abstract; a real one is kept
        doc["text"] = ["", "  ", f" own text {i} "][i % 3]
    (tmp_path / "data" / "documents").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(docs), tmp_path / "data" / "documents" / "part-0.parquet")
    args = BioHiCLTrainingArguments(output_dir=str(tmp_path / "o"), dataset_path=str(tmp_path / "data"))
    trained = load_training_data(args, mesh).documents["text"]
    expected = [
        f"{d['title']} {d['abstract']}" if i % 3 != 2 else f"own text {i}"
        for i, d in enumerate(docs)
        if d["split"] == "train"
    ]
    assert trained == expected
    assert trained == split_documents(tmp_path / "data", "train")[0]


def test_the_title_term_trains_on_an_exported_file(tiny_bert_dir, tmp_path):
    args = BioHiCLTrainingArguments(
        output_dir=str(tmp_path / "run"), base_model=str(tiny_bert_dir), base_model_hub_id="test/tiny-bert",
        dataset_path=str(hf_export(tmp_path)), max_steps=1, per_device_train_batch_size=8, max_length=32,
        logging_steps=1, save_strategy="no", report_to="none", lora_target_modules=["query", "value"], use_cpu=True,
        seed=7, disable_tqdm=True, title_weight=1.0,
    )  # fmt: skip
    run = train_biohicl(args)
    state = json.loads((run / "trainer_state.json").read_text())
    (step,) = [e for e in state["log_history"] if "loss_mse" in e]
    assert step["loss_title"] > 0.0
    assert step["loss"] == pytest.approx(step["loss_mse"] + 0.1 * step["loss_con"] + step["loss_title"], rel=1e-5)


# ------------------------------------------------------------------------------- a file the build reads, read alike
def file_args(tmp_path: Path, path: Path, **values) -> BioHiCLTrainingArguments:
    return BioHiCLTrainingArguments(output_dir=str(tmp_path / "o"), dataset_path=str(path), **values)


def unique(labels: list[str]) -> list[str]:
    """Each descriptor once, as the build keeps a document's labels."""
    return list(dict.fromkeys(labels))


def test_a_file_with_a_utf8_bom_trains_as_without_it(tmp_path, mesh):
    """Windows editors write a BOM; the build reads such a file, and so does training (line 1 included)."""
    docs = synthetic_documents()
    plain = write_jsonl(tmp_path / "plain.jsonl", docs)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes().replace(b"\n", b"\r\n"))
    expected = load_training_data(file_args(tmp_path, plain), mesh).documents.to_dict()
    assert load_training_data(file_args(tmp_path, bom), mesh).documents.to_dict() == expected


def test_labels_given_as_a_list_or_a_bar_separated_string_mix_in_one_file(tmp_path, mesh):
    docs = synthetic_documents()
    mixed = [{**d, "mesh": " | ".join(d["mesh"]) + "|"} if i % 4 == 1 else d for i, d in enumerate(docs)]
    data = load_training_data(file_args(tmp_path, write_jsonl(tmp_path / "mixed.jsonl", mixed)), mesh)
    assert data.documents["labels"] == [unique(d["mesh"]) for d in docs if d["split"] == "train"]


def test_a_line_whose_labels_have_another_field_name_trains_on_them(tmp_path, mesh):
    """The build takes each line's first label field (``mesh``, ``labels``, ...): so does training."""
    docs = synthetic_documents()
    docs[3]["labels"] = "|".join(docs[3].pop("mesh"))
    docs[5] = {**docs[5], "mesh": None, "mesh_ids": docs[5]["mesh"]}
    data = load_training_data(file_args(tmp_path, write_jsonl(tmp_path / "docs.jsonl", docs)), mesh)
    expected = [d.get("mesh") or d.get("mesh_ids") or d["labels"].split("|") for d in docs if d["split"] == "train"]
    assert data.documents["labels"] == [unique(labels) for labels in expected]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mesh", 7, "line 3: `mesh` must be a list of strings or a |-separated string, got 7"),
        ("mesh", ["D003920", 7], "line 3: `mesh` must be a list of strings or a |-separated string, got "),
        ("year", [1999], "line 3: `year` is a list here and a number on line 1; give one type per field"),
        ("year", 2**64, f"line 3: `year` is {2**64}, outside the 64-bit integers a table holds; give it as a string"),
        ("year", -(2**63) - 1, "line 3: `year` is -9223372036854775809, outside the 64-bit integers a table holds"),
    ],
)
def test_a_field_of_another_type_on_some_line_names_the_line(tmp_path, mesh, field, value, message):
    import re

    from biohicl.errors import DataError

    docs = [{**d, "year": 1999} for d in synthetic_documents()]
    docs[2] = {**docs[2], field: value}
    path = write_jsonl(tmp_path / "docs.jsonl", docs)
    with pytest.raises(DataError, match=f"^{re.escape(f'{path}: {message}')}"):
        load_training_data(file_args(tmp_path, path), mesh)


def test_a_line_without_label_kind_is_an_indexing_document(tmp_path, mesh, caplog):
    """The build reads a missing ``label_kind`` as ``indexing``: such lines train with the lines that say so."""
    docs = [{**d, "label_kind": "indexing"} if i % 2 else d for i, d in enumerate(synthetic_documents())]
    with caplog.at_level(logging.WARNING):
        data = load_training_data(file_args(tmp_path, write_jsonl(tmp_path / "docs.jsonl", docs)), mesh)
    assert data.stats["label_kinds"] == {"indexing": 20}
    assert set(data.documents["label_kind"]) == {"indexing"}
    assert file_warnings(caplog) == []


def test_a_file_mixing_label_kinds_is_one_warning_naming_the_counts(tmp_path, mesh, caplog):
    kinds = ["mentions", "indexing", None]
    docs = synthetic_documents()
    for i, doc in enumerate(docs):
        if kinds[i % 3] is not None:
            doc["label_kind"] = kinds[i % 3]
    path = write_jsonl(tmp_path / "kinds.jsonl", docs)
    with caplog.at_level(logging.WARNING):
        data = load_training_data(file_args(tmp_path, path), mesh)
    assert data.stats["label_kinds"] == {"mentions": 8, "indexing": 12}
    assert file_warnings(caplog) == [
        f"{path}: the training documents mix MeSH label kinds: indexing 12, mentions 8 (a document without "
        "label_kind is indexing); biohicl build-dataset refuses that unless --mix_label_kinds; no batch holds both "
        "kinds"
    ]


def test_an_unknown_label_kind_is_refused_naming_the_document(tmp_path, mesh):
    from biohicl.errors import DataError

    docs = synthetic_documents()
    docs[4]["label_kind"] = "Mentions"
    path = write_jsonl(tmp_path / "docs.jsonl", docs)
    with pytest.raises(DataError) as caught:
        load_training_data(file_args(tmp_path, path), mesh)
    assert str(caught.value) == f"{path}: id '1004': label_kind must be indexing or mentions, got 'Mentions'"


# --------------------------------------------------------------------------------- labels read by the build's rules
LABEL_FORMS = [  # docs/data.md's forms of a jsonl label, one a line, each a descriptor of the packaged MeSH 2024
    "D003920",  # a descriptor UI
    "d003922",  # ... in any case
    "mesh:D006333",  # ... with a MESH: prefix in any case
    "D003920Q000188",  # ... with a qualifier UI after it
    "C18.452.394.750",  # a tree number (D003920's)
    "Diabetes Mellitus",  # a descriptor name
    "Cardiac Failure",  # an entry term (Heart Failure)
    "diabetes mellitus, type 1",  # ... in any case
    "*Humans",  # a MEDLINE heading: major star
    "Diabetes Mellitus/drug therapy",  # ... with a qualifier
    "*Heart Failure/*therapy",  # ... both
]


def test_a_file_s_labels_in_every_form_train_as_the_build_reads_them(tmp_path, mesh):
    from biohicl.data.jsonl import read_jsonl

    rows = [
        {"pmid": f"doc-{i}", "title": f"form {i}", "abstract": f"a document labelled {form}", "mesh": [form]}
        for i, form in enumerate(LABEL_FORMS)
    ]
    path = write_jsonl(tmp_path / "forms.jsonl", rows)
    built = {r.pmid: list(r.mesh) for r in read_jsonl(path, mesh)}
    assert len(built) == len(LABEL_FORMS) and all(built.values())  # the build keeps each line's descriptor
    data = load_training_data(file_args(tmp_path, path), mesh)
    assert data.documents["labels"] == [built[r["pmid"]] for r in rows]
    assert data.stats["labels_dropped_unknown"] == 0 and data.stats["documents_without_labels"] == 0


def test_a_document_left_with_no_label_is_dropped_as_the_build_skips_it(tmp_path, mesh, caplog):
    """Unknown labels are dropped (and counted) as the build drops them; a supplementary concept id is ignored, as
    the build ignores it; a document with no descriptor left is not trained on: the build skips it."""
    docs = synthetic_documents()
    docs[1]["mesh"] = ["Not A Heading", "C012345"]  # nothing left: dropped
    docs[2]["mesh"] = [*docs[2]["mesh"], "Not A Heading", "MESH:C012345"]  # one unknown label dropped
    later = {**docs[1], "mesh": ["D003920"]}  # a later line of the skipped one's id: no copy of a document kept
    path = write_jsonl(tmp_path / "docs.jsonl", [*docs, later])
    with caplog.at_level(logging.WARNING):
        data = load_training_data(file_args(tmp_path, path), mesh)
    train = [d for d in docs if d["split"] == "train" and d is not docs[1]] + [later]
    assert data.documents["labels"] == [unique(d["mesh"][:2]) for d in train]
    assert data.stats["documents"] == 20 and data.stats["labels_dropped_unknown"] == 1
    assert data.stats["document_file"]["no_label_removed"] == 1
    assert data.stats["document_file"]["duplicate_ids_removed"] == 0
    assert (
        f"{path}: 1 document with no MeSH label MeSH 2024 knows dropped, as biohicl build-dataset skips it, "
        "e.g. id 1001" in file_warnings(caplog)
    )


# ------------------------------------------------------------------ a file's dev documents, evaluated as trained on
def test_a_file_s_split_is_evaluated_with_the_texts_training_reads(tmp_path, mesh):
    """The dev evaluations of a documents file (``siml-agreement``) compose its texts as training does: the title and
    the first non-blank of abstract/text (not ``text`` alone where a row has one); a title-less row is its text."""
    from biohicl.data.documents import split_documents_with_kinds

    rows = [
        {"pmid": str(1000 + i), "title": f"Title {i}", "text": f"body text {i} about things", "mesh": d["mesh"],
         "split": "train"}
        for i, d in enumerate(synthetic_documents()[:6])
    ]  # fmt: skip
    rows[1] = {**rows[1], "abstract": "an abstract first"}
    rows[2] = {**rows[2], "title": None, "abstract": " "}
    path = write_jsonl(tmp_path / "titled.jsonl", rows)
    texts = [f"Title {i} body text {i} about things" for i in range(6)]
    texts[1], texts[2] = "Title 1 an abstract first", "body text 2 about things"
    assert load_training_data(file_args(tmp_path, path), mesh).documents["text"] == texts
    evaluated, _, pmids, _ = split_documents_with_kinds(path, "train")
    assert (evaluated, pmids) == (texts, [str(1000 + i) for i in range(6)])


NAMED = {"Diabetes Mellitus": "D003920", "Insulin Resistance": "D007333", "Neoplasms": "D009369",
         "Cardiac Failure": "D006333"}  # fmt: skip


def named_file(tmp_path: Path, split: str) -> tuple[Path, list[str], list[list[str]]]:
    """Six documents of ``split`` with ``title`` and ``text`` and descriptor names (an entry term among them) as
    one ``|``-joined string; and the texts and UIs training reads of them."""
    names = list(NAMED)
    rows = [
        {"pmid": str(1000 + i), "title": f"Title {i}", "text": f"body text {i} about things",
         "mesh": f"{names[i % 4]}|{names[(i + 1) % 4]}", "split": split}
        for i in range(6)
    ]  # fmt: skip
    texts = [f"Title {i} body text {i} about things" for i in range(6)]
    uis = [[NAMED[names[i % 4]], NAMED[names[(i + 1) % 4]]] for i in range(6)]
    return write_jsonl(tmp_path / "named.jsonl", rows), texts, uis


def test_a_file_s_split_is_evaluated_with_the_labels_training_reads(tmp_path, mesh):
    """The dev evaluations of a documents file read its labels as training does, by the build's rules (names and an
    entry term here), not as written."""
    from biohicl.data.documents import split_documents_with_kinds

    path, texts, uis = named_file(tmp_path, "train")
    data = load_training_data(file_args(tmp_path, path), mesh)
    assert data.documents["text"] == texts and data.documents["labels"] == uis
    assert split_documents_with_kinds(path, "train", mesh=mesh)[:2] == (texts, uis)
    assert split_documents_with_kinds(path, "train")[:2] == (texts, uis)  # the packaged MeSH by default


def test_the_agreement_pre_flight_passes_a_file_labelled_by_names(tmp_path):
    from biohicl.evaluation.agreement import check_agreement

    path, _, _ = named_file(tmp_path, "dev")
    check_agreement(path, "dev")  # raised "split 'dev': 0 document(s) with a known MeSH label, need 3"


def test_a_document_with_an_empty_abstract_is_dropped_as_the_build_skips_it(tmp_path, mesh, caplog):
    """The build skips a record whose abstract is empty (a title alone) before deduplicating; so does training on a
    documents file, counted, and a later copy of its id with an abstract is kept."""
    docs = synthetic_documents()
    docs[1]["abstract"] = "  "  # a title alone
    later = {**docs[1], "abstract": "the abstract, found later"}
    path = write_jsonl(tmp_path / "docs.jsonl", [*docs, later])
    with caplog.at_level(logging.WARNING):
        data = load_training_data(file_args(tmp_path, path), mesh)
    assert data.stats["document_file"]["empty_abstract_removed"] == 1
    assert data.stats["document_file"]["duplicate_ids_removed"] == 0
    assert docs[1]["title"] + " the abstract, found later" in data.documents["text"]
    assert not any(text.strip() == docs[1]["title"] for text in data.documents["text"])
    assert f"{path}: 1 document with an empty abstract dropped, as biohicl build-dataset skips it, e.g. id 1001" in (
        file_warnings(caplog)
    )


def test_an_integer_beyond_64_bits_inside_a_list_is_one_line_naming_the_file(tmp_path):
    from biohicl.data.documents import read_documents
    from biohicl.errors import DataError

    path = write_jsonl(tmp_path / "docs.jsonl", [{**synthetic_documents()[0], "ids": [2**64]}])
    with pytest.raises(DataError, match=r"docs\.jsonl: cannot build a table from the records \(OverflowError: "):
        read_documents(path)

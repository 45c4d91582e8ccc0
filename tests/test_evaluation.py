"""The evaluation harness with a keyword encoder (known answers) and, end to end, a tiny random BERT."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import label_vector_powers

from biohicl.errors import ConfigError, DataError
from biohicl.evaluation import Encoder, dense_retrieve, evaluate_beir, evaluate_model, load_beir
from biohicl.evaluation.pubmedqa import evaluate_pubmedqa, load_pubmedqa
from biohicl.evaluation.report import markdown_table
from biohicl.evaluation.runner import load_results, save_results
from biohicl.evaluation.sts import evaluate_biosses, load_biosses
from biohicl.evaluation.tasks import parse_task_spec
from biohicl.search.documents import IndexDocuments

VOCAB = ["insulin", "tumor", "heart", "brain", "virus"]


class KeywordEncoder:
    """Embeds a text as its counts of VOCAB words (plus a tiny constant so no vector is zero); logs calls."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        texts = list(texts)
        self.calls.append((kind, len(texts)))
        rows = [[t.lower().split().count(w) for w in VOCAB] + [0.01] for t in texts]
        return np.asarray(rows, dtype=np.float32)


def write_beir(folder: Path, split: str = "test") -> Path:
    docs = [
        {"_id": "d1", "title": "Insulin", "text": "insulin signalling"},
        {"_id": "d2", "title": "", "text": "tumor growth"},
        {"_id": "d3", "title": "Heart", "text": "heart failure and insulin"},
        {"_id": "d4", "title": "Brain", "text": "brain"},
    ]
    queries = [
        {"_id": "q1", "text": "insulin insulin"},  # d1 (2 insulin) first, then d3
        {"_id": "q2", "text": "heart"},  # d3 only
        {"_id": "q3", "text": "virus"},  # nothing matches: all cosines ~equal
    ]
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / f"{split}.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td3\t1\nq2\td3\t2\nq2\td4\t1\nq3\td2\t1\n"
    )
    return folder


def write_pubmedqa(folder: Path) -> tuple[Path, Path]:
    items = {
        "11": {"QUESTION": "insulin?", "CONTEXTS": ["tumor tumor"], "LONG_ANSWER": "insulin works"},
        "22": {"QUESTION": "heart?", "CONTEXTS": ["heart"], "LONG_ANSWER": "heart heart"},
        "33": {"QUESTION": "brain?", "CONTEXTS": ["brain"], "LONG_ANSWER": "heart and brain"},
        "44": {"QUESTION": "virus", "CONTEXTS": ["virus"], "LONG_ANSWER": "virus"},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ori_pqal.json").write_text(json.dumps(items))
    (folder / "test_ground_truth.json").write_text(json.dumps({"33": "yes", "11": "no", "22": "maybe"}))
    return folder / "ori_pqal.json", folder / "test_ground_truth.json"


def test_keyword_encoder_follows_the_protocol():
    assert isinstance(KeywordEncoder(), Encoder)


def test_load_beir_reads_texts_and_judgements(tmp_path):
    data = load_beir(write_beir(tmp_path / "toy"), "test")
    assert data.corpus["d1"] == "Insulin insulin signalling"  # title + " " + text
    assert data.corpus["d2"] == "tumor growth"  # empty title: no leading space
    assert data.corpus == {  # a corpus with `text` fields: the texts evaluation has always encoded
        "d1": "Insulin insulin signalling",
        "d2": "tumor growth",
        "d3": "Heart heart failure and insulin",
        "d4": "Brain brain",
    }
    assert data.qrels == {"q1": {"d3": 1}, "q2": {"d3": 2, "d4": 1}, "q3": {"d2": 1}}
    assert list(data.queries) == ["q1", "q2", "q3"]
    assert list(load_beir(tmp_path / "toy", "test", limit_queries=1).queries) == ["q1"]


def test_beir_folder_without_documents_says_what_is_missing(tmp_path):
    folder = tmp_path / "nfcorpus"
    folder.mkdir()
    (folder / "PROVENANCE.md").write_text("test qrels and queries only")
    (folder / "qrels.beir-v1.0.0-nfcorpus.test.txt").write_text("PLAIN-1 0 MED-1 2\n")
    with pytest.raises(DataError, match=r"missing corpus\.jsonl, queries\.jsonl, qrels/test\.tsv.*PROVENANCE\.md"):
        load_beir(folder, "test")


def test_missing_split_lists_the_splits_present(tmp_path):
    write_beir(tmp_path / "toy", split="train")
    with pytest.raises(DataError, match=r"qrels/test\.tsv \(splits present: train\)"):
        load_beir(tmp_path / "toy", "test")


def test_bad_lines_are_named(tmp_path):
    folder = write_beir(tmp_path / "toy")
    with (folder / "corpus.jsonl").open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(DataError, match=r"corpus\.jsonl: line 5: not valid JSON"):
        load_beir(folder)
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(DataError, match=r"dev\.tsv: line 2: expected 3 tab-separated fields"):
        load_beir(folder, "dev")
    (folder / "qrels" / "dev.tsv").write_text("q9\td1\t1\n")
    with pytest.raises(DataError, match=r"not in queries\.jsonl, e\.g\. 'q9'"):
        load_beir(folder, "dev")


def test_bad_qrels_bytes_and_infinite_scores_name_file_and_line(tmp_path):
    folder = write_beir(tmp_path / "toy")
    qrels = folder / "qrels" / "test.tsv"
    qrels.write_bytes(b"query-id\tcorpus-id\tscore\nq1\td3\t1\nq2\td\xe9\t1\n")
    with pytest.raises(DataError, match=r"qrels/test\.tsv: line 3: cannot decode the line: byte 0xe9 is not UTF-8"):
        load_beir(folder)
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td3\t1\nq2\td3\tinf\n")
    with pytest.raises(DataError, match=r"qrels/test\.tsv: line 3: score 'inf' is not a finite number"):
        load_beir(folder)


def test_dense_retrieve_ranks_by_cosine_and_chunks_identically(tmp_path):
    data = load_beir(write_beir(tmp_path / "toy"))
    encoder = KeywordEncoder()
    run = dense_retrieve(encoder, data.queries, data.corpus, top_k=2)
    assert list(run["q1"]) == ["d1", "d3"]
    assert run["q1"]["d1"] == pytest.approx(1.0, abs=1e-4)
    assert encoder.calls[0] == ("query", 3) and encoder.calls[1] == ("document", 4)
    chunked = dense_retrieve(KeywordEncoder(), data.queries, data.corpus, top_k=2, corpus_chunk_size=1)
    assert chunked == run
    # q3 "virus": d2 first, then d1 and d4 tie exactly; trec_eval order keeps d4 (doc id descending) at the cut
    assert list(run["q3"]) == ["d2", "d4"]


def test_ignore_identical_ids_drops_the_query_itself():
    corpus = {"a": "insulin", "b": "insulin heart", "c": "brain"}
    run = dense_retrieve(KeywordEncoder(), {"a": "insulin"}, corpus, top_k=2, ignore_identical_ids=True)
    assert list(run["a"]) == ["b", "c"]


def test_evaluate_beir_known_metrics(tmp_path):
    folder = write_beir(tmp_path / "toy")
    result = evaluate_beir(KeywordEncoder(), folder, "test", k_values=[1, 10])
    # keyword vectors: d1 [2,0,0,0,0,.01], d2 [0,1,0,0,0,.01], d3 [1,0,2,0,0,.01], d4 [0,0,0,2,0,.01]
    # q1 "insulin insulin": d1, d3, ... -> relevant d3 at rank 2
    q1 = {"ndcg": 1 / np.log2(3), "recall@1": 0.0, "mrr": 0.5}
    # q2 "heart": d3 (grade 2), d2, then d4 = d1 (exact tie: same norm, only the .01 term) -> trec_eval puts d4
    # first (doc id descending), so d4 (grade 1) is at rank 3
    q2 = {"ndcg": (2 + 1 / np.log2(4)) / (2 + 1 / np.log2(3)), "recall@1": 0.5, "mrr": 1.0}
    # q3 "virus": only the .01 term -> shortest document d2 first, and d2 is the relevant one
    q3 = {"ndcg": 1.0, "recall@1": 1.0, "mrr": 1.0}
    assert result.metrics["ndcg@10"] == pytest.approx((q1["ndcg"] + q2["ndcg"] + q3["ndcg"]) / 3)
    assert result.metrics["recall@1"] == pytest.approx(0.5)
    assert result.metrics["mrr@10"] == pytest.approx(2.5 / 3)
    assert result.metrics["recall@10"] == 1.0
    assert result.num_queries == 3 and result.num_documents == 4
    expected_files = {
        "toy/corpus.jsonl": hashlib.sha256((folder / "corpus.jsonl").read_bytes()).hexdigest(),
        "toy/queries.jsonl": hashlib.sha256((folder / "queries.jsonl").read_bytes()).hexdigest(),
        "toy/qrels/test.tsv": hashlib.sha256((folder / "qrels" / "test.tsv").read_bytes()).hexdigest(),
    }
    assert result.data_files == expected_files
    q1_only = evaluate_beir(KeywordEncoder(), folder, "test", k_values=[1, 10], limit_queries=1)
    assert q1_only.metrics["ndcg@10"] == pytest.approx(q1["ndcg"])
    assert q1_only.num_queries == 1


def test_biosses_real_file_layout(data_dir):
    first, _second, gold, _ = load_biosses(data_dir / "biosses" / "biosses.tsv")
    assert len(gold) == 100 and gold[0] == 4.0 and gold[-1] == pytest.approx(1.8)
    assert first[0].startswith("It has recently been shown that Craf")


def test_biosses_scores_correlation_of_cosines(tmp_path):
    path = tmp_path / "biosses.tsv"
    rows = [
        ("insulin", "insulin", 4.0),  # cos ~1
        ("insulin", "insulin heart", 3.0),  # cos ~0.71
        ("insulin heart", "heart brain brain", 2.0),  # ~0.32
        ("tumor", "brain", 1.0),  # ~0
    ]
    lines = ["id\tsentence1\tsentence2\tscore_mean"] + [f"{i}\t{a}\t{b}\t{s}" for i, (a, b, s) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    encoder = KeywordEncoder()
    result = evaluate_biosses(encoder, path)
    # both sentences are encoded as documents (a model's document prompt applies), and the record says so
    assert [kind for kind, _ in encoder.calls] == ["document"] and "document prompt" in result.protocol
    assert result.metrics["spearman"] == pytest.approx(1.0)
    assert 0.9 < result.metrics["pearson"] < 1.0
    path.write_text("id\tsentence1\tsentence2\tscore_mean\n1\ta\tb\thigh\n2\ta\tb\t1\n")
    with pytest.raises(DataError, match="line 2: score_mean 'high'"):
        load_biosses(path)


def test_pubmedqa_protocol_and_splits(tmp_path):
    data_file, test_file = write_pubmedqa(tmp_path / "pubmedqa")
    test, _ = load_pubmedqa("test", data_file, test_file)
    assert list(test) == ["33", "11", "22"]  # the official file's order
    train, _ = load_pubmedqa("train", data_file, test_file)
    assert list(train) == ["44"]
    # the questions "brain?", "insulin?", "heart?" match no keyword ("brain?" != "brain"): each question vector is
    # only the .01 term, so answers rank by 1/norm: "insulin works" (11) > "heart and brain" (33) > "heart heart" (22)
    result = evaluate_pubmedqa(KeywordEncoder(), split="test", data_file=data_file, test_file=test_file)
    assert result.num_queries == 3 and result.num_documents == 3
    # ranks of each question's own answer: 11 -> 1, 33 -> 2, 22 -> 3
    assert result.metrics["recall@1"] == pytest.approx(1 / 3)
    assert result.metrics["mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    with pytest.raises(DataError, match="split must be one of"):
        load_pubmedqa("valid", data_file, test_file)
    for path in (data_file, test_file):  # saved with a UTF-8 byte-order mark: the same items
        path.write_text(path.read_text(encoding="utf-8"), encoding="utf-8-sig")
    assert list(load_pubmedqa("test", data_file, test_file)[0]) == ["33", "11", "22"]


def test_pubmedqa_dev_split_is_the_held_out_part_of_train(tmp_path):
    from biohicl.data.splits import pubmedqa_dev_pmids

    items = {str(100 + i): {"QUESTION": f"q{i}", "CONTEXTS": ["c"], "LONG_ANSWER": f"a{i}"} for i in range(12)}
    folder = tmp_path / "pubmedqa"
    folder.mkdir()
    (folder / "ori_pqal.json").write_text(json.dumps(items))
    (folder / "test_ground_truth.json").write_text(json.dumps({"100": "yes", "101": "no"}))
    train, _ = load_pubmedqa("train", folder / "ori_pqal.json", folder / "test_ground_truth.json")
    dev, files = load_pubmedqa("dev", folder / "ori_pqal.json", folder / "test_ground_truth.json")
    assert list(dev) == pubmedqa_dev_pmids(train) and set(dev) <= set(train)  # same ids the dataset holds out
    assert len(dev) == 10 and not {"100", "101"} & set(dev)  # fewer than 250 non-test items: all of them
    assert [p.name for p in files] == ["ori_pqal.json", "test_ground_truth.json"]


def test_pubmedqa_dev_on_the_real_files(data_dir):
    from biohicl.data.splits import pubmedqa_dev_pmids

    dev, _ = load_pubmedqa("dev")
    test, _ = load_pubmedqa("test")
    train, _ = load_pubmedqa("train")
    assert len(dev) == 250 and not set(dev) & set(test) and set(dev) < set(train)
    assert list(dev) == pubmedqa_dev_pmids(train)


class LabelVectorEncoder:
    """Embeds a document as its normalised MeSH label vector: SimE = SimL, so the agreement is perfect. With
    ``power``, as v ⊗ v ⊗ … (``power`` times): SimE = SimL ** power (exactly 0 where SimL is)."""

    def __init__(self, mesh, texts, labels, power=1):
        self.vectors = dict(zip(texts, label_vector_powers(mesh, labels, power), strict=True))

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        assert kind == "document"
        return np.asarray([self.vectors[t] for t in texts])


def test_siml_agreement_task_on_a_datasets_dev_documents(tmp_path, mesh):
    labels = [["D003920"], ["D003924"], ["D009203"], ["D006333"], ["D001943"], ["D003920", "D001943"]]
    rows = [{"pmid": str(i), "title": f"T{i}", "abstract": f"a{i}", "mesh": lab, "label_kind": "indexing",
             "source": "x", "split": "dev" if i < 5 else "train"} for i, lab in enumerate(labels)]  # fmt: skip
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    encoder = LabelVectorEncoder(mesh, [f"T{i} a{i}" for i in range(6)], labels)
    record = evaluate_model(encoder, [f"siml-agreement@{path}"])
    task = record["tasks"]["siml-agreement"]
    assert task["split"] == "dev" and task["num_documents"] == 5 and task["num_queries"] == 10  # 5 dev docs, 10 pairs
    assert task["metrics"]["spearman"] == pytest.approx(1.0) and task["metrics"]["mse_all_pairs"] < 1e-12
    assert record["summary"] == {"siml-agreement/spearman": pytest.approx(1.0)}
    assert list(task["data_files"]) == [f"{tmp_path.name}/docs.jsonl"]
    # SimE = SimL³: Spearman 1 (same order), Pearson < 1 (not linear), as scipy computes them on the dev pairs
    from scipy.stats import pearsonr

    cubes = LabelVectorEncoder(mesh, [f"T{i} a{i}" for i in range(6)], labels, power=3)
    cubed = evaluate_model(cubes, [f"siml-agreement@{path}"])
    metrics = cubed["tasks"]["siml-agreement"]["metrics"]
    siml = np.array([mesh.label_similarity(labels[i], labels[j]) for i in range(5) for j in range(i + 1, 5)])
    assert metrics["spearman"] == pytest.approx(1.0, abs=1e-12)
    assert metrics["pearson"] == pytest.approx(pearsonr(siml**3, siml).statistic, abs=1e-7)
    assert metrics["pearson"] < 0.99
    assert metrics["mse_all_pairs"] == pytest.approx(np.mean((siml**3 - siml) ** 2), abs=1e-9)
    # 4 dev documents by hand: SimL 1 within diabetes (T0, T1) and within breast neoplasms (T2, T3), 0 across
    hand = tmp_path / "hand.jsonl"
    hand_labels = [["D003920"], ["D003920"], ["D001943"], ["D001943"]]
    hand.write_text(
        "".join(json.dumps({**rows[i], "mesh": lab, "split": "dev"}) + "\n" for i, lab in enumerate(hand_labels))
    )
    vectors = {"T0 a0": [1.0, 0.0], "T1 a1": [0.6, 0.8], "T2 a2": [0.0, 1.0], "T3 a3": [0.0, 2.0]}
    fixed = SimpleNamespace(encode=lambda texts, **kwargs: np.asarray([vectors[t] for t in texts]))
    metrics = evaluate_model(fixed, [f"siml-agreement@{hand}"])["tasks"]["siml-agreement"]["metrics"]
    # pairs 01 02 03 12 13 23: SimE 0.6 0 0 0.8 0.8 1, SimL 1 0 0 0 0 1
    assert metrics["mse_all_pairs"] == pytest.approx((0.4**2 + 0.8**2 + 0.8**2) / 6, abs=1e-12)  # 0.24
    assert metrics["sime_zero_mean"] == pytest.approx((0 + 0 + 0.8 + 0.8) / 4, abs=1e-12)  # 0.4
    assert metrics["sime_positive_mean"] == pytest.approx((0.6 + 1.0) / 2, abs=1e-12)  # 0.8
    # unrelated labels only: every SimL is 0, so there is no ranking to agree with, and the task says so
    flat = tmp_path / "flat.jsonl"
    flat_labels = [["D003920"], ["D001943"], ["D006333"]]
    flat.write_text(
        "".join(json.dumps({**rows[i], "mesh": lab, "split": "dev"}) + "\n" for i, lab in enumerate(flat_labels))
    )
    assert {mesh.label_similarity(a, b) for a in flat_labels for b in flat_labels if a != b} == {0.0}
    flat_encoder = LabelVectorEncoder(mesh, [f"T{i} a{i}" for i in range(3)], flat_labels)
    with pytest.raises(DataError, match=r"flat\.jsonl.*the SimE-SimL Spearman is undefined"):
        evaluate_model(flat_encoder, [f"siml-agreement@{flat}"])
    # other splits on request
    with pytest.raises(DataError, match="split 'train': 1 document"):
        evaluate_model(encoder, [f"siml-agreement@{path}:train"])
    with pytest.raises(DataError, match=r"no documents with split 'test' \(splits present: dev, train\)"):
        evaluate_model(encoder, [f"siml-agreement@{path}:test"])
    with pytest.raises(ConfigError, match="siml-agreement needs a dataset: siml-agreement@"):
        evaluate_model(encoder, ["siml-agreement"])
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate_model(encoder, [f"siml-agreement@{tmp_path / 'nope'}"])


def test_pubmedqa_context_target(tmp_path):
    data_file, test_file = write_pubmedqa(tmp_path / "pubmedqa")
    items, _ = load_pubmedqa("all", data_file, test_file)
    assert len(items) == 4
    result = evaluate_pubmedqa(
        KeywordEncoder(), target="context", split="all", data_file=data_file, test_file=test_file
    )
    # "virus" finds its own context first; the other questions see only the .01 term: contexts "heart", "brain",
    # "virus" tie (same norm) and rank by PMID descending (44 > 33 > 22), "tumor tumor" (11) comes last
    assert result.task == "pubmedqa-context"
    assert result.metrics["recall@1"] == pytest.approx(1 / 4)  # only 44
    assert result.metrics["mrr@10"] == pytest.approx((1 / 4 + 1 / 3 + 1 / 2 + 1) / 4)


def test_parse_task_spec():
    assert parse_task_spec("scifact:train") == ("scifact", "train")
    assert parse_task_spec("biosses") == ("biosses", None)
    assert parse_task_spec("data/my-beir") == ("data/my-beir", None)


def test_evaluate_model_record_and_preflight(tmp_path):
    folder = write_beir(tmp_path / "toy")
    encoder = KeywordEncoder()
    record = evaluate_model(encoder, [f"{folder}:test"], model_id="keyword", revision="r1", batch_size=8)
    task = record["tasks"]["toy"]
    assert task["split"] == "test" and task["main_metric"] == "ndcg@10"
    assert record["model"] == {"id": "keyword", "revision": "r1", "config": {"class": "KeywordEncoder"}}
    assert record["summary"]["toy/ndcg@10"] == task["metrics"]["ndcg@10"]
    assert record["versions"]["numpy"] == np.__version__
    assert record["wall_time_s"] > 0 and record["settings"]["batch_size"] == 8
    path = save_results(record, tmp_path / "out" / "r.json")
    assert load_results(path) == json.loads(json.dumps(record))
    # a task whose data is missing fails before anything is encoded
    silent = KeywordEncoder()
    with pytest.raises(DataError, match="splits present: test"):
        evaluate_model(silent, [str(folder), f"{folder}:dev"])
    assert silent.calls == []
    with pytest.raises(ConfigError, match=r"unknown task 'scifakt'.*did you mean scifact"):
        evaluate_model(silent, ["scifakt"])
    # two splits of one BEIR task would be filed under one key, the second overwriting the first: refused up front
    (folder / "qrels" / "train.tsv").write_text((folder / "qrels" / "test.tsv").read_text())
    with pytest.raises(
        ConfigError, match=rf"^tasks: {folder}:train and {folder}:test would be filed under the same key \('toy'\)"
    ):
        evaluate_model(silent, [f"{folder}:train", f"{folder}:test"])
    assert silent.calls == []
    # a cap below 1 query ([:0] scores none, [:-1] drops the last) or not a whole number is refused up front
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match=rf"^limit_queries: must be a whole number of at least 1 .*got {bad!r}$"):
            evaluate_model(silent, [f"{folder}:test", "biosses"], limit_queries=bad)
    assert silent.calls == []
    assert evaluate_model(encoder, [f"{folder}:test"], limit_queries=1)["tasks"]["toy"]["num_queries"] == 1


def _record(label: str, ndcg: float, spearman: float) -> dict:
    return {
        "model": {"id": label},
        "settings": {"dtype": "float32"},
        "tasks": {
            "scifact": {"split": "train", "main_metric": "ndcg@10", "metrics": {"ndcg@10": ndcg, "recall@100": 0.9}},
            "biosses": {"split": "all", "main_metric": "spearman", "metrics": {"spearman": spearman}},
        },
    }


def test_markdown_table_and_delta():
    table = markdown_table([_record("base", 0.6, 0.8), _record("tuned", 0.65, 0.79)])
    lines = table.strip().splitlines()
    assert lines[0] == "| model | scifact (train) nDCG@10 | scifact (train) R@100 | biosses (all) Spearman |"
    assert lines[2] == "| base | 0.6000 | 0.9000 | 0.8000 |"
    assert lines[4] == "| Δ (tuned − base) | +0.0500 | +0.0000 | -0.0100 |"


def test_one_record_alone_is_a_table_and_a_plot(tmp_path):
    """docs/evaluation.md's Python example passes the record evaluate_model returns: a dict iterated as its keys
    (AttributeError: 'str' object has no attribute 'get')."""
    from biohicl.evaluation.plots import plot_results

    record = _record("base", 0.6, 0.8)
    assert markdown_table(record) == markdown_table([record])
    assert markdown_table(record).strip().splitlines()[2] == "| base | 0.6000 | 0.9000 | 0.8000 |"
    assert plot_results(record, tmp_path / "one.png").stat().st_size > 0


def test_compare_command_writes_markdown_and_png(tmp_path, capsys):
    from biohicl.cli.main import main

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_record("base", 0.6, 0.8)))
    b.write_text(json.dumps(_record("tuned", 0.65, 0.79)))
    png, md = tmp_path / "cmp.png", tmp_path / "cmp.md"
    assert main(["evaluate", "--compare", str(a), str(b), "--plot", str(png), "--markdown", str(md)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "| tuned | 0.6500 |" in md.read_text()
    assert main(["evaluate"]) == 2
    assert "MODEL is required" in capsys.readouterr().err


def test_tiny_bert_end_to_end(tiny_bert_dir, tmp_path, data_dir):
    """The real command on a tiny random BERT: a BEIR folder, BIOSSES and PubMedQA, JSON + Markdown + PNG."""
    from biohicl.cli.main import main
    from biohicl.models.model import BioHiCL

    folder = write_beir(tmp_path / "toy")
    output, md, png = tmp_path / "tiny.json", tmp_path / "tiny.md", tmp_path / "tiny.png"
    argv = ["evaluate", str(tiny_bert_dir), "--tasks", f"{folder},biosses,pubmedqa", "--limit_queries", "8"]
    argv += ["--max_length", "32", "--output", str(output), "--markdown", str(md), "--plot", str(png)]
    assert main([*argv, "--no_progress"]) == 0
    record = json.loads(output.read_text())
    assert set(record["tasks"]) == {"toy", "biosses", "pubmedqa"}
    assert record["tasks"]["pubmedqa"]["num_queries"] == 8 and record["tasks"]["pubmedqa"]["num_documents"] == 500
    assert record["tasks"]["pubmedqa"]["data_files"]["pubmedqa/test_ground_truth.json"] == (
        "939fe566f09017d13b1ca64d2ddfee0bc2374b366048152997669cccedc44d51"
    )
    assert record["settings"]["max_length"] == 32 and record["settings"]["dtype"] == "float32"
    assert all(0.0 <= v <= 1.0 for t in ("toy", "pubmedqa") for v in record["tasks"][t]["metrics"].values())
    assert "| tiny-bert" in md.read_text() and png.stat().st_size > 0
    # the same numbers from the Python API (deterministic encoder, same settings)
    model = BioHiCL.from_pretrained(tiny_bert_dir)
    model.config.max_length = 32
    again = evaluate_model(model, [str(folder), "biosses"], show_progress_bar=False)
    assert again["tasks"]["toy"]["metrics"] == pytest.approx(record["tasks"]["toy"]["metrics"], abs=1e-6)
    assert again["tasks"]["biosses"]["metrics"] == pytest.approx(record["tasks"]["biosses"]["metrics"], abs=1e-6)


class CountingEncoder:
    """Wraps a model's encode and counts the texts encoded per kind."""

    def __init__(self, model):
        self.model, self.config, self.counts = model, model.config, {"query": 0, "document": 0}

    def encode(self, texts, batch_size=32, kind="document", show_progress_bar=None):
        texts = list(texts)
        self.counts[kind] += len(texts)
        return self.model.encode(texts, batch_size=batch_size, kind=kind, show_progress_bar=False)


def test_document_index_replaces_encoding_the_corpus(tiny_bert_dir, tmp_path):
    """Rows from a `biohicl index` of the corpus give the encoder's metrics; only the queries are encoded."""
    from biohicl.models.model import BioHiCL
    from biohicl.search.indexing import build_index

    folder = write_beir(tmp_path / "toy")
    model = BioHiCL.from_pretrained(tiny_bert_dir)
    build_index(model, folder, tmp_path / "idx", shard_size=3, batch_size=2, show_progress_bar=False)
    documents = IndexDocuments(tmp_path / "idx", model)
    direct = evaluate_beir(model, folder, show_progress_bar=False)
    encoder = CountingEncoder(model)
    indexed = evaluate_beir(encoder, folder, document_index=documents, show_progress_bar=False)
    assert indexed.metrics == pytest.approx(direct.metrics, abs=1e-6)
    assert encoder.counts == {"query": 3, "document": 0}
    assert "from the index idx" in indexed.protocol
    record = evaluate_model(model, [str(folder), "biosses"], document_index=documents, show_progress_bar=False)
    assert record["settings"]["document_index"] == str(tmp_path / "idx")
    assert record["tasks"]["toy"]["metrics"] == pytest.approx(direct.metrics, abs=1e-6)


def test_document_index_must_match_the_corpus_and_the_model(tiny_bert_dir, tmp_path):
    from biohicl.models.model import BioHiCL
    from biohicl.search.indexing import build_index

    folder = write_beir(tmp_path / "toy")
    model = BioHiCL.from_pretrained(tiny_bert_dir)
    docs = [("d1", "Insulin", "insulin signalling"), ("d9", "", "other")]
    build_index(model, docs, tmp_path / "other", show_progress_bar=False)
    with pytest.raises(DataError, match=r"other documents than the corpus \(3 of 4 corpus ids missing, e.g. d2"):
        evaluate_beir(model, folder, document_index=IndexDocuments(tmp_path / "other", model), show_progress_bar=False)
    build_index(model, folder, tmp_path / "idx", show_progress_bar=False)
    model.config.max_length = 16
    with pytest.raises(ConfigError, match="built with max_length=128, the model now has 16"):
        IndexDocuments(tmp_path / "idx", model)
    model.config.max_length = 128
    int8 = SimpleNamespace(
        config=model.config, embedding_dim=model.embedding_dim, resolved=model.resolved, quantize="int8"
    )
    with pytest.raises(ConfigError, match="built with quantize=None, the model now has 'int8'"):
        IndexDocuments(tmp_path / "idx", int8)  # queries from an int8 ONNX encoder beside torch rows
    with pytest.raises(ConfigError, match="exactly one retrieval task, the plan has 2"):
        evaluate_model(
            model, [str(folder), str(write_beir(tmp_path / "toy2"))], document_index=IndexDocuments(tmp_path / "idx")
        )


def test_pubmedqa_dev_and_test_results_are_filed_apart(monkeypatch):
    """One record with pubmedqa:dev and pubmedqa keeps both results (the dev split used to overwrite the test one)."""
    import biohicl.evaluation.pubmedqa as pubmedqa
    from biohicl.evaluation.results import record_key
    from biohicl.evaluation.runner import evaluate_model
    from biohicl.study.plan import missing_tasks

    calls = []

    def fake_retrieve(encoder, questions, pool, **kwargs):
        calls.append(len(pool))
        # dev: every question finds its own answer; test: none does
        right = len(pool) == 250
        return {q: {(q if right else next(p for p in pool if p != q)): 1.0} for q in questions}

    monkeypatch.setattr(pubmedqa, "dense_retrieve", fake_retrieve)
    record = evaluate_model(object(), ["pubmedqa:dev", "pubmedqa"])
    assert calls == [250, 500]
    assert record["tasks"]["pubmedqa-dev"]["split"] == "dev" and record["tasks"]["pubmedqa"]["split"] == "test"
    assert record["summary"]["pubmedqa-dev/recall@1"] == 1.0 and record["summary"]["pubmedqa/recall@1"] == 0.0
    assert record["summary"]["pubmedqa-dev/recall@5"] == 1.0  # reported like the task it is the dev split of
    assert record_key("pubmedqa", "dev") == "pubmedqa-dev" and record_key("scifact", "train") == "scifact"
    assert missing_tasks(record, ["pubmedqa:dev", "pubmedqa", "biosses"]) == ["biosses"]


def test_missing_tasks_finds_dataset_and_folder_tasks_by_the_key_they_are_filed_under():
    """A study's resume check: ``siml-agreement@runs/x`` is filed as ``siml-agreement`` and a BEIR folder under its
    name, so a finished evaluation of either is not run again (the dataset task used to be re-run every time)."""
    from biohicl.study.plan import missing_tasks

    record = {"tasks": {"siml-agreement": {"split": "dev"}, "tiny-beir": {"split": "test"}}}
    specs = ["siml-agreement@runs/study/dataset", "data/tiny-beir", "data/tiny-beir:train", "scifact"]
    assert missing_tasks(record, specs) == ["data/tiny-beir:train", "scifact"]


def test_a_registered_task_is_filed_under_its_registered_name(tmp_path, monkeypatch):
    """A task registered as ``mini-beir`` whose function returns evaluate_beir's default name (the folder's) is filed
    and summarised as ``mini-beir`` with its ``reported`` metrics, as planned, and does not overwrite another task."""
    from biohicl.evaluation import tasks as registry
    from biohicl.evaluation.runner import planned_summary_keys

    folder = write_beir(tmp_path / "scifact")

    def mini(encoder, *, split=None, **kwargs):
        return evaluate_beir(encoder, folder, split or "test", **kwargs)

    for table in (registry.TASKS, registry.REPORTED_METRICS):
        monkeypatch.setitem(table, "mini-beir", None)
    registry.register_task("mini-beir", mini, reported=["ndcg@10", "mrr@10"])
    record = evaluate_model(KeywordEncoder(), ["mini-beir", str(folder)])
    assert set(record["tasks"]) == {"mini-beir", "scifact"}
    assert record["tasks"]["mini-beir"]["task"] == "mini-beir"
    keys = [k for k in record["summary"] if k.startswith("mini-beir/")]
    assert keys == planned_summary_keys(["mini-beir"]) == ["mini-beir/ndcg@10", "mini-beir/mrr@10"]


def test_a_registered_default_split_makes_a_finished_result_done(monkeypatch):
    """A task registered with ``default_split="all"`` whose result was evaluated on ``all`` is not missing from a
    study's record (every task but BIOSSES used to be expected on ``test``, so it was evaluated again every time)."""
    from biohicl.evaluation import tasks as registry
    from biohicl.study.plan import missing_tasks

    for table in (registry.TASKS, registry.REPORTED_METRICS, registry.DEFAULT_SPLITS):
        monkeypatch.setitem(table, "toy", None)
    registry.register_task("toy", lambda encoder, **kwargs: None, reported=["score"], default_split="all")
    record = {"tasks": {"toy": {"split": "all"}, "biosses": {"split": "all"}, "scifact": {"split": "test"}}}
    assert missing_tasks(record, ["toy", "biosses", "scifact", "toy:test"]) == ["toy:test"]
    assert registry.default_split("toy") == "all" and registry.default_split("pubmedqa") == "test"
    assert registry.default_split("siml-agreement@runs/x") == "dev"
    registry.register_task("toy", lambda encoder, **kwargs: None)  # registered again without one: test
    assert registry.default_split("toy") == "test"


@pytest.mark.parametrize("name", ["toy:v2", "my/toy", "toy@x", "a,b", " toy", "toy ", "", "  "])
def test_register_task_refuses_names_a_spec_cannot_give(name, monkeypatch):
    """``toy:v2`` would run ``toy`` on split v2, ``my/toy`` breaks the summary's ``task/metric`` keys, ``a,b`` the
    --tasks list: such names are refused and nothing is registered."""
    from biohicl.evaluation import tasks as registry

    before = dict(registry.TASKS)
    with pytest.raises(ConfigError, match="register_task"):
        registry.register_task(name, lambda encoder, **kwargs: None)
    assert before == registry.TASKS


def test_siml_agreement_pairs_documents_of_one_label_kind_only(tmp_path, mesh):
    # dev: indexing T0 T1 T2, mentions T3 T4: the pairs are 01 02 12 and 34, never across kinds (6 left out)
    labels = [["D003920"], ["D003920"], ["D001943"], ["D003920"], ["D003920"]]
    kinds = ["indexing", "indexing", "indexing", "mentions", "mentions"]
    rows = [{"pmid": str(i), "title": f"T{i}", "abstract": f"a{i}", "mesh": lab, "label_kind": kind, "source": "x",
             "split": "dev"} for i, (lab, kind) in enumerate(zip(labels, kinds, strict=True))]  # fmt: skip
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    vectors = {"T0 a0": [1.0, 0.0], "T1 a1": [0.6, 0.8], "T2 a2": [0.0, 1.0], "T3 a3": [1.0, 0.0], "T4 a4": [0.8, 0.6]}
    fixed = SimpleNamespace(encode=lambda texts, **kwargs: np.asarray([vectors[t] for t in texts]))
    task = evaluate_model(fixed, [f"siml-agreement@{path}"])["tasks"]["siml-agreement"]
    from scipy.stats import spearmanr

    sime, siml = [0.6, 0.0, 0.8, 0.8], [1.0, 0.0, 0.0, 1.0]  # 01 02 12 34
    assert task["num_queries"] == 4 and task["num_documents"] == 5
    assert task["metrics"]["spearman"] == pytest.approx(spearmanr(sime, siml).statistic, abs=1e-12)
    assert task["metrics"]["mse_all_pairs"] == pytest.approx(0.21, abs=1e-12)
    assert "the 4 same-label-kind pairs (6 pairs across label kinds left out)" in task["protocol"]
    # one kind: every pair, as before
    one = tmp_path / "one.jsonl"
    one.write_text("".join(json.dumps({**r, "label_kind": "indexing"}) + "\n" for r in rows))
    task = evaluate_model(fixed, [f"siml-agreement@{one}"])["tasks"]["siml-agreement"]
    assert task["num_queries"] == 10 and "over all 10 pairs of 5 labelled documents" in task["protocol"]


def test_document_index_of_other_texts_with_the_same_ids_is_refused(tiny_bert_dir, tmp_path):
    """A corrected abstract under the same id: the index's rows are of the old text, so evaluation refuses them."""
    import shutil

    from biohicl.models.model import BioHiCL
    from biohicl.search.indexing import build_index

    folder = write_beir(tmp_path / "toy")
    model = BioHiCL.from_pretrained(tiny_bert_dir)
    build_index(model, folder, tmp_path / "idx", shard_size=3, batch_size=2, show_progress_bar=False)
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    corpus = changed / "corpus.jsonl"
    lines = [json.loads(line) for line in corpus.read_text().splitlines()]
    lines[-1]["text"] += " (corrected)"
    corpus.write_text("".join(json.dumps(line) + "\n" for line in lines))
    documents = IndexDocuments(tmp_path / "idx", model)
    with pytest.raises(
        DataError, match=rf"other texts than the corpus has \(first differing id '{lines[-1]['_id']}'\)"
    ):
        evaluate_beir(model, changed, document_index=documents, show_progress_bar=False)
    assert evaluate_beir(model, folder, document_index=documents, show_progress_bar=False).metrics


def test_load_beir_reads_an_abstract_or_contents_field_as_biohicl_index_does(tmp_path):
    """A corpus.jsonl with `abstract` (or `contents`) instead of `text`: title + abstract, not the title alone."""
    folder = write_beir(tmp_path / "toy")
    docs = [
        {"_id": "d1", "title": "Insulin", "abstract": "insulin signalling"},
        {"_id": "d2", "title": "", "contents": "tumor growth"},
        {"_id": "d3", "title": "Heart", "text": "heart failure", "abstract": "not read: `text` comes first"},
        {"_id": "d4", "title": "Brain", "text": None, "abstract": "brain"},  # a null text: the next field
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    assert load_beir(folder).corpus == {
        "d1": "Insulin insulin signalling",
        "d2": "tumor growth",
        "d3": "Heart heart failure",
        "d4": "Brain brain",
    }


def test_document_index_of_a_corpus_with_abstracts_gives_the_encoders_metrics(tiny_bert_dir, tmp_path):
    from biohicl.models.model import BioHiCL
    from biohicl.search.indexing import build_index

    folder = write_beir(tmp_path / "toy")
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    docs = [{"_id": d["_id"], "title": d["title"], "abstract": d["text"]} for d in docs]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    model = BioHiCL.from_pretrained(tiny_bert_dir)
    build_index(model, folder, tmp_path / "idx", shard_size=3, show_progress_bar=False)
    indexed = evaluate_beir(model, folder, document_index=IndexDocuments(tmp_path / "idx", model))
    assert indexed.metrics == pytest.approx(evaluate_beir(model, folder, show_progress_bar=False).metrics, abs=1e-6)


def test_a_document_index_whose_lookup_takes_no_texts_is_used_with_one_warning(tmp_path, caplog):
    """A `DocumentIndex` written to the earlier protocol, `lookup(self, corpus_ids)`, still works."""
    import logging

    folder = write_beir(tmp_path / "toy")
    encoder = KeywordEncoder()
    data = load_beir(folder)

    class OwnIndex:
        location = "my-precomputed-store"

        def lookup(self, corpus_ids):
            rows = dict(zip(corpus_ids, encoder.encode([data.corpus[d] for d in corpus_ids]), strict=True))
            return lambda ids: np.stack([rows[i] for i in ids])

    with caplog.at_level(logging.WARNING, logger="biohicl.evaluation.retrieval"):
        indexed = evaluate_beir(encoder, folder, document_index=OwnIndex())
    assert indexed.metrics == pytest.approx(evaluate_beir(KeywordEncoder(), folder).metrics, abs=1e-6)
    assert [r.getMessage() for r in caplog.records] == [
        "my-precomputed-store: its lookup takes no texts, so that its rows were encoded from this corpus's texts is "
        "not checked"
    ]
    seen = []

    class KeywordIndex(OwnIndex):
        def lookup(self, corpus_ids, **options):  # takes texts by keyword: they are passed
            seen.append(options["texts"])
            return super().lookup(corpus_ids)

    caplog.clear()
    evaluate_beir(encoder, folder, document_index=KeywordIndex())
    assert seen == [list(data.corpus.values())] and caplog.records == []


def test_a_task_cut_by_limit_queries_says_so_on_its_line(caplog):
    """A capped task's console line said nothing of the cap: 2 of PubMedQA's 500 questions read as its full score."""
    import logging

    with caplog.at_level(logging.INFO, logger="biohicl.evaluation.runner"):
        evaluate_model(KeywordEncoder(), ["pubmedqa", "biosses"], limit_queries=2)
    lines = [r.getMessage() for r in caplog.records if r.name == "biohicl.evaluation.runner"]
    assert any(line.startswith("pubmedqa (test, the first 2 queries only): recall@1=") for line in lines)
    assert any(line.startswith("biosses (all): spearman=") for line in lines)  # the cap does not apply to BIOSSES

"""Ranking metrics against hand-computed values and against pytrec_eval (trec_eval's C code) on random runs."""

from __future__ import annotations

import math
import random

import pytest

from biohicl.evaluation.metrics import (
    CorrelationMetric,
    RetrievalMetric,
    ndcg_at_k,
    per_query_scores,
    rank_documents,
    recall_at_k,
    reciprocal_rank_at_k,
    retrieval_scores,
    retrieval_scores_with_items,
)

# One tie-free ranking: d1 > d2 > d3 > d4 > d5; judged: d2 (grade 1), d4 (grade 2), d9 (grade 1, never retrieved).
RUN = {"q": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.6, "d5": 0.5}}
QRELS = {"q": {"d2": 1, "d4": 2, "d9": 1, "d5": 0}}


def test_rank_documents_orders_by_score_then_doc_id_descending():
    assert rank_documents({"a": 0.1, "b": 0.3, "c": 0.2}) == ["b", "c", "a"]
    # trec_eval breaks ties by document id in descending string order
    assert rank_documents({"d1": 0.5, "d3": 0.5, "d2": 0.5, "x": 0.9}) == ["x", "d3", "d2", "d1"]


def test_ndcg_hand_computed():
    ranked = rank_documents(RUN["q"])
    # linear gains at ranks 2 (grade 1) and 4 (grade 2); ideal: grades 2, 1, 1 at ranks 1..3
    dcg = 1 / math.log2(3) + 2 / math.log2(5)
    ideal = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, QRELS["q"], 10) == pytest.approx(dcg / ideal, abs=1e-12)
    assert ndcg_at_k(ranked, QRELS["q"], 10) == pytest.approx(0.4766261, abs=1e-7)
    # @1: d1 is not relevant
    assert ndcg_at_k(ranked, QRELS["q"], 1) == 0.0
    # @2: only d2 counts; ideal@2 = 2 + 1/log2(3)
    assert ndcg_at_k(ranked, QRELS["q"], 2) == pytest.approx((1 / math.log2(3)) / (2 + 1 / math.log2(3)))


def test_recall_and_mrr_hand_computed():
    ranked = rank_documents(RUN["q"])
    assert recall_at_k(ranked, QRELS["q"], 1) == 0.0
    assert recall_at_k(ranked, QRELS["q"], 2) == pytest.approx(1 / 3)  # d2 of {d2, d4, d9}
    assert recall_at_k(ranked, QRELS["q"], 100) == pytest.approx(2 / 3)  # d9 never retrieved
    assert reciprocal_rank_at_k(ranked, QRELS["q"], 10) == 0.5
    assert reciprocal_rank_at_k(ranked, QRELS["q"], 1) == 0.0


def test_perfect_and_empty_rankings():
    qrels = {"a": {"x": 1}, "b": {"y": 1}}
    run = {"a": {"x": 2.0, "z": 1.0}, "b": {"z": 2.0, "w": 1.0}, "unjudged": {"x": 1.0}}
    scores = retrieval_scores(qrels, run, k_values=[1, 10])
    # query a is perfect, query b finds nothing; "unjudged" is ignored (trec_eval without -c)
    assert scores["ndcg@10"] == 0.5
    assert scores["recall@1"] == 0.5
    assert scores["mrr@10"] == 0.5
    assert set(per_query_scores(qrels, run)) == {"a", "b"}


def test_retrieval_metric_evaluate_api_matches_function():
    metric = RetrievalMetric()
    metric.add_batch(
        predictions=[{"doc_ids": list(RUN["q"]), "scores": list(RUN["q"].values())}],
        references=[{"doc_ids": list(QRELS["q"]), "relevance": list(QRELS["q"].values())}],
    )
    metric.add(prediction={"doc_ids": ["x", "y"], "scores": [0.2, 0.1]}, reference={"doc_ids": ["y"], "relevance": [1]})
    result = metric.compute(k_values=[1, 10], measures=["ndcg", "recall", "mrr"])
    expected = retrieval_scores({**QRELS, "r": {"y": 1}}, {**RUN, "r": {"x": 0.2, "y": 0.1}}, k_values=[1, 10])
    assert result == pytest.approx(expected)
    assert result["mrr@10"] == pytest.approx((0.5 + 0.5) / 2)


def test_correlation_metric_hand_computed():
    metric = CorrelationMetric()
    result = metric.compute(predictions=[1.0, 2.0, 3.0, 4.0], references=[1.0, 3.0, 2.0, 4.0])
    assert result["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))  # 0.8
    assert result["pearson"] == pytest.approx(0.8)
    monotone = metric.compute(predictions=[1.0, 2.0, 3.0, 10.0], references=[0.0, 1.0, 2.0, 3.0])
    assert monotone["spearman"] == pytest.approx(1.0)
    assert monotone["pearson"] < 0.95


@pytest.mark.parametrize("with_ties", [False, True])
def test_equal_to_pytrec_eval_on_random_runs(with_ties):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = random.Random(1234 + with_ties)
    k_values = (1, 3, 5, 10, 20)
    for _ in range(60):
        docs = [f"doc{i}" for i in range(rng.randint(1, 30))]
        qrels, run = {}, {}
        for q in range(6):
            qid = f"q{q}"
            qrels[qid] = {d: rng.choice([-1, 0, 0, 1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, len(docs)))}
            retrieved = rng.sample(docs, rng.randint(1, len(docs)))
            run[qid] = {d: (rng.choice([0.1, 0.2, 0.3]) if with_ties else rng.random()) for d in retrieved}
        ks = ",".join(map(str, k_values))
        reference = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{ks}", f"recall.{ks}"}).evaluate(run)
        ours = per_query_scores(qrels, run, k_values, ("ndcg", "recall", "mrr"))
        assert set(ours) == set(reference)
        for qid in reference:
            for k in k_values:
                assert ours[qid][f"ndcg@{k}"] == pytest.approx(reference[qid][f"ndcg_cut_{k}"], abs=1e-12)
                assert ours[qid][f"recall@{k}"] == pytest.approx(reference[qid][f"recall_{k}"], abs=1e-12)
                # MRR@k = trec_eval recip_rank on the run cut to its top k (in trec_eval's order)
                top = {d: run[qid][d] for d in rank_documents(run[qid])[:k]}
                rr = pytrec_eval.RelevanceEvaluator({qid: qrels[qid]}, {"recip_rank"}).evaluate({qid: top})
                assert ours[qid][f"mrr@{k}"] == pytest.approx(rr[qid]["recip_rank"], abs=1e-12)


def test_unknown_measure_is_rejected():
    with pytest.raises(ValueError, match="unknown measure"):
        per_query_scores(QRELS, RUN, measures=["map"])
    with pytest.raises(ValueError, match="main metric 'ndcg@5' is not one of the computed"):
        retrieval_scores_with_items(QRELS, RUN, "ndcg@5", k_values=[1, 10])


# A hand-made run for the tasks: ties (q1, q4), a query judged with no relevant document (q2), an empty ranking (q3).
TASK_QRELS = {"q1": {"d1": 1, "d3": 2}, "q2": {"d2": 0}, "q3": {"d4": 1}, "q4": {"d5": 1, "d2": 1, "d1": 2}}
TASK_RUN = {
    "q1": {"d1": 0.5, "d2": 0.5, "d3": 0.5, "d4": 0.1},
    "q2": {"d2": 0.9, "d1": 0.3},
    "q3": {},
    "q4": {"d3": 0.7, "d5": 0.2, "d2": 0.2, "d4": 0.2},
}


def test_tasks_score_exactly_as_the_evaluate_metric(tmp_path, monkeypatch):
    """evaluate_beir and evaluate_pubmedqa score a run in one pass of per_query_scores: the numbers of
    ``RetrievalMetric().compute_from_dicts`` (the ``evaluate`` adapter) bit for bit, and each item's main metric."""
    import json

    from biohicl.evaluation import pubmedqa, retrieval

    folder = tmp_path / "toy"
    (folder / "qrels").mkdir(parents=True)
    docs = "".join(json.dumps({"_id": f"d{i}", "title": "", "text": f"doc {i}"}) + "\n" for i in range(1, 6))
    (folder / "corpus.jsonl").write_text(docs)
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": q}) + "\n" for q in TASK_QRELS))
    lines = [f"{q}\t{d}\t{g}" for q, judged in TASK_QRELS.items() for d, g in judged.items()]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n")
    monkeypatch.setattr(retrieval, "dense_retrieve", lambda *args, **kwargs: TASK_RUN)
    result = retrieval.evaluate_beir(object(), folder, "test", k_values=[1, 2, 10])
    expected = RetrievalMetric().compute_from_dicts(TASK_QRELS, TASK_RUN, k_values=[1, 2, 10])
    assert result.metrics == expected
    assert list(result.metrics) == list(expected)  # the record's key order too
    # over q1 (both found), q2 (nothing relevant: 0) and q4 (d1 never retrieved); q3's empty ranking is not a query
    assert expected["recall@10"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    per_query = per_query_scores(TASK_QRELS, TASK_RUN, [10], ["ndcg"])
    assert result.per_item == {"ids": ["q1", "q2", "q4"], "scores": [per_query[q]["ndcg@10"] for q in per_query]}

    items = {p: {"QUESTION": f"q {p}", "CONTEXTS": [p], "LONG_ANSWER": f"a {p}"} for p in ("11", "22", "33", "44")}
    (tmp_path / "ori_pqal.json").write_text(json.dumps(items))
    (tmp_path / "test_ground_truth.json").write_text(json.dumps(dict.fromkeys(("11", "22", "33", "44"), "yes")))
    run = {"11": {"22": 0.5, "11": 0.5, "33": 0.1}, "22": {"11": 0.5, "22": 0.5}, "33": {}, "44": {"44": 0.2}}
    monkeypatch.setattr(pubmedqa, "dense_retrieve", lambda *args, **kwargs: run)
    result = pubmedqa.evaluate_pubmedqa(
        object(), data_file=tmp_path / "ori_pqal.json", test_file=tmp_path / "test_ground_truth.json"
    )
    qrels = {p: {p: 1} for p in items}
    expected = RetrievalMetric().compute_from_dicts(qrels, run, k_values=[1, 5, 10], measures=["recall", "mrr"])
    assert result.metrics == {name: expected[name] for name in ("recall@1", "recall@5", "mrr@10")}
    # 11 ties with 22, which ranks first (ids descending); 33's ranking is empty, so it is not an item
    assert result.metrics["recall@1"] == pytest.approx(2 / 3)
    assert result.per_item == {"ids": ["11", "22", "44"], "scores": [0.0, 1.0, 1.0]}


def test_a_query_without_judgements_is_left_out_as_pytrec_eval_leaves_it():
    """An empty judgement mapping (or a references row with no documents) is no judged query: trec_eval without -c
    does not evaluate it. It counted as 0 in every mean (recall@1 0.5 here, pytrec_eval 1.0)."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels = {"q": {}, "r": {"a": 1}, "s": {"a": 0, "b": 1}}
    run = {"q": {"a": 0.9}, "r": {"a": 0.3, "b": 0.2}, "s": {"a": 0.5, "b": 0.4}}
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.1,2", "recall.1,2", "recip_rank"}).evaluate(run)
    assert set(per_query_scores(qrels, run, (1, 2))) == set(reference) == {"r", "s"}
    ours = retrieval_scores(qrels, run, (1, 2))
    for k in (1, 2):
        for measure, name in (("ndcg", f"ndcg_cut_{k}"), ("recall", f"recall_{k}")):
            assert ours[f"{measure}@{k}"] == pytest.approx(sum(v[name] for v in reference.values()) / 2, abs=1e-12)
    assert ours["mrr@2"] == pytest.approx(sum(v["recip_rank"] for v in reference.values()) / 2, abs=1e-12)
    assert (ours["recall@1"], ours["mrr@2"]) == (0.5, 0.75)  # r found at 1, s at 2; q is not a query
    metric = RetrievalMetric()
    rows = [(run[q], qrels[q]) for q in ("q", "r", "s")]
    computed = metric.compute(
        predictions=[{"doc_ids": list(p), "scores": list(p.values())} for p, _ in rows],
        references=[{"doc_ids": list(j), "relevance": list(j.values())} for _, j in rows],
        k_values=[1, 2],
    )
    assert computed == ours == metric.compute_from_dicts(qrels, run, k_values=[1, 2])
    _, ids, values = retrieval_scores_with_items(qrels, run, "recall@1", k_values=[1, 2])
    assert (ids, values) == (["r", "s"], [1.0, 0.0])


@pytest.mark.parametrize(
    ("prediction", "reference", "message"),
    [
        (
            {"doc_ids": ["d1", "d2", "d1"], "scores": [0.9, 0.5, 0.1]},
            {"doc_ids": ["d1"], "relevance": [1]},
            "query 1: doc id 'd1' is listed twice in its predictions (trec_eval refuses duplicate docs); "
            "give each document one score",
        ),
        (
            {"doc_ids": ["d1", "d2"], "scores": [0.9, 0.5]},
            {"doc_ids": ["d1", "d2", "d1"], "relevance": [1, 0, 0]},
            "query 1: doc id 'd1' is listed twice in its references (trec_eval refuses duplicate docs); "
            "give each document one grade",
        ),
    ],
)
def test_a_document_listed_twice_for_one_query_is_refused_as_trec_eval_refuses_it(prediction, reference, message):
    """The last score or grade silently won (recall@1 0.0 for d1 scored 0.9 then 0.1, or judged 1 then 0); trec_eval
    stops at `duplicate docs` in a run or in qrels, and pytrec_eval's mappings cannot hold two."""
    fine = ({"doc_ids": ["a"], "scores": [1.0]}, {"doc_ids": ["a"], "relevance": [1]})
    with pytest.raises(ValueError) as raised:
        RetrievalMetric().compute(predictions=[fine[0], prediction], references=[fine[1], reference], k_values=[1])
    assert str(raised.value) == message

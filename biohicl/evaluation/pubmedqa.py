"""PubMedQA (PQA-L) as retrieval, the way the BioHiCL paper reports it (Recall@1).

Protocol (``target="long_answer"``, task ``pubmedqa``, the default):

1. Items: the expert-labelled PQA-L file ``ori_pqal.json`` (1,000 items keyed by PMID). Split ``test`` = the 500
   PMIDs of the official ``test_ground_truth.json`` (in that file's order); ``train`` = the other 500 (in
   ``ori_pqal.json`` order); ``dev`` = the 250 of those ``train`` PMIDs that
   :func:`biohicl.data.splits.pubmedqa_dev_pmids` holds out of training for model selection (sorted by PMID);
   ``all`` = all 1,000.
2. Queries: each item's ``QUESTION``, embedded with the model's query prompt.
3. Candidate pool: the ``LONG_ANSWER`` (the abstract's conclusion) of every item of the same split, embedded as
   documents; every question is scored against the whole pool by cosine similarity (exact search).
4. Relevant: exactly one candidate, the question's own long answer. Recall@k = share of questions whose own answer
   is in the top k (trec_eval ``recall_k``; ties broken by PMID, descending, as trec_eval does); MRR@10 too.

``target="context"`` (task ``pubmedqa-context``) uses the abstract without its conclusion (``CONTEXTS`` joined by
single spaces) as the candidate instead; it is much easier (all-MiniLM-L6-v2: 0.974 R@1 vs 0.858).
"""

from __future__ import annotations

import time
from pathlib import Path

from biohicl.data.pubmedqa import read_pmid_object, read_test_pmids
from biohicl.errors import DataError
from biohicl.evaluation.encoder import Encoder
from biohicl.evaluation.metrics import retrieval_scores_with_items
from biohicl.evaluation.results import TaskResult, file_checksums, record_key
from biohicl.evaluation.retrieval import dense_retrieve

SPLITS = ("test", "train", "dev", "all")
TARGETS = {"long_answer": "LONG_ANSWER", "context": "CONTEXTS"}
K_VALUES = (1, 5, 10)


def load_pubmedqa(
    split: str = "test", data_file: str | Path | None = None, test_file: str | Path | None = None
) -> tuple[dict[str, dict], list[Path]]:
    """``({pmid: item}, files read)`` for ``split`` (see the module docstring); :class:`DataError` on bad input, a
    file not there, not UTF-8, not JSON or JSON of another shape than ``{pmid: item}`` and ``{pmid: label}``
    (:func:`~biohicl.data.pubmedqa.read_pmid_object`, the dataset builder's reader), in one line naming it."""
    if split not in SPLITS:
        raise DataError(f"PubMedQA split must be one of {', '.join(SPLITS)}, not {split!r}")
    from biohicl.settings import data_path

    data_file = Path(data_file) if data_file is not None else data_path("pubmedqa", "ori_pqal.json")
    files = [data_file]
    items = read_pmid_object(data_file, "item")  # as the dataset builder reads it: one wording, a BOM no error
    for pmid, item in items.items():
        if not isinstance(item, dict):
            raise DataError(f"item {pmid}: expected a JSON object with QUESTION, LONG_ANSWER and CONTEXTS", data_file)
        for key in ("QUESTION", "LONG_ANSWER", "CONTEXTS"):
            if key not in item:
                raise DataError(f"item {pmid}: missing field {key}", data_file)
    if split == "all":
        return items, files
    test_file = Path(test_file) if test_file is not None else data_path("pubmedqa", "test_ground_truth.json")
    files.append(test_file)
    test_ids = read_test_pmids(test_file)  # an empty file refused, as the dataset builder refuses it
    unknown = [pmid for pmid in test_ids if pmid not in items]
    if unknown:
        raise DataError(f"{len(unknown)} test PMID(s) not in {data_file.name}, e.g. {unknown[0]}", test_file)
    if split == "test":
        return {pmid: items[pmid] for pmid in test_ids}, files
    test_set = set(test_ids)
    non_test = {pmid: item for pmid, item in items.items() if pmid not in test_set}
    if split == "train":
        return non_test, files
    from biohicl.data.splits import pubmedqa_dev_pmids  # the dataset builder holds the same PMIDs out of training

    return {pmid: non_test[pmid] for pmid in pubmedqa_dev_pmids(non_test)}, files


def candidate_text(item: dict, target: str) -> str:
    """The text a question must find: its long answer, or its context paragraphs joined by spaces."""
    if target not in TARGETS:
        raise DataError(f"PubMedQA target must be one of {', '.join(TARGETS)}, not {target!r}")
    value = item[TARGETS[target]]
    return " ".join(value) if isinstance(value, list) else str(value)


def evaluate_pubmedqa(
    encoder: Encoder,
    *,
    target: str = "long_answer",
    split: str = "test",
    batch_size: int = 32,
    limit_queries: int | None = None,
    show_progress_bar: bool | None = None,
    data_file: str | Path | None = None,
    test_file: str | Path | None = None,
) -> TaskResult:
    """Recall@1/5 and MRR@10 of question → own long answer (or context) retrieval over the split's pool.

    ``limit_queries`` keeps only the first N questions (the pool stays the whole split), for quick checks.
    """
    start = time.perf_counter()
    items, files = load_pubmedqa(split, data_file, test_file)
    pool = {pmid: candidate_text(item, target) for pmid, item in items.items()}
    question_ids = list(items)[:limit_queries] if limit_queries is not None else list(items)
    questions = {pmid: str(items[pmid]["QUESTION"]) for pmid in question_ids}
    run = dense_retrieve(
        encoder, questions, pool, top_k=max(K_VALUES), batch_size=batch_size, show_progress_bar=show_progress_bar
    )
    qrels = {pmid: {pmid: 1} for pmid in question_ids}
    metrics, ids, scores = retrieval_scores_with_items(
        qrels, run, "recall@1", k_values=K_VALUES, measures=("recall", "mrr")
    )
    metrics = {name: metrics[name] for name in ("recall@1", "recall@5", "mrr@10")}
    return TaskResult(
        task=record_key("pubmedqa" if target == "long_answer" else f"pubmedqa-{target}", split),
        split=split,
        main_metric="recall@1",
        metrics=metrics,
        num_queries=len(questions),
        num_documents=len(pool),
        data_files=file_checksums(files),
        wall_time_s=time.perf_counter() - start,
        protocol=f"PQA-L {split}: QUESTION (query prompt) -> own {TARGETS[target]} among the split's "
        f"{len(pool)} candidates, exact cosine",
        per_item={"ids": ids, "scores": scores},
    )

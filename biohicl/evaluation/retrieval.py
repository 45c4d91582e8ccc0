"""Dense retrieval on any BEIR-format folder, scored with trec_eval-exact metrics.

A BEIR folder holds ``corpus.jsonl`` (``{"_id", "title", "text"}`` per line; the text read, as ``biohicl index``
reads it, from the first of ``text``, ``abstract`` or ``contents`` present), ``queries.jsonl`` (``{"_id",
"text"}``) and ``qrels/<split>.tsv`` (``query-id <TAB> corpus-id <TAB> score``, with a header line, or trec_eval's
``query-id iteration doc-id relevance``, see :func:`read_qrels`). A document is
embedded as ``title + " " + text`` (BEIR's and MTEB's convention), queries with the model's query prompt, and every
query is scored against every document (exact search, cosine similarity); the top ``top_k`` documents per query
form the run that :func:`~biohicl.evaluation.metrics.retrieval_scores` judges.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from biohicl.errors import ConfigError, DataError
from biohicl.evaluation.encoder import Encoder, embedding_rows
from biohicl.evaluation.metrics import DEFAULT_K_VALUES, retrieval_scores_with_items
from biohicl.evaluation.qrels import read_qrels
from biohicl.evaluation.results import TaskResult, file_checksums

BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/<split>.tsv")
logger = logging.getLogger(__name__)


@dataclass
class BeirDataset:
    """A BEIR folder in memory: texts by id and graded judgements ``qrels[query_id][doc_id] = grade``."""

    corpus: dict[str, str] = field(metadata={"help": "doc id -> 'title text'"})
    queries: dict[str, str] = field(metadata={"help": "query id -> text (only the judged queries of the split)"})
    qrels: dict[str, dict[str, int]] = field(metadata={"help": "query id -> {doc id: grade}"})
    files: list[Path] = field(default_factory=list, metadata={"help": "the files read (for checksums)"})
    unknown_judgements: int = field(
        default=0, metadata={"help": "judgements naming a document id that is not in the corpus (never retrieved)"}
    )


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """The records of a BEIR JSONL file (the corpus reader's parsing and errors), each with an ``_id``."""
    from biohicl.data.corpus import iter_json_lines

    for line_number, record in iter_json_lines(path):
        if not isinstance(record, dict):
            raise DataError(f"line {line_number}: expected a JSON object with an `_id` field", path)
        if "_id" not in record:
            hint = "; its `id` field is not read here" if "id" in record else ""
            raise DataError(
                f"line {line_number}: record has no `_id` field (a BEIR {path.name.removesuffix('.gz')} names each "
                f"record's id `_id`{hint})",
                path,
            )
        yield line_number, record


def _missing_message(folder: Path, missing: list[str]) -> str:
    present = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()) if folder.is_dir() else []
    message = (
        f"not a complete BEIR folder: missing {', '.join(missing)} "
        f"(a BEIR folder needs {', '.join(BEIR_FILES)}); found: {', '.join(present) or 'nothing'}"
    )
    if (folder / "PROVENANCE.md").is_file():
        message += "; see PROVENANCE.md there for what this copy holds"
    return message


def available_splits(folder: str | Path) -> list[str]:
    """Split names with a ``qrels/<split>.tsv`` file in ``folder``."""
    qrels_dir = Path(folder) / "qrels"
    return sorted(p.name.split(".")[0] for p in qrels_dir.glob("*.tsv*")) if qrels_dir.is_dir() else []


def beir_files(folder: str | Path, split: str = "test") -> tuple[Path, Path, Path]:
    """(corpus, queries, qrels) paths of a BEIR folder; :class:`DataError` saying what is missing (reads nothing)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("no such directory", folder)
    corpus_path, queries_path = _find(folder, "corpus.jsonl"), _find(folder, "queries.jsonl")
    qrels_path = _find(folder / "qrels", f"{split}.tsv")
    missing = [name for name, p in (("corpus.jsonl", corpus_path), ("queries.jsonl", queries_path)) if p is None]
    if qrels_path is None:
        splits = available_splits(folder)
        missing.append(f"qrels/{split}.tsv" + (f" (splits present: {', '.join(splits)})" if splits else ""))
    if missing:
        raise DataError(_missing_message(folder, missing), folder)
    return corpus_path, queries_path, qrels_path  # type: ignore[return-value]


def _read_queries(path: Path, judged: dict) -> dict[str, str]:
    """``{query id: text}`` of a queries.jsonl; :class:`DataError` naming the line of a repeated id, or of a
    ``judged`` query with no text (null, missing, not a string or blank: an empty query is never meaningful)."""
    queries: dict[str, str] = {}
    lines: dict[str, int] = {}
    for line_number, record in _read_jsonl(path):
        query_id, text = str(record["_id"]), record.get("text")
        if query_id in lines:
            raise DataError(
                f"line {line_number}: duplicate query id {query_id!r} (first at line {lines[query_id]})", path
            )
        if query_id in judged and not (isinstance(text, str) and text.strip()):
            given = f"`text` is {json.dumps(text)[:40]}" if "text" in record else "no `text` field"
            raise DataError(f"line {line_number}: query {query_id!r} has no text ({given})", path)
        lines[query_id], queries[query_id] = line_number, text if isinstance(text, str) else ""
    return queries


def read_corpus(path: Path, texts: bool = True) -> dict[str, str]:
    """``{doc id: 'title text'}`` of a BEIR corpus.jsonl (``texts=False``: each text ``""``, ids only, for a check
    that keeps none); :class:`DataError` naming the line of a repeated id and of its first."""
    from biohicl.data.corpus import TEXT_FIELDS, TITLE_FIELDS, first_field

    corpus: dict[str, str] = {}
    for line_number, record in _read_jsonl(path):
        doc_id = str(record["_id"])
        if doc_id in corpus:  # the first line is found again (no line numbers kept for a large corpus)
            first = next(number for number, earlier in _read_jsonl(path) if str(earlier["_id"]) == doc_id)
            raise DataError(f"line {line_number}: duplicate document id {doc_id!r} (first at line {first})", path)
        if not texts:
            corpus[doc_id] = ""
            continue
        # the fields biohicl index reads (text, else abstract, else contents), so both sides compose the same texts
        title, text = (str(first_field(record, names) or "") for names in (TITLE_FIELDS, TEXT_FIELDS))
        corpus[doc_id] = f"{title} {text}".strip()
    return corpus


def read_beir(folder: str | Path, split: str = "test", texts: bool = True) -> BeirDataset:
    """A BEIR folder's split read whole and checked: :class:`DataError` naming the file (and line) of a malformed
    line, a repeated id, a judged query not in queries.jsonl, no documents, or judgements none of which name a corpus
    document. The one reading of :func:`load_beir` and the pre-flight (``texts=False``: :func:`read_corpus`), so
    they refuse alike. Its queries are all of queries.jsonl's."""
    corpus_path, queries_path, qrels_path = beir_files(folder, split)
    qrels = read_qrels(qrels_path)
    queries = _read_queries(queries_path, qrels)
    unknown = [qid for qid in qrels if qid not in queries]
    if unknown:
        raise DataError(f"{len(unknown)} judged query id(s) not in queries.jsonl, e.g. {unknown[0]!r}", qrels_path)
    corpus = read_corpus(corpus_path, texts)
    if not corpus:
        raise DataError("no documents", corpus_path)
    judged = {doc_id for judgments in qrels.values() for doc_id in judgments}
    if judged and judged.isdisjoint(corpus):
        example = next(iter(sorted(judged)))
        raise DataError(
            f"all {len(judged)} judged document ids are not in corpus.jsonl (e.g. {example!r}): "
            "qrels and corpus do not belong together",
            qrels_path,
        )
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels, files=[corpus_path, queries_path, qrels_path])


def load_beir(folder: str | Path, split: str = "test", limit_queries: int | None = None) -> BeirDataset:
    """Read a BEIR folder (:func:`read_beir`), its judged queries only (the first ``limit_queries``); raises
    :class:`DataError` naming what is missing or malformed (file and line)."""
    data = read_beir(folder, split)
    corpus, qrels, (corpus_path, _, qrels_path) = data.corpus, data.qrels, data.files
    query_ids = list(qrels)
    if limit_queries is not None:
        query_ids = query_ids[:limit_queries]
        qrels = {qid: qrels[qid] for qid in query_ids}
    unknown = sorted(
        {(qid, doc_id) for qid, judgments in qrels.items() for doc_id in judgments if doc_id not in corpus}
    )
    if unknown:
        # a judged document that is not in the corpus can never be retrieved: it lowers recall and nDCG; real BEIR
        # sets have a few, so it is counted and reported, not refused
        logger.warning(
            "%s: %d judgement(s) of %d name a document id not in %s (e.g. %r for query %r); they count as never "
            "retrieved",
            qrels_path,
            len(unknown),
            sum(len(j) for j in qrels.values()),
            corpus_path.name,
            unknown[0][1],
            unknown[0][0],
        )
    return BeirDataset(
        corpus=corpus,
        queries={qid: data.queries[qid] for qid in query_ids},
        qrels=qrels,
        files=data.files,
        unknown_judgements=len(unknown),
    )


class NonFiniteEmbeddings(DataError):
    """The :class:`DataError` of an encoder that returned NaN or inf embeddings (a collapsed model): nothing was
    scored. Training's evaluator scores that task NaN instead (:class:`~biohicl.evaluation.evaluator.TaskEvaluator`).
    :func:`~biohicl.evaluation.runner.evaluate_model` raises it again naming the task, with ``finished``: the record
    of the tasks that finished before it and ``incomplete`` (the failed task and those not run)."""

    finished: dict[str, Any] | None = None


def _normalize(matrix: np.ndarray) -> np.ndarray:
    if not np.isfinite(matrix).all():
        raise NonFiniteEmbeddings(
            "the encoder returned NaN or inf embeddings (a collapsed model?), so no query was scored"
        )
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.clip(norms, 1e-12, None)


#: document ids -> their embedding rows [n, dim] (stands in for encoding the documents)
DocumentEmbeddings = Callable[[Sequence[str]], np.ndarray]


class DocumentIndex(Protocol):
    """Precomputed document embeddings of one corpus (e.g. :class:`biohicl.search.documents.IndexDocuments`, the
    rows of a ``biohicl index`` folder built with the same model)."""

    #: where the embeddings come from (recorded in results; its last part is named in the task's protocol)
    location: str

    def lookup(self, corpus_ids: Sequence[str], texts: Sequence[str] | None = None) -> DocumentEmbeddings:
        """The rows of a corpus of exactly ``corpus_ids``; raises when the source holds other documents, or, given
        ``texts`` (the corpus's, as evaluation encodes them), rows of other texts. A ``lookup(corpus_ids)`` without
        ``texts`` is called without them (:func:`document_lookup`)."""
        ...


def document_lookup(document_index: DocumentIndex, corpus: dict[str, str]) -> DocumentEmbeddings:
    """``document_index.lookup`` of ``corpus``'s ids, given its texts when the lookup takes ``texts`` (by its
    signature); one warning that the texts are not checked when it does not (a lookup written before it did)."""
    try:
        parameters = inspect.signature(document_index.lookup).parameters
    except (TypeError, ValueError):  # a callable whose signature cannot be read (a C function)
        parameters = {}
    takes_texts = "texts" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    if takes_texts:
        return document_index.lookup(list(corpus), texts=list(corpus.values()))
    logger.warning(
        "%s: its lookup takes no texts, so that its rows were encoded from this corpus's texts is not checked",
        document_index.location,
    )
    return document_index.lookup(list(corpus))


def dense_retrieve(
    encoder: Encoder,
    queries: dict[str, str],
    corpus: dict[str, str],
    top_k: int = 100,
    batch_size: int = 32,
    corpus_chunk_size: int = 50_000,
    show_progress_bar: bool | None = None,
    ignore_identical_ids: bool = False,
    document_embeddings: DocumentEmbeddings | None = None,
) -> dict[str, dict[str, float]]:
    """Exact cosine search: ``{query_id: {doc_id: score}}`` with each query's ``top_k`` best documents.

    The corpus is embedded in chunks of ``corpus_chunk_size`` documents so memory stays bounded; the running
    top-k is merged chunk by chunk. Ties are cut the way trec_eval orders them (document id, descending).
    ``ignore_identical_ids`` drops a document whose id equals the query id
    (BEIR's option for corpora where queries are also documents, e.g. Quora, ArguAna).
    ``document_embeddings`` (e.g. :meth:`DocumentIndex.lookup`) supplies the documents' rows instead of
    encoding them; only the queries are encoded then.
    """
    import torch

    from biohicl.topk import merge_top_k

    query_ids = list(queries)
    # Columns in descending doc-id order + stable descending sorts = trec_eval's tie order (score desc, then
    # doc id desc), so the top k kept here are exactly the top k trec_eval would rank, ties at the cut included.
    doc_ids = sorted(corpus, reverse=True)

    def encoded(texts: list[str], kind: str) -> np.ndarray:
        rows = encoder.encode(texts, batch_size=batch_size, kind=kind, show_progress_bar=show_progress_bar)
        return embedding_rows(rows, np.float32)

    query_emb = torch.from_numpy(_normalize(encoded([queries[q] for q in query_ids], "query")))
    extra = 1 if ignore_identical_ids else 0
    best_scores = torch.empty(len(query_ids), 0)
    best_index = torch.empty(len(query_ids), 0, dtype=torch.long)
    for start in range(0, len(doc_ids), corpus_chunk_size):
        chunk = doc_ids[start : start + corpus_chunk_size]
        if document_embeddings is not None:
            doc_emb = np.asarray(document_embeddings(chunk), dtype=np.float32)
        else:
            doc_emb = encoded([corpus[d] for d in chunk], "document")
        scores = query_emb @ torch.from_numpy(_normalize(doc_emb)).T
        best_scores, best_index = merge_top_k(best_scores, best_index, scores, start, top_k + extra, stable=True)
    run: dict[str, dict[str, float]] = {}
    for row, query_id in enumerate(query_ids):
        hits = {doc_ids[i]: float(s) for i, s in zip(best_index[row].tolist(), best_scores[row].tolist(), strict=True)}
        if ignore_identical_ids:
            hits.pop(query_id, None)
            hits = dict(list(hits.items())[:top_k])
        run[query_id] = hits
    return run


def evaluate_beir(
    encoder: Encoder,
    folder: str | Path,
    split: str = "test",
    *,
    name: str | None = None,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    batch_size: int = 32,
    limit_queries: int | None = None,
    show_progress_bar: bool | None = None,
    ignore_identical_ids: bool = False,
    document_index: DocumentIndex | None = None,
) -> TaskResult:
    """Retrieve for every judged query of ``split`` and score nDCG@k, Recall@k and MRR@k (trec_eval-exact).

    ``document_index``: precomputed embeddings of this corpus's documents (:class:`DocumentIndex`, e.g. a
    ``biohicl index`` folder built with the same model), whose rows replace encoding the documents (a large corpus
    is then encoded once, resumably, by ``biohicl index``).
    """
    if isinstance(document_index, (str, Path)):
        raise ConfigError(
            "document_index: a DocumentIndex, not a path (biohicl.search.documents.IndexDocuments(folder, model))"
        )
    start = time.perf_counter()
    data = load_beir(folder, split, limit_queries=limit_queries)
    lookup = document_lookup(document_index, data.corpus) if document_index is not None else None
    run = dense_retrieve(
        encoder,
        data.queries,
        data.corpus,
        top_k=max(k_values),
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
        ignore_identical_ids=ignore_identical_ids,
        document_embeddings=lookup,
    )
    main_metric = "ndcg@10" if 10 in k_values else f"ndcg@{max(k_values)}"
    metrics, ids, scores = retrieval_scores_with_items(data.qrels, run, main_metric, k_values=k_values)
    return TaskResult(
        task=name or Path(folder).name,
        split=split,
        main_metric=main_metric,
        metrics=metrics,
        num_queries=len(data.queries),
        num_documents=len(data.corpus),
        data_files=file_checksums(data.files),
        wall_time_s=time.perf_counter() - start,
        protocol="BEIR exact dense retrieval, cosine; document = title + ' ' + text; queries use the query prompt"
        + (f"; document embeddings from the index {Path(document_index.location).name}" if document_index else "")
        + (
            f"; {data.unknown_judgements} judgement(s) name a document not in the corpus (never retrieved)"
            if data.unknown_judgements
            else ""
        ),
        per_item={"ids": ids, "scores": scores},
    )

"""Dense retrieval on any BEIR-format folder, scored with trec_eval-exact metrics.

A BEIR folder holds ``corpus.jsonl`` (``{"_id", "title", "text"}`` per line), ``queries.jsonl`` (``{"_id",
"text"}``) and ``qrels/<split>.tsv`` (``query-id <TAB> corpus-id <TAB> score``, with a header line). A document is
embedded as ``title + " " + text`` (BEIR's and MTEB's convention), queries with the model's query prompt, and every
query is scored against every document (exact search, cosine similarity); the top ``top_k`` documents per query
form the run that :func:`~biohicl.evaluation.metrics.retrieval_scores` judges.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from biohicl.errors import ConfigError, DataError
from biohicl.evaluation.metrics import DEFAULT_K_VALUES, RetrievalMetric

if TYPE_CHECKING:
    from biohicl.evaluation import Encoder
    from biohicl.evaluation.tasks import TaskResult

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


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    from biohicl.data.corpus import iter_lines  # decodes line by line: a bad byte or a corrupt gzip names its line

    for line_number, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"line {line_number}: not valid JSON ({err.msg})", path) from None
        if not isinstance(record, dict) or "_id" not in record:
            raise DataError(f"line {line_number}: record has no `_id` field", path)
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


def load_beir(folder: str | Path, split: str = "test", limit_queries: int | None = None) -> BeirDataset:
    """Read a BEIR folder; raises :class:`DataError` naming what is missing or malformed (file and line)."""
    corpus_path, queries_path, qrels_path = beir_files(folder, split)
    qrels: dict[str, dict[str, int]] = {}
    with _open_text(qrels_path) as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (line_number == 1 and row[0].strip().lower() in {"query-id", "query_id", "qid"}):
                continue
            if len(row) != 3:
                raise DataError(f"line {line_number}: expected 3 tab-separated fields, got {len(row)}", qrels_path)
            try:
                grade = int(float(row[2]))
            except ValueError:
                raise DataError(f"line {line_number}: score {row[2]!r} is not a number", qrels_path) from None
            qrels.setdefault(row[0].strip(), {})[row[1].strip()] = grade
    if not qrels:
        raise DataError("no judgements", qrels_path)

    all_queries = {str(r["_id"]): str(r.get("text", "")) for _, r in _read_jsonl(queries_path)}
    unknown = [qid for qid in qrels if qid not in all_queries]
    if unknown:
        raise DataError(f"{len(unknown)} judged query id(s) not in queries.jsonl, e.g. {unknown[0]!r}", qrels_path)
    query_ids = list(qrels)
    if limit_queries is not None:
        query_ids = query_ids[:limit_queries]
        qrels = {qid: qrels[qid] for qid in query_ids}
    corpus: dict[str, str] = {}
    for line_number, record in _read_jsonl(corpus_path):
        doc_id = str(record["_id"])
        if doc_id in corpus:
            raise DataError(f"line {line_number}: duplicate document id {doc_id!r}", corpus_path)
        title, text = str(record.get("title") or ""), str(record.get("text") or "")
        corpus[doc_id] = f"{title} {text}".strip()
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
        queries={qid: all_queries[qid] for qid in query_ids},
        qrels=qrels,
        files=[corpus_path, queries_path, qrels_path],
        unknown_judgements=len(unknown),
    )


def _normalize(matrix: np.ndarray) -> np.ndarray:
    if not np.isfinite(matrix).all():
        raise DataError("the encoder returned NaN or inf embeddings; nothing was scored")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.clip(norms, 1e-12, None)


DocumentEmbeddings = Callable[[Sequence[str]], np.ndarray]


def index_document_embeddings(
    directory: str | Path, corpus_ids: Sequence[str], model: Any = None
) -> DocumentEmbeddings:
    """Document embeddings read from a ``biohicl index`` folder instead of encoded, as ``ids -> [n, dim]``.

    The index must hold exactly the corpus's documents and, when ``model`` is given, have been built by that model
    with the same pooling, ``max_length`` and document prompt; anything else is an error, never a silent mix.
    """
    from biohicl.search.exact import Index
    from biohicl.search.indexing import describe_model

    index = Index.load(directory)
    manifest = index.manifest
    model = getattr(model, "model", model)  # the DtypeEncoder wrapper holds the model
    if model is not None:
        if getattr(model, "embedding_dim", index.dim) != index.dim:
            raise ConfigError(
                f"document_index: {directory} holds {index.dim}-d rows, the model embeds in {model.embedding_dim}"
            )
        config = getattr(model, "config", None)
        if config is not None and getattr(config, "base_model", None):
            model_id, _ = describe_model(model)
            if model_id != manifest.model:
                raise ConfigError(f"document_index: {directory} was built with {manifest.model}, not {model_id}")
            for name in ("pooling", "max_length", "document_prompt"):
                if getattr(config, name, None) != getattr(manifest, name):
                    raise ConfigError(
                        f"document_index: {directory} was built with {name}="
                        f"{getattr(manifest, name)!r}, the model now has {getattr(config, name)!r}"
                    )
    records = index.documents(range(len(index)))
    rows = {str(records[row]["id"]): row for row in range(len(index))}
    missing = [d for d in corpus_ids if d not in rows]
    if missing or len(rows) != len(corpus_ids):
        raise DataError(
            f"the index holds other documents than the corpus ({len(missing)} of {len(corpus_ids)} "
            f"corpus ids missing{', e.g. ' + missing[0] if missing else ''}; {len(rows)} indexed)",
            directory,
        )
    embeddings = index.embeddings().numpy()

    def lookup(doc_ids: Sequence[str]) -> np.ndarray:
        return embeddings[[rows[d] for d in doc_ids]]

    return lookup


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
    ``document_embeddings`` (e.g. :func:`index_document_embeddings`) supplies the documents' rows instead of
    encoding them; only the queries are encoded then.
    """
    import torch

    query_ids = list(queries)
    # Columns in descending doc-id order + stable descending sorts = trec_eval's tie order (score desc, then
    # doc id desc), so the top k kept here are exactly the top k trec_eval would rank, ties at the cut included.
    doc_ids = sorted(corpus, reverse=True)

    def encoded(texts: list[str], kind: str) -> np.ndarray:
        rows = encoder.encode(texts, batch_size=batch_size, kind=kind, show_progress_bar=show_progress_bar)
        return np.asarray(rows, dtype=np.float32)

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
        merged_scores = torch.cat([best_scores, scores], dim=1)
        merged_index = torch.cat([best_index, torch.arange(start, start + len(chunk)).expand(len(query_ids), -1)], 1)
        sorted_scores, order = torch.sort(merged_scores, dim=1, descending=True, stable=True)
        best_scores = sorted_scores[:, : top_k + extra]
        best_index = torch.gather(merged_index, 1, order[:, : top_k + extra])
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
    document_index: str | Path | None = None,
) -> TaskResult:
    """Retrieve for every judged query of ``split`` and score nDCG@k, Recall@k and MRR@k (trec_eval-exact).

    ``document_index``: a ``biohicl index`` folder of this corpus built with the same model, whose rows replace
    encoding the documents (a large corpus is then encoded once, resumably, by ``biohicl index``).
    """
    from biohicl.evaluation.tasks import TaskResult, file_checksums

    start = time.perf_counter()
    data = load_beir(folder, split, limit_queries=limit_queries)
    lookup = index_document_embeddings(document_index, list(data.corpus), encoder) if document_index else None
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
    metrics = RetrievalMetric().compute_from_dicts(data.qrels, run, k_values=k_values)
    return TaskResult(
        task=name or Path(folder).name,
        split=split,
        main_metric="ndcg@10" if 10 in k_values else f"ndcg@{max(k_values)}",
        metrics=metrics,
        num_queries=len(data.queries),
        num_documents=len(data.corpus),
        data_files=file_checksums(data.files),
        wall_time_s=time.perf_counter() - start,
        protocol="BEIR exact dense retrieval, cosine; document = title + ' ' + text; queries use the query prompt"
        + (f"; document embeddings from the index {Path(document_index).name}" if document_index else "")
        + (
            f"; {data.unknown_judgements} judgement(s) name a document not in the corpus (never retrieved)"
            if data.unknown_judgements
            else ""
        ),
    )

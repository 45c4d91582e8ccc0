"""BIOSSES: Spearman (the paper's metric) and Pearson of cosine similarity against the gold mean score.

Reads ``biosses/biosses.tsv`` from the data directory (columns ``id, sentence1, sentence2, annotator_a..e,
score_mean``; 100 pairs, no official split, so the split is ``all``). Both sentences are embedded as documents (the
model's document prompt, if it has one; no query prompt: STS is symmetric, as in MTEB).
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import numpy as np

from biohicl.errors import DataError
from biohicl.evaluation.encoder import Encoder, embedding_rows
from biohicl.evaluation.metrics import CorrelationMetric
from biohicl.evaluation.results import TaskResult, file_checksums

BIOSSES_COLUMNS = ("sentence1", "sentence2", "score_mean")


def load_biosses(path: str | Path | None = None) -> tuple[list[str], list[str], list[float], Path]:
    """(sentences1, sentences2, gold scores, path) from ``biosses.tsv``; :class:`DataError` names the line of a byte
    that is not UTF-8, a ``score_mean`` that is not a finite number or an empty sentence."""
    if path is None:
        from biohicl.settings import data_path

        path = data_path("biosses", "biosses.tsv")
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path)
    from biohicl.data.corpus import iter_lines  # decodes line by line: a byte that is not UTF-8 names its line

    first, second, gold = [], [], []
    reader = csv.DictReader((line for _, line in iter_lines(path)), delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = [c for c in BIOSSES_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"header lacks column(s) {', '.join(missing)}", path)
    for row in reader:
        line_number = reader.line_num  # the file's line (blank lines, which DictReader skips, counted)
        try:
            score = float(row["score_mean"])
        except (TypeError, ValueError):
            raise DataError(f"line {line_number}: score_mean {row['score_mean']!r} is not a number", path) from None
        if not math.isfinite(score):  # nan or inf: a NaN Spearman, or scipy's error, later
            raise DataError(f"line {line_number}: score_mean {row['score_mean']!r} is not a finite number", path)
        if not row["sentence1"] or not row["sentence2"]:
            raise DataError(f"line {line_number}: empty sentence", path)
        first.append(row["sentence1"])
        second.append(row["sentence2"])
        gold.append(score)
    if len(gold) < 2:
        raise DataError(f"only {len(gold)} pair(s); need at least 2", path)
    return first, second, gold, path


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two equally shaped matrices."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.clip(norms, 1e-12, None)


def evaluate_biosses(
    encoder: Encoder,
    path: str | Path | None = None,
    *,
    split: str = "all",
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> TaskResult:
    """Spearman and Pearson correlation of cos(emb(s1), emb(s2)) with the gold mean score over all 100 pairs."""
    if split != "all":
        raise DataError(f"BIOSSES has no official split; use split 'all', not {split!r}", path)
    start = time.perf_counter()
    first, second, gold, path = load_biosses(path)
    unique = list(dict.fromkeys(first + second))
    embeddings = embedding_rows(
        encoder.encode(unique, batch_size=batch_size, kind="document", show_progress_bar=show_progress_bar)
    )
    row = {text: i for i, text in enumerate(unique)}
    similarity = cosine_rows(embeddings[[row[t] for t in first]], embeddings[[row[t] for t in second]])
    metrics = CorrelationMetric().compute(predictions=similarity.tolist(), references=gold)
    return TaskResult(
        task="biosses",
        split=split,
        main_metric="spearman",
        metrics=metrics,
        num_queries=len(gold),
        data_files=file_checksums([path]),
        wall_time_s=time.perf_counter() - start,
        protocol="cosine of both sentences, each encoded as a document (the document prompt, if any; no query prompt) "
        "vs score_mean; Spearman and Pearson over all pairs",
        per_item={"ids": [str(i) for i in range(len(gold))], "predictions": similarity.tolist(), "gold": list(gold)},
    )

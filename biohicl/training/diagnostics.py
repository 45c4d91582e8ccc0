"""Did training teach the hierarchy? SimE vs. SimL agreement on held-out MeSH-indexed abstracts.

This measures the training objective itself, independently of any downstream task: over every pair of held-out
documents (e.g. PubMedQA's 500 test abstracts, never trained on), the rank correlation between the embedding
cosine SimE and the MeSH similarity SimL, and the mean SimE of related (SimL > β) and unrelated (SimL = 0) pairs.

    python -m biohicl.training.diagnostics runs/mesh-pairs-test-docs.jsonl runs/minilm-biohicl ...
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biohicl.errors import ConfigError, DataError
from biohicl.mesh.gram import gram_matrix
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.mesh.pair_rules import ZERO_TOLERANCE

#: Columns read as a document's MeSH descriptor UIs, first match wins.
LABEL_COLUMNS = ("mesh_uis", "mesh", "labels", "mesh_ids", "descriptors")
DOCUMENT_SUFFIXES = (".jsonl", ".json", ".parquet")


def siml_alignment(
    model: Any,
    texts: Sequence[str],
    labels: Sequence[Sequence[str]],
    mesh: MeshHierarchy | None = None,
    beta: float = 0.3,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> dict[str, float]:
    """Agreement of SimE (``model.encode``) with SimL over all pairs ``i < j`` of the given documents."""
    from scipy.stats import pearsonr, spearmanr

    mesh = mesh or MeshHierarchy.load()
    clean = [mesh.known_labels(labs) for labs in labels]
    keep = [i for i, labs in enumerate(clean) if labs]
    siml = gram_matrix(mesh.normalized_label_vectors([clean[i] for i in keep]))
    kept_texts = [texts[i] for i in keep]
    encoded = model.encode(kept_texts, batch_size=batch_size, kind="document", show_progress_bar=show_progress_bar)
    emb = np.asarray(encoded, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sime = emb @ emb.T
    upper = np.triu_indices(len(keep), k=1)
    s_l, s_e = siml[upper], sime[upper]
    positive, zero = s_l > beta, s_l <= ZERO_TOLERANCE
    return {
        "documents": len(keep),
        "pairs": len(s_l),
        "spearman": float(spearmanr(s_e, s_l).statistic),
        "pearson": float(pearsonr(s_e, s_l).statistic),
        "mse_all_pairs": float(np.mean((s_e - s_l) ** 2)),
        "sime_positive_mean": float(s_e[positive].mean()) if positive.any() else float("nan"),
        "sime_zero_mean": float(s_e[zero].mean()) if zero.any() else float("nan"),
        "positive_pairs": int(positive.sum()),
        "zero_pairs": int(zero.sum()),
    }


def read_documents(path: str | Path):
    """The documents of a ``biohicl build-dataset`` folder (config ``documents``) or of one ``.jsonl``/``.json``/
    ``.parquet`` file, as a ``datasets.Dataset``; a file that cannot be read is a one-line :class:`DataError`."""
    import datasets

    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"dataset_path: {path} does not exist")
    if not path.is_dir() and path.suffix not in DOCUMENT_SUFFIXES:
        raise ConfigError(f"dataset_path: {path} is neither a dataset folder nor a .jsonl/.json/.parquet file")
    if path.is_dir():
        return read_config(path, "documents")
    if path.suffix == ".parquet":
        return read_parquet([path], path)
    try:
        return datasets.Dataset.from_list(read_json_records(path))
    except (ValueError, TypeError) as err:  # arrow cannot type a column (e.g. mixed types across records)
        if isinstance(err, DataError):
            raise
        raise DataError(f"cannot build a table from the records ({type(err).__name__}: {err})", path) from None


def read_json_records(path: Path) -> list[dict]:
    """The records of a JSON lines file (one object per line) or of a JSON file holding a list of objects; a bad
    line is a one-line :class:`DataError` naming the file and line (not UTF-8, not JSON, not an object)."""
    raw = path.read_bytes()
    if path.suffix == ".json" and raw.lstrip()[:1] == b"[":
        try:
            loaded = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            message = f"line {line}: not UTF-8 (byte 0x{raw[err.start]:02x}); re-save the file as UTF-8"
            raise DataError(message, path) from None
        except json.JSONDecodeError as err:
            raise DataError(f"line {err.lineno}: not valid JSON ({err.msg})", path) from None
        numbered = [(i + 1, record) for i, record in enumerate(loaded)]
    else:
        numbered = []
        for number, line in enumerate(raw.splitlines(), start=1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"line {number}: not UTF-8 (byte 0x{line[err.start]:02x} at column {err.start + 1}); "
                    "re-save the file as UTF-8",
                    path,
                ) from None
            if not text.strip():
                continue
            try:
                numbered.append((number, json.loads(text)))
            except json.JSONDecodeError as err:
                raise DataError(f"line {number}: not valid JSON ({err.msg}, column {err.colno})", path) from None
    for number, record in numbered:
        if not isinstance(record, dict):
            raise DataError(f"line {number}: expected a JSON object per document, got {type(record).__name__}", path)
    if not numbered:
        raise DataError("no documents in the file", path)
    return [record for _, record in numbered]


def parquet_files(root: Path, config: str) -> list[Path]:
    """The parquet files of dataset config ``config`` under a dataset folder (the layouts `build-dataset` and the
    Hub use)."""
    for pattern in (
        f"{config}/*.parquet",
        f"{config}/**/*.parquet",
        f"{config}.parquet",
        f"data/{config}*.parquet",
        f"{config}-*.parquet",
    ):
        files = sorted(root.glob(pattern))
        if files:
            return files
    return []


def read_parquet(files: Sequence[Path], where: str | Path):
    """Parquet files as one in-memory ``datasets.Dataset`` (pyarrow directly: an empty file is an empty table,
    where ``Dataset.from_parquet`` raises "Instruction 'train' corresponds to no data!")."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        tables = [pq.read_table(str(f)) for f in files]
        return datasets.Dataset(pa.concat_tables(tables, promote_options="default"))
    except Exception as err:  # ArrowInvalid, OSError, schema mismatches
        raise DataError(f"cannot read the parquet data ({type(err).__name__}: {err})", where) from None


def read_config(root: Path, config: str):
    """Dataset config ``config`` of a dataset folder (parquet files, or a ``save_to_disk`` DatasetDict)."""
    import datasets

    files = parquet_files(root, config)
    if files:
        return read_parquet(files, root / config)
    try:
        loaded = datasets.load_from_disk(str(root))
    except Exception:  # any failure means: not a saved DatasetDict either
        raise ConfigError(f"{root}: no `{config}` parquet files found") from None
    if isinstance(loaded, datasets.DatasetDict) and config in loaded:
        return loaded[config]
    raise ConfigError(f"{root}: no `{config}` config")


def label_column(documents: Any, path: str | Path) -> str:
    """The documents' MeSH label column (:data:`LABEL_COLUMNS`)."""
    found = next((c for c in LABEL_COLUMNS if c in documents.column_names), None)
    if found is None:
        raise ConfigError(f"{path}: no MeSH label column (looked for {', '.join(LABEL_COLUMNS)})")
    return found


def split_documents(
    path: str | Path, split: str = "dev", limit: int | None = None
) -> tuple[list[str], list[list[str]], list[str]]:
    """``(texts, labels, pmids)`` of the documents of ``split`` in a built dataset (``title + " " + abstract``,
    MeSH UIs as stored); :class:`DataError` when the dataset has no such documents."""
    documents = read_documents(path)
    column = label_column(documents, path)
    if "split" not in documents.column_names:
        raise DataError(f"no `split` column, so no {split!r} documents (rebuild with `biohicl build-dataset`)", path)
    keep = [i for i, s in enumerate(documents["split"]) if s == split]
    if not keep:
        present = sorted({str(s) for s in documents["split"]})
        raise DataError(f"no documents with split {split!r} (splits present: {', '.join(present)})", path)
    rows = documents.select(keep[:limit] if limit is not None else keep)
    texts = [(r.get("text") or f"{r.get('title') or ''} {r.get('abstract') or ''}").strip() for r in rows]
    labels = [list(r[column] or ()) for r in rows]
    pmids = [str(r.get("pmid", i)) for i, r in enumerate(rows)]
    return texts, labels, pmids


def pubmedqa_test_documents() -> tuple[list[str], list[list[str]]]:
    """PubMedQA's official test abstracts (title-less: the contexts joined) with their MeSH UIs."""
    from biohicl.data.pubmedqa import load_pubmedqa_test_ids
    from biohicl.settings import data_path

    items = json.loads(data_path("pubmedqa", "ori_pqal.json").read_text(encoding="utf-8"))
    test_ids = load_pubmedqa_test_ids(data_path("pubmedqa", "test_ground_truth.json"))
    mesh = MeshHierarchy.load()
    texts, labels = [], []
    for pmid in sorted(test_ids):
        item = items[pmid]
        texts.append(" ".join(item["CONTEXTS"]))
        labels.append([ui for name in item.get("MESHES", []) if (ui := mesh.try_resolve(name))])
    return texts, labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model folders or Hub ids (BioHiCL.from_pretrained)")
    parser.add_argument("--max_length", type=int, default=None)
    args = parser.parse_args(argv)
    from biohicl.models.model import BioHiCL

    texts, labels = pubmedqa_test_documents()
    for name in args.models:
        model = BioHiCL.from_pretrained(name)
        if args.max_length:
            model.config.max_length = args.max_length
        model.eval()
        print(json.dumps({"model": name, **siml_alignment(model, texts, labels)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

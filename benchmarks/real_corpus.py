# (not a benchmark itself, hence not bench_*.py: `make bench` runs those)
"""The real-abstract corpus the compressed-search benchmark indexes: SciFact's corpus plus every MeSH-indexed
abstract in the data folder (PubMedQA, the MEDLINE sample, the BioASQ sample, the PubMed exports), one PMID once.

    python benchmarks/real_corpus.py --output bench/corpus.jsonl     # prints the counts per source
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

INDEXED = ("pubmedqa/ori_pqal.json", "medline_sample", "bioasq_sample/bioasq_sample.json", "pubmed_exports")


def indexed_files(data: Path) -> list[Path]:
    files: list[Path] = []
    for entry in INDEXED:
        path = data / entry
        if path.is_dir():
            files.extend(p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() != ".md")
        else:
            files.append(path)
    return files


def write_corpus(output: Path, data: Path | None = None) -> Counter:
    from biohicl.data.read_report import ReadReport
    from biohicl.data.sources import read_records, unique_records
    from biohicl.settings import data_dir

    data = data or data_dir()
    counts: Counter = Counter()
    output.parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    with output.open("w", encoding="utf-8") as out:
        for line in (data / "scifact" / "corpus.jsonl").open(encoding="utf-8"):
            record = json.loads(line)
            out.write(
                json.dumps({"_id": record["_id"], "title": record.get("title", ""), "text": record["text"]}) + "\n"
            )
            seen.add(str(record["_id"]))
            counts["scifact"] += 1
        report = ReadReport()
        records = unique_records(read_records("auto", indexed_files(data), report=report), report)
        for record in records:
            if not record.abstract or f"pmid:{record.pmid}" in seen:
                continue
            seen.add(f"pmid:{record.pmid}")
            doc = {"_id": f"pmid:{record.pmid}", "title": record.title, "text": record.abstract, "mesh": record.mesh}
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")
            counts[record.source] += 1
    return counts


def subset_index(source: Path, output: Path, rows: int) -> None:
    """A new index folder holding the first ``rows`` rows of ``source`` (same settings, same vectors): SciFact's
    corpus comes first in the benchmark corpus, so its rows serve ``biohicl evaluate --document_index``."""
    import dataclasses

    from biohicl.data.corpus import Document
    from biohicl.search.index import Index
    from biohicl.search.layout import parse_dtype, write_shard

    index = Index.load(source)
    embeddings = index.embeddings()[:rows]
    docs = index.documents(range(rows))
    output.mkdir(parents=True, exist_ok=True)
    documents = [
        Document(str(docs[i]["id"]), "", docs[i].get("title", ""), tuple(docs[i].get("mesh", ()))) for i in range(rows)
    ]
    shard = write_shard(output, 0, embeddings.to(parse_dtype(index.manifest.dtype)), documents)
    manifest = dataclasses.replace(index.manifest, count=rows, shards=[shard], shard_size=rows, world_size=1)
    manifest.save(output)
    print(f"wrote the first {rows:,} rows of {source} to {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("bench/corpus.jsonl"))
    parser.add_argument("--subset-of", type=Path, default=None, help="an index: write its first --rows rows instead")
    parser.add_argument("--rows", type=int, default=5183)
    args = parser.parse_args()
    if args.subset_of is not None:
        return subset_index(args.subset_of, args.output, args.rows)
    counts = write_corpus(args.output)
    print(f"wrote {sum(counts.values()):,} documents to {args.output}: {dict(counts)}")


if __name__ == "__main__":
    main()

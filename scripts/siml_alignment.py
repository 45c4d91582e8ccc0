"""SimE vs. SimL agreement of models on PubMedQA's 500 test abstracts, one JSON line per model.

    python scripts/siml_alignment.py sentence-transformers/all-MiniLM-L6-v2 runs/minilm-biohicl --max_length 256

The measure is :func:`biohicl.evaluation.agreement.siml_alignment` (docs/results.md reports it).
"""

from __future__ import annotations

import argparse
import json

from biohicl.evaluation.agreement import siml_alignment
from biohicl.evaluation.pubmedqa import candidate_text, load_pubmedqa
from biohicl.mesh.hierarchy import MeshHierarchy


def pubmedqa_test_documents() -> tuple[list[str], list[list[str]]]:
    """PubMedQA's official test abstracts (title-less: the contexts joined), sorted by PMID, with their MeSH UIs."""
    items, _ = load_pubmedqa("test")
    mesh = MeshHierarchy.load()
    texts, labels = [], []
    for pmid in sorted(items):
        texts.append(candidate_text(items[pmid], "context"))
        labels.append([ui for name in items[pmid].get("MESHES", []) if (ui := mesh.try_resolve(name))])
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

"""SimE vs. SimL agreement of models on PubMedQA's 500 test abstracts, one JSON line per model.

    python scripts/siml_alignment.py sentence-transformers/all-MiniLM-L6-v2 runs/minilm-biohicl --max_length 256

The measure is :func:`biohicl.training.diagnostics.siml_alignment` (docs/results.md reports it).
"""

from __future__ import annotations

import argparse
import json

from biohicl.training.diagnostics import pubmedqa_test_documents, siml_alignment


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

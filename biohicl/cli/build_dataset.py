"""``biohicl build-dataset``: read MeSH-annotated abstracts, mine MeSH pairs by SimL, write the parquet dataset.

Inputs come in groups: each ``--source`` applies to the ``--input`` files that follow it, e.g.::

    biohicl build-dataset --source pubmedqa --input ori_pqal.json \\
                          --source pubtator --input CDR_*.PubTator.txt --output out/mesh-pairs

A single ``--source`` may also cover several ``--input`` groups. ``--input`` without ``--source`` detects each
file's format from its content (files in no known format, e.g. a folder's README, are listed and left out)::

    biohicl build-dataset --input ../shared/data/pubmed_exports/* --output out/exports

Without any input the default corpora in ``BIOHICL_DATA_DIR`` are used, all MeSH *indexing*: PubMedQA PQA-L
(``split`` marks its 500 test items), the MEDLINE sample, ``bioasq_sample/`` and ``pubmed_exports/``.
BC5CDR's labels are entity *mentions*, another label distribution: mixing kinds needs ``--mix-label-kinds``
(pairs never cross kinds). Decontamination is on (``--no-decontaminate`` turns it off): documents of PubMedQA
test, SciFact, BIOSSES and every ``--beir`` folder are removed. A fixed, seeded dev split (``--dev-seed``,
``--dev-fraction``, ``--pubmedqa-dev-size``) marks documents ``split="dev"``: never trained on, for model
selection.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from biohicl.errors import ConfigError

HELP = "read MeSH-annotated abstracts and write the MeSH-pair dataset (documents + top-k SimL pairs, parquet)"


def build_parser() -> argparse.ArgumentParser:
    from biohicl.data.readers import SOURCES
    from biohicl.data.splits import DEV_DOCUMENT_FRACTION, DEV_SEED, PUBMEDQA_DEV_SIZE

    parser = argparse.ArgumentParser(
        prog="biohicl build-dataset", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--source",
        action="append",
        choices=SOURCES,
        default=[],
        help="corpus format of the --input files that follow (repeatable; without it each file's format is "
        "detected from its content)",
    )
    parser.add_argument(
        "--input",
        action="append",
        nargs="+",
        default=[],
        metavar="PATH",
        help="input file(s) for the preceding --source (repeatable)",
    )
    parser.add_argument("--output", required=True, type=Path, help="output folder (replaced atomically)")
    parser.add_argument("--limit", type=int, default=None, help="keep the first N documents (e.g. 80000)")
    parser.add_argument("--seed", type=int, default=0, help="seed for tie-breaking among equal SimL")
    parser.add_argument("--top-k", type=int, default=10, help="partners mined per document")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first malformed record, empty abstract or unresolvable MeSH label",
    )
    parser.add_argument(
        "--exclude-test", action="store_true", help="leave the 500 official PubMedQA test abstracts out of the dataset"
    )
    parser.add_argument(
        "--test-ids",
        type=Path,
        default=None,
        help="PubMedQA test_ground_truth.json (default: the one in BIOHICL_DATA_DIR)",
    )
    parser.add_argument(
        "--mesh",
        type=Path,
        default=None,
        help="MeSH release to use (desc20XX.xml[.gz], mtrees20XX.bin, MeshTree.txt); default: packaged MeSH 2024",
    )
    parser.add_argument(
        "--mix-label-kinds",
        action="store_true",
        help="allow MeSH indexing (BioASQ, MEDLINE, PubMedQA) and entity-mention (PubTator) labels in one dataset; "
        "pairs never cross kinds. Without inputs: the default corpora plus BC5CDR",
    )
    parser.add_argument(
        "--no-decontaminate",
        action="store_true",
        help="keep documents that are in an evaluation set (PubMedQA test PMIDs, SciFact, BIOSSES, --beir)",
    )
    parser.add_argument(
        "--beir",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="a BEIR folder (corpus.jsonl) whose documents must not be trained on (repeatable)",
    )
    parser.add_argument(
        "--dev-seed", type=int, default=DEV_SEED, help="seed of the dev split (held-out documents, PubMedQA dev)"
    )
    parser.add_argument(
        "--dev-fraction",
        type=float,
        default=DEV_DOCUMENT_FRACTION,
        help="share of documents held out as dev, by a seeded hash of the PMID (0 = none)",
    )
    parser.add_argument(
        "--pubmedqa-dev-size",
        type=int,
        default=PUBMEDQA_DEV_SIZE,
        help="non-test PubMedQA PQA-L items held out as the pubmedqa:dev task (0 = none)",
    )
    parser.add_argument("--no-arrow", action="store_true", help="write parquet only (no load_from_disk copy)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser  # fmt: skip


def _groups(args: argparse.Namespace) -> list[tuple[str, list[str]]] | None:
    if not args.source and not args.input:
        return None
    if not args.input:
        raise ConfigError("--source needs --input files (e.g. --source pubmedqa --input ori_pqal.json)")
    if not args.source:
        return [("auto", [p for group in args.input for p in group])]
    if len(args.source) == 1:
        return [(args.source[0], [p for group in args.input for p in group])]
    if len(args.source) != len(args.input):
        raise ConfigError(
            f"{len(args.source)} --source but {len(args.input)} --input groups: give one --input per --source"
        )
    return [(source, list(paths)) for source, paths in zip(args.source, args.input, strict=True)]


def main(argv: list[str]) -> int:
    from biohicl.data.pairs import build_dataset_from_files, default_inputs
    from biohicl.data.splits import DevSplit
    from biohicl.mesh.hierarchy import MeshHierarchy

    args = build_parser().parse_args(argv)
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    dev_split = DevSplit(seed=args.dev_seed, fraction=args.dev_fraction, pubmedqa_size=args.pubmedqa_dev_size)
    groups = _groups(args)
    if groups is None:
        groups = default_inputs(mentions=args.mix_label_kinds)
        corpora = "PubMedQA, the MEDLINE sample, bioasq_sample and pubmed_exports (MeSH indexing)"
        print(f"no --input given: using {corpora}{' and BC5CDR (mentions)' if args.mix_label_kinds else ''} "
              "from BIOHICL_DATA_DIR")  # fmt: skip
    mesh = MeshHierarchy.load(args.mesh)
    _, summary = build_dataset_from_files(
        groups, args.output, mesh, top_k=args.top_k, seed=args.seed, limit=args.limit, strict=args.strict,
        exclude_test=args.exclude_test, test_ids=args.test_ids, progress=not args.no_progress,
        arrow=not args.no_arrow, mix_label_kinds=args.mix_label_kinds, decontaminate=not args.no_decontaminate,
        beir=args.beir, dev_split=dev_split,
    )  # fmt: skip
    print(summary)
    print(f"wrote {args.output} (documents/, pairs/ parquet + README.md dataset card)")
    return 0

"""``biohicl build-dataset``: read MeSH-annotated abstracts, mine MeSH pairs by SimL, write the parquet dataset.

Inputs come in groups: each ``--source`` applies to the ``--input`` files that follow it, e.g.::

    biohicl build-dataset --source pubmedqa --input ori_pqal.json \\
                          --source pubtator --input CDR_*.PubTator.txt --output out/mesh-pairs

A ``--source`` covers every ``--input`` group after it up to the next ``--source``; ``--input`` groups before any
``--source`` (or without one) detect each file's format from its content (files in no known format, e.g. a
folder's README, are listed and left out)::

    biohicl build-dataset --input $BIOHICL_DATA_DIR/pubmed_exports/* --output out/exports

Ties in SimL are broken by the documents' reading order too, so list the files in a fixed order (a shell glob sorts
by the locale: ``LC_ALL=C`` sorts by bytes). ``summary.json`` records the command line (no machine path), the
sha256 of the MeSH file, of each input file and of the PubMedQA test-id file read (``--test_ids`` or the one found).

Your own labelled abstracts go in as JSON lines (``--source jsonl``, detected when a line of its first 64 KB
has a label field; an unrecognised ``.jsonl`` input is an error):
``{"pmid" or "id", "title", "abstract" or "text", "mesh": [descriptor UIs and/or names]}`` per line.

Without any input the default corpora in ``BIOHICL_DATA_DIR`` are used, all MeSH *indexing*: PubMedQA PQA-L
(``split`` marks its 500 test items), the MEDLINE sample, ``bioasq_sample/`` and ``pubmed_exports/``.
BC5CDR's labels are entity *mentions*, another label distribution: mixing kinds needs ``--mix_label_kinds``
(pairs never cross kinds). Decontamination is on (``--no_decontaminate`` turns it off): a document that matches an
evaluation set is removed: a copy of a PubMedQA test item in another corpus (by PMID or abstract), a SciFact or
``--beir`` document (by title or abstract), one holding a BIOSSES sentence. PubMedQA's own test items stay in the
dataset, marked split="test" and never trained on, unless ``--exclude_test``. A fixed, seeded dev split (``--dev_seed``,
``--dev_fraction``, ``--pubmedqa_dev_size``) marks documents ``split="dev"``: never trained on, for model
selection. Options can also come from a YAML/JSON file (``--config build.yaml``; ``input`` a list of file lists).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from biohicl.data.splits import DEV_DOCUMENT_FRACTION, DEV_SEED, PUBMEDQA_DEV_SIZE
from biohicl.errors import ConfigError
from biohicl.training.arg_checks import check_seed

HELP = "Read MeSH-annotated abstracts and write the MeSH-pair dataset (documents + top-k SimL pairs, parquet)."


class _Source(str):
    """A ``--source`` value from the command line, with the number of ``--input`` groups given before it."""

    inputs_before: int = 0


class _InputGroup(list):
    """The files of one ``--input`` on the command line (a config file's groups are plain lists)."""


class _SourceAction(argparse._AppendAction):
    """``--source``: appends, remembering where it stood among the ``--input`` groups (argparse keeps the two
    options in separate lists, which loses their order)."""

    def __call__(self, parser, namespace, values, option_string=None):
        value = _Source(values)
        value.inputs_before = len(getattr(namespace, "input", None) or [])
        super().__call__(parser, namespace, value, option_string)


class _InputAction(argparse._AppendAction):
    """``--input``: appends the group, marked as given on the command line."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, _InputGroup(values), option_string)


def _sources() -> list[str]:
    from biohicl.data import SOURCES

    return list(SOURCES)


@dataclass
class BuildDatasetArguments:
    """Options of ``biohicl build-dataset``."""

    output: str = field(metadata={"help": "output folder (replaced atomically)"})
    source: list[str] = field(
        default_factory=list,
        metadata={
            "help": "corpus format of the --input files that follow (repeatable; without it each file's format is "
            "detected from its content)",
            "action": _SourceAction,
            "choices": _sources(),
            "argparse": {"nargs": None},
        },
    )
    input: list[list[str]] = field(
        default_factory=list,
        metadata={
            "help": "input file(s) for the preceding --source (repeatable; before any --source: format detected)",
            "action": _InputAction,
            "metavar": "PATH",
            "argparse": {"type": str},
        },
    )
    limit: int | None = field(
        default=None,
        metadata={
            "help": "keep the first N documents read, in input order (PubMedQA first), then stop reading; test and "
            "dev documents count toward N (what decontamination or --exclude_test removes does not), so fewer than "
            "N are training documents"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed for tie-breaking among equal SimL"})
    top_k: int = field(default=10, metadata={"help": "partners mined per document"})
    strict: bool = field(
        default=False,
        metadata={
            "help": "stop at an empty input file, the first malformed record, empty abstract or unknown MeSH label"
        },
    )
    exclude_test: bool = field(
        default=False, metadata={"help": "leave the 500 official PubMedQA test abstracts out of the dataset"}
    )
    test_ids: str | None = field(
        default=None, metadata={"help": "PubMedQA test_ground_truth.json (default: the one in BIOHICL_DATA_DIR)"}
    )
    mesh: str | None = field(
        default=None,
        metadata={
            "help": "MeSH release to use (desc20XX.xml[.gz], mtrees20XX.bin, MeshTree.txt); default: packaged MeSH 2024"
        },
    )
    mix_label_kinds: bool = field(
        default=False,
        metadata={
            "help": "allow MeSH indexing (BioASQ, MEDLINE, PubMedQA) and entity-mention (PubTator) labels in one "
            "dataset; pairs never cross kinds. Without inputs: the default corpora plus BC5CDR"
        },
    )
    decontaminate: bool = field(
        default=True,
        metadata={
            "help": "remove documents of other corpora that are in an evaluation set (PubMedQA test items by PMID or "
            'abstract, SciFact, BIOSSES, --beir); PubMedQA\'s own test items stay, marked split="test" (--exclude_test '
            "removes them); --no_decontaminate keeps them all"
        },
    )
    beir: list[str] = field(
        default_factory=list,
        metadata={
            "help": "a BEIR folder (corpus.jsonl) whose documents must not be trained on (repeatable)",
            "action": "append",
            "metavar": "DIR",
            "argparse": {"nargs": None},
        },
    )
    dev_seed: int = field(
        default=DEV_SEED, metadata={"help": "seed of the dev split (held-out documents, PubMedQA dev)"}
    )
    dev_fraction: float = field(
        default=DEV_DOCUMENT_FRACTION,
        metadata={"help": "share of documents held out as dev, by a seeded hash of the PMID (0 = none)"},
    )
    pubmedqa_dev_size: int = field(
        default=PUBMEDQA_DEV_SIZE,
        metadata={"help": "non-test PubMedQA PQA-L items held out as the pubmedqa:dev task (0 = none)"},
    )
    arrow: bool = field(
        default=True, metadata={"help": "also write the load_from_disk copy (--no_arrow: parquet only)"}
    )
    progress: bool = field(default=True, metadata={"help": "progress bars (--no_progress: none)"})

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError(f"--top_k must be >= 1, got {self.top_k}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {self.limit}")
        for name in ("seed", "dev_seed"):  # numpy's generators refuse a negative seed, after the inputs were read
            check_seed(getattr(self, name), f"--{name}")  # any seed from 0: default_rng and a hash take them all

    def groups(self) -> list[tuple[str, list[str]]] | None:
        """``(source, files)`` groups of the ``--source``/``--input`` options (None: no input given)."""
        inputs = [[group] if isinstance(group, str) else list(group) for group in self.input]  # a config's flat list
        if not self.source and not inputs:
            return None
        if not inputs:
            raise ConfigError("--source needs --input files (e.g. --source pubmedqa --input ori_pqal.json)")
        if (
            self.source
            and all(isinstance(s, _Source) for s in self.source)
            and all(isinstance(group, _InputGroup) for group in self.input)
        ):
            return self._ordered_groups(inputs)
        if not self.source:
            return [("auto", [p for group in inputs for p in group])]
        if len(self.source) == 1:
            return [(self.source[0], [p for group in inputs for p in group])]
        if len(self.source) != len(inputs):
            raise ConfigError(
                f"{len(self.source)} --source but {len(inputs)} --input groups: give one --input per --source"
            )
        return list(zip(self.source, inputs, strict=True))

    def _ordered_groups(self, inputs: list[list[str]]) -> list[tuple[str, list[str]]]:
        """Groups in command-line order: ``--input`` before any ``--source`` is ``auto`` (format detected), and
        each ``--source`` covers the ``--input`` groups after it up to the next ``--source``."""
        groups: list[tuple[str, list[str]]] = []
        first = self.source[0].inputs_before
        if first:
            groups.append(("auto", [p for group in inputs[:first] for p in group]))
        for source, following in zip(self.source, [*self.source[1:], None], strict=True):
            end = len(inputs) if following is None else following.inputs_before
            files = [p for group in inputs[source.inputs_before : end] for p in group]
            if not files:
                raise ConfigError(
                    f"--source {source} has no --input after it (each --source applies to the --input files that "
                    "follow it, e.g. --source pubmedqa --input ori_pqal.json)"
                )
            groups.append((str(source), files))
        return groups


def parse_args(argv: list[str]) -> BuildDatasetArguments:
    from biohicl.cli.parser import parse_command

    (args,) = parse_command(BuildDatasetArguments, argv, prog="biohicl build-dataset", description=__doc__)
    return args


def command_line(argv: list[str]) -> str:
    """``biohicl build-dataset`` and ``argv``, as ``summary.json`` and the dataset card record it: shell-quoted, with
    no machine path (an absolute path inside the data directory as ``"$BIOHICL_DATA_DIR"/...`` when that variable is
    set, quoted so that a data directory with a space stays one word in a shell, else as ``read.files`` records it:
    relative to the data directory, or by its folder and file name outside it); relative paths as given, from the
    folder the build ran in."""
    import os
    import shlex

    from biohicl.data.read_report import recorded_path
    from biohicl.settings import DATA_DIR_ENV, data_dir

    try:  # a data directory found without the variable (../shared/data): $BIOHICL_DATA_DIR/x would read as /x
        root = data_dir(required=False) if os.environ.get(DATA_DIR_ENV) else None
    except ConfigError:  # BIOHICL_DATA_DIR names no folder: no path is shown relative to it
        root = None

    def shown(token: str) -> str:
        option, equals, value = token.partition("=") if token.startswith("--") else ("", "", token)
        if not os.path.isabs(value):
            return shlex.quote(token)
        path = Path(value)
        if root is not None and path.resolve().is_relative_to(root.resolve()):
            text = '"$BIOHICL_DATA_DIR"/' + shlex.quote(path.resolve().relative_to(root.resolve()).as_posix())
        else:
            text = shlex.quote(recorded_path(path))
        return f"{option}={text}" if equals else text

    return " ".join(["biohicl build-dataset", *map(shown, argv)])


def main(argv: list[str]) -> int:
    from biohicl.data import DevSplit, build_dataset_from_files, default_inputs

    args = parse_args(argv)
    dev_split = DevSplit(seed=args.dev_seed, fraction=args.dev_fraction, pubmedqa_size=args.pubmedqa_dev_size)
    groups = args.groups()
    if groups is None:
        groups = default_inputs(mentions=args.mix_label_kinds)
        corpora = "PubMedQA, the MEDLINE sample, bioasq_sample and pubmed_exports (MeSH indexing)"
        print(f"no --input given: using {corpora}{' and BC5CDR (mentions)' if args.mix_label_kinds else ''} "
              "from BIOHICL_DATA_DIR")  # fmt: skip
    _, summary = build_dataset_from_files(  # args.mesh is loaded after the inputs are checked (a bad one said first)
        groups, args.output, args.mesh, top_k=args.top_k, seed=args.seed, limit=args.limit, strict=args.strict,
        exclude_test=args.exclude_test, test_ids=args.test_ids, progress=args.progress, arrow=args.arrow,
        mix_label_kinds=args.mix_label_kinds, decontaminate=args.decontaminate, beir=args.beir, dev_split=dev_split,
        command=command_line(argv),
    )  # fmt: skip
    print(summary)
    print(f"wrote {args.output} (documents/, pairs/ parquet + README.md dataset card)")
    return 0

"""Building the MeSH-pair dataset from corpus files: read (format detected per file), drop later copies of a PMID,
decontaminate against the evaluation sets, mark the dev split, mine the pairs and save; and the real corpora of the
default dataset (:func:`default_inputs`, :func:`build_default_dataset`)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biohicl.data.pairs import DEFAULT_DEV_SPLIT, PairDatasetSummary, build_pair_dataset, mixed_kinds_message
from biohicl.data.pubmedqa import load_pubmedqa_test_ids, read_pmid_object
from biohicl.data.read_report import ReadReport
from biohicl.data.records import MeshRecord, label_kind_of
from biohicl.data.sources import read_groups, resolve_inputs, unique_records
from biohicl.data.splits import DevSplit
from biohicl.data.storage import check_output_dir, save_pair_dataset
from biohicl.errors import ConfigError, DataError
from biohicl.mesh.hierarchy import MeshHierarchy

if TYPE_CHECKING:
    from datasets import DatasetDict

logger = logging.getLogger(__name__)


def build_dataset_from_files(
    inputs: Iterable[tuple[str, Iterable[str | Path] | str | Path]],
    output_dir: str | Path | None,
    mesh: MeshHierarchy | str | Path | None = None,
    *,
    top_k: int = 10,
    seed: int = 0,
    limit: int | None = None,
    strict: bool = False,
    exclude_test: bool = False,
    test_ids: str | Path | None = None,
    progress: bool = True,
    arrow: bool = True,
    mix_label_kinds: bool = False,
    decontaminate: bool = True,
    beir: Sequence[str | Path] = (),
    dev_split: DevSplit | None = DEFAULT_DEV_SPLIT,
    command: str | None = None,
) -> tuple[DatasetDict, PairDatasetSummary]:
    """Read ``(source, files)`` groups (source ``"auto"``: detected per file), build the MeSH-pair dataset and
    (unless ``output_dir`` is None) save it. PubMedQA files are read first, then the others in order; the first copy
    of a PMID wins (so a PubMedQA item is PubMedQA's record whatever the input order).

    The official PubMedQA test PMIDs come from ``test_ids``, by default
    ``$BIOHICL_DATA_DIR/pubmedqa/test_ground_truth.json`` when present, else the one beside a PubMedQA input: the
    PubMedQA reader marks them ``test``, decontamination removes copies of them and the PubMedQA dev items are
    drawn from the other PQA-L items. ``exclude_test`` removes them (plus every record marked ``test``).
    ``decontaminate`` (default) removes every document of a known evaluation set (PubMedQA test PMIDs, SciFact,
    BIOSSES, and the BEIR folders in ``beir``; :mod:`biohicl.data.decontamination`). ``dev_split`` draws the
    PubMedQA dev items from the non-test PMIDs of the PubMedQA inputs (else of ``BIOHICL_DATA_DIR``'s PQA-L).
    Inputs of both label kinds are refused before reading unless ``mix_label_kinds``, and one file given twice
    (the same file, however named: a symlink or a hard link to it) always
    (:func:`~biohicl.data.sources.check_distinct_inputs`). A group's files may be a list, a generator or a glob.
    ``mesh``: the hierarchy, or a MeSH file to load (None: the packaged table),
    loaded once the inputs are checked (so a bad input is said before a release is read).
    ``command`` is recorded as the summary's ``command`` (``biohicl build-dataset`` passes its command line), with
    the sha256 of every input file and of the test-id file used (``input_sha256``: :func:`input_digests`) and of the
    MeSH file.
    Returns ``(dataset_dict, summary)``; an ``output_dir`` a save would refuse is a :class:`ConfigError` first.
    """
    if output_dir is not None:
        check_output_dir(output_dir)
    report = ReadReport()
    groups = resolve_inputs(inputs, report, strict)  # one file given twice: refused before any input is read
    kinds: dict[str, set[str]] = {}
    for source, _ in groups:
        kinds.setdefault(label_kind_of(source), set()).add(source)
    if len(kinds) > 1 and not mix_label_kinds:
        raise DataError(mixed_kinds_message(Counter({(k, s): None for k, ss in kinds.items() for s in ss})))
    mesh = mesh if isinstance(mesh, MeshHierarchy) else MeshHierarchy.load(mesh)
    test_file = _pubmedqa_test_file(test_ids, groups)
    tests = frozenset(load_pubmedqa_test_ids(test_file)) if test_file is not None else frozenset()
    pubmedqa_pmids = {Path(f): set(read_pmid_object(f, "item")) for s, fs in groups if s == "pubmedqa" for f in fs}
    if test_file is not None and pubmedqa_pmids:
        _check_test_ids_found(test_file, tests, pubmedqa_pmids, explicit=test_ids is not None)
    excluded = set(tests) if exclude_test else set()
    decontaminator = None
    if decontaminate:
        from biohicl.data.decontamination import Decontaminator

        decontaminator = Decontaminator.from_data_dir(beir=beir, test_ids=test_file, test_pmids=tests)
    elif beir:
        raise ConfigError("--beir names evaluation sets to decontaminate against: it needs decontamination on")
    if dev_split is not None and dev_split.pubmedqa_non_test is None:
        dev_split = _with_pubmedqa_reference(dev_split, pubmedqa_pmids, tests)

    deletions: list[tuple[str, str]] = []  # <DeleteCitation> PMIDs of NLM update files, applied by unique_records

    def stream():  # PubMedQA first: its records win over other copies of their PMIDs (test/dev marks, question)
        ordered = sorted(groups, key=lambda group: group[0] != "pubmedqa")
        yield from read_groups(ordered, mesh, strict=strict, report=report, test_ids=tests, deletions=deletions)

    records: Iterable[MeshRecord] = unique_records(stream(), report, strict=strict, deletions=deletions)
    if progress:
        from tqdm.auto import tqdm

        records = tqdm(records, desc="reading abstracts", unit="doc", total=limit)
    dataset, summary = build_pair_dataset(
        records, mesh, top_k=top_k, seed=seed, limit=limit, exclude_pmids=excluded, exclude_test=exclude_test,
        report=report, progress=progress, mix_label_kinds=mix_label_kinds, dev_split=dev_split,
        decontaminator=decontaminator,
    )  # fmt: skip
    summary = replace(summary, command=command, input_sha256=input_digests(groups, test_ids=test_file))
    if output_dir is not None:
        save_pair_dataset(dataset, output_dir, summary, arrow=arrow)
    return dataset, summary


def input_digests(
    groups: Sequence[tuple[str, Sequence[Path]]], test_ids: str | Path | None = None
) -> list[dict[str, str]]:
    """``{"path", "sha256"}`` of each input file in input order, ``path`` as
    :func:`~biohicl.data.read_report.recorded_path` records it: a list, not a mapping by path, since two inputs may
    record one path (``a/x/data.jsonl`` and ``b/x/data.jsonl`` are both ``x/data.jsonl``). Then the PubMedQA test-id
    file the build used, ``test_ids`` (given or found), marked ``"role": "test_ids"``: it decides which documents are
    the test split, so two builds of other test ids record other digests. A second read of each file, cheap beside
    parsing it."""
    from biohicl.data.read_report import recorded_path
    from biohicl.provenance import files_sha256

    digests = [{"path": recorded_path(path), "sha256": files_sha256([path])} for _, files in groups for path in files]
    if test_ids is not None:
        digests.append({"path": recorded_path(test_ids), "sha256": files_sha256([Path(test_ids)]), "role": "test_ids"})
    return digests


def _check_test_ids_found(
    test_file: Path, tests: frozenset[str], pubmedqa_pmids: dict[Path, set[str]], *, explicit: bool
) -> None:
    """One warning for a test-id file that names none of the PubMedQA inputs' PMIDs (given with ``--test_ids``, it says
    that a PQA-L input's test items are trained on; a corpus of that format other than PQA-L, PQA-A, has none of its
    test PMIDs, and the file still decontaminates the other inputs), and one for a file naming only some of them (a
    cut of PQA-L), with the count."""
    inputs = ", ".join(map(str, pubmedqa_pmids))
    found = len(tests & set().union(*pubmedqa_pmids.values()))
    if found == len(tests):
        return
    if not found:
        plural = "s" if len(tests) != 1 else ""
        message = f"none of its {len(tests)} test PMID{plural} is a PMID of the PubMedQA input ({inputs})"
        why = " (if it holds PubMedQA's labelled questions, their test items are trained on)" if explicit else ""
        logger.warning("%s: %s; no PubMedQA item is marked test%s", test_file, message, why)
        return
    missing = len(tests) - found
    verb = "is" if missing == 1 else "are"
    logger.warning("%s: %d of its %d test PMIDs %s not a PMID of the PubMedQA input (%s); %d marked test",
                   test_file, missing, len(tests), verb, inputs, found)  # fmt: skip


def _with_pubmedqa_reference(
    dev_split: DevSplit, pubmedqa_pmids: dict[Path, set[str]], test_ids: frozenset[str]
) -> DevSplit:
    """``dev_split`` with ``pubmedqa_non_test`` from the PubMedQA inputs (``pubmedqa_pmids``: each input's PMIDs),
    else from ``BIOHICL_DATA_DIR``'s PQA-L (so a copy of a PubMedQA dev abstract in another corpus is held out
    too); unchanged when there is none."""
    from biohicl.settings import data_dir

    keys = list(pubmedqa_pmids.values())
    if not keys:
        root = data_dir(required=False)
        candidate = root / "pubmedqa" / "ori_pqal.json" if root is not None else None
        keys = [set(read_pmid_object(candidate, "item"))] if candidate is not None and candidate.is_file() else []
    if not keys:
        return dev_split
    return replace(dev_split, pubmedqa_non_test=frozenset(set().union(*keys) - test_ids))


def _pubmedqa_test_file(test_ids: str | Path | None, groups: Sequence[tuple[str, Sequence[Path]]]) -> Path | None:
    """The PubMedQA test-id file of a build: ``test_ids``, else ``BIOHICL_DATA_DIR``'s
    ``pubmedqa/test_ground_truth.json``, else the one beside a PubMedQA input; ``None`` when there is none."""
    from biohicl.settings import data_dir

    if test_ids is not None:
        return Path(test_ids)
    root = data_dir(required=False)
    candidates = [root / "pubmedqa" / "test_ground_truth.json"] if root is not None else []
    candidates += [Path(f).parent / "test_ground_truth.json" for s, files in groups if s == "pubmedqa" for f in files]
    return next((c for c in candidates if c.is_file()), None)


EXPORT_SUFFIXES = (".xml", ".xml.gz", ".txt", ".nbib", ".medline", ".txt.gz")


def default_inputs(mentions: bool = False) -> list[tuple[str, list[Path]]]:
    """The real corpora of the default dataset, all MeSH *indexing*, in this order (the first copy of a PMID
    wins): PubMedQA PQA-L (1,000; its 500 test items marked ``test``), the MEDLINE sample, ``bioasq_sample/``
    and every PubMed export in ``pubmed_exports/`` (format detected per file). ``mentions=True`` adds BC5CDR
    (PubTator entity mentions; a dataset with both needs ``mix_label_kinds``)."""
    from biohicl.settings import data_path

    exports = data_path("pubmed_exports")
    inputs: list[tuple[str, list[Path]]] = [
        ("pubmedqa", [data_path("pubmedqa", "ori_pqal.json")]),
        ("medline", [data_path("medline_sample", "medline16n0902.xml.gz")]),
        ("bioasq", [data_path("bioasq_sample", "bioasq_sample.json")]),
        ("auto", sorted(p for p in exports.iterdir() if p.name.lower().endswith(EXPORT_SUFFIXES))),
    ]
    if mentions:
        inputs.append(
            (
                "pubtator",
                [data_path("bc5cdr", f"CDR_{part}Set.PubTator.txt") for part in ("Training", "Development", "Test")],
            )
        )
    return inputs


def build_default_dataset(
    output_dir: str | Path | None,
    *,
    top_k: int = 10,
    seed: int = 0,
    progress: bool = True,
    mix_label_kinds: bool = False,
    **kwargs: Any,
) -> tuple[DatasetDict, PairDatasetSummary]:
    """Build the default MeSH-pair dataset (:func:`default_inputs`: indexing only; with ``mix_label_kinds`` BC5CDR's
    mentions too) from ``BIOHICL_DATA_DIR``, decontaminated, with the dev split; returns ``(DatasetDict,
    PairDatasetSummary)``."""
    return build_dataset_from_files(
        default_inputs(mentions=mix_label_kinds), output_dir, top_k=top_k, seed=seed, progress=progress,
        mix_label_kinds=mix_label_kinds, **kwargs,
    )  # fmt: skip

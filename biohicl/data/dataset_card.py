"""The MeSH-pair dataset card: ``README.md`` with YAML metadata (license, configs/data_files, counts, SimL, MeSH
version), rendered from ``hub/dataset_card_template.md`` with jinja2."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from biohicl.data.columns import column_list
from biohicl.provenance import PACKAGE_ROOT, template_file

TEMPLATE_NAME = "dataset_card_template.md"
#: the license id of a mixed-source dataset on the Hub (``license: other``), and the file its ``license_link`` names
HUB_LICENSE_NAME = "biohicl-mixed-sources"
LICENSE_FILE = "LICENSE.md"

_BC5CDR_LICENSE = "public domain (U.S. Government work, NCBI)"
_BC5CDR_CITATION = "Li et al., BioCreative V CDR task corpus, Database 2016"
_BUILDER_LICENSE = "as its provider states"
#: the BioCreative V CDR corpus's PubTator files as distributed (``CDR_TrainingSet.PubTator.txt``, ...
#: ``CDR_DevelopmentSet``, ``CDR_TestSet``, or gzipped): only PubTator inputs named so are credited to BC5CDR
BC5CDR_FILE = re.compile(r"CDR_(TrainingSet|DevelopmentSet|TestSet)\.PubTator\.txt(\.gz)?")
BC5CDR_INFO = {"name": "BioCreative V CDR (PubTator)", "license": _BC5CDR_LICENSE, "citation": _BC5CDR_CITATION}
#: PubTator input that is not BC5CDR's files: a builder's own annotations (another corpus, an NER tool's output)
PUBTATOR_BUILDER_INFO = {
    "name": "PubTator-format entity annotations supplied by the dataset's builder",
    "license": f"{_BUILDER_LICENSE} (not recorded by biohicl)",
    "citation": _BUILDER_LICENSE,
}
#: BC5CDR's files and a builder's own read together (the documents do not say which file each came from)
PUBTATOR_MIXED_INFO = {
    "name": f"{BC5CDR_INFO['name']} and {PUBTATOR_BUILDER_INFO['name']}",
    "license": f"BioCreative V CDR: {_BC5CDR_LICENSE}; the rest: {_BUILDER_LICENSE}",
    "citation": f"{_BC5CDR_CITATION} (BioCreative V CDR); the rest: {_BUILDER_LICENSE}",
}
#: no summary, or one that does not tell the PubTator files apart from the build's other inputs
PUBTATOR_UNKNOWN_INFO = {
    "name": "PubTator-format entity annotations (BioCreative V CDR if read from its `CDR_*.PubTator.txt` files, "
    "else supplied by the dataset's builder: this build does not record which)",
    "license": f"{_BC5CDR_LICENSE} for BioCreative V CDR; otherwise {_BUILDER_LICENSE}",
    "citation": f"{_BC5CDR_CITATION}, for BioCreative V CDR; otherwise {_BUILDER_LICENSE}",
}
PUBTATOR_INFO = {
    "bc5cdr": BC5CDR_INFO,
    "builder": PUBTATOR_BUILDER_INFO,
    "mixed": PUBTATOR_MIXED_INFO,
    "unknown": PUBTATOR_UNKNOWN_INFO,
}
#: each source's name, license and citation; ``pubtator``'s depends on the build's files (:func:`source_info`)
SOURCE_INFO: dict[str, dict[str, str]] = {
    "pubmedqa": {
        "name": "PubMedQA (PQA-L, ori_pqal.json)",
        "license": "MIT",
        "citation": "Jin et al., PubMedQA: A Dataset for Biomedical Research Question Answering, EMNLP 2019",
    },
    "pubtator": PUBTATOR_UNKNOWN_INFO,  # what a build's files say: :func:`source_info`
    "bioasq": {
        "name": "BioASQ Task 1a (allMeSH)",
        "license": "BioASQ terms of use (MEDLINE data under NLM terms)",
        "citation": "Tsatsaronis et al., An overview of the BIOASQ large-scale biomedical semantic indexing "
        "and question answering competition, BMC Bioinformatics 2015",
    },
    "medline": {
        "name": "PubMed/MEDLINE XML",
        "license": "NLM terms and conditions",
        "citation": "U.S. National Library of Medicine, MEDLINE/PubMed",
    },
    "jsonl": {
        "name": "the builder's own MeSH-labelled abstracts (JSON lines)",
        "license": "as its provider states (not recorded by biohicl)",
        "citation": "as its provider states",
    },
    "medline-text": {
        "name": "PubMed exports in MEDLINE/PubMed text format (.txt, .nbib)",
        "license": "NLM terms and conditions",
        "citation": "U.S. National Library of Medicine, MEDLINE/PubMed",
    },
}
LABEL_KIND_INFO = {
    "indexing": "MeSH indexing: the descriptors NLM indexers assign to the whole article, check tags included",
    "mentions": "entity mentions: MeSH ids of the chemicals and diseases named in the text (PubTator)",
}
#: a source whose labels no one vouches for: its phrase (``{kind}``: the label kind's noun) replaces the kind's text
BUILDER_LABELS = "labels as supplied by the dataset's builder, treated as {kind} labels"
SOURCE_LABEL_INFO = {"jsonl": BUILDER_LABELS}
KIND_NOUN = {"indexing": "indexing", "mentions": "entity-mention"}
#: the tags of every card; ``pubmed`` unless every source is a builder's own (:func:`own_sources`)
TAGS = ("biomedical", "mesh", "pubmed", "biohicl")


def _summary_field(summary: Any, name: str) -> Any:
    """A field of a build summary, a ``PairSummary`` or its ``summary.json`` dict (None if absent)."""
    if summary is None:
        return None
    return summary.get(name) if isinstance(summary, dict) else getattr(summary, name, None)


def is_bc5cdr_file(name: str) -> bool:
    """Whether a recorded input file is one of the BioCreative V CDR corpus's PubTator files (:data:`BC5CDR_FILE`)."""
    return BC5CDR_FILE.fullmatch(name.replace("\\", "/").rsplit("/", 1)[-1]) is not None


def pubtator_provenance(summary: Any) -> str:
    """What the build's PubTator inputs are: ``bc5cdr`` (every one a :data:`BC5CDR_FILE`), ``builder`` (none),
    ``mixed`` (some), or ``unknown`` (no summary, no file names). A summary from before ``read.source_files``
    is judged by all the files it read (``read.files``): all BC5CDR's or none are decisive, a mix is ``unknown``."""
    read = _summary_field(summary, "read")
    if not isinstance(read, dict):
        return "unknown"
    by_source = read.get("source_files")
    exact = isinstance(by_source, dict)
    files = by_source.get("pubtator") if exact else read.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        return "unknown"
    matches = [is_bc5cdr_file(f) for f in files]
    if all(matches):
        return "bc5cdr"
    if not any(matches):
        return "builder"
    return "mixed" if exact else "unknown"


def source_info(source: str, summary: Any = None) -> dict[str, str]:
    """A source's ``name``, ``license`` and ``citation`` as a card states them; ``pubtator``'s by the build's files
    (:func:`pubtator_provenance`), an unknown source's by its key."""
    if source == "pubtator":
        return PUBTATOR_INFO[pubtator_provenance(summary)]
    return SOURCE_INFO.get(source, {"name": source, "license": "see source", "citation": ""})


def own_sources(summary: Any = None) -> frozenset[str]:
    """Sources whose labels are the builder's own, not a public corpus's: :data:`SOURCE_LABEL_INFO`'s, and
    ``pubtator`` when none of its files is BC5CDR's."""
    return frozenset(SOURCE_LABEL_INFO) | ({"pubtator"} if pubtator_provenance(summary) == "builder" else set())


def label_kind_text(kind: str, sources: set[str], own_labels: frozenset[str] = frozenset(SOURCE_LABEL_INFO)) -> str:
    """What the card says a label kind is, given the sources of its documents: :data:`LABEL_KIND_INFO` for the
    public corpora; a builder's own labels (``own_labels``, :func:`own_sources`) are described as supplied."""
    own = sorted(sources & own_labels)
    phrases = [
        f"`{s}`: " + SOURCE_LABEL_INFO.get(s, BUILDER_LABELS).format(kind=KIND_NOUN.get(kind, kind)) for s in own
    ]
    if not own:
        return LABEL_KIND_INFO.get(kind, kind)
    if sources <= set(own):
        return "; ".join(phrase.split(": ", 1)[1] for phrase in phrases) if len(own) == 1 else "; ".join(phrases)
    public = ", ".join(f"`{s}`" for s in sorted(sources - set(own)))
    return f"{LABEL_KIND_INFO.get(kind, kind)} ({public}); " + "; ".join(phrases)


def template_path() -> Path:
    """The card template: packaged copy if installed as a wheel, else the repository's ``hub/`` folder."""
    path = template_file(f"templates/{TEMPLATE_NAME}")
    if path is None:
        raise FileNotFoundError(
            f"{TEMPLATE_NAME}: neither in {PACKAGE_ROOT / 'data'} nor in {PACKAGE_ROOT.parent / 'hub'}"
        )
    return path


def split_file(config: str, split: str) -> str:
    """The Hub layout's file of one config and split: ``pairs/train-00000-of-00001.parquet``."""
    return f"{config}/{split}-00000-of-00001.parquet"


def card_license(dataset, license: str | None = None) -> str:
    """The card's license id: ``license`` if given, else ``mit`` when every source is MIT, else ``other``."""
    if license:
        return license
    sources = set(column_list(dataset["documents"], "source"))
    return "mit" if {source_info(s)["license"] for s in sources} == {"MIT"} else "other"


def card_metadata(dataset, summary=None, *, split_files: bool = False, license: str | None = None) -> dict[str, Any]:
    """The card's YAML header: Hub ``configs`` (parquet data_files), license, tags and size.

    ``split_files=False`` (the local build): one ``train`` split per config, ``{config}/*.parquet``.
    ``split_files=True`` (the Hub layout): one file per config and split (:func:`split_file`), the split names being
    the values of the ``split`` column, and a license id the Hub accepts (``other`` comes with ``license_name``
    :data:`HUB_LICENSE_NAME` and ``license_link`` :data:`LICENSE_FILE`; the per-source terms are in the card body).
    No ``dataset_info``: without ``num_bytes`` ``datasets`` calls it malformed and ignores it.
    """
    sources = sorted(set(column_list(dataset["documents"], "source")))
    own_only = bool(sources) and set(sources) <= own_sources(summary)  # no PubMed data vouched for: no pubmed tag
    if split_files:
        licensing = {"license": card_license(dataset, license)}
        if licensing["license"] == "other":
            licensing.update(license_name=HUB_LICENSE_NAME, license_link=LICENSE_FILE)
    else:
        licensing = {
            "license": card_license(dataset, license),
            "license_name": "; ".join(f"{s}: {source_info(s, summary)['license']}" for s in sources),
        }
    configs = []
    for config in ("documents", "pairs"):
        if split_files:
            splits = sorted(set(column_list(dataset[config], "split")))
            data_files = [{"split": split, "path": split_file(config, split)} for split in splits]
        else:
            data_files = [{"split": "train", "path": f"{config}/*.parquet"}]
        if data_files:
            configs.append(
                {
                    "config_name": config,
                    "data_files": data_files,
                    **({"default": True} if config == "documents" else {}),
                }
            )
    return {
        **licensing,
        "language": ["en"],
        "pretty_name": "BioHiCL MeSH-pair dataset",
        "task_categories": ["sentence-similarity", "text-retrieval"],
        "tags": [t for t in TAGS if not (t == "pubmed" and own_only)],
        "size_categories": [_size_category(max(len(dataset[config]) for config in dataset))],  # the largest config
        "configs": configs,
    }


def render_license_file(dataset: Any, summary: Any = None) -> str:
    """``LICENSE.md`` of the Hub layout (its ``license_link``): the terms of each source (``summary``: the build's,
    which tells what its PubTator files are) and of MeSH."""
    lines = ["# Licenses of the BioHiCL MeSH-pair dataset", "", "The dataset mixes sources under different terms:", ""]
    for source in sorted(set(column_list(dataset["documents"], "source"))):
        info = source_info(source, summary)
        lines.append(f"- **{info['name']}** (`{source}`): {info['license']}")
    lines += [
        "- **MeSH** (Medical Subject Headings): U.S. National Library of Medicine terms and conditions; courtesy of "
        "the U.S. National Library of Medicine, not endorsed by NLM.",
        "",
        "Check each source's terms before redistributing this dataset.",
        "",
    ]
    return "\n".join(lines)


#: the Hub's ``size_categories`` values, each with the count it is below (the last one: every larger count)
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
    (100_000_000_000, "10B<n<100B"),
    (1_000_000_000_000, "100B<n<1T"),
)


def _size_category(n: int) -> str:
    """The Hub's ``size_categories`` value for ``n`` rows (``1_600_000`` → ``1M<n<10M``; a bound is the next
    category's: ``1_000`` → ``1K<n<10K``)."""
    return next((name for bound, name in SIZE_CATEGORIES if n < bound), "n>1T")


def render_dataset_card(
    dataset,
    summary=None,
    *,
    split_files: bool = False,
    license: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
) -> str:
    """Render ``README.md`` (YAML metadata + markdown) for a MeSH-pair ``DatasetDict``; ``split_files``, ``license``
    as in :func:`card_metadata`, ``repo_id`` for the usage snippet, which loads the branch ``revision`` of it (None:
    the default branch, which a new repo's branch publish leaves holding ``.gitattributes`` only). Any ``revision``
    given is written into the snippet as it is (``"main"`` too): callers pass it through
    :func:`biohicl.hub.card_data_source.branch_or_none` (None for the default branch), which ``data`` cannot import."""
    import json

    import jinja2

    sources = sorted(set(column_list(dataset["documents"], "source")))
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(template_path().read_text(encoding="utf-8"))
    metadata = card_metadata(dataset, summary, split_files=split_files, license=license)
    header = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip()
    documents = dataset["documents"]
    kinds = sorted(set(column_list(documents, "label_kind"))) if "label_kind" in documents.column_names else []
    kind_sources: dict[str, set[str]] = {}
    own = own_sources(summary)
    if kinds:
        for kind, source in zip(column_list(documents, "label_kind"), column_list(documents, "source"), strict=True):
            kind_sources.setdefault(kind, set()).add(source)
    return template.render(
        metadata=header,
        summary=summary,
        splits=sorted(set(column_list(documents, "split"))) if split_files else [],
        repo_id=repo_id or "<repo id>",
        revision_arg=f", revision={json.dumps(revision, ensure_ascii=False)}" if repo_id and revision else "",
        license_link=metadata.get("license_link"),
        n_documents=len(documents),
        n_pairs=len(dataset["pairs"]),
        label_kinds=[{"key": k, "text": label_kind_text(k, kind_sources.get(k, set()), own)} for k in kinds],
        sources=[{"key": s, **source_info(s, summary)} for s in sources],
    )

"""The MeSH-pair dataset card: ``README.md`` with YAML metadata (license, configs/data_files, counts, SimL, MeSH
version), rendered from ``hub/dataset_card_template.md`` with jinja2."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_NAME = "dataset_card_template.md"

SOURCE_INFO: dict[str, dict[str, str]] = {
    "pubmedqa": {
        "name": "PubMedQA (PQA-L, ori_pqal.json)",
        "license": "MIT",
        "citation": "Jin et al., PubMedQA: A Dataset for Biomedical Research Question Answering, EMNLP 2019",
    },
    "pubtator": {
        "name": "BioCreative V CDR (PubTator)",
        "license": "public domain (U.S. Government work, NCBI)",
        "citation": "Li et al., BioCreative V CDR task corpus, Database 2016",
    },
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


def template_path() -> Path:
    """The card template: packaged copy if installed as a wheel, else the repository's ``hub/`` folder."""
    packaged = resources.files("biohicl.data").joinpath(TEMPLATE_NAME)
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "hub" / TEMPLATE_NAME


def card_metadata(dataset, summary=None) -> dict[str, Any]:
    """The card's YAML header: Hub ``configs`` (parquet data_files), license, tags and counts."""
    sources = sorted(set(dataset["documents"]["source"]))
    licenses = {SOURCE_INFO.get(s, {}).get("license", "other") for s in sources}
    return {
        "license": "mit" if licenses == {"MIT"} else "other",
        "license_name": "; ".join(f"{s}: {SOURCE_INFO.get(s, {}).get('license', 'see source')}" for s in sources),
        "language": ["en"],
        "pretty_name": "BioHiCL MeSH-pair dataset",
        "task_categories": ["sentence-similarity", "text-retrieval"],
        "tags": ["biomedical", "mesh", "pubmed", "biohicl"],
        "size_categories": [_size_category(len(dataset["documents"]))],
        "configs": [
            {
                "config_name": config,
                "data_files": [{"split": "train", "path": f"{config}/*.parquet"}],
                **({"default": True} if config == "documents" else {}),
            }
            for config in ("documents", "pairs")
        ],
        "dataset_info": [
            {"config_name": config, "splits": [{"name": "train", "num_examples": len(dataset[config])}]}
            for config in ("documents", "pairs")
        ],
    }


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "n>1M"


def render_dataset_card(dataset, summary=None) -> str:
    """Render ``README.md`` (YAML metadata + markdown) for a MeSH-pair ``DatasetDict``."""
    import jinja2

    sources = sorted(set(dataset["documents"]["source"]))
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(template_path().read_text(encoding="utf-8"))
    metadata = yaml.safe_dump(card_metadata(dataset, summary), sort_keys=False, allow_unicode=True).strip()
    documents = dataset["documents"]
    kinds = sorted(set(documents["label_kind"])) if "label_kind" in documents.column_names else []
    return template.render(
        metadata=metadata,
        summary=summary,
        n_documents=len(documents),
        n_pairs=len(dataset["pairs"]),
        label_kinds=[{"key": k, "text": LABEL_KIND_INFO.get(k, k)} for k in kinds],
        sources=[
            {"key": s, **SOURCE_INFO.get(s, {"name": s, "license": "see source", "citation": ""})} for s in sources
        ],
    )


def read_card_metadata(path: str | Path) -> dict[str, Any]:
    """Parse the YAML header of a dataset card."""
    text = Path(path).read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    return yaml.safe_load(text[4 : text.index("\n---", 4)]) or {}

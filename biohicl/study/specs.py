"""The parts of a study config: where the dataset comes from (:class:`DatasetSpec`) and each base model
(:class:`ModelSpec`); :class:`~biohicl.study.config.ReproduceConfig` holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from biohicl.errors import ConfigError
from biohicl.field_types import check_count, check_field_types

#: the fields of one ``dataset.inputs`` entry
INPUT_FIELDS = ("files", "source")


@dataclass
class DatasetSpec:
    """Where the MeSH-pair dataset comes from: an existing folder, or the corpora to build it from."""

    path: str | None = field(
        default=None,
        metadata={"help": "A built `biohicl build-dataset` folder to reuse (default: <output_dir>/dataset)."},
    )
    inputs: list[dict[str, Any]] | None = field(
        default=None,
        metadata={
            "help": "Corpora: [{source: pubmedqa|pubtator|medline|bioasq, files: [...]}]; relative files are "
            "looked up in BIOHICL_DATA_DIR. Default: the MeSH-indexed corpora (build_default_dataset)."
        },
    )
    top_k: int = field(default=10, metadata={"help": "Partners mined per document."})
    seed: int = field(default=0, metadata={"help": "Seed of the pair mining."})
    exclude_test: bool = field(default=True, metadata={"help": "Drop PubMedQA's 500 test abstracts entirely."})
    limit: int | None = field(default=None, metadata={"help": "Use at most this many documents (quick runs)."})
    mix_label_kinds: bool = field(
        default=False,
        metadata={
            "help": "Allow MeSH indexing and entity-mention (PubTator) labels in one dataset (pairs and batches "
            "never cross kinds). Off: inputs of both kinds are refused."
        },
    )
    decontaminate: bool = field(
        default=True, metadata={"help": "Leave out documents of the evaluation sets (PubMedQA test, SciFact, BIOSSES)."}
    )

    def __post_init__(self) -> None:
        check_field_types(self, "dataset")
        check_count("dataset.limit", self.limit, "the most documents to use", optional=True)  # as --limit
        for i, item in enumerate(self.inputs or ()):
            check_input(item, f"dataset.inputs[{i}]")


def check_input(item: Any, field: str) -> None:
    """A :class:`ConfigError` naming ``field`` unless ``item`` is ``{source: NAME, files: [FILE, ...]}``: no
    other key (a misspelt ``limt: 5`` would be ignored), a source the build reads
    (:func:`~biohicl.data.sources.check_source`), a list of file names."""
    from biohicl.data.sources import check_source

    if not isinstance(item, dict):
        raise ConfigError(f"{field}: expected {{source: ..., files: [...]}}, got {type(item).__name__}")
    if unknown := sorted(set(map(str, item)) - set(INPUT_FIELDS)):
        raise ConfigError(f"{field}: unknown field(s) {', '.join(unknown)}; known: {', '.join(INPUT_FIELDS)}")
    if missing := [name for name in INPUT_FIELDS if name not in item]:
        raise ConfigError(f"{field}: missing field(s) {', '.join(missing)}")
    check_source(item["source"], f"{field}.source")
    files = item["files"]
    if not isinstance(files, list) or not all(isinstance(name, str) and name for name in files):
        raise ConfigError(f"{field}.files: expected a list of file names, got {files!r}")


@dataclass
class ModelSpec:
    """One base model of the study and how it is trained and evaluated."""

    name: str = field(metadata={"help": "Short label used in folders and tables, e.g. minilm."})
    model: str = field(metadata={"help": "Hub id (read offline) or a local model folder."})
    hub_id: str | None = field(default=None, metadata={"help": "Hub id recorded when `model` is a local folder."})
    pooling: str | None = field(default=None, metadata={"help": "`cls` or `mean` (default: the model's own)."})
    max_length: int = field(default=256, metadata={"help": "Tokens per training document."})
    eval_max_length: int | None = field(
        default=None, metadata={"help": "Tokens per text at evaluation, base and tuned alike (default max_length)."}
    )
    query_prompt: str = field(default="", metadata={"help": "Query prefix (e.g. BGE's instruction)."})
    document_prompt: str = field(default="", metadata={"help": "Document prefix."})
    training: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "BioHiCLTrainingArguments overrides for this model."}
    )
    tasks: list[str] | None = field(default=None, metadata={"help": "Tasks for this model (default: the study's)."})
    variants: list[str] | None = field(
        default=None, metadata={"help": "Variants run for this model (default: all of the study's)."}
    )
    seeds: list[int] | None = field(default=None, metadata={"help": "Seeds for this model (default: the study's)."})
    card_name: str | None = field(default=None, metadata={"help": "Model-card display name prefix."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub repo id the best `full` run would go to."})

    def __post_init__(self) -> None:
        check_field_types(self, f"models[{self.name}]" if isinstance(self.name, str) else "models[]")

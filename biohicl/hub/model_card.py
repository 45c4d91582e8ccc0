"""Model cards for BioHiCL checkpoints: a dataclass filled during training/evaluation, rendered with Jinja.

>>> data = BioHiCLModelCardData(model_name="BioHiCL-MiniLM", base_model="sentence-transformers/all-MiniLM-L6-v2")
>>> rows = data.add_eval_results({"biosses": {"spearman": 0.84}}, base={"biosses": {"spearman": 0.81}})
>>> text = render_model_card(data)             # README.md: YAML metadata + Markdown, no network

The YAML header is produced by ``huggingface_hub.ModelCardData`` so the Hub parses it (``model-index`` holds the
held-out evaluation results, :meth:`BioHiCLModelCardData.hub_eval_results`: dev and train splits stay in the card's
table, and round-trips through ``huggingface_hub.repocard_data.model_index_to_eval_results``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biohicl import __version__
from biohicl.atomic import atomic_write_text, finite_or_null
from biohicl.errors import ConfigError
from biohicl.evaluation.results import signed
from biohicl.hub.card_adapter import peft_name, sentence_transformers_loads
from biohicl.hub.card_data_source import (
    UNSTATED_LICENSE,
    branch_or_none,
    count_rows,
    dataset_hub_link,
    dataset_summary,
    training_data_paragraph,
)
from biohicl.hub.card_hyperparameters import RUN_SCALE, loss_citations, trained_hyperparameters
from biohicl.hub.card_reproduction import reproduction
from biohicl.hub.card_selection import read_card_selection, selection_of
from biohicl.hub.eval_rows import EvalRow, card_rows
from biohicl.hub.run_records import (
    ARGS_FIELDS,
    SOUP_FIELDS,
    STATE_FIELDS,
    check_selected,
    checked,
    checked_rows,
    summary_fields,
)
from biohicl.hub.run_sources import path_names
from biohicl.jsonio import nan_for_null, read_json
from biohicl.models.config import ENCODING_SETTINGS
from biohicl.models.soup import SOUP_RECORD_NAME
from biohicl.provenance import PACKAGE_ROOT, REPOSITORY_URL, template_file
from biohicl.training.selection import EVALUATIONS_NAME

if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCardData

TEMPLATE_NAME = "model_card_template.md"
CARD_DATA_NAME = "card_data.json"
ADAPTER_CONFIG = "adapter_config.json"
TRAINER_STATE = "trainer_state.json"

#: biohicl is not on PyPI, so the card installs it from its repository (:data:`~biohicl.provenance.REPOSITORY_URL`),
#: as the notebooks do
INSTALL_COMMAND = f'pip install "biohicl @ git+{REPOSITORY_URL}"'

CITATION = """@inproceedings{biohicl2026,
  title     = {BioHiCL: Hierarchy-Aware Contrastive Learning with MeSH Labels for Biomedical Retrieval},
  booktitle = {Proceedings of the Annual Meeting of the Association for Computational Linguistics (ACL)},
  year      = {2026},
  note      = {Title and authors as in the ACL 2026 proceedings; this entry was written offline, check it there}
}"""

DEFAULT_TAGS = ["sentence-transformers", "sentence-similarity", "feature-extraction", "biomedical", "mesh", "biohicl"]


@dataclass
class BioHiCLModelCardData:
    """Everything a BioHiCL model card says; filled by training (hyperparameters, counts) and evaluation."""

    model_name: str = field(metadata={"help": "Display name, e.g. BioHiCL-MiniLM."})
    base_model: str = field(metadata={"help": "Hub id of the backbone (never a local path)."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub repo id the card is published under."})
    revision: str | None = field(
        default=None,
        metadata={"help": "Branch of repo_id the card is published to, which its snippets load (None, main: default)."},
    )
    kind: str = field(default="adapter", metadata={"help": "'adapter' (library peft) or 'merged'."})
    peft_type: str | None = field(
        default=None,
        metadata={"help": "The adapter's peft method (adapter_config.json's peft_type: LORA, IA3 ...); None: LoRA."},
    )
    base_revision: str | None = field(default=None, metadata={"help": "Commit sha of the backbone."})
    pooling: str = field(default="mean", metadata={"help": "'cls' or 'mean'."})
    normalize: bool = field(default=True, metadata={"help": "Embeddings are L2-normalised."})
    max_length: int = field(default=512, metadata={"help": "Maximum tokens per text."})
    query_prompt: str = field(default="", metadata={"help": "Prefix for queries."})
    document_prompt: str = field(default="", metadata={"help": "Prefix for documents."})
    license: str = field(
        default=UNSTATED_LICENSE,
        metadata={"help": "License id of the weights (default other: their terms follow the base's and the data's)."},
    )
    language: list[str] = field(default_factory=lambda: ["en"], metadata={"help": "Languages."})
    tags: list[str] = field(default_factory=lambda: list(DEFAULT_TAGS), metadata={"help": "Hub tags."})
    datasets: list[str] = field(default_factory=list, metadata={"help": "Hub ids of the training datasets."})
    hyperparameters: dict[str, Any] = field(default_factory=dict, metadata={"help": "λ, β, lr, LoRA r ..."})
    training_data: str = field(default="", metadata={"help": "One paragraph on the training data."})
    training_counts: dict[str, int] = field(default_factory=dict, metadata={"help": "documents, pairs ..."})
    trainable_parameters: int | None = field(default=None, metadata={"help": "Trainable (LoRA) parameters."})
    total_parameters: int | None = field(default=None, metadata={"help": "All parameters."})
    training_time: str | None = field(default=None, metadata={"help": "Wall time and hardware, free text."})
    curves: list[str] = field(
        default_factory=list, metadata={"help": "Training-curve images in the repo (training_curves.png ...), shown."}
    )
    selection: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Dev model selection: evaluated steps, kept step, its score and step 0's, score metrics, guard "
            "metrics, whether the base was kept (from training_summary.json), and each dev metric the selection "
            "used at step 0 and the kept step (from dev_evaluations.json)."
        },
    )
    eval_results: list[EvalRow] = field(default_factory=list, metadata={"help": "Evaluation figures."})
    eval_source: str | None = field(default=None, metadata={"help": "Where the evaluation figures come from."})
    limitations: list[str] = field(default_factory=list, metadata={"help": "Extra, model-specific limitations."})
    citation: str = field(default=CITATION, metadata={"help": "BibTeX."})
    loss_citations: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "Each loss class the model trained with and its source (the class's citation)."},
    )
    biohicl_version: str = field(default=__version__, metadata={"help": "biohicl version that wrote the card."})
    reproduction: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Dataset sha256, code digests, how to retrain (card_reproduction)."}
    )

    def __post_init__(self) -> None:
        if self.kind not in ("adapter", "merged", "full"):
            raise ConfigError(f"model card: field 'kind' is {self.kind!r}; expected adapter, merged or full")
        if self.base_model.startswith(("/", ".", "~")) or self.base_model.count("/") != 1:
            raise ConfigError(f"model card: field 'base_model' {self.base_model!r} must be a Hub id (owner/name)")
        self.eval_results = [r if isinstance(r, EvalRow) else EvalRow(**r) for r in self.eval_results]

    # ------------------------------------------------------------------ filling
    @classmethod
    def from_biohicl_config(cls, config: dict[str, Any] | Any, model_name: str, **kwargs: Any) -> BioHiCLModelCardData:
        """Fill encoder settings from a ``BioHiCLConfig`` (object or dict), the rest from ``kwargs``."""
        values = config if isinstance(config, dict) else config.to_dict()
        keys = ("base_model", "base_revision", *ENCODING_SETTINGS)
        picked = {k: values[k] for k in keys if k in values}
        picked["kind"] = values.get("kind") or "adapter"  # full: every weight trained, no LoRA merged
        return cls(model_name=model_name, **{**picked, **kwargs})

    @classmethod
    def from_run_dir(
        cls, run_dir: str | Path, model_name: str, model_dir: str | Path | None = None
    ) -> BioHiCLModelCardData:
        """Card data for a training run: ``card_data.json`` if the run saved one, else assembled from
        ``biohicl_config.json``, ``biohicl_training_args.json`` (hyperparameters) and ``training_summary.json``; the
        loss and LoRA rows are what trained (:func:`trained_hyperparameters`), not the arguments' defaults, and each
        loss class that trained is cited (:func:`~.card_hyperparameters.loss_citations`); the
        training data from the dataset the arguments name (:func:`~.card_data_source.training_data_paragraph`), with
        the labels its build dropped when its ``summary.json`` is found, and the Hub dataset it is published as
        (:func:`~.card_data_source.dataset_hub_link`) in ``datasets``. A record of the wrong shape (a list for an
        object, a word for a number: :mod:`~biohicl.hub.run_records`) is a one-line
        :class:`~biohicl.errors.PublishError` naming the file and field."""
        run_dir = Path(run_dir)
        if (run_dir / CARD_DATA_NAME).is_file():
            return cls.load(run_dir / CARD_DATA_NAME)
        config_path = Path(model_dir or run_dir) / "biohicl_config.json"
        config = checked(read_json(config_path), config_path)
        args_path = run_dir / "biohicl_training_args.json"
        args = checked(read_json(args_path, default={}), args_path, ARGS_FIELDS)
        summary_path = run_dir / "training_summary.json"
        summary = read_json(summary_path, default={})
        summary = checked(summary, summary_path, summary_fields(summary))
        check_selected(summary, summary_path)
        state = checked(read_json(run_dir / TRAINER_STATE, default={}), run_dir / TRAINER_STATE, STATE_FIELDS)
        evaluations = checked_rows(read_json(run_dir / EVALUATIONS_NAME, default=[]), run_dir / EVALUATIONS_NAME)
        adapter = read_json(Path(model_dir or run_dir) / ADAPTER_CONFIG, default=None)
        data = cls.from_biohicl_config(config, model_name)
        scale = {k: summary[k] for k in RUN_SCALE if k in summary}
        loss = summary.get("loss")
        data.hyperparameters = trained_hyperparameters({**path_names(args), **scale}, loss, adapter, state=state)
        data.loss_citations = loss_citations(loss)
        data.reproduction = reproduction(run_dir, args, summary, data.base_model, loss, adapter, data.base_revision)
        if isinstance(adapter, dict) and adapter.get("peft_type"):
            data.peft_type = str(adapter["peft_type"])
        counts = summary.get("data") or {}
        dataset = args.get("dataset_path")
        dataset = dataset if isinstance(dataset, str) and dataset else None
        data.training_counts = count_rows(counts, dataset_summary(dataset))
        if summary.get("global_step"):
            data.training_counts["optimizer steps"] = int(summary["global_step"])
        data.trainable_parameters = summary.get("trainable_parameters")
        data.total_parameters = summary.get("total_parameters")
        if summary.get("runtime_s") is not None:
            resumed = summary.get("resumed_at_step")
            data.training_time = f"{summary['runtime_s']:.0f} s wall time" + (
                f" (since resuming at step {resumed})" if resumed else ""
            )
        data.selection = selection_of(summary, args, evaluations)
        hub = dataset_hub_link(dataset) if dataset else None  # a release manifest's, else its recorded push
        data.datasets = [hub.repo_id] if hub else []
        data.training_data = training_data_paragraph(dataset, counts, hub)
        soup = checked(read_json(run_dir / SOUP_RECORD_NAME, default={}), run_dir / SOUP_RECORD_NAME, SOUP_FIELDS)
        if soup:
            data.training_data = soup_paragraph(soup)
        return data

    def add_eval_results(
        self,
        results: dict[str, Any],
        base: dict[str, Any] | None = None,
        split: str = "test",
        all_metrics: bool = False,
    ) -> list[EvalRow]:
        """Add rows from evaluation output: a ``biohicl evaluate`` record, or ``{task: {metric: value}}``.

        ``all_metrics``: every metric of each task, not only those the record's ``summary`` reports. A base value
        (and Δ) is shown only where both records agree on what changes the numbers (:func:`~.eval_rows.card_rows`:
        split, limit_queries, max length, prompts; ``split`` is that of a task whose record names none); otherwise it
        is left out, with one warning naming the settings. A task scored on its first N queries (``limit_queries``)
        is labelled so and kept out of ``model-index``."""
        rows = card_rows(results, base, split, all_metrics)
        self.eval_results.extend(rows)
        return rows

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = CARD_DATA_NAME) -> BioHiCLModelCardData:
        """Card data from ``to_dict`` output; anything but a JSON object, or unknown fields, is a :class:`ConfigError`
        naming ``source``."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**values)
        except TypeError as err:
            raise ConfigError(f"{source}: {err}") from None

    def save(self, path: str | Path) -> None:
        """Write ``card_data.json`` (what :meth:`from_run_dir` reads first), strict JSON as every biohicl record: a
        score that is not a number (a collapsed run's) is ``null``, which :meth:`load` reads back as NaN; a base
        value's is its text (``"nan"``, ``"inf"``), since a ``null`` base value means "not measured"."""
        values = self.to_dict()
        for row in values["eval_results"]:
            base = row["base_value"]
            row["base_value"] = str(base) if isinstance(base, float) and not math.isfinite(base) else base
        text = json.dumps(finite_or_null(values), indent=2, ensure_ascii=False, allow_nan=False)
        atomic_write_text(path, text + "\n")

    @classmethod
    def load(cls, path: str | Path) -> BioHiCLModelCardData:
        """Read a ``card_data.json`` written by :meth:`save`: a ``null`` score is NaN (an evaluation row's value,
        the selection's measured scores) and a base value written as text its number; a ``null`` base value stays
        None, "not measured"."""
        values = read_json(path)
        if isinstance(values, dict) and isinstance(rows := values.get("eval_results"), list):
            for row in rows:
                if isinstance(row, dict) and "value" in row:
                    row["value"] = nan_for_null(row["value"])
                if isinstance(row, dict) and row.get("base_value") in ("nan", "inf", "-inf"):
                    row["base_value"] = float(row["base_value"])
        if isinstance(values, dict) and "selection" in values:
            values["selection"] = read_card_selection(values["selection"])
        return cls.from_dict(values, source=str(path))

    @property
    def peft_name(self) -> str:
        """The adapter's method as the card words it: ``LoRA`` (when none is recorded), ``DoRA``, ``IA3`` ..."""
        return peft_name(self.peft_type, self.hyperparameters)

    # ------------------------------------------------------------------ Hub metadata
    def hub_eval_results(self) -> list[EvalResult]:
        """The BioHiCL rows as ``huggingface_hub.EvalResult`` (what ``model-index`` holds).

        ``dataset.config`` and ``dataset.split`` are the Hub dataset's own where it has the split (MTEB's BEIR sets
        and BIOSSES: ``default``, ``test``); a task of a Hub dataset without that split is left out (PubMedQA: its 500
        test questions are half of ``pqa_labeled``'s one split, :attr:`EvalRow.hub_config_split`); a task biohicl
        does not know (a BEIR folder) is its own dataset, config and split. Only held-out results are listed
        (:attr:`EvalRow.held_out`): dev-split (model selection), train-split (the study's default ``scifact:train``,
        this project's SciFact dev set), training-data agreement and first-N-queries rows stay in the card's table,
        not in ``model-index``; so does a NaN or infinite value (a collapsed model's), which the Hub's metadata
        refuses: the table says it is :data:`NOT_A_NUMBER`.
        """
        from huggingface_hub import EvalResult

        return [
            EvalResult(
                task_type=row.task_type,
                dataset_type=row.dataset_type,
                dataset_name=row.task_name,
                dataset_config=where[0],
                dataset_split=where[1],
                metric_type=row.metric_type,
                metric_name=row.metric_name,
                metric_value=round(float(row.value), 6),
            )
            for row in self.eval_results
            # the Hub refuses NaN: the card's table says "not a number"
            if row.held_out and _finite(row.value) and (where := row.hub_config_split) is not None
        ]

    def to_hub_card_data(self) -> ModelCardData:
        """``huggingface_hub.ModelCardData`` for the YAML header (``library_name: peft`` for adapters, tagged with
        the peft method, ``lora``, ``ia3`` ...; no ``sentence-transformers`` tag for an adapter it does not load)."""
        from huggingface_hub import ModelCardData

        tags = [*self.tags, *([(self.peft_type or "LORA").lower(), "peft"] if self.kind == "adapter" else [])]
        if not sentence_transformers_loads(self.kind, self.peft_type, self.hyperparameters):
            tags = [tag for tag in tags if tag != "sentence-transformers"]
        return ModelCardData(
            model_name=self.model_name,
            base_model=self.base_model,
            library_name="peft" if self.kind == "adapter" else "sentence-transformers",
            pipeline_tag="sentence-similarity",
            license=self.license,
            language=self.language,
            tags=list(dict.fromkeys(tags)),
            datasets=self.datasets or None,
            eval_results=self.hub_eval_results() or None,
        )


def soup_paragraph(soup: dict[str, Any]) -> str:
    """The card's words for an adapter that ``biohicl soup`` averaged (from its ``soup.json``)."""
    adapters = soup.get("adapters") or []
    names = ", ".join(f"`{'/'.join(Path(a).parts[-2:])}`" for a in adapters)
    weights = ", ".join(f"{w:.3g}" for w in soup.get("weights") or [])
    return (
        f"This adapter is the weighted average of {len(adapters)} BioHiCL LoRA adapters of one recipe "
        f"({names}; weights {weights}), made with `biohicl soup`: one rank-{soup.get('rank')} adapter whose weight "
        "change is exactly the weighted mean of theirs. Each was trained as its own run; see their cards."
    )


def template_path() -> Path:
    """The card template: inside the installed package (wheel), else the source checkout's top level."""
    path = template_file(f"templates/{TEMPLATE_NAME}")
    if path is None:
        raise FileNotFoundError(f"{TEMPLATE_NAME}: neither in {PACKAGE_ROOT} nor in {PACKAGE_ROOT.parent}")
    return path


#: what the card says of a score that is NaN or infinite (a collapsed model's evaluation): no number
NOT_A_NUMBER = "not a number"


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (the card's ``finite`` test): a score it can state."""
    try:
        return value is not None and math.isfinite(value)
    except TypeError:  # not a number at all
        return False


def _fmt(value: float | None) -> str:
    """A score to 4 places; "–" when not measured, :data:`NOT_A_NUMBER` when NaN or infinite."""
    return "–" if value is None else f"{value:.4f}" if _finite(value) else NOT_A_NUMBER


def _signed(value: float | None) -> str:
    """A difference with its sign to 4 places; "–" when either side was not measured or not a number."""
    return signed(value, 4) if _finite(value) else "–"


def revision_argument(data: BioHiCLModelCardData) -> str:
    """``, revision="v0.1"`` for the usage snippets of a card published to a branch other than the default (``main``)
    of its repo, else empty: a new repo's ``main`` holds only ``.gitattributes``, so a snippet loading it fails."""
    branch = branch_or_none(data.revision) if data.repo_id else None
    return f", revision={json.dumps(branch, ensure_ascii=False)}" if branch else ""


def render_model_card(data: BioHiCLModelCardData, template: str | Path | None = None) -> str:
    """The README.md text: YAML metadata + the Markdown body. Never touches the network."""
    import jinja2

    source = Path(template) if template is not None else template_path()
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["fmt"] = _fmt
    env.filters["signed"] = _signed
    env.tests["finite"] = _finite
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    card_yaml = data.to_hub_card_data().to_yaml()
    text = env.from_string(source.read_text(encoding="utf-8")).render(
        card_data=card_yaml,
        data=data,
        load_id=data.repo_id or "path/to/this/model/folder",  # a run without a repo loads from its folder
        revision_arg=revision_argument(data),
        install=INSTALL_COMMAND,
        params_share=(
            100.0 * data.trainable_parameters / data.total_parameters
            if data.trainable_parameters and data.total_parameters
            else None
        ),
    )
    return text


def save_model_card(data: BioHiCLModelCardData, directory: str | Path, template: str | Path | None = None) -> Path:
    """Write ``README.md`` into ``directory`` (atomically: a kill leaves the previous card or none)."""
    from biohicl.atomic import atomic_write_text

    return atomic_write_text(Path(directory) / "README.md", render_model_card(data, template))

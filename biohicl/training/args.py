"""``BioHiCLTrainingArguments``: ``transformers.TrainingArguments`` plus the BioHiCL method's fields.

Every field has help text, so ``HfArgumentParser`` turns the class into the ``biohicl train`` command line, and a
YAML or JSON file with the same keys works too. Each of the paper's ablations is a field, not a code fork:

================================  ===============================
ablation                          switch
================================  ===============================
no L_con                          ``use_contrastive=False``
no L_mse                          ``use_mse=False``
no ancestors in SimL              ``use_ancestors=False``
no depth weight in SimL           ``use_depth_weight=False``
full fine-tune instead of LoRA    ``full_finetune=True``
random batches (no pair mining)   ``batch_sampler="random"``
================================  ===============================
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from transformers import TrainingArguments

from biohicl.errors import ConfigError
from biohicl.losses.regression import PAIR_FILTERS
from biohicl.models.config import DEFAULT_BASE_MODEL
from biohicl.settings import launched_without_accelerator
from biohicl.training.arg_checks import (
    check_data,
    check_model,
    check_run_values,
    check_selection,
    check_selection_target,
)
from biohicl.training.selection import GUARD_MODES
from biohicl.training.selection_splits import check_train_splits

logger = logging.getLogger(__name__)


@dataclass
class BioHiCLTrainingArguments(TrainingArguments):
    """Training arguments for BioHiCL (see :class:`transformers.TrainingArguments` for the inherited ones)."""

    # ---------------------------------------------------------------- model
    base_model: str = field(
        default=DEFAULT_BASE_MODEL,
        metadata={"help": "Backbone to tune: a Hub id (read offline from the cache or a known package) or a folder."},
    )
    base_revision: str | None = field(default=None, metadata={"help": "Revision (commit sha) of the base model."})
    base_model_hub_id: str | None = field(
        default=None,
        metadata={"help": "Hub id recorded in the saved adapter when base_model is a local folder."},
    )
    pooling: str | None = field(
        default=None, metadata={"help": "`cls` or `mean`; default: the base model's own (bge: cls, MiniLM: mean)."}
    )
    max_length: int = field(default=256, metadata={"help": "Maximum tokens per document (title + abstract)."})
    document_prompt: str | None = field(
        default=None,
        metadata={
            "help": "Prefix added to every document text; default: the base's sentence-transformers document prompt, "
            'else none ("" for none).'
        },
    )
    query_prompt: str | None = field(
        default=None,
        metadata={
            "help": "Prefix for queries, stored in biohicl_config.json; default: the base's sentence-transformers "
            'query prompt, else none ("" for none).'
        },
    )

    # ---------------------------------------------------------------- LoRA / full fine-tune
    full_finetune: bool = field(
        default=False, metadata={"help": "Ablation: tune every weight instead of LoRA adapters."}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (r=8 on query/value ≈ 0.3%% of MiniLM's weights)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.1, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Module names LoRA wraps (default: peft's per-architecture choice, query/value for BERT)."},
    )

    # ---------------------------------------------------------------- loss
    lambda_con: float = field(default=0.1, metadata={"help": "λ in L = L_mse + λ·L_con."})
    beta: float = field(default=0.3, metadata={"help": "β: pairs with SimL > β are positives."})
    temperature: float = field(default=0.05, metadata={"help": "τ of the contrastive loss (cosine logits / τ)."})
    pair_filter: str = field(
        default="zero_or_positive",
        metadata={"help": f"In-batch pairs the MSE term regresses: one of {', '.join(PAIR_FILTERS)}."},
    )
    weight_positives: bool = field(
        default=True, metadata={"help": "Weight each contrastive positive by its SimL (False: uniform)."}
    )
    contrastive_form: str = field(
        default="infonce",
        metadata={
            "help": "`infonce`: SimL-weighted InfoNCE with temperature, each positive against the anchor's negatives; "
            "`paper`: the paper's -log[SimL(i,i+) exp(SimE(i,i+)) / Σ_neg exp(SimE(i,j-))], no temperature, "
            "negatives only in the denominator."
        },
    )
    contrastive_mean: str = field(
        default="positives",
        metadata={
            "help": "The positive pairs the infonce form's SimL-weighted mean is over: `positives` (every one; a pair "
            "whose anchor has no negative adds ℓ = 0 but keeps its SimL in the denominator, so the term shrinks "
            "with the batch's share of such pairs) or `contrastable` (those whose anchor has a negative, as the "
            "paper form averages). Not with `contrastive_form: paper`."
        },
    )
    negative: str = field(
        default="zero",
        metadata={
            "help": "Which in-batch pairs are contrastive negatives: `zero` (SimL = 0, the paper's), `below:<t>` "
            "(SimL < t, t ≤ beta) or `lowest:<k>` (each anchor's k lowest-SimL documents with SimL ≤ beta). With "
            "MeSH indexing labels only 0.1-1.2%% of pairs have SimL = 0, so most batches have no `zero` negative."
        },
    )
    use_mse: bool = field(default=True, metadata={"help": "Use the filtered SimE→SimL regression term."})
    use_contrastive: bool = field(default=True, metadata={"help": "Use the hierarchy-aware contrastive term."})
    use_ancestors: bool = field(
        default=True, metadata={"help": "SimL over label nodes plus all their ancestors (False: the labels only)."}
    )
    use_depth_weight: bool = field(
        default=True, metadata={"help": "Weight tree nodes by log(depth + 1) in SimL (False: all weights 1)."}
    )

    distill_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the self-distillation term (beyond the paper; 0 = off): mean squared difference between "
            "the batch's SimE matrix and the frozen base model's (the same model with the LoRA adapters disabled, no "
            "second copy). Keeps the tuned space close to the base where the labels say nothing. LoRA only."
        },
    )

    title_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the title InfoNCE term (beyond the paper; 0 = off): each document's title, embedded "
            "as a query, must pick its own abstract (embedded alone, as a document) among the batch's titled "
            "documents' abstracts. Rows without a title (PubMedQA abstracts) are skipped."
        },
    )
    title_temperature: float = field(default=0.05, metadata={"help": "τ of the title InfoNCE term."})
    mini_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Gradient caching (GradCache, as sentence-transformers' Cached* losses): encode each batch in "
            "chunks of this many documents, so the losses see the whole batch's pairs at one chunk's activation "
            "memory, for one extra forward pass. With dropout 0 the same loss and gradients as one pass; with "
            "dropout (lora_dropout 0.1 by default) each chunk draws its own masks: the same objective under another "
            "random draw, so a run does not end at the plain run's weights. One process only (default: off)."
        },
    )

    # ---------------------------------------------------------------- data
    dataset_path: str | None = field(
        default=None,
        metadata={"help": "The `biohicl build-dataset` folder (configs documents, pairs) or a documents file."},
    )
    train_splits: list[str] = field(
        default_factory=lambda: ["train"],
        metadata={
            "help": "Document splits to train on: train, or train dev (dev is refused while a task scoring on the "
            "dev documents selects the step); test, the held-out split, is refused."
        },
    )
    max_train_documents: int | None = field(
        default=None, metadata={"help": "Use at most this many training documents, at least 2 (quick runs)."}
    )
    drop_check_tags: bool = field(
        default=False,
        metadata={
            "help": "Ignore MeSH check tags (Humans, Male, Female, Adult, Aged, Animals, ...) in SimL: they are on "
            "most PubMedQA abstracts and would make any two human studies look related."
        },
    )
    check_tag_weight: float = field(
        default=1.0,
        metadata={
            "help": "SimL weight of the MeSH check tags (Humans, Animals, Adult, Aged, ...; Male/Female have no tree "
            "number): their tree nodes' weights are multiplied by this (a node also reached by a topical label keeps "
            "its full weight). 1 = the paper's SimL, 0 = drop them (as --drop_check_tags)."
        },
    )
    study_design_weight: float = field(
        default=1.0,
        metadata={
            "help": "SimL weight of study-design and statistics descriptors (Retrospective Studies, Cohort Studies, "
            "Risk Factors, Treatment Outcome, Logistic Models, ...), as check_tag_weight. 1 = the paper's SimL."
        },
    )
    batch_sampler: str = field(
        default="mesh_pairs",
        metadata={"help": "`mesh_pairs`: batches built from mined SimL > β pairs; `random`: plain shuffling."},
    )
    batch_negatives: bool = field(
        default=False,
        metadata={
            "help": "mesh_pairs batches: each anchor also brings one of its contrastive negatives (by --negative, "
            "mined over the training documents) when the batch holds none of them, so batches have negatives "
            "where the data has any (with indexing labels SimL = 0 pairs are rare)."
        },
    )
    max_partners: int | None = field(
        default=None,
        metadata={
            "help": "mesh_pairs batches mined during training (a documents file, or a SimL other than the build's): "
            "keep at most this many SimL > β partners per document, a random subset seeded by --data_seed (or "
            "--seed); default: every one (at 76K documents 800M pairs, 3 GiB; 64 bounds it)."
        },
    )
    mesh_path: str | None = field(
        default=None,
        metadata={
            "help": "A MeSH release file to compute SimL (and the siml-agreement evaluation) with (default: the "
            "packaged MeSH 2024); give the one the dataset was built with."
        },
    )

    # ---------------------------------------------------------------- evaluation during training
    eval_tasks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Evaluation-harness tasks run at each evaluation (with --eval_strategy). Dev tasks for model "
            "selection: pubmedqa:dev (PubMedQA dev questions -> own long answer), siml-agreement (Spearman of SimE vs "
            "SimL over the dataset's held-out dev documents; the run's dataset_path is filled in), scifact:train "
            "(slow on CPU). Never select on a test split you report."
        },
    )
    selection_metrics: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Evaluation metrics (as logged, with or without eval_, e.g. pubmedqa-dev_recall@1 "
            "siml-agreement_spearman) averaged into eval_dev_score at each evaluation; with --load_best_model_at_end "
            "metric_for_best_model then defaults to dev_score. With load_best_model_at_end the model is also "
            "evaluated at step 0 and the base weights are a candidate: if no step beats them the run ends with them."
        },
    )
    selection_guard: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Guarded selection: evaluation metrics (e.g. pubmedqa-dev_recall@1 scifact_ndcg@10) whose "
            "mean (logged as eval_dev_guard) must stay at or above step 0's, less --selection_guard_tolerance. A step "
            "that falls below scores step 0's dev_score, so it can never be selected; among the steps that keep the "
            "guard the best --selection_metrics (e.g. siml-agreement_spearman) wins. Needs --selection_metrics; "
            "the model is evaluated at step 0 (the guard's reference) whenever there is an --eval_strategy."
        },
    )
    selection_guard_mode: str = field(
        default="mean",
        metadata={
            "help": "How --selection_guard compares a step with step 0: `mean` (the guard metrics' mean at or above "
            "step 0's; one metric's gain can pay for another's loss) or `each` (every guard metric at or above its "
            "step 0 value; less --selection_guard_tolerance either way).",
            "choices": list(GUARD_MODES),
        },
    )
    selection_guard_tolerance: float = field(
        default=0.0,
        metadata={
            "help": "How far the guard's mean (with --selection_guard_mode each: each guard metric) may fall below "
            "step 0's and still pass (0: none)."
        },
    )
    metric_for_best_model: str | None = field(
        default=None,
        metadata={
            "help": "The evaluation metric --load_best_model_at_end selects on, as logged with or without eval_ (e.g. "
            "pubmedqa-dev_recall@1, one of the --eval_tasks' metrics); required with --load_best_model_at_end, "
            "dev_score when --selection_metrics is given (the training loss is not one)."
        },
    )
    eval_max_queries: int | None = field(
        default=None, metadata={"help": "Cap on queries per retrieval task during training evaluation (speed)."}
    )
    eval_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Keep evaluations in this folder, keyed by the encoder's outputs on probe texts (bit for bit), "
            "the tasks and their data: an identical encoder is read back instead of evaluated again. Runs of one "
            "base share their step 0 (LoRA starts as the base) this way; `biohicl reproduce` sets it per study."
        },
    )

    # ---------------------------------------------------------------- inherited defaults that suit BioHiCL
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate (LoRA takes a high one)."})
    per_device_train_batch_size: int = field(
        default=32, metadata={"help": "Documents per batch (in-batch pairs are what the losses see)."}
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "Resume from this checkpoint folder (a complete BioHiCL checkpoint), or `last` (also true, yes) "
            "for the newest complete checkpoint in --output_dir (a fresh start, with a warning, when there is none)."
        },
    )
    per_device_eval_batch_size: int = field(
        default=32, metadata={"help": "Texts per encoding batch when --eval_tasks are evaluated during training."}
    )
    warmup_steps: float = field(default=0.1, metadata={"help": "Warm-up: steps, or a fraction of all steps if < 1."})
    logging_steps: float = field(default=5, metadata={"help": "Log the loss components every N steps."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: the BioHiCL collator reads the text and label columns."}
    )
    push_to_hub: bool = field(
        default=False,
        metadata={
            "help": "Refused, as are the --hub_* options only a push reads (--hub_token aside: unused, never "
            "written): train, then `biohicl publish RUN_DIR --repo_id OWNER/NAME` publishes the kept step with its "
            "card."
        },
    )

    def __post_init__(self) -> None:
        if self.output_dir is None:
            raise ConfigError("output_dir: required (the run directory)")
        check_run_values(self)  # values peft and transformers would refuse only after the data and model loaded
        check_selection_target(self)
        self._inherited_post_init()
        check_selection(self)
        check_model(self)
        check_data(self)
        check_train_splits(self)

    def _inherited_post_init(self) -> None:
        """``TrainingArguments.__post_init__`` (devices, strategies as enums), its refusals as one-line
        :class:`ConfigError`\\ s naming the field; launched processes without an accelerator train on the CPU."""
        if not self.use_cpu and launched_without_accelerator():  # before super() builds the process group
            logger.info("launched processes and no accelerator: training on the CPU in one process group (use_cpu)")
            self.use_cpu = True  # without it each process would train alone on the same batches, and each save
        try:
            super().__post_init__()
        except ValueError as err:
            if isinstance(err, ConfigError):
                raise
            message = " ".join(str(err).split())  # transformers' checks, as one line naming the field
            named = re.search(r"--(\w+)", message)
            raise ConfigError(f"{named.group(1)}: {message}" if named else message) from None

    @property
    def selection_metric_key(self) -> str | None:
        """``metric_for_best_model`` as the trainer logs it (``eval_`` prefixed), or None."""
        name = self.metric_for_best_model
        if not name:
            return None
        return name if name.startswith("eval_") else f"eval_{name}"

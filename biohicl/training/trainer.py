"""Training BioHiCL with ``transformers.Trainer``: the collator, the label-aware batch sampler and the trainer.

- :class:`BioHiCLDataCollator` tokenizes a batch of documents and attaches its SimL matrix.
- :class:`MeshPairBatchSampler` builds batches from mined MeSH pairs (SimL > β), so every batch has positives.
- :class:`BioHiCLTrainer` overrides ``compute_loss`` with :class:`~biohicl.losses.BioHiCLLoss`, logs each loss
  component, evaluates with the evaluation harness, and checkpoints/resumes the trainable weights exactly.
- :func:`train_biohicl` does a whole run (model + LoRA + data + trainer + save); ``biohicl train`` and the demo
  call it.

The training loop itself is the stock ``Trainer`` loop, so ``accelerate launch``, bf16/fp16, gradient
checkpointing, TensorBoard and ``resume_from_checkpoint`` work as for any transformers model.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainerCallback

from biohicl.errors import ConfigError, DataError
from biohicl.losses import BioHiCLLoss, FilteredMSELoss, HierarchicalContrastiveLoss, TitleInfoNCELoss
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.mesh.label_groups import check_tag_uis, siml_label_weights
from biohicl.training.args import BioHiCLTrainingArguments

logger = logging.getLogger(__name__)

#: Trainable weights of a checkpoint (LoRA matrices, or every weight for a full fine-tune), loaded on resume.
TRAINABLE_WEIGHTS_NAME = "trainable_weights.safetensors"
#: The trainable weights at step 0 (written when step 0 is a model-selection candidate), restored if nothing beats them.
INITIAL_WEIGHTS_NAME = "initial_trainable_weights.safetensors"
#: Batch keys that go to the loss, not to the model.
LOSS_INPUT_KEYS = frozenset({"siml", "pair_mask"})
TRAINING_ARGS_JSON = "biohicl_training_args.json"
CURVES_NAME = "training_curves.png"


# ---------------------------------------------------------------------------------------------------------- collator
@dataclass
class BioHiCLDataCollator:
    """Tokenize documents and attach the batch's SimL matrix (``siml``, float32 [B, B]).

    Each feature is a mapping with ``text`` (or ``title`` and ``abstract``, joined by a space) and ``labels`` (MeSH
    descriptor UIs; labels the hierarchy does not know are ignored). When the batch mixes ``label_kind`` values
    (``indexing``/``mentions``), a ``pair_mask`` [B, B] (same kind only) is attached, so no loss pairs them.
    ``titles=True`` also tokenizes, for the title InfoNCE term, the ``title`` of every row that has a title and an
    ``abstract`` as a query (``title_inputs``) and the abstract alone as a document (``abstract_inputs``).

    Args:
        tokenize: ``texts -> BatchEncoding`` (e.g. ``BioHiCLModel.tokenize``).
        mesh: the hierarchy SimL is computed with.
        ancestors / depth_weight: the SimL switches of :meth:`MeshHierarchy.similarity_matrix`.
    """

    tokenize: Callable[[list[str]], Mapping[str, torch.Tensor]]
    mesh: MeshHierarchy
    ancestors: bool = True
    depth_weight: bool = True
    text_column: str = "text"
    labels_column: str = "labels"
    label_weights: Mapping[str, float] | None = None
    kind_column: str = "label_kind"
    titles: bool = False

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        texts = [document_text(f, self.text_column) for f in features]
        labels = [self.mesh.known_labels(f[self.labels_column]) for f in features]
        batch = dict(self.tokenize(texts))
        batch["siml"] = self.mesh.similarity_matrix(labels, self.ancestors, self.depth_weight, self.label_weights)
        kinds = [f.get(self.kind_column) for f in features]
        if len(set(kinds)) > 1:  # documents of different label kinds are never paired (the samplers avoid it too)
            codes = torch.tensor([sorted(set(map(str, kinds))).index(str(k)) for k in kinds])
            batch["pair_mask"] = codes[:, None] == codes[None, :]
        if self.titles:  # the title InfoNCE term: titles as queries, their abstracts alone as documents
            pairs = [(str(f.get("title") or "").strip(), str(f.get("abstract") or "").strip()) for f in features]
            pairs = [(title, abstract) for title, abstract in pairs if title and abstract]
            if len(pairs) >= 2:
                batch["title_inputs"] = dict(self.tokenize([t for t, _ in pairs], kind="query"))
                batch["abstract_inputs"] = dict(self.tokenize([a for _, a in pairs], kind="document"))
        return batch


def document_text(feature: Mapping[str, Any], text_column: str = "text") -> str:
    """A document's text: ``feature[text_column]`` or ``title + " " + abstract``."""
    text = feature.get(text_column)
    if text is None:
        text = f"{feature.get('title') or ''} {feature.get('abstract') or ''}".strip()
    return text


# ---------------------------------------------------------------------------------------------------------- sampler
class MeshPairBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches built around mined positive pairs (SimL > β), so that every batch holds positives.

    Each epoch walks the documents in a seeded random order; each document not yet in the current batch joins it
    as an anchor together with one of its partners (chosen at random among those not yet in the batch), until the
    batch holds ``batch_size`` documents. Documents without partners fill batches alone. An epoch has
    ``ceil(num_documents / batch_size)`` batches (fixed, so the Trainer's step count and resume skipping are exact);
    the anchor order restarts with a fresh permutation when it runs out. Batches depend only on ``seed`` and the
    epoch (:meth:`set_epoch`), so a resumed run sees the same batches as an uninterrupted one.

    Args:
        partners: ``partners[i]``: indices of the documents that form a positive pair with document ``i``.
        batch_size: documents per batch.
        seed: base seed; the epoch's generator is seeded with ``(seed, epoch)``.
        groups: a group per document (the label kind, ``indexing``/``mentions``): every batch is drawn from one
            group (chosen with probability proportional to its size; a group smaller than ``batch_size`` gives
            smaller batches), and partners or negatives in another group are ignored. ``None`` or one group:
            the batches are exactly those without groups.
        negatives: ``negatives[i]``: documents that are contrastive negatives of ``i`` (see
            :func:`mine_negatives`); when given, an anchor with none of its negatives in the batch also brings one.
    """

    def __init__(
        self,
        partners: Sequence[Sequence[int]],
        batch_size: int,
        seed: int = 0,
        groups: Sequence[str] | None = None,
        negatives: Sequence[Sequence[int]] | None = None,
    ):
        if batch_size < 2:
            raise ConfigError(f"batch_size: in-batch pairs need at least 2 documents, got {batch_size}")
        self.num_documents = len(partners)
        if self.num_documents == 0:
            raise ConfigError("MeshPairBatchSampler: no documents")
        self.group_of, self.group_members = _group_index(groups, self.num_documents)
        self.partners = self._same_group(partners)
        self.negatives = None if negatives is None else self._same_group(negatives)
        self.batch_size = min(batch_size, self.num_documents)
        self.seed = seed
        self.epoch = 0

    def _same_group(self, lists: Sequence[Sequence[int]]) -> list[np.ndarray]:
        out = [np.asarray(sorted(set(p)), dtype=np.int64) for p in lists]
        if len(out) != self.num_documents:
            raise ConfigError(f"MeshPairBatchSampler: {len(out)} lists for {self.num_documents} documents")
        if len(self.group_members) > 1:
            out = [p[self.group_of[p] == self.group_of[i]] for i, p in enumerate(out)]
        return out

    # -- construction
    @classmethod
    def from_pairs(
        cls,
        anchors: Sequence[int],
        partners: Sequence[int],
        siml: Sequence[float],
        num_documents: int,
        batch_size: int,
        beta: float = 0.3,
        seed: int = 0,
        groups: Sequence[str] | None = None,
        negatives: Sequence[Sequence[int]] | None = None,
    ) -> MeshPairBatchSampler:
        """From a mined pair list (indices into the training documents); pairs with SimL ≤ β are ignored."""
        lists: list[list[int]] = [[] for _ in range(num_documents)]
        for a, p, s in zip(anchors, partners, siml, strict=True):
            if s > beta and a != p:
                lists[a].append(p)
                lists[p].append(a)
        return cls(lists, batch_size, seed, groups=groups, negatives=negatives)

    @classmethod
    def from_labels(
        cls,
        labels: Sequence[Sequence[str]],
        mesh: MeshHierarchy,
        batch_size: int,
        beta: float = 0.3,
        ancestors: bool = True,
        depth_weight: bool = True,
        seed: int = 0,
        label_weights: Mapping[str, float] | None = None,
        groups: Sequence[str] | None = None,
        negatives: Sequence[Sequence[int]] | None = None,
    ) -> MeshPairBatchSampler:
        """Mine every pair with SimL > β among the documents (dense SimL; fine for tens of thousands)."""
        from biohicl.mesh.gram import gram_matrix

        docs = [mesh.known_labels(labs) for labs in labels]
        vectors = mesh.normalized_label_vectors(docs, ancestors, depth_weight, np.float64, label_weights)
        gram = gram_matrix(vectors)
        np.fill_diagonal(gram, 0.0)
        return cls([np.flatnonzero(row > beta) for row in gram], batch_size, seed, groups=groups, negatives=negatives)

    # -- Sampler protocol
    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.num_documents / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        grouped = len(self.group_members) > 1
        sizes = np.array([len(m) for m in self.group_members], dtype=np.float64)
        orders: list[list[int]] = [[] for _ in self.group_members]
        for _ in range(len(self)):
            group = int(rng.choice(len(sizes), p=sizes / sizes.sum())) if grouped else 0
            size = min(self.batch_size, len(self.group_members[group]))
            order = orders[group]
            batch: list[int] = []
            members: set[int] = set()
            while len(batch) < size:
                if not order:
                    fresh = (
                        rng.permutation(self.group_members[group]) if grouped else rng.permutation(self.num_documents)
                    )
                    order.extend(fresh.tolist()[::-1])
                anchor = order.pop()
                if anchor not in members:
                    batch.append(anchor)
                    members.add(anchor)
                if len(batch) >= size:
                    break
                candidates = self.partners[anchor]
                if len(candidates):
                    for partner in rng.permutation(candidates).tolist():
                        if partner not in members:
                            batch.append(partner)
                            members.add(partner)
                            break
                if self.negatives is not None and len(batch) < size:
                    pool = self.negatives[anchor]
                    if len(pool) and not members.intersection(pool.tolist()):
                        negative = int(pool[rng.integers(len(pool))])
                        batch.append(negative)
                        members.add(negative)
            yield batch

    @property
    def documents_with_partners(self) -> int:
        return sum(1 for p in self.partners if len(p))


def _group_index(groups: Sequence[str] | None, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(group id per document, member indices per group)``; one group when ``groups`` is None."""
    if groups is None:
        return np.zeros(n, dtype=np.int64), [np.arange(n)]
    if len(groups) != n:
        raise ConfigError(f"groups: {len(groups)} values for {n} documents")
    names, group_of = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    group_of = group_of.ravel().astype(np.int64)
    return group_of, [np.flatnonzero(group_of == g) for g in range(len(names))]


def mine_negatives(
    labels: Sequence[Sequence[str]],
    mesh: MeshHierarchy,
    negative: str = "zero",
    beta: float = 0.3,
    ancestors: bool = True,
    depth_weight: bool = True,
    label_weights: Mapping[str, float] | None = None,
    groups: Sequence[str] | None = None,
    limit: int = 64,
    seed: int = 0,
    block: int = 1024,
) -> list[np.ndarray]:
    """For each document, up to ``limit`` documents of its group that are its negatives under ``negative``.

    ``zero``: SimL = 0, ``below:t``: SimL < t (a seeded random ``limit`` of them); ``lowest:k``: the ``limit``
    lowest-SimL documents with SimL ≤ β. Unlabelled documents are nobody's negative. SimL is computed in row
    blocks (memory ``block × N``).
    """
    from biohicl.mesh.gram import gram_factors
    from biohicl.mesh.pair_rules import ZERO_TOLERANCE, parse_negative

    kind, value = parse_negative(negative, beta)
    docs = [mesh.known_labels(labs) for labs in labels]
    vectors = mesh.normalized_label_vectors(docs, ancestors, depth_weight, np.float64, label_weights)
    labelled = np.diff(vectors.indptr) > 0
    group_of, _ = _group_index(groups, len(docs))
    factors = gram_factors(vectors)
    rng = np.random.default_rng([seed, 1])
    out: list[np.ndarray] = []
    for start in range(0, len(docs), block):
        rows = factors.rows(start, min(start + block, len(docs)))
        for offset, row in enumerate(rows):
            i = start + offset
            allowed = labelled & (group_of == group_of[i])
            allowed[i] = False
            if not labelled[i]:
                out.append(np.zeros(0, dtype=np.int64))
                continue
            if kind == "lowest":
                candidates = np.flatnonzero(allowed & (row <= beta))
                keep = candidates[np.argsort(row[candidates], kind="stable")[:limit]]
            else:
                threshold = row <= ZERO_TOLERANCE if kind == "zero" else row < value
                candidates = np.flatnonzero(allowed & threshold)
                keep = rng.choice(candidates, limit, replace=False) if len(candidates) > limit else candidates
            out.append(np.sort(keep).astype(np.int64))
    return out


class RandomBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Plain shuffled batches with the same length/seeding contract as :class:`MeshPairBatchSampler`.

    ``groups`` (optional, e.g. the label kind per document): every batch is drawn from one group, chosen with
    probability proportional to its size; one group (or None) gives exactly the ungrouped batches.
    """

    def __init__(self, num_documents: int, batch_size: int, seed: int = 0, groups: Sequence[str] | None = None):
        self.num_documents = num_documents
        self.batch_size = min(batch_size, num_documents)
        self.seed = seed
        self.epoch = 0
        self.group_of, self.group_members = _group_index(groups, num_documents)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.num_documents / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if len(self.group_members) > 1:
            yield from self._grouped(rng)
            return
        order = rng.permutation(self.num_documents)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = order[start : start + self.batch_size].tolist()
            if len(batch) < self.batch_size:  # keep every batch full: top up from a fresh permutation
                extra = [i for i in rng.permutation(self.num_documents).tolist() if i not in set(batch)]
                batch += extra[: self.batch_size - len(batch)]
            yield batch

    def _grouped(self, rng: np.random.Generator) -> Iterator[list[int]]:
        sizes = np.array([len(m) for m in self.group_members], dtype=np.float64)
        orders: list[list[int]] = [[] for _ in self.group_members]
        for _ in range(len(self)):
            group = int(rng.choice(len(sizes), p=sizes / sizes.sum()))
            size = min(self.batch_size, len(self.group_members[group]))
            batch: list[int] = []
            while len(batch) < size:
                if not orders[group]:
                    orders[group].extend(rng.permutation(self.group_members[group]).tolist()[::-1])
                index = orders[group].pop()
                if index not in batch:
                    batch.append(index)
            yield batch


def positive_pair_share(
    batches: Sequence[Sequence[int]], siml_of: Callable[[Sequence[int]], torch.Tensor], beta: float = 0.3
) -> dict[str, float]:
    """Share of in-batch pairs (i < j) with SimL > β, and share of batches holding at least one such pair."""
    pairs = positives = with_positive = 0
    for batch in batches:
        siml = siml_of(batch)
        upper = torch.triu(torch.ones_like(siml, dtype=torch.bool), diagonal=1)
        count = int((siml[upper] > beta).sum())
        pairs += int(upper.sum())
        positives += count
        with_positive += count > 0
    return {
        "positive_pair_share": positives / max(pairs, 1),
        "batches_with_positive": with_positive / max(len(batches), 1),
        "positives_per_batch": positives / max(len(batches), 1),
    }


# ---------------------------------------------------------------------------------------------------------- evaluation
#: Evaluation tasks over the training dataset itself: ``--eval_tasks siml-agreement`` → ``siml-agreement@<dataset>``.
DATASET_EVAL_TASKS = ("siml-agreement",)


def resolve_eval_tasks(tasks: Sequence[str], dataset_path: str | None) -> list[str]:
    """``args.eval_tasks`` as harness task specs: a dataset task without ``@`` gets the run's ``dataset_path``."""
    resolved = []
    for spec in tasks:
        name, sep, split = spec.partition(":")
        if name in DATASET_EVAL_TASKS:
            if not dataset_path:
                raise ConfigError(f"eval_tasks: {name} evaluates the dataset's dev documents and needs dataset_path")
            spec = f"{name}@{dataset_path}" + (f":{split}" if sep else "")
        resolved.append(spec)
    return resolved


def harness_metrics(model: nn.Module, tasks: Sequence[str], max_queries: int | None = None) -> dict[str, float]:
    """The one seam to the evaluation harness: ``biohicl.evaluation.runner.evaluate_model`` → flat metrics.

    The harness's ``summary`` (``{"biosses/spearman": 0.8, ...}``) becomes ``{"biosses_spearman": 0.8, ...}``;
    a record without a summary is flattened (``{task: {metric: v}}`` → ``task_metric``), non-numbers dropped.
    """
    from biohicl.evaluation.runner import evaluate_model  # imported lazily: training works without the harness

    record = evaluate_model(model, tasks=list(tasks), limit_queries=max_queries, show_progress_bar=False)
    values = record.get("summary") or record if isinstance(record, Mapping) else {}
    return {key.replace("/", "_"): value for key, value in _flatten_numeric(values).items()}


def _flatten_numeric(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten_numeric(value, f"{name}_"))
        elif isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


# ---------------------------------------------------------------------------------------------------------- trainer
class BioHiCLTrainer(Trainer):
    """``transformers.Trainer`` with the BioHiCL loss, label-aware batches and harness evaluation.

    Args:
        loss: the objective (default: built from ``args``).
        batch_sampler: yields lists of document indices (default: built from ``args.batch_sampler``).
        All other arguments are ``Trainer``'s. ``model`` is a :class:`~biohicl.models.model.BioHiCLModel`.
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean

    def __init__(
        self,
        *args: Any,
        loss: BioHiCLLoss | None = None,
        batch_sampler: torch.utils.data.Sampler | None = None,
        **kwargs: Any,
    ):
        training_args = kwargs.get("args") if "args" in kwargs else (args[1] if len(args) > 1 else None)
        if not isinstance(training_args, BioHiCLTrainingArguments):
            raise ConfigError("BioHiCLTrainer: args must be a BioHiCLTrainingArguments")
        if training_args.eval_strategy != "no" and kwargs.get("eval_dataset") is None:
            if not training_args.eval_tasks:
                raise ConfigError("eval_strategy: evaluation during training needs --eval_tasks (e.g. biosses)")
            kwargs["eval_dataset"] = list(training_args.eval_tasks)  # placeholder: the harness loads its own data
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        self.loss = loss if loss is not None else build_loss(training_args)
        self.batch_sampler = batch_sampler
        if batch_sampler is not None:
            self.add_callback(_SamplerEpochCallback(batch_sampler))
        self._components: dict[str, torch.Tensor] = {}
        self._component_steps = 0
        self.selection: dict[str, Any] | None = None

    # -- data
    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        if self.batch_sampler is None:
            return super().get_train_dataloader()
        loader = torch.utils.data.DataLoader(
            self.train_dataset,
            batch_sampler=self.batch_sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            # pinning only helps a GPU copy; on CPU torch warns that it is ignored
            pin_memory=self.args.dataloader_pin_memory and self.args.device.type == "cuda",
        )
        return self.accelerator.prepare(loader)

    # -- loss
    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ):
        inputs = dict(inputs)
        loss_inputs = {key: inputs.pop(key) for key in list(inputs) if key in LOSS_INPUT_KEYS}
        siml = loss_inputs.pop("siml")
        title_inputs = inputs.pop("title_inputs", None)
        abstract_inputs = inputs.pop("abstract_inputs", None)
        embeddings = model(**inputs)
        wanted = getattr(self.loss, "extra_inputs", frozenset())
        if "title_embeddings" in wanted and title_inputs is not None and abstract_inputs is not None:
            loss_inputs["title_embeddings"] = model(**title_inputs)
            loss_inputs["abstract_embeddings"] = model(**abstract_inputs)
        if "base_embeddings" in wanted:
            loss_inputs["base_embeddings"] = base_model_embeddings(self.accelerator.unwrap_model(model), inputs)
        out = self.loss(embeddings, siml, **loss_inputs)
        if isinstance(out, torch.Tensor):
            out = {"loss": out}
        if model.training:
            self._accumulate(out, siml, loss_inputs.get("pair_mask"))
        return (out["loss"], {"embeddings": embeddings, **out}) if return_outputs else out["loss"]

    def _accumulate(
        self, out: Mapping[str, torch.Tensor], siml: torch.Tensor, pair_mask: torch.Tensor | None = None
    ) -> None:
        """Sum every ``loss_*`` component the loss returned (whatever the loss) and the batch's positive share."""
        upper = torch.triu(torch.ones_like(siml, dtype=torch.bool), diagonal=1)
        if pair_mask is not None:
            upper &= pair_mask.to(upper.device, torch.bool)
        values = {key: value.detach() for key, value in out.items() if key.startswith("loss_")}
        values["positive_pairs"] = (siml[upper] > self.args.beta).float().mean().nan_to_num(0.0)
        contrastive = getattr(self.loss, "contrastive", None)
        if hasattr(contrastive, "masks"):  # share of in-batch pairs that are contrastive negatives (of either side)
            negative = contrastive.masks(siml, pair_mask)[1]
            values["negative_pairs"] = (negative | negative.T)[upper].float().mean().nan_to_num(0.0)
        for key, value in values.items():
            value = value.to(out["loss"].device)
            self._components[key] = self._components.get(key, 0.0) + value.float()
        self._component_steps += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._component_steps:
            for key, total in self._components.items():
                mean = total / self._component_steps
                if self.accelerator.num_processes > 1:
                    mean = self.accelerator.reduce(mean, reduction="mean")
                logs[key] = float(mean)
            self._components, self._component_steps = {}, 0
        super().log(logs, start_time)

    # -- evaluation with the harness
    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Run ``args.eval_tasks`` through the evaluation harness; metrics are prefixed ``eval_``."""
        tasks = self.args.eval_tasks
        if not tasks:
            raise ConfigError("evaluate: no --eval_tasks given")
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        start = time.time()
        try:
            raw = harness_metrics(model, resolve_eval_tasks(tasks, self.args.dataset_path), self.args.eval_max_queries)
        finally:
            model.train(was_training)
        if self.args.selection_metrics:
            raw["dev_score"] = dev_score(raw, self.args.selection_metrics)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in raw.items()}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.time() - start, 3)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    # -- model selection: step 0 (the base weights) is a candidate
    def _evaluate(self, trial: Any, ignore_keys_for_eval: list[str] | None, skip_scheduler: bool = False):
        if skip_scheduler and self.state.global_step > 0:
            return {}  # eval_on_start after a resume: step 0's evaluation is already in the log history
        metrics = super()._evaluate(trial, ignore_keys_for_eval, skip_scheduler)
        key = self.args.selection_metric_key
        if self.state.global_step == 0 and key is not None:
            if key not in metrics:
                known = ", ".join(k for k in sorted(metrics) if k != "eval_runtime")
                raise ConfigError(f"metric_for_best_model: {key} is not an evaluation metric (the tasks give {known})")
            self.state.best_metric = metrics[key]  # later steps must beat the base weights
            self.state.best_global_step = 0
            model = self.accelerator.unwrap_model(self.model)
            self._initial_weights = trainable_state(model)
            if self.args.should_save:
                os.makedirs(self.args.output_dir, exist_ok=True)
                save_trainable_weights(model, Path(self.args.output_dir) / INITIAL_WEIGHTS_NAME)
        return metrics

    def train(self, *args: Any, **kwargs: Any):
        result = super().train(*args, **kwargs)
        self.selection = self._finish_selection()
        return result

    def _finish_selection(self) -> dict[str, Any] | None:
        """Pick the best evaluated step (step 0 included) from the log history; restore the base weights when
        ``load_best_model_at_end`` and nothing beat them (a better step's checkpoint was loaded by the Trainer)."""
        key = self.args.selection_metric_key
        if key is None:
            return None
        history = [(int(e["step"]), float(e[key])) for e in self.state.log_history if key in e]
        if not history:
            return None
        better = np.greater if self.args.greater_is_better else np.less
        best_step, best_value = history[0]
        for step, value in history[1:]:
            if better(value, best_value):  # strict: a tie keeps the earlier step (the base first)
                best_step, best_value = step, value
        step0 = next((value for step, value in history if step == 0), None)
        selected_base = step0 is not None and best_step == 0
        restored = bool(self.args.load_best_model_at_end)
        if restored and selected_base:
            self._restore_initial_weights()
            logger.warning(
                "model selection: no evaluation beat step 0 (%s = %.4f, best later %s); the run ends with the base "
                "model's weights",
                key,
                step0,
                max((v for s, v in history if s > 0), default=float("nan"))
                if self.args.greater_is_better
                else min((v for s, v in history if s > 0), default=float("nan")),
            )
        return {
            "selection_metric": key,
            "greater_is_better": bool(self.args.greater_is_better),
            "step0_metric": step0,
            "best_step": best_step,
            "best_metric": best_value,
            "selected_base": selected_base,
            "loaded_best": restored,
            "evaluations": [[step, value] for step, value in history],
        }

    def _restore_initial_weights(self) -> None:
        model = self.accelerator.unwrap_model(self.model)
        initial = getattr(self, "_initial_weights", None)
        if initial is None:  # resumed run: step 0 was evaluated by the interrupted process
            load_trainable_weights(model, Path(self.args.output_dir) / INITIAL_WEIGHTS_NAME)
            return
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in initial.items():
                params[name].copy_(tensor)

    # -- checkpoints: the model's own save_pretrained, plus the trainable weights for exact resume
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model)
        model.save_pretrained(output_dir)
        save_trainable_weights(model, Path(output_dir) / TRAINABLE_WEIGHTS_NAME)
        # no training_args.bin: it would pickle the whole TrainingArguments, hub_token included; the JSON copy
        # (TrainingArguments.to_json_string redacts tokens) is what a run folder keeps
        Path(output_dir, TRAINING_ARGS_JSON).write_text(self.args.to_json_string(), encoding="utf-8")

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        model = self.accelerator.unwrap_model(model if model is not None else self.model)
        load_trainable_weights(model, Path(resume_from_checkpoint) / TRAINABLE_WEIGHTS_NAME)

    def _load_best_model(self) -> None:
        best = self.state.best_model_checkpoint
        logger.info(
            "Loading the best checkpoint %s (%s = %s)", best, self.args.metric_for_best_model, self.state.best_metric
        )
        load_trainable_weights(self.accelerator.unwrap_model(self.model), Path(best) / TRAINABLE_WEIGHTS_NAME)


def save_trainable_weights(model: nn.Module, path: Path) -> None:
    """Write every ``requires_grad`` parameter (by its ``named_parameters`` name) to a safetensors file."""
    from safetensors.torch import save_file

    from biohicl.atomic import shareable_mode

    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(tensors, str(path), metadata={"format": "pt"})
    os.chmod(path, shareable_mode())  # safetensors writes 0600 through a private temporary file


def load_trainable_weights(model: nn.Module, path: Path) -> None:
    """Load :func:`save_trainable_weights` output; every trainable parameter must be present."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise ConfigError(f"{path}: not found (not a BioHiCL checkpoint?)")
    tensors = load_file(str(path))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = sorted(trainable - set(tensors)), sorted(set(tensors) - trainable)
    if missing or unexpected:
        raise ConfigError(f"{path}: does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of every ``requires_grad`` parameter (bit-exact), by name."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


def dev_score(metrics: Mapping[str, float], names: Sequence[str]) -> float:
    """The mean of the named metrics (``eval_`` prefix optional); ConfigError naming a metric that is missing."""
    values = []
    for name in names:
        key = name.removeprefix("eval_")
        if key not in metrics:
            known = ", ".join(sorted(metrics))
            raise ConfigError(f"selection_metrics: {name} is not an evaluation metric (the tasks give {known})")
        values.append(float(metrics[key]))
    return float(np.mean(values))


def base_model_embeddings(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The batch under the frozen base model: LoRA adapters disabled, eval mode (no dropout), no gradients."""
    backbone = getattr(model, "backbone", None)
    if backbone is None or not hasattr(backbone, "disable_adapter"):
        raise ConfigError("distill_weight: the model has no LoRA adapters to disable (full fine-tune?)")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), backbone.disable_adapter():
            return model(**inputs).detach()
    finally:
        model.train(was_training)


def build_loss(args: BioHiCLTrainingArguments) -> BioHiCLLoss:
    """The objective described by ``args``."""
    return BioHiCLLoss(
        FilteredMSELoss(pair_filter=args.pair_filter, beta=args.beta),
        HierarchicalContrastiveLoss(
            beta=args.beta,
            temperature=args.temperature,
            weighted=args.weight_positives,
            form=args.contrastive_form,
            negative=args.negative,
        ),
        lambda_con=args.lambda_con,
        use_mse=args.use_mse,
        use_contrastive=args.use_contrastive,
        distill_weight=args.distill_weight,
        title=TitleInfoNCELoss(temperature=args.title_temperature),
        title_weight=args.title_weight,
    )


def loss_config(loss: Any) -> dict[str, Any]:
    """A loss's ``get_config_dict()``, or its class name for a loss without one."""
    getter = getattr(loss, "get_config_dict", None)
    return getter() if callable(getter) else {"class": type(loss).__name__}


def selection_summary(selection: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``training_summary.json`` keys of a run's model selection (all None when nothing was selected)."""
    selection = selection or {}
    return {
        "selection_metric": selection.get("selection_metric"),
        "best_step": selection.get("best_step"),
        "best_metric": selection.get("best_metric"),
        "step0_metric": selection.get("step0_metric"),
        "selected_base": selection.get("selected_base"),
        "selection": dict(selection) or None,
    }


class _SamplerEpochCallback(TrainerCallback):
    """Keeps the batch sampler's epoch in step with the Trainer's (also when accelerate wraps the sampler)."""

    def __init__(self, sampler: torch.utils.data.Sampler):
        self.sampler = sampler

    def on_epoch_begin(self, args, state, control, **kwargs):
        if hasattr(self.sampler, "set_epoch") and state.epoch is not None:
            self.sampler.set_epoch(math.floor(state.epoch + 1e-6))


# ---------------------------------------------------------------------------------------------------------- data


@dataclass
class TrainingData:
    """Training documents (``text`` and ``labels`` columns) and, when the dataset has them, their mined pairs."""

    documents: Any  # datasets.Dataset
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # anchor, partner, siml (indices into documents)
    stats: dict[str, Any]


def load_training_data(args: BioHiCLTrainingArguments, mesh: MeshHierarchy) -> TrainingData:
    """Read the documents of ``args.train_splits`` (and their mined pairs) from ``args.dataset_path``.

    ``dataset_path`` is a ``biohicl build-dataset`` folder (parquet configs ``documents`` and ``pairs``) or a
    single ``.jsonl``/``.json``/``.parquet`` file of documents (``title``, ``abstract`` or ``text``, and MeSH UIs).
    Documents of other splits (PubMedQA's test abstracts among them) are dropped, as are labels the MeSH
    hierarchy cannot place; pairs are re-indexed to the kept documents.
    """
    import datasets

    from biohicl.training.diagnostics import label_column as find_label_column
    from biohicl.training.diagnostics import parquet_files, read_documents, read_parquet

    if not args.dataset_path:
        raise ConfigError("dataset_path: required (a `biohicl build-dataset` folder or a documents file)")
    path = Path(args.dataset_path).expanduser()
    documents = read_documents(path)
    pairs_table = None
    if path.is_dir() and (pairs_files := parquet_files(path, "pairs")):
        pairs_table = read_parquet(pairs_files, path / "pairs")
    label_column = find_label_column(documents, path)
    total = len(documents)
    if "split" in documents.column_names:
        wanted = set(args.train_splits)
        keep = [i for i, s in enumerate(documents["split"]) if s in wanted]
    else:
        keep = list(range(total))
    if args.max_train_documents is not None:
        keep = keep[: args.max_train_documents]
    if not keep:
        raise ConfigError(f"{path}: no documents in split(s) {', '.join(args.train_splits)}")
    if len(keep) < 2:
        raise DataError(
            f"1 training document (split {', '.join(args.train_splits)}); the BioHiCL losses compare documents "
            "within a batch and need at least 2",
            path,
        )

    rows = documents.select(keep)
    texts = [document_text(r) for r in rows]
    raw_labels = rows[label_column]
    labels = [mesh.known_labels(labs) for labs in raw_labels]
    dropped = sum(len(r or ()) for r in raw_labels) - sum(len(lab) for lab in labels)
    if not any(labels):
        raise DataError(
            f"no training document has a MeSH label this hierarchy knows ({dropped} labels dropped as unknown)", path
        )
    if len({frozenset(lab) for lab in labels}) == 1:
        raise DataError(
            f"all {len(labels)} training documents have the same MeSH label set, so SimL = 1 for every pair: "
            "no negatives, and the regression would pull every embedding together; nothing to learn",
            path,
        )
    check_tags_dropped = 0
    if args.drop_check_tags:
        tags = check_tag_uis(mesh)
        before = sum(len(lab) for lab in labels)
        labels = [[u for u in lab if u not in tags] for lab in labels]
        check_tags_dropped = before - sum(len(lab) for lab in labels)
    columns = {"text": texts, "labels": labels}
    for name in ("title", "abstract"):  # for the title InfoNCE term
        if name in rows.column_names and "text" not in rows.column_names:
            columns[name] = [str(t or "") for t in rows[name]]
    if "label_kind" in rows.column_names:
        columns["label_kind"] = [str(k or "") for k in rows["label_kind"]]
    train = datasets.Dataset.from_dict(columns)

    pairs = None
    if pairs_table is not None and len(pairs_table):
        cols = pairs_table.column_names
        a_col = next(c for c in ("anchor", "anchor_idx", "anchor_index") if c in cols)
        p_col = next(c for c in ("partner", "partner_idx", "partner_index", "positive") if c in cols)
        remap = np.full(total, -1, dtype=np.int64)
        remap[np.asarray(keep)] = np.arange(len(keep))
        anchors = remap[np.asarray(pairs_table[a_col], dtype=np.int64)]
        partners = remap[np.asarray(pairs_table[p_col], dtype=np.int64)]
        siml = np.asarray(pairs_table["siml"], dtype=np.float64)
        inside = (anchors >= 0) & (partners >= 0)
        pairs = (anchors[inside], partners[inside], siml[inside])
    stats = {
        "documents": len(train),
        "documents_in_dataset": total,
        "splits": list(args.train_splits),
        "labels_dropped_unknown": int(dropped),
        "check_tags_dropped": int(check_tags_dropped),
        "documents_without_labels": sum(1 for lab in labels if not lab),
        "mined_pairs": None if pairs is None else len(pairs[0]),
        "label_kinds": dict(Counter(columns["label_kind"])) if "label_kind" in columns else None,
    }
    return TrainingData(train, pairs, stats)


def build_batch_sampler(
    args: BioHiCLTrainingArguments, data: TrainingData, mesh: MeshHierarchy
) -> torch.utils.data.Sampler:
    """The batch sampler ``args.batch_sampler`` names, seeded with ``args.data_seed`` (or ``args.seed``).

    Documents of different label kinds never share a batch; with ``batch_negatives`` each anchor also brings one
    of its negatives (``args.negative``) when the batch has none of them yet.
    """
    seed = args.data_seed if args.data_seed is not None else args.seed
    size = args.per_device_train_batch_size
    n = len(data.documents)
    groups = data.documents["label_kind"] if "label_kind" in data.documents.column_names else None
    if args.batch_sampler == "random":
        return RandomBatchSampler(n, size, seed, groups=groups)
    label_weights = siml_label_weights(mesh, args.check_tag_weight, args.study_design_weight)
    negatives = None
    if args.batch_negatives:
        negatives = mine_negatives(
            data.documents["labels"], mesh, args.negative, args.beta, args.use_ancestors, args.use_depth_weight,
            label_weights, groups=groups, seed=seed,
        )  # fmt: skip
    default_siml = args.use_ancestors and args.use_depth_weight and not args.drop_check_tags and not label_weights
    if data.pairs is not None and default_siml:
        anchors, partners, siml = data.pairs
        return MeshPairBatchSampler.from_pairs(
            anchors, partners, siml, n, size, beta=args.beta, seed=seed, groups=groups, negatives=negatives
        )
    # no mined pairs (or SimL switched to another variant): mine them here with the run's own SimL
    return MeshPairBatchSampler.from_labels(
        data.documents["labels"],
        mesh,
        size,
        beta=args.beta,
        ancestors=args.use_ancestors,
        depth_weight=args.use_depth_weight,
        seed=seed,
        label_weights=label_weights,
        groups=groups,
        negatives=negatives,
    )


# ---------------------------------------------------------------------------------------------------------- a run
def build_model(args: BioHiCLTrainingArguments):
    """The base encoder with LoRA (or fully trainable for ``full_finetune``)."""
    from biohicl.models.model import BioHiCLModel

    model = BioHiCLModel.from_base(
        args.base_model,
        revision=args.base_revision,
        pooling=args.pooling,
        max_length=args.max_length,
        query_prompt=args.query_prompt,
        document_prompt=args.document_prompt,
        hub_id=args.base_model_hub_id,
    )
    if args.full_finetune:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    else:
        model.add_lora(
            r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout, target_modules=args.lora_target_modules
        )
    return model


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest ``checkpoint-N`` whose ``trainer_state.json`` was written (a kill mid-save leaves none)."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = []
    for child in root.iterdir():
        step = child.name.removeprefix("checkpoint-")
        complete = (child / "trainer_state.json").is_file() and (child / TRAINABLE_WEIGHTS_NAME).is_file()
        if child.is_dir() and step.isdigit() and complete:
            found.append((int(step), child))
    return max(found)[1] if found else None


def _resolve_resume(args: BioHiCLTrainingArguments) -> str | None:
    value = args.resume_from_checkpoint
    if value is None or str(value).lower() in {"", "false", "no", "none"}:
        return None
    if str(value).lower() in {"true", "last", "yes"}:
        checkpoint = last_complete_checkpoint(args.output_dir)
        if checkpoint is None:
            logger.warning("resume_from_checkpoint: no complete checkpoint in %s; starting fresh", args.output_dir)
            return None
        return str(checkpoint)
    if not (Path(value) / TRAINABLE_WEIGHTS_NAME).is_file():
        raise ConfigError(f"resume_from_checkpoint: {value} is not a complete BioHiCL checkpoint")
    return str(value)


def train_biohicl(args: BioHiCLTrainingArguments, callbacks: Sequence[TrainerCallback] | None = None) -> Path:
    """Train BioHiCL as ``args`` says and save the run; returns the run directory (``args.output_dir``).

    The run directory gets the final model (``save_pretrained``: adapter + tokenizer + ``biohicl_config.json``),
    ``trainer_state.json``, ``biohicl_training_args.json``, ``training_summary.json`` (data and batch statistics,
    loss configuration, runtime) and ``training_curves.png``.
    """
    from transformers import set_seed

    from biohicl.training.curves import plot_training_curves

    start = time.time()
    set_seed(args.seed)  # before the model: LoRA's A matrices are drawn at add_lora
    mesh = MeshHierarchy.load(args.mesh_path) if args.mesh_path else MeshHierarchy.load()
    data = load_training_data(args, mesh)
    model = build_model(args)
    collator = BioHiCLDataCollator(
        tokenize=model.tokenize,
        mesh=mesh,
        ancestors=args.use_ancestors,
        depth_weight=args.use_depth_weight,
        label_weights=siml_label_weights(mesh, args.check_tag_weight, args.study_design_weight),
        titles=args.title_weight > 0,
    )
    sampler = build_batch_sampler(args, data, mesh)
    trainer = BioHiCLTrainer(
        model=model,
        args=args,
        train_dataset=data.documents,
        data_collator=collator,
        batch_sampler=sampler,
        callbacks=list(callbacks or []),
    )
    result = trainer.train(resume_from_checkpoint=_resolve_resume(args))

    run_dir = Path(args.output_dir)
    if args.should_save:
        model.save_pretrained(run_dir)
        trainer.save_state()
        (run_dir / TRAINING_ARGS_JSON).write_text(args.to_json_string(), encoding="utf-8")
        trainable, total = model.trainable_parameters()
        summary = {
            "data": data.stats,
            "batch_sampler": type(sampler).__name__,
            "batches_per_epoch": len(sampler),
            "loss": loss_config(trainer.loss),
            "trainable_parameters": trainable,
            "total_parameters": total,
            "global_step": trainer.state.global_step,
            "train_loss": result.training_loss,
            "best_checkpoint": trainer.state.best_model_checkpoint,
            # model selection on dev data (None without metric_for_best_model): step 0 is the base weights
            **selection_summary(trainer.selection),
            "runtime_s": round(time.time() - start, 1),
        }
        (run_dir / "training_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        try:
            title = f"BioHiCL: {args.base_model}"
            plot_training_curves(trainer.state.log_history, run_dir / CURVES_NAME, title=title)
        except Exception as err:  # a run with no logged step has no curve; never lose the model
            logger.warning("no training curve drawn: %s", err)
    return run_dir

"""``BioHiCLTrainer``: ``transformers.Trainer`` with an in-batch SimL loss, label-aware batches, evaluation through
an evaluator, model selection with step 0 (the base weights) as a candidate, and exact checkpoints of the
trainable weights.

- The loss is any module ``loss(embeddings, siml, **inputs)`` returning a tensor or a dict of components; each
  component is logged (``loss_*``) beside the total (``loss``, or the sum of the components when absent).
- An evaluator is any callable ``model -> {metric: value}`` (the model is put in eval mode around the call, and
  under bf16/fp16 given its fp32 forward back: :mod:`~biohicl.training.precision`), the sentence-transformers way;
  one with a ``metric_names()`` method has ``metric_for_best_model`` and ``selection_metrics`` checked before
  training. :mod:`biohicl.evaluation.evaluator` builds one from
  ``--eval_tasks``; training itself never imports the evaluation harness.

The training loop itself is the stock ``Trainer`` loop, so ``accelerate launch``, bf16/fp16, activation
checkpointing, TensorBoard and ``resume_from_checkpoint`` work as for any transformers model.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import TrainOutput, seed_worker

from biohicl.errors import ConfigError
from biohicl.losses.utils import pair_shares
from biohicl.training.arg_checks import push_refusal
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.assembly import build_collator, prepare_trainable, training_mesh
from biohicl.training.cached_batch import base_model_embeddings, encoded_loss
from biohicl.training.checkpoint import (
    INITIAL_WEIGHTS_NAME,
    TRAINABLE_WEIGHTS_NAME,
    TRAINING_ARGS_JSON,
    check_resume_point,
    checkpoint_step,
    load_checkpoint_state,
    load_trainable_weights,
    logged_train_loss,
    resolve_resume,
    restore_trainable_state,
    save_trainable_weights,
    trainable_state,
    whole_run_loss,
)
from biohicl.training.distributed import component_means
from biohicl.training.evaluator_checks import Evaluator, check_evaluation, metric_floats, refuse_evaluation_inputs
from biohicl.training.objective import build_loss, loss_terms
from biohicl.training.precision import fp32_forward
from biohicl.training.run_settings import check_run_folder
from biohicl.training.selection import check_metric, dev_score, guard_holds, selection_record, selection_warning

logger = logging.getLogger(__name__)

#: Batch keys that go to the loss, not to the model.
LOSS_INPUT_KEYS = frozenset({"siml", "pair_mask"})


class _SamplerEpochCallback(TrainerCallback):
    """Keeps the batch sampler's epoch in step with the Trainer's (also when accelerate wraps the sampler)."""

    def __init__(self, sampler: torch.utils.data.Sampler):
        self.sampler = sampler

    def on_epoch_begin(self, args, state, control, **kwargs):
        if hasattr(self.sampler, "set_epoch") and state.epoch is not None:
            self.sampler.set_epoch(math.floor(state.epoch + 1e-6))


class BioHiCLTrainer(Trainer):
    """``transformers.Trainer`` with an in-batch SimL loss, label-aware batches and an evaluator.

    Args:
        loss: the objective (default: built from ``args``, :func:`~biohicl.training.objective.build_loss`).
        batch_sampler: yields lists of document indices (default: the Trainer's own sampling).
        peft_config: a peft config (e.g. ``LoraConfig(r=4, use_dora=True)``) to wrap a BioHiCL model without
            adapters with, as trl's trainers do; without one such a model gets the ``lora_*`` arguments' LoRA (every
            weight trains under ``full_finetune``), drawn from ``args.seed``
            (:func:`~biohicl.training.assembly.prepare_trainable`).
        data_collator: default: training's (:func:`~biohicl.training.assembly.build_collator`), not transformers'.
        evaluator: ``model -> {metric: value}``, run at each evaluation (needed when ``eval_strategy`` is not
            ``no``); metrics are logged with an ``eval_`` prefix, plus ``eval_dev_score`` with ``selection_metrics``.
        All other arguments are ``Trainer``'s (but ``compute_loss_func``: give ``loss``); ``args`` must be a
        :class:`BioHiCLTrainingArguments`.
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean

    def __init__(
        self,
        *args: Any,
        loss: nn.Module | None = None,
        batch_sampler: torch.utils.data.Sampler | None = None,
        evaluator: Evaluator | None = None,
        compute_loss_func: Any = None,
        peft_config: Any = None,
        **kwargs: Any,
    ):
        training_args = kwargs.get("args") if "args" in kwargs else (args[1] if len(args) > 1 else None)
        if not isinstance(training_args, BioHiCLTrainingArguments):
            raise ConfigError("BioHiCLTrainer: args must be a BioHiCLTrainingArguments")
        if compute_loss_func is not None:  # the Trainer's hook would be ignored: compute_loss is the BioHiCL one
            raise ConfigError("compute_loss_func: pass loss= instead (any module loss(embeddings, siml, **inputs))")
        if training_args.push_to_hub:  # set after the arguments' checks (set_push_to_hub): Trainer would create a repo
            raise ConfigError(push_refusal(training_args))
        model = kwargs.get("model") if "model" in kwargs else (args[0] if args else None)
        refuse_evaluation_inputs(kwargs.get("eval_dataset", args[4] if len(args) > 4 else None))
        check_evaluation(training_args, evaluator)
        prepare_trainable(model, training_args, peft_config)
        loss = loss if loss is not None else build_loss(training_args)
        if model is not None and kwargs.get("data_collator") is None and len(args) < 3:  # not transformers' default
            if not hasattr(model, "tokenizer"):
                kind = type(model).__name__
                raise ConfigError(f"data_collator: give one (training's is built for a BioHiCL model, not {kind})")
            kwargs["data_collator"] = build_collator(training_args, model, training_mesh(training_args), loss)
        if training_args.eval_strategy != "no" and kwargs.get("eval_dataset") is None:
            kwargs["eval_dataset"] = list(training_args.eval_tasks) or ["evaluator"]  # placeholder: never read
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        self.loss = loss
        self.batch_sampler = batch_sampler
        self.evaluator = evaluator
        self.resumed_at_step: int | None = None  # set by train(): the checkpoint's step, read before training
        if batch_sampler is not None:
            self.add_callback(_SamplerEpochCallback(batch_sampler))
        self._components: dict[str, torch.Tensor] = {}
        self._component_weights: dict[str, float] = {}  # each component's share of optimizer steps that gave it
        self.documents_trained = 0  # the documents the loss trained on in train(), all processes together
        self.selection: dict[str, Any] | None = None

    # -- data
    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        if self.batch_sampler is None:
            return super().get_train_dataloader()
        workers = self.args.dataloader_num_workers
        params: dict[str, Any] = {  # as Trainer._get_dataloader (torch refuses the worker ones without workers)
            "num_workers": workers,
            # pinning only helps a GPU copy; on CPU torch warns that it is ignored
            "pin_memory": self.args.dataloader_pin_memory and self.args.device.type == "cuda",
            "in_order": self.args.dataloader_in_order,
            "worker_init_fn": partial(seed_worker, num_workers=workers, rank=self.args.process_index),
        }
        if workers > 0:
            params["persistent_workers"] = self.args.dataloader_persistent_workers
            params["prefetch_factor"] = self.args.dataloader_prefetch_factor
            params["multiprocessing_context"] = self.args.dataloader_multiprocessing_context
        loader = torch.utils.data.DataLoader(
            self.train_dataset, batch_sampler=self.batch_sampler, collate_fn=self.data_collator, **params
        )
        return self.accelerator.prepare(loader)

    # -- loss
    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, Any]]:
        inputs = dict(inputs)
        wanted = getattr(self.loss, "extra_inputs", frozenset())  # a collator's extra batch keys the loss asks for
        loss_inputs = {key: inputs.pop(key) for key in list(inputs) if key in LOSS_INPUT_KEYS or key in wanted}
        siml = loss_inputs.pop("siml")
        title_inputs = inputs.pop("title_inputs", None)
        abstract_inputs = inputs.pop("abstract_inputs", None)
        streams = {"embeddings": (model, inputs)}  # what the loss takes with gradients, encoded in this order
        if "title_embeddings" in wanted and title_inputs is not None and abstract_inputs is not None:
            # through the unwrapped model: a DDP forward broadcasts the buffers, a collective the processes whose
            # micro-batch has no titles would not join (a hang); the DDP forward's backward still averages the
            # gradients of all three forwards, which autograd sums into each weight before DDP's hook reduces it
            encoder = self.accelerator.unwrap_model(model)
            streams |= {"title_embeddings": (encoder, title_inputs), "abstract_embeddings": (encoder, abstract_inputs)}
        chunk = self.args.mini_batch_size if model.training else None  # gradient caching: cached_batch
        if "base_embeddings" in wanted:
            loss_inputs["base_embeddings"] = base_model_embeddings(self.accelerator.unwrap_model(model), inputs, chunk)
        out, embeddings = encoded_loss(self.loss, streams, siml, loss_inputs, chunk)
        total, components = loss_terms(out)
        if model.training:
            self._accumulate(components, total.device, siml, loss_inputs.get("pair_mask"))
            self.documents_trained += siml.shape[0]  # the batch as the sampler made it (transformers counts rows)
        if not return_outputs:
            return total
        return total, {"embeddings": embeddings, **(out if isinstance(out, Mapping) else {"loss": out})}

    def _accumulate(
        self,
        components: Mapping[str, torch.Tensor],
        device: torch.device,
        siml: torch.Tensor,
        pair_mask: torch.Tensor | None = None,
    ) -> None:
        """Sum every loss component (whatever the loss) and the batch's pair shares, for the next log: each
        micro-batch weighs 1 / its optimizer step's micro-batches, so the logged means are over optimizer steps, as
        transformers logs ``loss`` (an epoch's last step may hold fewer micro-batches), and each component's mean is
        over the micro-batches that gave it (a batch without titles gives no ``loss_title``). The shares are those
        the loss computed under its own rule in the forward just run (its ``pair_shares``: BioHiCLLoss's
        ``positive_pairs`` and ``negative_pairs``); a loss without them gives ``positive_pairs`` alone, the share of
        pairs with SimL > ``--beta``. Everything stays on the device (no boolean indexing, no ``.item()``): the
        values reach the host only when logged."""
        values = {key: value.detach() for key, value in components.items()}
        shares = getattr(self.loss, "pair_shares", None)
        if shares is None:  # SimL is symmetric: a pair's share counted from either document is its own
            shares = pair_shares({"positive_pairs": siml > self.args.beta}, pair_mask)
        values |= shares
        share = 1.0 / (getattr(self, "current_gradient_accumulation_steps", 1) or 1)
        for key, value in values.items():
            value = value.to(device)
            self._components[key] = self._components.get(key, 0.0) + share * value.float()
            self._component_weights[key] = self._component_weights.get(key, 0.0) + share

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._component_weights:
            logs.update(component_means(self._components, self._component_weights))  # one device-to-host copy
            self._components, self._component_weights = {}, {}
        if "train_loss" in logs and self.resumed_at_step is not None:  # transformers': this process's steps only
            steps = (self.resumed_at_step, logs["train_loss"], self.state.global_step)
            logs["train_loss"] = whole_run_loss(self.state.log_history, *steps)
        super().log(logs, start_time)

    # -- evaluation with the evaluator
    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Run the evaluator on the model (in eval mode, fp32 forward); metrics are prefixed ``eval_``. Its tasks are
        what is scored: ``eval_dataset`` and ``ignore_keys`` are refused (:func:`.refuse_evaluation_inputs`)."""
        refuse_evaluation_inputs(eval_dataset, ignore_keys)
        if self.evaluator is None:
            raise ConfigError("evaluate: no evaluator given (e.g. one built from --eval_tasks)")
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        start = time.time()
        try:
            with fp32_forward(model):  # bf16/fp16: accelerate's autocast wrapper is for training, not evaluation
                raw = metric_floats(self.evaluator(model))
        finally:
            model.train(was_training)
        if undefined := [name for name, value in raw.items() if not math.isfinite(value)]:  # a collapsed model
            logger.warning(
                "step %d: the evaluation gave NaN or infinite %s (a collapsed model?); training goes on, and a step "
                "whose selection metric is not finite is never selected",
                self.state.global_step,
                ", ".join(undefined),
            )
        if self.args.selection_metrics:
            raw["dev_score"] = dev_score(raw, self.args.selection_metrics)
        if self.args.selection_guard:
            raw.update(self._guarded(raw))
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in raw.items()}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.time() - start, 3)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _guarded(self, raw: dict[str, float]) -> dict[str, float]:
        """``dev_score``, ``dev_guard`` (the guard metrics' mean) and ``dev_guard_passed`` under ``--selection_guard``:
        step 0 is the base, read back from the log history at later steps (also after a resume); a later step failing
        the guard (``--selection_guard_mode``) scores the base's."""
        names = self.args.selection_guard
        guard = dev_score(raw, names, "selection_guard")
        if self.state.global_step == 0:
            return {"dev_score": raw["dev_score"], "dev_guard": guard, "dev_guard_passed": 1.0}
        step0 = next((e for e in self.state.log_history if e.get("step") == 0 and "eval_dev_guard" in e), None)
        if step0 is None:
            raise ConfigError("selection_guard: step 0 was never evaluated, so there is no base to guard")
        base = {key.removeprefix("eval_"): value for key, value in step0.items()}
        held = guard_holds(raw, base, names, self.args.selection_guard_mode, self.args.selection_guard_tolerance)
        score = raw["dev_score"] if held else base["dev_score"]
        return {"dev_score": score, "dev_guard": guard, "dev_guard_passed": float(held)}

    # -- model selection: step 0 (the base weights) is a candidate
    def _evaluate(self, trial: Any, ignore_keys_for_eval: list[str] | None, skip_scheduler: bool = False):
        if skip_scheduler and self.state.global_step > 0:
            return {}  # eval_on_start after a resume: step 0's evaluation is already in the log history
        metrics = super()._evaluate(trial, ignore_keys_for_eval, skip_scheduler)
        key = self.args.selection_metric_key
        if self.state.global_step == 0 and key is not None:
            check_metric(
                "metric_for_best_model", key, (k for k in metrics if k.startswith("eval_") and k != "eval_runtime")
            )
            finite = math.isfinite(metrics[key])  # a NaN base is no best: the first finite later step beats it
            self.state.best_metric = metrics[key] if finite else None  # later steps must beat the base weights
            self.state.best_global_step = 0 if finite else None
            model = self.accelerator.unwrap_model(self.model)
            self._initial_weights = trainable_state(model)
            if self.args.should_save:
                os.makedirs(self.args.output_dir, exist_ok=True)
                save_trainable_weights(model, Path(self.args.output_dir) / INITIAL_WEIGHTS_NAME)
        return metrics

    def _determine_best_metric(self, metrics: dict[str, float], trial: Any) -> bool:
        """transformers', but a NaN or infinite selection metric is never the best (:func:`.best_evaluation`)."""
        key = self.args.selection_metric_key
        if key is not None and key in metrics and not math.isfinite(metrics[key]):
            return False
        if self.state.best_metric is not None and math.isnan(self.state.best_metric):  # resumed: saved before this
            self.state.best_metric = None
        return super()._determine_best_metric(metrics, trial)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> TrainOutput:
        refuse_evaluation_inputs(None, kwargs.get("ignore_keys_for_eval", args[1] if len(args) > 1 else None))
        if isinstance(resume_from_checkpoint, bool):  # True: the newest complete checkpoint, as `last` picks it
            resume_from_checkpoint = resolve_resume(resume_from_checkpoint or None, self.args.output_dir)
        check_run_folder(self.args, resume_from_checkpoint)  # a checkpoint of other settings, resumed or trained over
        # read before training: save_total_limit may delete the resumed checkpoint on the way
        resumed = None if resume_from_checkpoint is None else checkpoint_step(resume_from_checkpoint)
        self.resumed_at_step = resumed
        self.documents_trained = 0
        # past the run's last step: refused; at it, the Trainer would train one step past the end
        # and a damaged file it would read: one line naming it, before any is loaded
        if resumed is not None and check_resume_point(resume_from_checkpoint, resumed, self.total_steps()):
            result = self._finish_from_checkpoint(resume_from_checkpoint)
        else:
            result = super().train(resume_from_checkpoint, *args, **kwargs)
            count = torch.tensor(self.documents_trained, device=self.args.device)
            self.documents_trained = int(self.accelerator.reduce(count, reduction="sum"))
            if resumed is not None:  # transformers' loss covers this call only
                loss = whole_run_loss(self.state.log_history, resumed, result.training_loss, result.global_step)
                result = TrainOutput(result.global_step, loss, result.metrics)
        self.selection = self._finish_selection()
        return result

    def total_steps(self) -> int:
        """The optimizer steps of the whole run, as the Trainer counts them (``max_steps``, or the epochs' steps)."""
        if self.args.max_steps > 0:
            return self.args.max_steps
        return self.set_initial_training_values(self.args, self.get_train_dataloader())[-1]

    def _finish_from_checkpoint(self, checkpoint: str | os.PathLike[str]) -> TrainOutput:
        """End a run whose ``checkpoint`` already reached the last step as training ends one, without a step: the
        checkpoint's state and weights, the best checkpoint's weights under ``load_best_model_at_end``, and the
        end-of-training log entry (the whole run's ``train_loss``) the checkpoint was saved before."""
        self.state = load_checkpoint_state(checkpoint)
        logger.info("%s is the run's last step (%d): nothing left to train", checkpoint, self.state.global_step)
        self._load_from_checkpoint(str(checkpoint))
        if self.args.load_best_model_at_end and self.state.best_model_checkpoint is not None:
            self._load_best_model()
        loss = logged_train_loss(self.state.log_history)
        if loss is not None and not any("train_loss" in entry for entry in self.state.log_history):
            self.log({"train_loss": loss})
        return TrainOutput(self.state.global_step, loss, {})

    def _finish_selection(self) -> dict[str, Any] | None:
        """Pick the best evaluated step (step 0 included) from the log history; restore the base weights when
        ``load_best_model_at_end`` and nothing beat them (a better step's checkpoint was loaded by the Trainer)."""
        key = self.args.selection_metric_key
        if key is None:
            return None
        record = selection_record(
            self.state.log_history, key, bool(self.args.greater_is_better), bool(self.args.load_best_model_at_end)
        )
        if record is not None and (warning := selection_warning(record, self.state.log_history)):
            logger.warning(warning)
        if record is not None and record["loaded_best"] and record["selected_base"]:
            self._restore_initial_weights()
        return record

    def _restore_initial_weights(self) -> None:
        model = self.accelerator.unwrap_model(self.model)
        initial = getattr(self, "_initial_weights", None)
        if initial is None:  # resumed run: step 0 was evaluated by the interrupted process
            load_trainable_weights(model, Path(self.args.output_dir) / INITIAL_WEIGHTS_NAME)
            return
        restore_trainable_state(model, initial)

    # -- checkpoints: the model's own save_pretrained, plus the trainable weights for exact resume
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model)
        model.save_pretrained(output_dir)  # peft's card (base_model a local path) gone, a failed save's too
        save_trainable_weights(model, Path(output_dir) / TRAINABLE_WEIGHTS_NAME)
        # no training_args.bin: it would pickle the whole TrainingArguments, hub_token included; the JSON copy
        # (TrainingArguments.to_json_string redacts tokens) is what a run folder keeps
        Path(output_dir, TRAINING_ARGS_JSON).write_text(self.args.to_json_string(), encoding="utf-8")

    # -- the Hub: never from here (a push uploads pickles, no card, not the kept step); `biohicl publish` does it
    def init_hf_repo(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ConfigError(push_refusal(self.args))

    push_to_hub = _push_from_checkpoint = init_hf_repo

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        model = self.accelerator.unwrap_model(model if model is not None else self.model)
        load_trainable_weights(model, Path(resume_from_checkpoint) / TRAINABLE_WEIGHTS_NAME)

    def _load_best_model(self) -> None:
        best = self.state.best_model_checkpoint
        logger.info(
            "Loading the best checkpoint %s (%s = %s)", best, self.args.metric_for_best_model, self.state.best_metric
        )
        load_trainable_weights(self.accelerator.unwrap_model(self.model), Path(best) / TRAINABLE_WEIGHTS_NAME)

"""What a run is built from that ``BioHiCLTrainer`` builds itself when it is not given it, as
:func:`~biohicl.training.run.train_biohicl` does: the weights that train (:func:`prepare_trainable`: every weight
under ``full_finetune``, else the model's adapters, ``peft_config=``'s or the ``lora_*`` arguments' LoRA, drawn from
the run's seed), the MeSH hierarchy SimL is computed with (:func:`training_mesh`) and training's collator
(:func:`build_collator`); and the model ``train_biohicl`` trains (:func:`build_model`)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import torch

from biohicl.data.collator import BioHiCLDataCollator
from biohicl.errors import ConfigError
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.mesh.label_groups import siml_label_weights
from biohicl.models.encoding import tokenize_texts
from biohicl.training.args import BioHiCLTrainingArguments

if TYPE_CHECKING:
    from biohicl.models.model import BioHiCL


def training_mesh(args: BioHiCLTrainingArguments) -> MeshHierarchy:
    """The hierarchy ``--mesh_path`` names, else the packaged one."""
    return MeshHierarchy.load(args.mesh_path) if args.mesh_path else MeshHierarchy.load()


def build_collator(
    args: BioHiCLTrainingArguments, model: Any, mesh: MeshHierarchy, loss: torch.nn.Module
) -> BioHiCLDataCollator:
    """The training collator of ``model``: it tokenizes as ``model.tokenize`` does (prompts, ``max_length``, read
    from the model's config at each call) but holds only the tokenizer and the config, not the model, so a worker
    started with ``spawn`` unpickles no weights."""
    return BioHiCLDataCollator(
        tokenize=partial(tokenize_texts, model.tokenizer, model.config),
        mesh=mesh,
        ancestors=args.use_ancestors,
        depth_weight=args.use_depth_weight,
        label_weights=siml_label_weights(mesh, args.check_tag_weight, args.study_design_weight),
        titles="title_embeddings" in getattr(loss, "extra_inputs", ()),  # the title term's, or a custom loss's
    )


def add_adapters(model: Any, peft_config: Any) -> None:
    """``peft_config``'s adapters on a BioHiCL ``model`` without any (``BioHiCL.add_lora(peft_config=...)``)."""
    if not callable(getattr(model, "add_lora", None)):
        raise ConfigError(f"peft_config: needs a BioHiCL model, got {type(model).__name__}")
    if model.is_peft:
        raise ConfigError("peft_config: the model already has LoRA adapters; give a model without them, or no config")
    model.add_lora(peft_config=peft_config)


def prepare_trainable(model: Any, args: BioHiCLTrainingArguments, peft_config: Any) -> None:
    """What of ``model`` trains, as ``train_biohicl`` builds it: every weight under ``full_finetune`` (of a model
    without adapters), else the model's own adapters, else ``peft_config``'s or the ``lora_*`` arguments' LoRA,
    drawn from ``args.seed`` (as the Trainer seeds, which it does only after this)."""
    from transformers import enable_full_determinism, set_seed

    if model is None:  # model_init= builds it later
        return
    if args.full_finetune:
        if peft_config is not None or getattr(model, "is_peft", False):
            raise ConfigError(
                "full_finetune: trains every weight of a model without adapters; give no peft_config= and a model "
                "without adapters, or turn full_finetune off"
            )
        model.requires_grad_(True)
        return
    if peft_config is None and getattr(model, "is_peft", False):
        return
    if not callable(getattr(model, "add_lora", None)):
        raise ConfigError(f"model: BioHiCLTrainer adds LoRA to a BioHiCL model, got {type(model).__name__}")
    if args.full_determinism:
        enable_full_determinism(args.seed)
    else:
        set_seed(args.seed)
    if peft_config is not None:
        add_adapters(model, peft_config)
    else:
        model.add_lora(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
                       target_modules=args.lora_target_modules)  # fmt: skip


def build_model(args: BioHiCLTrainingArguments, peft_config: Any = None) -> BioHiCL:
    """The base encoder with LoRA as ``args`` says, or fully trainable for ``full_finetune``.

    ``peft_config`` (a peft config, e.g. ``LoraConfig(r=8, use_dora=True)`` for DoRA) replaces the ``lora_*``
    settings of ``args``, as ``peft_config=`` does in trl's trainers.
    """
    from biohicl.models.model import BioHiCL

    if args.full_finetune and peft_config is not None:
        raise ConfigError("peft_config: full_finetune trains every weight, an adapter config has nothing to add")
    model = BioHiCL.from_base(
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
    elif peft_config is not None:
        model.add_lora(peft_config=peft_config)
    else:
        model.add_lora(
            r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout, target_modules=args.lora_target_modules
        )
    return model

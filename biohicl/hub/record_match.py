"""Whether an evaluation record is of the model a repo is staged from: its numbers go into that model's card and
``model-index``, so a record of another model (the base filed as the adapter's results), or of this model encoding
otherwise than its card says (scored at ``--max_length 128`` where the card says 32 tokens), is refused.

Only what a record says is compared: a field it does not give (an older record, a record from Python) is no
difference. A tuned record's ``model.weights_sha256`` (the weights files it scored) is compared with the published
model folder's, so a record of other weights (an earlier step of a resumed run) is refused; a record without it gets
one warning, since without it two runs saved with the same settings cannot be told apart. A record of an adapter run
loaded with ``merge=True`` (``kind`` ``merged``) hashed the adapter file (``model.weights_files``) and is compared as
an adapter record is; one of a merged export (its ``model.safetensors``) cannot be, and is warned. A record scored by a
quantised backend (``settings.backend`` ``onnx-int8``) is refused as either."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from biohicl.errors import PublishError
from biohicl.evaluation.comparison import COMPARED_SETTINGS, compared_settings

logger = logging.getLogger(__name__)

#: the saved model's fields a record's ``model.config`` must give as the run saved them (when it gives them)
MODEL_FIELDS = ("kind", "base_model", "base_revision", "pooling", "normalize")
#: (the run's kind, a record's kind) of one model: the adapter loaded with merge=True, or its merged export
SAME_WEIGHTS = frozenset({("adapter", "merged")})
#: what a refused tuned record suggests
EVALUATE_HINT = "evaluate the run as saved (`biohicl evaluate RUN`, no --max_length or prompt options) and pass that"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def record_config(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """A record's ``model.config`` (empty when it gives none)."""
    return _mapping(_mapping(record.get("model")).get("config"))


def _measured(record: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """Max length and prompts as the record scored them: field name → (where it says so, value)."""
    settings, config = _mapping(record.get("settings")), record_config(record)
    given = compared_settings(record)

    def where(key: str) -> str:
        if settings.get(key) is not None:
            return f"settings.{key}"
        # a record written before a SentenceTransformer's config said max_length gives max_seq_length
        return (
            "model.config.max_seq_length" if key == "max_length" and config.get(key) is None else f"model.config.{key}"
        )

    return {key: (where(key), given[key]) for key in COMPARED_SETTINGS if key in given}


def check_tuned_record(path: Path, record: Mapping[str, Any], config: Mapping[str, Any], source: Path) -> None:
    """A :class:`PublishError` naming ``path`` and the field when the record's model (``model.config``: kind, base
    model and revision, pooling, normalisation) or how it scored (max length, query and document prompts, from
    ``settings`` else ``model.config``) differ from ``config``, the run's ``biohicl_config.json`` (``source``), or
    its weights from the model folder's (:func:`check_weights`). A record of the adapter's merged export is the
    adapter's."""
    check_backend(path, record)
    theirs = record_config(record)
    for key in MODEL_FIELDS:
        ours, given = config.get(key), theirs.get(key)
        if ours is None or given is None or ours == given or (ours, given) in SAME_WEIGHTS:
            continue
        raise PublishError(
            f"{path}: model.config.{key} is {given!r}, but the model published ({source}) has {ours!r}: the record "
            f"is of another model, not this one's results; {EVALUATE_HINT}"
        )
    for key, (where, given) in _measured(record).items():
        ours = config.get(key)
        if ours is not None and ours != given:
            raise PublishError(
                f"{path}: {where} is {given!r}, but the model published ({source}) has {ours!r}: its numbers are "
                f"not the model's as its card describes it; {EVALUATE_HINT}"
            )
    check_weights(path, record, config, source)


def check_backend(path: Path, record: Mapping[str, Any]) -> None:
    """A :class:`PublishError` naming ``path`` and ``settings.backend`` when the record was scored by a quantised
    backend (``onnx-int8``, as ``biohicl evaluate --backend onnx --quantize int8`` records it): its numbers are not
    the published weights' as they load. The fp32 ONNX backend (``onnx``, equal to torch within 1e-4) is accepted."""
    backend = _mapping(record.get("settings")).get("backend")
    if isinstance(backend, str) and backend.startswith("onnx-"):  # "onnx-" + the --quantize value
        raise PublishError(
            f"{path}: settings.backend is {backend!r}: scored by a quantised model, not the weights published; "
            "evaluate with the torch backend (`biohicl evaluate MODEL --output FILE`, no --quantize) and pass that"
        )


def check_weights(path: Path, record: Mapping[str, Any], config: Mapping[str, Any], source: Path) -> None:
    """A :class:`PublishError` naming ``path`` and ``model.weights_sha256`` when the record scored other weights
    files than the model folder's (``source``'s folder; :func:`~biohicl.models.signature.folder_weights_sha256`,
    hashed here once). A record of the adapter loaded with ``merge=True`` (``kind`` ``merged``) hashed the adapter
    file, as its ``model.weights_files`` says, and is compared as an adapter record is. One warning, nothing
    compared, for a record that does not give the digest (written before biohicl recorded it, or of a model built in
    memory), and one instead of the error for a merged record whose digest is of other files than the adapter's (a
    merged export's ``model.safetensors``) or that does not say which files it hashed (written before
    ``model.weights_files``)."""
    from biohicl.models.signature import folder_weights_sha256, weights_files

    model = _mapping(record.get("model"))
    given = model.get("weights_sha256")
    if not isinstance(given, str):
        logger.warning(
            "%s was written before biohicl recorded the weights it scored (it gives no model.weights_sha256): a record "
            "of other weights cannot be detected; evaluate the run as saved (`biohicl evaluate RUN`) to check it",
            path,
        )
        return
    ours = folder_weights_sha256(source.parent)
    if ours is None or ours == given:
        return
    files = [file.name for file in weights_files(source.parent)]
    hashed = model.get("weights_files")
    if (config.get("kind"), record_config(record).get("kind")) in SAME_WEIGHTS and hashed != files:
        if isinstance(hashed, list) and hashed:
            logger.warning(
                "%s: a record of a merged export: its model.weights_sha256 is of its %s, not of the adapter published "
                "(%s), so a record of other weights cannot be detected; evaluate the run as saved (`biohicl evaluate "
                "RUN`) to check it",
                path,
                ", ".join(map(str, hashed)),
                ", ".join(files),
            )
        else:
            logger.warning(
                "%s: a merged record written before biohicl recorded which files it hashed (it gives no "
                "model.weights_files): its model.weights_sha256 may be of a merged export's files rather than of an "
                "adapter loaded merged, so a record of other weights cannot be detected; evaluate the run as saved "
                "(`biohicl evaluate RUN`) to check it",
                path,
            )
        return
    raise PublishError(
        f"{path}: model.weights_sha256 is {given[:12]}…, but the model published has {ours[:12]}… ({', '.join(files)} "
        f"in {source.parent}): the record scored other weights (an earlier step of a resumed run?); evaluate the "
        "model again (`biohicl evaluate RUN --output FILE`) and pass that record"
    )


def check_base_record(path: Path, record: Mapping[str, Any], config: Mapping[str, Any], source: Path) -> None:
    """A :class:`PublishError` naming ``path`` and the field unless the record is of the run's base model
    (``config["base_model"]``): no adapter's or merged model's record over that base (a tuned model's, whatever
    ``model.id`` a local merged export recorded), and its ``model.id`` is the base's Hub id or its
    ``model.config.base_model`` is. A record that names neither passes, as does one of a model loaded from a local
    folder (``model.source`` ``"path"``; in an older record, a ``base_model`` that can only be a path) while the
    run's base is a Hub id (the base evaluated from the local copy the run was trained from, with
    ``--base_model_hub_id``): a path says nothing of which Hub model it holds. A quantised record is refused
    (:func:`check_backend`)."""
    check_backend(path, record)
    base, theirs = config.get("base_model"), record_config(record)
    model_id, loaded = _mapping(record.get("model")).get("id"), _mapping(record.get("model")).get("source")
    if base is None:
        return
    named = theirs.get("base_model")
    # a merged release used as a base (its model.id the base's) records its own base: not this run's
    if theirs.get("kind") in ("adapter", "merged") and (named == base or model_id != base):
        raise PublishError(
            f"{path}: model.config.kind is {theirs['kind']!r}: a tuned model's record, not one of the base "
            f"{base} ({source}); pass the record of `biohicl evaluate {base}` as --base_eval_results"
        )
    if model_id == base or named is None or named == base or _local_beside_hub_id(named, base, loaded):
        return
    raise PublishError(
        f"{path}: model.config.base_model is {named!r}, not the base of the model published ({base}, {source}); "
        f"pass the record of `biohicl evaluate {base}` as --base_eval_results"
    )


def _local_beside_hub_id(named: Any, base: Any, loaded: Any) -> bool:
    """Whether a record is of a model loaded from a local folder and the run's base is a Hub id (or registered name):
    by the record's ``model.source`` (``"path"``, a folder however its path was typed: ``models/tinyb`` reads as a
    Hub id), else, in a record written before that field, by whether its ``base_model`` can only be a path."""
    from biohicl.models.resolver import looks_like_path

    if not isinstance(named, str) or not isinstance(base, str) or looks_like_path(base):
        return False
    return loaded == "path" if isinstance(loaded, str) else looks_like_path(named)


def measured_line(record: Mapping[str, Any], name: str) -> str | None:
    """The card's line on how its figures were measured, from the record (``name``: its file in the repo): max
    length (from ``settings``, else ``model.config``), dtype and a backend other than torch (``settings``), naming the
    fields it read; None when it gives none."""
    where, length = _measured(record).get("max_length", (None, None))
    dtype, backend = (_mapping(record.get("settings")).get(key) for key in ("dtype", "backend"))
    backend = backend if isinstance(backend, str) and backend != "torch" else None
    said = [
        f"at max length {length} tokens" if length is not None else "",
        f"in {dtype}" if dtype else "",
        f"with the {backend} backend" if backend else "",
    ]
    if not any(said):
        return None
    fields = [
        where if length is not None else "",
        "settings.dtype" if dtype else "",
        "settings.backend" if backend else "",
    ]
    return f"Measured {' '.join(s for s in said if s)} (`{name}` {', '.join(f for f in fields if f)})."

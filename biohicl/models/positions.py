"""How many tokens a backbone can encode: its position embeddings less the positions it never uses.

BERT-style models (bert, distilbert, electra, ...) number a text's tokens from 0, so ``max_position_embeddings``
tokens fit. RoBERTa-style models number them from ``padding_idx + 1`` (transformers'
``create_position_ids_from_input_ids``; position ``padding_idx`` is the padding's own), so ``padding_idx + 1`` fewer
fit: all-mpnet-base-v2 has 514 positions and takes 512 tokens. A longer text fails mid-encoding with an index error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from biohicl.errors import BioHiCLError
from biohicl.field_types import int_or_none
from biohicl.jsonio import read_json
from biohicl.models.resolver import resolve_base
from biohicl.models.st_layout import sentence_transformers_module_folder

logger = logging.getLogger(__name__)

#: ``model_type``s whose embeddings number positions from ``padding_idx + 1``: the text encoders whose transformers
#: embeddings call ``create_position_ids_from_input_ids`` on a table of ``max_position_embeddings`` rows (checked
#: against transformers in ``tests/test_positions.py``). Models that size the table ``max_position_embeddings +
#: padding_idx + 1`` (m2m_100, fsmt, ...) and rotary ones (esm) lose nothing and are not listed.
PADDING_OFFSET_TYPES = frozenset(
    {
        "camembert",
        "data2vec-text",
        "ibert",
        "layoutlmv3",
        "lilt",
        "longformer",
        "luke",
        "markuplm",
        "mpnet",
        "roberta",
        "roberta-prelayernorm",
        "xlm-roberta",
        "xlm-roberta-xl",
        "xmod",
    }
)

#: model types whose embeddings fix ``padding_idx`` instead of reading the config's ``pad_token_id``
FIXED_PADDING_IDX = {"mpnet": 1}


def _value(config: Any, name: str) -> Any:
    return config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)


def usable_positions(config: Any) -> int | None:
    """The most tokens a backbone with ``config`` (a transformers config, or its ``config.json`` as a mapping) can
    encode: ``max_position_embeddings``, less ``padding_idx + 1`` for the :data:`PADDING_OFFSET_TYPES`. None when the
    config states no positions."""
    positions = int_or_none(_value(config, "max_position_embeddings"))
    if positions is None or positions < 1:
        return None
    model_type = _value(config, "model_type")
    if model_type not in PADDING_OFFSET_TYPES:
        return positions
    padding = FIXED_PADDING_IDX.get(model_type, int_or_none(_value(config, "pad_token_id")))
    return positions - (padding + 1) if padding is not None and 0 <= padding < positions - 1 else positions


#: The one line a cut length is logged with: (length, limit, model)
CAPPED_MESSAGE = "max length %d capped at %d, the most tokens %s can encode"


def capped_length(max_length: int, config: Any, name: str | None = None) -> int:
    """``max_length`` capped at :func:`usable_positions` of ``config`` (unchanged when the config states none); with
    ``name`` (the model's), one warning line when it is cut, as :func:`fit_to_base` logs it."""
    limit = usable_positions(config)
    if limit is None or max_length <= limit:
        return max_length
    if name is not None:  # a warning (stderr): a load inside `search --json` must leave its stdout to the hits
        logger.warning(CAPPED_MESSAGE, max_length, limit, name)
    return limit


def _base_config(base_model: str) -> Mapping[str, Any] | None:
    """``base_model``'s ``config.json`` (Hub id, registered name or folder), read without loading its weights; None
    when the base is not on this machine or has none (a BioHiCL adapter folder). A sentence-transformers folder
    keeping its backbone in a module sub-folder has it there, where the load reads it."""
    try:
        folder = resolve_base(base_model)
        if not (path := folder / "config.json").is_file():  # an older sentence-transformers layout: 0_Transformer
            path = sentence_transformers_module_folder(folder, "Transformer") / "config.json"
        values = read_json(path) if path.is_file() else None
    except (BioHiCLError, OSError, ValueError):
        return None
    return values if isinstance(values, Mapping) else None


def base_usable_positions(base_model: str) -> int | None:
    """:func:`usable_positions` of ``base_model`` from its ``config.json``; None when the base is not on this machine
    or has no ``config.json`` (a BioHiCL adapter folder)."""
    values = _base_config(base_model)
    return usable_positions(values) if values is not None else None


def fit_to_base(base_model: str, max_length: int) -> int:
    """``max_length`` capped at what ``base_model`` can encode (:func:`capped_length`, one warning when it is cut)."""
    return capped_length(max_length, _base_config(base_model) or {}, base_model)

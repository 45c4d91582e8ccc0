"""A corpus's document embeddings read from a ``biohicl index`` folder instead of encoded (``biohicl evaluate
--document_index``): what :func:`biohicl.evaluation.retrieval.evaluate_beir` takes as ``document_index``.

>>> documents = IndexDocuments("index/scifact", model)       # checks the index was built by this model
>>> evaluate_beir(model, "scifact", "train", document_index=documents)   # only the queries are encoded
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biohicl.errors import ConfigError, DataError
from biohicl.search.contents import first_other_text
from biohicl.search.index import Index
from biohicl.search.layout import describe_model, encoder_probe, probe_cosine, probe_min_cosine


class IndexDocuments:
    """The rows of an index folder as document embeddings.

    The index must have been built by ``model`` (when given; at the same revision when both are known) with the
    same pooling, ``max_length``, document prompt, quantisation and weights (its rows of fixed probe texts,
    recorded at build time, must agree: a LoRA-tuned model is not its base), and hold exactly the corpus's
    documents (:meth:`lookup`); anything else is an error, never a silent mix.
    """

    def __init__(self, directory: str | Path, model: Any = None):
        self.directory = Path(directory)
        self.location = str(directory)
        self.index = Index.load(directory)
        if model is not None:
            self._check_model(getattr(model, "model", model))  # the DtypeEncoder wrapper holds the model

    def _check_model(self, model: Any) -> None:
        index, manifest = self.index, self.index.manifest
        if getattr(model, "embedding_dim", index.dim) != index.dim:
            raise ConfigError(
                f"document_index: {self.location} holds {index.dim}-d rows, the model embeds in {model.embedding_dim}"
            )
        config = getattr(model, "config", None)
        if config is None or not getattr(config, "base_model", None):
            return
        model_id, revision = describe_model(model)
        if model_id != manifest.model:
            raise ConfigError(f"document_index: {self.location} was built with {manifest.model}, not {model_id}")
        if revision and manifest.model_revision and revision != manifest.model_revision:
            raise ConfigError(
                f"document_index: {self.location} was built with {manifest.model} at revision "
                f"{manifest.model_revision}, the model is at revision {revision}"
            )
        for name in ("pooling", "max_length", "document_prompt"):
            if getattr(config, name, None) != getattr(manifest, name):
                raise ConfigError(
                    f"document_index: {self.location} was built with {name}="
                    f"{getattr(manifest, name)!r}, the model now has {getattr(config, name)!r}"
                )
        # int8 rows are an approximation (cosine >= 0.98); fp32 ONNX equals torch to 1e-4: backend is not compared
        quantize = getattr(model, "quantize", None)
        if quantize != manifest.quantize:
            raise ConfigError(
                f"document_index: {self.location} was built with quantize={manifest.quantize!r}, "
                f"the model now has {quantize!r}"
            )
        if manifest.probe:  # an index built before biohicl recorded probes: the checks above are all there is
            tolerance = probe_min_cosine(manifest.quantize, quantize)
            cosine = probe_cosine(manifest.probe, encoder_probe(model), tolerance)
            if cosine is not None:
                raise ConfigError(
                    f"document_index: {self.location} was built with other weights than the model's "
                    f"(both {manifest.model}; probe cosine {cosine:.4f}); rebuild the index with this model"
                )

    def lookup(
        self, corpus_ids: Sequence[str], texts: Sequence[str] | None = None
    ) -> Callable[[Sequence[str]], np.ndarray]:
        """``doc ids -> [n, dim]`` rows for a corpus of exactly ``corpus_ids`` (a :class:`DataError` when the index
        holds other documents, or, with ``texts``, the corpus's texts as evaluation encodes them, ``title + " " +
        text``, other texts than the index encoded); reads every row into memory once."""
        index = self.index
        records = index.documents(range(len(index)))
        rows = {str(records[row]["id"]): row for row in range(len(index))}
        missing = [d for d in corpus_ids if d not in rows]
        if missing or len(rows) != len(corpus_ids):
            skipped = index.manifest.skipped_blank if index.manifest is not None else 0
            blank = (
                f"; the index left out {skipped} documents with no text, which the evaluation encodes: evaluate "
                "without --document_index"
                if skipped and missing
                else ""
            )
            raise DataError(
                f"the index holds other documents than the corpus ({len(missing)} of {len(corpus_ids)} "
                f"corpus ids missing{', e.g. ' + missing[0] if missing else ''}; {len(rows)} indexed{blank})",
                self.directory,
            )
        if texts is not None:
            changed = first_other_text(records.values(), dict(zip(corpus_ids, texts, strict=True)), self.location)
            if changed is not None:
                raise DataError(
                    f"the index was built from other texts than the corpus has (first differing id {changed!r}); "
                    "rebuild the index from this corpus or evaluate without --document_index",
                    self.directory,
                )
        embeddings = index.embeddings().numpy()

        def lookup(doc_ids: Sequence[str]) -> np.ndarray:
            return embeddings[[rows[d] for d in doc_ids]]

        return lookup

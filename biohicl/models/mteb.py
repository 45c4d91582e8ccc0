"""A BioHiCL model behind mteb's encoder protocol: ``mteb.evaluate(model.to_mteb(), tasks)``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from biohicl.models.config import ENCODING_SETTINGS


class MtebEncoder:
    """A BioHiCL model behind mteb's ``EncoderProtocol`` (``mteb.evaluate(model.to_mteb(), tasks)``).

    Queries get the query prompt (``prompt_type`` "query"), documents the document prompt, and the texts of a task
    without those sides (``prompt_type`` None: STS, classification, clustering) none, as mteb's
    ``SentenceTransformerEncoderWrapper`` prompts a model without task-named prompts or a default prompt; similarity is
    cosine, as the embeddings are L2-normalised. :attr:`mteb_model_meta` names the model, so mteb's result cache
    keeps each model's scores apart.
    """

    def __init__(self, model: Any, batch_size: int = 32):
        self.model = model
        self.batch_size = batch_size
        self._meta: tuple[Any, Any] | None = None

    @property
    def mteb_model_meta(self) -> Any:
        """mteb's ``ModelMeta``: ``name`` the Hub id (``local/<folder>`` for a folder); ``revision`` the commit or
        revision when known, else ``local`` (a folder) or ``unknown`` (a repo); ``experiment_kwargs={"biohicl":
        <fingerprint>}``, a digest of the weights and the encoding settings (:data:`~.config.ENCODING_SETTINGS`).
        Results land in ``results/<name>/<revision>/experiments/biohicl_<fingerprint>/``, one folder per distinct
        model."""
        key = _state_key(self.model)
        if self._meta is None or self._meta[0] != key:
            self._meta = (key, _model_meta(self.model))
        return self._meta[1]

    def encode(
        self,
        inputs: Any,
        *,
        task_metadata: Any = None,
        hf_split: str = "",
        hf_subset: str = "",
        prompt_type: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Embed ``inputs``: a query (``prompt_type`` "query") with the query prompt, a document with the document
        prompt, a text of a task without sides (``prompt_type`` None: STS, classification, clustering) with none."""
        texts = [text for batch in inputs for text in batch["text"]]
        side = getattr(prompt_type, "value", prompt_type)
        if side in ("query", "document"):
            return self.model.encode(texts, batch_size=self.batch_size, kind=side, show_progress_bar=False)
        config = self.model.config
        plain = copy.copy(config)
        plain.document_prompt = ""  # for this call only
        self.model.config = plain
        try:
            return self.model.encode(texts, batch_size=self.batch_size, kind="document", show_progress_bar=False)
        finally:
            self.model.config = config

    def similarity(self, embeddings1: Any, embeddings2: Any) -> torch.Tensor:
        """Cosine similarities [n, m]; a single embedding counts as one row (as sentence-transformers does)."""
        return _unit(embeddings1) @ _unit(embeddings2).T

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> torch.Tensor:
        return (_unit(embeddings1) * _unit(embeddings2)).sum(-1)


def _unit(embeddings: Any) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.atleast_2d(torch.as_tensor(embeddings).float()), dim=-1)


def model_name(model: Any) -> tuple[str, str | None]:
    """(``owner/name``, revision or None) for ``model``: where :meth:`BioHiCL.from_pretrained` found it, else the
    base it was built on; a folder without a Hub id is ``local/<folder name>``."""
    from biohicl.models.resolver import hub_id_from_folder

    resolved = getattr(model, "resolved", None)
    if resolved is not None and resolved.repo_id:
        return resolved.repo_id, resolved.commit or resolved.revision
    if resolved is not None:
        return hub_id_from_folder(resolved.path) or f"local/{resolved.path.resolve().name}", None
    base = str(model.config.base_model)
    if Path(base).expanduser().is_dir() or "/" not in base:
        return f"local/{Path(base).expanduser().resolve().name}", None
    return base, model.config.base_revision


def fingerprint(model: Any) -> str:
    """The first 12 hex digits of a sha256 over the encoding settings and every weight (names, shapes, bytes)."""
    from biohicl.models.signature import weights_digest

    return weights_digest(model.config, ENCODING_SETTINGS, model.backbone)[:12]


def _state_key(model: Any) -> tuple:
    """Cheap to compute, changes when the weights (storage or in-place version) or the settings do."""
    tensors = tuple((name, t.data_ptr(), t._version) for name, t in model.backbone.state_dict().items())
    return tuple(getattr(model.config, key) for key in ENCODING_SETTINGS), tensors


def _model_meta(model: Any) -> Any:
    from mteb.models.model_meta import ModelMeta

    name, revision = model_name(model)
    return ModelMeta(
        loader=None,
        name=name,
        revision=revision or ("local" if name.startswith("local/") else "unknown"),
        release_date=None,
        languages=None,
        n_parameters=sum(p.numel() for p in model.parameters()),
        memory_usage_mb=None,
        max_tokens=model.config.max_length,
        embed_dim=model.embedding_dim,
        license=None,
        open_weights=None,
        public_training_code=None,
        public_training_data=None,
        framework=["PyTorch", "Transformers"],
        similarity_fn_name="cosine",
        use_instructions=bool(model.config.query_prompt or model.config.document_prompt),
        training_datasets=None,
        experiment_kwargs={"biohicl": fingerprint(model)},
    )

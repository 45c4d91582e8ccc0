"""A BioHiCL model behind mteb's encoder protocol: ``mteb.evaluate(model.to_mteb(), tasks)``."""

from __future__ import annotations

from typing import Any

import torch


class MtebEncoder:
    """A BioHiCL model behind mteb's ``EncoderProtocol`` (``mteb.evaluate(model.to_mteb(), tasks)``).

    Queries get the query prompt (``prompt_type`` "query"), everything else the document prompt; similarity is
    cosine, as the embeddings are L2-normalised.
    """

    mteb_model_meta = None  # mteb falls back to empty metadata

    def __init__(self, model: Any, batch_size: int = 32):
        self.model = model
        self.batch_size = batch_size

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
        texts = [text for batch in inputs for text in batch["text"]]
        kind = "query" if getattr(prompt_type, "value", prompt_type) == "query" else "document"
        return self.model.encode(texts, batch_size=self.batch_size, kind=kind, show_progress_bar=False)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> torch.Tensor:
        return _unit(embeddings1) @ _unit(embeddings2).T

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> torch.Tensor:
        return (_unit(embeddings1) * _unit(embeddings2)).sum(-1)


def _unit(embeddings: Any) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.as_tensor(embeddings).float(), dim=-1)

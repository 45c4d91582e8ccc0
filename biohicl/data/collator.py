"""The training collator: tokenize a batch of documents and attach its SimL matrix (and, when asked, the title and
abstract inputs of the title InfoNCE term)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from biohicl.data.documents import document_text
from biohicl.mesh.hierarchy import MeshHierarchy


class Tokenize(Protocol):
    """What the collator tokenizes with: texts and their ``kind`` (``"query"``: with the query prompt, for the
    titles of the title term; ``"document"``) in, a batch of tensors (``input_ids``, ``attention_mask``, ...) out."""

    def __call__(self, texts: list[str], *, kind: str = "document") -> Mapping[str, torch.Tensor]: ...


#: A collated batch: the tokenized documents, ``siml`` (and ``pair_mask``), each a tensor; with titles,
#: ``title_inputs`` and ``abstract_inputs``, each a tokenized batch.
Batch = dict[str, torch.Tensor | dict[str, torch.Tensor]]


@dataclass
class BioHiCLDataCollator:
    """Tokenize documents and attach the batch's SimL matrix (``siml``, float32 [B, B]).

    Each feature is a mapping with ``text`` (or, when it is missing or blank, ``title`` and ``abstract`` joined by a
    space: :func:`~biohicl.data.documents.document_text`) and ``labels`` (MeSH descriptor UIs; labels the hierarchy
    does not know are ignored). When the batch mixes ``label_kind`` values
    (``indexing``/``mentions``), a ``pair_mask`` [B, B] (same kind only) is attached, so no loss pairs them.
    ``titles=True`` also tokenizes, for the title InfoNCE term, the ``title`` of every row that has a title and an
    ``abstract`` as a query (``title_inputs``) and the abstract alone as a document (``abstract_inputs``).

    Args:
        tokenize: ``texts, kind=... -> BatchEncoding`` (:class:`Tokenize`), e.g. ``functools.partial(tokenize_texts,
            model.tokenizer, model.config)`` (what training uses): a bound ``model.tokenize`` tokenizes the same but
            pickles the whole model into each DataLoader worker started with ``spawn``.
        mesh: the hierarchy SimL is computed with.
        ancestors / depth_weight: the SimL switches of :meth:`MeshHierarchy.similarity_matrix`.
    """

    tokenize: Tokenize
    mesh: MeshHierarchy
    ancestors: bool = True
    depth_weight: bool = True
    label_weights: Mapping[str, float] | None = None
    titles: bool = False

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> Batch:
        texts = [document_text(f) for f in features]
        labels = [self.mesh.known_labels(f["labels"]) for f in features]
        batch: Batch = dict(self.tokenize(texts))
        batch["siml"] = self.mesh.similarity_matrix(labels, self.ancestors, self.depth_weight, self.label_weights)
        kinds = [f.get("label_kind") for f in features]
        if len(set(kinds)) > 1:  # documents of different label kinds are never paired (the samplers avoid it too)
            codes = torch.tensor([sorted(set(map(str, kinds))).index(str(k)) for k in kinds])
            batch["pair_mask"] = codes[:, None] == codes[None, :]
        if self.titles:  # the title InfoNCE term: titles as queries, their abstracts alone as documents
            pairs = [(str(f.get("title") or "").strip(), str(f.get("abstract") or "").strip()) for f in features]
            pairs = [(title, abstract) for title, abstract in pairs if title and abstract]
            if len(pairs) >= 2:
                batch["title_inputs"] = dict(self.tokenize([t for t, _ in pairs], kind="query"))
                batch["abstract_inputs"] = dict(self.tokenize([a for _, a in pairs], kind="document"))
        return batch

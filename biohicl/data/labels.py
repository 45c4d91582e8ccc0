"""One MeSH label as ``biohicl build-dataset`` reads a jsonl line's (:mod:`biohicl.data.jsonl`), and a documents
file's labels read so: what training on a documents file and the file's dev evaluations read alike, and what the
index's explanation (``biohicl search``) reads. Its own module, below :mod:`~biohicl.data.jsonl` and
:mod:`~biohicl.data.documents`, as both read labels by it. The forms a label may take, and the UI each gives, are
:mod:`biohicl.mesh.label_forms`'s, the rule :meth:`MeshHierarchy.resolve` (SimL) reads labels by too."""

from __future__ import annotations

from typing import Any

from biohicl.data.records import SCR_PATTERN
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.mesh.label_forms import MESH_PREFIX, resolve_label

# resolve_label is the mesh layer's rule (:mod:`biohicl.mesh.label_forms`), named here too as docs/data.md and
# docs/inference.md name it: ``biohicl.data.labels.resolve_label``
__all__ = ["file_labels", "resolve_label"]


def file_labels(labels: Any, mesh: MeshHierarchy) -> list[str]:
    """A documents file's labels (a list or a ``|``-joined string) as the build reads them (:func:`resolve_label`),
    each descriptor once; an unknown one kept as written, to be counted as unknown; a supplementary concept id or
    ``-1`` left out, as the build ignores them."""
    if isinstance(labels, str):
        labels = labels.split("|")
    uis: dict[str, None] = {}
    for label in labels or ():
        text = str(label).strip()
        if text and text != "-1" and not SCR_PATTERN.match(MESH_PREFIX.sub("", text).upper()):
            uis.setdefault(resolve_label(mesh, text) or text)
    return list(uis)

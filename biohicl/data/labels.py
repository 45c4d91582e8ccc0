"""One MeSH label as ``biohicl build-dataset`` reads a jsonl line's (:mod:`biohicl.data.jsonl`), and a documents
file's labels read so: what training on a documents file and the file's dev evaluations read alike, and what the
index's explanation (``biohicl search``) reads. Its own module, below :mod:`~biohicl.data.jsonl` and
:mod:`~biohicl.data.documents`, as both read labels by it."""

from __future__ import annotations

import re
from typing import Any

from biohicl.data.medline_text import parse_mesh_heading
from biohicl.data.records import MESH_PREFIX, QUALIFIED_ID, SCR_PATTERN, TREE_NUMBER
from biohicl.mesh.hierarchy import MeshHierarchy

#: a descriptor (a qualifier UI after it too), a supplementary concept, an un-normalised mention; ``MESH:`` in any case
ID_LIKE = re.compile(r"^(?:mesh:)?(D\d{6,9}(Q\d{6})?|C\d{6,9}|-1)$", re.IGNORECASE)  # ``d007333`` too


def label_form(mesh: MeshHierarchy, label: str) -> tuple[str, str]:
    """How the build reads one label: ``("id", UI)`` (upper-cased unless ``mesh`` holds it as written: ``d007333``
    is D007333; a ``MESH:`` prefix and a qualifier UI are left for the look-up), ``("tree", number)`` for a tree
    number with a ``.``, else ``("name", name)``: a name or entry term, or a MEDLINE heading's descriptor
    (``*Diabetes Mellitus/therapy``: the ``*`` and qualifiers stripped)."""
    text = label.strip()
    if ID_LIKE.match(text):
        return "id", text if text in mesh.names else text.upper()
    if TREE_NUMBER.match(text) and text not in mesh.names:  # a hierarchy's own id that looks like one is its id
        return "tree", text
    if mesh.try_resolve(text) is None and ("/" in text or text.startswith("*")):
        text = parse_mesh_heading(text)[0]
    return "name", text


def resolve_label(mesh: MeshHierarchy, label: str) -> str | None:
    """The descriptor UI ``mesh`` gives one label as the build reads it (every form of :mod:`biohicl.data.jsonl`'s
    doc: a UI, prefixed or qualified, in any case, a tree number, a name or entry term, a MEDLINE heading); ``None``
    for a label the build drops or ignores (an unknown one, an SCR id, ``-1``)."""
    form, text = label_form(mesh, label)
    if form == "tree":
        return mesh.tree_descriptor(text)
    if form == "name":
        return mesh.try_resolve(text)
    ui = MESH_PREFIX.sub("", text)
    qualified = QUALIFIED_ID.match(ui)
    ui = qualified.group(1) if qualified and ui not in mesh.names else ui
    return ui if ui in mesh.names else None


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

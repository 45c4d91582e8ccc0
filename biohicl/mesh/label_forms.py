"""The forms a MeSH label may take, and the descriptor UI a hierarchy gives one: the one rule that
:meth:`MeshHierarchy.resolve <biohicl.mesh.hierarchy.MeshHierarchy.resolve>` (so SimL) and ``biohicl build-dataset``
(:mod:`biohicl.data.labels`, which counts what it drops or notes) read labels by.

A label is a descriptor UI in any case (``D003924``, ``d003924``), with a ``MESH:`` prefix in any case and/or a
qualifier UI after it (``MESH:D003924Q000188``); a tree number (``C18.452.394.750.149``: release-specific, each is
one descriptor's in a release); a preferred name or entry term, case-insensitive (``Diabetes Mellitus, Type 2``,
``NIDDM``); or a MEDLINE heading (``*Diabetes Mellitus, Type 2/drug therapy``: its descriptor is read)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from biohicl.mesh.hierarchy import MeshHierarchy

#: a descriptor (a qualifier UI after it too), a supplementary concept, an un-normalised mention; ``MESH:`` in any case
ID_LIKE = re.compile(r"^(?:mesh:)?(D\d{6,9}(Q\d{6})?|C\d{6,9}|-1)$", re.IGNORECASE)  # ``d007333`` too
MESH_PREFIX = re.compile(r"^mesh:", re.IGNORECASE)  # ``MESH:D003920``, ``mesh:D003920``
QUALIFIED_ID = re.compile(r"^(D\d{6,9})Q\d{6}$")  # a descriptor UI with a qualifier UI: ``D012694Q000378``
#: a MeSH tree number below a category root: ``C18.452.394.750`` (a bare ``C18``, an ICD-10 look-alike, is not one)
TREE_NUMBER = re.compile(r"^[A-Z]\d{2}(\.\d{3})+$")


def heading_descriptor(heading: str) -> str:
    """A MEDLINE heading's descriptor: ``"*Diabetes Mellitus, Type 2/drug therapy/*metabolism"`` →
    ``"Diabetes Mellitus, Type 2"`` (qualifiers and ``*`` dropped)."""
    return heading.split("/")[0].strip().lstrip("*").strip()


def label_form(mesh: MeshHierarchy, label: str) -> tuple[str, str]:
    """How one label is read: ``("id", UI)`` (upper-cased unless ``mesh`` holds it as written: ``d007333``
    is D007333; a ``MESH:`` prefix and a qualifier UI are left for the look-up), ``("tree", number)`` for a tree
    number with a ``.``, else ``("name", name)``: a name or entry term, or a MEDLINE heading's descriptor
    (``*Diabetes Mellitus/therapy``: the ``*`` and qualifiers stripped)."""
    text = label.strip()
    if ID_LIKE.match(text):
        return "id", text if text in mesh.names else text.upper()
    if TREE_NUMBER.match(text) and text not in mesh.names:  # a hierarchy's own id that looks like one is its id
        return "tree", text
    if mesh.try_resolve(text) is None and ("/" in text or text.startswith("*")):
        text = heading_descriptor(text)
    return "name", text


def descriptor_id(mesh: MeshHierarchy, text: str) -> str | None:
    """The descriptor UI of an ``"id"`` form's text (``MESH:`` prefix dropped, a qualifier UI too unless ``mesh``
    holds the qualified id); ``None`` when ``mesh`` has no such descriptor (a supplementary concept id, ``-1``)."""
    ui = MESH_PREFIX.sub("", text)
    qualified = QUALIFIED_ID.match(ui)
    ui = qualified.group(1) if qualified and ui not in mesh.names else ui
    return ui if ui in mesh.names else None


def resolve_label(mesh: MeshHierarchy, label: str) -> str | None:
    """The descriptor UI ``mesh`` gives one label in any form of the module's doc; ``None`` for an unknown one,
    a supplementary concept id or ``-1``."""
    form, text = label_form(mesh, label)
    if form == "tree":
        return mesh.tree_descriptor(text)
    if form == "name":
        return mesh.try_resolve(text)
    return descriptor_id(mesh, text)

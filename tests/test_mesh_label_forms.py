"""MeshHierarchy.resolve (and so SimL) reads every label form build-dataset reads, by the one rule of the mesh layer."""

from __future__ import annotations

import re

import pytest

from biohicl.data.labels import resolve_label

T2, HUMANS, INSULIN_RESISTANCE = "D003924", "D006801", "D007333"

#: label forms of Diabetes Mellitus, Type 2 (D003924), each as build-dataset reads it
T2_FORMS = [
    "D003924",
    "d003924",
    "MESH:D003924",
    "mesh:d003924",
    "D003924Q000188",  # a qualifier UI after the descriptor's
    "MESH:d003924q000188",
    "C18.452.394.750.149",  # a tree number (release-specific)
    "C19.246.300",
    "Diabetes Mellitus, Type 2",
    "  diabetes mellitus, TYPE 2 ",
    "NIDDM",  # an entry term
    "*Diabetes Mellitus, Type 2/drug therapy",  # a MEDLINE heading
    "Diabetes Mellitus, Type 2/metabolism*",
]


@pytest.mark.parametrize("label", T2_FORMS)
def test_resolve_reads_every_form_the_build_reads(mesh, label):
    assert resolve_label(mesh, label) == T2  # the build's reading
    assert mesh.resolve(label) == T2
    assert label in mesh
    assert mesh.name(label) == "Diabetes Mellitus, Type 2"
    assert mesh.tree_numbers(label) == ("C18.452.394.750.149", "C19.246.300")


def test_siml_of_forms_equals_siml_of_uis(mesh):
    forms = [["C18.452.394.750.149", "mesh:d006801"], ["*Insulin Resistance/physiology", "MESH:D003924"]]
    uis = [[T2, HUMANS], [INSULIN_RESISTANCE, T2]]
    assert mesh.label_similarity(*forms) == pytest.approx(mesh.label_similarity(*uis))
    assert mesh.label_similarity(["d003924"], ["D003924Q000188"]) == pytest.approx(1.0)
    assert mesh.similarity_matrix(forms).tolist() == mesh.similarity_matrix(uis).tolist()
    assert (mesh.label_vectors(forms) != mesh.label_vectors(uis)).nnz == 0
    weighted = mesh.label_similarity(*forms, label_weights={"MESH:D006801": 0.0})
    assert weighted == pytest.approx(mesh.label_similarity(*uis, label_weights={HUMANS: 0.0}))
    assert weighted == pytest.approx(mesh.label_similarity([T2], [INSULIN_RESISTANCE, T2]))


@pytest.mark.parametrize("label", ["D999999", "MESH:D999999", "C012345", "-1", "C18", "C99.999.999", "", "no such"])
def test_resolve_refuses_what_the_build_drops(mesh, label):
    assert resolve_label(mesh, label) is None
    assert label not in mesh
    with pytest.raises(KeyError, match=re.escape(repr(label))):
        mesh.resolve(label)


def test_close_matches_name_each_descriptor_once(mesh):
    with pytest.raises(KeyError) as caught:
        mesh.resolve("Diabetes Mellitus, Type 3")  # close to "type 1", "type i" (one descriptor) and "type 2"
    hint = caught.value.args[0].split("; close matches: ")[1]
    assert hint.count("Diabetes Mellitus, Type 1") == 1 and hint.count("Diabetes Mellitus, Type 2") == 1
    assert hint == "Diabetes Mellitus, Type 1, Diabetes Mellitus, Type 2, Latent Autoimmune Diabetes in Adults"


def test_try_resolve_is_the_name_look_up_only(mesh):
    assert [mesh.try_resolve(term) for term in ("D003924", " niddm ", "MESH:D003924", "C18.452.394.750.149")] == [
        T2,
        T2,
        None,
        None,
    ]


def test_a_misspelt_heading_suggests_by_its_descriptor(mesh):
    with pytest.raises(KeyError, match=r"'\*Diabetes Melitus/therapy'.*close matches: Diabetes Mellitus"):
        mesh.resolve("*Diabetes Melitus/therapy")

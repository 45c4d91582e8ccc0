"""The order of a hit's shared MeSH descriptors in the SimL explanation: most specific first, check tags last."""

from __future__ import annotations

from biohicl.search.explain import explain_hits, specific_first
from biohicl.search.index import Hit

# tree depths (segments of the deepest tree number) in the packaged MeSH 2024:
# Humans D006801 B01.050.150.900.649.313.988.400.112.400.400 (11, a check tag), Adolescent D000293 M01.060.057
# (3, a check tag), Diabetes Mellitus D003920 C18.452.394.750 (4), Diabetes Mellitus, Type 2 D003924
# C18.452.394.750.149 (5)
LABELS = ("D000293", "D003920", "D006801", "D003924")  # alphabetical by name: Adolescent, Diabetes..., Humans, Type 2
EXPECTED = ["Diabetes Mellitus, Type 2", "Diabetes Mellitus", "Humans", "Adolescent"]


def test_shared_with_a_query_document_lists_the_disease_before_the_check_tags(mesh):
    query = ["Adolescent", "Diabetes Mellitus", "Humans", "Diabetes Mellitus, Type 2"]  # a PubMedQA-style list
    explanation = explain_hits([Hit("a", 0.9, 1, 0, "A", LABELS)], mesh, query_mesh=query)
    assert explanation.hits[0].shared == EXPECTED
    assert explanation.hits[0].shared[:2] == ["Diabetes Mellitus, Type 2", "Diabetes Mellitus"]


def test_shared_between_hits_lists_the_disease_before_the_check_tags(mesh):
    hits = [Hit("a", 0.9, 1, 0, "A", LABELS), Hit("b", 0.8, 2, 1, "B", LABELS[::-1])]
    explanation = explain_hits(hits, mesh)
    assert [h.shared for h in explanation.hits] == [EXPECTED, EXPECTED]


def test_specific_first_puts_a_deep_check_tag_after_a_shallow_topic(mesh):
    # Humans is 11 deep, Obesity (D009765, C18.654.726.750.500) 5: the check tag still goes last
    assert [mesh.names[u] for u in specific_first(mesh, ["D006801", "D009765"])] == ["Obesity", "Humans"]


def test_the_summary_line_lists_check_tags_after_the_topic_terms_whatever_their_count(mesh):
    # Humans on all three hits, Obesity on two, Adolescent on two: by count alone Humans came first
    hits = [
        Hit("a", 0.9, 1, 0, "A", ("D006801", "D009765", "D000293")),
        Hit("b", 0.8, 2, 1, "B", ("D006801", "D009765", "D000293")),
        Hit("c", 0.7, 3, 2, "C", ("D006801",)),
    ]
    explanation = explain_hits(hits, mesh)
    assert [(t.name, t.count) for t in explanation.shared_terms] == [("Obesity", 2), ("Humans", 3), ("Adolescent", 2)]
    assert explanation.format() == "shared MeSH terms: Obesity (2/3), Humans (3/3), Adolescent (2/3)"
    with_query = explain_hits(hits, mesh, query_mesh=["Humans", "Adolescent", "Obesity"])
    assert [t.name for t in with_query.shared_terms] == ["Obesity", "Humans", "Adolescent"]


# the deepest shared tree nodes: Diabetes Mellitus, Type 2 under C18 (5 deep) and C19 (3), Humans (11) and
# Adolescent (3); Diabetes Mellitus's nodes are ancestors of Type 2's, so not the most specific
COMMON = ["Diabetes Mellitus, Type 2", "Diabetes Mellitus, Type 2", "Humans", "Adolescent"]


def test_common_tree_nodes_with_a_query_document_put_the_check_tags_last(mesh):
    # by depth alone Humans (11 deep) came first on every clinical hit, before the disease the hits share
    query = ["Adolescent", "Diabetes Mellitus", "Humans", "Diabetes Mellitus, Type 2"]
    explanation = explain_hits([Hit("a", 0.9, 1, 0, "A", LABELS)], mesh, query_mesh=query)
    assert explanation.hits[0].common_ancestors == COMMON


def test_common_tree_nodes_between_hits_put_the_check_tags_last(mesh):
    hits = [Hit("a", 0.9, 1, 0, "A", LABELS), Hit("b", 0.8, 2, 1, "B", LABELS[::-1])]
    explanation = explain_hits(hits, mesh)
    assert [h.common_ancestors for h in explanation.hits] == [COMMON, COMMON]


def test_common_tree_nodes_and_shared_terms_list_the_check_tags_in_one_order(mesh):
    # Obesity (C18.654.726.750.500 and C23.888.144.699.500, 5 deep) and Humans (11): the same order in both lists
    hit = Hit("a", 0.9, 1, 0, "A", ("D006801", "D009765"))
    item = explain_hits([hit], mesh, query_mesh=["Humans", "Obesity"]).hits[0]
    assert item.shared == ["Obesity", "Humans"]
    assert item.common_ancestors == ["Obesity", "Obesity", "Humans"]  # one node per tree number


def test_common_tree_nodes_of_equal_depth_follow_the_shared_terms_order(mesh):
    # Multifunctional Enzymes (D064251, D08.811.641) and Neonicotinoids (D000073943, D03.383.464), both 3 deep: by
    # tree number D03 came before D08, the reverse of the shared terms' order by name
    hit = Hit("a", 0.9, 1, 0, "A", ("D064251", "D000073943"))
    item = explain_hits([hit], mesh, query_mesh=["D064251", "D000073943"]).hits[0]
    assert item.shared == ["Multifunctional Enzymes", "Neonicotinoids"]
    assert item.common_ancestors == ["Multifunctional Enzymes", "Neonicotinoids"]

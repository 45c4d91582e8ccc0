"""MeSH hierarchy: hand-checked SimL, ablation switches, lookups, NLM file formats, fast Gram matrix."""

from __future__ import annotations

import gzip
import math
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from biohicl.errors import DataError
from biohicl.mesh.gram import SMALL_GRAM_ROWS, gram_factors, gram_matrix
from biohicl.mesh.hierarchy import MeshHierarchy

DM, T2, HEART = "D003920", "D003924", "D006321"  # Diabetes Mellitus, Diabetes Mellitus Type 2, Heart
DM_NODES = {"C18", "C18.452", "C18.452.394", "C18.452.394.750", "C19", "C19.246"}
T2_NODES = DM_NODES | {"C18.452.394.750.149", "C19.246.300"}
L2, L3, L4, L5, L6 = (math.log(d + 1) for d in range(1, 6))  # node weight log(depth + 1), depth 1..5


def reference_siml(mesh, a, b, ancestors=True, depth_weight=True) -> float:
    """Plain-Python SimL from node sets (the definition, independent of the sparse code)."""
    na, nb = mesh.label_nodes(a, ancestors), mesh.label_nodes(b, ancestors)

    def w(node):
        return math.log(node.count(".") + 2) if depth_weight else 1.0

    if not na or not nb:
        return 0.0
    dot = sum(w(n) ** 2 for n in na & nb)
    return dot / math.sqrt(sum(w(n) ** 2 for n in na) * sum(w(n) ** 2 for n in nb))


# --------------------------------------------------------------------------- hand-checked SimL
def test_node_sets_and_weights_as_written(mesh):
    assert mesh.ancestors(DM) == DM_NODES
    assert mesh.ancestors(T2) == T2_NODES
    row = mesh.label_vectors([[DM]])
    weights = {node: row[0, mesh.node_index[node]] for node in DM_NODES}
    assert row.nnz == 6
    assert weights == pytest.approx(
        {"C18": L2, "C19": L2, "C18.452": L3, "C19.246": L3, "C18.452.394": L4, "C18.452.394.750": L5}
    )


def test_siml_diabetes_vs_type2_by_hand(mesh):
    # shared nodes: C18, C19 (depth 1), C18.452, C19.246 (2), C18.452.394 (3), C18.452.394.750 (4)
    dot = 2 * L2**2 + 2 * L3**2 + L4**2 + L5**2
    # Type 2 adds C18.452.394.750.149 (depth 5) and C19.246.300 (depth 3)
    expected = dot / math.sqrt(dot * (dot + L6**2 + L4**2))
    assert expected == pytest.approx(0.77833, abs=1e-5)
    assert mesh.label_similarity([DM], [T2]) == pytest.approx(expected, abs=1e-9)


def test_ablation_switches_by_hand(mesh):
    # depth_weight=False: 6 shared nodes of 6 and 8 → 6 / sqrt(6 * 8)
    assert mesh.label_similarity([DM], [T2], depth_weight=False) == pytest.approx(6 / math.sqrt(48))
    # ancestors=False: own tree numbers only — {C18.452.394.750, C19.246} vs {…750.149, C19.246.300}: disjoint
    assert mesh.label_similarity([DM], [T2], ancestors=False) == 0.0
    # ancestors=False with a shared own node: {DM, T2} vs {DM}
    own = L5**2 + L3**2  # C18.452.394.750 (depth 4), C19.246 (depth 2)
    expected = own / math.sqrt((own + L6**2 + L4**2) * own)
    assert mesh.label_similarity([DM, T2], [DM], ancestors=False) == pytest.approx(expected)
    assert mesh.label_similarity([DM, T2], [DM], ancestors=False, depth_weight=False) == pytest.approx(
        2 / math.sqrt(4 * 2)
    )


def test_identity_symmetry_disjoint_empty(mesh):
    assert mesh.label_similarity([DM, HEART], [HEART, DM]) == pytest.approx(1.0)
    assert mesh.label_similarity([DM], [HEART]) == 0.0  # C18/C19 vs A07: no shared node
    assert mesh.label_similarity([], [DM]) == 0.0
    assert mesh.label_similarity([DM], []) == 0.0
    assert mesh.label_similarity([], []) == 0.0
    pairs = [([DM, HEART], [T2]), (["D009203"], [T2, "D006801"]), ([HEART], ["D006331", DM])]
    for a, b in pairs:
        assert mesh.label_similarity(a, b) == pytest.approx(mesh.label_similarity(b, a), abs=1e-12)
        assert mesh.label_similarity(a, b) == pytest.approx(reference_siml(mesh, a, b), abs=1e-12)


def test_labels_by_name_and_duplicates(mesh):
    assert mesh.label_similarity(["diabetes mellitus"], ["NIDDM"]) == pytest.approx(mesh.label_similarity([DM], [T2]))
    # a node switched on twice still counts once (multi-hot)
    assert mesh.label_similarity([DM, DM, T2], [T2]) == pytest.approx(1.0)


# --------------------------------------------------------------------------- lookups
def test_resolve_ui_name_entry_term_case_insensitive(mesh):
    assert mesh.resolve(DM) == DM
    assert mesh.resolve("Diabetes Mellitus, Type 2") == T2
    assert mesh.resolve("  diabetes MELLITUS, type 2 ") == T2
    assert mesh.resolve("niddm") == T2  # entry term
    assert mesh.resolve("Hearts") == HEART
    assert mesh.name(T2) == "Diabetes Mellitus, Type 2"
    assert mesh.try_resolve("no such heading") is None
    assert "Heart" in mesh and "no such heading" not in mesh


def test_resolve_unknown_names_close_matches(mesh):
    with pytest.raises(KeyError, match=r"'Diabetes Melitus'.*close matches: Diabetes Mellitus"):
        mesh.resolve("Diabetes Melitus")
    with pytest.raises(KeyError, match="D999999"):
        mesh.resolve("D999999")
    with pytest.raises(KeyError):
        mesh.label_vectors([[DM], ["Diabetes Melitus"]])


def test_depth_tree_numbers_ancestors(mesh):
    assert mesh.depth("C18") == 1
    assert mesh.depth("C18.452.394.750") == 4
    assert mesh.depth("B01.050.150.900.649.313.988.400.112.400.400") == 11
    assert mesh.tree_numbers(DM) == ("C18.452.394.750", "C19.246")
    assert mesh.tree_numbers("D005260") == ()  # Female: outside the tree
    assert mesh.ancestors("D005260") == set()
    assert mesh.label_similarity(["D005260"], ["D005260"]) == 0.0  # no node → empty vector
    assert mesh.version == "2024"
    assert len(mesh) == 30_764
    assert len(mesh.node_index) == sum(len(tns) for tns in mesh.trees.values()) == 64_457  # docs/data.md's count


# --------------------------------------------------------------------------- matrices
def _real_label_sets(data_dir, n=60):
    import json

    with open(data_dir / "pubmedqa" / "ori_pqal.json", encoding="utf-8") as handle:
        items = list(json.load(handle).values())[:n]
    mesh = MeshHierarchy.load()
    return [[u for u in (mesh.try_resolve(x) for x in item["MESHES"]) if u] for item in items]


@pytest.mark.parametrize(("ancestors", "depth_weight"), [(True, True), (False, True), (True, False), (False, False)])
def test_similarity_matrix_equals_pairwise(mesh, data_dir, ancestors, depth_weight):
    docs = [*_real_label_sets(data_dir, 40), [], [DM], [T2], [DM], [HEART], ["D005260"]]
    matrix = mesh.similarity_matrix(docs, ancestors=ancestors, depth_weight=depth_weight)
    assert tuple(matrix.shape) == (len(docs), len(docs))
    assert str(matrix.dtype) == "torch.float32"
    expected = np.array(
        [[reference_siml(mesh, a, b, ancestors, depth_weight) for b in docs] for a in docs], dtype=np.float64
    )
    np.testing.assert_allclose(matrix.numpy(), expected, atol=2e-6)
    assert matrix[len(docs) - 6, 0] == 0.0  # empty label set
    for i, j in [(3, 7), (10, 41), (41, 43)]:
        assert float(matrix[i, j]) == pytest.approx(
            mesh.label_similarity(docs[i], docs[j], ancestors, depth_weight), abs=2e-6
        )


def test_normalized_label_vectors_unit_rows(mesh):
    vectors = mesh.normalized_label_vectors([[DM], [], [T2, HEART]])
    norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, [1.0, 0.0, 1.0])
    assert vectors.has_sorted_indices


@pytest.mark.parametrize("rows", [50, 300])  # 300 > SMALL_GRAM_ROWS: the factored path
def test_gram_matrix_general_sparse_input(rows):
    rng = np.random.default_rng(0)
    dense = (rng.random((rows, 30)) < 0.3) * rng.random((rows, 30))
    dense[:, 5] = dense[:, 4] = (rng.random(rows) < 0.9) * 0.5  # identical support, one value: merged
    dense[:, 6] = (dense[:, 4] > 0) * rng.random(rows)  # same support, different values: never merged
    dense[:, 8] = (rng.random(rows) < 0.05) * 0.25  # a rare shared column: sparse product
    dense[:, 7] = 0.0
    dense[3, 7] = 2.0  # a column in one row only: diagonal only
    vectors = sp.csr_matrix(dense)
    np.testing.assert_allclose(gram_matrix(vectors), dense @ dense.T, rtol=1e-5, atol=1e-5)
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    unit = np.divide(dense, norms, out=np.zeros_like(dense), where=norms > 0)
    np.testing.assert_allclose(gram_matrix(vectors, normalize=True), np.clip(unit @ unit.T, 0, 1), atol=2e-6)


def test_similarity_matrix_large_batch_factored_path(mesh, data_dir):
    docs = [*_real_label_sets(data_dir, 300), [], [DM], [T2]]
    assert len(docs) > SMALL_GRAM_ROWS
    matrix = mesh.similarity_matrix(docs).numpy()
    rng = np.random.default_rng(1)
    for i, j in [*zip(rng.integers(0, len(docs), 400), rng.integers(0, len(docs), 400), strict=True), (301, 302)]:
        assert matrix[i, j] == pytest.approx(reference_siml(mesh, docs[i], docs[j]), abs=2e-6)
    np.testing.assert_array_equal(np.diag(matrix)[:300], 1.0)
    assert matrix[300].max() == 0.0 and matrix[301, 302] == pytest.approx(0.77833, abs=1e-5)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-6)


def test_gram_factors_row_blocks_match_full(mesh, data_dir):
    docs = _real_label_sets(data_dir, 60)
    vectors = mesh.label_vectors(docs)
    factors = gram_factors(vectors, normalize=True, dense_fraction=0.2)
    assert factors.dense.shape[1] > 0 and factors.sparse.nnz > 0  # both paths used
    full = factors.rows(0, len(docs))
    blocks = np.vstack([factors.rows(i, min(i + 7, 60)) for i in range(0, 60, 7)])
    np.testing.assert_allclose(blocks, full, atol=1e-6)  # BLAS kernels differ by shape in the last bit
    np.testing.assert_allclose(full, mesh.similarity_matrix(docs).numpy(), atol=2e-6)


# --------------------------------------------------------------------------- NLM formats
DESC_XML = """<?xml version="1.0"?>
<DescriptorRecordSet LanguageCode="eng">
  <DescriptorRecord DescriptorClass="1">
    <DescriptorUI>D003920</DescriptorUI>
    <DescriptorName><String>Diabetes Mellitus</String></DescriptorName>
    <TreeNumberList><TreeNumber>C18.452.394.750</TreeNumber><TreeNumber>C19.246</TreeNumber></TreeNumberList>
    <ConceptList><Concept PreferredConceptYN="Y"><TermList>
      <Term><String>Diabetes Mellitus</String></Term>
    </TermList></Concept></ConceptList>
  </DescriptorRecord>
  <DescriptorRecord DescriptorClass="1">
    <DescriptorUI>D003924</DescriptorUI>
    <DescriptorName><String>Diabetes Mellitus, Type 2</String></DescriptorName>
    <TreeNumberList>
      <TreeNumber>C18.452.394.750.149</TreeNumber><TreeNumber>C19.246.300</TreeNumber>
    </TreeNumberList>
    <ConceptList><Concept PreferredConceptYN="Y"><TermList>
      <Term><String>Diabetes Mellitus, Type 2</String></Term><Term><String>NIDDM</String></Term>
    </TermList></Concept></ConceptList>
  </DescriptorRecord>
</DescriptorRecordSet>
"""


def _check_tiny(mesh: MeshHierarchy, synonyms: bool = True) -> None:
    assert set(mesh.names) >= {DM, T2}
    assert mesh.tree_numbers(T2) == ("C18.452.394.750.149", "C19.246.300")
    assert mesh.ancestors(T2) == T2_NODES
    if synonyms:
        assert mesh.resolve("niddm") == T2
    assert mesh.label_similarity([DM], [T2]) == pytest.approx(0.77833, abs=1e-5)


@pytest.mark.parametrize("name", ["desc2025.xml", "desc2025.xml.gz"])
def test_load_descriptor_xml(tmp_path, name):
    path = tmp_path / name
    data = DESC_XML.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    mesh = MeshHierarchy.load(path)
    assert mesh.version == "2025" and len(mesh) == 2
    _check_tiny(mesh)


def test_load_descriptor_xml_malformed(tmp_path):
    path = tmp_path / "desc2025.xml"
    path.write_text(DESC_XML[: DESC_XML.index("<DescriptorRecord DescriptorClass", 100)] + "<Descr")
    with pytest.raises(DataError, match=r"desc2025\.xml, record 2: malformed descriptor XML"):
        MeshHierarchy.load(path)


def test_load_mtrees_bin(tmp_path):
    path = tmp_path / "mtrees2025.bin"
    path.write_text(
        "Diabetes Mellitus;C18.452.394.750\nDiabetes Mellitus;C19.246\n"
        "Diabetes Mellitus, Type 2;C18.452.394.750.149\nDiabetes Mellitus, Type 2;C19.246.300\n"
    )
    mesh = MeshHierarchy.load(path)
    assert mesh.version == "2025" and len(mesh) == 2
    _check_tiny(mesh, synonyms=False)
    path.write_text("Diabetes Mellitus;C18.452.394.750\nno separator here\n")
    with pytest.raises(DataError, match=r"mtrees2025\.bin: line 2: expected `name;tree number`"):
        MeshHierarchy.load(path)


def test_mtrees_names_map_through_exact_preferred_names_only(tmp_path, caplog):
    # "Cervical Intraepithelial Neoplasia" (D018290 in MeSH 2017) is only an entry term of D002578 in the packaged
    # 2024 table: it must stay a descriptor of its own, not be folded into D002578; "Fake Disease" is in no table
    path = tmp_path / "mtrees2017.bin"
    path.write_text(
        "Uterine Cervical Dysplasia;C04.834.818\nCervical Intraepithelial Neoplasia;C04.557.470.200.240.250\n"
        "Fake Disease;C99.001\nDiabetes Mellitus;C18.452.394.750\n"
    )
    with caplog.at_level("WARNING", logger="biohicl.mesh.formats"):
        mesh = MeshHierarchy.load(path)
    assert mesh.names == {
        "D002578": "Uterine Cervical Dysplasia",
        "Cervical Intraepithelial Neoplasia": "Cervical Intraepithelial Neoplasia",
        "Fake Disease": "Fake Disease",
        DM: "Diabetes Mellitus",
    }
    assert mesh.trees["D002578"] == ("C04.834.818",)
    assert mesh.trees["Cervical Intraepithelial Neoplasia"] == ("C04.557.470.200.240.250",)
    only_c04 = L2**2 / math.sqrt((L2**2 + L3**2 + L4**2) * sum(math.log(d + 1) ** 2 for d in range(1, 7)))
    assert mesh.label_similarity(["D002578"], ["Cervical Intraepithelial Neoplasia"]) == pytest.approx(only_c04)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: 2 of 4 names are not a preferred name of the packaged MeSH 2024 table and are their own ids "
        "(e.g. 'Cervical Intraepithelial Neoplasia')"
    ]


def test_mtrees_two_names_never_share_an_id(tmp_path, caplog):
    # the name "D003920" is its own id, so Diabetes Mellitus (D003920 in the packaged table) keeps its name as id
    path = tmp_path / "mtrees2025.bin"
    path.write_text("D003920;C01\nDiabetes Mellitus;C18.452.394.750\nDiabetes Mellitus, Type 2;C18.452.394.750.149\n")
    with caplog.at_level("WARNING", logger="biohicl.mesh.formats"):
        mesh = MeshHierarchy.load(path)
    assert mesh.trees == {
        DM: ("C01",),
        "Diabetes Mellitus": ("C18.452.394.750",),
        T2: ("C18.452.394.750.149",),
    }
    assert caplog.records[-1].getMessage() == (
        f"{path}: 1 names would share a descriptor UI with another name of the file and are their own ids "
        "(e.g. 'Diabetes Mellitus')"
    )


def test_load_meshtree_txt(tmp_path):
    path = tmp_path / "2025MeshTree.txt"
    path.write_text(
        "\ufeffTree Number\tDesc Ui\tTerm\n"
        "C18.452.394.750\tD003920\tDiabetes Mellitus\nC19.246\tD003920\tDiabetes Mellitus\n"
        "C18.452.394.750.149\tD003924\tDiabetes Mellitus, Type 2\nC19.246.300\tD003924\tDiabetes Mellitus, Type 2\n",
        encoding="utf-8",
    )
    mesh = MeshHierarchy.load(path)
    assert mesh.version == "2025" and len(mesh) == 2
    _check_tiny(mesh, synonyms=False)


UI_RULE = "must look like D012345 or GO:0008150 (one word: no spaces, `|` or `;`)"
TREE_RULE = "must look like C18.452.394 (a capital letter and 2 digits, then groups of a dot and 3 digits)"
XML_RECORD = "<DescriptorRecord><DescriptorUI>{ui}</DescriptorUI><DescriptorName><String>Breast</String>"
XML_RECORD += "</DescriptorName><TreeNumberList><TreeNumber>{tn}</TreeNumber></TreeNumberList></DescriptorRecord>"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("2019MeshTree.txt", "Tree Number\tDesc Ui\tTerm\nC04\tD009369\tNeoplasms\nC50.9\tD001943\tBreast\n",
         f": line 3: tree number 'C50.9' {TREE_RULE}"),
        ("2019MeshTree.txt", "Tree Number\tDesc Ui\tTerm\nC04\tD009369\tNeoplasms\nC04.588\tD00 1943\tBreast\n",
         f": line 3: descriptor UI 'D00 1943' {UI_RULE}"),
        ("2019MeshTree.txt", "Tree Number\tDesc Ui\tTerm\nC04 D009369 Neoplasms\n",
         ": line 2: expected 3 tab-separated columns (tree number, descriptor UI, term), got 1"),
        ("mesh.tsv", "D009369\tNeoplasms\t\tC04\nBreast cancer\tBreast\t\tC04.588\n",
         f": line 2: descriptor UI 'Breast cancer' {UI_RULE}"),
        ("mesh.tsv", "D009369\tNeoplasms\t\tC04\nD001943\tBreast\t\tC04.588|C50.9\n",
         f": line 2: tree number 'C50.9' {TREE_RULE}"),
        ("mesh.tsv", "D009369\tNeoplasms\tC04\n",
         ": line 1: expected 4 tab-separated columns (descriptor UI, name, entry terms, tree numbers), got 3"),
        ("desc2019.xml", f"<DescriptorRecordSet>{XML_RECORD.format(ui='D00|1943', tn='C04.588')}</DescriptorRecordSet>",
         f", record 1: descriptor UI 'D00|1943' {UI_RULE}"),
        ("desc2019.xml", f"<DescriptorRecordSet>{XML_RECORD.format(ui='D001943', tn='C50.9')}</DescriptorRecordSet>",
         f", record 1: tree number 'C50.9' {TREE_RULE}"),
        ("mtrees2019.bin", "Neoplasms;C04\nBreast;C50.9\n", f": line 2: tree number 'C50.9' {TREE_RULE}"),
        ("mtrees2019.bin", "Neoplasms;C04\nBreast C04.588\n",
         ": line 2: expected `name;tree number`: no `;` in the line"),
    ],
)  # fmt: skip
def test_every_format_names_the_failing_field_and_its_rule(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as err:
        MeshHierarchy.load(path)
    assert str(err.value) == f"{path}{message}"  # a text file's line (": line N"), an XML record (", record N")


def test_a_non_mesh_hierarchy_encoded_by_the_mesh_rules_loads(tmp_path):
    # docs/data.md: the hierarchy's own ids, tree numbers from each node's path; apoptosis has two parents
    path = tmp_path / "go2024MeshTree.txt"
    path.write_text(
        "Tree Number\tDesc Ui\tTerm\nC01\tGO:0008150\tbiological_process\nC01.001\tGO:0008219\tcell death\n"
        "C01.001.001\tGO:0006915\tapoptotic process\nC01.002\tGO:0048519\tnegative regulation\n"
        "C01.002.001\tGO:0006915\tapoptotic process\n"
    )
    mesh = MeshHierarchy.load(path)
    assert mesh.tree_numbers("apoptotic process") == ("C01.001.001", "C01.002.001")
    # apoptosis: C01 (L2), C01.001, C01.002 (L3), two leaves (L4); cell death: C01, C01.001
    expected = (L2**2 + L3**2) / math.sqrt((L2**2 + 2 * L3**2 + 2 * L4**2) * (L2**2 + L3**2))
    assert mesh.label_similarity(["GO:0006915"], ["GO:0008219"]) == pytest.approx(expected, abs=1e-12)


def test_load_missing_file(tmp_path):
    with pytest.raises(DataError, match="MeSH file not found"):
        MeshHierarchy.load(tmp_path / "desc2030.xml")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("mesh.tsv", ""),
        ("mesh.tsv", "# a comment only\n\n"),
        ("2025MeshTree.txt", "Tree Number\tDesc Ui\tTerm\n"),
        ("mtrees2025.bin", "\n"),
        ("desc2025.xml", "<DescriptorRecordSet></DescriptorRecordSet>"),
    ],
)
def test_load_a_file_without_descriptors(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=rf"^\S*{re.escape(name)}: no MeSH descriptors in the file$"):
        MeshHierarchy.load(path)


def test_load_real_2017_meshtree(data_dir):
    path: Path = data_dir / "mesh" / "2017MeshTree.txt"
    mesh = MeshHierarchy.load(path)
    assert mesh.version == "2017"
    assert len(mesh) == 28_470  # PROVENANCE.md: 28,470 unique descriptor UIs
    assert sum(len(t) for t in mesh.trees.values()) == 57_840  # and 57,840 tree-number rows
    assert mesh.tree_numbers(DM) == ("C18.452.394.750", "C19.246")
    assert mesh.label_similarity([DM], [T2]) == pytest.approx(0.77833, abs=1e-5)
    assert mesh.resolve("diabetes mellitus, type 2") == T2


# --------------------------------------------------------------------------- down-weighted descriptors (check tags)
def tiny_tree() -> MeshHierarchy:
    # C01 "Topic" ⊃ C01.001 "Subtopic"; B01.001 "Humans" and B01.002 "Mice" share the parent node B01
    names = {"D1": "Topic", "D2": "Subtopic", "H": "Humans", "M": "Mice"}
    trees = {"D1": ("C01",), "D2": ("C01.001",), "H": ("B01.001",), "M": ("B01.002",)}
    return MeshHierarchy(names=names, trees=trees)


@pytest.mark.parametrize("c", [1.0, 0.5, 0.1, 0.0])
def test_check_tag_weight_siml_by_hand(c):
    mesh = tiny_tree()
    a, b = math.log(2), math.log(3)  # node weights: depth 1 (C01, B01), depth 2 (C01.001, B01.001)
    # p = {Subtopic, Humans}: C01 a, C01.001 b, B01 c·a, B01.001 c·b;  q = {Topic, Humans}: C01 a, B01 c·a, B01.001 c·b
    dot = a**2 + c**2 * a**2 + c**2 * b**2
    p2 = a**2 + b**2 + c**2 * (a**2 + b**2)
    q2 = a**2 + c**2 * (a**2 + b**2)
    expected = dot / math.sqrt(p2 * q2)
    got = mesh.label_similarity(["D2", "H"], ["D1", "H"], label_weights={"H": c})
    assert got == pytest.approx(expected, abs=1e-12)
    matrix = mesh.similarity_matrix([["D2", "H"], ["D1", "H"]], label_weights={"Humans": c})  # names work too
    assert matrix[0, 1].item() == pytest.approx(expected, abs=1e-6)
    if c == 1.0:
        assert got == pytest.approx(mesh.label_similarity(["D2", "H"], ["D1", "H"]), abs=1e-12)
    if c == 0.0:  # weight 0 = dropping the tag
        assert got == pytest.approx(mesh.label_similarity(["D2"], ["D1"]), abs=1e-12)
        assert got == pytest.approx(a / math.sqrt(a**2 + b**2), abs=1e-12)


def test_a_node_shared_with_a_full_weight_label_keeps_its_weight():
    mesh = tiny_tree()
    a, b = math.log(2), math.log(3)
    row = mesh.label_vectors([["H", "M"]], label_weights={"H": 0.5}).toarray()[0]
    values = {node: row[mesh.node_index[node]] for node in ("B01", "B01.001", "B01.002")}
    # B01 is reached by Mice (weight 1) too: max(0.5, 1) = 1; Humans' own node is halved
    assert values == pytest.approx({"B01": a, "B01.001": 0.5 * b, "B01.002": b})
    only_tags = mesh.similarity_matrix([["H"], ["D1"]], label_weights={"H": 0.0})
    assert only_tags[0, 0].item() == 0.0  # only a dropped tag: no label left, so never anyone's negative
    with pytest.raises(ValueError, match="label_weights"):
        mesh.label_vectors([["H"]], label_weights={"H": -1.0})


def test_a_group_with_no_name_in_a_custom_hierarchy_warns_once(caplog):
    from biohicl.mesh.label_groups import check_tag_uis, siml_label_weights

    custom = MeshHierarchy(names={"D900001": "Topic"}, trees={"D900001": ("C01",)}, source="icd2019MeshTree.txt")
    with caplog.at_level("WARNING", logger="biohicl.mesh.label_groups"):
        for _ in range(2):  # training asks twice (train and dev); drop_check_tags asks once more
            assert siml_label_weights(custom, check_tag_weight=0.0, study_design_weight=0.5) is None
        assert check_tag_uis(custom) == set()
        assert siml_label_weights(tiny_tree(), check_tag_weight=0.5) == {"H": 0.5, "M": 0.5}  # Humans, Mice resolve
    assert [r.getMessage() for r in caplog.records] == [
        "none of the 35 study-design names (Retrospective Studies, ...) is in the loaded hierarchy "
        "(icd2019MeshTree.txt): their weight or drop changes nothing",
        "none of the 17 check tag names (Humans, ...) is in the loaded hierarchy (icd2019MeshTree.txt): "
        "their weight or drop changes nothing",
    ]


# --------------------------------------------------------------------------- repr
def test_the_repr_names_the_release_and_counts_not_every_table():
    """The dataclass repr printed every descriptor and tree number (about 3 MB for the packaged table)."""
    mesh = MeshHierarchy.load()
    nodes = len(mesh.node_index)
    assert repr(mesh) == (
        f"MeshHierarchy(version='2024', source='biohicl/resources/mesh2024.tsv.gz', descriptors={len(mesh)}, "
        f"tree_nodes={nodes})"
    )
    assert len(repr(mesh)) < 200 and str(mesh) == repr(mesh)
    assert len(mesh) > 30_000 and nodes > len(mesh)  # counts of the real table
    assert repr(tiny_tree()) == "MeshHierarchy(version='unknown', source='', descriptors=4, tree_nodes=5)"

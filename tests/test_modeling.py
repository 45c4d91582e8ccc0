"""The encoder: pooling by hand, LoRA share, exact adapter round trips, merged export, clear load errors."""

from __future__ import annotations

import json
import os
import re
import warnings

import numpy as np
import pytest
import torch
from conftest import TINY_VOCAB, randomize_lora_b

from biohicl.errors import ConfigError, ModelLoadError
from biohicl.models.config import BioHiCLConfig, default_pooling
from biohicl.models.model import BioHiCL

TEXTS = ["diabetes in the heart", "cancer cells of the brain", "patients and disease", "x"]
HUB_ID = "org/tiny-bert"


@pytest.fixture()
def tiny(tiny_bert_dir) -> BioHiCL:
    return BioHiCL.from_base(str(tiny_bert_dir), hub_id=HUB_ID, max_length=64)


def test_mean_pooling_matches_hand_computation(tiny):
    batch = tiny.tokenize(TEXTS[:2])
    with torch.no_grad():
        states = tiny.backbone(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        expected = (states * mask).sum(1) / mask.sum(1)
        expected = expected / expected.norm(dim=-1, keepdim=True)
        got = tiny(**batch)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert torch.allclose(got.norm(dim=-1), torch.ones(2), atol=1e-6)


def test_cls_pooling_takes_first_token(tiny_bert_dir):
    model = BioHiCL.from_base(str(tiny_bert_dir), hub_id=HUB_ID, pooling="cls")
    batch = model.tokenize(TEXTS[:2])
    with torch.no_grad():
        first = model.backbone(**batch).last_hidden_state[:, 0]
        got = model(**batch)
    torch.testing.assert_close(got, torch.nn.functional.normalize(first, dim=-1))


def test_default_pooling_per_family():
    assert default_pooling("BAAI/bge-base-en-v1.5") == "cls"
    assert default_pooling("sentence-transformers/all-MiniLM-L6-v2") == "mean"
    assert default_pooling("ncbi/MedCPT-Query-Encoder") == "cls"  # MedCPT's encoders are CLS-pooled
    assert default_pooling("/home/bge-user/models/tiny") == "mean"  # by the model's name, not its parent folders


def test_encode_keeps_input_order_and_prompts(tiny):
    full = tiny.encode(TEXTS, batch_size=2, show_progress_bar=False)
    one_by_one = np.stack([tiny.encode(t, show_progress_bar=False) for t in TEXTS])
    assert one_by_one.shape == full.shape == (len(TEXTS), tiny.embedding_dim)  # one string: one [dim] vector
    np.testing.assert_allclose(full, one_by_one, atol=1e-6)
    tiny.config.query_prompt = "the "
    query = tiny.encode(["heart"], kind="query", show_progress_bar=False)
    np.testing.assert_allclose(query, tiny.encode(["the heart"], show_progress_bar=False), atol=1e-6)
    with pytest.raises(ConfigError, match="kind"):
        tiny.encode(["x"], kind="passage")
    with pytest.raises(ConfigError, match="batch_size: 0 is not a positive number of texts"):
        tiny.encode(["x"], batch_size=0)


def test_an_inference_device_this_machine_lacks_is_a_one_line_error(monkeypatch):
    from biohicl.models import onnx_backend

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("biohicl.models.model.load_model", lambda *a, **k: pytest.fail("loaded before the check"))
    with pytest.raises(ConfigError, match="device: 'cuda' asked for, but CUDA sees no GPU on this machine"):
        onnx_backend.load_inference_model("m", device="cuda")
    with pytest.raises(ConfigError, match="device: 'gpu' is not a torch device"):
        onnx_backend.load_inference_model("m", device="gpu")


def test_lora_trains_only_adapter_parameters(tiny, caplog):
    with caplog.at_level("INFO", logger="biohicl.models.model"):
        tiny.add_lora(r=4, alpha=8)
    trainable, total = tiny.trainable_parameters()
    names = [n for n, p in tiny.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    # BERT query+value per layer: 2 layers x 2 modules x (A: 4x32 + B: 32x4)
    assert trainable == 2 * 2 * (4 * 32 + 32 * 4)
    assert f"LoRA r=4: {trainable:,} trainable of {total:,}" in caplog.text


def test_adapter_round_trip_is_exact(tiny, tiny_bert_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModel

    tiny.add_lora(r=4, verbose=False)
    randomize_lora_b(tiny, generator=torch.Generator().manual_seed(0))
    expected = tiny.encode(TEXTS, show_progress_bar=False)
    base_only = BioHiCL.from_base(str(tiny_bert_dir), hub_id=HUB_ID).encode(TEXTS, show_progress_bar=False)
    assert np.abs(expected - base_only).max() > 1e-3  # the adapter really changes the embeddings

    tiny.save_pretrained(tmp_path / "run")
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "biohicl_config.json", "tokenizer.json"} <= files
    assert not any(name.endswith((".bin", ".pt")) for name in files)
    adapter_config = json.loads((tmp_path / "run" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == HUB_ID  # a Hub id, never the local path

    ours = BioHiCL.from_pretrained(tmp_path / "run", base_model_path=tiny_bert_dir)
    np.testing.assert_allclose(ours.encode(TEXTS, show_progress_bar=False), expected, rtol=0, atol=1e-6)

    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(tiny_bert_dir), str(tmp_path / "run"))
    theirs = BioHiCL(peft_model, ours.tokenizer, ours.config)
    np.testing.assert_allclose(theirs.encode(TEXTS, show_progress_bar=False), expected, rtol=0, atol=1e-6)

    merged = BioHiCL.from_pretrained(tmp_path / "run", base_model_path=tiny_bert_dir, merge=True)
    assert not merged.is_peft and merged.config.kind == "merged"
    np.testing.assert_allclose(merged.encode(TEXTS, show_progress_bar=False), expected, atol=1e-5)


def test_merged_export_loads_with_transformers_and_sentence_transformers(tiny, tmp_path):
    from sentence_transformers import SentenceTransformer

    tiny.add_lora(r=4, verbose=False)
    randomize_lora_b(tiny, generator=torch.Generator().manual_seed(1))
    expected = tiny.encode(TEXTS, show_progress_bar=False)
    tiny.save_merged(tmp_path / "merged")
    assert tiny.is_peft  # exporting does not merge the live model
    reloaded = BioHiCL.from_pretrained(tmp_path / "merged")
    np.testing.assert_allclose(reloaded.encode(TEXTS, show_progress_bar=False), expected, atol=1e-5)
    st = SentenceTransformer(str(tmp_path / "merged"), device="cpu")
    np.testing.assert_allclose(st.encode(TEXTS), expected, atol=1e-5)


def test_bf16_encoding_is_close_to_fp32(tiny):
    fp32 = tiny.encode(TEXTS, show_progress_bar=False)
    bf16 = tiny.encode(TEXTS, show_progress_bar=False, dtype=torch.bfloat16)
    assert bf16.dtype == np.float32
    assert 0 < np.abs(fp32 - bf16).max() < 0.05  # the Python API autocasts on CPU too (the CLI keeps float32 there)


def test_adapter_on_wrong_base_fails_clearly(tiny, tmp_path):
    from conftest import build_tiny_bert

    tiny.add_lora(r=4, verbose=False)
    tiny.save_pretrained(tmp_path / "run")
    other = build_tiny_bert(tmp_path / "wide", hidden_size=48)
    with pytest.raises(ModelLoadError, match="hidden size 32"):
        BioHiCL.from_pretrained(tmp_path / "run", base_model_path=other)


def test_adapter_on_the_ffn_down_projection_reloads_exactly_and_a_wrong_base_is_refused(tiny, tiny_bert_dir, tmp_path):
    from conftest import build_tiny_bert
    from peft import LoraConfig

    # output.dense takes the intermediate size (64), not the hidden size (32)
    tiny.add_lora(peft_config=LoraConfig(r=4, target_modules=r".*layer\.\d+\.output\.dense"), verbose=False)
    randomize_lora_b(tiny, generator=torch.Generator().manual_seed(0))
    expected = tiny.encode(TEXTS, convert_to="torch")
    tiny.save_pretrained(tmp_path / "run")
    reloaded = BioHiCL.from_pretrained(tmp_path / "run", base_model_path=tiny_bert_dir)
    assert torch.equal(reloaded.encode(TEXTS, convert_to="torch"), expected)
    other = build_tiny_bert(tmp_path / "wide", hidden_size=48)  # intermediate size 96
    message = r"adapter's LoRA on encoder\.layer\.0\.output\.dense takes 64 inputs, but that module of .* takes 96$"
    with pytest.raises(ModelLoadError, match=message):
        BioHiCL.from_pretrained(tmp_path / "run", base_model_path=other)


def test_pickle_only_weights_are_refused(tmp_path, tiny_bert_dir):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_bert_dir, folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors only"):
        BioHiCL.from_base(str(folder))


def test_missing_model_names_repo_and_revision(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match=r"nobody/missing-model at revision main is not in the .*hf download"):
        BioHiCL.from_base("nobody/missing-model")


def test_config_rejects_unknown_fields_and_bad_values(tmp_path):
    (tmp_path / "biohicl_config.json").write_text(json.dumps({"base_model": "a/b", "poolling": "cls"}))
    with pytest.raises(ConfigError, match="poolling"):
        BioHiCLConfig.from_json_file(tmp_path / "biohicl_config.json")
    with pytest.raises(ConfigError, match="pooling"):
        BioHiCLConfig(base_model="a/b", pooling="max")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"max_length": "256"}, "max_length: expected an integer, got '256'"),
        ({"max_length": None}, "max_length: expected an integer, got None"),
        ({"max_length": True}, "max_length: expected an integer, got True"),
        ({"normalize": "false"}, "normalize: expected true or false, got 'false'"),
        ({"base_model": 5}, "base_model: expected a string, got 5 (quote it)"),
        ({"query_prompt": None}, "query_prompt: expected a string, got None"),
        ({"base_revision": 3}, "base_revision: expected a string or null, got 3 (quote it)"),
    ],
)
def test_config_fields_are_type_checked_naming_the_file(tmp_path, override, message):
    path = tmp_path / "biohicl_config.json"
    path.write_text(json.dumps({"base_model": "a/b", **override}))
    with pytest.raises(ConfigError, match=f"^{re.escape(f'{path}: {message}')}$"):
        BioHiCLConfig.from_json_file(path)
    assert BioHiCLConfig.from_dict({"base_model": "a/b", "max_length": 256, "normalize": False}).normalize is False


@pytest.mark.parametrize("text", ["[]", '"x"', "5"])
def test_a_config_that_is_not_a_json_object_is_refused_naming_the_file(tiny, tiny_bert_dir, tmp_path, text):
    tiny.add_lora(r=2, verbose=False)
    tiny.save_pretrained(tmp_path / "run")
    path = tmp_path / "run" / "biohicl_config.json"
    kind = type(json.loads(text)).__name__
    path.write_text(text)
    with pytest.raises(ModelLoadError, match=f"^{re.escape(str(path))}: expected a JSON object, got {kind}$"):
        BioHiCL.from_pretrained(tmp_path / "run", base_model_path=tiny_bert_dir)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: expected a JSON object, got {kind}$"):
        BioHiCLConfig.from_json_file(path)


def test_max_length_never_exceeds_the_position_embeddings(tiny_bert_dir):
    model = BioHiCL.from_base(str(tiny_bert_dir), hub_id=HUB_ID)  # default 512, tiny BERT has 128 positions
    assert model.config.max_length == 128
    long_text = " ".join(["diabetes"] * 400)
    assert model.encode([long_text], show_progress_bar=False).shape == (1, 32)


def test_config_json_and_activation_checkpointing_switch(tiny_bert_dir):
    """The model owns what transformers.Trainer calls: config.to_json_string and activation_checkpointing_enable."""
    from biohicl.models.config import BioHiCLConfig
    from biohicl.models.model import BioHiCL

    model = BioHiCL.from_base(str(tiny_bert_dir))
    assert BioHiCLConfig.from_dict(json.loads(model.config.to_json_string())) == model.config
    model.add_lora(r=2, verbose=False)
    base = model.backbone.get_base_model()
    assert not base.is_activation_checkpointing
    model.activation_checkpointing_enable(every_n_layers=1)
    assert base.is_activation_checkpointing
    model.train()
    batch = model.tokenize(["insulin and the heart", "brain"])
    embeddings = model(**batch)
    # The cosine of the two texts, not ``embeddings.sum()``: the tiny BERT's mean-pooled LayerNorm output sums to 0
    # over its features, so the sum has an exactly zero gradient and the check rode on rounding noise (it failed
    # whenever an earlier test changed that noise). Frozen embeddings: LoRA still gets gradients through the
    # checkpointed blocks.
    (embeddings[0] @ embeddings[1]).backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]  # B: A gets none while B = 0
    assert grads and all(g is not None and g.abs().sum() > 1e-4 for g in grads)


def _tiny_mpnet(path, tiny_bert_dir):
    """A random 2-layer MPNet (all-mpnet-base-v2's architecture) with the tiny BERT's tokenizer."""
    import shutil

    from transformers import MPNetConfig, MPNetModel

    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=len(TINY_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=130)  # fmt: skip
    MPNetModel(config).save_pretrained(path)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        if (tiny_bert_dir / name).is_file():
            shutil.copy(tiny_bert_dir / name, path / name)
    return path


def test_lora_targets_mpnet_query_value_where_peft_has_no_default(tiny_bert_dir, tmp_path):
    model = BioHiCL.from_base(str(_tiny_mpnet(tmp_path / "mpnet", tiny_bert_dir)), pooling="mean")
    model.add_lora(r=4, verbose=False)
    wrapped = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    # 2 layers × (q, v) × (A: r×32, B: 32×r), and nothing but q and v
    assert len(wrapped) == 2 * 2 * 2 and all(".attn.q.lora_" in n or ".attn.v.lora_" in n for n in wrapped)
    assert model.trainable_parameters()[0] == 2 * 2 * (4 * 32 + 32 * 4)
    assert model.encode(["aspirin and the heart"]).shape == (1, 32)


def test_lora_without_a_known_default_names_the_field_and_the_layers(tiny):
    tiny.backbone.config.model_type = "made_up_encoder"
    with pytest.raises(ConfigError, match=r"lora_target_modules: .*'made_up_encoder'.*query.*value"):
        tiny.add_lora(verbose=False)
    tiny.add_lora(target_modules=["query"], verbose=False)  # naming them works
    assert tiny.is_peft


# ---------------------------------------------------------------------- issue #16: what a save leaves, what a load says
@pytest.fixture()
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_saved_weights_are_readable_by_others_under_umask_022(tiny, tmp_path, umask_022):
    tiny.add_lora(r=4, verbose=False)
    tiny.save_pretrained(tmp_path / "run")
    tiny.save_merged(tmp_path / "merged")
    for folder in (tmp_path / "run", tmp_path / "merged"):
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in folder.iterdir() if p.is_file()}
        assert set(modes.values()) == {"0o644"}, modes  # safetensors alone leaves its weights 0o600


def test_save_leaves_no_peft_card_and_keeps_an_existing_one(tiny, tmp_path):
    tiny.add_lora(r=4, verbose=False)
    tiny.save_pretrained(tmp_path / "run")
    assert not (tmp_path / "run" / "README.md").exists()  # peft's card: base_model = the base's local folder
    card = b"---\nbase_model: org/tiny-bert\n---\n# our card\n"
    (tmp_path / "run" / "README.md").write_bytes(card)
    tiny.save_pretrained(tmp_path / "run")
    assert (tmp_path / "run" / "README.md").read_bytes() == card


def test_wrapping_and_loading_an_adapter_raise_no_future_warning(tiny, tiny_bert_dir, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny.add_lora(r=4, verbose=False)
        tiny.save_pretrained(tmp_path / "run")
        BioHiCL.from_pretrained(tmp_path / "run", base_model_path=tiny_bert_dir, merge=True)
    future = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert not future, future


def test_adapter_records_the_base_it_was_trained_on(tiny, tiny_bert_dir, tmp_path):
    tiny.add_lora(r=4, verbose=False)
    tiny.save_pretrained(tmp_path / "run")
    signature = json.loads((tmp_path / "run" / "biohicl_config.json").read_text())["base_signature"]
    assert signature["hidden_size"] == 32 and signature["num_hidden_layers"] == 2
    assert set(signature["weights"]) == {
        "embeddings.word_embeddings.weight",
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.1.output.dense.weight",
    }
    assert all(len(values) == 16 for values in signature["weights"].values())
    loaded = BioHiCL.from_pretrained(tmp_path / "run", base_model_path=tiny_bert_dir)
    assert loaded.config.base_signature == signature


def test_the_adapter_config_names_the_base_revision_and_add_lora_defaults_to_the_recipe(tiny, tmp_path):
    """peft's adapter_config.json carries the base's revision (so peft alone loads the same base), and add_lora()
    without arguments is docs/training.md's recipe: r 8, alpha 16, dropout 0.1."""
    tiny.add_lora(verbose=False)
    lora = tiny.backbone.peft_config["default"]
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (8, 16, 0.1)
    tiny.config.base_revision = "0123456789abcdef0123456789abcdef01234567"
    tiny.save_pretrained(tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "adapter_config.json").read_text())
    assert saved["revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert (saved["r"], saved["lora_alpha"], saved["lora_dropout"]) == (8, 16, 0.1)
    assert saved["base_model_name_or_path"] == HUB_ID


def test_an_adapter_with_modules_to_save_reloads_onto_its_own_base(tiny, tiny_bert_dir, tmp_path):
    from peft import LoraConfig

    # the sampled last matrix is the one modules_to_save trains: the signature must read the base's original
    config = LoraConfig(r=4, target_modules=["query", "value"], modules_to_save=["encoder.layer.1.output.dense"])
    tiny.add_lora(peft_config=config, verbose=False)
    randomize_lora_b(tiny, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tiny.backbone.base_model.model.encoder.layer[1].output.dense.modules_to_save["default"].weight.add_(0.5)
    expected = tiny.encode(TEXTS, convert_to="torch")
    tiny.save_pretrained(tmp_path / "run")
    assert "encoder.layer.1.output.dense.weight" in tiny.config.base_signature["weights"]
    reloaded = BioHiCL.from_pretrained(tmp_path / "run", base_model_path=tiny_bert_dir)
    assert torch.equal(reloaded.encode(TEXTS, convert_to="torch"), expected)


def test_an_explicit_max_length_is_kept_and_none_takes_the_sentence_transformers_value():
    name = "sentence-transformers/all-MiniLM-L6-v2"  # max_seq_length 256, 512 positions
    assert BioHiCL.from_base(name).config.max_length == 256
    assert BioHiCL.from_base(name, max_length=512).config.max_length == 512


def test_a_sentence_transformers_folder_encodes_with_its_own_prompts(tmp_path, tiny_bert_dir):
    from sentence_transformers import SentenceTransformer

    source = BioHiCL.from_base(str(tiny_bert_dir), hub_id=HUB_ID, query_prompt="query: ", document_prompt="passage: ")
    source.save_merged(tmp_path / "st")
    (tmp_path / "st" / "biohicl_config.json").unlink()  # any sentence-transformers folder with prompts
    model = BioHiCL.from_pretrained(tmp_path / "st")
    assert (model.config.query_prompt, model.config.document_prompt) == ("query: ", "passage: ")
    st = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    np.testing.assert_allclose(model.encode(TEXTS), st.encode(TEXTS), atol=1e-5)
    np.testing.assert_allclose(model.encode(TEXTS, kind="query"), st.encode(TEXTS, prompt_name="query"), atol=1e-5)
    assert BioHiCL.from_base(str(tmp_path / "st"), query_prompt="").config.query_prompt == ""


def test_an_adapter_on_a_merged_model_records_that_model_as_its_base(tiny, tiny_bert_dir, tmp_path):
    tiny.add_lora(r=4, verbose=False)
    randomize_lora_b(tiny, generator=torch.Generator().manual_seed(0))
    tiny.save_merged(tmp_path / "merged")
    merged = BioHiCL.from_pretrained(tmp_path / "merged")
    merged.add_lora(r=4, verbose=False)
    randomize_lora_b(merged, generator=torch.Generator().manual_seed(1))
    expected = merged.encode(TEXTS, convert_to="torch")
    merged.save_pretrained(tmp_path / "run")
    assert merged.config.base_model == str((tmp_path / "merged").resolve())
    assert torch.allclose(BioHiCL.from_pretrained(tmp_path / "run").encode(TEXTS, convert_to="torch"), expected)
    # the merged LoRA changed the query projections: the original base is refused
    with pytest.raises(ModelLoadError, match="query"):
        BioHiCL.from_pretrained(tmp_path / "run", base_model_path=tiny_bert_dir)


def test_a_loaded_model_is_in_eval_mode_and_encoding_keeps_dropout_off(tiny, tiny_bert_dir, tmp_path):
    tiny.save_pretrained(tmp_path / "saved")
    for model in (tiny, BioHiCL.from_pretrained(tmp_path / "saved")):
        assert not model.training and not any(m.training for m in model.modules())
        batch = model.tokenize(TEXTS)
        model.encode(TEXTS, show_progress_bar=False)
        assert not any(m.training for m in model.modules())  # encode's finally turned dropout on before
        with torch.no_grad():
            assert torch.equal(model(**batch), model(**batch))


def test_encode_restores_each_modules_own_mode(tiny):
    tiny.train()
    tiny.backbone.eval()  # a wrapper in train mode over an eval backbone, as from_pretrained returned it before
    tiny.encode(TEXTS, show_progress_bar=False)
    assert tiny.training and not tiny.backbone.training and not any(m.training for m in tiny.backbone.modules())


def test_concurrent_encode_from_four_threads_equals_one_thread(tiny):
    import threading

    texts = [f"patients {i} " * (1 + i % 7) for i in range(64)]
    reference = tiny.encode(texts, batch_size=4, show_progress_bar=False)
    out: dict[int, np.ndarray] = {}

    def run(k: int) -> None:
        out[k] = tiny.encode(texts, batch_size=4, show_progress_bar=False)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k in range(4):
        np.testing.assert_array_equal(out[k], reference)


def test_max_seq_length_reads_and_sets_the_max_length(tiny, tiny_bert_dir):
    text = ["patients and disease " * 5]
    assert tiny.max_seq_length == 64
    tiny.max_seq_length = 8  # a plain attribute before: encode kept the old length
    assert tiny.max_seq_length == tiny.config.max_length == 8
    reference = BioHiCL.from_base(str(tiny_bert_dir), hub_id=HUB_ID, max_length=64)
    reference.set_max_length(8)
    np.testing.assert_array_equal(tiny.encode(text), reference.encode(text))
    assert np.abs(tiny.encode(text) - BioHiCL.from_base(str(tiny_bert_dir), max_length=64).encode(text)).max() > 1e-3
    with pytest.raises(ConfigError, match="max_length: 0 is not between 1 and 128"):
        tiny.max_seq_length = 0


@pytest.mark.parametrize(
    ("texts", "name"),
    [({"a": 1, "b": 2}, "dict"), (b"abc", "bytes"), (None, "NoneType"), (bytearray(b"ab"), "bytearray")],
)
def test_encode_refuses_what_would_iterate_as_something_else(tiny, capsys, texts, name):
    message = f"^encode: texts is {name}, not a str or an iterable of str$"
    with pytest.raises(ConfigError, match=message):  # a dict embedded its keys, bytes said "got int"
        tiny.encode(texts, show_progress_bar=True)
    assert "Encoding" not in capsys.readouterr().err  # refused before the progress bar is drawn
    with pytest.raises(ConfigError, match=message.replace("encode", "iter_encode", 1)):
        next(tiny.iter_encode(texts))


def test_iter_encode_takes_a_single_string_as_one_text_as_encode_does(tiny):
    chunks = list(tiny.iter_encode("hello", show_progress_bar=False))  # one embedding per character before
    assert [tuple(c.shape) for c in chunks] == [(1, tiny.embedding_dim)]
    np.testing.assert_array_equal(chunks[0][0].numpy(), tiny.encode("hello"))


def test_kind_and_convert_to_are_checked_before_the_texts(tiny):
    with pytest.raises(ConfigError, match=r"^kind: 'passage' is not `query` or `document`$"):
        tiny.encode([], kind="passage")  # returned (0, dim) before
    with pytest.raises(ConfigError, match=r"^kind: 'passage'"):
        next(tiny.iter_encode([], kind="passage"))
    with pytest.raises(ConfigError, match=r"^convert_to: 'list' is not `numpy` or `torch`$"):
        tiny.encode(None, convert_to="list")
    assert tiny.encode([]).shape == (0, tiny.embedding_dim)


def test_repr_names_what_decides_the_embeddings_and_the_api_has_docstrings(tiny):
    tiny.config.query_prompt = "query: "
    text = repr(tiny)
    assert text == (
        "BioHiCL(base='org/tiny-bert', kind='full', pooling='mean', max_length=64, query_prompt='query: ', "
        "document_prompt='', normalize=True, lora=False, dim=32, device=cpu)"
    )  # a 43-line module tree before, without any of these
    tiny.add_lora(r=2, verbose=False)
    assert "kind='adapter'" in repr(tiny) and "lora=True" in repr(tiny)
    assert "backbone" in BioHiCL.__init__.__doc__
    for name in ("device", "embedding_dim", "is_peft", "max_seq_length"):
        assert getattr(BioHiCL, name).__doc__, name


def test_an_adapter_folder_as_a_base_is_its_merged_model_and_a_new_adapter_over_it_reloads(tiny_bert_dir, tmp_path):
    first = BioHiCL.from_base(str(tiny_bert_dir), pooling="cls", max_length=48)
    first.add_lora(r=4, verbose=False)
    randomize_lora_b(first, generator=torch.Generator().manual_seed(2))
    expected = first.encode(TEXTS, show_progress_bar=False)
    first.save_pretrained(tmp_path / "first")

    base = BioHiCL.from_base(str(tmp_path / "first"))  # e.g. `biohicl train --base_model runs/first`
    assert not base.is_peft and base.config.kind == "full" and base.config.base_model == str(tmp_path / "first")
    assert (base.config.pooling, base.config.max_length) == ("cls", 48)  # it encodes as the adapter was saved
    assert not [name for name, _ in base.named_parameters() if "lora" in name]  # merged, not an adapter inside
    np.testing.assert_allclose(base.encode(TEXTS, show_progress_bar=False), expected, rtol=0, atol=1e-5)

    base.add_lora(r=4, verbose=False)
    assert base.trainable_parameters()[0] == first.trainable_parameters()[0]  # one adapter, not two stacked
    # a new adapter starts from the first one's model (it used to re-initialise the first adapter: the original base)
    np.testing.assert_allclose(base.encode(TEXTS, show_progress_bar=False), expected, rtol=0, atol=1e-5)
    randomize_lora_b(base, generator=torch.Generator().manual_seed(3))
    second = base.encode(TEXTS, show_progress_bar=False)
    assert np.abs(second - expected).max() > 1e-3
    base.save_pretrained(tmp_path / "second")
    reloaded = BioHiCL.from_pretrained(tmp_path / "second")  # its base, the first adapter, merged the same way
    np.testing.assert_array_equal(reloaded.encode(TEXTS, show_progress_bar=False), second)


def test_a_plain_peft_adapter_folder_as_a_base_is_its_merged_model_and_a_new_adapter_trains_on_it(
    tiny_bert_dir, tmp_path
):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    # an adapter saved by peft alone (no biohicl_config.json, no config.json, no tokenizer), as on the Hub
    peft_model = get_peft_model(
        AutoModel.from_pretrained(tiny_bert_dir), LoraConfig(r=4, target_modules=["query", "value"])
    )
    randomize_lora_b(peft_model, generator=torch.Generator().manual_seed(2))
    peft_model.save_pretrained(tmp_path / "plain")
    assert sorted(p.name for p in (tmp_path / "plain").glob("*.json")) == ["adapter_config.json"]
    peft_model.merge_and_unload().save_pretrained(tmp_path / "merged")  # peft's own merge, as the expected model
    for name in ("vocab.txt", "tokenizer_config.json"):
        (tmp_path / "merged" / name).write_bytes((tiny_bert_dir / name).read_bytes())
    expected = BioHiCL.from_base(str(tmp_path / "merged"), pooling="mean").encode(TEXTS, show_progress_bar=False)
    original = BioHiCL.from_base(str(tiny_bert_dir), pooling="mean").encode(TEXTS, show_progress_bar=False)
    assert np.abs(expected - original).max() > 1e-3  # the adapter changes the embeddings

    base = BioHiCL.from_base(str(tmp_path / "plain"))
    assert base.config.pooling == BioHiCL.from_base(str(tiny_bert_dir)).config.pooling  # no ST files: the base's
    base.config.pooling = "mean"
    assert not [name for name, _ in base.named_parameters() if "lora" in name]  # merged, not an adapter inside
    np.testing.assert_allclose(base.encode(TEXTS, show_progress_bar=False), expected, rtol=0, atol=1e-5)
    base.add_lora(r=4, verbose=False)
    # the new adapter starts from the adapted model (transformers' attached `default` adapter was re-initialised)
    np.testing.assert_allclose(base.encode(TEXTS, show_progress_bar=False), expected, rtol=0, atol=1e-5)
    randomize_lora_b(base, generator=torch.Generator().manual_seed(3))
    second = base.encode(TEXTS, show_progress_bar=False)
    base.save_pretrained(tmp_path / "second")
    reloaded = BioHiCL.from_pretrained(tmp_path / "second")  # its recorded base, the plain adapter, merged again
    np.testing.assert_array_equal(reloaded.encode(TEXTS, show_progress_bar=False), second)

    # with sentence-transformers files of its own, the adapter folder's settings are those, not the base's
    pooling = "cls" if BioHiCL.from_base(str(tiny_bert_dir)).config.pooling == "mean" else "mean"
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    (tmp_path / "plain" / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "plain" / "1_Pooling").mkdir()
    (tmp_path / "plain" / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": pooling}))
    assert BioHiCL.from_base(str(tmp_path / "plain")).config.pooling == pooling


def test_a_plain_peft_adapter_whose_base_is_missing_is_one_line_naming_its_config_and_the_base(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "gone")}))
    with pytest.raises(ModelLoadError) as err:
        BioHiCL.from_base(str(folder))
    message = str(err.value)
    assert "\n" not in message and str(folder / "adapter_config.json") in message
    assert repr(str(tmp_path / "gone")) in message


def test_a_plain_peft_adapter_over_another_plain_adapter_is_one_line_naming_both_not_a_recursion(
    tiny_bert_dir, tmp_path
):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    peft_model = get_peft_model(
        AutoModel.from_pretrained(tiny_bert_dir), LoraConfig(r=2, target_modules=["query", "value"])
    )
    for name in ("adA", "adB"):
        peft_model.save_pretrained(tmp_path / name)
    for name, other in (("adA", "adB"), ("adB", "adA")):  # each names the other as its base: a cycle
        config_file = tmp_path / name / "adapter_config.json"
        config = json.loads(config_file.read_text())
        config["base_model_name_or_path"] = str(tmp_path / other)
        config_file.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError) as err:
        BioHiCL.from_base(str(tmp_path / "adA"))
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "adA" / "adapter_config.json") in message
    assert repr(str(tmp_path / "adB")) in message and "plain peft adapter" in message


def test_biohicl_adapters_that_are_each_others_base_are_one_line_naming_the_loop(tiny_bert_dir, tmp_path):
    """Each adapter folder loads its base merged, so two whose biohicl_config.json name each other as the base
    recursed until Python gave up; the loop is named instead."""
    for name in ("a", "b"):
        model = BioHiCL.from_base(str(tiny_bert_dir))
        model.add_lora(r=4, verbose=False)
        model.save_pretrained(tmp_path / name)
    for name, other in (("a", "b"), ("b", "a")):
        path = tmp_path / name / "biohicl_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "base_model": str(tmp_path / other)}))
    loop = f"{tmp_path / 'b'} → {tmp_path / 'a'} → {tmp_path / 'b'}"
    with pytest.raises(ModelLoadError, match=re.escape(f"the adapters' bases form a loop ({loop})")) as error:
        BioHiCL.from_pretrained(tmp_path / "a")
    assert "\n" not in str(error.value)
    assert BioHiCL.from_pretrained(tmp_path / "a", base_model_path=tiny_bert_dir, force_base=True).is_peft  # unharmed

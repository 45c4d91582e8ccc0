"""Encoder families besides BERT, as tiny random models with their own tokenizers: DistilBERT (its width is
``dim``, its attention ``q_lin``/``v_lin``), ModernBERT (one fused ``Wqkv`` projection) and XLM-R (peft has LoRA
but no IA3 defaults for it). The merged export loads in sentence-transformers and encodes as biohicl does; LoRA-like
methods get biohicl's built-in targets where peft has none; a method with no default names the field to set."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_VOCAB, randomize_lora_b

from biohicl.errors import ConfigError, ModelLoadError

TEXTS = ["the cancer of patients", "heart disease in the brain", "cells"]
#: every family's size: 2 layers of width 32
SIZES = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def build_distilbert(path: Path) -> Path:
    """A tiny random DistilBERT with the tests' character-level WordPiece vocabulary."""
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    DistilBertTokenizer(vocab=str(path / "vocab.txt"), do_lower_case=True).save_pretrained(path)
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=len(TINY_VOCAB), dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=128
    )
    DistilBertModel(config).save_pretrained(path)
    return path


def build_modernbert(path: Path) -> Path:
    """A tiny random ModernBERT with a byte-level BPE tokenizer (no merges: one token per byte)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import ModernBertConfig, ModernBertModel, PreTrainedTokenizerFast

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    vocab = {token: i for i, token in enumerate(specials)}
    for char in sorted(set(pre_tokenizers.ByteLevel.alphabet())):
        vocab[char] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "attention_mask"],
    )
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = ModernBertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        max_position_embeddings=128,
        pad_token_id=3,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
        local_attention=16,
        global_attn_every_n_layers=2,
        **SIZES,
    )
    ModernBertModel(config).save_pretrained(path)
    return path


def build_xlmr(path: Path, model_class: str = "XLMRobertaModel") -> Path:
    """A tiny random XLM-R (or ``model_class`` of its shape, e.g. ``CamembertModel``) with a unigram tokenizer."""
    import transformers

    words = ["the", "of", "and", "in", "cancer", "cell", "cells", "patients", "disease", "heart", "brain"]
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [("▁" + w, -2.0) for w in words]
    vocab += [("▁", -3.0)] + [(c, -5.0) for c in string.ascii_lowercase + string.digits] + [("<mask>", 0.0)]
    transformers.XLMRobertaTokenizer(vocab=vocab).save_pretrained(path)
    torch.manual_seed(0)
    config_class = getattr(transformers, model_class.replace("Model", "Config"))
    config = config_class(
        vocab_size=len(vocab),
        hidden_size=32,
        max_position_embeddings=130,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
        **SIZES,
    )
    getattr(transformers, model_class)(config).save_pretrained(path)
    return path


BUILDERS = {"distilbert": build_distilbert, "modernbert": build_modernbert, "xlmr": build_xlmr}


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory):
    """``family_dir(name)``: the folder of a tiny model of that family, built once per module."""
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = BUILDERS[name](tmp_path_factory.mktemp(name))
        return built[name]

    return get


def load(folder: Path):
    from biohicl import BioHiCL

    return BioHiCL.from_base(str(folder), pooling="mean")


def wrapped_names(model) -> set[str]:
    """The last name segment of each module the adapter wrapped."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {name.rsplit(".", 1)[-1] for name, m in model.backbone.named_modules() if isinstance(m, BaseTunerLayer)}


def one_step(model) -> None:
    """One SGD step on a loss pulling the first two texts' embeddings together; each wrapped layer must get a nonzero
    gradient in one of its adapter weights (on the first step only the factor peft starts at zero gets one: LoRA's
    B), so every one is on the embedding's path."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    embeddings = model(**model.tokenize(TEXTS))
    (-(embeddings[0] * embeddings[1]).sum()).backward()
    layers = {name: m for name, m in model.backbone.named_modules() if isinstance(m, BaseTunerLayer)}
    assert layers
    no_gradient = [
        name
        for name, layer in layers.items()
        if not any(p.grad is not None and p.grad.any() for p in layer.parameters() if p.requires_grad)
    ]
    assert not no_gradient, no_gradient
    optimizer.step()
    model.eval()


# ------------------------------------------------------------------------------------------- merged export
@pytest.mark.parametrize(("family", "width_field"), [("distilbert", "dim"), ("modernbert", "hidden_size")])
def test_a_merged_export_loads_in_sentence_transformers_as_biohicl_encodes(family_dir, tmp_path, family, width_field):
    from sentence_transformers import SentenceTransformer

    folder = family_dir(family)
    assert json.loads((folder / "config.json").read_text())[width_field] == 32  # DistilBERT has no hidden_size
    model = load(folder)
    model.add_lora(verbose=False)
    randomize_lora_b(model, generator=torch.Generator().manual_seed(1))  # a merge that changes the weights
    model.save_merged(tmp_path / "merged")
    pooling = json.loads((tmp_path / "merged" / "1_Pooling" / "config.json").read_text())
    assert pooling["word_embedding_dimension"] == 32
    expected = np.asarray(model.encode(TEXTS))
    loaded = SentenceTransformer(str(tmp_path / "merged"), device="cpu").encode(TEXTS)
    assert loaded.shape == (3, 32)
    np.testing.assert_allclose(loaded, expected, atol=1e-5)


@pytest.mark.parametrize(
    "values",
    [{"model_type": "bert", "hidden_size": None}, {"model_type": "an-unknown-encoder", "d_model": 32}],
)
def test_a_folder_whose_config_gives_no_width_is_refused_in_one_line(tmp_path, values):
    from biohicl.models.config import BioHiCLConfig
    from biohicl.models.export import write_sentence_transformers_files

    (tmp_path / "config.json").write_text(json.dumps(values))
    with pytest.raises(ModelLoadError) as err:
        write_sentence_transformers_files(tmp_path, BioHiCLConfig(base_model="b"))
    assert str(err.value) == (
        f"{tmp_path / 'config.json'}: gives no embedding width (hidden_size, or its family's name for it), which "
        "sentence-transformers' pooling config needs; got None"
    )
    assert not (tmp_path / "modules.json").exists()  # refused before any file is written


def test_a_config_transformers_does_not_know_gives_its_own_hidden_size(tmp_path):
    from biohicl.models.export import folder_hidden_size

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "an-unknown-encoder", "hidden_size": 48}))
    assert folder_hidden_size(tmp_path) == 48


# ------------------------------------------------------------------------------------------- built-in targets
@pytest.mark.parametrize(("family", "targets"), [("distilbert", {"q_lin", "v_lin"}), ("modernbert", {"Wqkv"})])
def test_lora_wraps_the_built_in_targets_and_every_lora_b_trains(family_dir, family, targets):
    model = load(family_dir(family))
    model.add_lora(verbose=False)
    assert wrapped_names(model) == targets
    lora_b = {name: p for name, p in model.backbone.named_parameters() if "lora_B" in name}
    assert len(lora_b) == 2 * len(targets)  # each target in each of the 2 layers
    assert all(float(p.abs().sum()) == 0 for p in lora_b.values())  # peft starts B at zero
    one_step(model)
    assert all(float(p.abs().sum()) > 0 for p in lora_b.values()), [n for n, p in lora_b.items() if not p.any()]


def _peft(name: str, **kwargs):
    import peft

    return getattr(peft, name)(**kwargs)


@pytest.mark.parametrize("family", ["distilbert", "modernbert"])
@pytest.mark.parametrize(
    ("config", "kwargs"),
    [("LoraConfig", {"r": 4, "lora_alpha": 8, "use_dora": True}), ("LoHaConfig", {"r": 4}), ("LoKrConfig", {"r": 4})],
)
def test_each_lora_like_method_gets_the_built_in_targets_and_trains(family_dir, family, config, kwargs):
    from biohicl.models.lora_targets import EXTRA_LORA_TARGET_MODULES

    model = load(family_dir(family))
    before = np.asarray(model.encode(TEXTS))
    model.add_lora(peft_config=_peft(config, **kwargs), verbose=False)
    assert wrapped_names(model) == set(EXTRA_LORA_TARGET_MODULES[family])
    one_step(model)
    assert np.abs(np.asarray(model.encode(TEXTS)) - before).max() > 0  # the step changed the model


@pytest.mark.parametrize("config", ["LoHaConfig", "LoKrConfig"])
def test_loha_and_lokr_get_lora_s_targets_where_peft_has_no_table_for_them(family_dir, tiny_bert_dir, config):
    """peft 0.12 (constraints-min.txt) has no LoHa/LoKr table: before, no target came back and peft raised its bare
    "Please specify `target_modules` in `peft_config`", on BERT as on DistilBERT. A recent peft's tables are LoRA's."""
    from biohicl.models import lora_targets

    table = lora_targets.peft_default_table
    assert table(config[:4].upper()) in (None, table("LORA"))  # what biohicl stands in for, where peft has one
    loaded = {"bert": load(tiny_bert_dir).backbone, "distilbert": load(family_dir("distilbert")).backbone}
    with pytest.MonkeyPatch.context() as patch:  # a peft without the method's table, whichever peft this is
        patch.setattr(lora_targets, "peft_default_table", lambda method: None if method != "LORA" else table(method))
        targets = {kind: lora_targets.default_target_modules(m, _peft(config, r=4)) for kind, m in loaded.items()}
    assert targets == {"bert": ["query", "value"], "distilbert": ["q_lin", "v_lin"]}
    model = load(tiny_bert_dir)
    model.add_lora(peft_config=_peft(config, r=4), verbose=False)  # this venv's peft, with or without a table
    assert wrapped_names(model) == {"query", "value"}
    one_step(model)


# ------------------------------------------------------------------------------------------- no default
@pytest.mark.parametrize(
    ("family", "config", "kwargs", "expected"),
    [
        ("xlmr", "IA3Config", {},
         "peft_config: target_modules is unset and peft has no IA3 default for model type 'xlm-roberta'; set "
         "target_modules to the modules to adapt (this model's linear layers: dense, key, query, value)"),
        ("distilbert", "IA3Config", {},
         "peft_config: target_modules is unset and peft has no IA3 default for model type 'distilbert'; set "
         "target_modules to the modules to adapt (this model's linear layers: k_lin, lin1, lin2, out_lin, q_lin, "
         "v_lin)"),
        ("xlmr", "IA3Config", {"target_modules": ["key", "value"]},
         "peft_config: feedforward_modules is unset and peft has no IA3 default for model type 'xlm-roberta'; set it "
         "to those of target_modules that are feed-forward layers (IA3 scales their input, the others' output), or "
         "[] for none"),
        # a LoRA-like method whose peft table has no XLM-R entry (LoRA's has one) and that biohicl has none for
        ("xlmr", "AdaLoraConfig", {"total_step": 10},
         "peft_config: target_modules is unset and peft has no ADALORA default for model type 'xlm-roberta'; set "
         "target_modules to the modules to adapt (this model's linear layers: dense, key, query, value)"),
        ("distilbert", "LoHaConfig", {}, None),  # biohicl's default: q_lin, v_lin
        ("xlmr", "IA3Config", {"target_modules": ["key", "value"], "feedforward_modules": []}, None),
    ],
)  # fmt: skip
def test_a_peft_config_without_targets_names_peft_config_or_trains(family_dir, family, config, kwargs, expected):
    model = load(family_dir(family))
    before = np.asarray(model.encode(TEXTS))
    if expected is not None:
        with pytest.raises(ConfigError) as err:
            model.add_lora(peft_config=_peft(config, **kwargs), verbose=False)
        assert str(err.value) == expected
        assert not model.is_peft
        return
    model.add_lora(peft_config=_peft(config, **kwargs), verbose=False)
    one_step(model)
    assert np.abs(np.asarray(model.encode(TEXTS)) - before).max() > 0  # the step changed the model


def test_lora_settings_on_a_model_type_no_one_has_a_default_for_name_lora_target_modules(tmp_path):
    model = load(build_xlmr(tmp_path / "camembert", "CamembertModel"))
    with pytest.raises(ConfigError) as err:
        model.add_lora(verbose=False)
    assert str(err.value) == (
        "lora_target_modules: peft has no default for model type 'camembert'; name the attention projections to "
        "adapt (this model's linear layers: dense, key, query, value)"
    )


@pytest.mark.parametrize(
    ("family", "target", "expected"),
    [
        ("distilbert", "attention",
         "'attention' names a DistilBertSelfAttention, not a linear layer; its linear modules: q_lin, k_lin, v_lin, "
         "out_lin"),
        ("modernbert", "layers", "'layers' names a ModuleList, not a linear layer; its linear modules: Wqkv, Wo, Wi"),
        ("distilbert", "embeddings",
         "'embeddings' names an Embeddings, not a linear layer; it holds no linear layer (the model's linear "
         "modules: q_lin, k_lin, v_lin, out_lin, lin1, lin2)"),
    ],
)  # fmt: skip
def test_a_target_that_is_no_linear_layer_names_its_type_and_linear_modules(family_dir, family, target, expected):
    model = load(family_dir(family))
    with pytest.raises(ConfigError) as err:
        model.add_lora(target_modules=[target], verbose=False)
    assert str(err.value) == f"lora_target_modules: {expected}"
    model = load(family_dir(family))
    with pytest.raises(ConfigError) as err:  # a LoHa config: peft raises another error (TypeError), same line
        model.add_lora(peft_config=_peft("LoHaConfig", target_modules=[target]), verbose=False)
    assert str(err.value) == f"peft_config: target_modules: {expected}"

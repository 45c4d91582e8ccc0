"""The tokens a backbone can encode: BERT-style models all their positions, RoBERTa-style ones (positions numbered
from padding_idx + 1) two fewer; from_base, max_tokens and the demo's evaluation length cap at that."""

from __future__ import annotations

import importlib
import logging
import shutil

import pytest
import torch
from conftest import TINY_VOCAB

from biohicl.errors import ConfigError
from biohicl.models.model import BioHiCL
from biohicl.models.positions import PADDING_OFFSET_TYPES, fit_to_base, usable_positions

POSITIONS = 130  # the tiny MPNet's and RoBERTa's position table; usable: 130 - (padding_idx 1 + 1) = 128
LONG_TEXT = " ".join(["diabetes"] * 400)  # 3,200 characters: far more tokens than any tiny model takes


def _tiny_offset_model(kind: str, path, tiny_bert_dir):
    """A random 2-layer MPNet or RoBERTa with 130 positions and the tiny BERT's tokenizer."""
    from transformers import MPNetConfig, MPNetModel, RobertaConfig, RobertaModel

    config_class, model_class = {"mpnet": (MPNetConfig, MPNetModel), "roberta": (RobertaConfig, RobertaModel)}[kind]
    torch.manual_seed(0)
    config = config_class(vocab_size=len(TINY_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=POSITIONS)  # fmt: skip
    model_class(config).save_pretrained(path)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        if (tiny_bert_dir / name).is_file():
            shutil.copy(tiny_bert_dir / name, path / name)
    return path


@pytest.fixture(params=["mpnet", "roberta"])
def offset_dir(request, tiny_bert_dir, tmp_path):
    return _tiny_offset_model(request.param, tmp_path / request.param, tiny_bert_dir)


def test_usable_positions_by_hand(tiny_bert_dir):
    from transformers import AutoConfig, MPNetConfig, RobertaConfig

    assert usable_positions(AutoConfig.from_pretrained(tiny_bert_dir)) == 128  # BERT: positions 0..127
    assert usable_positions(RobertaConfig(max_position_embeddings=514)) == 512  # pad 1: tokens at 2..513
    assert usable_positions(RobertaConfig(max_position_embeddings=514, pad_token_id=0)) == 513  # tokens at 1..513
    assert usable_positions(MPNetConfig(max_position_embeddings=514, pad_token_id=0)) == 512  # MPNet fixes pad 1
    # a config.json read as a dict: all-mpnet-base-v2's, xlm-roberta-base's, all-MiniLM-L6-v2's (BERT)
    assert usable_positions({"model_type": "mpnet", "max_position_embeddings": 514, "pad_token_id": 1}) == 512
    assert usable_positions({"model_type": "xlm-roberta", "max_position_embeddings": 514, "pad_token_id": 1}) == 512
    assert usable_positions({"model_type": "bert", "max_position_embeddings": 512, "pad_token_id": 0}) == 512
    assert usable_positions({"model_type": "bert"}) is None
    assert usable_positions({"model_type": "roberta", "max_position_embeddings": True}) is None


def test_offset_types_are_the_ones_transformers_numbers_from_padding_idx_plus_one():
    """Each listed type's embeddings call create_position_ids_from_input_ids; BERT-style ones do not."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    def numbers_from_padding(model_type: str) -> bool:
        module = importlib.import_module(
            getattr(importlib.import_module("transformers"), MODEL_MAPPING_NAMES[model_type]).__module__
        )
        holders = [module] + [value for value in vars(module).values() if isinstance(value, type)]
        return any(hasattr(holder, "create_position_ids_from_input_ids") for holder in holders)  # or a staticmethod

    assert all(numbers_from_padding(t) for t in sorted(PADDING_OFFSET_TYPES))
    assert not any(numbers_from_padding(t) for t in ("bert", "distilbert", "electra", "deberta-v2"))


def test_from_base_caps_a_roberta_style_length_at_what_it_encodes(offset_dir):
    """Capped at max_position_embeddings (130) before the fix, a 130-token text failed (IndexError, RuntimeError)."""
    model = BioHiCL.from_base(str(offset_dir), max_length=1000, pooling="mean")
    assert model.config.max_length == model.max_tokens == 128
    assert model.tokenize([LONG_TEXT])["input_ids"].shape == (1, 128)
    assert model.encode([LONG_TEXT], show_progress_bar=False).shape == (1, 32)
    ids = torch.full((1, 129), 10)  # one token more: position id 130 is past the table
    with pytest.raises((IndexError, RuntimeError)):  # MPNet: index out of range; RoBERTa: gather out of bounds
        model.backbone(input_ids=ids, attention_mask=torch.ones_like(ids))
    with pytest.raises(ConfigError, match=r"max_length: 129 is not between 1 and 128"):
        model.set_max_length(129)


def test_from_base_keeps_a_bert_length_at_all_its_positions(tiny_bert_dir):
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=1000)
    assert model.config.max_length == model.max_tokens == 128
    assert model.encode([LONG_TEXT], show_progress_bar=False).shape == (1, 32)


def test_from_base_logs_a_given_length_it_cuts(offset_dir, tiny_bert_dir, caplog):
    """The demo's line (fit_to_base) for a max_length given to from_base; the 512 fallback a 128-position model cannot
    take is its length, not a choice someone made, so cutting it says nothing."""
    with caplog.at_level(logging.INFO, logger="biohicl.models.positions"):
        assert BioHiCL.from_base(str(offset_dir), max_length=1000).config.max_length == 128
    cuts = [r.getMessage() for r in caplog.records if r.name == "biohicl.models.positions"]  # not the pooling guess
    assert cuts == [f"max length 1000 capped at 128, the most tokens {offset_dir.resolve()} can encode"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="biohicl.models.positions"):
        assert BioHiCL.from_base(str(offset_dir)).config.max_length == 128  # the 512 fallback
        assert BioHiCL.from_base(str(offset_dir), max_length=128).config.max_length == 128
        assert BioHiCL.from_base(str(tiny_bert_dir), max_length=100).config.max_length == 100
    assert not [r for r in caplog.records if r.name == "biohicl.models.positions"]


def test_a_run_saved_with_a_length_over_the_positions_loads_capped(offset_dir, tmp_path, caplog):
    """A run saved before the cap knew RoBERTa-style offsets (514 for all-mpnet-base-v2 at --max_length 1024; here
    130): from_pretrained used it as written and a long text failed (IndexError)."""
    import json

    model = BioHiCL.from_base(str(offset_dir), max_length=128, pooling="mean")
    model.add_lora(r=4, verbose=False)
    model.save_pretrained(tmp_path / "run")
    model.save_merged(tmp_path / "merged")
    for folder in (tmp_path / "run", tmp_path / "merged"):  # the adapter and the merged branch of from_pretrained
        values = json.loads((folder / "biohicl_config.json").read_text())
        (folder / "biohicl_config.json").write_text(json.dumps({**values, "max_length": POSITIONS}))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="biohicl.models.positions"):
            loaded = BioHiCL.from_pretrained(folder)
        assert loaded.config.max_length == loaded.max_tokens == 128
        assert loaded.encode([LONG_TEXT], show_progress_bar=False).shape == (1, 32)
        cuts = [r.getMessage() for r in caplog.records if r.name == "biohicl.models.positions"]
        assert cuts == [f"max length 130 capped at 128, the most tokens {folder} can encode"]


def test_demo_evaluation_length_is_capped_at_the_base(offset_dir, tiny_bert_dir, tmp_path, caplog):
    """What `biohicl demo` gives set_inference_length and evaluation_models for --eval_max_length."""
    with caplog.at_level(logging.INFO, logger="biohicl.models.positions"):
        assert fit_to_base(str(offset_dir), 1000) == 128
    assert [r.getMessage() for r in caplog.records] == [
        f"max length 1000 capped at 128, the most tokens {offset_dir} can encode"
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="biohicl.models.positions"):
        assert fit_to_base(str(offset_dir), 128) == 128
        assert fit_to_base(str(tiny_bert_dir), 128) == 128
        assert fit_to_base(str(tmp_path / "no-such-base"), 1000) == 1000  # not on this machine: as given
    assert not caplog.records


def test_demo_records_and_evaluates_the_capped_length(offset_dir, tmp_path, monkeypatch):
    """`biohicl demo --eval_max_length 1000` over a 128-token base: the run's biohicl_config.json and both evaluated
    models get 128 (before: 1000, a length the model cannot encode)."""
    import json
    from types import SimpleNamespace

    import biohicl.evaluation.runner as runner
    from biohicl.study import demo
    from biohicl.training.checkpoint import TRAINING_ARGS_JSON

    args = demo.DemoArguments(
        output_dir=str(tmp_path / "demo"), base_model=str(offset_dir), eval_max_length=1000, tasks="biosses"
    )
    training_args = demo.short_run_arguments(args)
    dataset_dir, run_dir = demo.demo_paths(args)
    run_dir.mkdir(parents=True)  # a finished run over a finished dataset: only the evaluations are left
    (run_dir / "adapter_model.safetensors").write_bytes(b"weights")
    (run_dir / TRAINING_ARGS_JSON).write_text(training_args.to_json_string(), encoding="utf-8")
    (run_dir / "biohicl_config.json").write_text(json.dumps({"max_length": 64}), encoding="utf-8")
    dataset_dir.mkdir(parents=True)
    (dataset_dir / "README.md").write_text("done")
    monkeypatch.setattr("biohicl.data.storage.load_pair_dataset", lambda path: None)
    lengths = []

    def models(base_model, folder, length):
        lengths.append(length)
        model = SimpleNamespace(config=SimpleNamespace(max_length=length))
        return [("base", lambda: model), ("biohicl", lambda: model)]

    def fake_evaluate(model, tasks, *, model_id, settings, **kwargs):
        return {"model": {"id": model_id}, "settings": settings, "tasks": {t: {"metrics": {}} for t in tasks}}

    monkeypatch.setattr(demo, "evaluation_models", models)
    monkeypatch.setattr(runner, "evaluate_model", fake_evaluate)
    monkeypatch.setattr(demo, "comparison_table", lambda records: "table")
    demo.run_demo(args, training_args)
    assert lengths == [128]
    assert json.loads((run_dir / "biohicl_config.json").read_text())["max_length"] == 128


def test_a_studys_evaluation_length_is_capped_at_the_usable_positions(offset_dir, tiny_bert_dir):
    from biohicl.study.reuse import evaluation_length, position_limit
    from biohicl.study.specs import ModelSpec

    spec = ModelSpec(name="m", model=str(offset_dir), eval_max_length=1000)
    assert (position_limit(spec), evaluation_length(spec)) == (128, 128)  # 130 positions, from padding_idx + 1
    bert = ModelSpec(name="b", model=str(tiny_bert_dir), eval_max_length=1000)
    assert (position_limit(bert), evaluation_length(bert)) == (128, 128)  # 128 positions from 0


def test_search_json_over_a_run_saved_over_the_positions_keeps_stdout_to_the_hits(offset_dir, tmp_path, capsys):
    """The cut of a saved length is a warning: a load inside `biohicl search --json` wrote it to stdout before."""
    import json

    from biohicl.cli.main import main as cli

    model = BioHiCL.from_base(str(offset_dir), max_length=128, pooling="mean")
    model.add_lora(r=4, verbose=False)
    model.save_pretrained(tmp_path / "run")
    values = json.loads((tmp_path / "run" / "biohicl_config.json").read_text())
    (tmp_path / "run" / "biohicl_config.json").write_text(json.dumps({**values, "max_length": POSITIONS}))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"diabetes cells {i}"}) + "\n" for i in range(3)))
    index = tmp_path / "index"
    assert cli(["index", str(corpus), "--model", str(tmp_path / "run"), "--output", str(index), "--no_progress"]) == 0
    capsys.readouterr()
    assert cli(["search", str(index), "diabetes", "--json", "--top_k", "2", "--no_mesh"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["rank"] for line in captured.out.splitlines()] == [1, 2]
    assert "max length 130 capped at 128" in captured.err

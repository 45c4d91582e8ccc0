"""The demo's step 3 when dev selection kept the base: a tuned model whose merged weights are the base's, bit for
bit, gets the base's numbers under its own label, without encoding a text again; any other tuned model is evaluated."""

from __future__ import annotations

import json
import logging

import pytest

from biohicl.models.model import BioHiCL


def _demo_with_saved_run(tmp_path, monkeypatch, base_dir, *, differ: bool = False):
    """A demo whose dataset and run are done (the run: a LoRA adapter over ``base_dir`` as peft initialises it, B
    zero, or with B drawn when ``differ``), so only step 3 and the table are left; returns ``(args, training_args,
    encoded)``, ``encoded`` the model kind of each encode call of the evaluation."""
    import torch

    from biohicl.evaluation.encoder import DtypeEncoder
    from biohicl.study.demo import DemoArguments, short_run_arguments
    from biohicl.training.checkpoint import TRAINING_ARGS_JSON
    from tests.conftest import randomize_lora_b

    args = DemoArguments(output_dir=str(tmp_path / "demo"), base_model=str(base_dir), tasks="biosses")
    training_args = short_run_arguments(args)
    tuned = BioHiCL.from_base(str(base_dir), max_length=32)
    tuned.add_lora(r=2, verbose=False)
    if differ:
        randomize_lora_b(tuned, std=0.05, generator=torch.Generator().manual_seed(0))
    run_dir = tmp_path / "demo" / "run"
    tuned.save_pretrained(run_dir)
    (run_dir / TRAINING_ARGS_JSON).write_text(training_args.to_json_string(), encoding="utf-8")
    (tmp_path / "demo" / "mesh-pairs").mkdir(parents=True)
    (tmp_path / "demo" / "mesh-pairs" / "README.md").write_text("done")
    monkeypatch.setattr("biohicl.data.storage.load_pair_dataset", lambda path: None)
    encoded = []
    real_encode = DtypeEncoder.encode

    def counted(self, texts, *a, **k):
        encoded.append("tuned" if self.model.resolved is not None else "base")  # from_pretrained sets resolved
        return real_encode(self, texts, *a, **k)

    monkeypatch.setattr(DtypeEncoder, "encode", counted)
    return args, training_args, encoded


def _record(tmp_path, label):
    return json.loads((tmp_path / "demo" / f"results_{label}.json").read_text(encoding="utf-8"))


def test_a_tuned_model_with_the_bases_weights_gets_the_bases_numbers_without_encoding(
    tiny_bert_dir, tmp_path, monkeypatch, caplog
):
    from biohicl.hub.record_match import check_tuned_record
    from biohicl.study.demo import run_demo

    args, training_args, encoded = _demo_with_saved_run(tmp_path, monkeypatch, tiny_bert_dir)
    with caplog.at_level(logging.INFO, logger="biohicl.study.demo"):
        table = run_demo(args, training_args)
    assert set(encoded) == {"base"}  # the tuned model encoded nothing
    base, tuned = _record(tmp_path, "base"), _record(tmp_path, "biohicl")
    assert tuned["model"]["id"] == f"{tiny_bert_dir} (biohicl)" and base["model"]["id"] == f"{tiny_bert_dir} (base)"
    assert tuned["tasks"] == base["tasks"] and tuned["summary"] == base["summary"]  # per-item values included
    assert tuned["tasks"]["biosses"]["per_item"]["predictions"] == base["tasks"]["biosses"]["per_item"]["predictions"]
    assert tuned["settings"]["scores_of"] == base["model"]["id"]
    assert "bit-identical" in tuned["settings"]["scores_note"]
    assert {k: v for k, v in tuned["settings"].items() if not k.startswith("scores_")} == base["settings"]
    # the record is the tuned model's as publish checks it: its config and the adapter file it was loaded from
    assert tuned["model"]["config"]["kind"] == "merged" and tuned["model"]["weights_files"] == [
        "adapter_model.safetensors"
    ]
    config_path = tmp_path / "demo" / "run" / "biohicl_config.json"
    check_tuned_record(config_path, tuned, json.loads(config_path.read_text()), config_path)
    said = [r.getMessage() for r in caplog.records if "bit-identical" in r.getMessage()]
    assert len(said) == 1 and "not encoded again" in said[0]
    assert "+0.00 | [+0.00, +0.00]" in table  # the paired table: Δ exactly 0


def test_a_rerun_compares_against_the_reused_base_record(tiny_bert_dir, tmp_path, monkeypatch):
    """--skip_steps_done: the base's record reused from its file, the tuned one (removed) made from it again."""
    from biohicl.study.demo import run_demo

    args, training_args, encoded = _demo_with_saved_run(tmp_path, monkeypatch, tiny_bert_dir)
    run_demo(args, training_args)
    first = _record(tmp_path, "biohicl")
    run_demo(args, training_args)  # both records reused: nothing encoded
    assert set(encoded) == {"base"} and _record(tmp_path, "biohicl") == first
    (tmp_path / "demo" / "results_biohicl.json").unlink()
    count = len(encoded)
    run_demo(args, training_args)
    assert len(encoded) == count  # the base's weights loaded to compare, nothing encoded
    assert _record(tmp_path, "biohicl")["tasks"] == first["tasks"]


def test_a_tuned_model_whose_weights_differ_is_evaluated(tiny_bert_dir, tmp_path, monkeypatch):
    from biohicl.study.demo import run_demo

    args, training_args, encoded = _demo_with_saved_run(tmp_path, monkeypatch, tiny_bert_dir, differ=True)
    run_demo(args, training_args)
    assert {"base", "tuned"} <= set(encoded)
    tuned = _record(tmp_path, "biohicl")
    assert "scores_of" not in tuned["settings"]
    assert tuned["tasks"]["biosses"]["metrics"] != _record(tmp_path, "base")["tasks"]["biosses"]["metrics"]


@pytest.mark.parametrize("change", ["weight", "pooling", "dtype", "missing"])
def test_only_bit_identical_weights_and_encoding_settings_are_the_same_model(tiny_bert_dir, change):
    import torch

    from biohicl.study.demo import same_model

    base, tuned = BioHiCL.from_base(str(tiny_bert_dir)), BioHiCL.from_base(str(tiny_bert_dir))
    assert same_model(base, tuned)
    if change == "weight":  # the smallest change there is
        with torch.no_grad():
            weight = next(tuned.parameters())
            weight.view(-1)[0] = torch.nextafter(weight.view(-1)[0], torch.tensor(1.0))
    elif change == "pooling":
        tuned.config.pooling = "cls"
    elif change == "dtype":
        tuned.to(torch.float64)
    else:  # not a module: nothing to compare
        tuned = object()
    assert not same_model(base, tuned)

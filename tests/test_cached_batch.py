"""Gradient caching (``mini_batch_size``, :mod:`biohicl.training.cached_batch`): the loss and the gradients of a
chunked batch are those of one pass over it (dropout 0), dropout replayed included; trained runs end at the same
weights without dropout, at others with it; a loss may change its embeddings in place; chunks lose their trailing
padding; MPS RNG states are kept apart; more than one process is refused. Tiny random BERT, fp32."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch.testing import assert_close
from transformers import TrainerCallback

from biohicl.data.collator import BioHiCLDataCollator
from biohicl.errors import ConfigError
from biohicl.models.model import BioHiCL
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.cached_batch import RandContext, row_chunks, split_mps, trimmed
from biohicl.training.run import build_model, train_biohicl
from biohicl.training.trainer import BioHiCLTrainer
from tests.conftest import randomize_lora_b, run_torchrun, synthetic_documents

#: six documents of four topics: same-topic pairs are positives, SimL 0 pairs are contrastive negatives
ROWS = [0, 1, 6, 7, 12, 18]


@pytest.fixture(scope="module")
def still_bert_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    """The tiny BERT with its dropout at 0: a train-mode forward is deterministic."""
    path = tmp_path_factory.mktemp("still-bert")
    shutil.copytree(tiny_bert_dir, path, dirs_exist_ok=True)
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def docs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "documents.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    return path


def make_values(model_dir: Path, output_dir: Path, **overrides) -> dict:
    values = dict(
        output_dir=str(output_dir),
        base_model=str(model_dir),
        base_model_hub_id="test/tiny-bert",
        max_length=32,
        per_device_train_batch_size=6,
        report_to="none",
        lora_target_modules=["query", "value"],
        lora_dropout=0.0,
        save_strategy="no",
        use_cpu=True,
        seed=7,
        disable_tqdm=True,
    )
    return {**values, **overrides}


def batch_and_trainer(model_dir: Path, tmp_path: Path, mesh, **overrides):
    """A batch of the six :data:`ROWS` (titles too) and a trainer over a LoRA model whose B is random (so the
    tuned model is not its base), in train mode."""
    args = BioHiCLTrainingArguments(**make_values(model_dir, tmp_path / "run", **overrides))
    model = build_model(args)
    randomize_lora_b(model, generator=torch.Generator().manual_seed(0))
    collator = BioHiCLDataCollator(tokenize=model.tokenize, mesh=mesh, titles=True)
    docs = [synthetic_documents()[i] for i in ROWS]
    batch = collator([{"title": d["title"], "abstract": d["abstract"], "labels": d["mesh"]} for d in docs])
    return batch, BioHiCLTrainer(model=model, args=args, data_collator=collator), model.train()


def loss_and_grads(trainer: BioHiCLTrainer, model, batch, chunk: int | None):
    """compute_loss at ``mini_batch_size`` ``chunk``, back-propagated: (loss, outputs, {parameter: gradient})."""
    trainer.args.mini_batch_size = chunk
    model.zero_grad(set_to_none=True)
    total, outputs = trainer.compute_loss(model, dict(batch), return_outputs=True)
    total.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return total.detach(), outputs, grads


def encoded_rows(model) -> list[tuple[int, bool]]:
    """A spy on ``model``'s forwards: each one's rows and whether it ran with gradients."""
    calls: list[tuple[int, bool]] = []
    model.register_forward_hook(lambda module, args, out: calls.append((len(out), out.requires_grad)))
    return calls


# ------------------------------------------------------------------------------ (a) same loss, same gradients
@pytest.mark.parametrize(
    "overrides, terms, encodings",
    [
        ({}, ["loss_mse", "loss_con"], (3, 3)),  # the paper's loss, lambda_con 0.1
        # the base's embeddings: three chunks of 2 without gradients
        ({"distill_weight": 0.5}, ["loss_mse", "loss_con", "loss_distill"], (6, 3)),
        # titles and abstracts: chunked and replayed as the documents
        ({"title_weight": 0.5}, ["loss_mse", "loss_con", "loss_title"], (9, 9)),
    ],
)
def test_chunks_of_two_give_the_loss_and_gradients_of_one_pass(
    still_bert_dir, tmp_path, mesh, overrides, terms, encodings
):
    batch, trainer, model = batch_and_trainer(still_bert_dir, tmp_path, mesh, **overrides)
    assert batch["input_ids"].shape[0] == 6 and batch["title_inputs"]["input_ids"].shape[0] == 6
    plain, plain_out, plain_grads = loss_and_grads(trainer, model, batch, None)
    calls = encoded_rows(model)
    cached, cached_out, cached_grads = loss_and_grads(trainer, model, batch, 2)
    # every forward a chunk of 2: first without gradients, then (in the backward) again with them
    assert sorted(calls) == [(2, False)] * encodings[0] + [(2, True)] * encodings[1]
    assert plain.item() > 0 and [k for k in cached_out if k.startswith("loss_")] == terms
    assert_close(cached, plain)
    for key in terms:
        assert plain_out[key].item() > 0
        assert_close(cached_out[key].detach(), plain_out[key].detach())
    assert_close(cached_out["embeddings"].detach(), plain_out["embeddings"].detach())
    assert set(cached_grads) == set(plain_grads) and len(plain_grads) == 8  # LoRA A and B of query/value, 2 layers
    assert sum(g.abs().sum().item() for g in plain_grads.values()) > 0
    for name, grad in plain_grads.items():
        assert_close(cached_grads[name], grad, msg=name)
    assert trainer.documents_trained == 12  # 6 rows per call, whichever way they were encoded


def test_a_chunk_as_large_as_the_batch_is_a_plain_pass(still_bert_dir, tmp_path, mesh):
    batch, trainer, model = batch_and_trainer(still_bert_dir, tmp_path, mesh)
    calls = encoded_rows(model)
    loss_and_grads(trainer, model, batch, 6)
    assert calls == [(6, True)]


# ------------------------------------------------------------------------------ (b) dropout is replayed
def test_with_dropout_the_gradient_is_that_of_the_first_pass_embeddings(tiny_bert_dir, tmp_path, mesh):
    batch, trainer, model = batch_and_trainer(tiny_bert_dir, tmp_path, mesh, lora_dropout=0.1)
    torch.manual_seed(123)
    cached, outputs, cached_grads = loss_and_grads(trainer, model, batch, 2)
    first = outputs["embeddings"].detach()
    # the reference: from the same RNG state, the same chunks encoded with gradients (the masks the first pass drew)
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "token_type_ids")}
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)
    embeddings = torch.cat([model(**chunk) for chunk in row_chunks(inputs, 2)])
    assert_close(embeddings.detach(), first)
    expected = trainer.loss(embeddings, batch["siml"])["loss"]
    expected.backward()
    assert_close(cached, expected.detach())
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert_close(cached_grads[name], param.grad, msg=name)
    torch.manual_seed(124)  # dropout is on: other masks give other embeddings, so a replay that drew new ones fails
    assert not torch.allclose(torch.cat([model(**chunk) for chunk in row_chunks(inputs, 2)]), first, atol=1e-4)


# ------------------------------------------------------------------------------ (c) trained runs
class TrainedWeights(TrainerCallback):
    """The trainable weights as training ends."""

    def __init__(self):
        self.weights: dict[str, torch.Tensor] = {}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.weights = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def trained(still_bert_dir: Path, docs_file: Path, output_dir: Path, loss=None, **overrides):
    values = make_values(still_bert_dir, output_dir, dataset_path=str(docs_file), max_steps=2, logging_steps=1)
    values.update(per_device_train_batch_size=8, learning_rate=5e-3, warmup_steps=0, **overrides)
    weights = TrainedWeights()
    run = train_biohicl(BioHiCLTrainingArguments(**values), [weights], loss=loss)
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    return weights.weights, [entry for entry in history if "loss_mse" in entry]


@pytest.mark.parametrize("accumulation", [1, 2])
def test_two_steps_with_chunks_end_at_the_same_weights(still_bert_dir, docs_file, tmp_path, accumulation):
    plain, plain_log = trained(still_bert_dir, docs_file, tmp_path / "plain", gradient_accumulation_steps=accumulation)
    cached, cached_log = trained(
        still_bert_dir, docs_file, tmp_path / "cached", gradient_accumulation_steps=accumulation, mini_batch_size=3
    )
    assert len(plain) == 8 and set(cached) == set(plain)
    assert any(name.endswith("lora_B.default.weight") and w.abs().max() > 1e-3 for name, w in plain.items())  # moved
    for name, weight in plain.items():
        assert_close(cached[name], weight, atol=1e-5, rtol=0, msg=name)
    assert len(plain_log) == len(cached_log) == 2
    for before, after in zip(plain_log, cached_log, strict=True):
        for key in ("loss", "loss_mse", "loss_con", "positive_pairs"):
            assert after[key] == pytest.approx(before[key], rel=1e-5, abs=1e-7)


def test_with_dropout_chunks_draw_other_masks_and_end_at_other_weights(still_bert_dir, docs_file, tmp_path):
    """lora_dropout 0.1 (the default): each chunk draws its own masks, the same objective under another draw."""
    help_text = BioHiCLTrainingArguments.__dataclass_fields__["mini_batch_size"].metadata["help"]
    assert "With dropout 0 the same loss and gradients" in help_text and "each chunk draws its own masks" in help_text
    plain, _ = trained(still_bert_dir, docs_file, tmp_path / "plain", lora_dropout=0.1)
    again, _ = trained(still_bert_dir, docs_file, tmp_path / "again", lora_dropout=0.1)
    cached, _ = trained(still_bert_dir, docs_file, tmp_path / "cached", lora_dropout=0.1, mini_batch_size=3)
    for name, weight in plain.items():  # a plain run is reproducible: the difference below is the chunks' masks
        assert_close(again[name], weight, atol=1e-6, rtol=0, msg=name)
    assert max((cached[name] - weight).abs().max().item() for name, weight in plain.items()) > 1e-4


class Inplace(torch.nn.Module):
    """A custom loss that scales its embeddings in place (as ``embeddings.mul_``, ``F.normalize(out=...)`` do)."""

    def forward(self, embeddings, siml, **kwargs):
        embeddings = embeddings.mul_(1.0)
        return ((embeddings @ embeddings.T - siml) ** 2).mean()


def test_a_loss_changing_its_embeddings_in_place_trains_as_without_chunks(still_bert_dir, docs_file, tmp_path):
    plain, _ = trained(still_bert_dir, docs_file, tmp_path / "plain", loss=Inplace())
    cached, _ = trained(still_bert_dir, docs_file, tmp_path / "cached", loss=Inplace(), mini_batch_size=3)
    assert len(plain) == 8 and set(cached) == set(plain)
    assert any(name.endswith("lora_B.default.weight") and w.abs().max() > 1e-3 for name, w in plain.items())
    for name, weight in plain.items():
        assert_close(cached[name], weight, atol=1e-5, rtol=0, msg=name)


# ------------------------------------------------------------------------------ chunks lose their trailing padding
def test_a_chunk_is_as_wide_as_its_longest_row_with_the_same_embeddings(still_bert_dir):
    texts = ["short one", "tiny", " ".join(["a much longer document about the kidney"] * 3), "two words", "x y"]
    for pooling in ("mean", "cls"):
        model = BioHiCL.from_base(str(still_bert_dir), pooling=pooling, max_length=32).eval()
        inputs = dict(model.tokenize(texts))
        assert model.tokenizer.padding_side == "right" and set(inputs) >= {"token_type_ids", "attention_mask"}
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        chunks = row_chunks(inputs, 2)
        assert [c["input_ids"].shape[1] for c in chunks] == [max(lengths[0:2]), max(lengths[2:4]), lengths[4]]
        assert chunks[0]["input_ids"].shape[1] < inputs["input_ids"].shape[1]  # the long document is in chunk 2
        for start, chunk in zip(range(0, 5, 2), chunks, strict=True):
            assert {key: value.shape for key, value in chunk.items()} == {
                key: chunk["input_ids"].shape for key in chunk
            }
            assert chunk["attention_mask"][:, -1].any()  # each kept column holds a token of some row
            full = {key: value[start : start + 2] for key, value in inputs.items()}  # rows only, the batch's width
            with torch.no_grad():
                assert_close(model(**chunk), model(**full), atol=1e-6, rtol=0)


def test_only_trailing_padding_columns_are_cut():
    ids = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]])
    right = {"input_ids": ids, "attention_mask": (ids > 0).long(), "token_type_ids": torch.zeros_like(ids), "n": 3}
    cut = trimmed(right)
    assert cut["input_ids"].tolist() == [[5, 6], [7, 0]] and cut["attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert cut["token_type_ids"].shape == (2, 2) and cut["n"] == 3
    left_ids = torch.tensor([[0, 0, 5, 6], [0, 0, 0, 7]])  # left padding: the last column is real, nothing is cut
    left = {"input_ids": left_ids, "attention_mask": (left_ids > 0).long()}
    assert trimmed(left)["input_ids"] is left_ids


# ------------------------------------------------------------------------------ MPS: its RNG state kept apart
class OnMps(torch.Tensor):
    """A CPU tensor that says it is on MPS: what :func:`get_device_states` sees of an MPS input."""

    @property
    def device(self):
        return torch.device("mps")


def test_rand_context_saves_and_restores_the_mps_state_apart(monkeypatch):
    state = {"mps": torch.tensor([1])}
    monkeypatch.setattr(torch.mps, "get_rng_state", lambda: state["mps"].clone())
    monkeypatch.setattr(torch.mps, "set_rng_state", lambda new: state.update(mps=new.clone()))
    on_mps, on_cpu = torch.zeros(2).as_subclass(OnMps), torch.zeros(2)
    assert split_mps([on_mps, on_cpu]) == (True, [on_cpu]) and split_mps([on_cpu]) == (False, [on_cpu])
    context = RandContext(on_mps, on_cpu)  # before: get_device_states called torch.mps.device, which does not exist
    assert context.devices == [] and context.mps_state.tolist() == [1]
    drawn = torch.rand(3)  # the CPU state moves on, and so does the "MPS" one
    state["mps"] = torch.tensor([2])
    with context:
        assert state["mps"].tolist() == [1]  # the first pass's MPS state, replayed
        assert_close(torch.rand(3), drawn)  # and the CPU's
    assert state["mps"].tolist() == [2]  # the state before ``with`` put back
    assert RandContext(on_cpu).mps_state is None


@pytest.mark.skipif(not torch.backends.mps.is_available(), reason="needs an MPS device")
def test_rand_context_replays_dropout_on_mps():
    x = torch.ones(1000, device="mps")
    context = RandContext(x)
    first = torch.nn.functional.dropout(x, 0.5)
    after = torch.mps.get_rng_state()
    with context:
        assert torch.equal(torch.nn.functional.dropout(x, 0.5), first)
    assert torch.equal(torch.mps.get_rng_state(), after)


# ------------------------------------------------------------------------------ (d) one process only, values checked
def test_mini_batch_size_values_are_checked(tmp_path):
    for value in (0, -1, True, 2.5):
        with pytest.raises(ConfigError, match=r"^mini_batch_size: must be a whole number of at least 1"):
            BioHiCLTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", mini_batch_size=value)
    assert BioHiCLTrainingArguments(output_dir=str(tmp_path), use_cpu=True, mini_batch_size=1).mini_batch_size == 1


def test_mini_batch_size_under_two_processes_is_refused_in_one_line(still_bert_dir, docs_file, tmp_path):
    config = tmp_path / "train.yaml"
    values = make_values(still_bert_dir, tmp_path / "run", dataset_path=str(docs_file), max_steps=1)
    values.pop("use_cpu")
    config.write_text(yaml.safe_dump({**values, "mini_batch_size": 2}))
    proc = run_torchrun(["-m", "biohicl.cli.main", "train", "--config", str(config)], timeout=300)
    assert proc.returncode != 0 and not (tmp_path / "run" / "training_summary.json").exists()
    # each process's own error is one line (the traceback after them is torchrun's, reporting the failed workers);
    # torchrun stops the other worker once one has failed, so under load the second may not have printed its own
    errors = [line for line in proc.stderr.splitlines() if line.startswith("biohicl train: error:")]
    assert len(errors) in (1, 2) and all(line == errors[0] for line in errors)
    # the value came from the config file, so the file is named first
    assert errors[0].startswith(
        f"biohicl train: error: {config}: mini_batch_size: single-process only, this run has 2 processes (DDP's "
        "backward hooks"
    )


def test_mini_batch_size_with_two_gpus_in_one_process_is_refused(monkeypatch, tmp_path):
    """transformers wraps the model in nn.DataParallel when one process sees several GPUs (n_gpu > 1, no launcher);
    the RNG replay restores only the inputs' device, so the other replicas would draw other dropout masks."""
    values = dict(output_dir=str(tmp_path), use_cpu=True, report_to="none", mini_batch_size=2)
    assert BioHiCLTrainingArguments(**values).n_gpu == 0  # the CPU: no GPU, accepted
    monkeypatch.setattr(BioHiCLTrainingArguments, "n_gpu", property(lambda self: 2))
    with pytest.raises(ConfigError) as caught:
        BioHiCLTrainingArguments(**values)
    assert str(caught.value) == (
        "mini_batch_size: one GPU per process, this process sees 2 GPUs (nn.DataParallel's replicas would draw other "
        "dropout masks than the replayed ones); run one process on one device (CUDA_VISIBLE_DEVICES=0)"
    )
    assert BioHiCLTrainingArguments(**(values | {"mini_batch_size": None})).n_gpu == 2  # only gradient caching cares


class DensePasses(TrainerCallback):
    """Each pass through layer 0's (not LoRA) feed-forward Linear: its rows, autocast state and output dtype."""

    def __init__(self):
        self.passes: list[tuple[int, bool, torch.dtype]] = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from biohicl.models.signature import unwrapped

        dense = unwrapped(model.backbone).encoder.layer[0].intermediate.dense
        dense.register_forward_hook(
            lambda module, inputs, out: self.passes.append((len(out), torch.is_autocast_enabled("cpu"), out.dtype))
        )


def test_chunks_are_replayed_in_bf16_autocast_with_activation_checkpointing(still_bert_dir, docs_file, tmp_path):
    passes = DensePasses()
    values = make_values(still_bert_dir, tmp_path / "bf16", dataset_path=str(docs_file), max_steps=1)
    values.update(per_device_train_batch_size=8, warmup_steps=0, bf16=True, activation_checkpointing=True)
    values["mini_batch_size"] = 3
    run = train_biohicl(BioHiCLTrainingArguments(**values), [passes])
    # chunks of 3, 3, 2: encoded without gradients, then in the backward hook each again and recomputed by
    # checkpointing in its own backward; every pass in bf16 autocast (the hook runs outside compute_loss)
    rows = [3, 3, 2, 3, 3, 3, 3, 2, 2]
    assert passes.passes == [(n, True, torch.bfloat16) for n in rows]
    adapter = load_file(str(run / "adapter_model.safetensors"))  # LoRA got gradients through the replayed chunks
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in adapter.items())

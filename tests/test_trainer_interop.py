"""What ``train_biohicl`` and ``BioHiCLTrainer`` do with the arguments trl's and sentence-transformers' trainers
take (``peft_config=``, ``loss=``, ``compute_loss_func=``), and how much of a batch the in-batch losses see."""

from __future__ import annotations

import json

import pytest
from test_trainer import docs_file, make_args, make_values  # noqa: F401  (docs_file is a fixture)

from biohicl.errors import ConfigError
from biohicl.hub.card_hyperparameters import loss_arguments
from biohicl.hub.model_card import BioHiCLModelCardData, render_model_card
from biohicl.losses import FilteredMSELoss
from biohicl.models.model import BioHiCL
from biohicl.training.run import train_biohicl
from biohicl.training.trainer import BioHiCLTrainer
from tests.conftest import run_torchrun

#: a loss that records the in-batch SimL matrix it is given (one per call), and an evaluator that counts its calls;
#: the DDP test runs this file's text under torchrun
SPIES = """
import json, os, sys
from biohicl.losses import FilteredMSELoss
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.run import train_biohicl

seen, evaluations = [], []


class SpyLoss(FilteredMSELoss):
    def forward(self, embeddings, siml, **inputs):
        seen.append([*embeddings.shape[:1], *siml.shape])
        return super().forward(embeddings, siml, **inputs)


def evaluator(model):
    evaluations.append(1)
    return {"constant": 0.5}
"""


def test_the_card_of_a_run_says_which_adapter_and_which_loss_trained(tiny_bert_dir, docs_file, tmp_path):  # noqa: F811
    from peft import LoraConfig

    dora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value", "dense"], use_dora=True)
    run = train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "dora", max_steps=1), peft_config=dora)
    rows = BioHiCLModelCardData.from_run_dir(run, "M").hyperparameters
    # the arguments' lora_r 8, alpha 16, dropout 0.1, query/value are not what trained
    assert (rows["lora_r"], rows["lora_alpha"], rows["lora_dropout"]) == (4, 8, 0.0)
    assert rows["lora_target_modules"] == ["dense", "query", "value"] and rows["use_dora"] is True
    assert (rows["lambda_con"], rows["use_contrastive"], rows["pair_filter"]) == (0.1, True, "zero_or_positive")

    run = train_biohicl(make_args(tiny_bert_dir, docs_file, tmp_path / "mse", max_steps=1), loss=FilteredMSELoss())
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["loss"] == {"class": "FilteredMSELoss", "pair_filter": "zero_or_positive", "beta": 0.3}
    data = BioHiCLModelCardData.from_run_dir(run, "M")
    assert data.hyperparameters["loss"] == "FilteredMSELoss(pair_filter=zero_or_positive, beta=0.3)"
    assert not loss_arguments() & set(data.hyperparameters)  # no λ, no contrastive switch it never had
    assert data.hyperparameters["lora_r"] == 8 and "use_dora" not in data.hyperparameters
    text = render_model_card(data)
    assert "trained with another loss instead: `FilteredMSELoss(pair_filter=zero_or_positive, beta=0.3)`" in text
    assert "use_contrastive" not in text and "lambda_con" not in text


def test_the_trainer_refuses_compute_loss_func_and_points_to_loss(tiny_bert_dir, docs_file, tmp_path):  # noqa: F811
    args = make_args(tiny_bert_dir, docs_file, tmp_path / "o")
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    with pytest.raises(ConfigError, match=r"^compute_loss_func: pass loss= instead \(any module loss\("):
        BioHiCLTrainer(model=model, args=args, compute_loss_func=lambda outputs, labels, **kwargs: 0.0)


def test_the_trainer_takes_a_peft_config_as_trl_does(tiny_bert_dir, docs_file, tmp_path):  # noqa: F811
    from peft import LoraConfig

    args = make_args(tiny_bert_dir, docs_file, tmp_path / "o")
    model = BioHiCL.from_base(str(tiny_bert_dir), max_length=32)
    hidden = model.backbone.config.hidden_size
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["query"], use_dora=True)
    BioHiCLTrainer(model=model, args=args, peft_config=config)
    trainable = {name: tuple(p.shape) for name, p in model.named_parameters() if p.requires_grad}
    layers = model.backbone.config.num_hidden_layers
    lora_a = [shape for name, shape in trainable.items() if "lora_A" in name]
    assert lora_a == [(4, hidden)] * layers  # r=4 on each layer's query only
    assert all("lora_" in name for name in trainable) and sum("magnitude" in n for n in trainable) == layers  # DoRA
    with pytest.raises(ConfigError, match=r"^peft_config: the model already has LoRA adapters; give a model without"):
        BioHiCLTrainer(model=model, args=args, peft_config=config)


def test_the_losses_see_one_micro_batch_under_gradient_accumulation(tiny_bert_dir, docs_file, tmp_path):  # noqa: F811
    spies: dict = {}
    exec(SPIES, spies)
    args = make_args(tiny_bert_dir, docs_file, tmp_path / "ga", max_steps=2, gradient_accumulation_steps=2,
                     per_device_train_batch_size=4)  # fmt: skip
    train_biohicl(args, loss=spies["SpyLoss"]())
    # 2 optimizer steps x 2 micro-batches, each of 4 documents: accumulation does not make a batch of 8 pairs
    assert spies["seen"] == [[4, 4, 4]] * 4


@pytest.mark.slow
def test_under_ddp_each_process_has_its_own_micro_batch_and_runs_the_evaluator(tiny_bert_dir, docs_file, tmp_path):  # noqa: F811
    values = make_values(tiny_bert_dir, docs_file, str(tmp_path / "ddp"), max_steps=2, per_device_train_batch_size=4,
                         eval_strategy="steps", eval_steps=2)  # fmt: skip
    script = tmp_path / "spy_ddp.py"
    script.write_text(
        SPIES
        + f"train_biohicl(BioHiCLTrainingArguments(**{values!r}), loss=SpyLoss(), evaluator=evaluator)\n"
        + f"rank = os.environ['RANK']\nopen({str(tmp_path)!r} + f'/rank{{rank}}.json', 'w').write("
        + "json.dumps({'seen': seen, 'evaluations': len(evaluations)}))\n"
        + "import torch.distributed\ntorch.distributed.barrier()\ntorch.distributed.destroy_process_group()\n",
        encoding="utf-8",
    )
    proc = run_torchrun([str(script)], timeout=600)
    assert proc.returncode == 0, proc.stderr[-8000:]
    for rank in (0, 1):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        # embeddings are not gathered: each process's loss sees a 4 x 4 SimL of its own 4 documents
        assert record == {"seen": [[4, 4, 4]] * 2, "evaluations": 1}, rank


def test_the_label_losses_train_alone_as_loss(tiny_bert_dir, docs_file, tmp_path):  # noqa: F811
    from biohicl.losses import HierarchicalContrastiveLoss

    args = make_args(tiny_bert_dir, docs_file, tmp_path / "con", max_steps=1)
    run = train_biohicl(args, loss=HierarchicalContrastiveLoss(temperature=0.1))
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["loss"]["class"] == "HierarchicalContrastiveLoss" and summary["loss"]["temperature"] == 0.1
    assert summary["global_step"] == 1

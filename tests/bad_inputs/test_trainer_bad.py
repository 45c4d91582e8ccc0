"""The trainer and the losses on bad input: a config with a misspelled field, bad values, missing or malformed
datasets, documents without labels, a batch with no positive pair, all-identical label sets, NaN/inf embeddings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import synthetic_documents

from biohicl.data.documents import read_documents
from biohicl.errors import DataError
from biohicl.losses import BioHiCLLoss, FilteredMSELoss, HierarchicalContrastiveLoss

#: The one wording of an alpha of 0 (biohicl.models.lora_values.check_alpha), after the field it names.
ALPHA_ZERO = "0 scales the adapter's update to nothing; give a nonzero value (e.g. twice the rank)"


def train_argv(tiny_bert_dir: Path, dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--dataset_path", str(dataset), "--output_dir", str(out), "--base_model", str(tiny_bert_dir),
            "--base_model_hub_id", "test/tiny-bert", "--max_steps", "1", "--per_device_train_batch_size", "4",
            "--max_length", "16", "--report_to", "none", "--lora_target_modules", "query", "value", "--use_cpu",
            "--disable_tqdm", "true", "--save_strategy", "no", *extra]  # fmt: skip


def write_docs(path: Path, labels: list[list[str]]) -> Path:
    rows = [{"pmid": str(i), "title": f"t{i}", "abstract": "the cells of patients", "mesh": lab}
            for i, lab in enumerate(labels)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- configuration
def test_config_file_with_a_misspelled_field(tmp_path, run_cli):
    config = tmp_path / "run.yaml"
    config.write_text("output_dir: runs/x\nlerning_rate: 1e-4\nbeta: 0.3\n")
    result = run_cli(["train", "--config", str(config)])
    assert f"{config}: unknown field(s) lerning_rate (did you mean learning_rate?)" in result.err
    assert not (tmp_path / "runs").exists()


def test_malformed_yaml_config(tmp_path, run_cli):
    config = tmp_path / "run.yaml"
    config.write_text("output_dir: [runs/x\nbeta: 0.3\n")
    result = run_cli(["train", "--config", str(config)])
    assert f"{config}: cannot parse" in result.err


def test_json_config_that_is_not_a_mapping(tmp_path, run_cli):
    config = tmp_path / "run.json"
    config.write_text("[1, 2]")
    result = run_cli(["train", "--config", str(config)])
    assert "expected a mapping of option names to values" in result.err


def test_misspelled_option(tmp_path, run_cli):
    result = run_cli(["train", "--output_dir", str(tmp_path / "r"), "--lambda_conn", "0.2"])
    assert "unrecognized arguments: --lambda_conn 0.2 (did you mean --lambda_conn → --lambda_con?)" in result.err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--beta", "1.5", "beta: must be in [0, 1), got 1.5"),
        ("--temperature", "0", "temperature: must be positive"),
        ("--pair_filter", "some", "pair_filter: 'some' is not one of"),
        ("--per_device_train_batch_size", "1", "per_device_train_batch_size: in-batch losses need at least 2"),
        ("--pooling", "max", "pooling: 'max' is not cls or mean"),
    ],
)
def test_bad_values_name_the_field(tmp_path, run_cli, option, value, message):
    result = run_cli(["train", "--output_dir", str(tmp_path / "r"), option, value])
    assert message in result.err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lora_r", "0", "lora_r: the adapter's rank must be at least 1, got 0"),
        ("--lora_r", "-2", "lora_r: the adapter's rank must be at least 1, got -2"),
        ("--lora_alpha", "0", f"lora_alpha: {ALPHA_ZERO}"),
        ("--lora_dropout", "1.5", "lora_dropout: must be in [0, 1), got 1.5"),
        ("--lora_dropout", "1", "lora_dropout: must be in [0, 1), got 1.0"),
        ("--lora_dropout", "-0.1", "lora_dropout: must be in [0, 1), got -0.1"),
        ("--seed", "-1", "seed: must be in [0, 2**32), got -1"),
        ("--seed", "4294967296", "seed: must be in [0, 2**32), got 4294967296"),
        ("--data_seed", "-1", "data_seed: must be in [0, 2**32), got -1"),
        ("--report_to", "tensorbord", "report_to: 'tensorbord' is not an integration transformers reports to (did "
         "you mean tensorboard?); one of "),
        ("--lr_scheduler_kwargs", "notjson", "lr_scheduler_kwargs: 'notjson' is not JSON (Expecting value"),
        ("--lr_scheduler_kwargs", "[1, 2]", "lr_scheduler_kwargs: expected a JSON object of keyword arguments, got "
         "'[1, 2]'"),
        ("--max_steps", "0", "max_steps: give a positive number, or -1 to train num_train_epochs; got 0"),
        ("--max_steps", "-3", "max_steps: give a positive number, or -1 to train num_train_epochs; got -3"),
    ],
)  # fmt: skip
def test_bad_training_values_are_refused_before_anything_loads(tiny_bert_dir, tmp_path, run_cli, option, value,
                                                               message):  # fmt: skip
    # the dataset does not exist: a refusal naming the field came before the data (and so the model) was read
    out = tmp_path / "run"
    result = run_cli(train_argv(tiny_bert_dir, tmp_path / "nope.jsonl", out, option, value))
    assert f"biohicl train: error: {message}" in result.err
    assert "dataset_path" not in result.err and not out.exists()


def test_report_to_none_and_all_stand_alone(tmp_path, run_cli):
    config = tmp_path / "run.yaml"
    config.write_text(f"output_dir: {tmp_path / 'run'}\nreport_to: [none, tensorboard]\n")
    result = run_cli(["train", "--config", str(config)])
    assert "report_to: 'none' stands alone, not with other integrations (none, tensorboard)" in result.err


def test_training_values_at_their_limits_are_accepted(tmp_path, monkeypatch):
    from biohicl.training.args import BioHiCLTrainingArguments

    args = BioHiCLTrainingArguments(
        output_dir=str(tmp_path / "run"), lora_r=1, lora_dropout=0.0, seed=2**32 - 1, data_seed=0, max_steps=-1,
        report_to=None, lr_scheduler_kwargs=' {"num_cycles": 2} ',
    )  # fmt: skip
    assert (args.lora_r, args.lora_dropout, args.seed, args.data_seed, args.max_steps) == (1, 0.0, 2**32 - 1, 0, -1)
    assert args.report_to == [] and args.lr_scheduler_kwargs == {"num_cycles": 2}  # JSON parsed by transformers
    from transformers.integrations import integration_utils

    monkeypatch.setattr(integration_utils, "is_tensorboard_available", lambda: True)  # whether installed or not
    assert BioHiCLTrainingArguments(output_dir="r", report_to="tensorboard").report_to == ["tensorboard"]


def test_lora_target_modules_matching_nothing_names_the_field_and_the_linear_modules(tiny_bert_dir, tmp_path, run_cli):
    docs = write_docs(tmp_path / "docs.jsonl", [["D003920"], ["D003924"], ["D009203"], ["D001927"]])
    out = tmp_path / "run"
    result = run_cli(train_argv(tiny_bert_dir, docs, out, "--lora_target_modules", "querry", "valeu"))
    # BERT's linear layers: attention.self.{query,key,value}, attention.output.dense, intermediate.dense,
    # output.dense (each of 2 layers) and pooler.dense; each short name once, in model order
    expected = "lora_target_modules: no module of the model matches querry, valeu (its linear modules: query, key, "
    assert f"biohicl train: error: {expected}value, dense)" in result.err
    assert not out.exists()


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        # the targets exist, other settings removed them: peft's own first line, not "no module matches"
        ({"target_modules": ["query"], "layers_to_transform": [99]},
         "peft_config: Target modules {'query'} not found in the base model. Please check the target modules and try "
         "again. Note: You specified 'layers_to_transform': [99]."),
        ({"target_modules": ["query"], "exclude_modules": ["query"]},
         "peft_config: No modules were targeted for adaptation. This might be caused by a combination of mismatched "
         "target modules and excluded modules."),
        # a misspelled target (list or regular expression) still gets the model's linear module names
        ({"target_modules": ["qeury"]},
         "peft_config: no module of the model matches qeury (its linear modules: query, key, value, dense)"),
        ({"target_modules": r".*\.qeury"},
         r"peft_config: no module of the model matches .*\.qeury (its linear modules: query, key, value, dense)"),
    ],
    ids=["layers_to_transform", "exclude_modules", "typo", "typo_regex"],
)  # fmt: skip
def test_peft_config_matching_nothing_says_why(tiny_bert_dir, settings, expected):
    from peft import LoraConfig

    from biohicl.errors import ConfigError
    from biohicl.models.model import BioHiCL

    model = BioHiCL.from_base(str(tiny_bert_dir))
    with pytest.raises(ConfigError) as raised:
        model.add_lora(peft_config=LoraConfig(r=2, **settings), verbose=False)
    assert str(raised.value).startswith(expected) and "\n" not in str(raised.value)
    assert not model.is_peft


def _peft(name: str, **settings):
    import peft

    return getattr(peft, name)(target_modules=["query", "value"], **settings)


@pytest.mark.parametrize(
    ("method", "settings", "expected"),
    [
        ("LoraConfig", {"r": 4, "lora_alpha": 0},
         f"peft_config: lora_alpha: {ALPHA_ZERO}"),
        ("LoraConfig", {"r": 0}, "peft_config: r: the adapter's rank must be at least 1, got 0"),
        ("LoraConfig", {"r": -2, "use_dora": True}, "peft_config: r: the adapter's rank must be at least 1, got -2"),
        ("AdaLoraConfig", {"lora_alpha": 0, "total_step": 10},
         f"peft_config: lora_alpha: {ALPHA_ZERO}"),
        ("AdaLoraConfig", {"init_r": 0, "total_step": 10},
         "peft_config: init_r: the adapter's rank must be at least 1, got 0"),
        ("AdaLoraConfig", {"target_r": 0, "total_step": 10},
         "peft_config: target_r: the adapter's rank must be at least 1, got 0"),
        ("LoHaConfig", {"r": 4, "alpha": 0},
         f"peft_config: alpha: {ALPHA_ZERO}"),
        ("LoKrConfig", {"r": 4, "alpha": 0.0},
         f"peft_config: alpha: {ALPHA_ZERO}"),
        ("LoKrConfig", {"r": 0}, "peft_config: r: the adapter's rank must be at least 1, got 0"),
    ],
    ids=["lora_alpha", "lora_r", "dora_r", "adalora_alpha", "adalora_init_r", "adalora_target_r", "loha_alpha",
         "lokr_alpha", "lokr_r"],
)  # fmt: skip
def test_a_peft_config_that_trains_nothing_is_refused_in_one_line(tiny_bert_dir, method, settings, expected):
    from biohicl.errors import ConfigError
    from biohicl.models.model import BioHiCL

    model = BioHiCL.from_base(str(tiny_bert_dir))
    with pytest.raises(ConfigError) as raised:
        model.add_lora(peft_config=_peft(method, **settings), verbose=False)
    assert str(raised.value) == expected and not model.is_peft


def test_add_lora_s_own_rank_and_alpha_and_a_rank_that_is_no_number_are_refused_in_one_line(tiny_bert_dir):
    """add_lora(alpha=0) trained an adapter scaled to nothing, r=0 ended in peft's traceback, and a peft_config rank
    that is no number (None, "8") in a TypeError of the check itself."""
    from biohicl.errors import ConfigError
    from biohicl.models.model import BioHiCL

    cases = [
        (
            {"alpha": 0},
            f"add_lora: alpha: {ALPHA_ZERO}",
        ),
        ({"r": 0}, "add_lora: r: the adapter's rank must be at least 1, got 0"),
        ({"peft_config": _peft("LoraConfig", r=4)}, None),
    ]
    for kwargs, expected in cases:
        model = BioHiCL.from_base(str(tiny_bert_dir))
        if expected is None:  # a config whose rank is set to something else after it was built
            kwargs["peft_config"].r = "8"
            expected = "peft_config: r: the adapter's rank must be a whole number, got '8'"
        with pytest.raises(ConfigError) as raised:
            model.add_lora(**kwargs, verbose=False)
        assert str(raised.value) == expected and not model.is_peft


def test_a_peft_config_with_negative_alpha_is_peft_s_to_allow(tiny_bert_dir):
    from biohicl.models.model import BioHiCL

    for config in (_peft("LoraConfig", r=2, lora_alpha=-4), _peft("LoHaConfig", r=2, alpha=-4)):
        model = BioHiCL.from_base(str(tiny_bert_dir))
        model.add_lora(peft_config=config, verbose=False)
        scaling = model.backbone.base_model.model.encoder.layer[0].attention.self.query.scaling["default"]
        assert model.is_peft and scaling == -4 / 2


@pytest.mark.parametrize(
    ("method", "settings", "expected"),
    [
        ("LoraConfig", {"rank_pattern": {"query": 0}},
         "peft_config: rank_pattern['query']: the adapter's rank must be at least 1, got 0"),
        ("LoraConfig", {"rank_pattern": {"value": -2}},
         "peft_config: rank_pattern['value']: the adapter's rank must be at least 1, got -2"),
        ("LoraConfig", {"rank_pattern": {"value": 2.5}},
         "peft_config: rank_pattern['value']: the adapter's rank must be a whole number, got 2.5"),
        ("LoraConfig", {"alpha_pattern": {"query": 0}}, f"peft_config: alpha_pattern['query']: {ALPHA_ZERO}"),
        ("LoHaConfig", {"rank_pattern": {"query": 0}},
         "peft_config: rank_pattern['query']: the adapter's rank must be at least 1, got 0"),
        ("LoKrConfig", {"alpha_pattern": {"value": 0.0}}, f"peft_config: alpha_pattern['value']: {ALPHA_ZERO}"),
    ],
    ids=["lora_rank_0", "lora_rank_negative", "lora_rank_fraction", "lora_alpha_0", "loha_rank_0", "lokr_alpha_0"],
)  # fmt: skip
def test_a_rank_or_alpha_pattern_entry_that_trains_nothing_is_refused_before_the_model_changes(
    tiny_bert_dir, method, settings, expected
):
    """peft 0.21 wrapped the layers before the bad one in place (the model half-wrapped) and then raised its own
    ``r should be a positive integer`` naming neither the pattern nor the key; ``alpha_pattern`` 0 trained those layers
    at scale 0 without a word."""
    import peft

    from biohicl.errors import ConfigError
    from biohicl.models.model import BioHiCL

    model = BioHiCL.from_base(str(tiny_bert_dir))
    before = {name: tensor.clone() for name, tensor in model.backbone.state_dict().items()}
    with pytest.raises(ConfigError) as raised:  # no target_modules: peft's default for BERT, query and value
        model.add_lora(peft_config=getattr(peft, method)(r=8, **settings), verbose=False)
    assert str(raised.value) == expected and not model.is_peft
    after = model.backbone.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[name], before[name]) for name in before)


def test_a_rank_and_alpha_pattern_that_train_are_peft_s(tiny_bert_dir):
    """A pattern's own rank and a negative alpha pass the check and reach the layers they name."""
    from peft import LoraConfig

    from biohicl.models.model import BioHiCL

    model = BioHiCL.from_base(str(tiny_bert_dir))
    model.add_lora(peft_config=LoraConfig(r=8, rank_pattern={"query": 2}, alpha_pattern={"query": -4}), verbose=False)
    attention = model.backbone.base_model.model.encoder.layer[0].attention.self
    assert (attention.query.r["default"], attention.query.scaling["default"]) == (2, -4 / 2)
    assert (attention.value.r["default"], attention.value.scaling["default"]) == (8, 8 / 8)


def test_train_biohicl_refuses_a_peft_config_scaled_to_nothing_before_training(tiny_bert_dir, tmp_path):
    from peft import LoraConfig

    from biohicl.errors import ConfigError
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.run import train_biohicl

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    args = BioHiCLTrainingArguments(
        output_dir=str(tmp_path / "run"), dataset_path=str(docs), base_model=str(tiny_bert_dir), max_steps=1,
        per_device_train_batch_size=4, max_length=16, report_to="none", use_cpu=True, save_strategy="no",
    )  # fmt: skip
    with pytest.raises(ConfigError) as raised:  # the arguments' lora_alpha 16 is not what would train
        train_biohicl(args, peft_config=LoraConfig(r=4, lora_alpha=0, target_modules=["query"]))
    assert str(raised.value) == f"peft_config: lora_alpha: {ALPHA_ZERO}"
    assert not list(tmp_path.glob("run/**/adapter_model.safetensors"))


def test_demo_refuses_zero_steps_before_building_anything(tmp_path, run_cli):
    result = run_cli(["demo", "--max_steps", "0", "--output_dir", str(tmp_path / "demo")])
    assert "biohicl demo: error: max_steps: the demo trains at least 1 step, got 0" in result.err
    assert not (tmp_path / "demo").exists()


def test_missing_dataset(tiny_bert_dir, tmp_path, run_cli):
    result = run_cli(train_argv(tiny_bert_dir, tmp_path / "nope.jsonl", tmp_path / "run"))
    assert "dataset_path:" in result.err and "nope.jsonl does not exist" in result.err


def test_eval_tasks_without_an_eval_strategy_is_refused_not_silently_skipped(tiny_bert_dir, tmp_path, run_cli):
    docs = write_docs(tmp_path / "docs.jsonl", [["D1"], ["D1"], ["D2"], ["D2"]])
    result = run_cli(train_argv(tiny_bert_dir, docs, tmp_path / "run", "--eval_tasks", "pubmedqa:dev"))
    assert "eval_tasks: set --eval_strategy steps|epoch to evaluate them" in result.err
    assert not (tmp_path / "run").exists()


def test_dataset_without_a_label_column(tiny_bert_dir, tmp_path, run_cli):
    dataset = tmp_path / "docs.jsonl"
    dataset.write_text('{"pmid": "1", "abstract": "a"}\n{"pmid": "2", "abstract": "b"}\n')
    result = run_cli(train_argv(tiny_bert_dir, dataset, tmp_path / "run"))
    assert "no MeSH label column" in result.err


def test_malformed_jsonl_dataset(tiny_bert_dir, tmp_path, run_cli):
    dataset = tmp_path / "docs.jsonl"
    dataset.write_text('{"pmid": "1", "abstract": "a", "mesh": ["D003920"]}\n{"pmid": "2", "abs')
    result = run_cli(train_argv(tiny_bert_dir, dataset, tmp_path / "run"))
    assert "docs.jsonl" in result.err and not (tmp_path / "run" / "adapter_model.safetensors").exists()


def test_a_json_list_dataset_names_the_element_not_a_line(tmp_path):
    dataset = tmp_path / "docs.json"
    dataset.write_text(json.dumps([{"pmid": "1", "mesh": ["D003920"]}, "oops"], indent=2), encoding="utf-8")
    with pytest.raises(DataError, match=r"docs\.json: element 2: expected a JSON object per document, got str$"):
        read_documents(dataset)
    dataset.with_suffix(".jsonl").write_text('{"pmid": "1"}\n\n"oops"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"docs\.jsonl: line 3: expected a JSON object per document, got str$"):
        read_documents(dataset.with_suffix(".jsonl"))


def test_a_corpus_json_object_points_to_build_dataset(tmp_path):
    corpus = tmp_path / "ori_pqal.json"  # PubMedQA's shape: PMID -> record, pretty-printed
    corpus.write_text(json.dumps({"1": {"QUESTION": "q", "CONTEXTS": ["c"], "MESHES": ["Humans"]}}, indent=1))
    with pytest.raises(DataError, match=r"ori_pqal\.json: one JSON object, not documents .*build-dataset --input"):
        read_documents(corpus)
    one_line = tmp_path / "one.json"  # one document on one line is still read as JSON lines
    one_line.write_text(json.dumps({"pmid": "1", "abstract": "a", "mesh": ["D003920"]}))
    assert read_documents(one_line)["pmid"] == ["1"]


def test_no_document_with_a_known_label(tiny_bert_dir, tmp_path, run_cli):
    dataset = write_docs(tmp_path / "docs.jsonl", [["D999999"], ["Not A Descriptor"], [], ["D999998"]])
    result = run_cli(train_argv(tiny_bert_dir, dataset, tmp_path / "run"))
    assert "docs.jsonl" in result.err and "no training document has a MeSH label MeSH 2024 knows" in result.err
    assert "--mesh_path" in result.err and not (tmp_path / "run" / "adapter_model.safetensors").exists()


# ------------------------------------------------------------------------------------------- losses
def unit(rows: list[list[float]]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_batch_without_a_positive_pair_gives_zero_not_nan(mesh):
    siml = mesh.similarity_matrix([["D003920"], ["D001927"], ["D009203"], []])  # diabetes, brain, infarction, none
    assert (siml.fill_diagonal_(0) <= 0.3).all()
    emb = unit([[1, 0], [0, 1], [1, 1], [1, -1]])
    assert HierarchicalContrastiveLoss()(emb, mesh.similarity_matrix([["D003920"], ["D001927"], ["D009203"], []])) == 0
    loss = BioHiCLLoss()(emb, mesh.similarity_matrix([["D003920"], ["D001927"], ["D009203"], []]))
    assert all(math.isfinite(float(v)) for v in loss.values())
    # only negatives: the MSE pushes SimE of the labelled pairs towards 0 (hand-computed: pairs (0,1),(0,2),(1,2))
    cos = [0.0, 1 / math.sqrt(2), 1 / math.sqrt(2)]
    assert float(loss["loss_mse"]) == pytest.approx(sum(c * c for c in cos) / 3, abs=1e-6)


def test_all_identical_label_sets(mesh):
    siml = mesh.similarity_matrix([["D003924", "D006801"]] * 4)
    assert torch.allclose(siml, torch.ones(4, 4))
    emb = unit([[1, 0], [0.6, 0.8], [0, 1], [-1, 0]])
    out = BioHiCLLoss()(emb, siml)
    assert all(math.isfinite(float(v)) for v in out.values())
    # positives only, no negatives: each L_con term is -log(e^s / e^s) = 0, added to the total, not logged
    assert "loss_con" not in out and float(out["loss"]) == float(out["loss_mse"])


def test_batch_with_no_labels_at_all(mesh):
    siml = mesh.similarity_matrix([[], [], []])
    out = BioHiCLLoss()(unit([[1, 0], [0, 1], [1, 1]]), siml)
    assert float(out["loss"]) == 0.0 and float(out["loss_mse"]) == 0.0


def test_zero_embeddings_are_finite(mesh):
    siml = mesh.similarity_matrix([["D003920"], ["D003924"]])
    out = BioHiCLLoss()(torch.zeros(2, 4), siml)  # a collapsed encoder: normalize(0) = 0, not NaN
    assert all(math.isfinite(float(v)) for v in out.values())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("loss", [FilteredMSELoss(), HierarchicalContrastiveLoss(), BioHiCLLoss()])
def test_nan_or_inf_embeddings_are_refused(mesh, bad, loss):
    siml = mesh.similarity_matrix([["D003920"], ["D003924"], ["D001927"]])
    emb = unit([[1, 0], [0.6, 0.8], [0, 1]])
    emb[1, 0] = bad
    with pytest.raises(ValueError, match=r"embeddings: .*(NaN|inf)"):
        loss(emb, siml)


def test_nan_siml_is_refused():
    siml = torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]])
    with pytest.raises(ValueError, match="siml"):
        BioHiCLLoss()(unit([[1, 0], [0, 1]]), siml)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"siml must be \[3, 3\] for 3 embeddings, got \(2, 2\)"):
        FilteredMSELoss()(torch.ones(3, 4), torch.ones(2, 2))


# ------------------------------------------------------------------------------------------- issue #16
def test_latin1_byte_in_a_jsonl_dataset_is_one_line_naming_file_and_line(tiny_bert_dir, tmp_path, run_cli):
    dataset = tmp_path / "docs.jsonl"
    good = json.dumps({"pmid": "1", "title": "t", "abstract": "a", "mesh": ["D003920"]}).encode()
    dataset.write_bytes(good + b"\n" + b'{"pmid": "2", "title": "caf\xe9", "abstract": "b", "mesh": ["D003924"]}\n')
    result = run_cli(train_argv(tiny_bert_dir, dataset, tmp_path / "run"))
    assert f"{dataset}: line 2: not UTF-8 (byte 0xe9 at column 28)" in result.err
    assert not (tmp_path / "run").exists()


def test_a_one_document_jsonl_is_refused_not_trained(tiny_bert_dir, tmp_path, run_cli):
    dataset = write_docs(tmp_path / "docs.jsonl", [["D003920"]])
    result = run_cli(train_argv(tiny_bert_dir, dataset, tmp_path / "run"))
    assert f"{dataset}: 1 training document" in result.err and "need at least 2" in result.err
    assert "training_curves.png" not in result.out
    assert not (tmp_path / "run" / "adapter_model.safetensors").exists()


def test_a_built_one_document_dataset_is_refused_with_the_real_reason(tiny_bert_dir, tmp_path, run_cli):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "built"
    (root / "documents").mkdir(parents=True)
    (root / "pairs").mkdir()
    documents = {"pmid": ["1"], "title": ["t"], "abstract": ["a"], "mesh": [["D003920"]], "split": ["train"]}
    pq.write_table(pa.table(documents), root / "documents" / "documents-00000.parquet")
    empty_pairs = pa.table({"anchor": pa.array([], pa.int64()), "partner": pa.array([], pa.int64()),
                            "siml": pa.array([], pa.float32())})  # fmt: skip
    pq.write_table(empty_pairs, root / "pairs" / "pairs-00000.parquet")  # what build-dataset writes for one document
    result = run_cli(train_argv(tiny_bert_dir, root, tmp_path / "run"))
    assert "1 training document" in result.err and "corresponds to no data" not in result.err


def test_all_documents_with_one_label_set_are_refused(tiny_bert_dir, tmp_path, run_cli):
    dataset = write_docs(tmp_path / "docs.jsonl", [["D003920", "D006801"]] * 4)
    result = run_cli(train_argv(tiny_bert_dir, dataset, tmp_path / "run"))
    assert "all 4 training documents have the same MeSH label set" in result.err and "no negatives" in result.err
    assert not (tmp_path / "run" / "adapter_model.safetensors").exists()


def test_the_cli_names_only_the_files_it_wrote(tiny_bert_dir, tmp_path, run_cli):
    dataset = write_docs(tmp_path / "docs.jsonl", [["D003920"], ["D003924"], ["D009203"], ["D001927"]])
    # logging every 10 steps, 1 step: no loss is logged, so no curve can be drawn
    result = run_cli(train_argv(tiny_bert_dir, dataset, tmp_path / "run", "--logging_steps", "10"), expect_error=False)
    assert result.code == 0, result.err
    assert not (tmp_path / "run" / "training_curves.png").exists()
    saved = [line for line in result.out.splitlines() if line.startswith("saved the trained model")]
    assert saved == [f"saved the trained model, trainer_state.json, training_summary.json to {tmp_path / 'run'}"]


def test_training_on_cpu_does_not_warn_about_pin_memory(tiny_bert_dir, tmp_path, run_cli):
    import warnings

    dataset = write_docs(tmp_path / "docs.jsonl", [["D003920"], ["D003924"], ["D009203"], ["D001927"]])
    argv = [a for a in train_argv(tiny_bert_dir, dataset, tmp_path / "run") if a != "--use_cpu"]  # the default device
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_cli(argv, expect_error=False)
    assert result.code == 0, result.err
    assert not [w for w in caught if "pin_memory" in str(w.message)]
    assert "pin_memory" not in result.err


def test_documents_dropped_for_other_reasons_are_counted_not_blamed_on_the_hierarchy(tiny_bert_dir, tmp_path, run_cli):
    # two PubMedQA test abstracts (decontaminated away) and one unlabelled line: the hierarchy is not the cause
    rows = [{"pmid": pmid, "title": "t", "abstract": "a", "mesh": ["D003920"]} for pmid in ("21645374", "16418930")]
    rows.append({"pmid": "x1", "title": "t", "abstract": "a", "mesh": ["Not a descriptor"]})
    dataset = tmp_path / "docs.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = run_cli(train_argv(tiny_bert_dir, dataset, tmp_path / "run"))
    assert "no training document left (2 evaluation test data, 1 without a known MeSH label" in result.err
    assert "--mesh_path" not in result.err


def test_a_missing_dataset_folder_says_how_to_build_it(tiny_bert_dir, tmp_path, run_cli):
    missing = tmp_path / "runs" / "study" / "dataset"
    result = run_cli(train_argv(tiny_bert_dir, missing, tmp_path / "run"))
    assert f"dataset_path: {missing} does not exist (build it with: biohicl build-dataset --output {missing})" in (
        result.err
    )
    result = run_cli(train_argv(tiny_bert_dir, tmp_path / "nope.jsonl", tmp_path / "run"))
    assert result.err.rstrip().endswith("nope.jsonl does not exist")  # a documents file is not built

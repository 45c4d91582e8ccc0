"""An output that is an input is refused in one line before any work, the input untouched: a run's folder that is,
holds or sits in its base model's or dataset's folder (``biohicl train``, ``train_biohicl``), an encode output that is
its input, a ``--compare`` report written over a compared record. A resume from a checkpoint whose file is damaged
is one line naming that file and the earlier checkpoint to resume from, the checkpoint untouched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from test_trainer import make_args

from biohicl.errors import ConfigError, DataError
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.run import train_biohicl
from tests.conftest import synthetic_documents


def _digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name → sha256)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def documents(tmp_path) -> Path:
    path = tmp_path / "documents.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    return path


def _train_argv(base: Path, dataset: Path, output: Path) -> list[str]:
    return [
        "train", "--base_model", str(base), "--dataset_path", str(dataset), "--output_dir", str(output),
        "--max_steps", "1", "--per_device_train_batch_size", "4", "--use_cpu", "--max_length", "32",
        "--report_to", "none", "--disable_tqdm",
    ]  # fmt: skip


# ------------------------------------------------------------------------------------- train: output over inputs
@pytest.mark.parametrize(
    ("output", "relation"),
    [("work/base", "is")],
)
def test_a_run_folder_over_its_base_models_folder_is_refused_before_loading(
    tiny_bert_dir, documents, tmp_path, run_cli, output, relation
):
    base = tmp_path / "work" / "base"
    shutil.copytree(tiny_bert_dir, base)
    before = _digests(tmp_path / "work")
    result = run_cli(_train_argv(base, documents, tmp_path / output))
    assert result.err.strip() == (
        f"biohicl train: error: output_dir: {tmp_path / output} {relation} the base_model folder {base}; write the "
        "run to a folder of its own"
    )
    assert _digests(tmp_path / "work") == before  # nothing written: no adapter, no config, tokenizer kept
    assert not (base / "run").exists()


@pytest.mark.parametrize(
    ("output", "relation"),
    [("ds", "is")],
)
def test_a_run_folder_over_its_dataset_folder_is_refused(tiny_bert_dir, tmp_path, run_cli, output, relation):
    dataset = tmp_path / "ds"
    dataset.mkdir()
    (dataset / "summary.json").write_text("{}", encoding="utf-8")
    result = run_cli(_train_argv(tiny_bert_dir, dataset, tmp_path / output))
    assert result.err.strip() == (
        f"biohicl train: error: output_dir: {tmp_path / output} {relation} the dataset_path folder {dataset}; "
        "write the run to a folder of its own"
    )
    assert sorted(p.name for p in dataset.iterdir()) == ["summary.json"]


def test_a_run_folder_inside_its_dataset_folder_is_kept(tiny_bert_dir, tmp_path):
    """The dataset reader reads its own files only (``documents/``, ``pairs/``), none of a run's."""
    args = BioHiCLTrainingArguments(**_values(tiny_bert_dir, tmp_path, tmp_path / "run"))
    assert args.output_dir == str(tmp_path / "run")


def test_a_run_folder_holding_its_base_or_dataset_folder_is_kept(tiny_bert_dir, tmp_path):
    # `--output_dir . --dataset_path ds` or `--output_dir models --base_model models/minilm` were refused: a run writes
    # its own files at its folder's top (checkpoint-*, adapter files), nothing under a subfolder it did not make
    from biohicl.training.arg_checks import check_output_folder

    base = tmp_path / "models" / "minilm"
    shutil.copytree(tiny_bert_dir, base)
    (tmp_path / "ds").mkdir()

    class Args:
        output_dir = str(tmp_path / "models")
        base_model = str(base)
        dataset_path = str(tmp_path / "ds")

    check_output_folder(Args())
    Args.output_dir = str(tmp_path)
    check_output_folder(Args())
    Args.output_dir = str(base / "run")  # a run inside its base's folder leaves the base's files alone
    check_output_folder(Args())


def test_train_biohicl_refuses_an_output_over_the_base_given_after_the_arguments(tiny_bert_dir, documents, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_bert_dir, base)
    before = _digests(base)
    with pytest.raises(ConfigError, match=r"^output_dir: .* is the base_model folder "):
        BioHiCLTrainingArguments(**{**_values(base, documents, base)})
    args = make_args(base, documents, tmp_path / "run")
    args.output_dir = str(base / ".." / "base")  # spelt otherwise: the same folder
    with pytest.raises(ConfigError) as raised:
        train_biohicl(args)
    assert str(raised.value) == (
        f"output_dir: {base / '..' / 'base'} is the base_model folder {base}; write the run to a folder of its own"
    )
    assert _digests(base) == before


def _values(base: Path, documents: Path, output: Path) -> dict:
    return dict(
        output_dir=str(output), base_model=str(base), dataset_path=str(documents), max_steps=1, use_cpu=True,
        report_to="none", per_device_train_batch_size=4,
    )  # fmt: skip


def test_a_hub_id_base_is_no_folder_and_an_output_of_its_name_is_kept(documents, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = BioHiCLTrainingArguments(**_values("org/model", documents, Path("org/model")))  # type: ignore[arg-type]
    assert args.output_dir == "org/model" and args.base_model == "org/model"


# ------------------------------------------------------------------------------------- resume: a damaged file
@pytest.fixture(scope="module")
def finished_run(tiny_bert_dir, tmp_path_factory) -> tuple[Path, Path]:
    """A 6-step run with checkpoints at steps 2, 4 and 6, and its documents file."""
    root = tmp_path_factory.mktemp("resume_damaged")
    documents = root / "documents.jsonl"
    documents.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    out = root / "run"
    train_biohicl(make_args(tiny_bert_dir, documents, out, max_steps=6, save_strategy="steps", save_steps=2))
    assert all((out / f"checkpoint-{step}").is_dir() for step in (2, 4, 6))
    return out, documents


DAMAGEABLE = ["trainable_weights.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"]


@pytest.mark.parametrize("name", DAMAGEABLE)
def test_a_resume_from_a_checkpoint_with_a_truncated_file_names_it_and_the_earlier_one(
    tiny_bert_dir, finished_run, tmp_path, name
):
    out = tmp_path / "run"
    shutil.copytree(finished_run[0], out)
    damaged = out / "checkpoint-4" / name
    damaged.write_bytes(damaged.read_bytes()[:30])  # head -c 30
    before = _digests(out)
    args = make_args(
        tiny_bert_dir, finished_run[1], out, max_steps=6, save_strategy="steps", save_steps=2,
        resume_from_checkpoint=str(out / "checkpoint-4"),
    )  # fmt: skip
    with pytest.raises(DataError) as raised:
        train_biohicl(args)
    message = str(raised.value)
    kind = "safetensors" if name.endswith(".safetensors") else "torch"
    assert message.startswith(f"{damaged}: damaged or truncated (not a whole {kind} file: ")
    assert message.endswith(
        f"); resume from the earlier checkpoint {out / 'checkpoint-2'} (--resume_from_checkpoint "
        f"{out / 'checkpoint-2'}) or start a fresh run"
    )
    assert "\n" not in message
    assert _digests(out) == before  # nothing trained over, nothing deleted


def test_a_damaged_first_checkpoint_has_no_earlier_one_to_name(tiny_bert_dir, finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run[0], out)
    damaged = out / "checkpoint-2" / "optimizer.pt"
    damaged.write_bytes(damaged.read_bytes()[:30])
    args = make_args(
        tiny_bert_dir, finished_run[1], out, max_steps=6, save_strategy="steps", save_steps=2,
        resume_from_checkpoint=str(out / "checkpoint-2"),
    )  # fmt: skip
    with pytest.raises(DataError) as raised:
        train_biohicl(args)
    assert str(raised.value) == (
        f"{damaged}: damaged or truncated (not a whole torch file: File is not a zip file); no earlier checkpoint "
        "to resume from: start a fresh run (without --resume_from_checkpoint)"
    )


def test_the_command_resuming_the_last_checkpoint_with_damaged_weights_exits_2(
    tiny_bert_dir, finished_run, tmp_path, run_cli
):
    out = tmp_path / "run"
    shutil.copytree(finished_run[0], out)
    for step in (4, 6):  # the last one damaged, and the one before it: the earlier named is an undamaged one
        damaged = out / f"checkpoint-{step}" / "trainable_weights.safetensors"
        damaged.write_bytes(damaged.read_bytes()[:30])
    argv = [
        "train", "--base_model", str(tiny_bert_dir), "--dataset_path", str(finished_run[1]), "--output_dir", str(out),
        "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "2", "--per_device_train_batch_size", "8",
        "--max_length", "32", "--lora_target_modules", "query", "value", "--seed", "7", "--logging_steps", "1",
        "--base_model_hub_id", "test/tiny-bert", "--use_cpu", "--report_to", "none", "--disable_tqdm",
        "--resume_from_checkpoint", "last",
    ]  # fmt: skip
    line = run_cli(argv).err.strip().splitlines()[-1]  # after the pooling guess of the base, which run_cli allows
    assert line.startswith(
        f"biohicl train: error: {out / 'checkpoint-6' / 'trainable_weights.safetensors'}: damaged or "
    )
    assert line.endswith(f"resume from the earlier checkpoint {out / 'checkpoint-2'} (--resume_from_checkpoint "
                         f"{out / 'checkpoint-2'}) or start a fresh run")  # fmt: skip


def test_an_undamaged_checkpoint_still_resumes(tiny_bert_dir, finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run[0], out)
    shutil.rmtree(out / "checkpoint-6")
    args = make_args(
        tiny_bert_dir, finished_run[1], out, max_steps=6, save_strategy="steps", save_steps=2,
        resume_from_checkpoint="last",
    )  # fmt: skip
    train_biohicl(args)
    assert (out / "checkpoint-6" / "trainable_weights.safetensors").is_file()


# ------------------------------------------------------------------------------------- encode, compare: output = input
def test_encode_refuses_an_output_that_is_its_input(tiny_bert_dir, tmp_path, run_cli):
    source = tmp_path / "in.txt"
    source.write_text("heart cells\nbrain\n", encoding="utf-8")
    result = run_cli(["encode", "--model", str(tiny_bert_dir), "--input", str(source), "--output", str(source)])
    assert result.err.strip() == (
        f"biohicl encode: error: --output: {source} is the --input file {source}; write it elsewhere"
    )
    assert source.read_text(encoding="utf-8") == "heart cells\nbrain\n"
    linked = tmp_path / "linked.st"
    os.link(source, linked)  # a hard link: another name, the same file
    result = run_cli(["encode", "--model", str(tiny_bert_dir), "--input", str(source), "--output", str(linked)])
    assert (
        result.err.strip()
        == f"biohicl encode: error: --output: {linked} is the --input file {source}; write it elsewhere"
    )
    assert source.read_text(encoding="utf-8") == "heart cells\nbrain\n"


@pytest.mark.parametrize("option", ["--markdown", "--plot"])
def test_compare_refuses_a_report_written_over_a_compared_record(tmp_path, run_cli, option, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("a.json", "b.json"):
        Path(name).write_text('{"results": {}}', encoding="utf-8")
    result = run_cli(["evaluate", "--compare", "a.json", "b.json", option, "./b.json"])
    assert (
        result.err.strip()
        == f"biohicl evaluate: error: {option}: ./b.json is the --compare file b.json; write it elsewhere"
    )
    assert Path("b.json").read_text(encoding="utf-8") == '{"results": {}}'
    assert result.out == ""  # refused before the records were read or the table printed


def test_compare_refuses_the_markdown_and_the_plot_in_one_file(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli(["evaluate", "--compare", "a.json", "b.json", "--markdown", "r.out", "--plot", "r.out"])
    assert result.err.strip() == "biohicl evaluate: error: --markdown, --plot: both name r.out; give each its own file"


def test_distinct_files_of_evaluate_outputs(tmp_path):
    from biohicl.cli.output_paths import check_distinct_files

    out = tmp_path / "c.json"
    with pytest.raises(ConfigError) as raised:
        check_distinct_files({"--output": str(out), "--markdown": str(out), "--plot": None})
    assert str(raised.value) == f"--output, --markdown: both name {out}; give each its own file"
    check_distinct_files({"--output": str(out), "--markdown": str(tmp_path / "c.md"), "--plot": ""})  # distinct
    link = tmp_path / "d.json"
    link.symlink_to(out)  # a dangling link: the file it will write is out
    with pytest.raises(ConfigError, match=r"^--output, --plot: both name "):
        check_distinct_files({"--output": str(out), "--plot": str(link)})


def test_evaluate_refuses_a_report_over_its_results_before_the_model_loads(tiny_bert_dir, tmp_path, run_cli):
    # `biohicl evaluate MODEL --output c.json --markdown c.json` wrote the table over the results it had just saved
    out = tmp_path / "c.json"
    result = run_cli(
        ["evaluate", str(tiny_bert_dir), "--tasks", "biosses", "--output", str(out), "--markdown", str(out)]
    )
    assert result.err.strip() == (
        f"biohicl evaluate: error: --output, --markdown: both name {out}; give each its own file"
    )
    assert not out.exists()

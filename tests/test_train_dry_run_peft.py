"""``biohicl train --dry_run`` with a plain peft adapter folder (``adapter_config.json``, no ``biohicl_config.json``)
as the base: the run loads it merged into the base its ``base_model_name_or_path`` names
(:func:`~biohicl.models.backbone.plain_adapter_base`), so the dry run checks that base offline as it checks a BioHiCL
adapter's recorded base: missing is listed (exit 1), refused is the run's one line (exit 2). Tiny BERT, 24 synthetic
documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biohicl.cli.main import main
from tests.conftest import synthetic_documents


def plain_adapter(tiny_bert_dir: Path, folder: Path, base: str, **more: str) -> Path:
    """A LoRA adapter over the tiny BERT saved by peft alone at ``folder``, its ``adapter_config.json`` naming
    ``base`` (and ``more``)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    model = get_peft_model(AutoModel.from_pretrained(tiny_bert_dir), LoraConfig(r=2, target_modules=["query", "value"]))
    model.save_pretrained(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base, **more}))
    assert not (folder / "biohicl_config.json").exists() and not (folder / "config.json").exists()
    return folder


def run_argv(base: Path, root: Path, documents: Path | None = None) -> list[str]:
    if documents is None:
        documents = root / "docs.jsonl"
        documents.write_text("".join(json.dumps(d) + "\n" for d in synthetic_documents()), encoding="utf-8")
    return [
        "train", "--dataset_path", str(documents), "--output_dir", str(root / "out"), "--base_model", str(base),
        "--max_steps", "1", "--per_device_train_batch_size", "4", "--report_to", "none", "--use_cpu",
    ]  # fmt: skip


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr("biohicl.training.run.build_model", lambda *args: pytest.fail("a dry run loaded a model"))


def test_a_plain_adapter_base_whose_own_base_is_not_here_is_missing_with_the_runs_reason(
    tiny_bert_dir, tmp_path, capsys, monkeypatch
):
    """The dry run passed the adapter folder and then gave the run's one line (exit 2), or listed it ``ok`` when the
    data was missing too; its base is missing, listed as a BioHiCL adapter's is."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    plain = plain_adapter(tiny_bert_dir, tmp_path / "plain", "org/not-here-xyz")
    argv = run_argv(plain, tmp_path)
    assert main(argv) == 2
    reason = capsys.readouterr().err.strip().splitlines()[-1].removeprefix("biohicl train: error: ")
    cause = "org/not-here-xyz at revision main is not in the Hugging Face cache"
    assert reason.startswith(
        f"{plain / 'adapter_config.json'}: its base 'org/not-here-xyz' could not be found ({cause}"
    )
    monkeypatch.setattr("biohicl.training.run.build_model", lambda *args: pytest.fail("a dry run loaded a model"))
    assert main([*argv, "--dry_run"]) == 1
    captured = capsys.readouterr()
    missing = f"  MISSING model base_model: {plain} is an adapter; its base org/not-here-xyz cannot be loaded offline"
    assert f"{missing} ({cause}" in captured.out
    assert captured.err.strip().endswith("missing before the run can train: model base_model")
    assert main([*run_argv(plain, tmp_path, tmp_path / "nodata.jsonl"), "--dry_run"]) == 1  # both listed
    captured = capsys.readouterr()
    assert f"{missing} ({cause}" in captured.out
    assert captured.err.strip().endswith("missing before the run can train: dataset, model base_model")
    assert not (tmp_path / "out").exists()


def test_a_plain_adapter_base_whose_base_the_run_would_download_passes_and_downloads_nothing(
    tiny_bert_dir, tmp_path, capsys, monkeypatch, no_training
):
    """With the Hub reachable the run downloads the adapter's base: the dry run says so (exit 0) and reads no file
    of it (its base check had resolved it with downloads allowed)."""
    import huggingface_hub
    from huggingface_hub import constants

    real = huggingface_hub.snapshot_download

    def cache_only(*args, **kwargs):
        assert kwargs.get("local_files_only"), f"a dry run downloaded {args}"
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cache_only)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    plain = plain_adapter(tiny_bert_dir, tmp_path / "plain", "org/not-here-xyz")
    assert main([*run_argv(plain, tmp_path), "--dry_run"]) == 0
    ok = f"  ok      model base_model: {plain} → {plain} (an adapter; its base org/not-here-xyz is not in the cache: "
    assert ok + "downloaded when training starts)\n" in capsys.readouterr().out


def test_a_plain_adapter_base_whose_base_is_a_folder_here_passes_naming_it(
    tiny_bert_dir, tmp_path, capsys, no_training
):
    """A folder loads as it is, whatever revision the adapter records (``resolve_base``)."""
    plain = plain_adapter(tiny_bert_dir, tmp_path / "plain", str(tiny_bert_dir), revision="abc")
    assert main([*run_argv(plain, tmp_path), "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert (
        f"  ok      model base_model: {plain} → {plain} (an adapter; its base {tiny_bert_dir} → {tiny_bert_dir})\n"
        in out
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("which", ["a plain adapter", "itself"])
def test_a_plain_adapter_base_the_run_refuses_is_the_runs_line_not_a_missing_base(
    tiny_bert_dir, tmp_path, capsys, monkeypatch, which
):
    """A plain adapter whose base is another plain adapter (a stack), or itself, is refused by the run, however the
    base's own base stands: the dry run gives that line (exit 2), not the stack's missing base or a loop (exit 1)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    plain = tmp_path / "plain"
    other = plain_adapter(tiny_bert_dir, tmp_path / "other", "org/not-here-xyz")  # its base missing
    plain_adapter(tiny_bert_dir, plain, str(other if which == "a plain adapter" else plain))
    argv = run_argv(plain, tmp_path)
    assert main(argv) == 2
    real = capsys.readouterr().err.strip().splitlines()[-1]
    assert real.startswith(f"biohicl train: error: {plain / 'adapter_config.json'}: field base_model_name_or_path")
    monkeypatch.setattr("biohicl.training.run.build_model", lambda *args: pytest.fail("a dry run loaded a model"))
    assert main([*argv, "--dry_run"]) == 2
    assert capsys.readouterr().err.strip() == real

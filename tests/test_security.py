"""Security: only safetensors are loaded, remote code never runs, registry revisions are commit shas (or explicitly
unpinned), and the Hub token is never written to a file, a card, stdout/stderr or a log record."""

from __future__ import annotations

import ast
import fnmatch
import io
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from biohicl.errors import ConfigError, PublishError
from biohicl.models.model import BioHiCL
from biohicl.models.registry import RegistryEntry, default_registry, is_commit_sha
from biohicl.models.resolver import SAFE_PATTERNS

PACKAGE = Path(__file__).resolve().parents[1] / "biohicl"
FAKE_TOKEN = "hf_" + "Sec9" * 9  # token-shaped, not a real token
PICKLE_FILES = ["pytorch_model.bin", "model.pt", "weights.pth", "x.pkl", "model.ckpt", "tf_model.h5",
                "flax_model.msgpack", "optimizer.pt", "training_args.bin"]  # fmt: skip


# ------------------------------------------------------------------------------------------- remote code
def _keyword_values(tree: ast.AST, name: str) -> list[ast.AST]:
    values = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == name:
            values.append(node.value)
        elif isinstance(node, ast.Dict):
            values += [v for k, v in zip(node.keys, node.values, strict=True)
                       if isinstance(k, ast.Constant) and k.value == name]  # fmt: skip
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == name:
            values.append(node)  # kwargs["trust_remote_code"] = ... : never allowed
    return values


def test_trust_remote_code_is_only_ever_false_in_the_package_source():
    found = []
    for file in sorted(PACKAGE.rglob("*.py")):
        for value in _keyword_values(ast.parse(file.read_text(encoding="utf-8")), "trust_remote_code"):
            found.append((file.name, isinstance(value, ast.Constant) and value.value is False))
    assert found and all(ok for _, ok in found), found  # at least one explicit False, never anything else


def test_loading_asks_for_safetensors_without_remote_code(tiny_bert_dir, monkeypatch):
    import transformers

    seen = []
    original = transformers.AutoModel.from_pretrained

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", spy)
    BioHiCL.from_pretrained(tiny_bert_dir)
    assert seen and all(k.get("trust_remote_code") is False and k.get("use_safetensors") is True for k in seen)


def test_remote_code_in_a_model_folder_never_runs(tiny_bert_dir, tmp_path):
    folder = tmp_path / "evil-model"
    shutil.copytree(tiny_bert_dir, folder)
    marker = tmp_path / "pwned"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import BertModel as "
                                    "EvilModel\nfrom transformers import BertTokenizer as EvilTokenizer\n")  # fmt: skip
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "evil.EvilModel"}}))
    try:
        model = BioHiCL.from_pretrained(folder)
    except Exception as err:  # refusing is fine; running the code is not
        assert "evil" in str(err) or "remote code" in str(err).lower() or "trust_remote_code" in str(err)
    else:
        assert type(model.backbone).__name__ == "BertModel"
    assert not marker.exists()


def plant_custom_tokenizer(folder: Path, reference: str, marker: Path) -> None:
    """``folder``'s tokenizer mapped to code beside it (``evil.EvilTok``) or in another repo (``owner/repo--...``),
    a class transformers does not have, so that only running the code would load it; the code writes ``marker``."""
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                    "from transformers import BertTokenizer as EvilTok\n")  # fmt: skip
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(auto_map={"AutoTokenizer": [None, reference]}, tokenizer_class="EvilTok")
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("reference", ["evil.EvilTok", "attacker/code-repo--evil.EvilTok"])
@pytest.mark.parametrize("layout", ["biohicl adapter", "plain peft adapter"])
def test_a_tokenizer_that_needs_custom_code_is_refused_without_a_prompt(tmp_path, monkeypatch, reference, layout):
    # an adapter folder has no config.json: transformers asked "Do you wish to run the custom code? [y/N]" and one
    # "y" (`echo y | biohicl evaluate ...`) ran evil.py; with no stdin it was a raw traceback
    from biohicl.errors import ModelLoadError
    from tests.conftest import save_tiny_adapter_run

    run = save_tiny_adapter_run(tmp_path)
    if layout == "plain peft adapter":  # peft's own folder: adapter_config.json naming a local base, no biohicl files
        (run / "biohicl_config.json").unlink()
        adapter = json.loads((run / "adapter_config.json").read_text())
        (run / "adapter_config.json").write_text(
            json.dumps({**adapter, "base_model_name_or_path": str(tmp_path / "base")})
        )
    marker = tmp_path / "pwned"
    plant_custom_tokenizer(run, reference, marker)
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or "y")  # the "echo y" answer
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    with pytest.raises(ModelLoadError) as err:
        BioHiCL.from_pretrained(run, base_model_path=tmp_path / "base" if layout == "biohicl adapter" else None)
    assert asked == [] and not marker.exists()
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{run / 'tokenizer_config.json'}: field auto_map")
    assert reference in message and "trust_remote_code" in message


def test_a_tokenizer_mapped_to_custom_code_with_a_builtin_class_loads_the_builtin(tmp_path, monkeypatch):
    # the code is never run, but a tokenizer_class transformers has is loaded as it, as transformers does
    from tests.conftest import save_tiny_adapter_run

    run = save_tiny_adapter_run(tmp_path)
    marker = tmp_path / "pwned"
    plant_custom_tokenizer(run, "evil.EvilTok", marker)
    config = json.loads((run / "tokenizer_config.json").read_text())
    (run / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "BertTokenizer"}))
    monkeypatch.setattr("builtins.input", lambda prompt="": pytest.fail(f"prompted: {prompt}"))
    model = BioHiCL.from_pretrained(run, base_model_path=tmp_path / "base")
    assert type(model.tokenizer).__name__ == "BertTokenizer" and not marker.exists()


@pytest.mark.parametrize(
    "value",
    ["attacker/evil-kernel", "attacker/evil-kernel@v1:attn", "paged|attacker/evil-kernel", "my_attention",
     {"": "attacker/evil-kernel"}, 3],
)  # fmt: skip
def test_a_config_naming_an_attention_kernel_or_an_unknown_attention_is_refused(tiny_bert_dir, tmp_path, value,
                                                                                monkeypatch):  # fmt: skip
    # "attacker/evil-kernel" made transformers fetch that Hub repo's native code (`kernels`); a raw ImportError here
    import transformers

    from biohicl.errors import ModelLoadError

    folder = tmp_path / "kernel-model"
    shutil.copytree(tiny_bert_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "attn_implementation": value}))
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(ModelLoadError) as err:
        BioHiCL.from_pretrained(folder)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{folder / 'config.json'}: field attn_implementation")
    assert repr(value) in message and "'sdpa'" in message and "'eager'" in message


@pytest.mark.parametrize("value", ["eager", "sdpa", {"": "eager"}])
def test_a_config_naming_a_builtin_attention_loads_with_it(tiny_bert_dir, tmp_path, value):
    folder = tmp_path / "eager-model"
    shutil.copytree(tiny_bert_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "attn_implementation": value}))
    model = BioHiCL.from_pretrained(folder)
    expected = value if isinstance(value, str) else value[""]
    assert model.backbone.config._attn_implementation == expected


# ------------------------------------------------------------------------------------------- pickle
def test_fetch_patterns_exclude_every_pickle_format():
    for name in PICKLE_FILES:
        assert not any(fnmatch.fnmatch(name, pattern) for pattern in SAFE_PATTERNS), name
    assert any(fnmatch.fnmatch("model.safetensors", p) for p in SAFE_PATTERNS)


def test_base_model_downloads_ask_for_safe_files_only(monkeypatch):
    import huggingface_hub

    from biohicl.errors import ModelLoadError
    from biohicl.models.resolver import resolve_base

    asked = {}

    def fake_download(repo_id, **kwargs):
        asked.update(kwargs)
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    with pytest.raises(ModelLoadError):
        resolve_base("org/some-base")
    assert asked["allow_patterns"]
    for name in PICKLE_FILES:
        assert not any(fnmatch.fnmatch(name, p) for p in asked["allow_patterns"]), name


def test_a_pickle_beside_safetensors_is_never_opened(tiny_bert_dir, tmp_path, monkeypatch):
    folder = tmp_path / "both"
    shutil.copytree(tiny_bert_dir, folder)
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle: opening it would fail loudly")

    def no_pickles(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", no_pickles)
    model = BioHiCL.from_pretrained(folder)
    assert model.encode(["insulin"], show_progress_bar=False).shape == (1, 32)


def test_no_unsafe_deserialisation_in_the_package_source():
    banned_calls = {"eval", "exec", "pickle.load", "pickle.loads", "torch.load", "yaml.load", "yaml.unsafe_load",
                    "marshal.loads", "dill.load"}  # fmt: skip
    for file in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else None
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                name = f"{func.value.id}.{func.attr}"
            assert name not in banned_calls, f"{file.name}:{node.lineno}: {name}"
            pickles_allowed = [
                k for k in node.keywords
                if k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
            ]  # fmt: skip
            assert not pickles_allowed, f"{file.name}:{node.lineno}: allow_pickle other than the constant False"


# ------------------------------------------------------------------------------------------- registry
def test_shipped_registry_revisions_are_shas_or_explicitly_unpinned():
    registry = default_registry()
    assert len(registry) >= 3
    for entry in registry:
        assert entry.revision is None or is_commit_sha(entry.revision), entry.name
        assert (entry.revision is not None) == entry.pinned, entry.name
        assert entry.base_revision is None or is_commit_sha(entry.base_revision), entry.name


@pytest.mark.parametrize("revision", ["main", "v1.0", "a" * 39, "A" * 40, "refs/pr/1"])
def test_registry_refuses_branches_tags_and_short_shas(revision):
    with pytest.raises(ConfigError, match="is not a 40-hex commit sha"):
        RegistryEntry.from_dict({"name": "X", "repo_id": "o/x", "kind": "merged", "base_model": "o/b",
                                 "revision": revision, "pinned": True})  # fmt: skip


def test_pinned_without_a_revision_is_refused():
    with pytest.raises(ConfigError, match="pinned is true but field 'revision' is null"):
        RegistryEntry.from_dict({"name": "X", "repo_id": "o/x", "kind": "merged", "base_model": "o/b", "pinned": True})


# ------------------------------------------------------------------------------------------- the Hub token
class RecordingHfApi:
    def __init__(self):
        self.token, self.calls = None, []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append("create_repo")

    def create_branch(self, repo_id, **kwargs):
        self.calls.append("create_branch")

    def upload_folder(self, **kwargs):
        self.calls.append("upload_folder")
        return type("CommitInfo", (), {"commit_url": "https://huggingface.co/me/x/commit/1"})()


def train_tiny(tiny_bert_dir: Path, root: Path, **overrides) -> Path:
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.run import train_biohicl

    docs = root / "docs.jsonl"
    topics = [["D003920", "D003924"], ["D009203", "D006333"], ["D001943", "D009369"]]
    docs.write_text("".join(json.dumps({"pmid": str(i), "title": f"t{i}", "abstract": "the cells of patients",
                                        "mesh": topics[i % 3]}) + "\n" for i in range(12)))  # fmt: skip
    values = dict(output_dir=str(root / "run"), base_model=str(tiny_bert_dir), base_model_hub_id="test/tiny-bert",
                  dataset_path=str(docs), max_steps=2, per_device_train_batch_size=4, max_length=16, logging_steps=1,
                  save_strategy="steps", save_steps=1, report_to="none", lora_target_modules=["query", "value"],
                  use_cpu=True, seed=3, disable_tqdm=True)  # fmt: skip
    return train_biohicl(BioHiCLTrainingArguments(**{**values, **overrides}))


def files_containing(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_the_token_is_never_written_printed_or_logged(tiny_bert_dir, tmp_path, monkeypatch, capsys, caplog):
    from biohicl.cli import publish as publish_cmd

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    caplog.set_level(logging.DEBUG)
    run = train_tiny(tiny_bert_dir, tmp_path)
    out = tmp_path / "repo"
    assert publish_cmd.main([str(run), "--repo_id", "me/tiny", "--dry_run", "--out", str(out)]) == 0
    api = RecordingHfApi()
    assert publish_cmd.main([str(run), "--repo_id", "me/tiny", "--out", str(out), "--overwrite"], api=api) == 0
    assert api.calls == ["create_repo", "upload_folder"]
    captured = capsys.readouterr()
    assert "would upload" in captured.out and (out / "README.md").is_file()
    assert files_containing(tmp_path, FAKE_TOKEN) == []  # run dir, checkpoints, repo folder, card
    assert FAKE_TOKEN not in captured.out + captured.err
    assert FAKE_TOKEN not in "\n".join(r.getMessage() for r in caplog.records)


def test_a_hub_token_given_to_the_trainer_is_not_written(tiny_bert_dir, tmp_path):
    train_tiny(tiny_bert_dir, tmp_path, hub_token=FAKE_TOKEN)
    assert files_containing(tmp_path, FAKE_TOKEN) == []


def test_publish_refuses_a_folder_holding_the_token_before_any_call(tmp_path, monkeypatch):
    from biohicl.hub.publish import publish_folder

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "README.md").write_text("# data\n")
    (folder / ".env").write_text(f"HF_TOKEN={FAKE_TOKEN}\n")
    api = RecordingHfApi()
    with pytest.raises(PublishError, match=r"\.env: contains a Hugging Face token") as err:
        publish_folder(api, folder, "me/data", repo_type="dataset")
    assert api.calls == [] and FAKE_TOKEN not in str(err.value)


def pickle_files(root: Path) -> list[Path]:
    """Files in pickle format: ``torch.save``'s zip (holding ``data.pkl``) or a bare pickle stream."""
    import zipfile

    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        head = path.read_bytes()[:2]
        if head[:1] == b"\x80" or (
            zipfile.is_zipfile(path) and any(n.endswith("data.pkl") for n in zipfile.ZipFile(path).namelist())
        ):
            found.append(path)
    return found


def test_the_only_pickles_are_the_trainers_checkpoint_state_loaded_weights_only(tiny_bert_dir, tmp_path, monkeypatch):
    # docs/reliability.md said "biohicl writes no pickle at all": transformers.Trainer writes three per checkpoint
    run = train_tiny(tiny_bert_dir, tmp_path)
    pickles = pickle_files(tmp_path)
    assert {p.name for p in pickles} == {"optimizer.pt", "scheduler.pt", "rng_state.pth"}
    assert all(p.parent.name.startswith("checkpoint-") for p in pickles), pickles
    doc = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert "writes no pickle at all" not in doc
    assert all(f"`{name}`" in doc for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "weights_only=True"))

    loads = []
    real_load = torch.load

    def recording_load(file, *args, **kwargs):
        loads.append((Path(file).name, kwargs.get("weights_only")))
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    train_tiny(tiny_bert_dir, tmp_path, resume_from_checkpoint=str(run / "checkpoint-1"))  # step 2 again
    assert sorted(loads) == [("optimizer.pt", True), ("rng_state.pth", True), ("scheduler.pt", True)]
    # and publishing copies none of them
    out = tmp_path / "repo"
    from biohicl.hub.publish import build_model_repo_folder

    build_model_repo_folder(run, out, repo_id="me/tiny")
    assert pickle_files(out) == []


def test_a_trained_runs_adapter_weights_are_readable_by_others(tiny_bert_dir, tmp_path):
    # the adapter of a run (make demo's too) and of each checkpoint came out 0o600 whatever the umask
    previous = os.umask(0o022)
    try:
        run = train_tiny(tiny_bert_dir, tmp_path, max_steps=1)
    finally:
        os.umask(previous)
    adapters = sorted(run.rglob("adapter_model.safetensors"))
    assert sorted(p.parent.name for p in adapters) == ["checkpoint-1", "run"]
    assert {oct(p.stat().st_mode & 0o777) for p in adapters} == {"0o644"}
    assert not (run / "README.md").exists()  # peft's card, whose base_model was the base's local folder

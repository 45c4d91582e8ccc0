"""Publishing: the repo folder, the safety checks, the exact HfApi calls (recording fake), the CLI and manifests."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import pytest
from conftest import build_tiny_bert, randomize_lora_b
from huggingface_hub import ModelCard

from biohicl.cli import publish as publish_cmd
from biohicl.errors import ConfigError, DataError, PublishError
from biohicl.hub.folder_checks import check_folder
from biohicl.hub.manifest import ReleaseManifest
from biohicl.hub.publish import build_model_repo_folder, find_model_dir, publish_folder
from biohicl.models.model import BioHiCL
from biohicl.models.registry import default_registry

REPO_ROOT = Path(__file__).resolve().parents[1]
FAKE_TOKEN = "hf_" + "Ab3" * 12  # token-shaped, not a real token
TEXTS = ["insulin resistance", "heart disease"]
# a valid 1x1 PNG
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def eval_record(**metrics: dict[str, float]) -> dict:
    """A record shaped as `biohicl evaluate` writes it: `{task: {metric: value}}` filed under `tasks`."""
    tasks = {task: {"split": "test", "metrics": values} for task, values in metrics.items()}
    return {"format": 1, "model": {"id": "run", "revision": None}, "tasks": tasks}


class RecordingHfApi:
    """Stands in for ``huggingface_hub.HfApi``: records every call, snapshots what would be uploaded, and keeps the
    repo's files across commits as the Hub does (``delete_patterns`` matched with huggingface_hub's own filter, which
    never deletes ``.gitattributes``)."""

    def __init__(self, token: str | None = None, existing_private: bool | None = None):
        self.token = token
        self.calls: list[tuple[str, tuple, dict]] = []
        self.uploaded: dict[str, bytes] = {}
        self.repo: dict[str, bytes] = {}  # the files of the (one) repo after the last commit
        self.private = existing_private  # None: the repo does not exist yet

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", (repo_id,), kwargs))
        if self.private is None:  # exist_ok=True leaves an existing repo's visibility as it is, as the Hub does
            self.private = bool(kwargs.get("private"))
        self.repo.setdefault(".gitattributes", b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
        return f"https://huggingface.co/{repo_id}"

    def repo_info(self, repo_id, **kwargs):
        self.calls.append(("repo_info", (repo_id,), kwargs))
        return type("RepoInfo", (), {"id": repo_id, "private": self.private})()

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", (repo_id,), kwargs))

    def upload_folder(self, **kwargs):
        from huggingface_hub.utils import filter_repo_objects

        self.calls.append(("upload_folder", (), kwargs))
        root = Path(kwargs["folder_path"])
        self.uploaded = {p: (root / p).read_bytes() for p in kwargs["allow_patterns"]}
        if kwargs.get("delete_patterns") is not None:
            deleted = set(filter_repo_objects(self.repo, allow_patterns=kwargs["delete_patterns"]))
            self.repo = {p: b for p, b in self.repo.items() if p not in deleted or p == ".gitattributes"}
        self.repo.update(self.uploaded)
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A training run as biohicl train leaves it: adapter at the top, logs, a checkpoint, curves, eval JSONs."""
    root = tmp_path_factory.mktemp("hub")
    base = build_tiny_bert(root / "base")
    model = BioHiCL.from_base(str(base), hub_id="org/tiny-bert", pooling="mean", max_length=64)
    model.add_lora(r=4, target_modules=["query", "value"], verbose=False)
    randomize_lora_b(model, std=0.4)
    model.eval()
    run = root / "run"
    model.save_pretrained(run)
    (run / "training_curves.png").write_bytes(PNG)
    (run / "trainer_state.json").write_text("{}")
    (run / "biohicl_training_args.json").write_text(
        json.dumps({"lambda_con": 0.1, "beta": 0.3, "lora_r": 4, "learning_rate": 2e-4, "output_dir": str(run)})
    )
    (run / "training_summary.json").write_text(
        json.dumps(
            {
                "data": {"documents": 900, "mined_pairs": 12345, "splits": ["train"]},
                "trainable_parameters": 512,
                "total_parameters": 51200,
                "global_step": 150,
                "runtime_s": 612.4,
            }
        )
    )
    checkpoint = run / "checkpoint-150"
    checkpoint.mkdir()
    (checkpoint / "optimizer.pt").write_bytes(b"pickle")
    (run / "eval_results.json").write_text(json.dumps(eval_record(biosses={"spearman": 0.71})))
    (run / "base_eval_results.json").write_text(json.dumps(eval_record(biosses={"spearman": 0.65})))
    return run, base, model.encode(TEXTS, show_progress_bar=False)


def test_model_repo_folder_tree_and_contents(run_dir, tmp_path):
    run, base, expected = run_dir
    folder = build_model_repo_folder(run, tmp_path / "repo", repo_id="me/tiny-biohicl")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == [
        "1_Pooling/config.json",  # sentence-transformers' module files: SentenceTransformer(repo) encodes as biohicl
        "README.md",  # our card, not peft's auto-generated one
        "adapter_config.json",
        "adapter_model.safetensors",
        "base_eval_results.json",
        "biohicl_config.json",
        "biohicl_training_args.json",  # the run's arguments and summary: what retrains it (paths reduced)
        "config_sentence_transformers.json",
        "eval_results.json",
        "modules.json",
        "sentence_bert_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "training_curves.png",
        "training_summary.json",
    ]
    assert json.loads((folder / "biohicl_training_args.json").read_text())["output_dir"] == "run"
    assert (folder / "adapter_model.safetensors").read_bytes() == (run / "adapter_model.safetensors").read_bytes()
    assert (folder / "training_curves.png").read_bytes() == PNG
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "org/tiny-bert"
    card = ModelCard((folder / "README.md").read_text())
    meta = card.data.to_dict()
    assert (meta["library_name"], meta["base_model"], meta["model-index"][0]["name"]) == (
        "peft",
        "org/tiny-bert",
        "tiny-biohicl",
    )
    text = card.text
    assert "| BIOSSES (test) | Spearman | 0.6500 | 0.7100 | +0.0600 |" in text
    assert 'BioHiCL.from_pretrained("me/tiny-biohicl")' in text
    assert "| mined pairs between training documents | 12,345 |" in text and "| optimizer steps | 150 |" in text
    assert "| `lambda_con` | 0.1 |" in text and "| `output_dir`" not in text and str(run) not in text
    assert "| Trainable parameters | 512 of 51,200 (1.00%) |" in text
    # the folder is a loadable model that gives the run's embeddings
    model = BioHiCL.from_pretrained(folder, base_model_path=base)
    np.testing.assert_allclose(model.encode(TEXTS, show_progress_bar=False), expected, atol=1e-6)


def test_a_reproduce_runs_eval_json_is_its_record_and_a_run_without_one_is_said(run_dir, tmp_path, caplog, capsys):
    # `biohicl reproduce` writes RUN/eval.json; publish read only RUN/eval_results.json, so its cards said "No
    # evaluation results were recorded" without a word
    run = tmp_path / "run"
    shutil.copytree(run_dir[0], run)
    (run / "eval_results.json").unlink()
    (run / "base_eval_results.json").unlink()
    (run / "eval.json").write_text(json.dumps(eval_record(biosses={"spearman": 0.71})))
    with caplog.at_level(logging.WARNING, logger="biohicl.hub.publish"):
        folder = build_model_repo_folder(run, tmp_path / "repo", repo_id="me/tiny", license="mit")
    assert json.loads((folder / "eval_results.json").read_text()) == eval_record(biosses={"spearman": 0.71})
    assert "| BIOSSES (test) | Spearman | – | 0.7100 |" in (folder / "README.md").read_text()
    assert not (folder / "base_eval_results.json").exists()
    # its only warning: a record that gives no model.weights_sha256 (written before biohicl recorded it)
    assert [r.name for r in caplog.records] == ["biohicl.hub.record_match"]
    assert "model.weights_sha256" in caplog.records[0].getMessage()
    (run / "eval.json").unlink()
    api = RecordingHfApi()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="biohicl.hub.publish"):
        assert publish_cmd.main([str(run), "--repo_id", "me/tiny", "--dry_run", "--license", "mit"], api=api) == 0
    (line,) = [r.getMessage() for r in caplog.records]
    assert "no evaluation record" in line and "pass --eval_results FILE" in line and "\n" not in line
    assert "No evaluation results were recorded" in capsys.readouterr().out and api.calls == []


def test_merged_repo_folder_loads_without_peft(run_dir, tmp_path):
    run, base, expected = run_dir
    # the tiny base is not on the Hub: point the adapter's base id at the local folder through the cache helper
    from huggingface_hub import constants
    from test_loader import add_to_hub_cache

    cache = tmp_path / "hub"
    add_to_hub_cache(cache, "org/tiny-bert", base, "a" * 40)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_CACHE", str(cache))
        folder = build_model_repo_folder(run, tmp_path / "merged", repo_id="me/tiny-merged", merge=True)
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "modules.json", "README.md", "training_curves.png"} <= names
    assert "adapter_config.json" not in names
    assert ModelCard((folder / "README.md").read_text()).data.to_dict()["library_name"] == "sentence-transformers"
    model = BioHiCL.from_pretrained(folder)
    np.testing.assert_allclose(model.encode(TEXTS, show_progress_bar=False), expected, atol=1e-5)


def test_full_fine_tune_repo_folder_loads_with_sentence_transformers(run_dir, tmp_path):
    # a full fine-tune (kind full) published without --merge had no modules.json / 1_Pooling / prompts: the card's
    # SentenceTransformer snippet mean-pooled without the query prompt
    from sentence_transformers import SentenceTransformer

    _, base, _ = run_dir
    model = BioHiCL.from_base(str(base), hub_id="org/tiny-bert", pooling="cls", query_prompt="query: ", max_length=64)
    assert model.config.kind == "full"
    model.save_pretrained(tmp_path / "run")
    st_run = SentenceTransformer(str(tmp_path / "run"), device="cpu")  # the run folder itself, before any publish
    texts = ["What causes insulin resistance?", "heart disease"]
    np.testing.assert_allclose(st_run.encode(texts, prompt_name="query"), model.encode(texts, kind="query"), atol=1e-5)
    for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        (tmp_path / "run" / name).unlink()  # a run saved before save_pretrained wrote them: the publish adds them
    shutil.rmtree(tmp_path / "run" / "1_Pooling")
    folder = build_model_repo_folder(tmp_path / "run", tmp_path / "repo", repo_id="me/tiny-full")
    assert ModelCard((folder / "README.md").read_text()).data.to_dict()["library_name"] == "sentence-transformers"
    hub = tmp_path / "hub-snapshot"  # what the Hub stores: files only (no empty 2_Normalize folder)
    for file in (p for p in folder.rglob("*") if p.is_file()):
        (hub / file.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, hub / file.relative_to(folder))
    assert {"modules.json", "1_Pooling/config.json", "config_sentence_transformers.json"} <= {
        p.relative_to(hub).as_posix() for p in hub.rglob("*")
    }
    st = SentenceTransformer(str(hub), device="cpu")
    np.testing.assert_allclose(st.encode(texts), model.encode(texts, show_progress_bar=False), atol=1e-5)
    queries = model.encode(texts, kind="query", show_progress_bar=False)
    np.testing.assert_allclose(st.encode(texts, prompt_name="query"), queries, atol=1e-5)


@pytest.mark.skipif(
    importlib.util.find_spec("peft.utils.transformers_weight_conversion") is None,
    reason="SentenceTransformer(adapter folder) needs a peft with utils.transformers_weight_conversion",
)
def test_a_cls_adapter_repo_folder_loads_with_sentence_transformers_as_biohicl_encodes(tmp_path, capsys):
    # an adapter repo had no modules.json / 1_Pooling / prompts: SentenceTransformer(repo) mean-pooled base + adapter,
    # unnormalised and without the query prompt, so a CLS model's (bge's) embeddings were silently wrong
    from huggingface_hub import constants
    from sentence_transformers import SentenceTransformer
    from test_loader import add_to_hub_cache
    from test_st_compat import LONG, _st_folder

    base, _ = _st_folder(tmp_path / "base", pooling="cls", max_seq_length=64)
    model = BioHiCL.from_base(str(base), hub_id="org/tiny-cls", query_prompt="query: ")
    model.add_lora(r=4, alpha=8, target_modules=["query", "value"], verbose=False)
    randomize_lora_b(model, std=0.3)
    model.eval()
    model.save_pretrained(tmp_path / "run")
    out = tmp_path / "repo"
    assert publish_cmd.main([str(tmp_path / "run"), "--repo_id", "me/tiny-cls", "--dry_run", "--out", str(out)]) == 0
    hub = tmp_path / "hub-snapshot"  # what the Hub stores: files only (no empty 2_Normalize folder)
    for file in (p for p in out.rglob("*") if p.is_file()):
        (hub / file.relative_to(out)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, hub / file.relative_to(out))
    add_to_hub_cache(tmp_path / "cache", "org/tiny-cls", base, "b" * 40)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
        mp.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
        st = SentenceTransformer(str(hub), device="cpu")
    queries, documents = model.encode(LONG, kind="query"), model.encode(LONG)
    np.testing.assert_allclose(st.encode(LONG, prompt_name="query"), queries, atol=1e-5)
    np.testing.assert_allclose(st.encode(LONG), documents, atol=1e-5)
    np.testing.assert_array_equal(BioHiCL.from_pretrained(hub, base_model_path=base).encode(LONG), documents)
    assert "modules.json" in capsys.readouterr().out  # the dry run's file list


def test_build_refuses_a_non_empty_output_and_a_run_without_model(run_dir, tmp_path):
    run, _, _ = run_dir
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.bin").write_bytes(b"x")
    with pytest.raises(PublishError, match="not empty"):
        build_model_repo_folder(run, out)
    build_model_repo_folder(run, out, overwrite=True)
    assert not (out / "stale.bin").exists()
    with pytest.raises(PublishError, match="no saved model"):
        find_model_dir(tmp_path)
    with pytest.raises(PublishError, match="evaluation results file not found"):
        build_model_repo_folder(run, tmp_path / "x", eval_results=tmp_path / "missing.json")


def test_build_refuses_an_output_that_is_or_holds_the_run(run_dir, tmp_path):
    # --out RUN --overwrite (or a parent of RUN) deleted the run before copying from it
    run = tmp_path / "runs" / "run"
    shutil.copytree(run_dir[0], run / "final")
    (run / "eval_results.json").write_text(json.dumps(eval_record()))
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    for out in (run, run / "final", tmp_path / "runs", tmp_path, run / "final" / ".." / "final"):
        with pytest.raises(PublishError, match=r"is or holds .*; building there would delete it"):
            build_model_repo_folder(run, out, overwrite=True)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before
    assert build_model_repo_folder(run, run / "repo").is_dir()  # inside the run is fine


def test_a_repo_folder_built_inside_the_run_is_not_read_back_by_the_next_build(run_dir, tmp_path):
    """The dataset build refuses an --out inside its source; the model build need not: it reads the model folder's
    allowlisted files (the model folder itself refused as --out), the run's own records and its ``*.png`` and
    ``plots/*.png``, none of which lies in a folder built inside the run."""
    run = tmp_path / "run"
    shutil.copytree(run_dir[0], run)
    inside = build_model_repo_folder(run, run / "repo", repo_id="me/x", license="mit")
    again = build_model_repo_folder(run, tmp_path / "again", repo_id="me/x", license="mit")
    files = sorted(p.relative_to(inside).as_posix() for p in inside.rglob("*") if p.is_file())
    assert sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file()) == files
    assert not any(name.startswith("repo/") for name in files) and "README.md" in files


def test_publish_makes_exactly_these_calls(run_dir, tmp_path):
    run, _, _ = run_dir
    folder = build_model_repo_folder(run, tmp_path / "repo", repo_id="me/tiny")
    api = RecordingHfApi()
    result = publish_folder(api, folder, "me/tiny", private=True, revision="v0.1", commit_message="Release v0.1")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert api.calls == [
        ("create_repo", ("me/tiny",), {"repo_type": "model", "private": True, "exist_ok": True}),
        ("repo_info", ("me/tiny",), {"repo_type": "model"}),
        ("create_branch", ("me/tiny",), {"branch": "v0.1", "repo_type": "model", "exist_ok": True}),
        (
            "upload_folder",
            (),
            {
                "repo_id": "me/tiny",
                "folder_path": str(folder),
                "repo_type": "model",
                "revision": "v0.1",
                "commit_message": "Release v0.1",
                "allow_patterns": files,
                "delete_patterns": ["*"],
            },
        ),
    ]
    assert sorted(api.uploaded) == files
    assert result.commit_url.endswith("/commit/abc")


def test_republish_mirrors_the_folder_deleting_the_previous_release_files(tmp_path):
    # an adapter release, then a merged one to the same repo: upload_folder only adds, so without delete_patterns the
    # adapter files stayed beside model.safetensors (and loaders prefer the adapter)
    adapter, merged = tmp_path / "adapter", tmp_path / "merged"
    for folder, names in (
        (adapter, ["adapter_model.safetensors", "adapter_config.json"]),
        (merged, ["model.safetensors"]),
    ):
        (folder / "1_Pooling").mkdir(parents=True)
        (folder / "README.md").write_text(f"# {folder.name}\n")
        for name in names:
            text = folder.name
            (folder / name).write_bytes(
                stub_safetensors(text) if name.endswith(".safetensors") else json.dumps(text).encode()
            )
    (adapter / "1_Pooling" / "config.json").write_text("{}")
    api = RecordingHfApi()
    publish_folder(api, adapter, "me/m")
    publish_folder(api, merged, "me/m")
    assert api.calls[-1][2]["delete_patterns"] == ["*"]
    assert sorted(api.repo) == [".gitattributes", "README.md", "model.safetensors"]
    assert api.repo["README.md"] == b"# merged\n"


def test_private_publish_to_an_existing_public_repo_is_refused_before_uploading(tmp_path):
    # create_repo(private=True, exist_ok=True) does not change an existing public repo: the release went out public
    folder = _folder(tmp_path)
    api = RecordingHfApi(existing_private=False)
    with pytest.raises(PublishError, match=r"me/x: the repo exists and is public; nothing uploaded"):
        publish_folder(api, folder, "me/x", private=True)
    assert [c[0] for c in api.calls] == ["create_repo", "repo_info"] and api.repo == {".gitattributes": ANY}
    api = RecordingHfApi(existing_private=True)
    publish_folder(api, folder, "me/x", private=True)
    assert "weights.safetensors" in api.repo
    api = RecordingHfApi(existing_private=False)
    publish_folder(api, folder, "me/x")  # a public release to a public repo: no look-up
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]


def test_publish_dataset_folder_on_main(tmp_path):
    folder = tmp_path / "mesh-pairs"
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# MeSH pairs\n")
    (folder / "data" / "pairs-00000.parquet").write_bytes(b"PAR1....PAR1")
    api = RecordingHfApi()
    publish_folder(api, folder, "me/mesh-pairs", repo_type="dataset")
    create = {"repo_type": "dataset", "private": None, "exist_ok": True}  # None: the owner's default visibility
    assert api.calls[0] == ("create_repo", ("me/mesh-pairs",), create)
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]  # no branch for main
    upload = api.calls[1][2]
    assert (upload["repo_type"], upload["revision"]) == ("dataset", None)
    assert upload["allow_patterns"] == ["README.md", "data/pairs-00000.parquet"]


def test_published_dataset_summary_holds_no_local_path(tmp_path, monkeypatch):
    # summary.json's read.files / read.examples held the inputs' absolute paths, uploaded with the dataset
    from biohicl.cli.main import main

    monkeypatch.setenv("BIOHICL_DATA_DIR", str(tmp_path / "data"))
    pubtator = tmp_path / "data" / "pubtator" / "tiny.PubTator.txt"  # inside the data directory
    pubtator.parent.mkdir(parents=True)
    pubtator.write_text(
        "1|t|Diabetes.\n1|a|About diabetes.\n1\t0\t8\tdiabetes\tDisease\tD003920\n\n"
        "2|t|Type 2.\n2|a|About type 2.\n2\t0\t6\tT2DM\tDisease\tD003924\n\n"
        "3|t|Heart.\n3|a|\n3\t0\t5\theart\tDisease\tD006321\n"
    )
    exports = tmp_path / "exports"  # outside it
    exports.mkdir()
    (exports / "a.PubTator.txt").write_text("4|t|Heart.\n4|a|About the heart.\n4\t0\t5\theart\tDisease\tD006321\n")
    (exports / "notes.md").write_text("# not an input\n")
    out = tmp_path / "out"
    argv = ["build-dataset", "--input", str(pubtator), *map(str, sorted(exports.iterdir())),
            "--output", str(out), "--top_k", "3", "--no_progress"]  # fmt: skip
    assert main(argv) == 0
    read = json.loads((out / "summary.json").read_text())["read"]
    assert read["files"] == ["pubtator/tiny.PubTator.txt", "exports/a.PubTator.txt"]
    assert read["unrecognised_files"] == ["exports/notes.md"]
    assert read["examples"]["empty abstract"] == ["pubtator/tiny.PubTator.txt, record 3: pmid '3'"]
    api = RecordingHfApi()
    publish_folder(api, out, "me/pairs", repo_type="dataset")
    assert "summary.json" in api.uploaded
    assert [name for name, data in api.uploaded.items() if str(tmp_path).encode() in data] == []


def stub_safetensors(note: str = "", size: int | None = None) -> bytes:
    """A complete safetensors file with no tensor (``note`` in its metadata, its header padded to ``size`` bytes):
    what a test's stand-in weights must be, since publish refuses a damaged one (``folder_checks.check_readable``)."""
    header = json.dumps({"__metadata__": {"note": note}}).encode()
    if size is not None:
        header = header.ljust(size - 8)
    return len(header).to_bytes(8, "little") + header


def _folder(tmp_path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "README.md").write_text("# card\n")
    (folder / "weights.safetensors").write_bytes(stub_safetensors(size=2048))
    return folder


def test_symlink_escaping_the_folder_is_refused(tmp_path):
    folder = _folder(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("private notes")
    (folder / "notes.txt").symlink_to(secret)
    api = RecordingHfApi()
    with pytest.raises(PublishError, match=r"notes\.txt: resolves outside the folder"):
        publish_folder(api, folder, "me/x")
    assert api.calls == []  # nothing was sent


def test_symlinked_folder_is_refused_but_inner_file_links_are_fine(tmp_path):
    folder = _folder(tmp_path)
    (folder / "copy.safetensors").symlink_to(folder / "weights.safetensors")
    assert [f.path for f in check_folder(folder)] == ["README.md", "copy.safetensors", "weights.safetensors"]
    (folder / "linked").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(PublishError, match="symlinked folders are not uploaded"):
        check_folder(folder)


def test_size_limit_unless_allowed(tmp_path):
    folder = _folder(tmp_path)
    with pytest.raises(PublishError, match=r"weights.safetensors: 2.0 KiB is over the 1.0 KiB limit"):
        check_folder(folder, max_file_bytes=1024)
    sizes = {f.path: f.size for f in check_folder(folder, max_file_bytes=1024, allow_large_files=True)}
    assert sizes == {"README.md": 7, "weights.safetensors": 2048}


def test_token_pattern_anywhere_is_refused_without_echoing_it(tmp_path):
    folder = _folder(tmp_path)
    # the token straddles the 1 MiB read boundary
    blob = b"x" * ((1 << 20) - 10) + FAKE_TOKEN.encode() + b"y" * 100
    (folder / "log.txt").write_bytes(blob)
    api = RecordingHfApi()
    with pytest.raises(PublishError) as info:
        publish_folder(api, folder, "me/x")
    assert "log.txt: contains a Hugging Face token" in str(info.value)
    assert FAKE_TOKEN not in str(info.value)
    assert api.calls == []
    # a short literal token of the api (not matching the pattern) is caught too
    (folder / "log.txt").write_text("token=hf_short123")
    with pytest.raises(PublishError, match="contains a Hugging Face token"):
        publish_folder(RecordingHfApi(token="hf_short123"), folder, "me/x")
    (folder / "log.txt").write_text("hf_tooshort is fine")
    assert len(check_folder(folder)) == 3


def test_bad_repo_id_and_type(tmp_path):
    folder = _folder(tmp_path)
    with pytest.raises(ConfigError, match="repo_id"):
        publish_folder(RecordingHfApi(), folder, "no-owner")
    with pytest.raises(ConfigError, match="repo_type"):
        publish_folder(RecordingHfApi(), folder, "me/x", repo_type="space")


# ---------------------------------------------------------------------- CLI


def test_cli_dry_run_prints_files_and_card_and_sends_nothing(run_dir, capsys):
    run, _, _ = run_dir
    api = RecordingHfApi()
    assert publish_cmd.main([str(run), "--repo_id", "me/tiny", "--dry_run", "--private"], api=api) == 0
    out = capsys.readouterr().out
    assert "files from" in out and "to me/tiny (model, private) in one commit, which deletes every other file" in out
    assert "adapter_model.safetensors" in out and "training_curves.png" in out
    assert "----- README.md -----" in out and "library_name: peft" in out
    assert api.calls == []


def test_cli_publish_with_token_in_env_never_leaks_it(run_dir, tmp_path, monkeypatch, capsys, caplog):
    run, _, _ = run_dir
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    api = RecordingHfApi(token=FAKE_TOKEN)
    out_dir = tmp_path / "built"
    with caplog.at_level(logging.DEBUG):
        code = publish_cmd.main(
            [str(run), "--repo_id", "me/tiny", "--revision", "dev", "--out", str(out_dir), "--license", "mit"], api=api
        )
    assert code == 0
    assert [c[0] for c in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    captured = capsys.readouterr()
    assert "published me/tiny (model): https://huggingface.co/me/tiny/commit/abc" in captured.out
    assert FAKE_TOKEN not in captured.out + captured.err + caplog.text
    for file in out_dir.rglob("*"):
        if file.is_file():
            assert FAKE_TOKEN.encode() not in file.read_bytes(), file
    assert "license: mit" in (out_dir / "README.md").read_text()


def test_published_files_hold_no_local_path(run_dir, tmp_path, tmp_path_factory):
    # eval_results.json records `biohicl evaluate`'s raw command line (settings.command): absolute paths were uploaded
    from biohicl.cli import evaluate as evaluate_cmd

    source, base, _ = run_dir
    run = tmp_path / "run"
    shutil.copytree(source, run)
    record = run / "eval_results.json"
    argv = [str(run), "--base_model_path", str(base), "--tasks", "biosses", "--output", str(record)]
    assert evaluate_cmd.main(argv) == 0
    local = record.read_bytes()
    assert str(run).encode() in local  # the local record is the machine's own
    api = RecordingHfApi()
    assert publish_cmd.main([str(run), "--repo_id", "me/tiny", "--out", str(tmp_path / "repo")], api=api) == 0
    assert "eval_results.json" in api.uploaded and record.read_bytes() == local
    machine = str(tmp_path_factory.getbasetemp()).encode()
    assert [name for name, data in api.uploaded.items() if machine in data] == []
    uploaded = json.loads(api.uploaded["eval_results.json"])
    assert (
        uploaded["settings"]["command"]
        == "biohicl evaluate run --base_model_path base --tasks biosses --output eval_results.json"
    )
    assert uploaded["tasks"] == json.loads(local)["tasks"]


def test_cli_manifest_with_flag_overrides(run_dir, tmp_path, monkeypatch):
    run, _, _ = run_dir
    manifest = tmp_path / "release.yaml"
    manifest.write_text(
        f"repo_id: me/from-manifest\nsource: {run}\nlicense: apache-2.0\nprivate: true\n"
        "commit_message: Release from manifest\n"
    )
    api = RecordingHfApi()
    assert publish_cmd.main(["--manifest", str(manifest)], api=api) == 0
    create = {"repo_type": "model", "private": True, "exist_ok": True}
    assert api.calls[0] == ("create_repo", ("me/from-manifest",), create)
    assert api.calls[-1][2]["commit_message"] == "Release from manifest"
    api = RecordingHfApi()
    assert publish_cmd.main(["--manifest", str(manifest), "--repo_id", "me/override"], api=api) == 0
    assert api.calls[0][1] == ("me/override",)


def test_cli_dataset_refuses_a_folder_that_is_not_a_built_dataset(tmp_path):
    # a dataset publish stages the Hub layout from a built dataset (tests/test_dataset_repo.py); a folder with only
    # a card used to be uploaded as is
    folder = tmp_path / "pairs"
    folder.mkdir()
    (folder / "README.md").write_text("# MeSH pairs\n")
    api = RecordingHfApi()
    with pytest.raises(PublishError, match=r"not a MeSH-pair dataset \(no documents/\)"):
        publish_cmd.main([str(folder), "--dataset", "--repo_id", "me/pairs"], api=api)
    assert api.calls == []


def test_cli_needs_a_source_and_a_repo_id(run_dir):
    run, _, _ = run_dir
    with pytest.raises(ConfigError, match="RUN_DIR"):
        publish_cmd.main(["--repo_id", "me/x"], api=RecordingHfApi())
    with pytest.raises(ConfigError, match="--repo_id is required"):
        publish_cmd.main([str(run)], api=RecordingHfApi())


# ---------------------------------------------------------------------- release manifests in hub/


def test_manifest_validation(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("repo_id: me/x\nsource: runs/x\nlicence: mit\n")
    with pytest.raises(ConfigError, match=r"unknown field 'licence' \(did you mean 'license'\?\)"):
        ReleaseManifest.load(bad)
    bad.write_text("repo_id: me/x\n")
    with pytest.raises(ConfigError, match="missing field 'source'"):
        ReleaseManifest.load(bad)
    bad.write_text("repo_id: me/x\nsource: s\nrepo_type: space\n")
    with pytest.raises(ConfigError, match="repo_type"):
        ReleaseManifest.load(bad)
    # fields were not type-checked: private "false" was truthy (a public release made private, or the reverse with
    # merge "no"), revision 1.0 a float
    for line, field in [
        ('private: "false"', "private"),
        ("merge: no-thanks", "merge"),
        ("private: 1", "private"),
        ("revision: 1.0", "revision"),
        ("license: 2", "license"),
        ("eval_results: [a.json]", "eval_results"),
        ("base_eval_results: {a: 1}", "base_eval_results"),
        ("commit_message: 3", "commit_message"),
    ]:
        bad.write_text(f"repo_id: me/x\nsource: s\n{line}\n")
        expected = r"expected (true or false|true or false or null|a string or null), got"
        with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad))}: manifest\.{field}: {expected}"):
            ReleaseManifest.load(bad)
    bad.write_text('repo_id: me/x\nsource: s\nprivate: true\nmerge: false\nrevision: "1.0"\nlicense: null\n')
    manifest = ReleaseManifest.load(bad)
    assert (manifest.private, manifest.merge, manifest.revision, manifest.license) == (True, False, "1.0", None)


def test_shipped_manifests_are_valid_and_agree_with_the_registry():
    manifests = sorted((REPO_ROOT / "hub").glob("*/*.yaml"))
    assert {m.parent.name for m in manifests} == {"models", "datasets"}
    for path in manifests:
        manifest = ReleaseManifest.load(path)
        assert manifest.repo_type == ("dataset" if path.parent.name == "datasets" else "model"), path
        assert manifest.license, path
        assert not Path(manifest.source).is_absolute(), path
        if manifest.registry_name:
            assert default_registry().get(manifest.registry_name).repo_id == manifest.repo_id, path


# ---------------------------------------------------------------------- live (real Hub)


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("HF_TOKEN"), reason="needs HF_TOKEN (and BIOHICL_LIVE_TESTS=1)")
def test_live_publish_to_a_private_repo(run_dir, tmp_path, monkeypatch):
    from huggingface_hub import HfApi, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    run, _, _ = run_dir
    api = HfApi()
    repo_id = f"{api.whoami()['name']}/biohicl-live-test-{uuid.uuid4().hex[:8]}"
    folder = build_model_repo_folder(run, tmp_path / "repo", repo_id=repo_id)
    try:
        publish_folder(api, folder, repo_id, private=True, commit_message="biohicl live test")
        remote = set(api.list_repo_files(repo_id))
        assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} <= remote
    finally:
        api.delete_repo(repo_id, missing_ok=True)


def test_publish_merge_out_writes_weights_readable_by_others(run_dir, tmp_path, capsys):
    # `publish --merge --out` wrote model.safetensors 0o600 (safetensors' temporary file) whatever the umask
    from huggingface_hub import constants
    from test_loader import add_to_hub_cache

    run, base, _ = run_dir
    cache = tmp_path / "hub"
    add_to_hub_cache(cache, "org/tiny-bert", base, "a" * 40)
    previous = os.umask(0o022)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(constants, "HF_HUB_CACHE", str(cache))
            out = tmp_path / "out"
            argv = [str(run), "--repo_id", "me/tiny-merged", "--merge", "--out", str(out), "--dry_run"]
            assert publish_cmd.main(argv) == 0
    finally:
        os.umask(previous)
    modes = {p.relative_to(out).as_posix(): p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o644}, modes


def test_a_model_whose_base_is_a_local_folder_is_refused_before_anything_is_built(run_dir, tmp_path):
    # an adapter trained on a local merged model records that folder as its base (the only true base it has):
    # uploaded, no one could resolve it, and the card (base_model must be a Hub id) failed after the folder was built
    run, base, _ = run_dir
    merged = tmp_path / "merged"
    BioHiCL.from_pretrained(run, base_model_path=base).save_merged(merged)
    tuned = BioHiCL.from_pretrained(merged)
    tuned.add_lora(r=4, target_modules=["query", "value"], verbose=False)
    tuned.save_pretrained(tmp_path / "run2")
    for merge in (False, True):
        expected = r"local folder 'merged'.*publish that base first.*or retrain with --base_model_hub_id ORG/NAME"
        with pytest.raises(PublishError, match=expected + r" \(the Hub id of that local copy\)$"):
            build_model_repo_folder(tmp_path / "run2", tmp_path / "repo", repo_id="me/x", merge=merge)
        assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("name", ["vocab.txt", "training_curves.png", "eval_results.json", "1_Pooling/config.json"])
def test_a_run_file_linking_out_of_the_run_is_refused_before_staging(run_dir, tmp_path, name, capsys):
    # glob + is_file() and shutil.copyfile follow symlinks: RUN/vocab.txt -> /secret was staged and uploaded, and
    # check_folder only saw the copy
    run = tmp_path / "run"
    shutil.copytree(run_dir[0], run, ignore=shutil.ignore_patterns("checkpoint-*"))
    secret = tmp_path / "secret.json"
    secret.write_text('{"patients": ["Jane Doe"]}')
    link = run / name
    link.unlink(missing_ok=True)
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(secret)
    out = tmp_path / "repo"
    expected = f"{link}: resolves outside {run} ({secret}); refusing to stage it"
    for merge in (False, True):
        with pytest.raises(PublishError) as error:
            build_model_repo_folder(run, out, repo_id="me/tiny", merge=merge)
        assert str(error.value) == expected and not out.exists()
    from biohicl.cli.main import main as cli_main

    capsys.readouterr()
    assert cli_main(["publish", str(run), "--repo_id", "me/tiny", "--dry_run", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(expected) and "\n" not in err and not out.exists()


def test_links_inside_the_run_are_staged_as_files(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir[0], run, ignore=shutil.ignore_patterns("checkpoint-*"))
    (run / "plots").mkdir()
    (run / "plots" / "loss.png").write_bytes(PNG)
    (run / "training_curves.png").unlink()
    (run / "training_curves.png").symlink_to(run / "plots" / "loss.png")
    folder = build_model_repo_folder(run, tmp_path / "repo", repo_id="me/tiny")
    assert (folder / "training_curves.png").read_bytes() == PNG and not (folder / "training_curves.png").is_symlink()


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ({"auths": {"registry.example.org": {"auth": "dXNlcjpwYXNzd29yZA=="}}}, "no `format`"),
        ({"format": 2, "model": {}, "tasks": {}}, "`format` is 2, not 1"),
        ({"format": 1, "model": {"id": "x"}, "results": {"biosses": {"spearman": 0.7}}}, "no `tasks` mapping"),
        ({"format": 1, "tasks": {}}, "no `model` mapping"),
        ([1, 2], "no `format`"),
    ],
)
def test_an_eval_results_file_that_is_not_an_evaluation_record_is_refused(run_dir, tmp_path, capsys, record, why):
    # --eval_results FILE (or a manifest's eval_results:) took any JSON and uploaded it as eval_results.json
    run, _, _ = run_dir
    other = tmp_path / "config.json"
    other.write_text(json.dumps(record))
    out = tmp_path / "repo"
    expected = f"{other}: not a biohicl evaluation record ({why}; pass the JSON `biohicl evaluate` writes)"
    for option in ("eval_results", "base_eval_results"):
        with pytest.raises(PublishError) as error:
            build_model_repo_folder(run, out, repo_id="me/tiny", **{option: other})
        assert str(error.value) == expected + "; refusing to publish it" and not out.exists()
    from biohicl.cli.main import main as cli_main

    manifest = tmp_path / "release.yaml"
    manifest.write_text(f"repo_id: me/tiny\nsource: {run}\neval_results: {other}\n")
    for argv in (["publish", str(run), "--repo_id", "me/tiny", "--eval_results", str(other)],
                 ["publish", "--manifest", str(manifest)]):  # fmt: skip
        capsys.readouterr()
        assert cli_main([*argv, "--dry_run", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and "\n" not in err and not out.exists()


def test_a_runs_own_record_must_be_an_evaluation_record_and_a_real_one_is_published(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir[0], run, ignore=shutil.ignore_patterns("checkpoint-*"))
    (run / "eval_results.json").write_text(json.dumps({"results": {"biosses": {"spearman": 0.71}}}))
    with pytest.raises(PublishError, match=r"eval_results\.json: not a biohicl evaluation record \(no `format`"):
        build_model_repo_folder(run, tmp_path / "repo", repo_id="me/tiny")
    (run / "eval_results.json").write_text(json.dumps(eval_record(biosses={"spearman": 0.71})))
    folder = build_model_repo_folder(run, tmp_path / "repo", repo_id="me/tiny")
    assert json.loads((folder / "eval_results.json").read_text())["tasks"]["biosses"]["metrics"] == {"spearman": 0.71}


def harness_record(limit: int | None, max_length: int, pubmedqa_queries: int, recall: float, spearman: float) -> dict:
    """What `biohicl evaluate --tasks biosses,pubmedqa [--limit_queries N] --max_length L` writes (BIOSSES scores its
    100 pairs whatever the limit)."""
    return {
        "format": 1,
        "model": {"id": "run", "revision": None, "config": {"max_length": max_length, "query_prompt": ""}},
        "settings": {"split": "test", "limit_queries": limit, "max_length": max_length},
        "tasks": {
            "biosses": {"split": "all", "metrics": {"spearman": spearman}, "num_queries": 100},
            "pubmedqa": {"split": "test", "metrics": {"recall@1": recall}, "num_queries": pubmedqa_queries},
        },
        "summary": {"biosses/spearman": spearman, "pubmedqa/recall@1": recall},
    }


def test_a_record_scored_on_the_first_queries_only_is_refused(run_dir, tmp_path, capsys):
    # `evaluate --limit_queries 50` scored 50 of PubMedQA's 500 questions; the card published R@1 0.82 as the test
    # result in model-index and a Δ against the base's 500 questions (and a base at another max length got a Δ too)
    run, _, _ = run_dir
    partial, full, base = tmp_path / "ev_mean.json", tmp_path / "ev_full.json", tmp_path / "ev_base.json"
    partial.write_text(json.dumps(harness_record(50, 64, 50, 0.82, 0.8167)))
    full.write_text(json.dumps(harness_record(None, 64, 500, 0.87, 0.8167)))
    base.write_text(json.dumps(harness_record(None, 64, 500, 0.862, 0.81)))
    out = tmp_path / "repo"
    for option, record in (("eval_results", partial), ("base_eval_results", partial)):
        other = {"eval_results": full, "base_eval_results": base, option: record}
        with pytest.raises(PublishError) as error:
            build_model_repo_folder(run, out, repo_id="me/tiny", **other)
        assert str(error.value) == (
            f"{partial}: evaluated with limit_queries 50, so pubmedqa scored only its first 50 queries, not the whole "
            "task; rerun `biohicl evaluate` without --limit_queries to publish it"
        )
        assert not out.exists()
    from biohicl.cli.main import main as cli_main

    capsys.readouterr()
    argv = ["publish", str(run), "--repo_id", "me/tiny", "--eval_results", str(partial), "--dry_run", "--out", str(out)]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "limit_queries 50, so pubmedqa" in err and "\n" not in err


def test_a_base_evaluated_at_another_max_length_gets_no_delta_on_the_card(run_dir, tmp_path, caplog):
    run, _, _ = run_dir
    full, base = tmp_path / "ev_full.json", tmp_path / "ev_base.json"
    full.write_text(json.dumps(harness_record(None, 64, 500, 0.87, 0.8167)))
    base.write_text(json.dumps(harness_record(None, 64, 500, 0.862, 0.81)))
    out = tmp_path / "repo"
    # the same settings: base column and Δ
    card = build_model_repo_folder(run, out, repo_id="me/tiny", eval_results=full, base_eval_results=base)
    text = (card / "README.md").read_text()
    assert "| PubMedQA (question → long answer) (test) | Recall@1 | 0.8620 | 0.8700 | +0.0080 |" in text
    assert "| BIOSSES (all) | Spearman | 0.8100 | 0.8167 | +0.0067 |" in text
    # the base at 256 tokens, the model at 64: no base value, no Δ, one warning naming the setting
    base.write_text(json.dumps(harness_record(None, 256, 500, 0.862, 0.81)))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="biohicl.hub.eval_rows"):
        card = build_model_repo_folder(
            run, out, repo_id="me/tiny", eval_results=full, base_eval_results=base, overwrite=True, license="mit"
        )
    text = (card / "README.md").read_text()
    assert "| PubMedQA (question → long answer) (test) | Recall@1 | – | 0.8700 | – |" in text
    assert "| BIOSSES (all) | Spearman | – | 0.8167 | – |" in text
    # (record_match warns apart that the record gives no model.weights_sha256)
    warnings = [r.getMessage() for r in caplog.records if r.name == "biohicl.hub.eval_rows"]
    assert len(warnings) == 1 and "max_length 64 vs 256 (model vs base)" in warnings[0]
    results = ModelCard(text).data.to_dict()["model-index"][0]["results"]
    assert {m["value"] for r in results for m in r["metrics"]} == {0.8167}  # the model's own values stay (PubMedQA,
    # no split of qiaojin/PubMedQA, is in the table only)


def test_a_cap_as_large_as_the_task_gets_one_verdict_from_compare_card_and_publish(run_dir, tmp_path, caplog):
    # `evaluate --limit_queries 300` on SciFact test (300 queries) compared cleanly with --compare, yet publish
    # refused it and the card dropped the base's value: two rules said whether a record scored part of a task
    from biohicl.evaluation.comparison import check_comparable
    from biohicl.evaluation.runner import evaluate_model, save_results
    from biohicl.hub.eval_rows import card_rows
    from tests.test_compare_checks import BASE, TUNED
    from tests.test_evaluation import write_beir

    run, _, _ = run_dir
    folder = write_beir(tmp_path / "beir")  # 3 queries
    whole = evaluate_model(BASE, [str(folder)])
    at_size, below = (evaluate_model(TUNED, [str(folder)], limit_queries=n) for n in (3, 2))
    assert [r["tasks"]["beir"]["num_queries"] for r in (whole, at_size, below)] == [3, 3, 2]
    files = {name: save_results(r, tmp_path / f"{name}.json") for name, r in (("whole", whole), ("at", at_size))}
    files["below"] = save_results(below, tmp_path / "below.json")
    model, base = at_size["tasks"]["beir"]["metrics"]["ndcg@10"], whole["tasks"]["beir"]["metrics"]["ndcg@10"]
    assert model != base
    # a cap of 3 on a task of 3 queries, beside an uncapped base: comparable, a base value and Δ, published whole
    check_comparable([at_size, whole])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="biohicl.hub.eval_rows"):
        row = next(r for r in card_rows(at_size, base=whole) if r.metric == "ndcg@10")
    assert (row.base_value, row.limit_queries, row.held_out) == (base, None, True) and not caplog.records
    out = tmp_path / "repo"
    card = build_model_repo_folder(
        run, out, repo_id="me/tiny", eval_results=files["at"], base_eval_results=files["whole"]
    )
    text = (card / "README.md").read_text()
    assert f"| beir (test) | nDCG@10 | {base:.4f} | {model:.4f} | {model - base:+.4f} |" in text
    # alone (the run's base never scored beir), nothing shows 3 queries are the whole task: refused, saying so
    with pytest.raises(PublishError) as error:
        build_model_repo_folder(run, tmp_path / "alone", repo_id="me/tiny", eval_results=files["at"])
    assert str(error.value) == (
        f"{files['at']}: evaluated with limit_queries 3, so beir scored 3 queries, and no record given shows that is "
        "the whole task (none scored it without the cap); rerun `biohicl evaluate` without --limit_queries to show "
        "it scored the whole task"
    )
    assert next(r for r in card_rows(at_size) if r.metric == "ndcg@10").limit_queries == 3
    # a cap of 2 cuts the task: no Δ from --compare or the card, and publish refuses it, base or none
    with pytest.raises(DataError, match=r"^beir: limit_queries 2 vs none \(record 1 vs record 2\)$"):
        check_comparable([below, whole])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="biohicl.hub.eval_rows"):
        row = next(r for r in card_rows(below, base=whole) if r.metric == "ndcg@10")
    assert (row.base_value, row.limit_queries, row.held_out) == (None, 2, False)
    assert [r.getMessage() for r in caplog.records] == [
        "the base's values are left out of the card where it was evaluated otherwise "
        "(beir: limit_queries 2 vs none (model vs base))"
    ]
    with pytest.raises(PublishError) as error:
        build_model_repo_folder(
            run, tmp_path / "cut", repo_id="me/tiny", eval_results=files["below"], base_eval_results=files["whole"]
        )
    assert str(error.value) == (
        f"{files['below']}: evaluated with limit_queries 2, so beir scored only its first 2 queries, not the whole "
        "task; rerun `biohicl evaluate` without --limit_queries to publish it"
    )
    with pytest.raises(PublishError, match=r"limit_queries 2, so beir scored 2 queries, and no record given shows"):
        build_model_repo_folder(run, tmp_path / "cut", repo_id="me/tiny", eval_results=files["below"])

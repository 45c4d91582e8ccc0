"""Publishing on bad input: token-like strings, symlinks out of the folder, oversize files, bad repo ids, misspelled
manifest fields, runs without a model, malformed evaluation files, a Hub that refuses. Refused before anything is
sent (the fake API records no call), one line at the CLI, and the token never appears in the message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import TOPICS, save_tiny_adapter_run

from biohicl.cli import publish as publish_cmd
from biohicl.data.pairs import build_pair_dataset
from biohicl.data.records import MeshRecord
from biohicl.data.storage import save_pair_dataset
from biohicl.errors import ConfigError, PublishError
from biohicl.hub.folder_checks import check_folder
from biohicl.hub.manifest import ReleaseManifest
from biohicl.hub.publish import publish_folder

FAKE_TOKEN = "hf_" + "Zq7" * 12  # token-shaped, not a real token


class RecordingHfApi:
    def __init__(self, token: str | None = None, fail: Exception | None = None):
        self.token, self.fail, self.calls = token, fail, []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append("create_repo")

    def create_branch(self, repo_id, **kwargs):
        self.calls.append("create_branch")

    def upload_folder(self, **kwargs):
        self.calls.append("upload_folder")
        if self.fail is not None:
            raise self.fail
        return type("CommitInfo", (), {"commit_url": "https://huggingface.co/me/x/commit/1"})()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("publish-bad")
    run = save_tiny_adapter_run(root)
    record = {"format": 1, "model": {"id": "run"}, "tasks": {"biosses": {"metrics": {"spearman": 0.71}}}}
    (run / "eval_results.json").write_text(json.dumps(record))  # as `biohicl evaluate` writes it
    return run


@pytest.fixture(scope="module")
def built_dataset(tmp_path_factory, mesh) -> Path:
    """A real (tiny) `build-dataset` folder: what `publish --dataset` stages for the Hub."""
    records = [
        MeshRecord(str(7000 + 10 * t + i), f"{topic} {i}", f"about {topic} {i}", (uis[i], uis[i + 1]), "bioasq",
                   split="test" if i == 2 else "train")
        for t, (topic, uis) in enumerate(TOPICS.items())
        for i in range(3)
    ]  # fmt: skip
    dataset, summary = build_pair_dataset(records, mesh, top_k=2)
    return save_pair_dataset(dataset, tmp_path_factory.mktemp("built") / "mesh-pairs", summary)


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def dataset_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mesh-pairs"
    (folder / "documents").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# MeSH pairs\n")
    (folder / "documents" / "documents-00000.parquet").write_bytes(b"PAR1 not really")
    return folder


def publish(argv: list[str], api) -> None:
    publish_cmd.main(argv, api=api)


@pytest.mark.parametrize("where", ["notes.txt", "sub/.env", "config.yaml"])
def test_token_like_string_anywhere_is_refused(tmp_path, where):
    folder = dataset_folder(tmp_path)
    (folder / where).parent.mkdir(parents=True, exist_ok=True)
    (folder / where).write_text(f"HF_TOKEN={FAKE_TOKEN}\n")
    api = RecordingHfApi()
    with pytest.raises(PublishError, match=rf"{where}: contains a Hugging Face token") as err:
        publish_folder(api, folder, "me/mesh-pairs", repo_type="dataset")
    assert api.calls == [] and FAKE_TOKEN not in str(err.value)


def test_token_split_across_read_chunks_is_found(tmp_path):
    folder = dataset_folder(tmp_path)
    (folder / "big.bin").write_bytes(b"x" * ((1 << 20) - 10) + FAKE_TOKEN.encode())  # straddles the 1 MiB chunk
    with pytest.raises(PublishError, match=r"big\.bin: contains a Hugging Face token"):
        check_folder(folder)


def test_the_literal_token_of_another_shape_is_refused(tmp_path, monkeypatch):
    folder = dataset_folder(tmp_path)
    secret = "my-org-private-token-0123456789"
    (folder / "log.txt").write_text(f"auth {secret}\n")
    monkeypatch.setenv("HF_TOKEN", secret)
    api = RecordingHfApi()
    with pytest.raises(PublishError, match=r"log\.txt: contains a Hugging Face token"):
        publish_folder(api, folder, "me/mesh-pairs", repo_type="dataset")
    assert api.calls == []


def test_token_in_a_dataset_folder_at_the_cli(built_dataset, tmp_path, run_cli, monkeypatch):
    folder = copy_of(built_dataset, tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "note": f"token: {FAKE_TOKEN}"}))  # staged as is
    (folder / "notes.md").write_text(f"token: {FAKE_TOKEN}\n")  # not part of the dataset: never staged
    result = run_cli(["publish", str(folder), "--dataset", "--repo_id", "me/mesh-pairs", "--dry_run"])
    assert "summary.json: contains a Hugging Face token (hf_...); refusing to upload it" in result.err
    assert "notes.md" not in result.err and FAKE_TOKEN not in result.err + result.out


def test_token_in_a_run_that_goes_into_the_repo(run_dir, tmp_path, run_cli):
    (tmp_path / "eval.json").write_text(json.dumps({"format": 1, "model": {}, "tasks": {}, "note": FAKE_TOKEN}))
    out = tmp_path / "repo"
    result = run_cli(["publish", str(run_dir), "--repo_id", "me/x", "--dry_run", "--out", str(out),
                      "--eval_results", str(tmp_path / "eval.json")])  # fmt: skip
    assert "eval_results.json: contains a Hugging Face token" in result.err and FAKE_TOKEN not in result.err


def test_symlink_out_of_the_folder(tmp_path):
    folder = dataset_folder(tmp_path)
    (tmp_path / "secret.txt").write_text("private")
    (folder / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(PublishError, match=r"link\.txt: resolves outside the folder"):
        check_folder(folder)


def test_oversize_file(built_dataset, run_cli):
    result = run_cli(["publish", str(built_dataset), "--dataset", "--repo_id", "me/x", "--dry_run",
                      "--max_file_mb", "0.001"])  # fmt: skip
    assert "KiB is over the 1.0 KiB limit (pass allow_large_files / --allow_large_files" in result.err


@pytest.mark.parametrize("repo_id", ["not-a-repo", "me/x/y", "me/../x", "me/x."])
def test_bad_repo_ids(tmp_path, repo_id):
    api = RecordingHfApi()
    with pytest.raises(ConfigError, match="is not an owner/name Hub repo id"):
        publish_folder(api, dataset_folder(tmp_path), repo_id, repo_type="dataset")
    assert api.calls == []


def test_manifest_with_a_misspelled_field(tmp_path, run_cli):
    manifest = tmp_path / "release.yaml"
    manifest.write_text("repo_id: me/x\nsource: runs/x\nprivte: true\n")
    with pytest.raises(ConfigError, match=r"release\.yaml: unknown field 'privte' \(did you mean 'private'\?\)"):
        ReleaseManifest.load(manifest)
    result = run_cli(["publish", "--manifest", str(manifest), "--dry_run"])
    assert "unknown field 'privte'" in result.err


def test_malformed_manifest(tmp_path):
    manifest = tmp_path / "release.yaml"
    manifest.write_text("repo_id: [me/x\n")
    with pytest.raises(ConfigError, match=r"release\.yaml: cannot read the manifest"):
        ReleaseManifest.load(manifest)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # an impossible date PyYAML's timestamp made a ValueError of; brackets nested this deep a RecursionError
        ("repo_id: me/x\nsource: runs/x\nrevision: !!timestamp 2001-02-30\n", "day is out of range for month"),
        ("repo_id: me/x\nsource: runs/x\nnotes: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ],
)
def test_a_manifest_yaml_cannot_build_is_one_line(tmp_path, run_cli, text, reason):
    manifest = tmp_path / "release.yaml"
    manifest.write_text(text)
    with pytest.raises(ConfigError) as err:
        ReleaseManifest.load(manifest)
    assert str(err.value) == f"{manifest}: cannot read the manifest ({reason})"
    result = run_cli(["publish", "--manifest", str(manifest), "--dry_run"])
    assert result.err.strip() == f"biohicl publish: error: {manifest}: cannot read the manifest ({reason})"


def test_an_unquoted_date_in_a_manifest_is_its_text(tmp_path):
    manifest = tmp_path / "release.yaml"
    manifest.write_text("repo_id: me/x\nsource: runs/x\nrevision: 2001-02-30\n")  # a branch name, not a date
    assert ReleaseManifest.load(manifest).revision == "2001-02-30"
    manifest.write_text("repo_id: me/x\nsource: runs/x\nreleased: 2001-02-30\n")
    with pytest.raises(ConfigError, match=rf"^{manifest}: unknown field 'released'"):
        ReleaseManifest.load(manifest)


def test_run_without_a_model(tmp_path, run_cli):
    run = tmp_path / "run"
    (run / "checkpoint-5").mkdir(parents=True)
    result = run_cli(["publish", str(run), "--repo_id", "me/x", "--dry_run"])
    assert "no saved model (biohicl_config.json)" in result.err


def test_malformed_eval_results(run_dir, tmp_path, run_cli):
    bad = tmp_path / "eval.json"
    bad.write_text('{"results": ')
    result = run_cli(["publish", str(run_dir), "--repo_id", "me/x", "--dry_run", "--eval_results", str(bad)])
    # the user's file, not the repo folder's copy of it
    assert f"{bad}: line 1: not valid JSON (Expecting value at column 13)" in result.err


def test_out_folder_not_empty(run_dir, tmp_path, run_cli):
    out = tmp_path / "repo"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli(["publish", str(run_dir), "--repo_id", "me/x", "--dry_run", "--out", str(out)])
    assert "exists and is not empty" in result.err and (out / "keep.txt").read_text() == "mine"


def test_dataset_folder_with_a_corrupt_parquet_file(tmp_path, run_cli):
    folder = dataset_folder(tmp_path)  # documents-00000.parquet is not parquet
    (folder / "pairs").mkdir()
    result = run_cli(["publish", str(folder), "--dataset", "--repo_id", "me/x", "--dry_run"])
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert "documents-00000.parquet: not a readable parquet file (Parquet magic bytes not found" in result.err


def test_hub_refusal_is_one_line_without_the_token(built_dataset, capsys, monkeypatch):
    from huggingface_hub.errors import HfHubHTTPError

    from biohicl.cli import main as cli

    class Unauthorized(HfHubHTTPError):  # what HfApi raises on a 401, without building an HTTP response
        def __init__(self, message: str):
            Exception.__init__(self, message)

        def __str__(self) -> str:
            return self.args[0]

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    api = RecordingHfApi(fail=Unauthorized(f"401 Client Error: Unauthorized (token {FAKE_TOKEN})\nmore detail"))
    monkeypatch.setattr(publish_cmd, "main", lambda argv, api=api, _main=publish_cmd.main: _main(argv, api=api))
    code = cli.main(["publish", str(built_dataset), "--dataset", "--repo_id", "me/mesh-pairs"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "me/mesh-pairs: the Hub refused or could not be reached (Unauthorized: 401 Client Error" in err
    assert FAKE_TOKEN not in err and "hf_***" in err
    assert api.calls == ["create_repo", "upload_folder"]

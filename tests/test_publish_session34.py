"""`biohicl publish`: a new repo's visibility left to its owner unless asked, `--out --overwrite` replacing the old
folder only once the new one is built and `--merge --base_model_path` (recording fakes of ``HfApi``; no network)."""

from __future__ import annotations

import json

import pytest
from conftest import build_tiny_bert, save_tiny_adapter_run
from huggingface_hub import constants
from test_hub import RecordingHfApi
from test_loader import add_to_hub_cache

from biohicl.cli import main as cli
from biohicl.cli import publish as publish_cmd
from biohicl.errors import BioHiCLError, PublishError
from biohicl.hub.publish import build_model_repo_folder, publish_folder

RECORD = {"format": 1, "model": {"id": "run"}, "tasks": {"biosses": {"metrics": {"spearman": 0.71}}}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("publish-s34")
    run = save_tiny_adapter_run(root)
    (run / "eval_results.json").write_text(json.dumps(RECORD))
    return run, root / "base"


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------- a new repo's visibility


def test_publish_leaves_a_new_repos_visibility_to_the_owner_unless_asked(run_dir, tmp_path):
    # private=bool(None) sent visibility "public": a default-private organisation got a public release
    run, _ = run_dir
    asked = {(): None, ("--private",): True, ("--private", "true"): True, ("--private", "false"): False}
    for flags, private in asked.items():
        api = RecordingHfApi()
        argv = [str(run), "--repo_id", "me/x", "--license", "mit", "--out", str(tmp_path / "o"), "--overwrite"]
        assert publish_cmd.main([*argv, *flags], api=api) == 0
        assert api.calls[0] == ("create_repo", ("me/x",), {"repo_type": "model", "private": private, "exist_ok": True})
    api = RecordingHfApi()
    folder = tmp_path / "o"
    publish_folder(api, folder, "me/y")  # the Python API's default too
    assert api.calls[0][2]["private"] is None
    publish_folder(api := RecordingHfApi(), tmp_path / "o", "me/y", repo_type="dataset")
    assert api.calls[0] == ("create_repo", ("me/y",), {"repo_type": "dataset", "private": None, "exist_ok": True})
    # --private to an existing public repo is still refused before anything is uploaded
    api = RecordingHfApi(existing_private=False)
    with pytest.raises(PublishError, match=r"^me/x: the repo exists and is public; nothing uploaded"):
        publish_cmd.main([str(run), "--repo_id", "me/x", "--license", "mit", "--private"], api=api)
    assert [c[0] for c in api.calls] == ["create_repo", "repo_info"]


def test_a_manifest_without_private_leaves_visibility_to_the_owner_and_its_private_true_is_sent(run_dir, tmp_path):
    run, _ = run_dir
    manifest = tmp_path / "m.yaml"
    manifest.write_text(f"repo_id: me/x\nsource: {run}\nlicense: mit\nprivate: true\n")
    api = RecordingHfApi()
    assert publish_cmd.main(["--manifest", str(manifest)], api=api) == 0
    assert api.calls[0][2]["private"] is True
    api = RecordingHfApi()
    assert publish_cmd.main(["--manifest", str(manifest), "--private", "false"], api=api) == 0
    assert api.calls[0][2]["private"] is False


# ---------------------------------------------------------------------- --out --overwrite


def test_a_failing_overwrite_build_leaves_the_previous_folder_intact(run_dir, tmp_path, monkeypatch):
    run, _ = run_dir
    out = tmp_path / "repo"
    build_model_repo_folder(run, out, repo_id="me/x", license="mit")
    before = _files(out)
    # the merge's base is not in the (empty) cache: the build fails after the point where --out was deleted
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(Exception, match="org/tiny-bert"):
        build_model_repo_folder(run, out, repo_id="me/x", license="mit", merge=True, overwrite=True)
    assert _files(out) == before
    # a failure writing the card, as late as a build fails
    import biohicl.hub.model_card as model_card

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_card, "save_model_card", broken)
    with pytest.raises(BioHiCLError, match=f"^{out}: no space left on device; nothing was written there$"):
        build_model_repo_folder(run, out, repo_id="me/x", license="mit", overwrite=True)
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]  # no staging or old copy left beside it
    monkeypatch.undo()
    (out / "stale.bin").write_bytes(b"x")
    build_model_repo_folder(run, out, repo_id="me/x", license="mit", overwrite=True)  # a good build replaces it
    assert _files(out) == before


# ---------------------------------------------------------------------- --merge --base_model_path


def test_merge_with_base_model_path_equals_the_merge_from_the_cache_and_a_wrong_base_is_refused(
    run_dir, tmp_path, monkeypatch, capsys
):
    run, base = run_dir
    cache = tmp_path / "hub"
    add_to_hub_cache(cache, "org/tiny-bert", base, "a" * 40)
    argv = [str(run), "--repo_id", "me/x-merged", "--license", "mit", "--merge", "--dry_run"]
    with monkeypatch.context() as mp:
        mp.setattr(constants, "HF_HUB_CACHE", str(cache))
        assert publish_cmd.main([*argv, "--out", str(tmp_path / "from-cache")]) == 0
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # offline, base not cached
    assert publish_cmd.main([*argv, "--out", str(tmp_path / "from-path"), "--base_model_path", str(base)]) == 0
    from_cache, from_path = _files(tmp_path / "from-cache"), _files(tmp_path / "from-path")
    assert "model.safetensors" in from_path and from_path == from_cache  # bit-equal, the card included
    capsys.readouterr()

    other = build_tiny_bert(tmp_path / "other", seed=1)  # same shape, other weights
    rc = cli.main(["publish", *argv, "--out", str(tmp_path / "wrong"), "--base_model_path", str(other)])
    err = capsys.readouterr().err.splitlines()  # the loading bars, then the error
    assert rc == 2 and [line for line in err if "error" in line] == err[-1:]
    assert err[-1].startswith(f"biohicl publish: error: {run}: this base is not org/tiny-bert, the one the adapter was")
    assert not (tmp_path / "wrong").exists()
    # without --merge nothing reads it: refused, not ignored
    rc = cli.main(["publish", *argv[:-2], "--dry_run", "--base_model_path", str(base)])
    assert rc == 2 and capsys.readouterr().err == (
        "biohicl publish: error: --base_model_path: is read by --merge only (an adapter is published as it is, "
        "its base named by its Hub id)\n"
    )

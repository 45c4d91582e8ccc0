"""`biohicl publish`: a new repo's visibility left to its owner unless asked, `--out --overwrite` replacing the old
folder only once the new one is built, `--merge --base_model_path`, the repo's files a commit deletes, said before it
is made and Ctrl-C during the upload (recording fakes of ``HfApi``; no network)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
from conftest import build_tiny_bert, save_tiny_adapter_run
from huggingface_hub import constants
from test_hub import RecordingHfApi
from test_loader import add_to_hub_cache
from test_publish_errors import hub  # noqa: F401  (hub is a fixture: the real HfApi answered locally)

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
    manifest.write_text(f"repo_id: me/x\nsource: {run}\nlicense: mit\n")  # its field defaulted to false: public
    api = RecordingHfApi()
    assert publish_cmd.main(["--manifest", str(manifest)], api=api) == 0
    assert api.calls[0][2]["private"] is None
    manifest.write_text(f"repo_id: me/x\nsource: {run}\nlicense: mit\nprivate: true\n")
    api = RecordingHfApi()
    assert publish_cmd.main(["--manifest", str(manifest)], api=api) == 0
    assert api.calls[0][2]["private"] is True
    api = RecordingHfApi()
    assert publish_cmd.main(["--manifest", str(manifest), "--private", "false"], api=api) == 0
    assert api.calls[0][2]["private"] is False
    manifest.write_text(f"repo_id: me/x\nsource: {run}\nlicense: mit\nprivate: false\n")  # a manifest's false too
    api = RecordingHfApi()
    assert publish_cmd.main(["--manifest", str(manifest)], api=api) == 0
    assert api.calls[0] == ("create_repo", ("me/x",), {"repo_type": "model", "private": False, "exist_ok": True})


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


def test_a_refused_file_fails_an_overwrite_build_and_leaves_the_previous_folder_intact(run_dir, tmp_path):
    run, _ = run_dir
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    out = tmp_path / "repo"
    build_model_repo_folder(copy, out, repo_id="me/x", license="mit")
    before = _files(out)
    tokenizer = copy / "tokenizer_config.json"  # staged as is, so the folder's token scan refuses the copy
    tokenizer.write_text(tokenizer.read_text().replace("{", '{"note": "hf_' + "Ab1" * 11 + '", ', 1))
    with pytest.raises(PublishError) as info:
        build_model_repo_folder(copy, out, repo_id="me/x", license="mit", overwrite=True)
    assert str(info.value).startswith(f"{out / 'tokenizer_config.json'}: ") and "Ab1Ab1" not in str(info.value)
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo", "run"]  # no staging or old copy left beside it


@pytest.mark.parametrize("out", [".", "./", "..", "sub/.."])
@pytest.mark.parametrize("dataset", [False, True])
def test_an_out_that_is_the_working_folder_or_holds_it_is_refused_in_one_line(
    run_dir, tmp_path, monkeypatch, capsys, out, dataset
):
    # `--out .` from an empty folder was a traceback (ValueError: PosixPath('.') has an empty name), the swap given
    # an unresolved path; resolved, it would replace the shell's working folder and leave the shell in a deleted one
    run, _ = run_dir
    source = run
    if dataset:  # refused before the dataset is read: a folder with documents/ is enough
        (source := tmp_path / "data" / "documents").mkdir(parents=True)
        source = source.parent
    here = tmp_path / "work" / "here"
    here.mkdir(parents=True)  # empty: nothing to overwrite
    if out.startswith("sub"):
        (here / "sub").mkdir()
    monkeypatch.chdir(here)
    argv = ["publish", str(source), "--repo_id", "me/x", "--license", "mit", "--out", out, "--dry_run"]
    assert cli.main(argv + (["--dataset"] if dataset else [])) == 2
    assert capsys.readouterr().err == (
        f"biohicl publish: error: {Path(out)}: is or holds the current folder; building there would replace it and "
        "leave the shell in a deleted folder (choose another --out, e.g. a new folder inside it)\n"
    )
    left = ["here", "sub"] if out.startswith("sub") else ["here"]
    assert sorted(p.name for p in (tmp_path / "work").rglob("*")) == left  # nothing built, nothing moved


def test_an_out_given_relative_to_the_working_folder_is_built_there(run_dir, tmp_path, monkeypatch):
    run, _ = run_dir
    monkeypatch.chdir(tmp_path)
    assert publish_cmd.main([str(run), "--repo_id", "me/x", "--license", "mit", "--out", "repo", "--dry_run"]) == 0
    first = _files(tmp_path / "repo")
    argv = [str(run), "--repo_id", "me/x", "--license", "mit", "--out", "./repo/", "--overwrite", "--dry_run"]
    assert publish_cmd.main(argv) == 0
    assert "README.md" in first and _files(tmp_path / "repo") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


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
    # nor by a dataset publish: refused before the folder is looked at
    rc = cli.main(["publish", str(tmp_path / "no-data"), "--dataset", "--repo_id", "me/d", "--base_model_path", "b"])
    assert rc == 2 and capsys.readouterr().err == (
        "biohicl publish: error: --base_model_path: is for model releases; a dataset publish does not use it\n"
    )


# ---------------------------------------------------------------------- what the commit deletes


def _answer(status: int) -> httpx2.Response:
    return httpx2.Response(
        status, request=httpx2.Request("GET", "https://huggingface.co/api/models/me/t/revision/main")
    )


class ListingHfApi(RecordingHfApi):
    """The recording fake with the repo's files listed as ``HfApi.list_repo_files`` lists them (``missing``: the
    ``RepositoryNotFoundError`` a repo not there yet gets)."""

    def __init__(self, remote: dict[str, bytes] | None = None, missing: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.repo = dict(remote or {})
        self.missing = missing

    def list_repo_files(self, repo_id, **kwargs):
        self.calls.append(("list_repo_files", (repo_id,), kwargs))
        if self.missing:
            from huggingface_hub.errors import RepositoryNotFoundError

            raise RepositoryNotFoundError("404 Client Error: Repository Not Found", response=_answer(404))
        return sorted(self.repo)


def _plan(capsys, out):
    """The dry run's lines from its first to the card's."""
    lines = capsys.readouterr().out.splitlines()
    return lines[: lines.index("----- README.md -----")], lines


def test_the_dry_run_lists_the_remote_files_the_commit_would_delete(run_dir, tmp_path, capsys):
    run, _ = run_dir
    out = tmp_path / "repo"
    remote = {".gitattributes": b"", "LICENSE": b"my terms", "onnx/model.onnx": b"x", "README.md": b"hand-edited"}
    api = ListingHfApi(remote)
    argv = [str(run), "--repo_id", "me/t", "--license", "mit", "--out", str(out), "--overwrite", "--dry_run"]
    assert publish_cmd.main(argv, api=api) == 0
    plan, _ = _plan(capsys, out)
    staged = sorted(_files(out))
    assert plan[0] == (
        f"would upload {len(staged)} files from {out} to me/t (model) in one commit, which deletes every other file "
        "of the repo (.gitattributes is kept):"
    )
    assert [line.split()[-1] for line in plan[1 : 1 + len(staged)]] == staged
    assert plan[1 + len(staged) :] == ["files of me/t the commit would delete:", "  LICENSE", "  onnx/model.onnx", ""]
    assert api.calls == [("list_repo_files", ("me/t",), {"repo_type": "model", "revision": None})]  # nothing sent
    assert api.repo == remote

    # nothing to delete, a repo not there yet, a fake that cannot list: each said so
    for api, said in (
        (ListingHfApi({".gitattributes": b"", "README.md": b"old"}), "  (none)"),
        (ListingHfApi(missing=True, token="hf_fake"), "  (none: me/t does not exist yet)"),
        (
            ListingHfApi(missing=True),  # a dry run without a token: a private repo is not seen
            "  (none: me/t does not exist yet, or is private and this dry run has no token to see it)",
        ),
        (
            RecordingHfApi(),
            "  not known (the Hub API given cannot list a repo's files): every file of me/t not uploaded above",
        ),
    ):
        assert publish_cmd.main(argv, api=api) == 0
        plan, _ = _plan(capsys, out)
        assert plan[-3:] == ["files of me/t the commit would delete:", said, ""]


def test_the_dry_run_without_an_api_says_when_the_hub_cannot_be_listed(run_dir, tmp_path, capsys):
    run, _ = run_dir
    out = tmp_path / "repo"
    argv = [str(run), "--repo_id", "me/t", "--license", "mit", "--out", str(out), "--dry_run"]
    assert publish_cmd.main(argv) == 0  # HF_HUB_OFFLINE=1 (conftest): huggingface_hub refuses to list
    plan, _ = _plan(capsys, out)
    assert plan[-3] == "files of me/t the commit would delete:"
    assert plan[-2].startswith("  not known (the repo could not be listed: OfflineModeIsEnabled: ")
    assert plan[-2].endswith("): every file of me/t not uploaded above")


def test_a_branch_not_there_yet_is_listed_from_main(run_dir, tmp_path, capsys):
    run, _ = run_dir

    class BranchApi(ListingHfApi):
        def list_repo_files(self, repo_id, **kwargs):
            if kwargs.get("revision") == "v0.1":
                from huggingface_hub.errors import RevisionNotFoundError

                self.calls.append(("list_repo_files", (repo_id,), kwargs))
                raise RevisionNotFoundError("404 Client Error: Revision Not Found", response=_answer(404))
            return super().list_repo_files(repo_id, **kwargs)

    api = BranchApi({"LICENSE": b"terms"})
    argv = [str(run), "--repo_id", "me/t", "--license", "mit", "--dry_run", "--revision", "v0.1"]
    assert publish_cmd.main(argv, api=api) == 0
    plan, _ = _plan(capsys, None)
    assert plan[-3:] == ["files of me/t the commit would delete:", "  LICENSE", ""]
    assert [c[2]["revision"] for c in api.calls] == ["v0.1", None]


@pytest.mark.parametrize(
    ("remote", "said", "result"),
    [
        (
            {".gitattributes": b"", "LICENSE": b"my terms", "onnx/model.onnx": b"x", "README.md": b"old"},
            "me/t: the commit deletes 2 files of the repo that the folder lacks: LICENSE, onnx/model.onnx",
            "the commit deleted 2 files of the repo that the folder lacked: LICENSE, onnx/model.onnx",
        ),
        (
            {"README.md": b"old"},
            "me/t: the commit deletes no file of the repo (it holds none that the folder lacks)",
            "the commit deleted no file of the repo",
        ),
        (
            None,  # an API object without list_repo_files
            "me/t: the commit deletes every file of the repo the folder lacks (not listed: the Hub API given cannot "
            "list a repo's files)",
            "the commit deleted every other file of the repo (.gitattributes kept)",
        ),
    ],
)
def test_a_publish_says_what_its_commit_deletes_before_making_it(run_dir, monkeypatch, capsys, remote, said, result):
    # the real run printed only "published ...": an earlier release's files, or a LICENSE added on the Hub, went
    # unsaid; then its result line said "deleted every other file" even after "deletes no file" (the listing reused)
    run, _ = run_dir
    api = RecordingHfApi(token="hf_fake") if remote is None else ListingHfApi(remote, token="hf_fake")
    monkeypatch.setattr(huggingface_hub, "HfApi", type("HfApi", (type(api),), {"__new__": lambda cls, *a, **k: api}))
    assert cli.main(["publish", str(run), "--repo_id", "me/t", "--license", "mit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    uploaded = sorted(api.uploaded)
    assert lines[-3:] == [
        said,
        f"uploaded {len(uploaded)} files to me/t (model)",
        f"published me/t (model): https://huggingface.co/me/t/commit/abc; {result}",
    ]
    assert sorted(api.repo) == sorted({".gitattributes", *uploaded})
    listed = [call for call in api.calls if call[0] == "list_repo_files"]
    assert [c[0] for c in api.calls if c[0] != "list_repo_files"] == ["create_repo", "upload_folder"]
    assert listed == ([("list_repo_files", ("me/t",), {"repo_type": "model", "revision": None})] if listed else [])
    assert api.calls.index(listed[0]) == 1 if listed else True  # after create_repo, before the upload


def test_one_file_deleted_is_said_in_the_singular_in_each_tense():
    """The three places that say what the commit deletes (before the upload, the result line, the dry run) are one
    renderer, :meth:`~biohicl.hub.hub_access.RemoteDeletions.words`, the tense its parameter."""
    from biohicl.hub.hub_access import RemoteDeletions

    one = RemoteDeletions(["LICENSE"])
    assert one.words("me/t", "deletes") == "me/t: the commit deletes 1 file of the repo that the folder lacks: LICENSE"
    assert one.words("me/t", "deleted") == "the commit deleted 1 file of the repo that the folder lacked: LICENSE"
    assert one.words("me/t", "would delete") == "  LICENSE"


def test_publish_help_says_the_commit_deletes_the_repos_other_files(capsys):
    with pytest.raises(SystemExit):
        publish_cmd.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "deletes every other file of the repo" in text
    assert "--dry_run lists them" in text
    assert (
        "Once a dataset is published, NAME.published.json beside its folder NAME records the repo, the branch and the "
        "contents pushed, so the model card of a run trained on NAME links it." in text
    )


def test_the_dry_run_lists_through_the_real_hfapi(run_dir, hub, capsys, monkeypatch):  # noqa: F811
    # huggingface_hub's own list_repo_files (the one upload_folder(delete_patterns=...) deletes by), its HTTP answered
    # locally: the repo's tree, then a repo not there (404 RepoNotFound)
    run, _ = run_dir
    monkeypatch.setenv("HF_TOKEN", "hf_" + "Kx4" * 12)
    tree = [
        {"type": "file", "path": ".gitattributes", "size": 1, "oid": "a" * 40},
        {"type": "file", "path": "LICENSE", "size": 3, "oid": "b" * 40},
        {"type": "directory", "path": "onnx", "size": 0, "oid": "c" * 40},
        {"type": "file", "path": "onnx/model.onnx", "size": 1, "oid": "d" * 40},
        {"type": "file", "path": "README.md", "size": 1, "oid": "e" * 40},
    ]
    hub.answer = lambda req: httpx2.Response(200, json=tree, request=req)
    argv = [str(run), "--repo_id", "me/t", "--license", "mit", "--dry_run"]
    assert publish_cmd.main(argv) == 0
    plan, _ = _plan(capsys, None)
    assert plan[-4:] == ["files of me/t the commit would delete:", "  LICENSE", "  onnx/model.onnx", ""]
    assert [(method, path) for method, path, _ in hub.requests] == [("GET", "/api/models/me/t/tree/main")]
    hub.answer = lambda req: httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"}, request=req)
    assert publish_cmd.main(argv) == 0
    plan, _ = _plan(capsys, None)
    assert plan[-3:] == ["files of me/t the commit would delete:", "  (none: me/t does not exist yet)", ""]


# ---------------------------------------------------------------------- Ctrl-C


@pytest.mark.parametrize(
    ("at", "said"),
    [
        ("create_repo", "me/t: nothing was uploaded"),
        (
            "upload_folder",
            "me/t: the upload had started, so a commit may or may not have been made: "
            "see https://huggingface.co/me/t/commits/main",
        ),
    ],
)
def test_ctrl_c_during_the_upload_says_what_became_of_the_repo(run_dir, monkeypatch, capsys, at, said):
    run, _ = run_dir

    class Interrupted(RecordingHfApi):
        def __init__(self, *args, **kwargs):
            super().__init__(token="hf_fake")

        def create_repo(self, repo_id, **kwargs):
            if at == "create_repo":
                raise KeyboardInterrupt
            return super().create_repo(repo_id, **kwargs)

        def upload_folder(self, **kwargs):
            raise KeyboardInterrupt

    monkeypatch.setattr(huggingface_hub, "HfApi", Interrupted)
    assert cli.main(["publish", str(run), "--repo_id", "me/t", "--license", "mit"]) == 130
    assert capsys.readouterr().err == f"biohicl publish: interrupted; {said}\n"


def test_another_interrupt_keeps_the_generic_line(monkeypatch, capsys):
    # `biohicl reproduce` turns SIGTERM into KeyboardInterrupt("signal 15"): not an outcome to print
    def stopped(argv):
        raise KeyboardInterrupt("signal 15")

    monkeypatch.setattr(publish_cmd, "main", stopped)
    assert cli.main(["publish", "x"]) == 130
    assert capsys.readouterr().err == "biohicl publish: interrupted; completed work is kept\n"


def test_publish_folder_raises_an_interrupt_that_says_what_became_of_the_repo(tmp_path):
    from biohicl.hub.hub_access import UploadInterrupted

    (tmp_path / "README.md").write_text("# x\n")

    class Stopped(RecordingHfApi):
        def upload_folder(self, **kwargs):
            raise KeyboardInterrupt

    with pytest.raises(UploadInterrupted) as info:
        publish_folder(Stopped(), tmp_path, "me/d", repo_type="dataset", revision="v1")
    assert isinstance(info.value, KeyboardInterrupt)
    assert info.value.outcome == (
        "me/d: the upload had started, so a commit may or may not have been made: "
        "see https://huggingface.co/datasets/me/d/commits/v1"
    )


def test_an_out_through_a_link_and_dotdot_is_built_where_the_checks_looked(run_dir, tmp_path, monkeypatch):
    # `--out link/../repo` beside the run at ./repo, link -> ../elsewhere/dir: the checks read the folder the OS
    # resolves (elsewhere/repo), while the swap took ".." by the path's text and replaced ./repo, the run itself
    run, _ = run_dir
    here = tmp_path / "here"
    here.mkdir()
    shutil.copytree(run, here / "repo")
    (tmp_path / "elsewhere" / "dir").mkdir(parents=True)
    (here / "link").symlink_to(tmp_path / "elsewhere" / "dir")
    monkeypatch.chdir(here)
    before = _files(here / "repo")
    argv = ["repo", "--repo_id", "me/x", "--license", "mit", "--out", "link/../repo", "--overwrite", "--dry_run"]
    assert publish_cmd.main(argv, api=RecordingHfApi()) == 0
    assert _files(here / "repo") == before  # the run is untouched
    assert (tmp_path / "elsewhere" / "repo" / "README.md").is_file()  # built where link/../repo leads


def test_a_dry_run_lists_through_an_api_subclass_its_own_way(run_dir, tmp_path):
    # the one-try listing read HfApi's attributes and sent its own request for any HfApi: a subclass overriding
    # list_repo_files was not asked, one not set up by HfApi.__init__ ended in an AttributeError traceback
    from huggingface_hub import HfApi

    from biohicl.hub.hub_access import files_deleted

    class Listing(HfApi):
        def list_repo_files(self, repo_id, *, repo_type=None, revision=None):
            return ["a.bin", "README.md"]

    class NotSetUp(Listing):
        def __init__(self):
            pass

    for api in (Listing(), NotSetUp()):
        assert files_deleted(api, "me/x", ["README.md"], once=True).paths == ["a.bin"]


def test_a_publish_after_a_kill_between_the_swaps_renames_finds_its_previous_folder_back(run_dir, tmp_path):
    """A kill between atomic_directory's two renames leaves the previous --out aside as ``.NAME.old-<pid>``; the next
    publish puts it back before its own checks, so without --overwrite it is refused as any folder that exists is,
    and nothing of it is lost."""
    import subprocess
    import sys

    run, _ = run_dir
    out = tmp_path / "repo"
    build_model_repo_folder(run, out, repo_id="me/x", license="mit")
    before = _files(out)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out.rename(tmp_path / f".repo.old-{int(dead.stdout)}")  # what the kill left: the old folder aside, --out gone
    with pytest.raises(PublishError, match="exists and is not empty"):
        build_model_repo_folder(run, out, repo_id="me/x", license="mit")
    assert _files(out) == before and [p.name for p in tmp_path.iterdir()] == ["repo"]

"""Publishing when the Hub cannot be reached, refuses the token or there is none, and repo ids the Hub would refuse.

No network: the recording fakes raise what huggingface_hub's HTTP client (httpx2) raises, and the tests of the real
``HfApi`` answer its HTTP requests locally (``huggingface_hub.set_client_factory`` with a mock transport).
huggingface_hub retries the commit request (and others) after a timeout or a 5xx answer: the local Hub skips the waits
between tries."""

from __future__ import annotations

import json
import logging
import time

import httpx2
import huggingface_hub
import pytest
from conftest import save_tiny_adapter_run
from huggingface_hub import HfApi, constants

from biohicl.cli import main as cli
from biohicl.cli import publish as publish_cmd
from biohicl.errors import ConfigError, PublishError
from biohicl.hub.publish import publish_folder

FAKE_TOKEN = "hf_" + "Kx4" * 12  # token-shaped, not a real token
NO_TOKEN = "no Hugging Face token: set HF_TOKEN or run `hf auth login`"


class FailingHfApi:
    """Records calls; raises ``fail`` from the call named ``at`` (as HfApi raises what its HTTP client raised)."""

    def __init__(self, fail: BaseException, at: str):
        self.token, self.fail, self.at, self.calls = FAKE_TOKEN, fail, at, []

    def _call(self, name: str):
        self.calls.append(name)
        if name == self.at:
            raise self.fail

    def create_repo(self, repo_id, **kwargs):
        self._call("create_repo")

    def repo_info(self, repo_id, **kwargs):
        self._call("repo_info")
        return type("RepoInfo", (), {"private": True})()

    def create_branch(self, repo_id, **kwargs):
        self._call("create_branch")

    def upload_folder(self, **kwargs):
        self._call("upload_folder")
        return type("CommitInfo", (), {"commit_url": "https://huggingface.co/me/x/commit/1"})()


def request() -> httpx2.Request:
    return httpx2.Request("POST", "https://huggingface.co/api/repos/create")


def commit_request(repo_type: str = "model", revision: str = "main") -> httpx2.Request:
    return httpx2.Request("POST", f"https://huggingface.co/api/{repo_type}s/me/x/commit/{revision}")


def tree_request() -> httpx2.Request:
    return httpx2.Request("GET", "https://huggingface.co/api/models/me/x/tree/main")


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# x\n")
    (folder / "adapter_config.json").write_text("{}")
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("publish-errors")
    run = save_tiny_adapter_run(root)
    (run / "eval_results.json").write_text(
        json.dumps({"format": 1, "model": {"id": "run"}, "tasks": {"biosses": {"metrics": {"spearman": 0.71}}}})
    )
    return run


@pytest.fixture
def no_login(tmp_path, monkeypatch):
    """No token anywhere: neither variable, no stored login."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-login" / "stored_tokens"))
    assert huggingface_hub.get_token() is None


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The real HfApi's HTTP answered by ``hub.answer(request)`` (set by the test); every request is recorded, and so is
    every wait huggingface_hub's retries would have slept (``hub.waits``: not slept, so retrying takes no 23 s)."""

    class LocalHub:
        def __init__(self):
            self.requests: list[tuple[str, str, bool]] = []
            self.waits: list[float] = []
            self.answer = lambda req: httpx2.Response(500, request=req)

        def handle(self, req: httpx2.Request) -> httpx2.Response:
            if req.url.path == "/api/agent-harnesses":  # huggingface_hub's own lookup, not the publish's
                return httpx2.Response(404, request=req)
            self.requests.append((req.method, req.url.path, "authorization" in req.headers))
            return self.answer(req)

    class NoWait:  # the ``time`` module as huggingface_hub's retry loop (utils/_http.py) sees it, with no sleep
        def __getattr__(self, name):
            return getattr(time, name)

        def sleep(self, seconds):
            local.waits.append(seconds)

    local = LocalHub()
    monkeypatch.setattr(huggingface_hub.utils._http, "time", NoWait())
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agent_harnesses.json"))
    huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(local.handle)))
    yield local
    huggingface_hub.set_client_factory(huggingface_hub.utils._http.default_client_factory)


# ---------------------------------------------------------------------- the Hub cannot be reached


@pytest.mark.parametrize("at", ["create_repo", "repo_info", "create_branch"])
def test_no_network_before_the_upload_is_one_line_saying_nothing_was_uploaded(folder, at):
    api = FailingHfApi(httpx2.ConnectError("[Errno -2] Name or service not known", request=request()), at)
    with pytest.raises(PublishError) as info:
        publish_folder(api, folder, "me/x", private=True, revision="v0.1")
    assert str(info.value) == (
        "me/x: the Hub could not be reached (ConnectError: [Errno -2] Name or service not known); nothing was uploaded"
    )
    assert "upload_folder" not in api.calls


@pytest.mark.parametrize("fail", [httpx2.ConnectTimeout, httpx2.ReadTimeout])
def test_a_transport_error_before_the_commit_request_made_no_commit(folder, fail):
    api = FailingHfApi(fail("timed out", request=tree_request()), "upload_folder")
    with pytest.raises(PublishError) as info:
        publish_folder(api, folder, "me/x")
    assert str(info.value) == f"me/x: the Hub stopped answering ({fail.__name__}: timed out); no commit was made"


def test_a_local_error_in_the_upload_made_no_commit_and_is_not_blamed_on_the_hub(folder):
    gone = FileNotFoundError(2, "No such file or directory", str(folder / "README.md"))  # a staged file deleted
    with pytest.raises(PublishError) as info:
        publish_folder(FailingHfApi(gone, "upload_folder"), folder, "me/x")
    assert str(info.value) == (
        f"me/x: the upload failed (FileNotFoundError: [Errno 2] No such file or directory: "
        f"'{folder / 'README.md'}'); no commit was made"
    )


@pytest.mark.parametrize("fail", [httpx2.ConnectError, httpx2.ConnectTimeout])
def test_a_connection_that_never_opened_for_the_commit_may_still_follow_one_that_committed(folder, fail):
    # huggingface_hub retries the commit request: the last try never connecting says nothing of an earlier one
    api = FailingHfApi(fail("[Errno 101] Network is unreachable", request=commit_request()), "upload_folder")
    with pytest.raises(PublishError) as info:
        publish_folder(api, folder, "me/x")
    assert str(info.value) == (
        f"me/x: the Hub stopped answering ({fail.__name__}: [Errno 101] Network is unreachable) during the commit, "
        "which may or may not have been made: see https://huggingface.co/me/x/commits/main"
    )


@pytest.mark.parametrize(
    ("repo_type", "revision", "url"),
    [
        ("model", None, "https://huggingface.co/me/x/commits/main"),
        ("dataset", "v0.1", "https://huggingface.co/datasets/me/x/commits/v0.1"),
    ],
)
@pytest.mark.parametrize("known", [True, False])
def test_a_timeout_of_the_commit_request_says_it_may_have_been_made(folder, repo_type, revision, url, known):
    commit = commit_request(repo_type, revision or "main")
    err = httpx2.ReadTimeout("timed out", request=commit) if known else httpx2.ReadTimeout("timed out")  # unknown: may
    api = FailingHfApi(err, "upload_folder")
    with pytest.raises(PublishError) as info:
        publish_folder(api, folder, "me/x", repo_type=repo_type, revision=revision)
    where = "during the commit, which" if known else "during the upload, and a commit"
    assert str(info.value) == (
        f"me/x: the Hub stopped answering (ReadTimeout: timed out) {where} may or may not have been made: see {url}"
    )


def test_offline_mode_is_one_line(folder):
    from huggingface_hub.errors import OfflineModeIsEnabled

    api = FailingHfApi(
        OfflineModeIsEnabled("Cannot reach https://huggingface.co/api/repos/create: offline"), "create_repo"
    )
    with pytest.raises(PublishError) as info:
        publish_folder(api, folder, "me/x")
    assert str(info.value) == (
        "me/x: the Hub could not be reached (OfflineModeIsEnabled: Cannot reach https://huggingface.co/api/repos/"
        "create: offline); nothing was uploaded"
    )


@pytest.mark.parametrize("bug", [TypeError("upload_folder() got an unexpected keyword"), KeyError("url")])
def test_programming_errors_are_not_swallowed(folder, bug):
    with pytest.raises(type(bug)):
        publish_folder(FailingHfApi(bug, "upload_folder"), folder, "me/x")


def test_real_hfapi_without_network_is_one_line_at_the_cli(run_dir, tmp_path, hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)

    def unreachable(req):
        raise httpx2.ConnectError("[Errno -2] Name or service not known", request=req)

    hub.answer = unreachable
    code = cli.main(["publish", str(run_dir), "--repo_id", "me/x", "--license", "mit", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "biohicl publish: error: me/x: the Hub could not be reached (ConnectError: [Errno -2] Name or service not "
        "known); nothing was uploaded"
    ]
    assert hub.requests == [("POST", "/api/repos/create", True)]
    assert FAKE_TOKEN not in err


def answering_the_upload(fail):
    """The local Hub's answers to a publish of the ``folder`` fixture to me/x: ``fail(request)`` first (its answer, or
    ``None`` to go on), then what the Hub answers when all goes well up to the commit (which answers 500)."""

    def answer(req):
        if (failed := fail(req)) is not None:
            return failed
        path = req.url.path
        if path == "/api/repos/create":
            return httpx2.Response(200, json={"url": "https://huggingface.co/me/x"}, request=req)
        if path == "/api/validate-yaml":  # the card's metadata, checked before the upload
            return httpx2.Response(200, json={}, request=req)
        if path.startswith("/api/models/me/x/tree/"):
            return httpx2.Response(200, json=[], request=req)
        if path.startswith("/api/models/me/x/preupload/"):
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                for f in json.loads(req.read())["files"]
            ]
            return httpx2.Response(200, json={"files": files}, request=req)
        return httpx2.Response(500, request=req)

    return answer


COMMIT = ("POST", "/api/models/me/x/commit/main", True)
MAY_HAVE_COMMITTED = "may or may not have been made: see https://huggingface.co/me/x/commits/main"


@pytest.mark.parametrize("cut", ["/api/validate-yaml", "/api/models/me/x/tree/main", "/api/models/me/x/commit/main"])
def test_real_hfapi_timing_out_in_the_upload(folder, hub, cut):
    def timing_out(req):
        if req.url.path == cut:
            raise httpx2.ReadTimeout("timed out", request=req)

    hub.answer = answering_the_upload(timing_out)
    with pytest.raises(PublishError) as info:
        publish_folder(HfApi(token=FAKE_TOKEN), folder, "me/x")
    if cut.endswith("/commit/main"):
        assert str(info.value) == (
            f"me/x: the Hub stopped answering (ReadTimeout: timed out) during the commit, which {MAY_HAVE_COMMITTED}"
        )
    else:
        assert str(info.value) == "me/x: the Hub stopped answering (ReadTimeout: timed out); no commit was made"
    assert hub.requests[0] == ("POST", "/api/repos/create", True)
    assert (COMMIT in hub.requests) == cut.endswith("/commit/main")
    assert all(authorized for _, _, authorized in hub.requests)


def test_real_hfapi_commit_timing_out_then_not_connecting_may_have_committed(folder, hub):
    # the first commit request times out (the Hub may have made the commit and lost the answer); huggingface_hub
    # retries it, and the retries cannot connect: the last error is a ConnectError, the first try may have committed
    def timing_out_then_unreachable(req):
        if req.url.path == COMMIT[1]:
            if hub.requests.count(COMMIT) == 1:
                raise httpx2.ReadTimeout("timed out", request=req)
            raise httpx2.ConnectError("[Errno 101] Network is unreachable", request=req)

    hub.answer = answering_the_upload(timing_out_then_unreachable)
    with pytest.raises(PublishError) as info:
        publish_folder(HfApi(token=FAKE_TOKEN), folder, "me/x")
    assert str(info.value) == (
        "me/x: the Hub stopped answering (ConnectError: [Errno 101] Network is unreachable) during the commit, "
        f"which {MAY_HAVE_COMMITTED}"
    )
    assert hub.requests.count(COMMIT) > 1 and len(hub.waits) == hub.requests.count(COMMIT) - 1  # it was retried


@pytest.mark.parametrize(("status", "reason"), [(500, "Internal Server Error"), (504, "Gateway Timeout")])
def test_real_hfapi_commit_answered_with_a_server_error_may_have_committed(folder, hub, status, reason):
    # a gateway's 504 (or a 500) can come after the Hub made the commit
    def server_error(req):
        if req.url.path == COMMIT[1]:
            return httpx2.Response(status, text=reason, request=req)

    hub.answer = answering_the_upload(server_error)
    with pytest.raises(PublishError) as info:
        publish_folder(HfApi(token=FAKE_TOKEN), folder, "me/x")
    assert str(info.value) == (
        f"me/x: the Hub answered with an error (HfHubHTTPError: Server error '{status} {reason}' for url "
        f"'https://huggingface.co/api/models/me/x/commit/main') during the commit, which {MAY_HAVE_COMMITTED}"
    )
    assert hub.requests.count(COMMIT) > 1  # retried


def test_real_hfapi_server_error_before_the_commit_made_no_commit(folder, hub):
    def server_error(req):
        if "/preupload/" in req.url.path:
            return httpx2.Response(503, text="Service Unavailable", request=req)

    hub.answer = answering_the_upload(server_error)
    with pytest.raises(PublishError) as info:
        publish_folder(HfApi(token=FAKE_TOKEN), folder, "me/x")
    assert str(info.value) == (
        "me/x: the Hub answered with an error (HfHubHTTPError: Server error '503 Service Unavailable' for url "
        "'https://huggingface.co/api/models/me/x/preupload/main'); no commit was made"
    )
    assert COMMIT not in hub.requests


def test_real_hfapi_commit_refused_made_no_commit(folder, hub):
    def refused(req):
        if req.url.path == COMMIT[1]:
            return httpx2.Response(422, json={"error": "Invalid commit"}, request=req)

    hub.answer = answering_the_upload(refused)
    with pytest.raises(PublishError) as info:
        publish_folder(HfApi(token=FAKE_TOKEN), folder, "me/x")
    assert str(info.value) == (
        "me/x: the Hub answered with an error (HfHubHTTPError: Client error "
        f"'422 {httpx2.codes.get_reason_phrase(422)}' for url 'https://huggingface.co/api/models/me/x/commit/main'); "
        "no commit was made"
    )
    assert hub.requests.count(COMMIT) == 1  # a 4xx answer is not retried: the one try was refused


# ---------------------------------------------------------------------- no token, or one the Hub refuses


def test_no_token_is_refused_before_building_or_calling_the_hub(run_dir, tmp_path, no_login, hub, capsys):
    out = tmp_path / "staged"
    code = cli.main(["publish", str(run_dir), "--repo_id", "me/x", "--license", "mit", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [f"biohicl publish: error: {NO_TOKEN}"]
    assert hub.requests == [] and not out.exists()


def test_publish_folder_with_the_real_hfapi_and_no_token_sends_nothing(folder, no_login, hub):
    with pytest.raises(PublishError) as info:
        publish_folder(HfApi(), folder, "me/x")
    assert str(info.value) == NO_TOKEN and hub.requests == []


def test_a_dry_run_needs_no_token(run_dir, tmp_path, no_login, hub, capsys):
    out = tmp_path / "staged"
    argv = [str(run_dir), "--repo_id", "me/x", "--license", "mit", "--out", str(out), "--dry_run"]
    assert publish_cmd.main(argv) == 0
    assert capsys.readouterr().out.startswith("would upload ") and (out / "README.md").is_file()
    # it only reads: the repo's files listed (to say which the commit would delete), with no token
    assert set(hub.requests) == {("GET", "/api/models/me/x/tree/main", False)}


def _unreachable(req):
    raise httpx2.ConnectError("[Errno -2] Name or service not known", request=req)


def _timing_out(req):
    raise httpx2.ReadTimeout("timed out", request=req)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (_unreachable, "ConnectError: [Errno -2] Name or service not known"),
        (_timing_out, "ReadTimeout: timed out"),
        (
            lambda req: httpx2.Response(503, request=req),
            "HfHubHTTPError: Server error '503 Service Unavailable' for url ",
        ),
    ],
)
def test_a_dry_runs_listing_is_tried_once_with_a_short_timeout_and_says_one_line(
    run_dir, tmp_path, no_login, hub, capsys, answer, why
):
    # with no network the dry run waited ~27 s while huggingface_hub retried the listing, printing 11 retry lines
    timeouts = []

    def once(req):
        timeouts.append(req.extensions["timeout"])
        return answer(req)

    hub.answer = once
    retries = []
    handler = logging.Handler()
    handler.emit = lambda record: retries.append(record.getMessage())
    logging.getLogger("huggingface_hub").addHandler(handler)
    try:
        argv = [str(run_dir), "--repo_id", "me/x", "--license", "mit", "--out", str(tmp_path / "o"), "--dry_run"]
        assert cli.main(["publish", *argv]) == 0
    finally:
        logging.getLogger("huggingface_hub").removeHandler(handler)
    assert hub.requests == [("GET", "/api/models/me/x/tree/main", False)] and hub.waits == [] and retries == []
    assert timeouts == [{"connect": 10.0, "read": 10.0, "write": 10.0, "pool": 10.0}]
    plan = capsys.readouterr().out.splitlines()
    said = plan[plan.index("files of me/x the commit would delete:") + 1]
    assert said.startswith(f"  not known (the repo could not be listed: {why}")
    assert said.endswith("): every file of me/x not uploaded above")


def test_a_dry_runs_one_try_follows_the_trees_pages(run_dir, tmp_path, no_login, hub, capsys):
    def paged(req):
        if req.url.params.get("cursor") == "2":
            return httpx2.Response(200, json=[{"type": "file", "path": "onnx/model.onnx"}], request=req)
        link = {"link": '<https://huggingface.co/api/models/me/x/tree/main?recursive=true&cursor=2>; rel="next"'}
        page = [{"type": "file", "path": "LICENSE"}, {"type": "directory", "path": "onnx"}]
        return httpx2.Response(200, json=page, headers=link, request=req)

    hub.answer = paged
    argv = [str(run_dir), "--repo_id", "me/x", "--license", "mit", "--out", str(tmp_path / "o"), "--dry_run"]
    assert cli.main(["publish", *argv]) == 0
    plan = capsys.readouterr().out.split("\n----- README.md -----")[0].splitlines()
    assert plan[-3:] == ["files of me/x the commit would delete:", "  LICENSE", "  onnx/model.onnx"]
    assert hub.requests == [("GET", "/api/models/me/x/tree/main", False)] * 2


def test_a_real_publish_still_lists_with_huggingface_hubs_retries(folder, hub):
    # the listing before the upload is as it was: huggingface_hub's list_repo_files, retried after a 503
    def busy_then_listed(req):
        if req.url.path == "/api/models/me/x/tree/main" and hub.requests.count(("GET", req.url.path, True)) == 1:
            return httpx2.Response(503, request=req)
        return None

    hub.answer = answering_the_upload(busy_then_listed)
    with pytest.raises(PublishError):  # the local Hub answers the commit with 500
        publish_folder(HfApi(token=FAKE_TOKEN), folder, "me/x")
    tree = ("GET", "/api/models/me/x/tree/main", True)  # then upload_folder lists it again, for delete_patterns
    assert hub.requests[:3] == [("POST", "/api/repos/create", True), tree, tree] and hub.waits[:1] == [1]


def test_an_injected_api_carries_its_own_auth(folder, no_login):
    # the seam's fakes (tests/test_hub.py) have no token: the token check is for huggingface_hub's HfApi only
    api = FailingHfApi(RuntimeError("unused"), at="none")
    api.token = None
    publish_folder(api, folder, "me/x")
    assert api.calls == ["create_repo", "upload_folder"]


@pytest.mark.parametrize(
    ("status", "server", "message"),
    [
        (
            401,
            "Invalid credentials in Authorization header",
            "me/x: the Hub refused the token (401 Unauthorized: Invalid credentials in Authorization header): set "
            "HF_TOKEN to a token with write access to 'me' or run `hf auth login`; nothing was uploaded",
        ),
        (
            403,
            'You don\'t have the rights to create a model under the namespace "me"',
            "me/x: the Hub refused the token (403 Forbidden: You don't have the rights to create a model under the "
            "namespace \"me\"): set HF_TOKEN to a token with write access to 'me' or run `hf auth login`; nothing "
            "was uploaded",
        ),
    ],
)
def test_a_refused_token_says_so(folder, hub, status, server, message):
    hub.answer = lambda req: httpx2.Response(status, json={"error": server}, request=req)
    with pytest.raises(PublishError) as info:
        publish_folder(HfApi(token=FAKE_TOKEN), folder, "me/x")
    assert str(info.value) == message
    # on 401/403 HfApi.create_repo looks whether the repo exists already (it does not: the same answer)
    assert hub.requests == [("POST", "/api/repos/create", True), ("GET", "/api/models/me/x", True)]


@pytest.mark.parametrize(("status", "reason"), [(401, "Unauthorized"), (403, "Forbidden")])
def test_a_refusal_of_the_commit_made_no_commit(folder, status, reason):
    from huggingface_hub.errors import HfHubHTTPError

    response = httpx2.Response(status, request=commit_request())
    api = FailingHfApi(HfHubHTTPError(f"Client error '{status} {reason}'", response=response), "upload_folder")
    with pytest.raises(PublishError) as info:
        publish_folder(api, folder, "me/x")
    assert str(info.value) == (
        f"me/x: the Hub refused the token ({status} {reason}): set HF_TOKEN to a token with write access to 'me' or "
        "run `hf auth login`; no commit was made"
    )


# ---------------------------------------------------------------------- repo ids the Hub would refuse


@pytest.mark.parametrize("repo_id", ["BioHiCL-MiniLM", "me/BioHiCL MiniLM", "me/a/b", "me/x-"])
def test_a_dry_run_refuses_the_repo_ids_the_upload_refuses(run_dir, tmp_path, repo_id, capsys):
    out = tmp_path / "staged"
    code = cli.main(["publish", str(run_dir), "--repo_id", repo_id, "--out", str(out), "--dry_run"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        f"biohicl publish: error: --repo_id: {repo_id!r} is not an owner/name Hub repo id (e.g. me/BioHiCL-MiniLM)"
    ]
    assert not out.exists()


def test_a_repo_id_flag_over_a_manifest_is_checked_too(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("source: runs/x\nrepo_id: me/BioHiCL-MiniLM\n")
    with pytest.raises(ConfigError) as info:
        publish_cmd.main(["--manifest", str(manifest), "--repo_id", "me/a/b", "--dry_run"])
    assert str(info.value) == "--repo_id: 'me/a/b' is not an owner/name Hub repo id (e.g. me/BioHiCL-MiniLM)"

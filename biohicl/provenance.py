"""Which code made a result: :func:`source_digest`, a short digest of the biohicl package's source;
:func:`library_versions`, the versions of the packages that can change a result; :func:`git_revision`, the commit of
a checkout the package runs from.

Evaluation records name the digest (``versions.biohicl_source``), the evaluation cache is keyed by it and
``training_summary.json`` lists the digests that trained a run, so a study tells apart runs of different code under
one version number; both records keep :func:`library_versions` (``versions``), and a training summary the commit
(``source_git``). A foundation module: every layer may import it.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

#: The installed biohicl package folder, whose source :func:`source_digest` fingerprints.
PACKAGE_ROOT = Path(__file__).resolve().parent
#: Where biohicl's source lives. It is not on PyPI, so every install names this repository (or a checkout of it).
REPOSITORY_URL = "https://github.com/biohicl/biohicl"
#: Besides every ``*.py`` file and everything under ``resources/``: the packaged data files (``registry.json``).
SOURCE_SUFFIXES = (".py", ".json", ".md")
#: Where a digest should stand but none was recorded: a record or checkpoint written by code that kept none.
UNKNOWN_SOURCE = "unknown"
#: The card templates, digested by these fixed names wherever they are: ``{name: (path inside the package folder,
#: as a wheel ships it (``force-include`` in ``pyproject.toml``); path beside the package folder, as a clone keeps
#: it)}``. The card code finds them with :func:`template_file` too.
TEMPLATES = {
    "templates/model_card_template.md": ("model_card_template.md", "model_card_template.md"),
    "templates/dataset_card_template.md": ("data/dataset_card_template.md", "hub/dataset_card_template.md"),
}


def extra_install(extra: str) -> str:
    """How to install biohicl with its optional dependencies ``extra`` (``onnx``, ``faiss`` ...), in a message's
    words: from a checkout or from :data:`REPOSITORY_URL` (``pip install biohicl[onnx]`` finds nothing on PyPI)."""
    return f'`pip install -e ".[{extra}]"` in a checkout, or `pip install "biohicl[{extra}] @ git+{REPOSITORY_URL}"`'


def source_digest(root: str | Path | None = None) -> str:
    """A short stable digest (sha256, first 12 hex) of a biohicl package's source: each ``*.py``, ``*.json`` and
    ``*.md`` file and everything under ``resources/``, in sorted relative-path order, path and bytes hashed (no mtimes,
    no absolute paths, no ``__pycache__``), then the card templates under their :data:`TEMPLATES` names, found as
    the card code finds them (in the package, else beside it), so a wheel and a clean clone of the same commit give
    the same digest. In a ``*.py``, ``*.json`` or ``*.md`` file CRLF is read as LF, so a Windows checkout with CRLF
    line endings gives the LF one's digest (``.gitattributes`` checks out LF, too); a file with LF only, and any other
    file (the ``resources/`` data), is hashed as it is. ``root``: the package folder (default: the installed one,
    computed once per process)."""
    return _installed_source_digest() if root is None else _digest_folder(Path(root))


@functools.lru_cache(maxsize=1)
def _installed_source_digest() -> str:
    return _digest_folder(PACKAGE_ROOT)


def template_file(name: str, root: str | Path = PACKAGE_ROOT) -> Path | None:
    """The file the card template :data:`TEMPLATES` calls ``name`` is read from for the package folder ``root``:
    the packaged copy, else the one beside the package (a source checkout); None when there is neither."""
    packaged, beside = TEMPLATES[name]
    root = Path(root)
    return next((path for path in (root / packaged, root.parent / beside) if path.is_file()), None)


def _digest_folder(root: Path) -> str:
    packaged_templates = {packaged for packaged, _ in TEMPLATES.values()}
    files = sorted(
        (name, path)
        for path in root.rglob("*")
        if path.is_file()
        and not any(part == "__pycache__" or part.startswith(".") for part in path.relative_to(root).parts)
        and (name := path.relative_to(root).as_posix()) not in packaged_templates  # digested by their own names
        and (path.suffix in SOURCE_SUFFIXES or path.relative_to(root).parts[0] == "resources")
    )
    templates = [(name, path) for name in sorted(TEMPLATES) if (path := template_file(name, root)) is not None]
    digest = hashlib.sha256()
    for name, path in files + templates:
        content = path.read_bytes()
        if path.suffix in SOURCE_SUFFIXES:  # Python, JSON and Markdown read CRLF as LF; other files are data
            content = content.replace(b"\r\n", b"\n")
        for part in (name.encode("utf-8"), content):  # each length-prefixed: no two file sets hash alike
            digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:12]


def files_sha256(paths: Iterable[str | Path], block: int = 1 << 24) -> str:
    """sha256 (hex) of the files' bytes one after another, read in 16 MiB blocks (one file: its ``sha256sum``): the
    one file digest of weights, data files and compressed shards."""
    digest = hashlib.sha256()
    for path in paths:
        with Path(path).open("rb") as handle:
            while chunk := handle.read(block):
                digest.update(chunk)
    return digest.hexdigest()


#: The packages whose versions can change a result, in the order :func:`library_versions` lists them.
VERSIONED_PACKAGES = (
    "biohicl",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "sentence-transformers",
    "huggingface-hub",
    "tokenizers",
    "numpy",
    "scipy",
    "evaluate",
    "datasets",
    "pytrec-eval-terrier",
)


def library_versions() -> dict[str, str | None]:
    """Installed versions of the packages that can change a result (:data:`VERSIONED_PACKAGES`; None when not
    installed) after ``python``'s, and ``biohicl_source``: :func:`source_digest`, which tells apart runs of different
    code under one version number. An evaluation record's and a training summary's ``versions``."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["biohicl_source"] = source_digest()
    return versions


def git_revision(root: str | Path = PACKAGE_ROOT, timeout: float = 5.0) -> dict[str, str | bool] | None:
    """``{"commit": HEAD, "dirty": ...}`` of the git checkout the package folder ``root`` is the ``biohicl/`` folder
    of (a clone, an editable install): ``dirty`` when ``git status`` lists a change (an untracked file too) under
    ``root`` or in the card templates beside it, which :func:`source_digest` hashes. None where ``root``'s parent
    is no checkout's top (an installed wheel, also one inside another project's checkout), where git is missing,
    refuses (a repository of another owner) or takes longer than ``timeout`` seconds."""
    root = Path(root).resolve()
    top = root.parent
    if not (top / ".git").exists():
        return None
    beside = [path for _, path in TEMPLATES.values() if (top / path).exists()]

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(top), *args],  # status never takes .git/index.lock
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return done.stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != top:
            return None
        commit = git("rev-parse", "--verify", "HEAD")
        changed = git("status", "--porcelain", "--", root.name, *beside)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return {"commit": commit, "dirty": bool(changed)}

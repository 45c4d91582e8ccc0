"""``biohicl publish``: build a model repo folder from a run (or the Hub layout of a dataset) and upload it in one
commit.

    biohicl publish runs/minilm --repo_id me/BioHiCL-MiniLM --dry_run
    biohicl publish runs/minilm --repo_id me/BioHiCL-MiniLM --private --revision v0.1
    biohicl publish runs/study/dataset --dataset --repo_id me/mesh-pairs
    biohicl publish --manifest hub/models/biohicl-minilm.yaml

The commit mirrors the folder: it deletes every other file of the repo (an earlier release's weights, a file added
on the Hub; ``.gitattributes`` is kept), and --dry_run lists them. A new repo is public unless --private (or its
organization makes new repos private); an existing repo keeps its visibility. Once a dataset is published,
NAME.published.json beside its folder NAME records the repo, the branch and the contents pushed, so the model card
of a run trained on NAME links it.

The token comes from ``HF_TOKEN`` or ``hf auth login``; it is never printed or written anywhere.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from biohicl.errors import ConfigError, PublishError
from biohicl.hub.dataset_repo import build_dataset_repo_folder, record_dataset_publication
from biohicl.hub.folder_checks import DEFAULT_MAX_FILE_BYTES, check_folder
from biohicl.hub.hub_access import RemoteDeletions, files_deleted, require_token, token_of
from biohicl.hub.manifest import ReleaseManifest
from biohicl.hub.publish import build_model_repo_folder, check_repo_id, publish_folder

HELP = "Upload a trained adapter (with its generated model card) or the MeSH-pair dataset to the Hugging Face Hub."
#: settings a model publish reads and a dataset publish has no use for (refused, not ignored)
MODEL_ONLY = ("merge", "eval_results", "base_eval_results", "base_model_path")


@dataclass
class PublishArguments:
    """Options of ``biohicl publish``. The manifest's fields are ``None`` unless given on the command line, where
    they win over the manifest."""

    source: str | None = field(
        default=None, metadata={"help": "Run folder (model) or dataset folder (--dataset); also the positional SOURCE."}
    )
    repo_id: str | None = field(default=None, metadata={"help": "Hub repo id, owner/name."})
    manifest: str | None = field(
        default=None, metadata={"help": "Release manifest (hub/models/*.yaml, hub/datasets/*.yaml); flags win."}
    )
    dataset: bool | None = field(
        default=None,
        metadata={
            "help": "Publish a `biohicl build-dataset` folder (one file per split) (default: the manifest's repo type, "
            "else a model).",
            "nargs": "?",
            "const": True,
        },
    )
    private: bool | None = field(
        default=None,
        metadata={
            "help": "Create the repo private (default: the manifest's `private`, else the owner's default: public "
            "unless its organization makes new repos private; an existing repo keeps its visibility).",
            "nargs": "?",
            "const": True,
        },
    )
    revision: str | None = field(
        default=None, metadata={"help": "Branch to commit to (created if missing; default main)."}
    )
    dry_run: bool = field(
        default=False,
        metadata={"help": "Build and check; print the files, the repo's files the commit would delete, and the card."},
    )
    out: str | None = field(
        default=None, metadata={"help": "Where to build the repo folder (default: a temporary folder)."}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace a non-empty --out folder (once the new one is built)."}
    )
    eval_results: str | None = field(
        default=None, metadata={"help": "Evaluation JSON of the tuned model (default RUN/eval_results.json)."}
    )
    base_eval_results: str | None = field(
        default=None,
        metadata={
            "help": "Evaluation JSON of the base model, for the card's table.",
            # biohicl.cli.parser.DEFAULT_WORDS: what None means, shown by --help
            "default_words": "the manifest's base_eval_results, else RUN/base_eval_results.json if there",
        },
    )
    license: str | None = field(
        default=None,
        metadata={"help": "License id for the card (e.g. apache-2.0; a dataset's default: from its sources)."},
    )
    merge: bool | None = field(
        default=None,
        metadata={
            "help": "Upload LoRA merged into full weights (default: the manifest's `merge`, else the adapter as is).",
            "nargs": "?",
            "const": True,
        },
    )
    base_model_path: str | None = field(
        default=None,
        metadata={
            "help": "With --merge: the folder the adapter's base weights are read from (default: its Hub id, from the "
            "Hugging Face cache); it must be the base the adapter was trained on, checked as `biohicl evaluate "
            "--base_model_path` checks it."
        },
    )
    commit_message: str | None = field(
        default=None,
        metadata={
            "help": "Commit message.",
            "default_words": "the manifest's commit_message, else Upload REPO_ID with biohicl",
        },
    )
    allow_large_files: bool = field(default=False, metadata={"help": "Allow files over the size limit."})
    max_file_mb: float = field(
        default=DEFAULT_MAX_FILE_BYTES / 1024**2, metadata={"help": "Per-file size limit in MiB."}
    )

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_file_mb) and self.max_file_mb > 0):  # NaN and inf too: a number of bytes
            raise ConfigError(f"--max_file_mb: must be a positive, finite number of MiB, got {self.max_file_mb:g}")


def parse_args(argv: list[str]) -> PublishArguments:
    from biohicl.cli.parser import parse_command

    args, _ = parse_command(
        PublishArguments,
        argv,
        prog="biohicl publish",
        description=__doc__,
        positionals={"source": {"nargs": "?", "help": "Run folder (model) or dataset folder (--dataset)."}},
    )
    return args


def _settings(args: PublishArguments) -> dict[str, Any]:
    """Manifest values, overridden by the options given on the command line (those not ``None``)."""
    values: dict[str, Any] = {}
    origin = {key: f"--{key}" for key, flag in asdict(args).items() if flag is not None}
    if args.manifest:
        manifest = ReleaseManifest.load(args.manifest)
        values = {
            "source": manifest.source,
            "repo_id": manifest.repo_id,
            "dataset": manifest.repo_type == "dataset",
            "private": manifest.private,
            "revision": manifest.revision,
            "eval_results": manifest.eval_results,
            "base_eval_results": manifest.base_eval_results,
            "license": manifest.license,
            "merge": manifest.merge,
            "commit_message": manifest.commit_message,
        }
        origin = {key: f"{args.manifest}: field {key!r}" for key in values} | origin
    values.update({key: flag for key, flag in asdict(args).items() if flag is not None})
    if not values.get("source"):
        raise ConfigError("publish: give a RUN_DIR (or dataset folder) or --manifest")
    if not values.get("repo_id"):
        raise ConfigError("publish: --repo_id is required (or a manifest with repo_id)")
    check_repo_id(values["repo_id"], origin["repo_id"])  # the dry run refuses what the upload would
    if values.get("dataset"):
        for key in MODEL_ONLY:
            if values.get(key):
                raise ConfigError(f"{origin[key]}: is for model releases; a dataset publish does not use it")
    elif values.get("merge"):
        _check_merge_target(values["repo_id"])
    elif values.get("base_model_path"):
        raise ConfigError(
            "--base_model_path: is read by --merge only (an adapter is published as it is, its base named by its "
            "Hub id)"
        )
    return values


def _check_merge_target(repo_id: str) -> None:
    """Refuse merged weights for a repo the registry lists as an adapter: the upload mirrors the folder, so it would
    replace the adapter and ``BioHiCL.from_pretrained(<name>)`` would no longer load."""
    from biohicl.models.registry import default_registry

    entry = default_registry().by_repo_id(repo_id)
    if entry is not None and entry.kind == "adapter":
        raise ConfigError(
            f"--merge: biohicl/registry.json lists {repo_id} ({entry.name}) as an adapter, which merged weights would "
            f"replace; publish them to another repo id, e.g. {repo_id}-merged"
        )


def _print_plan(folder: Path, settings: dict[str, Any], repo_type: str, max_bytes: int, api: Any) -> None:
    files = check_folder(
        folder, max_file_bytes=max_bytes, allow_large_files=settings["allow_large_files"], token=token_of(api)
    )
    repo_id = settings["repo_id"]
    where = f"{repo_id} ({repo_type}{', private' if settings.get('private') else ''}"
    where += f", branch {settings['revision']})" if settings.get("revision") else ")"
    staged = "" if settings.get("out") else " (a temporary folder, deleted when the command ends; --out DIR keeps it)"
    print(
        f"would upload {len(files)} files from {folder}{staged} to {where} in one commit, which deletes every other "
        "file of the repo (.gitattributes is kept):"
    )
    for file in files:
        print(f"  {file.size:>12,d}  {file.path}")
    deleted = files_deleted(  # once: one try, a short timeout, no retry lines (a real publish retries)
        api, repo_id, [f.path for f in files], repo_type=repo_type, revision=settings.get("revision"), once=True
    )
    print(f"files of {repo_id} the commit would delete:")
    print(deleted.words(repo_id, "would delete", token=bool(token_of(api))))
    card = folder / "README.md"
    if card.is_file():
        print(f"\n----- {card.name} -----")
        print(card.read_text(encoding="utf-8"))


def main(argv: list[str], api: Any | None = None) -> int:
    args = parse_args(argv)
    settings = _settings(args)
    repo_type = "dataset" if settings.get("dataset") else "model"
    max_bytes = int(settings["max_file_mb"] * 1024**2)
    source = Path(settings["source"])
    if api is None:  # a dry run lists the repo's files with it (read-only, no token needed for a public repo)
        from huggingface_hub import HfApi

        api = HfApi()
    if not args.dry_run:  # no token: refused before building anything (a dry run needs none)
        require_token(api)
    with tempfile.TemporaryDirectory(prefix="biohicl-publish-") as tmp:
        out = Path(settings["out"]) if settings.get("out") else Path(tmp) / settings["repo_id"].split("/")[-1]
        if repo_type == "dataset":
            if not (source / "documents").is_dir():
                raise PublishError(
                    f"{source}: not a MeSH-pair dataset (no documents/); build it with `biohicl build-dataset`"
                )
            folder = build_dataset_repo_folder(
                source,
                out,
                overwrite=bool(settings.get("overwrite")),
                license=settings.get("license"),
                repo_id=settings["repo_id"],
                revision=settings.get("revision"),
                temporary=not settings.get("out"),
            )
        else:
            folder = build_model_repo_folder(
                source,
                out,
                repo_id=settings["repo_id"],
                eval_results=settings.get("eval_results"),
                base_eval_results=settings.get("base_eval_results"),
                license=settings.get("license"),
                merge=bool(settings.get("merge")),
                overwrite=bool(settings.get("overwrite")),
                base_model_path=settings.get("base_model_path") or None,  # "" (an empty option) is no path
                revision=settings.get("revision"),
            )
        if args.dry_run:
            _print_plan(folder, settings, repo_type, max_bytes, api)
            return 0
        deleted: list[RemoteDeletions] = []  # the listing said before the upload, said again in the result line
        result = publish_folder(
            api,
            folder,
            settings["repo_id"],
            repo_type=repo_type,
            private=settings.get("private"),  # None: the owner's default, not public
            revision=settings.get("revision"),
            commit_message=settings.get("commit_message"),
            max_file_bytes=max_bytes,
            allow_large_files=bool(settings.get("allow_large_files")),
            listed=deleted.append,
        )
        if repo_type == "dataset":  # the model cards of runs trained on this folder link it (hub/card_data_source)
            record_dataset_publication(source, settings["repo_id"], settings.get("revision"))
    url = getattr(result, "commit_url", None) or f"https://huggingface.co/{settings['repo_id']}"
    said = (deleted[0] if deleted else RemoteDeletions(None)).words(settings["repo_id"], "deleted")
    print(f"published {settings['repo_id']} ({repo_type}): {url}; {said}")
    return 0

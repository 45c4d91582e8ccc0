"""``biohicl publish``: build a model repo folder from a run (or take a dataset folder) and upload it in one commit.

    biohicl publish runs/minilm --repo-id me/BioHiCL-MiniLM --dry-run
    biohicl publish runs/minilm --repo-id me/BioHiCL-MiniLM --private --revision v0.1
    biohicl publish data/mesh-pairs --dataset --repo-id me/mesh-pairs
    biohicl publish --manifest hub/models/biohicl-minilm.yaml

The token comes from ``HF_TOKEN`` or ``hf auth login``; it is never printed or written anywhere.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from biohicl.errors import ConfigError, PublishError
from biohicl.hub.publish import (
    DEFAULT_MAX_FILE_BYTES,
    ReleaseManifest,
    _token_of,
    build_model_repo_folder,
    check_folder,
    publish_folder,
)

HELP = "Upload a trained adapter (with its generated model card) or the MeSH-pair dataset to the Hugging Face Hub."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="biohicl publish", description=HELP)
    parser.add_argument("source", nargs="?", help="Run folder (model) or dataset folder (--dataset).")
    parser.add_argument("--repo-id", help="Hub repo id, owner/name.")
    parser.add_argument("--manifest", help="Release manifest (hub/models/*.yaml, hub/datasets/*.yaml); flags win.")
    parser.add_argument("--dataset", action="store_true", default=None, help="Upload a dataset folder as is.")
    parser.add_argument("--private", action="store_true", default=None, help="Create the repo private.")
    parser.add_argument("--revision", help="Branch to commit to (created if missing; default main).")
    parser.add_argument("--dry-run", action="store_true", help="Build and check, print the files and the card.")
    parser.add_argument("--out", help="Where to build the model repo folder (default: a temporary folder).")
    parser.add_argument("--overwrite", action="store_true", help="Replace a non-empty --out folder.")
    parser.add_argument("--eval-results", help="Evaluation JSON of the tuned model (default RUN/eval_results.json).")
    parser.add_argument("--base-eval-results", help="Evaluation JSON of the base model, for the card's table.")
    parser.add_argument("--license", help="License id for the card (e.g. apache-2.0).")
    parser.add_argument("--merge", action="store_true", default=None, help="Upload LoRA merged into full weights.")
    parser.add_argument("--commit-message", help="Commit message.")
    parser.add_argument("--allow-large-files", action="store_true", help="Allow files over the size limit.")
    parser.add_argument(
        "--max-file-mb", type=float, default=DEFAULT_MAX_FILE_BYTES / 1024**2, help="Per-file size limit in MiB."
    )
    return parser


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Manifest values, overridden by the flags given on the command line."""
    values: dict[str, Any] = {}
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
    for key in values.keys() | set(vars(args)):
        flag = getattr(args, key, None)
        if flag is not None:
            values[key] = flag
    if not values.get("source"):
        raise ConfigError("publish: give a RUN_DIR (or dataset folder) or --manifest")
    if not values.get("repo_id"):
        raise ConfigError("publish: --repo-id is required (or a manifest with repo_id)")
    return values


def _print_plan(folder: Path, settings: dict[str, Any], repo_type: str, max_bytes: int) -> None:
    files = check_folder(
        folder, max_file_bytes=max_bytes, allow_large_files=settings["allow_large_files"], token=_token_of(None)
    )
    where = f"{settings['repo_id']} ({repo_type}{', private' if settings.get('private') else ''}"
    where += f", branch {settings['revision']})" if settings.get("revision") else ")"
    print(f"would upload {len(files)} files from {folder} to {where} in one commit:")
    for file in files:
        print(f"  {file.size:>12,d}  {file.path}")
    card = folder / "README.md"
    if card.is_file():
        print(f"\n----- {card.name} -----")
        print(card.read_text(encoding="utf-8"))


def main(argv: list[str], api: Any | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = _settings(args)
    repo_type = "dataset" if settings.get("dataset") else "model"
    max_bytes = int(settings["max_file_mb"] * 1024**2)
    source = Path(settings["source"])
    with tempfile.TemporaryDirectory(prefix="biohicl-publish-") as tmp:
        if repo_type == "dataset":
            folder = source
            if not (folder / "README.md").is_file():
                raise PublishError(f"{folder}: no README.md (dataset card); build it with `biohicl build-dataset`")
        else:
            out = Path(settings["out"]) if settings.get("out") else Path(tmp) / settings["repo_id"].split("/")[-1]
            folder = build_model_repo_folder(
                source,
                out,
                repo_id=settings["repo_id"],
                eval_results=settings.get("eval_results"),
                base_eval_results=settings.get("base_eval_results"),
                license=settings.get("license"),
                merge=bool(settings.get("merge")),
                overwrite=bool(settings.get("overwrite")),
            )
        if args.dry_run:
            _print_plan(folder, settings, repo_type, max_bytes)
            return 0
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi()
        result = publish_folder(
            api,
            folder,
            settings["repo_id"],
            repo_type=repo_type,
            private=bool(settings.get("private")),
            revision=settings.get("revision"),
            commit_message=settings.get("commit_message"),
            max_file_bytes=max_bytes,
            allow_large_files=bool(settings.get("allow_large_files")),
        )
    url = getattr(result, "commit_url", None) or f"https://huggingface.co/{settings['repo_id']}"
    print(f"published {settings['repo_id']} ({repo_type}): {url}")
    return 0

"""The one publishing seam: build a Hub repo folder from a run, check it, and upload it in one commit.

Every function that talks to the Hub takes an ``HfApi``-like object (``create_repo``, ``repo_info``,
``create_branch``, ``upload_folder``, and ``list_repo_files`` where it has it), so tests pass a recording fake; only
``cli.publish`` constructs one.

>>> folder = build_model_repo_folder("runs/minilm", "build/BioHiCL-MiniLM", repo_id="me/BioHiCL-MiniLM")
>>> publish_folder(HfApi(), folder, "me/BioHiCL-MiniLM", private=True)

Safety checks (:mod:`~biohicl.hub.folder_checks`) run before anything is sent: no file may resolve outside the
folder (symlinks), exceed the size limit (unless allowed), or contain a Hugging Face token. The token itself is never
written or printed.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from biohicl.atomic import atomic_directory, holds_working_folder, recover_swapped_folder
from biohicl.errors import BioHiCLError, ConfigError, PublishError
from biohicl.evaluation.comparison import cut_by_cap
from biohicl.hub.card_data_source import branch_or_none
from biohicl.hub.folder_checks import DEFAULT_MAX_FILE_BYTES, check_folder
from biohicl.hub.hub_access import (
    RemoteDeletions,
    UploadInterrupted,
    failure_message,
    files_deleted,
    interrupted_message,
    require_token,
    token_of,
)
from biohicl.hub.record_match import check_base_record, check_tuned_record, measured_line
from biohicl.hub.run_sources import (
    check_eval_record,
    copy_without_machine_paths,
    curve_files,
    drop_recorded_peft_weights,
    find_model_dir,
    inside,
    model_files,
    run_records,
)
from biohicl.jsonio import read_json
from biohicl.models.registry import is_repo_id

logger = logging.getLogger(__name__)

REPO_TYPES = ("model", "dataset")
#: every remote file not re-uploaded is deleted in the same commit, so the repo mirrors the folder (a release never
#: keeps the previous one's files, e.g. adapter files beside merged weights); huggingface_hub keeps ``.gitattributes``
MIRROR_DELETE_PATTERNS = ("*",)

#: kinds whose folder holds the whole weights: the repo gets sentence-transformers' module files (the card loads it so)
FULL_WEIGHT_KINDS = ("full", "merged")


class HubApi(Protocol):
    """The part of ``huggingface_hub.HfApi`` that publishing uses (``list_repo_files`` too, where an object has it:
    :func:`~biohicl.hub.hub_access.files_deleted`)."""

    def create_repo(self, repo_id: str, **kwargs: Any) -> Any: ...
    def repo_info(self, repo_id: str, **kwargs: Any) -> Any: ...
    def create_branch(self, repo_id: str, **kwargs: Any) -> Any: ...
    def upload_folder(self, **kwargs: Any) -> Any: ...


# ---------------------------------------------------------------------- building a model repo


def _eval_records(
    run_dir: Path,
    eval_results: str | Path | None,
    base_eval_results: str | Path | None,
    config: dict[str, Any],
    config_path: Path,
) -> dict[str, Path]:
    """Repo file name → evaluation record to copy: the files named, else the run's own, which must lie in it; each a
    biohicl evaluation record (:func:`~biohicl.hub.run_sources.check_eval_record`) of whole tasks
    (:func:`_refuse_partial`), the tuned one of the model published as saved (``config``, its
    ``biohicl_config.json`` at ``config_path``) and the base one of its base (:mod:`~biohicl.hub.record_match`)."""
    # `biohicl reproduce` writes a run's record as eval.json; `biohicl evaluate` writes results/<name>.json (named
    # with --eval_results). The study's base record is not looked up: which base a run compares with is the user's call
    tuned_file = Path(eval_results) if eval_results else run_dir / "eval_results.json"
    if not eval_results and not tuned_file.is_file() and (run_dir / "eval.json").is_file():
        tuned_file = run_dir / "eval.json"
    base_file = Path(base_eval_results) if base_eval_results else run_dir / "base_eval_results.json"
    records = {}
    for explicit, src, name in (
        (eval_results, tuned_file, "eval_results.json"),
        (base_eval_results, base_file, "base_eval_results.json"),
    ):
        if src.is_file():
            records[name] = check_eval_record(src if explicit else inside(src, run_dir))
        elif explicit:
            raise PublishError(f"{src}: evaluation results file not found")
    read = {name: read_json(path, error=PublishError) for name, path in records.items()}
    if "eval_results.json" in read:
        check_tuned_record(records["eval_results.json"], read["eval_results.json"], config, config_path)
    if "base_eval_results.json" in read:
        check_base_record(records["base_eval_results.json"], read["base_eval_results.json"], config, config_path)
    for name, path in records.items():
        _refuse_partial(path, read[name], [other for key, other in read.items() if key != name])
    return records


def _refuse_partial(path: Path, record: dict[str, Any], others: list[dict[str, Any]]) -> None:
    """A :class:`PublishError` naming ``path`` when its ``settings.limit_queries`` cut a task
    (:func:`~biohicl.evaluation.comparison.cut_by_cap`, the other record the witness of the task's size): its numbers
    are not the task's, yet a card would file them as its test result. A task scored on as many queries as the cap
    with no record showing that is all of it is refused too, saying so."""
    for task in record.get("tasks") or {}:
        if (cut := cut_by_cap(task, record, others)) is None:
            continue
        if cut.full is not None:
            raise PublishError(
                f"{path}: evaluated with limit_queries {cut.cap}, so {task} scored only its first {cut.scored} "
                "queries, not the whole task; rerun `biohicl evaluate` without --limit_queries to publish it"
            )
        items = "queries" if cut.scored == cut.cap else "items"
        raise PublishError(
            f"{path}: evaluated with limit_queries {cut.cap}, so {task} scored {cut.scored} {items}, and no record "
            "given shows that is the whole task (none scored it without the cap); rerun `biohicl evaluate` without "
            "--limit_queries to show it scored the whole task"
        )


def build_model_repo_folder(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    repo_id: str | None = None,
    eval_results: str | Path | None = None,
    base_eval_results: str | Path | None = None,
    card_data: Any | None = None,
    license: str | None = None,
    merge: bool = False,
    overwrite: bool = False,
    base_model_path: str | Path | None = None,
    revision: str | None = None,
) -> Path:
    """Lay out what a model repo holds: weights (adapter or merged), tokenizer, ``biohicl_config.json``,
    ``README.md`` (the card), ``eval_results.json`` (+ ``base_eval_results.json``), the run's
    ``biohicl_training_args.json`` and ``training_summary.json`` (their local paths reduced to their names,
    :func:`~biohicl.hub.run_sources.run_records`) and its ``*.png`` curves.

    Inputs found in ``run_dir`` by default: the model (:func:`find_model_dir`; a checkpoint is refused); the card
    data (``card_data.json``, else ``biohicl_training_args.json`` + ``training_summary.json``, see
    :meth:`~biohicl.hub.model_card.BioHiCLModelCardData.from_run_dir`); ``eval_results.json`` and
    ``base_eval_results.json`` (the run's ``eval.json``, as ``biohicl reproduce`` writes it, when it has no
    ``eval_results.json``; a warning when there is neither; each of this model as saved, or of its base:
    :mod:`~biohicl.hub.record_match`); ``*.png`` and ``plots/*.png`` (shown in the card). ``merge=True`` exports
    LoRA merged into the weights. The card's license: ``license`` as given, else a registered repo id's registry
    license, else the card data's (``other`` for a run, with one warning asking for ``--license``;
    :func:`~biohicl.hub.card_data_source.card_license`). ``base_model_path``: where ``merge`` reads the adapter's
    base from (default: its Hub id, from the Hugging Face cache), checked to be the base it was trained on as
    :meth:`BioHiCL.from_pretrained <biohicl.models.model.BioHiCL.from_pretrained>` checks it. ``revision``: the
    branch the folder is pushed to, which the card's usage snippets load when it is not the default (``main``).
    An ``out_dir`` that is (or holds) the run or model folder, or the working folder (:func:`check_out_folder`), is a
    :class:`PublishError`, before anything is deleted;
    the folder is built beside ``out_dir`` and renamed into place at the end (:func:`~biohicl.atomic.atomic_directory`),
    so a failed build leaves an existing ``out_dir`` as it was.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir)
    model_dir = find_model_dir(run_dir)
    saved = read_json(model_dir / "biohicl_config.json", error=PublishError)
    if not isinstance(saved, dict):
        raise PublishError(f"{model_dir / 'biohicl_config.json'}: expected a JSON object, got {type(saved).__name__}")
    if not is_repo_id(str(saved.get("base_model", ""))):  # e.g. an adapter trained on a local merged model
        raise PublishError(
            f"{model_dir}: its base is the local folder {Path(str(saved.get('base_model'))).name!r}, which no one who "
            "downloads it can resolve and the card cannot name; publish that base first and train on its repo id, "
            "or retrain with --base_model_hub_id ORG/NAME (the Hub id of that local copy)"
        )
    target = out_dir.resolve()
    check_out_folder(out_dir)
    for kept in (run_dir, model_dir):
        if target == kept.resolve() or target in kept.resolve().parents:
            raise PublishError(f"{out_dir}: is or holds {kept}; building there would delete it (choose another --out)")
    # every source is picked and checked before --out is touched: a symlink out of the run is refused, not staged
    sources = model_files(model_dir)
    records = _eval_records(run_dir, eval_results, base_eval_results, saved, model_dir / "biohicl_config.json")
    records |= run_records(run_dir)  # its arguments and summary: what retrains it, paths reduced as the records'
    curves = curve_files(run_dir)
    if out_dir.is_symlink():  # a linked --out is written into the link's target, the link kept
        out_dir = out_dir.resolve()
    recover_swapped_folder(out_dir)  # a previous --out a kill left aside counts as there
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise PublishError(f"{out_dir}: exists and is not empty (pass overwrite=True / --overwrite)")
    merged = None
    if merge:  # loaded first: a base that is not the adapter's is refused before anything is written
        from biohicl.models.model import BioHiCL

        merged = BioHiCL.from_pretrained(model_dir, base_model_path=base_model_path or None)
    with building_into(out_dir) as staging:
        _build(staging, run_dir, model_dir, sources, records, curves, merged, repo_id, card_data, license, revision)
    return out_dir


@contextlib.contextmanager
def building_into(out_dir: Path) -> Iterator[Path]:
    """The folder a repo folder is built in, beside ``out_dir``, which it replaces only once the block succeeded
    (:func:`~biohicl.atomic.atomic_directory`, given ``out_dir``'s absolute path: the folder the opening checks read,
    links and ``..`` followed; ``x/..`` has no name); an error of the block names ``out_dir``, not that folder."""
    with atomic_directory(out_dir.resolve()) as staging:
        try:
            yield staging
        except BioHiCLError as err:
            err.args = (str(err).replace(str(staging), str(out_dir)),)
            raise


def check_out_folder(out_dir: str | Path) -> None:
    """Refuse an ``out_dir`` that is the working folder or holds it (``.``, ``..``): the build replaces ``out_dir``
    with the folder it built beside it, which would leave the shell (and this process) in a deleted folder."""
    if holds_working_folder(out_dir):
        raise PublishError(
            f"{out_dir}: is or holds the current folder; building there would replace it and leave the shell in a "
            "deleted folder (choose another --out, e.g. a new folder inside it)"
        )


def _build(
    out_dir: Path,
    run_dir: Path,
    model_dir: Path,
    sources: list[Path],
    records: dict[str, Path],
    curves: list[Path],
    merged: Any | None,
    repo_id: str | None,
    card_data: Any | None,
    license: str | None,
    revision: str | None = None,
) -> None:
    """Write the repo folder of :func:`build_model_repo_folder` into the empty folder ``out_dir``: the ``merged``
    model's export (a loaded ``BioHiCL``), else the model folder's files."""
    from biohicl.hub.card_data_source import card_license
    from biohicl.hub.model_card import BioHiCLModelCardData, save_model_card

    merge = merged is not None
    if merge:
        merged.save_merged(out_dir)
    else:
        for src in sources:
            dest = out_dir / src.relative_to(model_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    config = read_json(out_dir / "biohicl_config.json", error=PublishError)
    if not merge and drop_recorded_peft_weights(config, model_dir / "biohicl_config.json"):
        (out_dir / "biohicl_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if not merge and config.get("kind") in FULL_WEIGHT_KINDS:
        # a full fine-tune saved before BioHiCL.save_pretrained wrote sentence-transformers files has none, yet its
        # card loads it with SentenceTransformer
        from biohicl.models.config import BioHiCLConfig
        from biohicl.models.export import write_sentence_transformers_files

        write_sentence_transformers_files(
            out_dir, BioHiCLConfig.from_dict(config, source=str(model_dir / "biohicl_config.json"))
        )
    for name, src in records.items():
        copy_without_machine_paths(src, out_dir / name)
    for png in curves:
        shutil.copyfile(png, out_dir / png.name)
    card_curves = sorted({png.name for png in curves})

    if card_data is None:
        name = (repo_id or run_dir.resolve().name).split("/")[-1]
        card_data = BioHiCLModelCardData.from_run_dir(run_dir, name, model_dir=model_dir)
    card_data.kind = config.get("kind") or card_data.kind
    if repo_id:
        card_data.repo_id = repo_id
    card_data.revision = revision or card_data.revision
    card_data.license = card_license(license, repo_id, card_data.license)
    card_data.curves = card_data.curves or card_curves
    if not card_data.eval_results and (out_dir / "eval_results.json").is_file():
        base_copy = out_dir / "base_eval_results.json"
        base = read_json(base_copy, error=PublishError) if base_copy.is_file() else None
        tuned = read_json(out_dir / "eval_results.json", error=PublishError)
        card_data.add_eval_results(tuned, base=base)
        if "max length" not in (card_data.eval_source or "") and (line := measured_line(tuned, "eval_results.json")):
            card_data.eval_source = f"{card_data.eval_source}\n{line}" if card_data.eval_source else line
    if not (out_dir / "eval_results.json").is_file():
        logger.warning(
            "%s: no evaluation record (eval_results.json or eval.json), so the card has no results; "
            "pass --eval_results FILE (e.g. the results/<name>.json of `biohicl evaluate`)",
            run_dir,
        )
    save_model_card(card_data, out_dir)
    check_folder(out_dir, allow_large_files=True)  # token and symlink checks now; size is checked at upload


# ---------------------------------------------------------------------- publishing


def check_repo_id(repo_id: str, where: str = "repo_id") -> None:
    """Refuse what the Hub would refuse as a repo id (``where`` names the option or field that gave it)."""
    if not is_repo_id(repo_id):
        raise ConfigError(f"{where}: {repo_id!r} is not an owner/name Hub repo id (e.g. me/BioHiCL-MiniLM)")


def publish_folder(
    api: HubApi,
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    allow_large_files: bool = False,
    listed: Callable[[RemoteDeletions], Any] | None = None,
) -> Any:
    """Check ``folder`` and upload it to ``repo_id`` in one commit (``create_repo(exist_ok=True)`` first).

    The commit mirrors the folder: remote files the folder lacks are deleted (``.gitattributes`` is kept), as one
    info line says before the upload (:func:`~biohicl.hub.hub_access.files_deleted`, by ``list_repo_files`` where the
    API has it); ``listed`` is called with that listing (``biohicl publish``'s result line says what was deleted).
    ``private``: a new repo's visibility (None: the owner's default, public unless an organization makes new repos
    private; an existing repo's is left as it is). ``private=True`` on an existing public repo is a
    :class:`PublishError` before anything is uploaded.
    ``revision`` names a branch (created from ``main`` if missing). Returns what ``upload_folder`` returns.
    ``huggingface_hub.HfApi`` with no token is refused before any call. A Hub that cannot be reached, or refuses,
    is a one-line :class:`PublishError` that says whether a commit can have been made; Ctrl-C, a
    :class:`~biohicl.hub.hub_access.UploadInterrupted` (a ``KeyboardInterrupt``) whose ``outcome`` says the same.
    """
    check_repo_id(repo_id)
    if repo_type not in REPO_TYPES:
        raise ConfigError(f"repo_type: {repo_type!r} is not one of {', '.join(REPO_TYPES)}")
    require_token(api)
    folder = Path(folder)
    token = token_of(api)
    files = check_folder(folder, max_file_bytes=max_file_bytes, allow_large_files=allow_large_files, token=token)
    if repo_type == "model" and not (folder / "README.md").is_file():
        raise PublishError(f"{folder}: no README.md (model card); build the folder with build_model_repo_folder")
    message = commit_message or f"Upload {repo_id} with biohicl"
    import httpx2  # huggingface_hub's HTTP client (a dependency of it), imported where used as huggingface_hub is

    uploading = False  # nothing reaches the repo's files before upload_folder (create_repo makes an empty repo)
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        # exist_ok leaves an existing repo as it is: a public one would receive a release meant to be private
        if private and not getattr(api.repo_info(repo_id, repo_type=repo_type), "private", False):
            raise PublishError(
                f"{repo_id}: the repo exists and is public; nothing uploaded (make it private on the Hub, or publish "
                "without --private)"
            )
        if branch_or_none(revision):
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        # the repo exists now (the Hub answers): what the mirroring commit deletes is said before it is made
        deleted = files_deleted(api, repo_id, [f.path for f in files], repo_type=repo_type, revision=revision)
        logger.info("%s", deleted.words(repo_id, "deletes"))
        if listed is not None:
            listed(deleted)
        uploading = True
        result = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type=repo_type,
            revision=revision,
            commit_message=message,
            allow_patterns=[glob.escape(f.path) for f in files],
            delete_patterns=list(MIRROR_DELETE_PATTERNS),
        )
    except (httpx2.TransportError, ConnectionError, TimeoutError) as err:  # no answer (OfflineModeIsEnabled too)
        # httpx2's other errors (an invalid URL, a bad request built by the caller) are bugs and stay tracebacks
        raise PublishError(
            failure_message(err, repo_id, repo_type, revision, answered=False, uploading=uploading, token=token)
        ) from None
    except OSError as err:  # HfHubHTTPError (an error answer: 401, 403, 404, 5xx ...), or another OSError
        raise PublishError(
            failure_message(err, repo_id, repo_type, revision, answered=True, uploading=uploading, token=token)
        ) from None
    except KeyboardInterrupt:  # still an interrupt (exit 130), saying what is true of the repo
        raise UploadInterrupted(interrupted_message(repo_id, repo_type, revision, uploading=uploading)) from None
    logger.info("uploaded %d files to %s (%s)", len(files), repo_id, repo_type)
    return result

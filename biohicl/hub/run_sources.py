"""What a model repo folder is staged from: a run's saved model (an allowlist of its files), its evaluation records,
its training records (its arguments and summary, from which it is retrained) and its curves, each refused when its
real path lies outside the run (a symlink to a file elsewhere would be copied and uploaded: the repo folder's own
checks only see the copy); the records' local paths are reduced to their names (:func:`without_machine_paths`)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path, PureWindowsPath
from typing import Any

from biohicl.errors import PublishError
from biohicl.evaluation.results import RESULTS_FORMAT
from biohicl.hub.card_adapter import sentence_transformers_loads
from biohicl.hub.folder_checks import check_readable
from biohicl.jsonio import read_json
from biohicl.models.export import peft_method_name
from biohicl.training.run_settings import PATH_ARGS

logger = logging.getLogger(__name__)

#: sentence-transformers' module files (``biohicl.models.export.write_sentence_transformers_files``)
SENTENCE_TRANSFORMERS_FILES = (
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/*",
    "2_Normalize/*",
)
#: files copied from a model folder into the repo folder (an allowlist: no optimizer state, no pickles, no run logs)
MODEL_FILE_PATTERNS = (
    "biohicl_config.json",
    "adapter_config.json",
    "adapter_model.safetensors",
    "config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    *SENTENCE_TRANSFORMERS_FILES,
)
MODEL_SUBDIRS = ("final", "best", "model")
#: a transformers checkpoint folder (``checkpoint-150``) and what marks a run's folder as finished or a checkpoint
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
SUMMARY_FILE = "training_summary.json"
TRAINER_STATE = "trainer_state.json"
TRAINING_ARGS_FILE = "biohicl_training_args.json"
#: the run's training records a model repo holds, so it can be retrained (``biohicl train --config``) and its data and
#: code checked: every training argument, and what the run recorded (its dataset's sha256, the code's digest ...)
RUN_RECORD_FILES = (TRAINING_ARGS_FILE, SUMMARY_FILE)


def find_model_dir(run_dir: str | Path) -> Path:
    """The saved model inside a run: the run folder itself, else ``final/``, ``best/`` or ``model/``; a training
    checkpoint is refused (:func:`refuse_checkpoint`), and a run with checkpoints only is said unfinished
    (:func:`unfinished_run`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PublishError(f"{run_dir}: no such run folder")
    for candidate in (run_dir, *(run_dir / sub for sub in MODEL_SUBDIRS)):
        if (candidate / "biohicl_config.json").is_file():
            refuse_checkpoint(candidate, run_dir)
            return candidate
    if (unfinished := unfinished_run(run_dir)) is not None:
        raise PublishError(unfinished)
    raise PublishError(
        f"{run_dir}: no saved model (biohicl_config.json) in it or in {', '.join(s + '/' for s in MODEL_SUBDIRS)}"
    )


def unfinished_run(run_dir: Path) -> str | None:
    """What to say of a run folder ``biohicl train`` left without its model (killed, or still training): its last
    checkpoint (the newest ``checkpoint-N`` with ``trainer_state.json``, what ``--resume_from_checkpoint last``
    resumes from) and how to resume it; None for a folder with no such checkpoint. A checkpoint is not published
    (:func:`refuse_checkpoint`), so the run is finished first."""
    steps = [
        (int(named.group(1)), child)
        for child in run_dir.iterdir()
        if (named := CHECKPOINT_NAME.fullmatch(child.name)) and (child / TRAINER_STATE).is_file()
    ]
    if not steps:
        return None
    step, last = max(steps)
    args = last / TRAINING_ARGS_FILE
    how = (
        f"`biohicl train --config {args} --output_dir {run_dir} --resume_from_checkpoint last`"
        if args.is_file()
        else "its `biohicl train` command and --resume_from_checkpoint last"
    )
    return (
        f"{run_dir}: the run did not finish (no saved model; its last checkpoint is {last.name}, step {step}): resume "
        f"it with {how}, then publish {run_dir}"
    )


def refuse_checkpoint(model_dir: Path, run_dir: Path) -> None:
    """A :class:`PublishError` when ``model_dir`` is a training checkpoint: a ``checkpoint-N`` folder, or one with
    ``trainer_state.json`` and no ``training_summary.json`` (in it or the run folder). Its card would describe the
    whole run (its ``max_steps``, data and selection) and call it the run's model; the run folder is published."""
    named = CHECKPOINT_NAME.fullmatch(model_dir.name)
    summary = (model_dir / SUMMARY_FILE).is_file() or (run_dir / SUMMARY_FILE).is_file()
    if not named and (summary or not (model_dir / TRAINER_STATE).is_file()):
        return
    parent = model_dir.parent
    finished = (parent / SUMMARY_FILE).is_file() and (parent / "biohicl_config.json").is_file()
    where = f"the run folder {parent}" if finished else f"the finished run's folder (with {SUMMARY_FILE})"
    raise PublishError(
        f"{model_dir}: a training checkpoint{f' (step {named.group(1)})' if named else ''}, not a finished run: its "
        f"card would describe the whole run; publish {where}, which holds the step `biohicl train` kept "
        "(--load_best_model_at_end keeps the selected one)"
    )


def inside(path: Path, folder: Path) -> Path:
    """``path``, refused (:class:`PublishError`) when its real path (symlinks followed) lies outside ``folder``."""
    target = path.resolve()
    if not target.is_relative_to(folder.resolve()):
        raise PublishError(f"{path}: resolves outside {folder} ({target}); refusing to stage it")
    return path


def model_files(model_dir: Path) -> list[Path]:
    """The allowlisted files of ``model_dir``, each checked to lie in it (:func:`inside`); sentence-transformers'
    module files left out of an adapter whose method it does not load as trained (a DoRA folder saved before
    ``save_pretrained`` stopped writing them has them), with one line saying so. A damaged ``*.json`` or
    ``*.safetensors`` file (:func:`~biohicl.hub.folder_checks.check_readable`: a truncated copy) is refused here,
    before anything is staged or merged: a publish mirrors the folder, replacing the release's good files."""
    picked: set[Path] = set()
    for pattern in MODEL_FILE_PATTERNS:
        picked.update(p for p in model_dir.glob(pattern) if p.is_file())
    method = _unloadable_adapter_method(model_dir)
    if method is not None:
        module_files = {p for pattern in SENTENCE_TRANSFORMERS_FILES for p in model_dir.glob(pattern)} & picked
        if module_files:
            logger.info(
                "%s: a %s adapter, which sentence-transformers does not load as trained: its sentence-transformers "
                "module files (%s) are not staged (an earlier biohicl wrote them); its sentence-transformers route is "
                "--merge",
                model_dir,
                method,
                ", ".join(sorted(p.relative_to(model_dir).as_posix() for p in module_files)),
            )
            picked -= module_files
    files = [inside(path, model_dir) for path in sorted(picked)]
    for path in files:
        check_readable(path)
    return files


def _unloadable_adapter_method(model_dir: Path) -> str | None:
    """The peft method (``DORA`` ...) of the adapter in ``model_dir`` when sentence-transformers does not load it as
    trained (:func:`~biohicl.hub.card_adapter.sentence_transformers_loads`); None for another folder."""
    config = read_json(model_dir / "biohicl_config.json", error=PublishError)
    adapter_file = model_dir / "adapter_config.json"
    kind = config.get("kind") if isinstance(config, dict) else None
    if kind != "adapter" or not adapter_file.is_file():
        return None
    adapter = read_json(inside(adapter_file, model_dir), error=PublishError)
    if not isinstance(adapter, dict):
        return None
    use_dora = {"use_dora": bool(adapter.get("use_dora"))}
    if sentence_transformers_loads(kind, adapter.get("peft_type"), use_dora):
        return None
    return peft_method_name(adapter.get("peft_type"), use_dora["use_dora"])


def drop_recorded_peft_weights(config: dict[str, Any], source: Path) -> bool:
    """Drop from a staged ``biohicl_config.json``'s ``base_signature.weights`` the adapter's own peft weights an
    adapter saved before base signatures left them out recorded (the others still identify the base); True when it
    dropped any, with one line saying so."""
    from biohicl.models.signature import recorded_peft_weights

    signature = config.get("base_signature")
    if not isinstance(signature, dict) or not isinstance(signature.get("weights"), dict):
        return False
    stale = recorded_peft_weights(signature)
    if not stale:
        return False
    signature["weights"] = {name: v for name, v in signature["weights"].items() if name not in stale}
    logger.info(
        "%s: saved before biohicl left peft weights out of base signatures: the adapter's own %s dropped from the "
        "staged base_signature (the other recorded weights identify the base)",
        source,
        ", ".join(stale),
    )
    return True


def run_records(run_dir: Path) -> dict[str, Path]:
    """Repo file name → the run's training record (:data:`RUN_RECORD_FILES`) it has, each checked to lie in the run
    (copied with :func:`copy_without_machine_paths`, as the evaluation records are)."""
    return {name: inside(run_dir / name, run_dir) for name in RUN_RECORD_FILES if (run_dir / name).is_file()}


def curve_files(run_dir: Path) -> list[Path]:
    """The run's ``*.png`` and ``plots/*.png``, each checked to lie in the run folder."""
    return [inside(png, run_dir) for png in sorted([*run_dir.glob("*.png"), *run_dir.glob("plots/*.png")])]


def check_eval_record(path: Path) -> Path:
    """``path``, refused (:class:`PublishError`) unless it is a biohicl evaluation record as
    :func:`biohicl.evaluation.runner.evaluate_model` writes it (``biohicl evaluate``, a study's ``eval.json``):
    ``format`` the results format, ``tasks`` and ``model`` mappings. Any other JSON (a docker config ...) would be
    uploaded as the repo's ``eval_results.json``."""

    record = read_json(path, error=PublishError)
    fields = record if isinstance(record, dict) else {}
    if fields.get("format") != RESULTS_FORMAT:
        wrong = f"`format` is {fields['format']!r}, not {RESULTS_FORMAT}" if "format" in fields else "no `format`"
    else:
        wrong = next((f"no `{key}` mapping" for key in ("tasks", "model") if not isinstance(fields.get(key), dict)), "")
    if wrong:
        raise PublishError(
            f"{path}: not a biohicl evaluation record ({wrong}; pass the JSON `biohicl evaluate` writes); "
            "refusing to publish it"
        )
    return path


#: a local path in a word: the word, or a part of it after ``,`` ``@`` ``=`` ``#`` ``:`` (a task list, a dataset task
#: ``name@DIR#mesh=FILE``, ``--key=PATH``, ``name:/DIR``), starting at the file system's root, ``~``, a share
#: (``\\\\``) or with a climb (``../``, ``a/../b``), or a drive (``C:\\``, ``C:/``) that starts the word or follows
#: ``=`` ``,`` ``@`` (or ``:`` ``#`` with a backslash, ``x:C:\\dir``), up to the next space, ``,`` or ``#``
#: (``PATH:split`` keeps its split: :func:`_name_of`). A URL (``http://h/p?next=/y``, ``https://h/app/#/route``) is
#: never searched: :data:`_URL` to the end of its word (:func:`without_machine_paths`).
_MACHINE_PATH = re.compile(
    r"(?:(?:^|(?<=[\s,@=]))[A-Za-z]:[\\/]|(?<=[:#])[A-Za-z]:\\"
    r"|(?:^|(?<=[\s,@=#:]))(?:~|/|\\\\|[^\s,#@=:]*?\.\.[\\/]))[^\s,#]*"
)
#: where a URL starts in a word: a scheme and ``://``
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")  # two letters at least: C://x is a drive


def without_machine_paths(value: Any) -> Any:
    """``value`` (JSON) with each local path in the words of its strings (an absolute path, ``~/...``, a drive, a
    share or one that climbs with ``..``; the whole word, or a part of it after ``,`` ``@`` ``=`` ``#`` or ``:``)
    reduced to its file or folder name: ``biohicl evaluate /srv/me/runs/x`` → ``... x``, ``--tasks biosses,/data/beir,
    siml-agreement@/data/pairs#mesh=/data/t.txt:dev`` → ``--tasks biosses,beir,siml-agreement@pairs#mesh=t.txt:dev``.
    A URL is left as it is, from its scheme to the end of its word (``https://h/p?next=/y``), what comes before it in
    the word reduced; a ``file://`` URL is a local path, reduced to ``file://NAME``."""
    if isinstance(value, dict):
        return {
            key: path_name(item) if key in PATH_FIELDS else without_machine_paths(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [without_machine_paths(item) for item in value]
    if not isinstance(value, str):
        return value
    words = re.split(r"(\s+)", value)  # the words and the spaces between them, in order
    return "".join(_reduced_word(word) for word in words)


#: the fields (of the training arguments, and of the records that name a run's files) whose value is one file or
#: folder, which may hold spaces: :func:`path_name` reduces it as a whole, not word by word
PATH_FIELDS = PATH_ARGS | {"output_dir", "logging_dir", "eval_cache_dir", "base_model", "best_checkpoint"}


def path_name(value: Any) -> Any:
    """A file or folder field's ``value`` (:data:`PATH_FIELDS`) without its machine path: a local path as a whole
    (absolute, ``~/...``, a drive, a share, or one that climbs with ``..``) reduced to its last name, spaces and all
    (``/home/Jane Doe/data/pairs v2`` → ``pairs v2``, ``C:\\Users\\Jane Doe\\x`` → ``x``); other text (a relative
    path, a Hub id) and any other value as :func:`without_machine_paths` leaves it."""
    if isinstance(value, str):
        whole = PureWindowsPath(value)  # either separator: a posix path's names are the same
        rooted = value.startswith(("/", "~", "\\\\")) or bool(whole.drive) or ".." in whole.parts
        if rooted and whole.name not in ("", ".."):
            return whole.name
    return without_machine_paths(value)


def path_names(args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with the value of each file or folder field (:data:`PATH_FIELDS`) reduced by :func:`path_name`, the
    others as they are."""
    return {key: path_name(value) if key in PATH_FIELDS else value for key, value in args.items()}


def _reduced_word(word: str) -> str:
    """One space-free word with its local paths reduced, a URL in it (from its scheme to the word's end) kept."""
    url = _URL.search(word)
    if url is None:
        return _MACHINE_PATH.sub(_name_of, word)
    head, rest = word[: url.start()], word[url.start() :]
    if rest[: len("file://")].lower() == "file://":  # a local path written as a URL
        return _reduced_word(head) + rest[: len("file://")] + _reduced_word("/" + rest[len("file://") :].lstrip("/"))
    return _reduced_word(head) + rest


def _name_of(path: re.Match[str]) -> str:
    """The name a matched local path is reduced to: its last non-empty component (``/data/beir/`` → ``beir``), with
    a ``:split`` after it kept (``/data/beir/:test`` → ``beir:test``); the path itself when it names none (``/``)."""
    text = path.group()
    head, colon, split = text.rpartition(":")
    if not (colon and split and not re.search(r"[\\/]", split) and re.search(r"[\\/]", head)):
        head, colon, split = text, "", ""  # no :split (C:\\x's colon is the drive's)
    parts = [part for part in re.split(r"[\\/]", head) if part]
    return parts[-1] + colon + split if parts else text


#: the training arguments the uploaded ``biohicl_training_args.json`` sets to null: the checkpoint a resumed run
#: started from (``checkpoint-2`` once reduced, which ``biohicl train --config`` would refuse as no checkpoint) and
#: the free-text names the trainer wrote (``run_name``, ``hub_model_id``: words of the machine or its user) and the log
#: folder (transformers 4's default ``runs/<date>_<hostname>`` names the training machine); none changes what trains
#: (:data:`~biohicl.training.run_settings.RUN_NEUTRAL_ARGS`)
UPLOAD_CLEARED = ("resume_from_checkpoint", "run_name", "hub_model_id", "logging_dir")


def copy_without_machine_paths(src: Path, dest: Path) -> None:
    """Copy an evaluation or training record for upload without the local paths it holds (``settings.command``
    records the raw command line), the training arguments (``dest`` named :data:`TRAINING_ARGS_FILE`) with
    :data:`UPLOAD_CLEARED` set to null; the local record is left as it is."""
    record = without_machine_paths(read_json(src, error=PublishError))
    if dest.name == TRAINING_ARGS_FILE and isinstance(record, dict):
        record |= {key: None for key in UPLOAD_CLEARED if key in record}
    dest.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

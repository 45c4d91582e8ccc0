"""What a study needs before it starts, checked without training or encoding (``biohicl reproduce --dry_run``): the
dataset (built, or the data to build it), each base model offline, and each evaluation task's data. On a lent GPU
a missing piece found here costs seconds of this machine, not minutes of that one. ``biohicl train --dry_run``
checks its run's base model (:func:`model_check`) and evaluation tasks (:func:`task_check`) with the same checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from biohicl.study.config import ReproduceConfig, run_settings


@dataclass(frozen=True)
class Check:
    """One thing the study needs: ``ok``, and what was found or what is missing; ``path``: where a model resolved
    (:func:`model_check`), the folder the run reads its settings from."""

    what: str
    ok: bool
    detail: str
    path: Path | None = field(default=None, compare=False)

    def format(self) -> str:
        return f"  {'ok     ' if self.ok else 'MISSING'} {self.what}: {self.detail}"


def preflight(config: ReproduceConfig) -> list[Check]:
    """The dataset, each model (resolved offline: local folder, installed package or the HF cache) and each task the
    study evaluates on, base and during training."""
    dataset = Path(config.dataset.path) if config.dataset.path else Path(config.output_dir) / "dataset"
    built = (dataset / "documents").is_dir() and (dataset / "pairs").is_dir()
    checks = [_dataset_check(config, dataset, built)]
    checks += [model_check(f"model {spec.name}", spec.model) for spec in config.models]
    checks += [task_check(task, dataset, built) for task in study_tasks(config)]
    return checks


def study_tasks(config: ReproduceConfig) -> list[str]:
    """Every task spec the study evaluates on, base and during training, once each in order of appearance."""
    tasks: list[str] = []
    for spec in config.models:
        tasks += config.model_tasks(spec)
        for variant in config.model_variants(spec):  # the settings each run trains with, as the study merges them
            tasks += list(run_settings(config, spec, variant).get("eval_tasks") or [])
    return list(dict.fromkeys(tasks))


def process_only_tasks(config: ReproduceConfig) -> list[str]:
    """The study's tasks that only this Python process knows: registered here (``register_task``), or a built-in
    name registered again with another function. A fresh process (a ``--workers`` worker) cannot resolve them, while
    built-in tasks, BEIR folder paths and dataset tasks (``siml-agreement@...``) it can."""
    from biohicl.evaluation.tasks import TASKS, is_builtin_task, parse_task_spec

    names = (parse_task_spec(spec)[0] for spec in study_tasks(config))
    return [name for name in dict.fromkeys(names) if name in TASKS and not is_builtin_task(name)]


def check_workers_see_tasks(config: ReproduceConfig) -> None:
    """ConfigError naming the study's tasks registered in this process only (:func:`process_only_tasks`), which
    ``--workers`` processes would not find after this one had evaluated with them."""
    from biohicl.errors import ConfigError

    if names := process_only_tasks(config):
        which = f"{', '.join(map(repr, names))} {'is' if len(names) == 1 else 'are'}"
        raise ConfigError(
            f"tasks: {which} registered in this process only; workers cannot see "
            f"{'it' if len(names) == 1 else 'them'}: use --workers 1, or a BEIR folder path"
        )


def _dataset_check(config: ReproduceConfig, folder: Path, built: bool) -> Check:
    if built:
        return Check("dataset", True, f"reuse {folder}")
    if config.dataset.inputs is not None:
        missing = [f for item in config.dataset.inputs for f in item.get("files", []) if not _found(f)]
        if missing:
            return Check("dataset", False, f"build into {folder}: input file(s) not found: {', '.join(missing)}")
        return Check("dataset", True, f"build into {folder} from the config's inputs")
    found = _data_root()
    if found is None:
        return Check("dataset", False, f"no build in {folder} and no data directory to build it (set BIOHICL_DATA_DIR)")
    return Check("dataset", True, f"build into {folder} from {found}")


def _found(name: str) -> bool:
    """Whether the study finds corpus file ``name`` (:func:`~biohicl.study.execute.resolve_files`)."""
    from biohicl.errors import ConfigError
    from biohicl.study.execute import resolve_files

    try:
        resolve_files([name])
    except ConfigError:  # not as given, and not under the data directory (or there is none)
        return False
    return True


def _data_root() -> Path | None:
    from biohicl.errors import ConfigError
    from biohicl.settings import data_dir

    try:
        return data_dir(required=False)
    except ConfigError:  # BIOHICL_DATA_DIR names no folder
        return None


def model_check(what: str, model: str, revision: str | None = None, starts: str = "the study") -> Check:
    """Whether ``model`` (at ``revision``) resolves offline: a local folder, an installed weights package or the HF
    cache. A Hub id not in the cache passes when the Hub may be reached (it is downloaded when ``starts`` starts).
    A folder loads as it is, whatever ``revision`` says (:func:`~biohicl.models.resolver.resolve_base`). An adapter
    folder loads merged into its base, checked the same way: the one a BioHiCL adapter's ``biohicl_config.json``
    records (``BioHiCL._backbone``), the one a plain peft adapter's ``adapter_config.json`` names
    (:func:`~biohicl.models.backbone.plain_adapter_base`). ``path`` is the resolved folder (None when not on this
    machine, or a plain adapter's base is not: the run reads its settings there)."""
    return _model_check(what, model, revision, starts, ())


#: How the run finds the base an adapter folder records (:func:`~biohicl.models.resolver.adapter_base_finder`).
BaseFinder = Callable[[str, str | None], Path]


def _model_check(
    what: str, model: str, revision: str | None, starts: str, adapters: tuple[Path, ...], find: BaseFinder | None = None
) -> Check:
    """:func:`model_check` of ``model``, the base the adapters ``adapters`` lead to (``find``: how the last of them
    finds it, as the run does)."""
    from biohicl.errors import ModelLoadError
    from biohicl.models.adapter_fit import adapter_loop
    from biohicl.models.backbone import is_plain_adapter_folder
    from biohicl.models.resolver import adapter_base_finder

    found = _resolved(what, model, revision, starts, find)
    try:
        recorded = None if found.path is None else _adapter_base(found.path)
    except ModelLoadError as err:  # a base the run refuses to look for (a Hub adapter's naming a local path)
        return Check(what, False, f"{model} is an adapter; {err}")
    if recorded is None:
        return found
    if (folder := found.path.resolve()) in adapters:  # a loop of bases: refused as the run refuses it
        return Check(what, False, adapter_loop(adapters, folder))
    base = _model_check(what, *recorded, starts, (*adapters, folder), adapter_base_finder(found.path))
    # a plain adapter without sentence-transformers files encodes as its base: not read where the base is not here
    path = found.path if base.path is not None or not is_plain_adapter_folder(found.path) else None
    if not base.ok:
        return Check(what, False, f"{model} is an adapter; its base {base.detail}", path)
    return Check(what, True, f"{found.detail} (an adapter; its base {base.detail})", path)


def _resolved(what: str, model: str, revision: str | None, starts: str, find: BaseFinder | None = None) -> Check:
    """Whether ``model`` resolves offline (:func:`model_check`), its adapter's base unchecked; ``find``: how the run
    finds ``model`` as an adapter's recorded base, which reads a folder of that name, or a Hub id only
    (:func:`_hub_id_check`)."""
    from huggingface_hub import constants

    from biohicl.models.resolver import resolve

    if find is not None and Path(model).expanduser().is_dir() and not _reads_folders(find, Path(model)):
        return _hub_id_check(what, model, revision, starts, find)
    if Path(model).expanduser().is_dir():
        revision = None  # a folder loads as it is, whatever revision is given (resolve_base), as the run loads it
    try:
        resolved = resolve(model, revision, local_files_only=True)
    except Exception as err:  # ModelLoadError, or the Hub client's offline errors
        if not constants.HF_HUB_OFFLINE and "/" in model and not Path(model).expanduser().exists():
            return Check(what, True, f"{model} is not in the cache: downloaded when {starts} starts")
        return Check(what, False, f"{model} cannot be loaded offline ({str(err).splitlines()[0]})")
    return Check(what, True, f"{model} → {resolved.path}", resolved.path)


def _reads_folders(find: BaseFinder, folder: Path) -> bool:
    """Whether the run's ``find`` (:func:`~biohicl.models.resolver.adapter_base_finder`) takes a base named as a
    folder here as that folder (a local adapter's), or reads every name as a Hub id (an adapter from the Hub's):
    asked of ``find`` itself with ``folder``'s absolute path, which it returns, or refuses as no directory without
    looking anything up."""
    from biohicl.errors import ModelLoadError

    try:
        find(str(folder.expanduser().absolute()), None)
    except ModelLoadError:
        return False
    return True


def _hub_id_check(what: str, model: str, revision: str | None, starts: str, find: BaseFinder) -> Check:
    """``model``, an adapter's recorded base that names a folder here, which the run's ``find`` reads as a Hub id
    only, not that folder (:func:`_reads_folders`): looked up by ``find`` itself in the cache when the Hub is off
    (``HF_HUB_OFFLINE``); with the Hub reachable it passes unread, as a Hub id not cached does, since ``find``
    would download it."""
    from huggingface_hub import constants

    from biohicl.errors import ModelLoadError

    if not constants.HF_HUB_OFFLINE:
        return Check(
            what, True, f"{model} is a Hub id to this adapter, not the folder here: fetched when {starts} starts"
        )
    try:
        path = find(model, revision)
    except ModelLoadError as err:
        return Check(what, False, f"{model} cannot be loaded offline ({str(err).splitlines()[0]})")
    return Check(what, True, f"{model} → {path}", path)


class _NotHere(Exception):
    """A plain adapter's base that does not resolve offline: checked as any base is (:func:`_model_check`)."""


def _adapter_base(folder: Path) -> tuple[str, str | None] | None:
    """``(base_model, base_revision)`` an adapter folder records, the base the run merges it into: a BioHiCL
    adapter's (``BioHiCL._backbone``), or a plain peft adapter's, read and refused by the run's own
    :func:`~biohicl.models.backbone.plain_adapter_base` with its base resolved offline by the run's rule
    (:func:`~biohicl.models.resolver.adapter_base_finder`); None for any other folder, or a plain adapter the run
    refuses when it reads it (the dry run's base check says why). A BioHiCL adapter from the Hub that names its base
    by a local path is the run's :class:`ModelLoadError`
    (:func:`~biohicl.models.resolver.check_hub_adapter_base`)."""
    from biohicl.errors import ModelLoadError
    from biohicl.models.backbone import is_biohicl_adapter_folder, plain_adapter_base
    from biohicl.models.config import CONFIG_NAME, BioHiCLConfig
    from biohicl.models.resolver import adapter_base_finder, check_hub_adapter_base

    if not is_biohicl_adapter_folder(folder):
        named: list[tuple[str, str | None]] = []
        find = adapter_base_finder(folder)

        def offline(base: str, revision: str | None) -> Path:
            named.append((base, revision))
            if (path := _resolved("", base, revision, "", find).path) is None:
                raise _NotHere
            return path

        try:
            return named[0] if plain_adapter_base(folder, offline) is not None else None
        except _NotHere:
            return named[0]
        except ModelLoadError:  # no base named, or one the run refuses (a plain adapter, the folder itself)
            return None
    try:
        config = BioHiCLConfig.from_json_file(folder / CONFIG_NAME)
    except Exception:  # ConfigError: refused where the run reads the folder's settings
        return None
    if not config.base_model:
        return None
    check_hub_adapter_base(folder, config.base_model, f"{folder / CONFIG_NAME}: field base_model")  # as the run does
    return config.base_model, config.base_revision


def task_check(spec: str, dataset: Path | None, built: bool = True) -> Check:
    """Whether the data of task ``spec`` is there (:func:`~biohicl.evaluation.tasks.check_task`); a task over
    ``dataset`` passes unchecked while the dataset is not ``built`` yet (the study builds it first)."""
    from biohicl.evaluation.results import AGREEMENT_TASK
    from biohicl.evaluation.tasks import check_task, names_dataset, parse_task_spec

    name, split = parse_task_spec(spec)
    if name == AGREEMENT_TASK or (not built and names_dataset(spec, dataset)):
        return Check(f"task {spec}", True, "the study's dataset")
    try:
        check_task(name, split)
    except Exception as err:  # ConfigError / DataError naming the missing file
        return Check(f"task {spec}", False, str(err).splitlines()[0])
    return Check(f"task {spec}", True, "data found")

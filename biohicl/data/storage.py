"""The MeSH-pair dataset on disk: two configurations saved as parquet with a dataset card (``README.md``) the Hub
and ``datasets.load_dataset("parquet", ...)`` both read, plus a ``save_to_disk`` copy for ``load_from_disk``::

    out/
      README.md                      dataset card (YAML: license, configs → data_files, counts, SimL, MeSH version)
      summary.json                   the build's PairDatasetSummary
      dataset_dict.json              load_from_disk entry point
      documents/documents-00000.parquet   pmid, title, abstract, mesh, tree_numbers, source, label_kind, split, ...
      documents/data-00000-of-00001.arrow (+ state.json, dataset_info.json)
      pairs/pairs-00000.parquet      anchor, anchor_pmid, partner, partner_pmid, siml, rank, split

A save writes a temporary folder ``.out.tmp-<pid>`` beside ``out`` and swaps it in by ``biohicl.atomic``'s one folder
swap (the previous build aside as ``.out.old-<pid>``); a build killed mid-save or mid-swap is recovered by the next
save (:func:`recover_interrupted_save`). An ``out`` that is a symlink (to scratch storage) is written through: the
build is made beside the link's target and swapped in there; the link stays.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biohicl.atomic import (
    explain_os_error,
    folder_aside,
    holds_working_folder,
    pid_alive,
    recover_swapped_folder,
    refuse_file_in_the_way,
)
from biohicl.data.columns import in_memory_dataset
from biohicl.errors import ConfigError, DataError
from biohicl.jsonio import read_json

if TYPE_CHECKING:  # an annotation only: documents, which pairs imports through sources, reads summary.json here
    from datasets import DatasetDict

    from biohicl.data.pairs import PairDatasetSummary

logger = logging.getLogger(__name__)

#: The build summary a build writes beside its configurations (:class:`~biohicl.data.pairs.PairDatasetSummary`).
SUMMARY_NAME = "summary.json"


def recover_interrupted_save(out_dir: str | Path) -> None:
    """Clean up after a build killed while saving: if the kill came between the two renames of the swap, put the
    previous build (``.<name>.old-<pid>``; never a ``.<name>.old``, which no save wrote: a user's backup) back in
    place (:func:`~biohicl.atomic.recover_swapped_folder`, the swap's one recovery), and drop the build's own
    ``.<name>.tmp-<pid>`` folder. One whose process still runs is left alone; one named with this process's own pid
    is not (a container runs biohicl as pid 1 every time, and no save of this process is under way when a save
    begins)."""
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return
    recover_swapped_folder(out_dir, legacy=False)
    for leftover in sorted(out_dir.parent.glob(f".{glob.escape(out_dir.name)}.tmp-*")):
        pid = leftover.name[len(out_dir.name) + 6 :]  # after `.<name>.tmp-`: a sibling `<name>.tmp-x`'s is no pid
        if not pid.isdigit() or (int(pid) != os.getpid() and pid_alive(int(pid))) or not leftover.is_dir():
            continue  # another build is running
        _remove_leftover(leftover)


def _remove_leftover(path: Path) -> None:
    """Remove an earlier build's folder (a link: the link, never its target); one that cannot be removed is a
    warning naming it, and the build goes on."""
    try:
        if path.is_symlink():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
    except OSError as err:
        logger.warning("%s: left from an earlier build, not removed (%s); remove it by hand", path, err.strerror or err)


def check_output_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a :class:`~pathlib.Path`, or a :class:`ConfigError` when a save there would be refused: it
    or a folder above it is a file, it is the working folder or holds it (the swap cannot rename it), or it is a
    non-empty folder that is not a previous build."""
    out_dir = Path(out_dir)
    refuse_file_in_the_way(out_dir, f"--output {out_dir}", ConfigError)
    if holds_working_folder(out_dir):
        raise ConfigError(f"--output {out_dir} is the working folder or holds it; write into a folder inside it")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_previous_build(out_dir):
        raise ConfigError(
            f"--output {out_dir} exists, is not empty and is not a MeSH-pair dataset build (only a build's own files "
            "are replaced; choose another folder)"
        )
    return out_dir


#: What a build writes: the top-level names, and the file patterns inside its two configuration folders.
BUILD_FILES = frozenset({"README.md", "summary.json", "dataset_dict.json", "documents", "pairs"})
CONFIG_FILE_PATTERNS = ("*.parquet", "*.arrow", "dataset_info.json", "state.json")


def is_previous_build(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a build's files and nothing else (a project folder with a README.md and a
    ``documents/`` folder is not one: replacing it would delete the rest)."""
    entries = {p.name for p in out_dir.iterdir()}
    if not {"README.md", "documents", "pairs"} <= entries or not entries <= BUILD_FILES:
        return False
    for config in ("documents", "pairs"):
        folder = out_dir / config
        if not folder.is_dir() or not any(folder.glob("*.parquet")):
            return False
        if any(
            not (p.is_file() and any(p.match(pattern) for pattern in CONFIG_FILE_PATTERNS)) for p in folder.iterdir()
        ):
            return False
    return True


def save_pair_dataset(
    dataset: DatasetDict, out_dir: str | Path, summary: PairDatasetSummary | None = None, *, arrow: bool = True
) -> Path:
    """Write parquet per configuration, the dataset card and (``arrow=True``) a ``save_to_disk`` copy.

    Written to a temporary folder beside ``out_dir`` and renamed into place; an existing ``out_dir`` is
    replaced only when it is empty or a previous build holding nothing but a build's files (:func:`is_previous_build`).
    A symlinked ``out_dir`` is written through: its target gets the build, the link stays. Returns ``out_dir``.
    """
    import datasets

    from biohicl.data.dataset_card import render_dataset_card

    given = Path(out_dir)
    out_dir = given.resolve() if given.is_symlink() else given  # renaming the link would replace it, not its target
    if out_dir != given:
        recover_interrupted_save(given)  # an older biohicl's `.<link>.old-<pid>` link to the previous build
    recover_interrupted_save(out_dir)
    check_output_dir(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one line per file is enough; our own bars cover the long loops
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        if arrow:
            dataset.save_to_disk(str(tmp))
        for config in ("documents", "pairs"):
            (tmp / config).mkdir(parents=True, exist_ok=True)
            dataset[config].to_parquet(str(tmp / config / f"{config}-00000.parquet"))
        (tmp / "README.md").write_text(render_dataset_card(dataset, summary), encoding="utf-8")
        if summary is not None:
            (tmp / SUMMARY_NAME).write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
        with folder_aside(out_dir):  # the previous build waits aside, put back if the rename fails
            tmp.rename(out_dir)
    except OSError as err:  # a full disk, a read-only folder: one line; the previous build is left as it was
        raise explain_os_error(err, given) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if bars:
            datasets.enable_progress_bars()
    return given


def read_build_summary(folder: str | Path) -> dict[str, Any] | None:
    """The ``summary.json`` of the build in ``folder``, as its one reader (training, the model card, the study):
    None when ``folder`` is not a folder (a documents file) or holds no summary; a damaged one is a one-line
    :class:`DataError` naming it (not UTF-8, not JSON, or JSON that is not an object)."""
    path = Path(folder) / SUMMARY_NAME
    summary = read_json(path, default=_ABSENT) if Path(folder).is_dir() else _ABSENT
    if summary is _ABSENT:
        return None
    if not isinstance(summary, dict):  # ``null`` included: a summary is there, damaged
        raise DataError("expected a JSON object (the dataset's build summary)", path)
    return summary


_ABSENT = object()


def load_pair_dataset(path: str | Path) -> DatasetDict:
    """Reload a saved MeSH-pair dataset from its parquet files as a ``DatasetDict`` (documents, pairs); a
    configuration with no rows (e.g. no pair above SimL 0) reloads as an empty table with its columns."""
    import pyarrow as pa
    from datasets import DatasetDict
    from datasets.table import InMemoryTable

    path = Path(path)
    if not (path / "documents").is_dir():
        raise DataError("not a MeSH-pair dataset (no documents/ folder)", path)
    configs = {}
    for config in ("documents", "pairs"):
        files = sorted((path / config).glob("*.parquet"))
        if not files:
            raise DataError(f"no {config} parquet files", path / config)
        table = InMemoryTable(pa.concat_tables([_read_table(f) for f in files]))
        configs[config] = in_memory_dataset(table)  # not a hash of every row
    return DatasetDict(configs)


def _read_table(path: Path):
    """One parquet file as a pyarrow table; a file that is not parquet is a one-line :class:`DataError`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        reason = str(err).rpartition("': ")[2].split(". ")[0]  # pyarrow's first sentence, without the path again
        raise DataError(f"not a readable parquet file ({reason})", path) from None

"""What a dataset save does with the leftovers of a killed build when the output's name holds a glob character
(``[``, ``*``, ``?``): only that output's own ``.<name>.old-<pid>`` / ``.<name>.tmp-<pid>`` are touched (the name
was globbed unescaped: ``pairs[v2]`` matched ``.pairsv.*`` and never its own leftovers)."""

from __future__ import annotations

import subprocess
import sys

from biohicl.atomic import recover_swapped_folder, sweep_temporaries
from biohicl.data.storage import recover_interrupted_save


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_previous_build_of_an_output_named_with_brackets_is_put_back(tmp_path):
    dead = dead_pid()
    aside = tmp_path / f".pairs[v2].old-{dead}"  # a kill between the two renames of the swap
    aside.mkdir()
    (aside / "README.md").write_text("previous card")
    torn = tmp_path / f".pairs[v2].tmp-{dead}"  # and the new build it was swapping in
    torn.mkdir()

    recover_interrupted_save(tmp_path / "pairs[v2]")

    assert (tmp_path / "pairs[v2]" / "README.md").read_text() == "previous card"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs[v2]"]


def test_a_sibling_output_whose_name_the_brackets_would_match_is_left_alone(tmp_path):
    dead = dead_pid()
    (tmp_path / "pairsv").mkdir()  # another output, "pairsv", and the previous build its killed save left aside
    sibling_old = tmp_path / f".pairsv.old-{dead}"
    sibling_old.mkdir()
    (sibling_old / "README.md").write_text("sibling's previous card")
    sibling_tmp = tmp_path / f".pairs2.tmp-{dead}"
    sibling_tmp.mkdir()
    dotted_tmp = tmp_path / f".pairs.tmp-7.tmp-{dead}"  # output "pairs.tmp-7"'s, not output "pairs"'s
    dotted_tmp.mkdir()

    recover_interrupted_save(tmp_path / "pairs[v2]")
    recover_interrupted_save(tmp_path / "pairs*")
    recover_interrupted_save(tmp_path / "pairs")

    assert (sibling_old / "README.md").read_text() == "sibling's previous card" and sibling_tmp.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [dotted_tmp.name, sibling_tmp.name, sibling_old.name, "pairsv"]


def test_atomic_recovery_and_sweep_match_only_the_named_target(tmp_path):
    dead = dead_pid()
    (tmp_path / "out[1]").mkdir()
    own_old, other_old = tmp_path / f".out[1].old-{dead}", tmp_path / f".out1.old-{dead}"
    own_tmp, other_tmp = tmp_path / f".out[1].{dead}-abcd.tmp", tmp_path / f".out1.{dead}-abcd.tmp"
    for folder in (own_old, other_old, own_tmp, other_tmp):
        folder.mkdir()

    recover_swapped_folder(tmp_path / "out[1]")
    assert sweep_temporaries(tmp_path / "out[1]") == 1

    assert sorted(p.name for p in tmp_path.iterdir()) == [other_tmp.name, other_old.name, "out[1]"]


def test_the_one_folder_swap_puts_back_on_failure_and_names_a_previous_folder_it_cannot_remove(
    tmp_path, monkeypatch, caplog
):
    import logging
    import os
    import shutil

    import pytest

    from biohicl.atomic import folder_aside

    target, new = tmp_path / "out", tmp_path / "new"
    target.mkdir()
    (target / "card").write_text("previous")
    new.mkdir()
    (new / "card").write_text("new")
    with pytest.raises(OSError, match="Invalid cross-device link"), folder_aside(target):
        raise OSError(18, "Invalid cross-device link")  # the rename into place failed
    assert (target / "card").read_text() == "previous" and sorted(os.listdir(tmp_path)) == ["new", "out"]

    monkeypatch.setattr(shutil, "rmtree", lambda path, ignore_errors=False: None)  # a file that may not be removed
    with caplog.at_level(logging.WARNING, logger="biohicl.atomic"), folder_aside(target):
        new.rename(target)
    aside = tmp_path / f".out.old-{os.getpid()}"
    assert (target / "card").read_text() == "new" and (aside / "card").read_text() == "previous"
    assert [r.getMessage() for r in caplog.records] == [
        f"{aside}: the previous folder, not removed (the next write tries again)"
    ]


def test_an_output_that_is_the_working_folder_is_refused_before_the_build(tmp_path, monkeypatch):
    """``--output .`` inside a previous build passed the "is a previous build" check, was built, and then the swap
    could not rename the working folder (``.: Device or resource busy``, or a ValueError for ``.``'s empty name)."""
    import pytest

    from biohicl.data.storage import check_output_dir
    from biohicl.errors import ConfigError

    build = tmp_path / "build"
    for name in ("README.md", "documents/documents-00000.parquet", "pairs/pairs-00000.parquet"):
        (build / name).parent.mkdir(parents=True, exist_ok=True)
        (build / name).write_text("x")
    monkeypatch.chdir(build)
    for given in (".", str(build)):
        with pytest.raises(ConfigError) as refused:
            check_output_dir(given)
        assert (
            str(refused.value) == f"--output {given} is the working folder or holds it; write into a folder inside it"
        )
    assert check_output_dir("sub") == build.joinpath("sub").relative_to(build)


def test_a_hand_made_backup_beside_the_output_survives_a_save(tmp_path):
    from datasets import Dataset, DatasetDict

    from biohicl.data.storage import save_pair_dataset

    # `.out.old` (no pid) only an older biohicl's atomic_directory wrote; the dataset save never did: a user's backup
    backup = tmp_path / ".out.old"
    backup.mkdir()
    (backup / "notes.txt").write_text("keep me")
    documents = {"pmid": ["1", "2"], "text": ["a", "b"], "source": ["pubmed", "pubmed"], "split": ["train"] * 2}
    pairs = {"pmid_a": ["1"], "pmid_b": ["2"], "siml": [0.5], "split": ["train"]}
    dataset = DatasetDict({"documents": Dataset.from_dict(documents), "pairs": Dataset.from_dict(pairs)})

    save_pair_dataset(dataset, tmp_path / "out", arrow=False)  # no `out` yet
    save_pair_dataset(dataset, tmp_path / "out", arrow=False)  # and over the previous build

    assert (backup / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.old", "out"]

"""A local path with spaces (`/home/Jane Doe/data/pairs v2`) is reduced as one path to its last name in the uploaded
training arguments and on the card: word by word, the words after the first space (`Doe/data/pairs`) were kept."""

from __future__ import annotations

import json

from test_card_reproduction import card_command, saved_arguments, write_run

from biohicl.hub.model_card import BioHiCLModelCardData, render_model_card
from biohicl.hub.run_sources import copy_without_machine_paths, path_name, run_records, without_machine_paths

#: the parent folders a run's paths lie under here: none of their names is uploaded
PARENTS = ("Jane Doe", "shared data", "my runs")


def test_a_path_with_spaces_leaves_no_parent_folder_in_the_uploaded_arguments_or_the_card(tmp_path):
    home = tmp_path / "Jane Doe"
    paths = {
        "dataset_path": home / "shared data" / "pairs v2",
        "mesh_path": home / "shared data" / "tree 2025.tsv",
        "output_dir": home / "my runs" / "run 1",
        "eval_cache_dir": home / "my runs" / "eval cache",
        "base_model": home / "shared data" / "tiny base",
        "deepspeed": home / "my runs" / "ds config.json",
    }
    args = saved_arguments(tmp_path / "run") | {key: str(path) for key, path in paths.items()}
    run = write_run(tmp_path / "run", args, {"global_step": 4, "best_checkpoint": f"{home}/my runs/checkpoint-4"})
    out = tmp_path / "repo"
    out.mkdir()
    for name, src in run_records(run).items():
        copy_without_machine_paths(src, out / name)
    uploaded = json.loads((out / "biohicl_training_args.json").read_text())
    assert {key: uploaded[key] for key in paths} == {key: path.name for key, path in paths.items()}
    assert json.loads((out / "training_summary.json").read_text())["best_checkpoint"] == "checkpoint-4"
    card = render_model_card(BioHiCLModelCardData.from_run_dir(run, "M"))
    assert "| `mesh_path` | tree 2025.tsv |" in card and "| `deepspeed` | ds config.json |" in card
    command = card_command(card)
    given = {command[i][2:]: command[i + 1] for i in range(4, len(command), 2)}
    assert given == {
        "dataset_path": "pairs v2",
        "output_dir": "retrained",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",  # the card's base, not its local copy
        "mesh_path": "tree 2025.tsv",
        "deepspeed": "ds config.json",
    }
    texts = {"card": card, **{path.name: path.read_text() for path in out.iterdir()}}
    for parent in (*PARENTS, "Doe", str(tmp_path), tmp_path.name):
        assert [name for name, text in texts.items() if parent in text] == [], parent
    # the local files are left as they are
    assert json.loads((run / "biohicl_training_args.json").read_text())["dataset_path"] == str(paths["dataset_path"])


def test_a_path_field_is_reduced_as_a_whole_and_other_text_word_by_word():
    assert path_name("C:\\Users\\Jane Doe\\data\\pairs v2") == "pairs v2"
    assert path_name("~/Jane Doe/pairs v2/") == "pairs v2"
    assert path_name("../Jane Doe/pairs v2") == "pairs v2"
    assert path_name("data/pairs v2") == "data/pairs v2"  # relative: no machine path in it
    assert path_name("org/tiny-bert") == "org/tiny-bert" and path_name(None) is None
    record = {"command": "biohicl evaluate /srv/me/x --tasks biosses", "dataset_path": "/srv/Jane Doe/pairs v2"}
    assert without_machine_paths(record) == {
        "command": "biohicl evaluate x --tasks biosses",
        "dataset_path": "pairs v2",
    }

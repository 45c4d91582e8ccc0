"""What a publish puts on the Hub from a contributor's records: no local path in ``settings.command`` wherever it
sits in a word, dev tasks (``scifact:train``) kept out of ``model-index``, the dataset card's size category, and a
run killed before its model was saved said as such."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import save_tiny_adapter_run
from huggingface_hub import ModelCard

from biohicl.cli import publish as publish_cmd
from biohicl.cli.main import main
from biohicl.data.dataset_card import _size_category
from biohicl.errors import PublishError
from biohicl.hub.eval_rows import EvalRow
from biohicl.hub.model_card import BioHiCLModelCardData, render_model_card
from biohicl.hub.run_sources import find_model_dir, without_machine_paths


class UploadRecorder:
    """Stands in for ``huggingface_hub.HfApi``: keeps what one upload would send."""

    def __init__(self):
        self.uploaded: dict[str, bytes] = {}

    def create_repo(self, repo_id, **kwargs):
        return f"https://huggingface.co/{repo_id}"

    def repo_info(self, repo_id, **kwargs):
        return type("RepoInfo", (), {"id": repo_id, "private": False})()

    def create_branch(self, repo_id, **kwargs):
        pass

    def upload_folder(self, **kwargs):
        root = Path(kwargs["folder_path"])
        self.uploaded = {p: (root / p).read_bytes() for p in kwargs["allow_patterns"]}
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()


def publish_argv(run_dir: Path, tmp_path: Path) -> list[str]:
    """``biohicl publish RUN --repo_id me/x --eval_results TMP/tuned.json --out TMP/repo``."""
    return [
        str(run_dir),
        "--repo_id",
        "me/x",
        "--eval_results",
        str(tmp_path / "tuned.json"),
        "--out",
        str(tmp_path / "repo"),
    ]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished training run: an adapter over a tiny BERT, its arguments and summary."""

    root = tmp_path_factory.mktemp("published")
    run = save_tiny_adapter_run(root)
    (run / "biohicl_training_args.json").write_text(json.dumps({"lambda_con": 0.1, "beta": 0.3, "lora_r": 4}))
    (run / "training_summary.json").write_text(json.dumps({"data": {"documents": 9}, "global_step": 6}))
    return run


# ------------------------------------------------------------------------------------------ local paths
@pytest.mark.parametrize(
    ("command", "published"),
    [
        # a path after a comma, after name@, after #mesh=, before :split
        (
            "biohicl evaluate runs/minilm --tasks biosses,/data/x/mybeir --output /data/x/results/tuned_beir.json",
            "biohicl evaluate runs/minilm --tasks biosses,mybeir --output tuned_beir.json",
        ),
        (
            "biohicl evaluate runs/minilm --tasks siml-agreement@/data/x/data/pairs,biosses --threads 1",
            "biohicl evaluate runs/minilm --tasks siml-agreement@pairs,biosses --threads 1",
        ),
        (
            "--tasks siml-agreement@/data/x/pairs#mesh=/srv/me/trees/icd.txt:dev",
            "--tasks siml-agreement@pairs#mesh=icd.txt:dev",
        ),
        ("--tasks pubmedqa:dev,/data/beir/nfc:train,scifact:train", "--tasks pubmedqa:dev,nfc:train,scifact:train"),
        ("--tasks biosses,~/beir/mine,siml-agreement@~/pairs", "--tasks biosses,mine,siml-agreement@pairs"),
        ("--tasks siml-agreement@../data/pairs,biosses", "--tasks siml-agreement@pairs,biosses"),
        ("--tasks biosses,C:\\data\\me\\beir\\mine", "--tasks biosses,mine"),
        ("--tasks=siml-agreement@/srv/me/pairs", "--tasks=siml-agreement@pairs"),
        # the forms reduced before
        ("biohicl evaluate /srv/me/runs/x --output=/srv/me/r.json", "biohicl evaluate x --output=r.json"),
        ("biohicl evaluate ~/runs/x/ ../up/r.json", "biohicl evaluate x r.json"),
        ("biohicl evaluate C:\\data\\me\\runs\\x \\\\server\\share\\y", "biohicl evaluate x y"),
        # no local path: left as it is
        ("--tasks scifact:train,biosses,pubmedqa --output results/tuned.json", None),
        ("biohicl evaluate https://huggingface.co/org/model sentence-transformers/all-MiniLM-L6-v2@abc12", None),
        ("pairs split dev: Spearman of SimE vs SimL (MeSH 2024, ancestors, depth weights) / all pairs", None),
    ],
)
def test_a_local_path_anywhere_in_a_word_is_reduced_to_its_name(command, published):
    assert without_machine_paths({"settings": {"command": command}}) == {"settings": {"command": published or command}}


def test_a_published_record_keeps_no_task_path(run_dir, tmp_path):
    # `biohicl evaluate ... --tasks siml-agreement@/data/x/data/pairs,biosses` was uploaded with its /data/x paths
    data = tmp_path / "me" / "work"
    command = (
        f"biohicl evaluate runs/minilm --tasks siml-agreement@{data}/pairs#mesh={data}/icd.txt,biosses,{data}/mybeir"
        f" --output {data}/tuned.json --threads 1"
    )
    record = {"format": 1, "model": {"id": "minilm", "revision": None}, "settings": {"command": command},
              "tasks": {"biosses": {"split": "all", "main_metric": "spearman", "metrics": {"spearman": 0.8}}},
              "summary": {"biosses/spearman": 0.8}}  # fmt: skip
    (tmp_path / "tuned.json").write_text(json.dumps(record))
    api = UploadRecorder()
    assert publish_cmd.main(publish_argv(run_dir, tmp_path), api=api) == 0
    assert [name for name, data in api.uploaded.items() if str(tmp_path).encode() in data] == []
    assert json.loads(api.uploaded["eval_results.json"])["settings"]["command"] == (
        "biohicl evaluate runs/minilm --tasks siml-agreement@pairs#mesh=icd.txt,biosses,mybeir --output tuned.json "
        "--threads 1"
    )


# ------------------------------------------------------------------------------------------ model-index
@pytest.mark.parametrize(
    ("task", "split", "held_out"),
    [
        ("scifact", "train", False),  # this project's SciFact dev set (the selection guard's)
        ("nfcorpus", "train", False),
        ("mybeir", "train", False),
        ("pubmedqa", "train", False),
        ("scifact", "dev", False),
        ("pubmedqa-dev", "dev", False),
        ("siml-agreement", "dev", False),
        ("scifact", "test", True),
        ("mybeir", "test", True),
        ("pubmedqa", "test", True),
        ("biosses", "all", True),
    ],
)
def test_only_held_out_splits_are_held_out(task, split, held_out):
    assert EvalRow(task, "ndcg@10", 0.5, split=split).held_out is held_out


def test_the_readmes_pipeline_record_puts_scifact_train_in_the_table_not_in_model_index(run_dir, tmp_path):
    # `biohicl evaluate ... --tasks scifact:train,biosses,pubmedqa` then publish: SciFact train was in model-index
    record = {
        "format": 1,
        "model": {"id": "minilm", "revision": None},
        "tasks": {
            "scifact": {"split": "train", "main_metric": "ndcg@10", "metrics": {"ndcg@10": 0.62}},
            "biosses": {"split": "all", "main_metric": "spearman", "metrics": {"spearman": 0.81}},
            "pubmedqa": {"split": "test", "main_metric": "recall@1", "metrics": {"recall@1": 0.9}},
        },
        "summary": {"scifact/ndcg@10": 0.62, "biosses/spearman": 0.81, "pubmedqa/recall@1": 0.9},
    }
    data = BioHiCLModelCardData(model_name="M", base_model="org/base")
    data.add_eval_results(record)
    assert sorted(r.dataset_name for r in data.hub_eval_results()) == ["BIOSSES"]  # PubMedQA: no Hub split of it
    assert "| SciFact (train) | nDCG@10 | – | 0.6200 | – |" in render_model_card(data)
    (tmp_path / "tuned.json").write_text(json.dumps(record))
    api = UploadRecorder()
    assert publish_cmd.main(publish_argv(run_dir, tmp_path), api=api) == 0
    card = api.uploaded["README.md"].decode()
    results = ModelCard(card).data.to_dict()["model-index"][0]["results"]
    assert sorted((r["dataset"]["name"], r["dataset"]["split"]) for r in results) == [("BIOSSES", "test")]
    assert "| SciFact (train) | nDCG@10 |" in card and "| PubMedQA (question → long answer) (test) | Recall@1 |" in card


# ------------------------------------------------------------------------------------------ dataset card
@pytest.mark.parametrize(
    ("n", "category"),
    [
        (0, "n<1K"),
        (999, "n<1K"),
        (1_000, "1K<n<10K"),
        (9_999, "1K<n<10K"),
        (10_000, "10K<n<100K"),
        (99_999, "10K<n<100K"),
        (100_000, "100K<n<1M"),
        (999_999, "100K<n<1M"),
        (1_000_000, "1M<n<10M"),
        (1_600_000, "1M<n<10M"),
        (9_999_999, "1M<n<10M"),
        (10_000_000, "10M<n<100M"),
        (99_999_999, "10M<n<100M"),
        (100_000_000, "100M<n<1B"),
        (999_999_999, "100M<n<1B"),
        (1_000_000_000, "1B<n<10B"),
        (10_000_000_000, "10B<n<100B"),
        (100_000_000_000, "100B<n<1T"),
        (999_999_999_999, "100B<n<1T"),
        (1_000_000_000_000, "n>1T"),
    ],
)
def test_size_categories_are_the_hubs(n, category):
    assert _size_category(n) == category


# ------------------------------------------------------------------------------------------ a killed run
def _killed_run(root: Path, steps: tuple[int, ...], args: bool = True) -> Path:
    """A run folder ``biohicl train`` was killed in: its checkpoints only (each a loadable folder)."""
    run = root / "killed"
    for step in steps:
        checkpoint = run / f"checkpoint-{step}"
        checkpoint.mkdir(parents=True)
        (checkpoint / "biohicl_config.json").write_text("{}")
        (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        if args:
            (checkpoint / "biohicl_training_args.json").write_text("{}")
    return run


def test_a_run_killed_after_its_checkpoints_is_said_unfinished_with_how_to_resume(tmp_path, capsys):
    run = _killed_run(tmp_path, (2, 4, 10))
    shutil.rmtree(run / "checkpoint-10")
    (run / "checkpoint-10").mkdir()  # killed while saving it: no trainer_state.json, not what `last` resumes
    args = run / "checkpoint-4" / "biohicl_training_args.json"
    said = (
        f"{run}: the run did not finish (no saved model; its last checkpoint is checkpoint-4, step 4): resume it with "
        f"`biohicl train --config {args} --output_dir {run} --resume_from_checkpoint last`, then publish {run}"
    )
    with pytest.raises(PublishError) as err:
        find_model_dir(run)
    assert str(err.value) == said
    assert main(["publish", str(run), "--repo_id", "me/x", "--dry_run"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"biohicl publish: error: {said}"]
    # its checkpoint is still refused
    with pytest.raises(PublishError, match="a training checkpoint"):
        find_model_dir(run / "checkpoint-4")


def test_a_killed_runs_checkpoint_without_its_arguments_names_the_resume_option(tmp_path):
    run = _killed_run(tmp_path, (3,), args=False)
    with pytest.raises(PublishError) as err:
        find_model_dir(run)
    assert str(err.value) == (
        f"{run}: the run did not finish (no saved model; its last checkpoint is checkpoint-3, step 3): resume it with "
        f"its `biohicl train` command and --resume_from_checkpoint last, then publish {run}"
    )


def test_a_folder_with_no_model_and_no_checkpoint_is_said_as_before(tmp_path):
    with pytest.raises(PublishError) as err:
        find_model_dir(tmp_path)
    assert str(err.value) == f"{tmp_path}: no saved model (biohicl_config.json) in it or in final/, best/, model/"


# --------------------------------------------------------------- URLs, drive letters, a folder's trailing slash
@pytest.mark.parametrize(
    ("command", "published"),
    [
        # a word holding :// is a URL, left whole: its /y/z, #/route and ,/q parts are no local paths
        ("biohicl evaluate http://h/p?next=/y/z", None),
        ("see http://h/app/#/route/a", None),
        ("--model https://h/p,/q/r --output /data/x/r.json", "--model https://h/p,/q/r --output r.json"),
        # what comes before a URL in its word is still searched; a file:// URL is a local path
        ("/srv/me/x,http://h/p", "x,http://h/p"),
        ("--data file:///srv/me/corpus.jsonl", "--data file://corpus.jsonl"),
        ("--data file://localhost/srv/me/corpus.jsonl", "--data file://corpus.jsonl"),
        ("--out=C://data/me/x --tasks biosses,c://data/me/beir", "--out=x --tasks biosses,beir"),  # drives, no URLs
        # a Windows drive with a backslash after : or # is a path too (x#a:/b/c keeps its a: below)
        ("beir:C:\\data\\me\\beir #C:\\data\\me\\t.txt", "beir:beir #t.txt"),
        # a drive letter starts a word or follows = , @ (not # or : or a letter): the letter is kept elsewhere
        (
            "--out=C:/runs/x --tasks biosses,c:\\data\\beir,siml-agreement@D:/p/pairs",
            "--out=x --tasks biosses,beir,siml-agreement@pairs",
        ),
        ("x#a:/b/c", "x#a:c"),
        ("ab:/c/d", "ab:d"),
        # a folder given with its trailing slash keeps its name, also before a :split
        ("--tasks /data/mybeir/:test", "--tasks mybeir:test"),
        ("--tasks biosses,/data/mybeir//:dev,~/beir/nfc/", "--tasks biosses,mybeir:dev,nfc"),
        ("biohicl evaluate /srv/me/runs//x//", "biohicl evaluate x"),
    ],
)
def test_urls_stay_whole_drives_are_words_and_a_trailing_slash_keeps_the_name(command, published):
    assert without_machine_paths(command) == (published or command)

"""What a published card links to: the branch a release was pushed to (every usage snippet loads it), the MeSH-pair
dataset a run trained on once that dataset was pushed (recorded beside its folder, tied to its contents), PubMedQA
kept out of model-index (no split of qiaojin/PubMedQA holds the 500 test questions scored), and a dataset staged in a
temporary folder said to be one."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import TOPICS, build_tiny_bert, python_snippets, randomize_lora_b
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results
from test_hub import RecordingHfApi
from test_loader import add_to_hub_cache

from biohicl.data.pairs import build_pair_dataset
from biohicl.data.records import MeshRecord
from biohicl.data.storage import save_pair_dataset
from biohicl.hub.card_data_source import branch_or_none
from biohicl.hub.dataset_repo import build_dataset_repo_folder
from biohicl.hub.model_card import BioHiCLModelCardData, render_model_card, save_model_card
from biohicl.hub.publish import build_model_repo_folder, publish_folder
from biohicl.models.model import BioHiCL


# ---------------------------------------------------------------------- 4: the branch a release was pushed to
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny BERT base (Hub id ``org/tiny-bert``), a LoRA adapter on it and its merged export, and a query's
    embedding by the adapter."""
    root = tmp_path_factory.mktemp("branch-card")
    base = build_tiny_bert(root / "base")
    model = BioHiCL.from_base(str(base), hub_id="org/tiny-bert", pooling="cls", max_length=32)
    model.add_lora(r=4, target_modules=["query", "value"], verbose=False)
    randomize_lora_b(model, std=0.3)
    model.eval()
    model.save_pretrained(root / "adapter")
    model.save_merged(root / "merged")
    query = model.encode(["What causes insulin resistance?"], kind="query", show_progress_bar=False)
    return base, root / "adapter", root / "merged", query


def _branch_cache(tmp_path, monkeypatch, repo_id: str, folder: Path, base: Path) -> None:
    """A Hub cache as after publishing ``folder`` to branch ``v0.1`` of a new repo: its ``main`` holds only
    ``.gitattributes`` (what create_repo makes), ``v0.1`` the release; the base is cached too; offline."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    empty = tmp_path / "main-of-new-repo"
    empty.mkdir()
    (empty / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    add_to_hub_cache(cache, "org/tiny-bert", base, "a" * 40)
    add_to_hub_cache(cache, repo_id, empty, "c" * 40, ref="main")
    add_to_hub_cache(cache, repo_id, folder, "d" * 40, ref="v0.1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _run_snippet(snippet: str) -> dict:
    namespace: dict = {}
    exec(compile(snippet, "<model card>", "exec"), namespace)
    return namespace


def test_an_adapter_card_on_a_branch_loads_that_branch_in_its_biohicl_and_peft_snippets(tiny, tmp_path, monkeypatch):
    # `biohicl publish RUN --repo_id me/newrepo --revision v0.1`: the card's snippets loaded main, which of a new repo
    # holds only .gitattributes, so `BioHiCL.from_pretrained("me/newrepo")` failed where revision="v0.1" loads
    base, adapter, _, query = tiny
    config = BioHiCL.from_pretrained(adapter, base_model_path=base).config
    data = BioHiCLModelCardData.from_biohicl_config(config, "Tiny", repo_id="me/newrepo", revision="v0.1")
    text = render_model_card(data)
    assert 'model = BioHiCL.from_pretrained("me/newrepo", revision="v0.1")\n' in text
    assert 'tokenizer = AutoTokenizer.from_pretrained("me/newrepo", config=base.config, revision="v0.1")\n' in text
    assert 'model = PeftModel.from_pretrained(base, "me/newrepo", revision="v0.1").eval()\n' in text
    _branch_cache(tmp_path, monkeypatch, "me/newrepo", adapter, base)
    biohicl_snippet, peft_snippet = python_snippets(text)
    np.testing.assert_allclose(_run_snippet(biohicl_snippet)["queries"], query, atol=1e-6)
    np.testing.assert_allclose(_run_snippet(peft_snippet)["embeddings"].numpy(), query, atol=1e-5)


def test_a_merged_card_on_a_branch_loads_that_branch_with_sentence_transformers(tiny, tmp_path, monkeypatch):
    base, _, merged, query = tiny
    config = BioHiCL.from_pretrained(merged).config
    data = BioHiCLModelCardData.from_biohicl_config(config, "Tiny", repo_id="me/newrepo", revision="v0.1")
    text = render_model_card(data)
    assert 'model = BioHiCL.from_pretrained("me/newrepo", revision="v0.1")\n' in text
    assert 'model = SentenceTransformer("me/newrepo", revision="v0.1")\n' in text
    _branch_cache(tmp_path, monkeypatch, "me/newrepo", merged, base)
    biohicl_snippet, st_snippet = python_snippets(text)
    np.testing.assert_allclose(_run_snippet(biohicl_snippet)["queries"], query, atol=1e-6)
    assert _run_snippet(st_snippet)["queries"].shape == query.shape


@pytest.mark.parametrize("revision", [None, "main"])
def test_a_card_on_the_default_branch_names_no_revision(tiny, revision):
    _, adapter, _, _ = tiny
    config = BioHiCL.from_pretrained(adapter, base_model_path=tiny[0]).config
    data = BioHiCLModelCardData.from_biohicl_config(config, "Tiny", repo_id="me/newrepo", revision=revision)
    text = render_model_card(data)
    assert 'BioHiCL.from_pretrained("me/newrepo")\n' in text and "revision=" not in text
    # a card without a repo loads its folder: no revision either
    data = BioHiCLModelCardData.from_biohicl_config(config, "Tiny", revision="v0.1")
    assert "revision=" not in render_model_card(data)


@pytest.mark.parametrize(
    ("revision", "branch"), [(None, None), ("", None), ("main", None), (1.0, None), ("v0.1", "v0.1"), ("Main", "Main")]
)
def test_branch_or_none_is_the_one_default_branch_rule(revision, branch):
    """The rule the cards, the snippets, the publication record and the upload's ``create_branch`` share: ``main``,
    an empty or no revision (or a manifest's value of another type) is the default branch, named by None."""
    assert branch_or_none(revision) == branch


def test_the_revision_is_card_data_kept_through_card_data_json_and_the_model_repo_folder(tiny, tmp_path):
    # publish takes the card data it is given (card_data=): its revision reaches the staged README.md
    base, adapter, _, _ = tiny
    run = tmp_path / "run"
    BioHiCL.from_pretrained(adapter, base_model_path=base).save_pretrained(run)
    data = BioHiCLModelCardData.from_run_dir(run, "newrepo")
    data.revision = "v0.1"
    data.save(tmp_path / "card_data.json")
    assert BioHiCLModelCardData.load(tmp_path / "card_data.json").revision == "v0.1"
    out = build_model_repo_folder(run, tmp_path / "out", repo_id="me/newrepo", card_data=data, license="mit")
    assert 'BioHiCL.from_pretrained("me/newrepo", revision="v0.1")' in (out / "README.md").read_text()


# ---------------------------------------------------------------------- 9: the dataset a run trained on, once pushed
def _records(topics: list[str]) -> list[MeshRecord]:
    records = []
    for topic in topics:
        uis = TOPICS[topic]
        for i in range(7):
            source, split = ("pubmedqa", "test") if i < 2 else ("pubmedqa", "train") if i < 4 else ("bioasq", "train")
            pmid = str(5000 + len(records))
            records.append(MeshRecord(pmid, f"{topic} {i}", f"about {topic} {i}", (uis[i % 4], uis[(i + 1) % 4]),
                                      source, split=split))  # fmt: skip
    return records


def _build(folder: Path, mesh, topics: list[str]) -> Path:
    dataset, summary = build_pair_dataset(_records(topics), mesh, top_k=3)
    return save_pair_dataset(dataset, folder, summary)


def _run_on(root: Path, dataset_path: str) -> Path:
    """A run folder as training leaves it, its arguments naming ``dataset_path``."""
    run = root / "runs" / "tiny"
    run.mkdir(parents=True, exist_ok=True)
    config = {"base_model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean", "max_length": 64}
    args = {"lambda_con": 0.1, "dataset_path": dataset_path, "output_dir": str(run)}
    summary = {"data": {"documents": 12, "splits": ["train"]}, "global_step": 4}
    for name, values in (("biohicl_config", config), ("biohicl_training_args", args), ("training_summary", summary)):
        (run / f"{name}.json").write_text(json.dumps(values), encoding="utf-8")
    return run


def _push_dataset(source: Path, tmp_path: Path, repo_id: str, revision: str | None = None) -> RecordingHfApi:
    """What `biohicl publish SOURCE --dataset --repo_id REPO_ID [--revision R]` does: stage, upload, then record."""
    from biohicl.hub.dataset_repo import record_dataset_publication

    api = RecordingHfApi()
    staged = build_dataset_repo_folder(source, tmp_path / "staged", repo_id=repo_id, revision=revision, overwrite=True)
    publish_folder(api, staged, repo_id, repo_type="dataset", revision=revision)
    record_dataset_publication(source, repo_id, revision)
    return api


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a run's relative dataset_path is read from the working directory; no hub/datasets/
    return tmp_path


def test_a_run_on_a_pushed_dataset_links_it_in_its_card(workdir, mesh):
    # `publish data --dataset --repo_id me/mesh-pairs` then `publish run1 --repo_id me/tiny`: the card had no
    # `datasets:` and named the dataset by its local folder only
    source = _build(workdir / "data", mesh, ["diabetes", "heart"])
    _push_dataset(source, workdir, "me/mesh-pairs")
    record = json.loads((workdir / "data.published.json").read_text())
    assert (record["repo_id"], record["revision"]) == ("me/mesh-pairs", None)
    for i, run_path in enumerate(("data", str(workdir / "data"))):  # relative (from the working directory), absolute
        text = render_model_card(BioHiCLModelCardData.from_run_dir(_run_on(workdir / f"r{i}", run_path), "m"))
        assert ModelCard(text).data.to_dict()["datasets"] == ["me/mesh-pairs"]
        link = "published as [`me/mesh-pairs`](https://huggingface.co/datasets/me/mesh-pairs),"
        assert f"MeSH-pair dataset `data`, {link}" in text
    # the build is left as it is (a rebuild replaces only a build's own files)
    assert sorted(p.name for p in source.iterdir()) == [
        "README.md",
        "dataset_dict.json",
        "documents",
        "pairs",
        "summary.json",
    ]


@pytest.mark.parametrize(("repo_id", "revision"), [("me/pairs", None), ("me/pairs", "main"), (None, "v0.1")])
def test_a_dataset_card_on_the_default_branch_or_of_no_repo_loads_no_revision(workdir, mesh, repo_id, revision):
    source = _build(workdir / "data", mesh, ["diabetes", "heart"])
    card = build_dataset_repo_folder(source, workdir / "staged", repo_id=repo_id, revision=revision) / "README.md"
    text = card.read_text()
    assert "revision=" not in text
    assert f'pairs = load_dataset("{repo_id or "<repo id>"}", "pairs", split="train")          # pairs of' in text


def test_a_dataset_pushed_to_a_branch_is_linked_at_that_branch_and_its_card_loads_it(workdir, mesh):
    source = _build(workdir / "data", mesh, ["diabetes", "heart"])
    api = _push_dataset(source, workdir, "me/mesh-pairs", revision="v0.1")
    card = api.uploaded["README.md"].decode()
    snippet = next(block for block in python_snippets(card) if "load_dataset(" in block)
    calls = [node for node in ast.walk(ast.parse(snippet)) if isinstance(node, ast.Call)]
    loads = [c for c in calls if getattr(c.func, "id", None) == "load_dataset"]
    assert len(loads) == 3
    assert all({k.arg: k.value.value for k in c.keywords}["revision"] == "v0.1" for c in loads)
    assert 'load_dataset("me/mesh-pairs", "pairs", split="train", revision="v0.1")' in card
    text = render_model_card(BioHiCLModelCardData.from_run_dir(_run_on(workdir, "data"), "m"))
    assert ModelCard(text).data.to_dict()["datasets"] == ["me/mesh-pairs"]
    link = "published as [`me/mesh-pairs`](https://huggingface.co/datasets/me/mesh-pairs/tree/v0.1) (revision `v0.1`)"
    assert link in text


def test_a_rebuilt_or_changed_dataset_is_not_linked_to_what_was_pushed_before(workdir, mesh, caplog):
    source = _build(workdir / "data", mesh, ["diabetes", "heart"])
    _push_dataset(source, workdir, "me/mesh-pairs")
    run = _run_on(workdir, "data")
    _build(workdir / "data", mesh, ["diabetes", "heart", "cancer"])  # rebuilt from other abstracts: not published
    with caplog.at_level(logging.WARNING, logger="biohicl.hub.card_data_source"):
        text = render_model_card(BioHiCLModelCardData.from_run_dir(run, "m"))
    assert "datasets" not in ModelCard(text).data.to_dict() and "published as" not in text
    assert [r.getMessage() for r in caplog.records if "published.json" in r.getMessage()] == [
        f"{workdir / 'data.published.json'}: data was published as me/mesh-pairs with other contents than the "
        "folder holds now (rebuilt or changed since), so the card does not link it; publish the dataset again "
        "(biohicl publish data --dataset --repo_id me/mesh-pairs) to link it"
    ]
    # the same summary over other pairs: its parquet files are what was published, so they are compared too
    _build(workdir / "data", mesh, ["diabetes", "heart"])
    _push_dataset(source, workdir, "me/mesh-pairs")
    summary = (source / "summary.json").read_bytes()
    _build(workdir / "data", mesh, ["diabetes", "cancer"])
    (source / "summary.json").write_bytes(summary)
    assert "published as" not in render_model_card(BioHiCLModelCardData.from_run_dir(run, "m"))


@pytest.mark.parametrize("damage", ["[]", "{", '{"repo_id": 3}', '{"repo_id": "not a repo"}'])
def test_a_damaged_publication_record_links_nothing_and_says_so(workdir, mesh, caplog, damage):
    source = _build(workdir / "data", mesh, ["diabetes", "heart"])
    _push_dataset(source, workdir, "me/mesh-pairs")
    (workdir / "data.published.json").write_text(damage)
    with caplog.at_level(logging.WARNING, logger="biohicl.hub.card_data_source"):
        text = render_model_card(BioHiCLModelCardData.from_run_dir(_run_on(workdir, "data"), "m"))
    assert "published as" not in text
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [str(workdir / "data.published.json")]


def test_a_release_manifest_still_names_the_dataset_first(workdir, mesh):
    source = _build(workdir / "data", mesh, ["diabetes", "heart"])
    _push_dataset(source, workdir, "me/mesh-pairs")
    (workdir / "hub" / "datasets").mkdir(parents=True)
    (workdir / "hub" / "datasets" / "m.yaml").write_text("repo_id: me/reviewed\nrepo_type: dataset\nsource: data\n")
    text = render_model_card(BioHiCLModelCardData.from_run_dir(_run_on(workdir, "data"), "m"))
    assert ModelCard(text).data.to_dict()["datasets"] == ["me/reviewed"]


@pytest.mark.parametrize(("revision", "link"), [("v0.2", "/tree/v0.2) (revision `v0.2`)"), ("main", "),")])
def test_a_release_manifest_links_the_dataset_at_its_revision_unless_main(workdir, mesh, revision, link):
    _build(workdir / "data", mesh, ["diabetes", "heart"])
    (workdir / "hub" / "datasets").mkdir(parents=True)
    manifest = f"repo_id: me/reviewed\nrepo_type: dataset\nsource: data\nrevision: {revision}\n"
    (workdir / "hub" / "datasets" / "m.yaml").write_text(manifest)
    text = render_model_card(BioHiCLModelCardData.from_run_dir(_run_on(workdir, "data"), "m"))
    assert ModelCard(text).data.to_dict()["datasets"] == ["me/reviewed"]
    assert f"published as [`me/reviewed`](https://huggingface.co/datasets/me/reviewed{link}" in text


def test_staging_or_a_dry_run_records_no_publication(workdir, mesh):
    from biohicl.cli import publish as publish_cmd

    source = _build(workdir / "data", mesh, ["diabetes", "heart"])
    build_dataset_repo_folder(source, workdir / "staged", repo_id="me/mesh-pairs")
    assert publish_cmd.main([str(source), "--dataset", "--repo_id", "me/mesh-pairs", "--dry_run"]) == 0
    assert not (workdir / "data.published.json").exists()


def test_a_record_that_cannot_be_written_is_a_warning_not_a_failed_publish(workdir, mesh, monkeypatch, caplog):
    import biohicl.hub.dataset_repo as dataset_repo
    from biohicl.hub.dataset_repo import record_dataset_publication

    source = _build(workdir / "data", mesh, ["diabetes", "heart"])

    def refuse(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(dataset_repo, "atomic_write_text", refuse)
    with caplog.at_level(logging.WARNING, logger="biohicl.hub.dataset_repo"):
        assert record_dataset_publication(source, "me/mesh-pairs") is None
    assert [r.getMessage() for r in caplog.records] == [
        f"published data as me/mesh-pairs, but could not record it in {workdir / 'data.published.json'} "
        "(Permission denied), so the model cards of runs trained on data will not link it"
    ]


# ---------------------------------------------------------------------- 10: PubMedQA is not in model-index
def test_pubmedqa_is_in_the_cards_table_but_not_in_model_index(tmp_path):
    # qiaojin/PubMedQA's configs (pqa_labeled, pqa_unlabeled, pqa_artificial) have a train split only; biohicl scores
    # the 500 official test questions of pqa_labeled, no split of it: `config: pubmedqa, split: test` pointed nowhere
    record = {
        "tasks": {
            "scifact": {"split": "test", "metrics": {"ndcg@10": 0.7}},
            "biosses": {"split": "all", "metrics": {"spearman": 0.8}},
            "pubmedqa": {"split": "test", "metrics": {"recall@1": 0.871}},
            "pubmedqa-context": {"split": "test", "metrics": {"recall@1": 0.95}},
            "pubmedqa@all": {"split": "all", "metrics": {"recall@1": 0.9}},
        }
    }
    data = BioHiCLModelCardData(model_name="M", base_model="org/base")
    data.add_eval_results(record)
    save_model_card(data, tmp_path)
    meta = metadata_load(tmp_path / "README.md")
    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == "M"
    assert sorted((r.dataset_type, r.dataset_config, r.dataset_split, r.metric_type) for r in results) == [
        ("mteb/biosses-sts", "default", "test", "spearman"),
        ("mteb/scifact", "default", "test", "ndcg_at_10"),
        ("pubmedqa@all", "pubmedqa@all", "all", "recall_at_1"),  # a task biohicl does not know names itself
    ]
    text = (tmp_path / "README.md").read_text()
    assert "| PubMedQA (question → long answer) (test) | Recall@1 | – | 0.8710 | – |" in text
    assert "| PubMedQA (question → context) (test) | Recall@1 | – | 0.9500 | – |" in text


@pytest.mark.parametrize("split", ["test", "all", "train"])
def test_no_pubmedqa_split_has_a_hub_config_and_split(split):
    from biohicl.hub.eval_rows import EvalRow

    for task in ("pubmedqa", "pubmedqa-context"):
        assert EvalRow(task, "recall@1", 0.9, split=split).hub_config_split is None
    assert EvalRow("biosses", "spearman", 0.8, split="all").hub_config_split == ("default", "test")
    assert EvalRow("mybeir", "ndcg@10", 0.5, split=split).hub_config_split == ("mybeir", split)


# ---------------------------------------------------------------------- 11: a temporary staging folder says so
def test_a_real_dataset_publish_says_its_staging_folder_is_temporary(workdir, mesh, caplog):
    _build(workdir / "data", mesh, ["diabetes", "heart"])
    with caplog.at_level(logging.INFO, logger="biohicl.hub.dataset_repo"):  # `biohicl publish data --dataset ...`
        build_dataset_repo_folder(Path("data"), workdir / "tmp" / "mesh-pairs", temporary=True)
        build_dataset_repo_folder(Path("data"), workdir / "kept")
    assert [r.getMessage() for r in caplog.records] == [
        f"staged data for the Hub in {workdir / 'tmp' / 'mesh-pairs'} (splits dev, test, train), a temporary folder "
        "deleted when the command ends (--out DIR keeps it)",
        f"staged data for the Hub in {workdir / 'kept'} (splits dev, test, train)",
    ]


# ---------------------------------------------------------------------- the publish command wires 4, 9 and 11
def test_the_publish_command_records_a_pushed_dataset_then_links_it_and_names_the_branch(tiny, workdir, mesh, caplog):
    # the pieces above were built but `biohicl publish` passed none of them on: no revision in the card, no record
    from biohicl.cli import publish as publish_cmd

    base, adapter, _, _ = tiny
    source = _build(workdir / "data", mesh, ["diabetes", "heart"])
    with caplog.at_level(logging.INFO, logger="biohicl.hub.dataset_repo"):
        argv = [str(source), "--dataset", "--repo_id", "me/mesh-pairs", "--revision", "v0.1"]
        assert publish_cmd.main(argv, api=RecordingHfApi()) == 0
    assert any(
        r.getMessage().endswith("a temporary folder deleted when the command ends (--out DIR keeps it)")
        for r in caplog.records
    )
    record = json.loads((workdir / "data.published.json").read_text())
    assert (record["repo_id"], record["revision"]) == ("me/mesh-pairs", "v0.1")
    run = workdir / "run"
    BioHiCL.from_pretrained(adapter, base_model_path=base).save_pretrained(run)
    (run / "biohicl_training_args.json").write_text(json.dumps({"dataset_path": "data", "lambda_con": 0.1}))
    api = RecordingHfApi()
    argv = [str(run), "--repo_id", "me/tiny", "--license", "mit", "--revision", "v0.2"]
    assert publish_cmd.main(argv, api=api) == 0
    card = api.uploaded["README.md"].decode()
    assert 'BioHiCL.from_pretrained("me/tiny", revision="v0.2")' in card
    assert ModelCard(card).data.to_dict()["datasets"] == ["me/mesh-pairs"]

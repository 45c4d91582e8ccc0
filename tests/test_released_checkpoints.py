"""The paper's checkpoints as a user's machine holds them: a Hugging Face cache laid out as
``LunaLan07/BioHiCL-Base`` (bge-base-en-v1.5's sentence-transformers files, no ``biohicl_config.json``), a folder left
by ``hf download ... --local-dir``, an interrupted download, a moved ``refs/main``."""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import build_tiny_bert
from test_loader import add_to_hub_cache

from biohicl.errors import ModelLoadError
from biohicl.models.model import BioHiCL, load_model
from biohicl.models.registry import Registry, default_registry

REPO = "LunaLan07/BioHiCL-Base"
SHA = "a" * 40
NEWER = "c" * 40
QUERIES = ["insulin resistance in diabetes", "heart disease and the brain"]


def bge_layout(path: Path, seed: int = 0) -> Path:
    """A tiny random BERT (128 positions) with bge-base-en-v1.5's sentence-transformers files: CLS pooling,
    Normalize, ``max_seq_length`` 512, no prompts."""
    build_tiny_bert(path, seed=seed)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir()
    pooling = {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    (path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512, "do_lower_case": True}))
    return path


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """The files of the released repo (a tiny stand-in)."""
    return bge_layout(tmp_path_factory.mktemp("release") / "BioHiCL-Base")


def shipped_entry(**overrides) -> Registry:
    """A registry holding the shipped BioHiCL-Base entry (its prompts and pooling), with ``overrides``."""
    values = {**default_registry().get("BioHiCL-Base").to_dict(), "revision": None, "pinned": False, **overrides}
    return Registry.from_data({"models": [values]})


def test_a_local_dir_download_named_by_its_registered_repo_id_encodes_as_the_registered_model(
    hub_cache,
    release,
    tmp_path,
    monkeypatch,
    caplog,
):
    # `hf download LunaLan07/BioHiCL-Base --local-dir LunaLan07/BioHiCL-Base`, then loading it by the repo id it was
    # downloaded as: it loaded as a plain folder, with no query prompt, silently (another model than the paper's)
    snapshot = add_to_hub_cache(hub_cache, REPO, release, SHA)
    registered = BioHiCL.from_pretrained(snapshot)  # a cache snapshot encodes as its registered name does
    entry = default_registry().by_repo_id(REPO)
    assert registered.config.query_prompt == entry.query_prompt != ""
    shutil.copytree(release, tmp_path / REPO)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(), caplog.at_level(logging.INFO, logger="biohicl.models.resolver"):
        warnings.simplefilter("error")  # a folder: no unpinned-branch warning
        model = BioHiCL.from_pretrained(REPO)
    assert (model.resolved.source, model.resolved.path, model.resolved.entry) == ("path", Path(REPO), entry)
    config = model.config
    assert (config.pooling, config.query_prompt, config.kind, config.base_model) == (
        "cls",
        entry.query_prompt,
        "merged",
        entry.base_model,
    )
    expected = registered.encode(QUERIES, kind="query", show_progress_bar=False)
    np.testing.assert_allclose(model.encode(QUERIES, kind="query", show_progress_bar=False), expected, atol=1e-6)
    said = [r.getMessage() for r in caplog.records if r.name == "biohicl.models.resolver"]
    assert said == [
        f"{REPO}: a local folder named as the registered repo {REPO}; applying the registry's settings of "
        f"BioHiCL-Base (pooling, prompts, max length, normalize) to it (spell it ./{REPO} to load it as a plain folder)"
    ]
    # spelled as a path, it is a plain folder: its own sentence-transformers settings, no prompt
    for spelled in (f"./{REPO}", str(tmp_path / REPO)):
        plain = BioHiCL.from_pretrained(spelled)
        assert (plain.resolved.entry, plain.config.query_prompt, plain.config.pooling) == (None, "", "cls")


def test_a_registered_merged_checkpoint_is_capped_at_its_backbones_positions(hub_cache, tmp_path, caplog):
    # the registry's max_length 512 was written over the 128 the backbone can encode: a long text then failed in
    # torch with a raw size error
    add_to_hub_cache(hub_cache, REPO, build_tiny_bert(tmp_path / "plain"), SHA)  # no sentence-transformers files
    registry = shipped_entry(revision=SHA, pinned=True)
    with caplog.at_level(logging.WARNING, logger="biohicl.models.positions"):
        model = BioHiCL.from_pretrained("BioHiCL-Base", registry=registry)
    assert (model.config.max_length, model.config.query_prompt) == (128, registry.get("BioHiCL-Base").query_prompt)
    assert model.encode(["word " * 400], show_progress_bar=False).shape == (1, 32)
    capped = [r.getMessage() for r in caplog.records if r.name == "biohicl.models.positions"]
    assert capped == ["max length 512 capped at 128, the most tokens BioHiCL-Base can encode"]


def test_a_local_dir_download_named_by_its_registered_repo_id_is_recorded_by_its_absolute_path(
    hub_cache,
    release,
    tmp_path,
    monkeypatch,
    capsys,
):
    # it was recorded as the Hub repo with no revision: the index's manifest said `LunaLan07/BioHiCL-Base`, and
    # `biohicl search` from another folder looked for branch main in the (empty) Hub cache instead of this folder
    from test_evaluation import write_beir

    from biohicl.cli.main import main
    from biohicl.search.layout import IndexManifest

    here, elsewhere, index = tmp_path / "w1", tmp_path / "w2", tmp_path / "idx"
    shutil.copytree(release, here / REPO)
    elsewhere.mkdir()
    docs = [{"id": "p1", "title": "Statins", "text": "statins lower cholesterol"}, {"id": "p2", "text": "insulin"}]
    (here / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    folder, entry = str((here / REPO).resolve()), default_registry().by_repo_id(REPO)
    monkeypatch.chdir(here)
    argv = ["corpus.jsonl", "--model", REPO, "--output", str(index), "--device", "cpu", "--no_progress"]
    assert main(["index", *argv]) == 0
    manifest = IndexManifest.load(index)
    assert (manifest.model, manifest.model_revision) == (folder, None)
    assert (
        main(["evaluate", REPO, "--tasks", str(write_beir(tmp_path / "beir")), "--output", "r.json", "--no_progress"])
        == 0
    )
    record = json.loads(Path("r.json").read_text())["model"]  # a merged folder: under its base's Hub id, as any
    assert (record["id"], record["revision"]) == (entry.base_model, entry.base_revision)
    model = BioHiCL.from_pretrained(REPO)
    model.add_lora(r=2, alpha=4, target_modules=["query"], verbose=False)  # its base is this folder, not the Hub's
    assert (model.config.base_model, model.config.base_revision) == (folder, None)
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["search", str(index), "statins", "--top_k", "2", "--json", "--device", "cpu"]) == 0
    assert sorted(json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()) == ["p1", "p2"]


def test_a_registered_repos_cache_snapshot_is_recorded_with_its_commit(hub_cache, release, tmp_path):
    # a snapshot folder was recorded as the repo with no revision: searching its index loaded branch main
    from biohicl.search.layout import describe_model

    snapshot = add_to_hub_cache(hub_cache, REPO, release, SHA)
    resolved = BioHiCL.from_pretrained(snapshot).resolved
    assert (resolved.repo_id, resolved.commit, resolved.entry) == (REPO, SHA, default_registry().by_repo_id(REPO))
    assert describe_model(BioHiCL.from_pretrained(snapshot)) == (REPO, SHA)


def test_a_folder_named_by_a_registered_adapters_repo_id_without_an_adapter_is_named_in_the_error(
    tmp_path,
    monkeypatch,
):
    # it said "None: the registry lists an adapter ..." once such a folder no longer carried the repo id
    repo = default_registry().get("BioHiCL-MiniLM").repo_id
    build_tiny_bert(tmp_path / repo)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError) as err:
        BioHiCL.from_pretrained(repo)
    assert str(err.value) == f"{repo}: the registry lists an adapter but the repo has no adapter_config.json"


def unpinned_message(commit: str) -> str:
    return (
        f"BioHiCL-Base: the registry pins no commit for {REPO}; loaded branch main at {commit} (pin it: "
        f'revision="{commit}" in Python, BioHiCL-Base@{commit} on the command line)'
    )


def test_the_unpinned_warning_names_the_commit_it_loaded_and_points_at_the_callers_line(hub_cache, release):
    # it warned before resolving, named no commit and pointed at biohicl's own load_model line for load_model callers
    add_to_hub_cache(hub_cache, REPO, release, SHA)
    registry = shipped_entry()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BioHiCL.from_pretrained("BioHiCL-Base", registry=registry)
        load_model(REPO, registry=registry)
    unpinned = [w for w in caught if "pins no commit" in str(w.message)]
    assert [str(w.message) for w in unpinned] == [unpinned_message(SHA)] * 2
    assert {w.filename for w in unpinned} == {__file__}


def test_an_unpinned_entry_not_in_the_cache_is_one_error_and_no_warning(hub_cache):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ModelLoadError, match=f"{REPO} at revision main is not in the Hugging Face cache"):
            BioHiCL.from_pretrained("BioHiCL-Base", registry=shipped_entry())


def test_an_interrupted_download_says_so_and_how_to_finish_it(hub_cache, release):
    # huggingface_hub writes blobs/<hash>.incomplete and links the snapshot only once the file is whole; it said
    # ".../snapshots/<sha>: no *.safetensors weights found"
    snapshot = add_to_hub_cache(hub_cache, REPO, release, SHA)
    weights = snapshot / "model.safetensors"
    blob = weights.resolve()
    weights.unlink()
    blob.rename(f"{blob}.incomplete")
    with pytest.raises(ModelLoadError) as err:
        BioHiCL.from_pretrained("BioHiCL-Base", registry=shipped_entry(revision=SHA, pinned=True))
    assert str(err.value) == (
        f"{snapshot}: no *.safetensors weights found; the download of {REPO} looks interrupted (an .incomplete file "
        f"in its blobs/); finish it with `hf download {REPO} --revision {SHA}`"
    )


def test_a_main_ref_moved_to_an_uncached_commit_lists_the_cached_ones(hub_cache, release):
    snapshot = add_to_hub_cache(hub_cache, REPO, release, SHA)
    (snapshot.parents[1] / "refs" / "main").write_text(NEWER)  # `hf download` of a newer commit, interrupted
    with pytest.raises(ModelLoadError) as err:
        BioHiCL.from_pretrained(REPO)
    assert str(err.value) == (
        f"{REPO} at revision main is not in the Hugging Face cache ({hub_cache}) and HF_HUB_OFFLINE is set; fetch it "
        f"once with `hf download {REPO} --revision main` while online, then load it offline, or load the commit the "
        f'cache holds: revision="{SHA}" in Python, {REPO}@{SHA} on the command line'
    )
    assert BioHiCL.from_pretrained(REPO, revision=SHA).resolved.commit == SHA  # the commit it names loads


def test_not_in_cache_names_only_the_hf_command(hub_cache):
    # huggingface_hub >= 1.0 ships `hf` alone; the message also said "(or `huggingface-cli download ...`)"
    with pytest.raises(ModelLoadError) as err:
        BioHiCL.from_pretrained("org/absent")
    assert "huggingface-cli" not in str(err.value)
    assert "fetch it once with `hf download org/absent --revision main` while online" in str(err.value)


def test_the_command_line_pin_the_messages_give_works_in_every_command(hub_cache, release, tmp_path, capsys):
    # the warning said `--revision <sha>`, an option encode, index and search do not have
    from test_evaluation import write_beir

    from biohicl.cli.main import main
    from biohicl.search.layout import IndexManifest

    add_to_hub_cache(hub_cache, REPO, release, SHA)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "p1", "text": "statins lower cholesterol"}) + "\n")
    index, record = tmp_path / "idx", tmp_path / "r.json"
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*pins no commit")
        for pinned in (f"BioHiCL-Base@{SHA}", f"{REPO}@{SHA}"):
            encode = ["--model", pinned, "--input", str(corpus), "--output", str(tmp_path / "e.safetensors")]
            assert main(["encode", *encode, "--device", "cpu", "--no_progress"]) == 0
            assert main(["index", str(corpus), "--model", pinned, "--output", str(index), "--no_progress"]) == 0
            assert IndexManifest.load(index).model_revision == SHA
            tasks = ["--tasks", str(write_beir(tmp_path / pinned.replace("/", "_"))), "--output", str(record)]
            assert main(["evaluate", pinned, *tasks, "--no_progress"]) == 0
            assert json.loads(record.read_text())["model"]["revision"] == SHA
            assert main(["search", str(index), "statins", "--model", pinned, "--json", "--device", "cpu"]) == 0
            shutil.rmtree(index)


def test_a_base_model_with_at_revision_points_to_base_revision():
    """``NAME@sha`` is how encode/index/evaluate/search take a revision; ``train --base_model`` takes it apart."""
    from biohicl.models.resolver import resolve_base

    sha = "a" * 40
    expected = (
        f"BioHiCL-Base@{sha}: a base model takes its revision apart: --base_model BioHiCL-Base --base_revision {sha} "
        f'(revision="{sha}" in Python)'
    )
    with pytest.raises(ModelLoadError) as raised:
        BioHiCL.from_base(f"BioHiCL-Base@{sha}")
    assert str(raised.value) == expected
    with pytest.raises(ModelLoadError, match="--base_revision main"):
        resolve_base("org/model@main")


def test_a_registered_folder_without_sentence_transformers_files_is_not_guessed_at(tmp_path, monkeypatch, caplog):
    # a merged checkpoint saved as a plain transformers folder: the registry gives its pooling, so no guess (which
    # said 'mean' while the model then encoded with the registry's 'cls') is logged
    build_tiny_bert(tmp_path / REPO)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="biohicl.models.config"):
        model = BioHiCL.from_pretrained(REPO)
    guesses = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pooling:")]
    assert model.config.pooling == "cls" and guesses == []

"""Every ```python block of README.md and docs/*.md runs as written: each is executed in a fresh namespace inside a
scratch folder, with only what cannot run offline on 2 CPUs substituted (Hub ids and real data paths by tiny local
equivalents, step counts by 1), each substitution listed per block in :data:`SUBSTITUTIONS`. Names a block takes
from the prose or an earlier block of its page (``model``, ``texts``, ``index``, ``args``) are given by
:data:`GIVEN`. A block that cannot sensibly run here is in :data:`SKIPPED` with the reason."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import SEARCH_DOCS, build_tiny_bert, python_snippets, randomize_lora_b, synthetic_documents
from test_loader import add_to_hub_cache

REPO = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
SHA = "a" * 40


def doc_blocks() -> dict[str, str]:
    """``{"<page>#<n>": code}`` for the n-th (from 1) ```python block of each page."""
    blocks = {}
    for page in PAGES:
        for number, code in enumerate(python_snippets((REPO / page).read_text(encoding="utf-8")), 1):
            blocks[f"{page}#{number}"] = code
    return blocks


BLOCKS = doc_blocks()

#: per block, ``(text in the block, what it becomes)``: each text must be in the block (so the table cannot go stale)
SUBSTITUTIONS: dict[str, list[tuple[str, str]]] = {
    "README.md#1": [],  # "BioHiCL-Base" resolves from the Hub cache the test lays out (a tiny BERT)
    "docs/evaluation.md#1": [],
    # the real tasks take minutes with any model: BIOSSES (100 pairs) from the data folder only
    "docs/evaluation.md#2": [('["scifact:train", "biosses", "pubmedqa"]', '["biosses"]')],
    "docs/hub.md#1": [('"<40-hex commit sha>"', f'"{SHA}"')],  # the sha of the cached tiny BioHiCL-Base
    "docs/inference.md#1": [],
    "docs/inference.md#2": [],
    "docs/inference.md#3": [],
    "docs/inference.md#4": [],
    "docs/inference.md#5": [('"25429730"', '"p1"')],  # a PMID of the real index → one of the tiny index
    "docs/training.md#1": [  # a tiny base and one step of 4 short documents instead of MiniLM's 150 steps
        ("max_steps=150", "max_steps=1, base_model=TINY_BERT, per_device_train_batch_size=4, max_length=16")
    ],
    "docs/training.md#2": [],
}

#: blocks not run, with the reason
SKIPPED: dict[str, str] = {}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A tiny BERT folder and a LoRA adapter run over it (its Hub id ``org/tiny-bert``)."""
    from biohicl.models.model import BioHiCL

    root = tmp_path_factory.mktemp("doc-models")
    bert = build_tiny_bert(root / "bert")
    model = BioHiCL.from_base(str(bert), hub_id="org/tiny-bert", max_length=32)
    model.add_lora(r=2, target_modules=["query", "value"], verbose=False)
    randomize_lora_b(model, std=0.3)
    model.save_pretrained(root / "adapter")
    return {"bert": bert, "adapter": root / "adapter"}


def tiny_model(tiny):
    from biohicl.models.model import BioHiCL

    return BioHiCL.from_pretrained(tiny["bert"])


def in_hub_cache(repo_id: str, folder: Path, tmp_path, monkeypatch) -> None:
    """``folder`` laid out in a private Hub cache as ``repo_id`` at ``main`` = SHA."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    add_to_hub_cache(cache, repo_id, folder, SHA)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))


def hub_base(tiny, tmp_path, monkeypatch):
    """The tiny BERT as the registered BioHiCL-Base's repo."""
    in_hub_cache("LunaLan07/BioHiCL-Base", tiny["bert"], tmp_path, monkeypatch)
    return {}


def an_index(tiny, folder: str):
    """The tiny model and an index of :data:`SEARCH_DOCS` built by it in ``folder``."""
    from biohicl.search.indexing import build_index

    model = tiny_model(tiny)
    build_index(model, write_jsonl(Path("corpus.jsonl"), SEARCH_DOCS), folder, show_progress_bar=False)
    return model


def given_hub(tiny, tmp_path, monkeypatch):
    hub_base(tiny, tmp_path, monkeypatch)
    shutil.copytree(tiny["bert"], "runs/minilm")
    an_index(tiny, "indexes/pubmed")
    return {}


def given_inference_encode(tiny, tmp_path, monkeypatch):
    # the page's run folder stands for BioHiCL-MiniLM's: an adapter run
    shutil.copytree(tiny["adapter"], "runs/biohicl-minilm")
    in_hub_cache("org/tiny-bert", tiny["bert"], tmp_path, monkeypatch)  # its base, by the Hub id it records
    texts = ["insulin resistance", "heart failure in the elderly", "brain cancer cells"]
    return {"texts": texts, "huge_iterable_of_texts": (t for t in texts * 5)}


def given_corpus(tiny, tmp_path, monkeypatch):
    write_jsonl(Path("scifact/corpus.jsonl"), SEARCH_DOCS)
    return {"model": tiny_model(tiny)}


def given_index(tiny, tmp_path, monkeypatch):
    model = an_index(tiny, "index/scifact")
    # a custom hierarchy in NLM's MeshTree.txt layout: two of the index's labels under one branch
    rows = ["Tree Number\tDesc Ui\tTerm", "X01\tD003920\tSugar", "X01.100\tD003924\tSugar 2", "X02\tD006331\tHeart"]
    Path("icd10MeshTree.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {"model": model}


def given_loaded_index(tiny, tmp_path, monkeypatch):
    from biohicl.search import load_index

    an_index(tiny, "index/scifact")
    return {"index": load_index("index/scifact")}


def a_dataset(folder: str, tmp_path, monkeypatch) -> None:
    """A MeSH-pair dataset of 24 synthetic abstracts built in ``folder`` (no evaluation data to decontaminate)."""
    from biohicl.data.build import build_dataset_from_files
    from biohicl.mesh.hierarchy import MeshHierarchy

    (tmp_path / "no-data").mkdir(exist_ok=True)
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(tmp_path / "no-data"))
    docs = [{k: v for k, v in d.items() if k != "split"} for d in synthetic_documents(per_topic=6)]
    write_jsonl(Path("mine.jsonl"), docs)
    build_dataset_from_files([("auto", ["mine.jsonl"])], folder, MeshHierarchy.load(), progress=False, top_k=3)


def given_training(tiny, tmp_path, monkeypatch):
    a_dataset("runs/mesh-pairs", tmp_path, monkeypatch)
    return {"TINY_BERT": str(tiny["bert"])}


def given_training_args(tiny, tmp_path, monkeypatch):
    from biohicl.training.args import BioHiCLTrainingArguments

    a_dataset("ds", tmp_path, monkeypatch)
    args = BioHiCLTrainingArguments(
        output_dir="runs/triplet",
        dataset_path="ds",
        base_model=str(tiny["bert"]),
        max_steps=1,
        per_device_train_batch_size=4,
        max_length=16,
        report_to=[],
    )
    return {"args": args}


def given_model(tiny, tmp_path, monkeypatch):
    return {"model": tiny_model(tiny), "texts": ["insulin resistance", "heart failure", "brain cancer"]}


#: per block, what the page gives it (files in the scratch folder, names in its namespace)
GIVEN: dict[str, Callable] = {
    "README.md#1": hub_base,
    "docs/evaluation.md#2": given_model,
    "docs/hub.md#1": given_hub,
    "docs/inference.md#1": given_inference_encode,
    "docs/inference.md#2": given_model,
    "docs/inference.md#3": given_corpus,
    "docs/inference.md#4": given_index,
    "docs/inference.md#5": given_loaded_index,
    "docs/training.md#1": given_training,
    "docs/training.md#2": given_training_args,
}


def check_readme_1(ns, out):
    assert ns["queries"].shape == (1, 32) and ns["docs"].shape == (1, 32)
    np.testing.assert_allclose(np.linalg.norm(ns["queries"], axis=1), 1.0, atol=1e-5)
    assert re.fullmatch(r"\[\[ *0\.\d+\]\]\n", out)  # the [1, 1] cosine similarity


def check_metrics(ns, out):
    assert ns["scores"]["ndcg@1"] == 0.0 and ns["scores"]["recall@1"] == 0.0 and ns["scores"]["mrr@10"] == 0.5
    assert ns["scores"]["ndcg@10"] == pytest.approx(1 / np.log2(3))  # d2 at rank 2: 1 / log2(3) = 0.6309
    assert ns["from_dicts"] == ns["scores"]
    assert ns["correlation"] == pytest.approx({"spearman": 1.0, "pearson": 0.9707}, abs=1e-4)


def check_evaluate(ns, out):
    assert set(ns["record"]["summary"]) >= {"biosses/spearman"} and "| biosses" in out.lower()
    assert Path("results/minilm.png").stat().st_size > 0


def check_loading(ns, out):
    assert [hit.rank for hit in ns["hits"][0]] == list(range(1, len(SEARCH_DOCS) + 1))  # all 7 documents, ranked


def check_encode(ns, out):
    import torch

    assert isinstance(ns["emb"], torch.Tensor) and ns["emb"].shape == (3, 32)  # bf16 autocast, float32 rows
    assert ns["model"].config.kind == "merged" and ns["chunk"].shape == (15, 32)  # the stream's one chunk


def check_onnx(ns, out):
    assert ns["emb"].shape == (3, 32) and {"max_abs_diff", "min_cosine"} <= set(ns["encoder"].verification)


def check_index(ns, out):
    assert ns["manifest"].count == len(SEARCH_DOCS) and ns["manifest"].dtype == "float16"


def check_explain(ns, out):
    lines = out.splitlines()
    assert len(lines) == len(SEARCH_DOCS) + 2 and lines[0].startswith("1 ")
    assert "Diabetes Mellitus" in lines[-2]  # the packaged MeSH names
    assert "Sugar" in lines[-1]  # the custom hierarchy's names


def check_like(ns, out):
    assert sorted(hit.id for hit in ns["hits"]) == ["p2", "p3", "p4", "p5", "p6", "p7"]  # p1 itself left out
    assert "Diabetes Mellitus, Type 2" in ns["why"].format()  # p1's one label, shared by p2 and p4


def check_trained(ns, out):
    assert (Path(ns["run_dir"]) / "training_summary.json").is_file()


def check_triplet(ns, out):
    summary = json.loads((Path(ns["run_dir"]) / "training_summary.json").read_text())
    assert summary["global_step"] == 1


#: per block, assertions on its namespace and printed output (what the page shows of them)
CHECKS: dict[str, Callable] = {
    "README.md#1": check_readme_1,
    "docs/evaluation.md#1": check_metrics,
    "docs/evaluation.md#2": check_evaluate,
    "docs/hub.md#1": check_loading,
    "docs/inference.md#1": check_encode,
    "docs/inference.md#2": check_onnx,
    "docs/inference.md#3": check_index,
    "docs/inference.md#4": check_explain,
    "docs/inference.md#5": check_like,
    "docs/training.md#1": check_trained,
    "docs/training.md#2": check_triplet,
}


def substituted(block: str) -> str:
    code = BLOCKS[block]
    for old, new in SUBSTITUTIONS[block]:
        assert old in code, f"{block}: {old!r} is no longer in the block: update SUBSTITUTIONS"
        code = code.replace(old, new)
    return code


def test_every_block_is_run_or_skipped_with_a_reason():
    assert set(SUBSTITUTIONS) | set(SKIPPED) == set(BLOCKS)  # a new block gets an entry, a removed one loses it
    assert not set(SUBSTITUTIONS) & set(SKIPPED)
    assert set(GIVEN) <= set(SUBSTITUTIONS) and set(CHECKS) <= set(SUBSTITUTIONS)
    assert len(BLOCKS) >= 11


@pytest.mark.parametrize("block", sorted(SUBSTITUTIONS))
def test_doc_block_runs(block, tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = dict(GIVEN.get(block, lambda *a: {})(tiny, tmp_path, monkeypatch))
    code = substituted(block)
    capsys.readouterr()
    exec(compile(code, f"<{block}>", "exec"), namespace)
    out = capsys.readouterr().out
    if block in CHECKS:
        CHECKS[block](namespace, out)


def test_python_blocks_are_found_as_the_pages_fence_them():
    # python_snippets reads a fence opened by ```python at a line start: count those lines independently
    fences = sum(len(re.findall(r"^```python$", (REPO / p).read_text(), flags=re.M)) for p in PAGES)
    assert fences == len(BLOCKS)

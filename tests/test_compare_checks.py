"""``--compare`` gives a Δ only between records that scored the same data, split and query cap; a SentenceTransformer
is evaluated through the Encoder protocol; a mistyped BEIR folder path says so."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from biohicl.errors import ConfigError, DataError
from biohicl.evaluation.comparison import LENGTH_HINT
from biohicl.evaluation.report import markdown_table
from biohicl.evaluation.runner import evaluate_model, save_results
from biohicl.evaluation.significance import compare_records
from tests.test_evaluation import write_beir
from tests.test_significance import VocabEncoder

BASE, TUNED = VocabEncoder(["insulin", "tumor"]), VocabEncoder(["insulin", "tumor", "heart", "brain"])


def saved(record: dict, path) -> str:
    return str(save_results(record, path))


ERROR = "biohicl evaluate: error: "


def run_compare(capsys, *argv: str) -> tuple[int, str, str]:
    from biohicl.cli.main import main

    capsys.readouterr()  # what evaluating the records logged
    code = main(["evaluate", "--compare", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def two_beirs(tmp_path):
    """Two BEIR folders both named ``beir`` with the same queries and corpus, one with other judgements."""
    first = write_beir(tmp_path / "a" / "beir")
    second = write_beir(tmp_path / "b" / "beir")
    (second / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\nq3\td4\t1\n")
    return first, second


def test_records_of_other_judgements_get_no_delta(tmp_path, two_beirs, capsys):
    first, second = two_beirs
    a = saved(evaluate_model(BASE, [str(first)], model_id="base", per_item=True), tmp_path / "a.json")
    b = saved(evaluate_model(TUNED, [str(second)], model_id="tuned", per_item=True), tmp_path / "b.json")
    why = f"beir: the records scored different data (beir/qrels/test.tsv differs: {a} vs {b})"
    code, out, err = run_compare(capsys, a, b)
    assert (code, out, err.strip()) == (2, "", f"biohicl evaluate: error: {why}")
    code, out, err = run_compare(capsys, a, b, "--paired", "--rounds", "100")
    assert (code, out, err.strip()) == (2, "", f"biohicl evaluate: error: {why}")
    code, _, err = run_compare(capsys, a, b, "--labels", "x", "y", "--markdown", str(tmp_path / "t.md"))
    assert code == 2 and why in err and not (tmp_path / "t.md").exists()
    records = [json.loads(Path(p).read_text()) for p in (a, b)]
    with pytest.raises(DataError, match=r"^beir: the records scored different data \(beir/qrels/test\.tsv differs: "):
        markdown_table(records)
    with pytest.raises(DataError, match=r"^beir: the records scored different data"):
        compare_records(records[0], records[1:], rounds=100)


def test_records_of_another_split_or_query_cap_get_no_delta(tmp_path, capsys):
    folder = write_beir(tmp_path / "beir")
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "dev.tsv")  # the same judgements, another split
    test = saved(evaluate_model(BASE, [f"{folder}:test"], per_item=True), tmp_path / "test.json")
    dev = saved(evaluate_model(TUNED, [f"{folder}:dev"], per_item=True), tmp_path / "dev.json")
    for extra in ((), ("--paired", "--rounds", "100")):
        code, out, err = run_compare(capsys, test, dev, *extra)
        assert (code, out) == (
            2,
            "",
        ) and err.strip() == ERROR + f"beir: split test vs dev ({test} vs {dev})"
    one = saved(evaluate_model(BASE, [str(folder)], limit_queries=1, per_item=True), tmp_path / "one.json")
    two = saved(evaluate_model(TUNED, [str(folder)], limit_queries=2, per_item=True), tmp_path / "two.json")
    every = saved(evaluate_model(TUNED, [str(folder)], per_item=True), tmp_path / "every.json")
    code, out, err = run_compare(capsys, one, two)
    assert (code, out) == (
        2,
        "",
    ) and err.strip() == ERROR + f"beir: limit_queries 1 vs 2 ({one} vs {two})"
    code, out, err = run_compare(capsys, two, every, "--paired", "--rounds", "100")
    assert (code, out) == (
        2,
        "",
    ) and err.strip() == ERROR + f"beir: limit_queries 2 vs none ({two} vs {every})"


def test_the_same_data_read_elsewhere_or_unknown_still_compares(tmp_path, two_beirs, capsys):
    first, _ = two_beirs
    copy = shutil.copytree(first, tmp_path / "elsewhere" / "beir")  # the same files, another folder
    base = evaluate_model(BASE, [str(first)], per_item=True)
    tuned = evaluate_model(TUNED, [str(copy)], per_item=True)
    a, b = saved(base, tmp_path / "a.json"), saved(tuned, tmp_path / "b.json")
    code, out, _ = run_compare(capsys, a, b)
    delta = tuned["tasks"]["beir"]["metrics"]["ndcg@10"] - base["tasks"]["beir"]["metrics"]["ndcg@10"]
    assert code == 0 and f"| {delta:+.4f} |" in out
    code, out, _ = run_compare(capsys, a, b, "--paired", "--rounds", "100")
    assert code == 0 and f"| {100 * delta:+.2f} |" in out
    # a cap above the task's queries left it whole; an old record without data files is not refused
    capped = evaluate_model(TUNED, [str(copy)], limit_queries=50, per_item=True)
    del capped["tasks"]["beir"]["data_files"]
    code, out, _ = run_compare(capsys, a, saved(capped, tmp_path / "c.json"))
    assert code == 0 and f"| {delta:+.4f} |" in out


def test_biosses_ignores_the_query_cap(tmp_path, data_dir, capsys):
    a = saved(evaluate_model(BASE, ["biosses"], limit_queries=3, per_item=True), tmp_path / "a.json")
    b = saved(evaluate_model(TUNED, ["biosses"], per_item=True), tmp_path / "b.json")
    assert run_compare(capsys, a, b, "--paired", "--rounds", "100")[0] == 0


def test_a_mistyped_beir_folder_path_is_named_as_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spec, name in (("./nobeir:test", "./nobeir"), ("data/nobeir", "data/nobeir"), ("~/nobeir-xyz", "~/nobeir-xyz")):
        with pytest.raises(ConfigError, match=rf"^{name}: no such directory \(a BEIR folder path\)$"):
            evaluate_model(BASE, [spec])
    with pytest.raises(ConfigError, match=r"^tasks: unknown task 'scifcat' \(did you mean scifact"):
        evaluate_model(BASE, ["scifcat"])


def test_a_sentence_transformer_is_evaluated_as_biohicl_evaluates_its_folder(tmp_path, data_dir):
    import torch
    from conftest import build_tiny_bert, randomize_lora_b
    from sentence_transformers import SentenceTransformer

    from biohicl.models.model import BioHiCL

    model = BioHiCL.from_base(
        str(build_tiny_bert(tmp_path / "base")), hub_id="org/tiny-bert", max_length=64, query_prompt="query: "
    )
    model.add_lora(r=4, alpha=8, target_modules=["query", "value"], verbose=False)
    torch.manual_seed(7)
    randomize_lora_b(model, std=0.3)
    model.save_merged(tmp_path / "merged")
    folder = write_beir(tmp_path / "toy")
    tasks = [str(folder), "biosses"]
    st = SentenceTransformer(str(tmp_path / "merged"), device="cpu")
    got = evaluate_model(st, tasks, show_progress_bar=False)
    want = evaluate_model(BioHiCL.from_pretrained(tmp_path / "merged"), tasks, show_progress_bar=False)
    for task in ("toy", "biosses"):
        assert got["tasks"][task]["metrics"].keys() == want["tasks"][task]["metrics"].keys()
        for metric, value in want["tasks"][task]["metrics"].items():
            assert got["tasks"][task]["metrics"][metric] == pytest.approx(value, abs=1e-5), (task, metric)
    assert got["model"]["config"]["class"] == "SentenceTransformer" and got["model"]["config"]["max_seq_length"] == 64
    from biohicl.evaluation.encoder import SentenceTransformerEncoder

    wrapped = SentenceTransformerEncoder(st)
    texts = ["insulin resistance", "the heart"]
    np.testing.assert_allclose(wrapped.encode(texts, kind="query"), st.encode_query(texts, normalize_embeddings=True))
    np.testing.assert_allclose(wrapped.encode(texts), st.encode_document(texts, normalize_embeddings=True))
    assert not np.allclose(wrapped.encode(texts, kind="query"), wrapped.encode(texts))  # the query prompt is used
    with pytest.raises(ConfigError, match=r"^kind: 'title' is not 'query' or 'document'$"):
        wrapped.encode(texts, kind="title")


def test_a_sentence_transformer_at_another_max_length_gets_no_delta(tmp_path):
    # a SentenceTransformer's record gave its length as `max_seq_length` only, which the comparison did not read:
    # a model at its 64 tokens against its SentenceTransformer cut to 8 got a Δ, nothing refused
    from conftest import build_tiny_bert
    from sentence_transformers import SentenceTransformer

    from biohicl.models.model import BioHiCL

    BioHiCL.from_base(str(build_tiny_bert(tmp_path / "base")), hub_id="org/tiny-bert", max_length=64).save_merged(
        tmp_path / "m"
    )
    folder = write_beir(tmp_path / "toy")
    ours = evaluate_model(BioHiCL.from_pretrained(tmp_path / "m"), [str(folder)], per_item=True)
    st = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    at_64 = evaluate_model(st, [str(folder)], per_item=True)
    st.max_seq_length = 8
    at_8 = evaluate_model(st, [str(folder)], per_item=True)
    assert (at_64["settings"]["max_length"], at_8["settings"]["max_length"]) == (64, 8)
    assert (at_8["model"]["config"]["max_length"], at_8["model"]["config"]["max_seq_length"]) == (8, 8)
    assert markdown_table([ours, at_64]).count("\n") == 5  # one length: header, rule, two runs, Δ
    why = rf"^toy: max_length 64 vs 8 \(a\.json vs b\.json\); {re.escape(LENGTH_HINT)}$"
    for base in (ours, at_64):  # a BioHiCL record or another SentenceTransformer one
        with pytest.raises(DataError, match=why):
            markdown_table([base, at_8], sources=["a.json", "b.json"])
        with pytest.raises(DataError, match=why):
            compare_records(base, [at_8], sources=["a.json", "b.json"], rounds=10)
    # a record written before settings and config said `max_length`: its config's `max_seq_length` is its length
    del at_8["settings"]["max_length"], at_8["model"]["config"]["max_length"]
    with pytest.raises(DataError, match=why):
        markdown_table([ours, at_8], sources=["a.json", "b.json"])


def test_records_that_say_nothing_of_their_data_but_scored_other_counts_get_no_delta(tmp_path):
    folder = write_beir(tmp_path / "beir")
    base, tuned = (evaluate_model(encoder, [str(folder)]) for encoder in (BASE, TUNED))
    for record in (base, tuned):
        del record["tasks"]["beir"]["data_files"]  # old records: the data is unknown
    tuned["tasks"]["beir"]["num_queries"] = 2
    with pytest.raises(DataError, match=r"^beir: the records scored 3 and 2 items \(a\.json vs b\.json\)$"):
        markdown_table([base, tuned], sources=["a.json", "b.json"])
    tuned["tasks"]["beir"]["num_queries"] = 3
    assert markdown_table([base, tuned]).count("\n") == 5  # header, rule, two runs, Δ


def test_a_cap_cuts_a_task_only_below_its_full_number_of_items():
    from biohicl.evaluation.comparison import Cut, cut_by_cap

    def record(cap, tasks):
        return {"settings": {"limit_queries": cap}, "tasks": tasks}

    sha = {"s/queries.jsonl": "a"}
    at_300 = record(300, {"scifact": {"split": "test", "num_queries": 300, "data_files": sha}})
    assert cut_by_cap("scifact", at_300) == Cut(300, 300, None)  # nothing shows 300 is all: counted cut
    whole = record(None, {"scifact": {"split": "test", "num_queries": 300, "data_files": sha}})
    assert cut_by_cap("scifact", at_300, [whole]) is None
    first_50 = record(50, {"scifact": {"split": "test", "num_queries": 50, "data_files": sha}})
    assert cut_by_cap("scifact", first_50, [whole]) == Cut(50, 50, 300)
    # a witness of other data, another split or itself capped says nothing of the task's size
    for other in (
        record(None, {"scifact": {"split": "test", "num_queries": 300, "data_files": {"s/queries.jsonl": "b"}}}),
        record(None, {"scifact": {"split": "dev", "num_queries": 300}}),
        record(300, {"scifact": {"split": "test", "num_queries": 300}}),
    ):
        assert cut_by_cap("scifact", at_300, [other]) == Cut(300, 300, None)
    assert cut_by_cap("scifact", record(400, {"scifact": {"num_queries": 300}})) is None  # under the cap: all of it
    assert cut_by_cap("biosses", record(50, {"biosses": {"num_queries": 100}})) is None  # it ignores the cap
    # the agreement's cap counts documents, its items are pairs: more items than the cap is no proof of a whole task
    assert cut_by_cap("siml-agreement", record(50, {"siml-agreement": {"num_queries": 1225}})) == Cut(50, 1225, None)


def test_records_at_another_max_length_or_prompt_get_no_delta_from_compare_or_the_card(tmp_path, capsys, caplog):
    # `--compare` gave a Δ between a base scored at 256 tokens and a model at 64 while the card left the base out:
    # one rule (check_comparable's) now refuses both, where both records give the setting
    import logging

    from biohicl.hub.eval_rows import card_rows

    folder = write_beir(tmp_path / "beir")
    base = evaluate_model(BASE, [str(folder)], per_item=True, settings={"max_length": 64, "query_prompt": ""})
    tuned = evaluate_model(TUNED, [str(folder)], per_item=True, settings={"max_length": 64, "query_prompt": ""})
    scores = [r["tasks"]["beir"]["metrics"]["ndcg@10"] for r in (base, tuned)]
    assert scores[0] != scores[1]
    a, b = saved(base, tmp_path / "a.json"), saved(tuned, tmp_path / "b.json")
    code, out, _ = run_compare(capsys, a, b)  # alike: a Δ, and the base beside the model on the card
    assert code == 0 and f"| {scores[1] - scores[0]:+.4f} |" in out
    assert next(r for r in card_rows(tuned, base=base) if r.metric == "ndcg@10").base_value == scores[0]
    base["settings"]["max_length"] = 256  # the only difference
    a = saved(base, tmp_path / "a.json")
    for extra in ((), ("--paired", "--rounds", "100")):
        why = f"beir: max_length 64 vs 256 ({b} vs {a}); {LENGTH_HINT}\n"
        assert run_compare(capsys, b, a, *extra) == (2, "", ERROR + why)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="biohicl.hub.eval_rows"):
        row = next(r for r in card_rows(tuned, base=base) if r.metric == "ndcg@10")
    assert (row.value, row.base_value, row.delta) == (scores[1], None, None)
    assert [r.getMessage() for r in caplog.records] == [
        "the base's values are left out of the card where it was evaluated otherwise "
        "(beir: max_length 64 vs 256 (model vs base))"
    ]
    # a prompt the model's config gives (no settings) counts as well; a setting only one record gives is no difference
    base["settings"]["max_length"] = 64
    del base["settings"]["query_prompt"]
    base["model"]["config"] = {"query_prompt": "query: "}
    why = r"^beir: query_prompt '' vs 'query: ' \(b\.json vs a\.json\); score both with one query prompt \(evaluate "
    with pytest.raises(DataError, match=why + r"the model of b\.json again with --query_prompt 'query: '\)$"):
        markdown_table([tuned, base], sources=["b.json", "a.json"])
    del base["model"]["config"]["query_prompt"], tuned["settings"]["max_length"]
    assert markdown_table([tuned, base]).count("\n") == 5  # header, rule, two runs, Δ


def test_a_refused_prompt_names_the_option_and_value_that_score_both_alike(tmp_path, capsys):
    # a base scored without BGE's query instruction against a model registered with it was refused with no word on
    # how to score them alike (a refused max length had LENGTH_HINT)
    folder = write_beir(tmp_path / "beir")
    bge = "Represent this sentence for searching relevant passages: "
    base = evaluate_model(BASE, [str(folder)], per_item=True, settings={"query_prompt": "", "document_prompt": ""})
    tuned = evaluate_model(TUNED, [str(folder)], per_item=True, settings={"query_prompt": bge, "document_prompt": ""})
    a, b = saved(base, tmp_path / "bge.json"), saved(tuned, tmp_path / "biohicl.json")
    fix = f"score both with one query prompt (evaluate the model of {a} again with --query_prompt '{bge}')"
    for first, second in ((a, b), (b, a)):  # the file without the prompt is named, whichever comes first
        shown = " vs ".join(repr("" if name == a else bge) for name in (first, second))
        why = f"beir: query_prompt {shown} ({first} vs {second}); {fix}\n"
        assert run_compare(capsys, first, second) == (2, "", ERROR + why)
        assert run_compare(capsys, first, second, "--paired", "--rounds", "100") == (2, "", ERROR + why)
    # a document prompt, shell-quoted; two prompts: either file again with the other's
    base["settings"].update(query_prompt=bge, document_prompt="passage's text: ")
    a = saved(base, tmp_path / "bge.json")
    why = (
        f"beir: document_prompt \"passage's text: \" vs '' ({a} vs {b}); score both with one document prompt (evaluate "
        f"the model of {b} again with --document_prompt 'passage'\"'\"'s text: ')\n"
    )
    assert run_compare(capsys, a, b) == (2, "", ERROR + why)
    tuned["settings"]["document_prompt"] = "passage: "
    b = saved(tuned, tmp_path / "biohicl.json")
    why = (
        f"beir: document_prompt \"passage's text: \" vs 'passage: ' ({a} vs {b}); score both with one document prompt "
        f"(evaluate the model of {a} again with --document_prompt 'passage: ', or the model of {b} again with "
        f"--document_prompt 'passage'\"'\"'s text: ')\n"
    )
    assert run_compare(capsys, a, b) == (2, "", ERROR + why)


def test_the_task_evaluator_takes_a_sentence_transformer_with_or_without_a_cache(tmp_path):
    """TaskEvaluator (what training calls, and its cache) scores a SentenceTransformer as evaluate_model does: its
    cache key encoded the probe texts with ``kind=``, which SentenceTransformer.encode refuses."""
    from conftest import build_tiny_bert
    from sentence_transformers import SentenceTransformer

    from biohicl.evaluation.evaluator import TaskEvaluator
    from biohicl.models.model import BioHiCL

    BioHiCL.from_base(str(build_tiny_bert(tmp_path / "base")), hub_id="org/tiny-bert").save_merged(tmp_path / "m")
    st = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    want = evaluate_model(st, ["biosses"], show_progress_bar=False)["summary"]["biosses/spearman"]
    assert TaskEvaluator(["biosses"])(st)["biosses_spearman"] == pytest.approx(want, abs=1e-6)
    cached = TaskEvaluator(["biosses"], cache_dir=str(tmp_path / "cache"))
    assert cached(st)["biosses_spearman"] == pytest.approx(want, abs=1e-6)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    assert cached(st)["biosses_spearman"] == pytest.approx(want, abs=1e-6)  # read back

"""``biohicl search --config FILE`` holds the queries as the command line gives them: ``queries`` (query strings,
the positional QUERY words) and ``queries_file`` (a file of queries); the command line overrides the file, field by
field, and a value of the wrong type is one line naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SEARCH_DOCS

from biohicl.cli.main import main as cli

#: what every search of this file prints: hits as JSON, no MeSH explanation, on the CPU
OPTIONS = ["--top_k", "2", "--json", "--no_mesh", "--device", "cpu"]


@pytest.fixture(scope="module")
def index_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("search-config")
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in SEARCH_DOCS))
    argv = ["index", str(corpus), "--model", str(tiny_bert_dir), "--output", str(folder / "idx"), "--shard_size", "4"]
    assert cli([*argv, "--device", "cpu", "--no_progress"]) == 0
    return folder / "idx"


def hits(argv: list[str], capsys) -> list[tuple[str, str, float]]:
    """(query, hit id, score) of each hit ``biohicl search ...`` prints as JSON."""
    capsys.readouterr()
    assert cli(["search", *argv]) == 0, capsys.readouterr().err
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [(r["query"], r["id"], r["score"]) for r in records]


def error(argv: list[str], capsys) -> list[str]:
    capsys.readouterr()
    assert cli(["search", *argv]) == 2
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_config_holding_the_queries_gives_the_command_lines_hits(index_dir, tmp_path, capsys, suffix):
    expected = hits([str(index_dir), "statin therapy", "brain cancer", *OPTIONS], capsys)
    assert [query for query, _, _ in expected] == ["statin therapy"] * 2 + ["brain cancer"] * 2
    config = tmp_path / f"search{suffix}"
    values = {"index": str(index_dir), "queries": ["statin therapy", "brain cancer"], "top_k": 2, "json": True}
    config.write_text(json.dumps({**values, "mesh": False, "device": "cpu"}))  # JSON is YAML too
    assert hits(["--config", str(config)], capsys) == expected
    # the index on the command line, the queries in the file
    config.write_text(json.dumps({"queries": ["statin therapy", "brain cancer"]}))
    assert hits([str(index_dir), "--config", str(config), *OPTIONS], capsys) == expected


def test_one_query_may_be_given_as_a_string_and_as_repeated_options(index_dir, tmp_path, capsys):
    expected = hits([str(index_dir), "brain cancer", *OPTIONS], capsys)
    config = tmp_path / "one.yaml"
    config.write_text(f"index: {index_dir}\nqueries: brain cancer\n")  # a single value is a list of one
    assert hits(["--config", str(config), *OPTIONS], capsys) == expected
    two = hits([str(index_dir), "statin therapy", "brain cancer", *OPTIONS], capsys)
    repeated = ["--queries", "statin therapy", "--queries", "brain cancer"]
    assert hits([str(index_dir), *repeated, *OPTIONS], capsys) == two


def test_a_config_holding_the_query_files_path_gives_the_command_lines_hits(index_dir, tmp_path, capsys):
    queries = tmp_path / "q.tsv"
    queries.write_text("q1\tstatin therapy\nq2\tbrain cancer\n")
    expected = hits([str(index_dir), "--queries_file", str(queries), *OPTIONS], capsys)
    assert len(expected) == 4
    config = tmp_path / "search.yaml"
    config.write_text(f"index: {index_dir}\nqueries_file: {queries}\n")
    assert hits(["--config", str(config), *OPTIONS], capsys) == expected


def test_the_command_line_overrides_the_configs_queries(index_dir, tmp_path, capsys):
    config = tmp_path / "search.yaml"
    config.write_text(f"index: {index_dir}\nqueries: [statin therapy, obesity]\n")
    brain = hits([str(index_dir), "brain cancer", *OPTIONS], capsys)
    assert hits(["--config", str(config), "brain cancer", *OPTIONS], capsys) == brain  # the words: the index is set
    assert hits(["--config", str(config), *OPTIONS, "--queries", "brain cancer"], capsys) == brain
    config.write_text("queries: [statin therapy, obesity]\n")  # the index given as a word, then the query
    assert hits(["--config", str(config), str(index_dir), "brain cancer", *OPTIONS], capsys) == brain


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("queries: {statin: 1}\n", "queries: a mapping is not a valid str"),
        ("queries: [[statin, brain]]\n", "queries: expected single values, got a nested list"),
        ("queries: [statin, null]\n", "queries: expected single values, got None"),
        ("queries: null\n", "queries: null is not a valid str"),
        ("queries: [yes]\n", "queries: True is how YAML reads an unquoted yes/no/on/off/true/false"),
        ("queries_file: [a.txt, b.txt]\n", "queries_file: expected one value, got a list"),
        ("queries_file: {a: b}\n", "queries_file: a mapping is not a valid str"),
    ],
)
def test_a_query_value_of_the_wrong_type_is_one_line_naming_the_file_and_field(
    index_dir, tmp_path, capsys, text, message
):
    config = tmp_path / "bad.yaml"
    config.write_text(f"index: {index_dir}\n{text}")
    lines = error(["--config", str(config), *OPTIONS], capsys)
    assert len(lines) == 1 and lines[0].startswith(f"biohicl search: error: {config}: {message}"), lines


@pytest.mark.parametrize("given", [["--queries", "q.jsonl"], ["q.jsonl"], ["--queries", "./queries"], ["sub/q.txt"]])
def test_a_query_naming_a_file_is_refused_pointing_to_queries_file(index_dir, tmp_path, capsys, monkeypatch, given):
    # `--queries` was an abbreviation of --queries_file until the queries field came: then it searched the text
    # "q.jsonl" and printed its hits; a query naming an existing file (a file suffix, or a path) is refused instead
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    for name in ("q.jsonl", "queries", "sub/q.txt"):
        (tmp_path / name).write_text('{"_id": "1", "text": "statin therapy"}\n')
    name = given[-1]
    assert error([str(index_dir), *given, *OPTIONS], capsys) == [
        f"biohicl search: error: {name} is a file: give a file of queries as --queries_file {name} (QUERY words and "
        "--queries are searched as text)"
    ]


def test_a_configs_query_naming_a_file_is_refused_as_on_the_command_line(index_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "q.jsonl").write_text('{"_id": "1", "text": "statin therapy"}\n')
    (tmp_path / "search.yaml").write_text(f"index: {index_dir}\nqueries: q.jsonl\n")
    assert error(["--config", "search.yaml", *OPTIONS], capsys) == [
        "biohicl search: error: q.jsonl is a file: give a file of queries as --queries_file q.jsonl (QUERY words and "
        "--queries are searched as text)"
    ]


def test_a_query_like_a_file_name_that_names_no_file_is_searched_as_text(index_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "statins").write_text("a file named like a word\n")  # no file suffix, no path: a word
    for query in ("missing.jsonl", "statins"):
        assert [q for q, _, _ in hits([str(index_dir), "--queries", query, *OPTIONS], capsys)] == [query] * 2


def test_queries_given_both_as_words_and_as_option_are_one_line_in_words(index_dir, capsys):
    # `search IDX --queries q1 q2` said "queries: given twice (positional ['q2'] and --queries ['q1'])": two
    # different queries, printed as Python lists
    assert error([str(index_dir), "--queries", "statin therapy", "brain cancer", *OPTIONS], capsys) == [
        "biohicl search: error: queries: given as QUERY words ('brain cancer') and as --queries ('statin therapy'): "
        "give them either as QUERY words or as --queries (once per query), not both"
    ]


def test_a_number_in_a_configs_queries_is_searched_as_its_text(index_dir, tmp_path, capsys):
    config = tmp_path / "n.yaml"
    config.write_text(f"index: {index_dir}\nqueries: [42, 3.5]\n")
    expected = hits([str(index_dir), "42", "3.5", *OPTIONS], capsys)
    assert [q for q, _, _ in expected] == ["42"] * 2 + ["3.5"] * 2
    assert hits(["--config", str(config), *OPTIONS], capsys) == expected


def test_a_config_holding_both_queries_and_a_queries_file_searches_the_strings_first(index_dir, tmp_path, capsys):
    queries = tmp_path / "q.tsv"
    queries.write_text("q1\tbrain cancer\n")
    expected = hits([str(index_dir), "statin therapy", "--queries_file", str(queries), *OPTIONS], capsys)
    assert [q for q, _, _ in expected] == ["statin therapy"] * 2 + ["brain cancer"] * 2
    config = tmp_path / "both.yaml"
    config.write_text(f"index: {index_dir}\nqueries: [statin therapy]\nqueries_file: {queries}\n")
    assert hits(["--config", str(config), *OPTIONS], capsys) == expected

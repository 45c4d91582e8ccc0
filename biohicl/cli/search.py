"""``biohicl search``: cosine top-k over an index folder, with titles, scores and shared MeSH terms.

An index built with ``--compress int8|binary`` is searched through its compressed form, the candidates rescored
exactly from the float32 shards (``--backend exact`` forces the full float32 scan).

biohicl search runs/index/pubmed "insulin resistance in obesity" --top_k 10
biohicl search runs/index/pubmed --like 25429730      # documents like an indexed one, with SimL per hit
biohicl search runs/index/pubmed --queries_file queries.jsonl --json > hits.jsonl   # a batch of queries
biohicl search runs/index/icd "type 2 diabetes" --mesh_path icd10MeshTree.txt   # labels of a custom hierarchy
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict, dataclass, field

logger = logging.getLogger(__name__)

HELP = "Search an index built by `biohicl index`: top-k titles, scores and the MeSH terms the hits share."


@dataclass
class SearchArguments:
    index: str = field(metadata={"help": "Index folder written by `biohicl index` (or INDEX)."})
    top_k: int = field(default=10, metadata={"help": "Hits per query."})
    queries: list[str] = field(
        default_factory=list,
        metadata={
            "help": "A query string, as the QUERY words give it; repeatable: --queries A --queries B. In a --config "
            "file a list of strings (queries: [A, B]), which QUERY words or --queries on the command line replace. "
            "One naming a file (q.jsonl, ./queries) is refused: a file of queries is --queries_file.",
            "action": "append",
            "metavar": "TEXT",
            "argparse": {"nargs": None},  # one query per use, so `--queries Q INDEX` leaves the index folder alone
        },
    )
    like: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Indexed document id: find documents like it (its stored row is the query, no model is "
            "loaded); hits show SimL and the MeSH terms shared with the document. Repeatable: --like A --like B.",
            "action": "append",
            "metavar": "DOC_ID",
            "argparse": {"nargs": None},  # one id per use, so `--like ID INDEX` leaves the index folder alone
        },
    )
    queries_file: str | None = field(
        default=None,
        metadata={
            "help": "A file of queries, searched after any given as strings: .txt (one per line, blank lines "
            "skipped), .tsv (id<TAB>text rows, a header naming the columns optional, as `biohicl index` reads a "
            "corpus) or .jsonl (BEIR queries: `_id` and `text`, or one JSON string per line); the ids are printed "
            "with the hits (`query_id` in --json); a blank query of a .tsv or .jsonl file is refused. Other suffixes "
            "(.csv) are refused; /dev/stdin reads a pipe.",
            "metavar": "FILE",
        },
    )
    model: str | None = field(
        default=None,
        metadata={
            "help": "Model to encode the queries with.",
            # biohicl.cli.parser.DEFAULT_WORDS: what None means, shown by --help
            "default_words": "the index's model, as its manifest records",
        },
    )
    chunk_size: int = field(default=65_536, metadata={"help": "Index rows scored at a time (bounds memory)."})
    backend: str = field(
        default="auto",
        metadata={
            "help": "`auto` (the compressed form when the index has one, else exact), `exact` (chunked float32 "
            "matmul), `int8` / `binary` (compressed + exact rescoring) or `faiss` (flat index).",
            "choices": ["auto", "exact", "int8", "binary", "faiss"],
        },
    )
    candidates: int | None = field(
        default=None,
        metadata={"help": "Compressed search: rows per query rescored exactly (default 4·k int8, 10·k binary)."},
    )
    mesh: bool = field(default=True, metadata={"help": "Explain hits by their shared MeSH terms (annotated corpora)."})
    mesh_path: str | None = field(
        default=None,
        metadata={
            "help": "A MeSH release file to explain hits (shared terms, SimL) with (default: the packaged MeSH "
            "2024); give the one the dataset was built with (as biohicl train --mesh_path)."
        },
    )
    json: bool = field(
        default=False,
        metadata={
            "help": "Print the hits as JSON lines instead of a table; with the MeSH explanation (not --no_mesh) "
            "each hit also carries `shared` (its shared descriptors), `siml` and `no_siml` (why siml is null: no "
            "MeSH labels, another label kind)."
        },
    )
    device: str | None = field(default=None, metadata={"help": "cpu, cuda ... (default: cuda if available)."})

    def __post_init__(self) -> None:
        from biohicl.errors import ConfigError

        if self.top_k < 1:  # refused when parsed, before the index or the model loads
            raise ConfigError(f"--top_k: must be positive, got {self.top_k}")


def main(argv: list[str]) -> int:
    from biohicl.cli.parser import parse_command
    from biohicl.errors import ConfigError, DataError
    from biohicl.models.onnx_backend import load_inference_model
    from biohicl.search.exact import check_queries, search
    from biohicl.search.explain import explain_hits, warn_unplaced
    from biohicl.search.index import load_index

    args, _ = parse_command(
        SearchArguments,
        argv,
        prog="biohicl search",
        description=__doc__,
        positionals={
            "index": {"nargs": "?", "help": "same as --index"},
            "queries": {"nargs": "*", "metavar": "QUERY", "help": "One or more query strings (or --like DOC_ID)"},
        },
        intermixed=True,  # options before or after the queries
    )
    for query in args.queries:  # `--queries FILE` was --queries_file abbreviated before the queries field came
        if names_a_file(query):
            raise ConfigError(
                f"{query} is a file: give a file of queries as --queries_file {query} (QUERY words and --queries are "
                "searched as text)"
            )
    queries = list(args.queries)
    query_ids: list[str | None] = [None] * len(queries)
    if args.queries_file is not None:
        if args.like:
            raise ConfigError("give --queries_file or --like DOC_ID, not both")
        file_ids, file_texts = read_query_file(args.queries_file)
        query_ids += file_ids
        queries += file_texts
    if bool(queries) == bool(args.like):
        raise ConfigError("give query strings, --queries_file or --like DOC_ID, not both and not neither")
    check_queries(queries)  # a blank query fails before the model loads
    try:
        index = load_index(args.index)
    except DataError:
        check_index_folder(args.index)  # a missing path or a file is said so, not "no manifest.json"
        raise
    mesh = load_mesh(args, index)  # a missing or unreadable --mesh_path fails before the model loads
    if args.like:
        return print_like(index, args, mesh)
    if args.model is not None:
        model = load_inference_model(args.model, device=args.device)
    else:
        model = load_inference_model(index.manifest.model, index.manifest.model_revision, device=args.device)
    with warnings.catch_warnings(record=True) as caught:  # the model check's warning: one line, no source line
        warnings.simplefilter("always", UserWarning)
        if args.backend == "faiss":
            from biohicl.search.faiss_index import search as faiss_search

            results = faiss_search(model, queries, index, top_k=args.top_k)
        else:
            results = search(
                model,
                queries,
                index,
                top_k=args.top_k,
                chunk_size=args.chunk_size,
                backend=args.backend,
                candidates=args.candidates,
            )
    for warning in caught:
        logger.warning("warning: %s", warning.message)
    warned = False
    for query_id, query, hits in zip(query_ids, queries, results, strict=True):
        explanation = explain_hits(hits, mesh) if mesh is not None else None
        if explanation is not None and not warned:
            warned = warn_unplaced(explanation, mesh)
        if args.json:
            named = {"query_id": query_id} if query_id is not None else {}
            for i, hit in enumerate(hits):
                record = {**named, "query": query, **asdict(hit), **json_explanation(explanation, i)}
                print(json.dumps(record, ensure_ascii=False))
            continue
        print(f"query {query_id}: {query}" if query_id is not None else f"query: {query}")
        for hit in hits:
            title = hit.title or "(no title)"
            print(f"{hit.rank:>3}. {hit.score:.4f}  {hit.id:<12} {title}")
        if explanation is not None:
            print("    " + explanation.format().replace("\n", "\n    "))
        print()
    return 0


def names_a_file(query: str) -> bool:
    """Whether the query string ``query`` names an existing file (not a folder) by a path (a ``/``) or by a suffix of
    a file of texts or records (``.txt``, ``.tsv``, ``.jsonl``, ``.ndjson``, ``.json``, ``.csv``, gzipped too): a
    file of queries given where a query goes. A word that names no file, or a file named like a word (``statins``),
    is a query."""
    import os
    from pathlib import Path

    from biohicl.data.corpus import JSONL_SUFFIXES, TSV_SUFFIXES
    from biohicl.data.text_files import NOT_LINES_SUFFIXES

    named = (
        "/" in query
        or os.sep in query
        or query.lower().endswith((".txt", ".txt.gz", *TSV_SUFFIXES, *JSONL_SUFFIXES, *NOT_LINES_SUFFIXES))
    )
    try:
        return named and Path(query).exists() and not Path(query).is_dir()
    except (OSError, ValueError):  # a query too long for a path, or holding a NUL
        return False


def check_index_folder(path: str) -> None:
    """A one-line :class:`DataError` when ``path`` is missing or not a folder, checked when the index did not load
    (its loader's message, "no manifest.json: not a finished biohicl index", would send the user to rerun
    ``biohicl index``)."""
    from pathlib import Path

    from biohicl.errors import DataError

    folder = Path(path)
    if not folder.exists():
        raise DataError("does not exist", path)
    if folder.is_file():
        raise DataError("is a file, not an index folder", path)
    if not folder.is_dir():
        raise DataError("is not a folder", path)


def load_mesh(args: SearchArguments, index):
    """The hierarchy to explain hits with (``--mesh_path``, else the packaged MeSH 2024); None when the hits are not
    explained (``--no_mesh``, or an index without MeSH labels)."""
    from biohicl.mesh.hierarchy import MeshHierarchy

    if not (args.mesh and index.manifest is not None and index.manifest.has_mesh):
        return None
    return MeshHierarchy.load(args.mesh_path) if args.mesh_path else MeshHierarchy.load()


def read_query_file(path: str) -> tuple[list[str | None], list[str]]:
    """The ids (None in a .txt file) and texts of a queries file, read once (a pipe too); the blank lines of a .txt
    file are skipped, while a blank query of a .tsv or .jsonl file (an id with an empty text) is a one-line
    :class:`DataError` naming its file, line and id, as a file with no query is."""
    from pathlib import Path

    from biohicl.data.corpus import JSONL_SUFFIXES, TSV_SUFFIXES
    from biohicl.data.text_files import numbered_texts
    from biohicl.errors import DataError

    lines = Path(path).name.lower().endswith(TSV_SUFFIXES + JSONL_SUFFIXES)  # else a .txt file: blank lines skipped
    ids: list[str | None] = []
    texts: list[str] = []
    for line, query_id, text in numbered_texts(path):
        if not text.strip():
            if not lines:
                continue  # a .txt line: no id, and row i need not be line i (docs/cli.md)
            named = f" {query_id!r}" if query_id is not None else ""
            raise DataError(f"line {line}: query{named} is blank; give it text or remove the line", path)
        ids.append(query_id)
        texts.append(text)
    if not texts:
        raise DataError("no queries in the file", path)
    return ids, texts


def json_explanation(explanation, i: int) -> dict:
    """Hit ``i``'s explanation as --json fields: ``shared`` (its shared descriptors' names, most specific first) and
    ``siml`` (SimL to the --like document, or its mean SimL to the other annotated hits of its label kind) and
    ``no_siml`` (why ``siml`` is null: no placed label, another label kind; null beside a number); nothing when the
    hits are not explained."""
    if explanation is None:
        return {}
    why = explanation.hits[i]
    return {"shared": why.shared, "siml": why.siml, "no_siml": why.no_siml}


def print_like(index, args: SearchArguments, mesh=None) -> int:
    """``--like``: each document's hits, with SimL and the MeSH terms shared with it (``mesh``: the hierarchy, None
    when the hits are not explained)."""
    from biohicl.data.records import INDEXING
    from biohicl.search.exact import like_found
    from biohicl.search.explain import explain_hits, warn_unplaced

    rows = index.find(args.like)  # one pass over the id sidecars, for the hits and for the documents' own lines
    results = like_found(index, args.like, rows, top_k=args.top_k, chunk_size=args.chunk_size, device=args.device)
    sources = index.documents(rows.values())
    by_id = {d["id"]: d for d in sources.values()}
    warned = False
    for doc_id, hits in zip(args.like, results, strict=True):
        source = by_id[doc_id]
        kind = source.get("label_kind") or INDEXING  # SimL only to the hits of the document's label kind
        labels = source.get("mesh", [])
        explanation = explain_hits(hits, mesh, query_mesh=labels, query_kind=kind) if mesh is not None else None
        if explanation is not None and not warned:
            warned = warn_unplaced(explanation, mesh)
        if args.json:
            for i, hit in enumerate(hits):
                record = {"like": doc_id, **asdict(hit), **json_explanation(explanation, i)}
                print(json.dumps(record, ensure_ascii=False))
            continue
        print(f"like: {doc_id}  {source.get('title') or '(no title)'}")
        unlabelled = explanation is not None and not explanation.query_mesh
        if unlabelled:
            which = "MeSH labels this hierarchy places" if source.get("mesh") else "MeSH labels"
            print(f"       ({doc_id} has no {which}: no SimL to its hits)")
        for i, hit in enumerate(hits):
            print(f"{hit.rank:>3}. {hit.score:.4f}  {hit.id:<12} {hit.title or '(no title)'}")
            if explanation is not None and not unlabelled:
                why = explanation.hits[i]
                shared = ", ".join(why.shared) or "no descriptor"
                print(
                    f"       SimL {why.siml:.3f}; shares {shared}" if why.siml is not None else f"       {why.no_siml}"
                )
        print()
    return 0

"""``biohicl search``: exact cosine top-k over an index folder, with titles, scores and shared MeSH terms."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

HELP = "Search an index built by `biohicl index`: top-k titles, scores and the MeSH terms the hits share."


@dataclass
class SearchArguments:
    top_k: int = field(default=10, metadata={"help": "Hits per query."})
    model: str | None = field(
        default=None, metadata={"help": "Model to encode the query (default: the one recorded in the manifest)."}
    )
    chunk_size: int = field(default=65_536, metadata={"help": "Index rows scored at a time (bounds memory)."})
    backend: str = field(default="exact", metadata={"help": "`exact` (chunked matmul) or `faiss` (flat index)."})
    mesh: bool = field(default=True, metadata={"help": "Explain hits by their shared MeSH terms (annotated corpora)."})
    json: bool = field(default=False, metadata={"help": "Print the hits as JSON lines instead of a table."})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda ... (default: cuda if available)."})


def main(argv: list[str]) -> int:
    from transformers import HfArgumentParser

    from ..errors import ConfigError
    from ..search import explain_hits, load_index, search
    from .encode import load_inference_model

    parser = HfArgumentParser(SearchArguments, prog="biohicl search")
    parser.add_argument("index", help="Index folder written by `biohicl index`")
    parser.add_argument("queries", nargs="+", help="One or more query strings")
    args, extra = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    if args.backend not in ("exact", "faiss"):
        raise ConfigError(f"--backend: {args.backend!r} is not `exact` or `faiss`")
    index = load_index(extra.index)
    if args.model is not None:
        model = load_inference_model(args.model, device=args.device)
    else:
        model = load_inference_model(index.manifest.model, index.manifest.model_revision, device=args.device)
    if args.backend == "faiss":
        from ..search_faiss import search as faiss_search

        results = faiss_search(model, extra.queries, index, top_k=args.top_k)
    else:
        results = search(model, extra.queries, index, top_k=args.top_k, chunk_size=args.chunk_size)
    explain = args.mesh and index.manifest.has_mesh
    for query, hits in zip(extra.queries, results, strict=True):
        if args.json:
            for hit in hits:
                print(json.dumps({"query": query, **asdict(hit)}, ensure_ascii=False))
            continue
        print(f"query: {query}")
        for hit in hits:
            title = hit.title or "(no title)"
            print(f"{hit.rank:>3}. {hit.score:.4f}  {hit.id:<12} {title}")
        if explain:
            print("    " + explain_hits(hits).format().replace("\n", "\n    "))
        print()
    return 0

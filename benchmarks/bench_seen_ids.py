"""Memory of the document ids `biohicl index` keeps to refuse a repeated one: N synthetic ids through the shard
iterator, with the ids in a Python set (biohicl <= session 24) or as 8-byte digests (`biohicl.search.seen_ids`).

    python benchmarks/bench_seen_ids.py --ids 2000000 --keep digests   # or --keep set; one process per run

Prints the process's RSS before the stream and at its last shard (/proc/self/status), the peak (VmHWM), and the
bytes per id of the difference.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator


def rss_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ids", type=int, default=2_000_000)
    parser.add_argument("--shard_size", type=int, default=50_000)
    parser.add_argument("--keep", choices=["set", "digests"], default="digests")
    args = parser.parse_args()

    from biohicl.data.corpus import Document
    from biohicl.search.indexing import _shards
    from biohicl.search.seen_ids import SeenIds

    def documents() -> Iterator[Document]:
        return (Document(f"P{i:08d}", "x", record=i + 1) for i in range(args.ids))

    def set_shards(stream: Iterator[Document]) -> Iterator[list[Document]]:  # the loop before seen_ids
        chunk: list[Document] = []
        seen: set[str] = set()
        for position, doc in enumerate(stream, 1):
            if doc.id in seen:
                raise ValueError(f"document {position}: duplicate document id {doc.id!r}")
            seen.add(doc.id)
            chunk.append(doc)
            if len(chunk) == args.shard_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    before = rss_kb()
    start = time.perf_counter()
    stream = (
        set_shards(documents())
        if args.keep == "set"
        else _shards(documents(), args.shard_size, None, SeenIds(documents))
    )
    shards = after = 0
    for _ in stream:  # RSS at the last shard: the ids of all the others are held
        shards, after = shards + 1, rss_kb()
    seconds = time.perf_counter() - start
    peak = rss_kb("VmHWM")
    per_id = (after - before) * 1024 / args.ids
    print(
        f"keep={args.keep} ids={args.ids} shards={shards}: RSS {before / 1024:.0f} -> {after / 1024:.0f} MB "
        f"(peak {peak / 1024:.0f} MB), {per_id:.1f} B/id, {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()

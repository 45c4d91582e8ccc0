"""A gzipped PubMed XML export is read whatever the case of its suffix (``DESC.XML.GZ``, as some download tools
name files), as the MeSH readers read theirs: it was opened as plain XML and nothing was read."""

from __future__ import annotations

import gzip
import shutil

from biohicl.data.pubmed_xml import read_medline

EXPORT = "pubmed_exports/KerstenDoering__PubMedPortable__data__pancreatic_cancer_example__medline_00000000.xml"


def test_an_upper_case_gz_suffix_reads_the_same_records(data_dir, tmp_path):
    plain = tmp_path / "export.xml"
    shutil.copyfile(data_dir / EXPORT, plain)
    packed = tmp_path / "EXPORT.XML.GZ"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    expected = [(r.pmid, r.mesh) for r in read_medline(plain)]
    assert len(expected) > 0
    assert [(r.pmid, r.mesh) for r in read_medline(packed)] == expected


def test_auto_detection_reads_it_too(data_dir, tmp_path):
    # build-dataset's default source is auto: detect_source read the compressed bytes, knew no format, left it out
    from biohicl.data.corpus import iter_lines
    from biohicl.data.sources import detect_source

    packed = tmp_path / "EXPORT.XML.GZ"
    packed.write_bytes(gzip.compress((data_dir / EXPORT).read_bytes()))
    assert detect_source(packed) == "medline"
    unsuffixed = tmp_path / "export"  # a gzip file with no suffix: its magic bytes say so
    unsuffixed.write_bytes(packed.read_bytes())
    assert detect_source(unsuffixed) == "medline"
    lines = tmp_path / "QRELS.TSV"
    lines.write_bytes(gzip.compress(b"query-id\tcorpus-id\tscore\nq1\td1\t1\n"))
    assert [text for _, text in iter_lines(lines)] == ["query-id\tcorpus-id\tscore\n", "q1\td1\t1\n"]

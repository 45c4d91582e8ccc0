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

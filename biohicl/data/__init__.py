"""MeSH-annotated corpora (streaming readers) and the processed MeSH-pair dataset."""

from .readers import (
    READERS,
    SOURCES,
    JsonStream,
    MeshRecord,
    ReadReport,
    load_pubmedqa_test_ids,
    read_bioasq,
    read_medline,
    read_pubmedqa,
    read_pubtator,
    read_records,
    unique_records,
)

__all__ = [
    "READERS",
    "SOURCES",
    "JsonStream",
    "MeshRecord",
    "ReadReport",
    "load_pubmedqa_test_ids",
    "read_bioasq",
    "read_medline",
    "read_pubmedqa",
    "read_pubtator",
    "read_records",
    "unique_records",
]

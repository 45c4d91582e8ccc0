"""MeSH-annotated corpora and the MeSH-pair dataset, in pipeline order.

- reading: :mod:`.records` (``MeshRecord``, ``ReadReport``, the skip reasons), :mod:`.files` (opening and decoding),
  one module per format (:mod:`.bioasq`, :mod:`.pubmed_xml`, :mod:`.medline_text`, :mod:`.pubmedqa`,
  :mod:`.pubtator`, :mod:`.jsonl` (your own labelled abstracts); :mod:`.json_stream` streams the JSON ones) and
  :mod:`.sources` (format detection, the record stream of many files);
- the dataset: :mod:`.decontamination`, :mod:`.splits` (the dev split), :mod:`.mining` (top-k pairs by SimL),
  :mod:`.pairs` (documents + pairs), :mod:`.storage` (parquet on disk), :mod:`.dataset_card`, :mod:`.build` (files
  → saved dataset, the default inputs), :mod:`.documents` (a built dataset's documents, or a documents file, as
  a ``datasets.Dataset``);
- batches for training: :mod:`.collator` (tokens + the batch's SimL) and :mod:`.samplers` (batches built around
  mined pairs); these need torch and are imported on first use;
- :mod:`.corpus`: documents to index (``Document``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biohicl.data.bioasq import read_bioasq
from biohicl.data.build import build_dataset_from_files, build_default_dataset, default_inputs
from biohicl.data.decontamination import Decontaminator, Removal, normalise
from biohicl.data.documents import LABEL_COLUMNS, document_text, label_column, read_documents, split_documents
from biohicl.data.json_stream import JsonStream
from biohicl.data.jsonl import read_jsonl
from biohicl.data.medline_text import parse_mesh_heading, read_medline_text
from biohicl.data.mining import MinedPairs, mine_top_k, mine_within_groups
from biohicl.data.pairs import PairDatasetSummary, build_pair_dataset
from biohicl.data.pubmed_xml import read_medline
from biohicl.data.pubmedqa import load_pubmedqa_test_ids, read_pubmedqa
from biohicl.data.pubtator import read_pubtator
from biohicl.data.read_report import ReadReport
from biohicl.data.records import LABEL_KINDS, MeshRecord, label_kind_of
from biohicl.data.sources import READERS, SOURCES, detect_source, read_records, resolve_inputs, unique_records
from biohicl.data.splits import DevSplit, is_dev_document, pubmedqa_dev_pmids, pubmedqa_non_test_pmids
from biohicl.data.storage import load_pair_dataset, save_pair_dataset
from biohicl.lazy import lazy_dir, lazy_getattr

_LAZY = {  # torch-backed: imported when first used, so reading and building datasets does not load torch
    "BioHiCLDataCollator": "biohicl.data.collator",
    "MeshPairBatchSampler": "biohicl.data.samplers",
    "RandomBatchSampler": "biohicl.data.samplers",
    "mine_negatives": "biohicl.data.samplers",
}

if TYPE_CHECKING:
    from biohicl.data.collator import BioHiCLDataCollator
    from biohicl.data.samplers import MeshPairBatchSampler, RandomBatchSampler, mine_negatives

__all__ = [
    "LABEL_COLUMNS",
    "LABEL_KINDS",
    "READERS",
    "SOURCES",
    "BioHiCLDataCollator",
    "Decontaminator",
    "DevSplit",
    "JsonStream",
    "MeshPairBatchSampler",
    "MeshRecord",
    "MinedPairs",
    "PairDatasetSummary",
    "RandomBatchSampler",
    "ReadReport",
    "Removal",
    "build_dataset_from_files",
    "build_default_dataset",
    "build_pair_dataset",
    "default_inputs",
    "detect_source",
    "document_text",
    "is_dev_document",
    "label_column",
    "label_kind_of",
    "load_pair_dataset",
    "load_pubmedqa_test_ids",
    "mine_negatives",
    "mine_top_k",
    "mine_within_groups",
    "normalise",
    "parse_mesh_heading",
    "pubmedqa_dev_pmids",
    "pubmedqa_non_test_pmids",
    "read_bioasq",
    "read_documents",
    "read_jsonl",
    "read_medline",
    "read_medline_text",
    "read_pubmedqa",
    "read_pubtator",
    "read_records",
    "resolve_inputs",
    "save_pair_dataset",
    "split_documents",
    "unique_records",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)

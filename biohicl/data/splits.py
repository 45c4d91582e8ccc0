"""The fixed, seeded dev split used for model selection (never the PubMedQA test set, BIOSSES or a BEIR test split).

Two parts, both a pure function of PMIDs and a seed, so the dataset builder and the evaluation harness agree
without sharing state:

* **PubMedQA dev**: :data:`PUBMEDQA_DEV_SIZE` of the 500 non-test PQA-L items, drawn by a seeded permutation of
  their sorted PMIDs. They are kept out of training and become the ``pubmedqa:dev`` retrieval task (question →
  own long answer among the dev items, like the test task).
* **Held-out dev documents**: a share of every other training document, chosen by a seeded hash of its PMID
  (stable whatever the order or the other inputs), for the SimE–SimL agreement check on unseen abstracts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biohicl.errors import ConfigError

PUBMEDQA_DEV_SIZE = 250
DEV_SEED = 0
DEV_DOCUMENT_FRACTION = 0.05


def pubmedqa_dev_pmids(non_test_pmids: Iterable[str], size: int = PUBMEDQA_DEV_SIZE, seed: int = DEV_SEED) -> list[str]:
    """The PubMedQA dev PMIDs: ``size`` of ``non_test_pmids`` by a permutation of their sorted order drawn from
    ``seed``; returned sorted. Fewer than ``size`` PMIDs: all of them."""
    pmids = sorted({str(p) for p in non_test_pmids}, key=lambda p: (len(p), p))
    order = np.random.default_rng(seed).permutation(len(pmids))[: min(size, len(pmids))]
    return sorted((pmids[i] for i in order), key=lambda p: (len(p), p))


def is_dev_document(pmid: str, fraction: float = DEV_DOCUMENT_FRACTION, seed: int = DEV_SEED) -> bool:
    """Whether a document is held out as a dev document: a seeded hash of its PMID below ``fraction``."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"biohicl-dev:{seed}:{pmid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass(frozen=True)
class DevSplit:
    """The dev-split settings of a build (``build-dataset --dev_seed/--dev_fraction/--pubmedqa_dev_size``).

    ``pubmedqa_non_test`` are the PQA-L PMIDs outside the official test set that the PubMedQA dev items are drawn
    from (``None``: the non-test PubMedQA records of the build); the evaluation harness draws ``pubmedqa:dev``
    from the same 500 ids with the default size and seed.
    """

    seed: int = DEV_SEED
    fraction: float = DEV_DOCUMENT_FRACTION
    pubmedqa_size: int = PUBMEDQA_DEV_SIZE
    pubmedqa_non_test: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.fraction < 1:
            raise ConfigError(f"dev fraction must be in [0, 1), got {self.fraction}")
        if self.pubmedqa_size < 0:
            raise ConfigError(f"PubMedQA dev size must be >= 0, got {self.pubmedqa_size}")

    def pubmedqa_dev(self, fallback_non_test: Iterable[str] = ()) -> set[str]:
        """The PubMedQA dev PMIDs (from ``pubmedqa_non_test``, else from ``fallback_non_test``)."""
        pool = self.pubmedqa_non_test if self.pubmedqa_non_test is not None else fallback_non_test
        return set(pubmedqa_dev_pmids(pool, self.pubmedqa_size, self.seed)) if self.pubmedqa_size else set()

    def split_of(self, pmid: str, split: str, pubmedqa_dev: set[str]) -> str:
        """``test`` stays ``test``; a PubMedQA dev PMID or a held-out document is ``dev``; the rest ``train``."""
        if split == "test":
            return "test"
        if pmid in pubmedqa_dev or is_dev_document(pmid, self.fraction, self.seed):
            return "dev"
        return "train"

    def to_dict(self) -> dict[str, float | int]:
        return {"seed": self.seed, "fraction": self.fraction, "pubmedqa_size": self.pubmedqa_size}


def pubmedqa_non_test_pmids(pqal: str | Path, test_ids: str | Path | Iterable[str] | None = None) -> frozenset[str]:
    """The PQA-L PMIDs (keys of ``ori_pqal.json``) that are not official test items (``test_ids``: the PMIDs, or
    their ``test_ground_truth.json``, by default beside it); a file that does not exist, is not JSON or is no
    ``{pmid: item}`` object is a :class:`~biohicl.errors.DataError` naming it (a JSON error with its line and column,
    as :func:`~biohicl.data.pubmedqa.read_pmid_object` words it)."""
    from biohicl.data.pubmedqa import load_pubmedqa_test_ids, read_pmid_object

    path = Path(pqal)
    keys = set(read_pmid_object(path, "item"))  # not JSON: its line and column; JSON but no object: said so
    if test_ids is not None and not isinstance(test_ids, (str, Path)):
        return frozenset(keys - {str(t) for t in test_ids})
    test_file = Path(test_ids) if test_ids is not None else path.parent / "test_ground_truth.json"
    tests = load_pubmedqa_test_ids(test_file) if test_ids is not None or test_file.is_file() else set()
    return frozenset(keys - tests)

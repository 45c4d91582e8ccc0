"""``to_mteb()`` prompts as mteb's own SentenceTransformer wrapper does: the query/document prompt on retrieval's
sides, no prompt on a task without one (STS, classification), for a sentence-transformers folder with prompts."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_tiny_bert

from biohicl.models.model import BioHiCL

mteb = pytest.importorskip("mteb")

TEXTS = ["insulin resistance in type 2 diabetes", "the heart", "brain cancer cells in patients " * 4, "a b c"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A prompted tiny folder saved by sentence-transformers (no default prompt), as biohicl and mteb's wrapper."""
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer, models

    root = tmp_path_factory.mktemp("mteb-prompts")
    transformer = models.Transformer(str(build_tiny_bert(root / "raw")), max_seq_length=32)
    prompts = {"query": "query: ", "document": "passage: "}
    st = SentenceTransformer(
        modules=[transformer, models.Pooling(32, pooling_mode="mean"), models.Normalize()],
        device="cpu",
        prompts=prompts,
    )
    st.save(str(root / "st"))
    reference = SentenceTransformerEncoderWrapper(SentenceTransformer(str(root / "st"), device="cpu"))
    return BioHiCL.from_base(str(root / "st")).to_mteb(), reference


def _encode(encoder, task, prompt_type):
    from datasets import Dataset
    from torch.utils.data import DataLoader

    inputs = DataLoader(Dataset.from_dict({"text": TEXTS}), batch_size=2)
    meta = task.metadata
    return np.asarray(
        encoder.encode(inputs, task_metadata=meta, hf_split="test", hf_subset="default", prompt_type=prompt_type)
    )


def test_sts_gets_no_prompt_as_in_mtebs_sentence_transformers_wrapper(pair):
    from mteb.mocks.mock_tasks.sts import MockSTSTask

    ours, reference = pair
    got, expected = _encode(ours, MockSTSTask(), None), _encode(reference, MockSTSTask(), None)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(got - ours.model.encode(TEXTS, kind="document")).max() > 1e-2  # the document prompt is left off


@pytest.mark.parametrize("side", ["query", "document"])
def test_retrieval_sides_get_the_models_prompts(pair, side):
    from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask
    from mteb.types import PromptType

    ours, reference = pair
    got = _encode(ours, MockRetrievalTask(), PromptType(side))
    np.testing.assert_allclose(got, _encode(reference, MockRetrievalTask(), PromptType(side)), atol=1e-5)
    np.testing.assert_allclose(got, ours.model.encode(TEXTS, kind=side), atol=1e-6)

"""``encode`` / ``iter_encode`` arguments: each wrong one is a one-line ConfigError naming it, before any encoding or
progress bar; what is right in another spelling (a numpy batch size, a dtype's name) encodes as its plain form."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from biohicl.errors import ConfigError
from biohicl.models.model import BioHiCL

TEXTS = ["diabetes in the heart", "cancer cells of the brain", "patients and disease", "x"]


@pytest.fixture()
def tiny(tiny_bert_dir) -> BioHiCL:
    return BioHiCL.from_base(str(tiny_bert_dir), hub_id="org/tiny-bert", max_length=64)


def test_texts_that_do_not_iterate_are_one_line_before_the_progress_bar(tiny, capsys):
    # encode(5) drew an empty progress bar, then TypeError: 'int' object is not iterable
    for texts, name in ((5, "int"), (2.5, "float"), (object(), "object")):
        with pytest.raises(ConfigError, match=rf"^encode: texts is {name}, not a str or an iterable of str$"):
            tiny.encode(texts, show_progress_bar=True)
        with pytest.raises(ConfigError, match=rf"^iter_encode: texts is {name}, not a str or an iterable of str$"):
            next(tiny.iter_encode(texts, show_progress_bar=True))
    assert "Encoding" not in capsys.readouterr().err


def test_a_numpy_integer_batch_size_is_a_batch_size(tiny):
    expected = tiny.encode(TEXTS, batch_size=2)
    np.testing.assert_array_equal(tiny.encode(TEXTS, batch_size=np.int64(2)), expected)  # refused before
    np.testing.assert_array_equal(tiny.encode(TEXTS, batch_size=np.int32(3)), tiny.encode(TEXTS, batch_size=3))
    for wrong in (np.int64(0), 2.0, True, np.float64(2)):
        with pytest.raises(ConfigError, match=r"^batch_size: .* is not a positive number of texts$"):
            tiny.encode(TEXTS, batch_size=wrong)


def test_a_dtype_by_name_encodes_as_the_dtype(tiny):
    # dtype="bfloat16", which from_pretrained takes, was a TypeError from torch's autocast
    np.testing.assert_array_equal(tiny.encode(TEXTS, dtype="bfloat16"), tiny.encode(TEXTS, dtype=torch.bfloat16))
    np.testing.assert_array_equal(tiny.encode(TEXTS, dtype="float16"), tiny.encode(TEXTS, dtype=torch.float16))
    plain = tiny.encode(TEXTS)
    for same in ("float32", "auto", torch.float32, None):
        np.testing.assert_array_equal(tiny.encode(TEXTS, dtype=same), plain)
    assert np.abs(tiny.encode(TEXTS, dtype="bfloat16") - plain).max() > 1e-6  # it does autocast


def test_a_dtype_autocast_cannot_run_is_one_line_not_a_warning_and_float32(tiny):
    # torch.float64 / torch.int8 gave torch's "Disabling autocast" UserWarning and encoded float32 silently
    tiny.train()
    refused = [
        (torch.float64, r"^dtype: torch\.float64 is not one autocast runs in \(float16, bfloat16; float32 or None"),
        (torch.int8, r"^dtype: torch\.int8 is not one autocast runs in"),
        ("float64", r"^dtype: torch\.float64 is not one autocast runs in"),
        ("bf17", r"^dtype: 'bf17' is not a torch dtype \(float16, bfloat16, float32\)$"),
        (5, r"^dtype: 5 is not a torch dtype"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dtype, message in refused:
            with pytest.raises(ConfigError, match=message):
                tiny.encode(TEXTS, dtype=dtype, show_progress_bar=False)
    assert tiny.training and all(m.training for m in tiny.modules())  # refused before encode switched to eval


def test_bfloat16_on_a_gpu_without_it_is_one_line(monkeypatch):
    from biohicl.models.encoding import autocast_for

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(
        ConfigError, match=r"^dtype: bfloat16 asked for, but cuda:0 does not support it \(float16 does\)$"
    ):
        autocast_for(torch.bfloat16, torch.device("cuda:0"))
    autocast = autocast_for("float16", torch.device("cpu"))
    assert isinstance(autocast, torch.autocast) and autocast.fast_dtype == torch.float16


def test_encode_checks_its_other_arguments_before_the_texts(tiny):
    # encode(None, kind="bad") said the texts were wrong, while iter_encode and docs/inference.md put kind first
    cases = [
        ({"kind": "bad"}, r"^kind: 'bad' is not `query` or `document`$"),
        ({"batch_size": 0}, r"^batch_size: 0 is not a positive number of texts$"),
        ({"dtype": torch.float64}, r"^dtype: torch\.float64 is not one autocast runs in"),
        ({"kind": "bad", "convert_to": "x"}, r"^convert_to: 'x' is not `numpy` or `torch`$"),
    ]
    for kwargs, message in cases:
        for texts in (None, 5, ["a", None]):
            with pytest.raises(ConfigError, match=message):
                tiny.encode(texts, **kwargs)
    with pytest.raises(ConfigError, match=r"^encode: texts is NoneType"):
        tiny.encode(None)


def test_a_short_stream_draws_no_progress_bar_and_a_long_one_does_past_four_batches(tiny, capsys):
    # a stream of unknown length always drew the bar: iter_encode("abc") and encode(x for x in ["a", "b"]) too
    tiny.encode(t for t in TEXTS)
    list(tiny.iter_encode("abc"))
    list(tiny.iter_encode(TEXTS * 2, batch_size=2))  # 8 texts: four batches
    assert "Encoding" not in capsys.readouterr().err
    texts = [f"patients {i}" for i in range(12)]
    got = tiny.encode((t for t in texts), batch_size=2)  # past four batches of 2: drawn from the fifth on
    np.testing.assert_array_equal(got, tiny.encode(texts, batch_size=2, show_progress_bar=False))
    assert "Encoding: 12text" in capsys.readouterr().err
    tiny.encode(texts, batch_size=2)  # a known number past four batches: drawn, as before
    assert "Encoding: 100%" in capsys.readouterr().err
    tiny.encode((t for t in TEXTS[:1]), show_progress_bar=True)  # asked for: drawn whatever the length
    assert "Encoding: 1text" in capsys.readouterr().err


def test_concurrent_encodes_of_a_model_in_train_mode_are_all_eval_and_leave_it_training(tiny):
    # each encode saved the modes, set eval and restored them: an encode starting while another ran saved eval, the
    # first one's restore switched dropout on under the second, and the model ended in eval mode
    import threading

    texts = [f"patients {i} " * (1 + i % 7) for i in range(40)]
    reference = tiny.encode(texts, batch_size=2, show_progress_bar=False)
    tiny.train()
    tiny.backbone.embeddings.eval()  # a module's own mode is kept too
    modes = [m.training for m in tiny.modules()]
    start = threading.Barrier(8)
    out: dict[int, np.ndarray] = {}

    def run(k: int) -> None:
        start.wait()
        out[k] = np.concatenate([tiny.encode(texts, batch_size=2, show_progress_bar=False) for _ in range(3)])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k in range(8):
        np.testing.assert_allclose(out[k], np.concatenate([reference] * 3), rtol=0, atol=1e-6)
    assert [m.training for m in tiny.modules()] == modes


def test_an_encode_after_train_while_a_stream_is_paused_runs_in_eval_mode(tiny):
    # only the first encode running set eval: a paused iter_encode, then train(), then encode ran with dropout on
    texts = [f"patients {i} " * (1 + i % 5) for i in range(16)]
    reference = tiny.encode(texts, show_progress_bar=False)
    stream = tiny.iter_encode(TEXTS, chunk_size=2, show_progress_bar=False)
    next(stream)  # paused inside its eval_mode
    tiny.train()
    for _ in range(3):
        np.testing.assert_allclose(tiny.encode(texts, show_progress_bar=False), reference, rtol=0, atol=1e-6)
        np.testing.assert_allclose(next(tiny.iter_encode(texts, show_progress_bar=False)), reference, atol=1e-6)
    stream.close()


def test_a_paused_stream_resumed_after_train_encodes_its_next_chunk_in_eval_mode(tiny):
    # the stream itself set eval once, on entry: its chunks after a train() ran with dropout on
    texts = [f"patients {i} " * (1 + i % 5) for i in range(6)]
    reference = tiny.encode(texts, show_progress_bar=False)
    stream = tiny.iter_encode(texts, chunk_size=2, show_progress_bar=False)
    chunks = [next(stream)]
    tiny.train()
    chunks += list(stream)
    np.testing.assert_allclose(np.concatenate([c.numpy() for c in chunks]), reference, rtol=0, atol=1e-6)


def test_a_stream_collected_while_an_encode_holds_the_modes_lock_does_not_hang_it(tiny, tiny_bert_dir):
    # an abandoned iter_encode freed only by the cyclic collector ran its finally (which takes the modes lock) from
    # a collection inside another encode's locked block on the same thread: a plain Lock hung that thread for good
    import gc
    import threading

    from biohicl.models import encoding

    other = BioHiCL.from_base(str(tiny_bert_dir), hub_id="org/tiny-bert", max_length=64)

    class Collecting(torch.nn.Module):  # a collection while the first encode saves each module's mode
        armed = False

        @property
        def training(self) -> bool:
            if Collecting.armed:
                Collecting.armed = False
                gc.collect()
            return self.__dict__.get("_training", True)

        @training.setter
        def training(self, value: bool) -> None:
            self.__dict__["_training"] = value

    tiny.add_module("collecting", Collecting())

    class Holder:
        pass

    def run() -> None:
        holder = Holder()
        holder.me = holder  # a cycle: only the cyclic collector frees the stream
        holder.stream = other.iter_encode(TEXTS, chunk_size=2, show_progress_bar=False)
        next(holder.stream)
        del holder
        Collecting.armed = True
        out["encoded"] = tiny.encode(TEXTS, show_progress_bar=False)

    out: dict[str, np.ndarray] = {}
    other.train()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # free the lock, or every later encode would hang too
        encoding._MODES_LOCK.release()
        thread.join(20)
        pytest.fail("encode hung: the collected stream's finally waited on the lock its own thread held")
    assert not Collecting.armed  # the collection ran inside the locked block
    assert out["encoded"].shape == (len(TEXTS), tiny.embedding_dim)
    assert other.training and all(m.training for m in other.modules())  # the collected stream restored its modes
    assert other not in encoding._ENCODING and tiny not in encoding._ENCODING


def test_a_chunk_size_that_is_not_a_positive_count_is_one_line(tiny):
    # chunk_size=0 or -1 was taken silently and held every text in one chunk
    for wrong in (0, -1, 2.5):
        with pytest.raises(ConfigError, match=rf"^chunk_size: {wrong!r} is not a positive number of texts$"):
            next(tiny.iter_encode(TEXTS, chunk_size=wrong))
    chunked = np.concatenate([c.numpy() for c in tiny.iter_encode(TEXTS, chunk_size=3)])
    np.testing.assert_allclose(chunked, tiny.encode(TEXTS), atol=1e-6)

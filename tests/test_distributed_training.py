"""Training under ``torchrun`` (2 gloo processes on CPU) where the processes' micro-batches differ: one with titled
documents beside one without, a loss whose components differ by process; and the console lines of rank 0 alone.

A collective one process makes and the other does not is a hang: each process dumps its threads' stacks and exits after
135 s (``faulthandler``), so such a run fails with the stacks in its stderr, without leaving processes behind, instead
of hanging. That is just under the run's own 150 s timeout (which stops a hung run but prints no stack), and far past
the 27 s a run took on a loaded machine: a slow run is not taken for a hung one."""

from __future__ import annotations

import json
import logging

import pytest
from test_trainer import docs_file, make_values  # noqa: F401  (docs_file is a fixture)

from biohicl.cli.progress import PROGRESS_LOGGERS, show_progress
from biohicl.training.distributed import component_means
from tests.conftest import run_torchrun, synthetic_documents

#: rank r writes rank{r}.json: whether each micro-batch had titles, each loss call's loss_mse, its trainable weights'
#: digest when training ended
RECORDER = """
import faulthandler, hashlib, json, os, sys
faulthandler.dump_traceback_later(135, exit=True)
from transformers import TrainerCallback
from biohicl.losses import FilteredMSELoss
from biohicl.training import trainer as T
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.run import train_biohicl

RANK = int(os.environ["RANK"])
record = {"titled": [], "mse": []}
original = T.BioHiCLTrainer.compute_loss


def spy(self, model, inputs, *args, **kwargs):
    record["titled"].append("title_inputs" in inputs)
    return original(self, model, inputs, *args, **kwargs)


T.BioHiCLTrainer.compute_loss = spy


class Digest(TrainerCallback):
    def on_train_end(self, args, state, control, model=None, **kwargs):
        digest = hashlib.sha256()
        for _, weight in sorted(model.named_parameters()):
            if weight.requires_grad:
                digest.update(weight.detach().cpu().numpy().tobytes())
        record["weights"] = digest.hexdigest()


class KeyedLoss(FilteredMSELoss):
    \"\"\"loss_rank: the rank (0 and 1, mean 0.5); loss_extra: 0.25, on rank 1 only\"\"\"

    def forward(self, embeddings, siml, **inputs):
        mse = super().forward(embeddings, siml, **inputs)
        record["mse"].append(mse.item())
        out = {"loss_mse": mse, "loss_rank": embeddings.new_tensor(float(RANK))}
        if RANK == 1:
            out["loss_extra"] = embeddings.new_tensor(0.25)
        return out
"""

END = """
open(f"{OUT}/rank{RANK}.json", "w").write(json.dumps(record))
import torch.distributed
torch.distributed.barrier()
torch.distributed.destroy_process_group()
"""


def _run(tmp_path, values: dict, loss: str) -> tuple[list[dict], list[dict]]:
    """Train under torchrun with the recorder; (the main process's logged steps, each rank's record)."""
    script = tmp_path / "train.py"
    call = f"train_biohicl(BioHiCLTrainingArguments(**{values!r}), callbacks=[Digest()]{loss})\n"
    script.write_text(RECORDER + f"OUT = {str(tmp_path)!r}\n" + call + END, encoding="utf-8")
    proc = run_torchrun([str(script)], timeout=150)
    assert proc.returncode == 0, proc.stderr[-6000:]
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    steps = [entry for entry in state["log_history"] if "loss_mse" in entry]
    return steps, [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
def test_a_title_term_trains_when_one_process_has_titles_and_the_other_none(tiny_bert_dir, tmp_path):
    """The title and abstract forwards go through the unwrapped model: through DDP each broadcasts the buffers, a
    collective only the process with titles made (a hang). Gradients are still averaged: both ranks end equal."""
    docs = synthetic_documents(per_topic=6)
    for doc in docs[6:]:  # the first topic's 6 documents keep their title (MEDLINE beside PubMedQA's untitled)
        doc["title"] = ""
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    values = make_values(tiny_bert_dir, path, tmp_path / "run", max_steps=4, per_device_train_batch_size=4,
                         title_weight=0.5)  # fmt: skip
    steps, ranks = _run(tmp_path, values, "")
    # the case at issue happened: at some step one process's micro-batch had titles and the other's none
    assert any(a != b for a, b in zip(ranks[0]["titled"], ranks[1]["titled"], strict=True)), ranks
    assert len(steps) == 4 and any(step.get("loss_title", 0) > 0 for step in steps)
    assert ranks[0]["weights"] == ranks[1]["weights"]


@pytest.mark.slow
def test_components_only_some_processes_give_are_logged_over_those_processes(tiny_bert_dir, docs_file, tmp_path):  # noqa: F811
    """The processes' component names are gathered and reduced as one union: a name missing on a process counts as
    absent there (its mean is over the processes that gave it), and no process reduces a list the other orders
    differently (rank 1's extra name shifted rank 0's means, then the run hung)."""
    values = make_values(tiny_bert_dir, docs_file, tmp_path / "run", max_steps=2, per_device_train_batch_size=4)
    steps, ranks = _run(tmp_path, values, ", loss=KeyedLoss()")
    assert len(steps) == 2
    for step, mse0, mse1 in zip(steps, ranks[0]["mse"], ranks[1]["mse"], strict=True):
        assert step["loss_mse"] == pytest.approx((mse0 + mse1) / 2, rel=1e-6)
        assert step["loss_rank"] == 0.5  # (0 + 1) / 2
        assert step["loss_extra"] == 0.25  # rank 1's alone, not (0 + 0.25) / 2
        assert 0 <= step["positive_pairs"] <= 1


def test_one_process_means_are_the_sums_over_the_steps():
    import torch

    sums = {"loss_a": torch.tensor(1.5), "positive_pairs": torch.tensor(0.75)}
    assert component_means(sums, {"loss_a": 3, "positive_pairs": 3}) == {"loss_a": 0.5, "positive_pairs": 0.25}


@pytest.fixture
def restored_levels():
    names = ("biohicl", *PROGRESS_LOGGERS)
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("variable", ["RANK", "LOCAL_RANK"])
def test_a_launched_process_of_rank_above_0_shows_only_errors(monkeypatch, capsys, caplog, restored_levels, variable):
    """Rank 0 shows the library's lines; the other ranks' copies of them, and of its warnings, are left out, also of
    a module outside the progress loggers (whose warnings Python's last-resort handler prints): no handler gets them."""
    messages = [
        ("biohicl.training.args", logging.INFO, "launched processes and no accelerator"),  # a progress logger's
        ("biohicl.training.trainer", logging.WARNING, "model selection: no evaluation beat step 0"),
        ("biohicl.data.decontamination", logging.WARNING, "decontamination: no corpus here"),
        ("biohicl.training.trainer", logging.ERROR, "an error"),
    ]
    console, records = {}, {}
    monkeypatch.setenv("WORLD_SIZE", "2")  # launched: a rank without it is a lone process (test_progress_loggers)
    for rank in ("1", "0"):
        monkeypatch.setenv(variable, rank)
        show_progress()
        caplog.clear()
        for name, level, message in messages:
            logging.getLogger(name).log(level, message)
        captured = capsys.readouterr()
        console[rank] = captured.out + captured.err
        records[rank] = [record.getMessage() for record in caplog.records]
    assert console["1"] == "an error\n" and records["1"] == ["an error"]
    assert records["0"] == [message for _, _, message in messages]
    training = [message for name, _, message in messages if name.startswith("biohicl.training")]
    assert console["0"] == "".join(message + "\n" for message in training)


def test_a_torchrun_past_its_timeout_is_killed_with_its_workers(tmp_path):
    """A hung run must not outlive its test: on a timeout ``run_torchrun`` stops torchrun and both workers."""
    import subprocess
    import time

    script = tmp_path / "sleeper.py"
    script.write_text(
        "import os, pathlib, time\n"
        f"pathlib.Path({str(tmp_path)!r}, 'pid' + os.environ['RANK']).write_text(str(os.getpid()))\n"
        "time.sleep(120)\n",
        encoding="utf-8",
    )
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):  # 30 s: torchrun started both workers in 2.6 s at a load of 4-5
        run_torchrun([str(script)], timeout=30)
    finished = time.monotonic()
    pids = [int((tmp_path / f"pid{rank}").read_text()) for rank in (0, 1)]  # both workers had started
    alive = [pid for pid in pids if _running(pid)]
    assert not alive, f"workers {alive} outlived the timeout"
    assert finished - started < 60  # stopped (a second after the timeout), not left to end their 120 s sleep


def _running(pid: int) -> bool:
    import os

    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")

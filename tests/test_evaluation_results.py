"""Results-record keys (one spelling, shared by the harness, the study and its report), PNG saving, progress lines."""

from __future__ import annotations

import logging

from biohicl.cli.progress import PROGRESS_LOGGERS, ConsoleHandler, show_progress
from biohicl.evaluation.plots import pyplot, save_png
from biohicl.evaluation.report import summary_label
from biohicl.evaluation.results import TaskResult, record_key, split_summary_key, summary_key


def test_summary_keys_round_trip_and_label():
    assert summary_key("biosses", "spearman") == "biosses/spearman"
    assert split_summary_key("pubmedqa-dev/recall@1") == ("pubmedqa-dev", "recall@1")
    assert split_summary_key(summary_key("scifact", "ndcg@10")) == ("scifact", "ndcg@10")
    assert summary_label("scifact/ndcg@10") == "scifact nDCG@10"
    assert summary_label("pubmedqa/recall@1") == "pubmedqa R@1"
    assert record_key("pubmedqa-context", "dev") == "pubmedqa-context-dev" and record_key("biosses", "dev") == "biosses"
    result = TaskResult(task="biosses", split="all", main_metric="spearman", metrics={"spearman": 0.8}, num_queries=2)
    assert result.to_dict()["metrics"] == {"spearman": 0.8} and result.to_dict()["num_documents"] == 0


def test_save_png_writes_atomically_into_new_folders(tmp_path):
    plt = pyplot()
    before = plt.get_fignums()  # another test may have left a figure open: compare, do not assume none
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert fig.number in plt.get_fignums()
    out = save_png(fig, tmp_path / "new" / "plot.png")
    assert out.read_bytes()[:4] == b"\x89PNG" and [p.name for p in out.parent.iterdir()] == ["plot.png"]
    assert plt.get_fignums() == before  # closed


def test_progress_lines_go_to_stdout_and_warnings_to_stderr(capsys):
    log = logging.getLogger("biohicl.study.execute")
    try:
        show_progress()
        show_progress()  # idempotent: one handler per logger
        for name in PROGRESS_LOGGERS:
            assert sum(isinstance(h, ConsoleHandler) for h in logging.getLogger(name).handlers) == 1
        log.info("[1/2] tiny/base: done in %.0f s (%s)", 3.2, "biosses/spearman=0.8000")
        log.warning("tiny/full/seed0: no model card written")
        captured = capsys.readouterr()
        assert captured.out == "[1/2] tiny/base: done in 3 s (biosses/spearman=0.8000)\n"
        assert captured.err == "tiny/full/seed0: no model card written\n"
    finally:
        for name in PROGRESS_LOGGERS:
            logger = logging.getLogger(name)
            for handler in [h for h in logger.handlers if isinstance(h, ConsoleHandler)]:
                logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)

"""``scripts/study_from_logs.py``: a study's table rebuilt from its workers' ``done in`` lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_script

from biohicl.errors import ConfigError


@pytest.fixture(scope="module")
def study_from_logs():
    return load_script("study_from_logs")


def _line(i: int, run: str, spearman: float, r1: float) -> str:
    metrics = f"biosses/spearman={spearman:.4f}, biosses/pearson=0.5000, pubmedqa/recall@1={r1:.4f}"
    return f"[{i}/4] tiny/{run}: done in 12 s ({metrics})"


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(
        f"output_dir: {tmp_path / 'lost'}\nmodels:\n  - name: tiny\n    model: org/tiny\n"
        "variants:\n  full: {}\n  no_mse: {use_mse: false}\n  no_ancestors: {use_ancestors: false}\n"
        "seeds: [0, 1]\nseeds_per_variant:\n  no_mse: [0]\n  no_ancestors: [0]\ntasks: [biosses, pubmedqa]\n",
        encoding="utf-8",
    )
    return path


def test_table_from_logs_matches_a_hand_computation(tmp_path, study_from_logs):
    logs = tmp_path / "w1.log", tmp_path / "w2.log"
    logs[0].write_text("\n".join([
        "Loading weights: 100%|██████████| 39/39",
        _line(1, "base", 0.8000, 0.8500),
        _line(2, "full/seed0", 0.8100, 0.8600),
        "[3/4] tiny/full/seed1: another worker is on it, skipped",
    ]) + "\n", encoding="utf-8")  # fmt: skip
    logs[1].write_text(
        "\n".join([_line(3, "full/seed1", 0.8300, 0.8400), _line(4, "no_mse/seed0", 0.7900, 0.8500),
                   _line(1, "base", 0.8000, 0.8500)]) + "\n",  # the same run seen by two workers, agreeing
        encoding="utf-8",
    )  # fmt: skip
    out = tmp_path / "table"
    assert study_from_logs.main([*map(str, logs), "--config", str(_config(tmp_path)), "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    rows = results["models"]["tiny"]["rows"]
    assert rows["full"]["mean"]["biosses/spearman"] == pytest.approx((0.81 + 0.83) / 2)
    assert rows["full"]["std"]["biosses/spearman"] == pytest.approx(0.02 / 2**0.5)
    assert rows["full"]["vs_base"]["pubmedqa/recall@1"]["delta"] == pytest.approx(0.0)
    assert rows["no_mse"]["n"] == 1 and "no_ancestors" not in rows
    assert results["missing"] == ["tiny/no_ancestors/seed0"]
    assert results["source"]["runs"]["tiny/full/seed1"] == "w2.log:1"
    assert "not kept" in results["models"]["tiny"]["best_full_run"]["run_dir"]
    table = (out / "results.md").read_text()
    assert "| full | 2 | 82.00 ± 1.41 (+2.00" in table
    assert (out / "tiny_bars.png").read_bytes()[:4] == b"\x89PNG"


def test_two_workers_disagreeing_on_a_run_name_the_line(tmp_path, study_from_logs):
    log = tmp_path / "w.log"
    log.write_text(_line(1, "base", 0.8, 0.85) + "\n" + _line(1, "base", 0.7, 0.85) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"w.log, line 2: base disagrees with w.log:1"):
        study_from_logs.parse_logs([log])


def test_dataset_counts_fall_back_to_the_committed_results_json(tmp_path, study_from_logs, capsys):
    log = tmp_path / "w.log"
    log.write_text(_line(1, "base", 0.8, 0.85) + "\n" + _line(2, "full/seed0", 0.81, 0.86) + "\n", encoding="utf-8")
    out = tmp_path / "table"
    out.mkdir()
    dataset = {"documents": 2094, "pairs": 20940, "top_k": 10}
    (out / "results.json").write_text(json.dumps({"dataset": dataset}), encoding="utf-8")
    assert study_from_logs.main([str(log), "--config", str(_config(tmp_path)), "--output", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["dataset"] == dataset
    assert "dataset counts from the existing" in capsys.readouterr().out

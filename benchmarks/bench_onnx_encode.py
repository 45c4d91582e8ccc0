#!/usr/bin/env python
"""CPU encode throughput: biohicl's ONNX Runtime backend (fp32, int8) vs sentence-transformers (torch and ONNX).

Same model folder, same texts (SciFact documents), same batch size and threads. The in-process sides alternate
(ST torch, biohicl torch, biohicl onnx, biohicl onnx-int8, ...) so load from other processes hits them alike;
sentence-transformers' own ONNX backend (``SentenceTransformer(folder, backend="onnx")``) runs in a subprocess
between rounds, because its exporter (optimum-onnx) pins ``transformers<4.58``: point ``--st-onnx-path`` at a
folder with those packages (see docs/benchmarks.md for the exact ``pip install --target`` line); without it that
column is skipped. The best round of each side is reported, and the embeddings are compared (max |Δ|).

    python benchmarks/bench_onnx_encode.py --texts 256 --repeats 2 --st-onnx-path st_onnx
    python benchmarks/bench_onnx_encode.py --results eval-torch.json eval-onnx-int8.json   # quality deltas only
    python benchmarks/bench_onnx_encode.py --tiny        # a tiny random BERT, seconds (tests the script on CI)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from biohicl.models.config import DEFAULT_BASE_MODEL

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ST_ONNX_SNIPPET = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np, torch
    args = json.loads(sys.argv[1])
    torch.set_num_threads(args["threads"])
    from sentence_transformers import SentenceTransformer
    texts = json.load(open(args["texts"]))
    model = SentenceTransformer(args["folder"], backend="onnx", device="cpu",
                                model_kwargs={"provider": "CPUExecutionProvider"})
    model.max_seq_length = args["max_length"]
    model.encode(texts[: args["batch_size"]], batch_size=args["batch_size"])  # warm-up
    times = []
    for _ in range(args["rounds"]):
        start = time.perf_counter()
        emb = model.encode(texts, batch_size=args["batch_size"], normalize_embeddings=True)
        times.append(time.perf_counter() - start)
    np.save(args["out"], emb)
    print(json.dumps({"times": times}))
    """
)


def run_st_onnx(overlay: str, folder: str, texts_file: str, args, out: str, rounds: int) -> list[float] | None:
    env = dict(os.environ, PYTHONPATH=overlay + os.pathsep + os.environ.get("PYTHONPATH", ""))
    payload = {
        "folder": folder,
        "texts": texts_file,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "max_length": args.max_length,
        "rounds": rounds,
        "out": out,
    }
    result = subprocess.run(
        [sys.executable, "-c", ST_ONNX_SNIPPET, json.dumps(payload)], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        print(f"  (sentence-transformers ONNX failed: {result.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])["times"]


def quality(files: list[str]) -> None:
    """BIOSSES Spearman and SciFact nDCG@10 of `biohicl evaluate` results files, as deltas to the first."""
    records = [json.loads(Path(f).read_text()) for f in files]

    def metric(record: dict, task: str, name: str) -> float | None:
        for key, value in record.get("tasks", record).items():
            if key.startswith(task) and isinstance(value, dict):
                metrics = value.get("metrics", value)
                if name in metrics:
                    return float(metrics[name])
        return None

    base = records[0]
    print("[quality] deltas to " + Path(files[0]).name)
    for file, record in zip(files, records, strict=True):
        backend = record.get("settings", {}).get("backend", "?")
        parts = []
        for task, name in (("biosses", "spearman"), ("scifact", "ndcg@10")):
            value, reference = metric(record, task, name), metric(base, task, name)
            if value is not None and reference is not None:
                parts.append(f"{task} {name} {value:.4f} ({value - reference:+.4f})")
        print(f"  {Path(file).name:<28} backend {backend:<10} " + "; ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument(
        "--texts",
        type=int,
        default=None,
        help="SciFact documents to encode (default 256; with --results and no --texts, no encoding is run)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--st-onnx-path", default=None, help="PYTHONPATH overlay with ST + optimum-onnx (see doc)")
    parser.add_argument(
        "--results",
        nargs="*",
        default=[],
        help="`biohicl evaluate` JSONs: print quality deltas; given alone (no --texts/--tiny) only these are printed",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny random BERT and 16 short texts (script check)")
    args = parser.parse_args()
    if args.results and not args.texts and not args.tiny:  # quality-only: --results alone (or --texts 0)
        return quality(args.results)
    if args.texts is None:
        args.texts = 256

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from biohicl.models.model import BioHiCL
    from biohicl.models.onnx_backend import load_onnx_encoder

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    if args.tiny:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from conftest import build_tiny_bert

        folder = str(build_tiny_bert(work / "tiny"))
        BioHiCL.from_base(folder).save_merged(work / "tiny-merged")
        folder = str(work / "tiny-merged")
        texts = [f"cancer cells in the heart of patients {i} " * (1 + i % 5) for i in range(16)]
        args.texts, args.repeats = len(texts), 1
    else:
        from biohicl.evaluation.retrieval import load_beir
        from biohicl.models.resolver import resolve_base
        from biohicl.settings import data_path

        folder = args.model or str(resolve_base(DEFAULT_BASE_MODEL))
        texts = list(load_beir(data_path("scifact"), "train").corpus.values())[: args.texts]
    ours = BioHiCL.from_pretrained(folder, merge=True).eval()
    ours.config.max_length = min(ours.config.max_length, args.max_length)
    st = SentenceTransformer(folder, device="cpu")
    st.max_seq_length = ours.config.max_length
    args.max_length = ours.config.max_length
    start = time.perf_counter()
    onnx = load_onnx_encoder(ours, cache_dir=work / "onnx", threads=args.threads)
    export_s = time.perf_counter() - start
    start = time.perf_counter()
    int8 = load_onnx_encoder(ours, "int8", cache_dir=work / "onnx", threads=args.threads)
    quantize_s = time.perf_counter() - start
    tokens = sum(min(len(ours.tokenizer(t)["input_ids"]), ours.config.max_length) for t in texts)
    print(
        f"# bench_onnx_encode.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load avg "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"model {ours.config.base_model}, {len(texts)} SciFact documents, {tokens / len(texts):.0f} tokens/text "
        f"(max {ours.config.max_length}), batch {args.batch_size}, {args.threads} threads"
    )
    print(
        f"export + check {export_s:.1f} s (max |Δ| {onnx.verification['max_abs_diff']:.1e}); int8 quantise + "
        f"check {quantize_s:.1f} s (max |Δ| {int8.verification['max_abs_diff']:.1e}, min cosine "
        f"{int8.verification['min_cosine']:.4f})"
    )

    sides = {
        "sentence-transformers torch": lambda: st.encode(
            texts, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False
        ),
        "biohicl torch": lambda: ours.encode(texts, batch_size=args.batch_size, show_progress_bar=False),
        "biohicl onnx fp32": lambda: onnx.encode(texts, batch_size=args.batch_size, show_progress_bar=False),
        "biohicl onnx int8": lambda: int8.encode(texts, batch_size=args.batch_size, show_progress_bar=False),
    }
    warm = texts[: args.batch_size]
    st.encode(warm, batch_size=args.batch_size)  # warm-up: allocators, tokenizer caches, ORT kernels
    for encoder in (ours, onnx, int8):
        encoder.encode(warm, batch_size=args.batch_size, show_progress_bar=False)
    times: dict[str, list[float]] = {name: [] for name in sides}
    outputs: dict[str, np.ndarray] = {}
    overlay = args.st_onnx_path
    st_folder = None
    if overlay:
        st_folder = str(work / "st-onnx-model")  # ST exports into memory; a copy keeps the package folder clean
        shutil.copytree(folder, st_folder)
        texts_file = str(work / "texts.json")
        Path(texts_file).write_text(json.dumps(texts))
        times["sentence-transformers onnx"] = []
    names = list(sides)
    for round_number in range(args.repeats):
        shift = round_number % len(names)  # rotate the order: no side always runs first after the subprocess
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            outputs[name] = np.asarray(sides[name]())
            times[name].append(time.perf_counter() - start)
        if overlay:
            got = run_st_onnx(overlay, st_folder, texts_file, args, str(work / "st-onnx.npy"), 1)
            if got is None:
                times.pop("sentence-transformers onnx")
                overlay = None
            else:
                times["sentence-transformers onnx"].extend(got)
                outputs["sentence-transformers onnx"] = np.load(work / "st-onnx.npy")
    reference = outputs["sentence-transformers torch"]
    best = {name: min(t) for name, t in times.items() if t}
    for name, seconds in best.items():
        diff = float(np.abs(outputs[name] - reference).max())
        cosine = float((outputs[name] * reference).sum(1).min())
        print(
            f"  {name:<28} {seconds:8.2f} s  {len(texts) / seconds:7.1f} texts/s   max |Δ| to ST torch {diff:.1e}, "
            f"min cosine {cosine:.5f}   (rounds: {', '.join(f'{t:.2f}' for t in times[name])})"
        )
    base = best["sentence-transformers torch"]
    for name in ("biohicl onnx int8", "biohicl onnx fp32", "biohicl torch"):
        line = f"ratio {name} / ST torch throughput: {base / best[name]:.2f}×"
        if "sentence-transformers onnx" in best:
            line += f"; / ST onnx: {best['sentence-transformers onnx'] / best[name]:.2f}×"
        line += f"; / biohicl torch (same fp32 GEMMs as ST torch): {best['biohicl torch'] / best[name]:.2f}×"
        print(line)
    per_round = [a / b for a, b in zip(times["sentence-transformers torch"], times["biohicl onnx int8"], strict=True)]
    print(f"per-round ratio int8 / ST torch: {', '.join(f'{r:.2f}' for r in per_round)}")
    if "sentence-transformers onnx" in best:
        print(f"ratio ST onnx / ST torch throughput: {base / best['sentence-transformers onnx']:.2f}×")
    if args.results:
        quality(args.results)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

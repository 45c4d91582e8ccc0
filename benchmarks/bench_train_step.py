"""One BioHiCL training step (SimL collator + L_mse + λ·L_con) vs. a plain in-batch InfoNCE step, same encoder/batch.

Both steps tokenize the same documents, run forward + backward through the same LoRA-wrapped encoder and take an
AdamW step; BioHiCL additionally builds the batch's SimL matrix from MeSH and computes its two losses. Steps are
interleaved (A B A B ...) so machine load hits both alike; the ratio of medians is printed (target ≤ 1.05×).
Peak memory of one step at batch 64 × 256 tokens (target ≤ 4 GiB) is measured in a fresh subprocess each
(peak RSS on CPU, ``torch.cuda.max_memory_allocated`` on a GPU), with and without activation checkpointing.

    python benchmarks/bench_train_step.py                       # ratio at 32 × 256, memory at 64 × 256
    python benchmarks/bench_train_step.py --batch-size 16 --max-length 128 --steps 3 --skip-memory
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from biohicl.data.collator import BioHiCLDataCollator
from biohicl.losses import BioHiCLLoss
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.models.config import DEFAULT_BASE_MODEL
from biohicl.models.model import BioHiCL

MODEL = DEFAULT_BASE_MODEL
SENTENCE = (
    "Patients with type 2 diabetes mellitus and chronic kidney disease were randomised to receive the drug or "
    "placebo, and the incidence of myocardial infarction, heart failure and stroke was recorded over two years. "
)


def make_documents(n: int, mesh: MeshHierarchy, seed: int = 0) -> list[dict]:
    """``n`` documents of ≥ 256 tokens with 8 real MeSH descriptors each, drawn from 3 branches so pairs vary."""
    rng = random.Random(seed)
    branches = {}
    for ui, trees in mesh.trees.items():
        for tn in trees:
            branches.setdefault(tn[:3], []).append(ui)
    pools = [sorted(set(branches[b])) for b in ("C14", "C18", "C04", "C10", "D27", "E01")]
    docs = []
    for i in range(n):
        chosen = rng.sample(pools, 2)
        labels = rng.sample(chosen[0], 5) + rng.sample(chosen[1], 3)
        docs.append({"text": f"Study {i}. " + SENTENCE * 8, "labels": labels})
    return docs


def infonce(embeddings: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Plain in-batch InfoNCE: row i of the first half is paired with row i of the second half."""
    half = embeddings.shape[0] // 2
    anchors, positives = embeddings[:half].float(), embeddings[half : 2 * half].float()
    logits = anchors @ positives.T / temperature
    return F.cross_entropy(logits, torch.arange(half, device=logits.device))


def build(max_length: int):
    torch.manual_seed(0)
    model = BioHiCL.from_base(MODEL, max_length=max_length)
    model.add_lora(r=8, alpha=16, dropout=0.1, verbose=False)
    model.train()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    return model, optimizer, device


def step_biohicl(model, optimizer, collator, loss_fn, docs, device) -> None:
    batch = {k: v.to(device) for k, v in collator(docs).items()}
    siml = batch.pop("siml")
    loss = loss_fn(model(**batch), siml)["loss"]
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def step_infonce(model, optimizer, docs, device) -> None:
    batch = {k: v.to(device) for k, v in model.tokenize([d["text"] for d in docs]).items()}
    loss = infonce(model(**batch))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def time_steps(batch_size: int, max_length: int, steps: int) -> dict:
    mesh = MeshHierarchy.load()
    docs = make_documents(batch_size, mesh)
    model, optimizer, device = build(max_length)
    collator = BioHiCLDataCollator(tokenize=model.tokenize, mesh=mesh)
    loss_fn = BioHiCLLoss()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed(fn) -> float:
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - start

    run_b = lambda: step_biohicl(model, optimizer, collator, loss_fn, docs, device)  # noqa: E731
    run_i = lambda: step_infonce(model, optimizer, docs, device)  # noqa: E731
    run_b(), run_i()  # warm-up
    biohicl, plain = [], []
    for _ in range(steps):
        biohicl.append(timed(run_b))
        plain.append(timed(run_i))
    # the BioHiCL-only extra work on its own: SimL matrix + the two losses (no encoder)
    emb = torch.nn.functional.normalize(torch.randn(batch_size, 384), dim=-1)
    extra = timed(lambda: loss_fn(emb, mesh.similarity_matrix([d["labels"] for d in docs])))
    return {
        "device": device,
        "batch_size": batch_size,
        "max_length": max_length,
        "threads": torch.get_num_threads(),
        "biohicl_step_s": statistics.median(biohicl),
        "infonce_step_s": statistics.median(plain),
        "ratio": statistics.median(biohicl) / statistics.median(plain),
        "siml_and_loss_s": extra,
        "all_biohicl_s": biohicl,
        "all_infonce_s": plain,
    }


def peak_rss_gib() -> float:
    """Peak resident set size of this process (VmHWM: reset at exec, unlike ``ru_maxrss`` which a child inherits)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20  # kB → GiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def peak_memory(batch_size: int, max_length: int, kind: str, checkpointing: bool) -> dict:
    """One step in this process; returns peak memory (call in a fresh subprocess)."""
    mesh = MeshHierarchy.load()
    docs = make_documents(batch_size, mesh)
    model, optimizer, device = build(max_length)
    if checkpointing:
        model.gradient_checkpointing_enable()
    before = peak_rss_gib()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if kind == "biohicl":
        step_biohicl(model, optimizer, BioHiCLDataCollator(model.tokenize, mesh), BioHiCLLoss(), docs, device)
    else:
        step_infonce(model, optimizer, docs, device)
    peak = peak_rss_gib()
    out = {"kind": kind, "checkpointing": checkpointing, "peak_rss_gib": peak, "rss_before_step_gib": before}
    if device == "cuda":
        out["cuda_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--memory-batch-size", type=int, default=64)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--_memory", nargs=2, metavar=("KIND", "CHECKPOINTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._memory:
        kind, ckpt = args._memory
        print(json.dumps(peak_memory(args.memory_batch_size, args.max_length, kind, ckpt == "1")))
        return

    if args.skip_timing:
        return memory_report(args)
    timing = time_steps(args.batch_size, args.max_length, args.steps)
    print(f"## training step, {MODEL}, LoRA r=8, {timing['device']}, {timing['threads']} threads")
    print(f"batch {timing['batch_size']} × {timing['max_length']} tokens, median of {args.steps} interleaved steps")
    print(f"  BioHiCL (SimL collator + L_mse + 0.1·L_con): {timing['biohicl_step_s']:.3f} s/step")
    print(f"  plain in-batch InfoNCE:                      {timing['infonce_step_s']:.3f} s/step")
    print(f"  ratio BioHiCL / InfoNCE: {timing['ratio']:.3f}×  (target ≤ 1.05×)")
    print(f"  SimL matrix + both losses alone: {1000 * timing['siml_and_loss_s']:.1f} ms")
    raw_b = ", ".join(f"{t:.2f}" for t in timing["all_biohicl_s"])
    raw_i = ", ".join(f"{t:.2f}" for t in timing["all_infonce_s"])
    print(f"  per step (s): BioHiCL {raw_b}; InfoNCE {raw_i}")
    if not args.skip_memory:
        memory_report(args)


def memory_report(args: argparse.Namespace) -> None:
    print(f"peak memory, one step at batch {args.memory_batch_size} × {args.max_length} tokens (fresh process each):")
    for kind in ("biohicl", "infonce"):
        for ckpt in ("0", "1"):
            cmd = [
                sys.executable,
                __file__,
                "--_memory",
                kind,
                ckpt,
                "--memory-batch-size",
                str(args.memory_batch_size),
                "--max-length",
                str(args.max_length),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), check=True)
            record = json.loads(out.stdout.strip().splitlines()[-1])
            gpu = f", CUDA peak {record['cuda_peak_gib']:.2f} GiB" if "cuda_peak_gib" in record else ""
            print(
                f"  {kind:8s} activation checkpointing={'on ' if ckpt == '1' else 'off'}: peak RSS "
                f"{record['peak_rss_gib']:.2f} GiB (model loaded: {record['rss_before_step_gib']:.2f} GiB){gpu}"
                f"  (target ≤ 4 GiB)"
            )


if __name__ == "__main__":
    main()

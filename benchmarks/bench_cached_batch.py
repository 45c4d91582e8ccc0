"""Gradient caching (``--mini_batch_size``): what one training step saves for backward, and its time, plain vs chunked.

One ``BioHiCLTrainer.compute_loss`` + backward + AdamW step of a LoRA-wrapped all-MiniLM-L6-v2 (resolved offline) on
one batch of MeSH-labelled documents, on the CPU. Memory: the peak bytes of the distinct storages held saved for
backward at any moment (a ``saved_tensors_hooks`` count as ``bench_saved_tensors.py``'s, plus when each is released;
the model's parameters left out), the activation memory gradient caching bounds. Time: plain and chunked steps
interleaved (A B A B ...) after one warm-up each, medians and their ratio, both in this run.

    python benchmarks/bench_cached_batch.py                  # batch 32 x 128 tokens, chunks of 8, 1 thread, 3 steps
    python benchmarks/bench_cached_batch.py --batch 16 --mini_batch_size 4 --steps 2
    python benchmarks/bench_cached_batch.py --mixed random   # documents of 1 to 8 sentences, in a seeded random order
    python benchmarks/bench_cached_batch.py --mixed sorted   # the same, shortest first (as a length-grouping order)

``--mixed`` also runs the chunked step with each chunk kept at the batch's padded width (``trimmed`` switched off):
the saving of cutting a chunk's trailing padding, for chunks whose documents are shorter than the batch's longest.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from typing import Any

import torch
from bench_train_step import SENTENCE, make_documents

from biohicl.data.collator import BioHiCLDataCollator
from biohicl.mesh.hierarchy import MeshHierarchy
from biohicl.models.model import BioHiCL
from biohicl.training import cached_batch
from biohicl.training.args import BioHiCLTrainingArguments
from biohicl.training.cached_batch import trimmed
from biohicl.training.trainer import BioHiCLTrainer

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class SavedPeak:
    """Saved-tensor hooks counting the bytes of the distinct storages saved for backward and not yet released."""

    def __init__(self, skip: set[int]):
        self.skip, self.live, self.current, self.peak = skip, {}, 0, 0

    def pack(self, tensor: torch.Tensor) -> Any:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self.skip:
            return tensor
        if key in self.live:
            self.live[key][0] += 1
        else:
            self.live[key] = [1, storage.nbytes()]
            self.current += storage.nbytes()
            self.peak = max(self.peak, self.current)
        return _Held(self, key, tensor)

    def unpack(self, held: Any) -> torch.Tensor:
        return held.tensor if isinstance(held, _Held) else held

    def release(self, key: int) -> None:
        entry = self.live[key]
        entry[0] -= 1
        if entry[0] == 0:
            self.current -= entry[1]
            del self.live[key]


class _Held:
    """A saved tensor; its storage counts as released when autograd drops the last one (the graph is freed)."""

    __slots__ = ("counter", "key", "tensor")

    def __init__(self, counter: SavedPeak, key: int, tensor: torch.Tensor):
        self.counter, self.key, self.tensor = counter, key, tensor

    def __del__(self) -> None:
        self.counter.release(self.key)


def mixed_documents(n: int, mesh: MeshHierarchy, order: str, seed: int = 0) -> list[dict]:
    """:func:`make_documents`' documents cut to 1 to 8 sentences each (drawn uniformly, seeded), in drawn order or
    (``order`` "sorted") shortest first."""
    rng = random.Random(seed)
    docs = make_documents(n, mesh, seed)
    for i, doc in enumerate(docs):
        doc["text"] = f"Study {i}. " + SENTENCE * rng.randint(1, 8)
    return sorted(docs, key=lambda doc: len(doc["text"])) if order == "sorted" else docs


def untrimmed(chunk: dict) -> dict:
    """``cached_batch.trimmed`` switched off: a chunk keeps the batch's padded width."""
    return chunk


def step(
    trainer: BioHiCLTrainer, optimizer: torch.optim.Optimizer, batch: dict, kind: tuple[int | None, bool]
) -> float:
    """One training step at ``mini_batch_size`` ``kind[0]``, chunks trimmed when ``kind[1]``: its seconds."""
    trainer.args.mini_batch_size, trim = kind
    cached_batch.trimmed = trimmed if trim else untrimmed
    start = time.perf_counter()
    trainer.compute_loss(trainer.model, dict(batch)).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--mini_batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each kind (after one warm-up each)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--mixed", choices=["random", "sorted"], help="documents of 1 to 8 sentences; also chunks untrimmed"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    mesh = MeshHierarchy.load()
    model = BioHiCL.from_base(MODEL, max_length=args.max_length)
    model.add_lora(r=8, alpha=16, dropout=0.1, verbose=False)
    model.train()
    with tempfile.TemporaryDirectory() as out:
        training = BioHiCLTrainingArguments(
            output_dir=out, use_cpu=True, report_to="none", per_device_train_batch_size=args.batch, disable_tqdm=True
        )
        trainer = BioHiCLTrainer(model=model, args=training)
    collator = BioHiCLDataCollator(tokenize=model.tokenize, mesh=mesh)
    docs = mixed_documents(args.batch, mesh, args.mixed) if args.mixed else make_documents(args.batch, mesh)
    batch = collator(docs)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    tokens = tuple(batch["input_ids"].shape)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kinds = {"plain": (None, True), f"mini_batch_size {args.mini_batch_size}": (args.mini_batch_size, True)}
    if args.mixed:
        kinds[f"{args.mini_batch_size}, untrimmed"] = (args.mini_batch_size, False)
    widths = [c["input_ids"].shape[1] for c in cached_batch.row_chunks(batch, args.mini_batch_size)]
    peaks = {}
    for name, kind in kinds.items():
        counter = SavedPeak(parameters)
        with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
            step(trainer, optimizer, batch, kind)
        peaks[name] = counter.peak
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(args.steps):
        for name, kind in kinds.items():
            times[name].append(step(trainer, optimizer, batch, kind))
    cached_batch.trimmed = trimmed
    plain, cached = (statistics.median(times[name]) for name in list(kinds)[:2])
    names = list(kinds)
    print(f"{MODEL} + LoRA r=8, batch {tokens[0]} x {tokens[1]} tokens, CPU, {args.threads} thread(s):")
    print(f"  chunk widths (tokens, trailing padding cut): {widths}")
    for name in names:
        seconds = ", ".join(f"{t:.2f}" for t in times[name])
        print(
            f"  {name:>20}: saved for backward at peak {peaks[name] / 2**20:8.1f} MiB, "
            f"step {statistics.median(times[name]):.2f} s (median of {args.steps}: {seconds})"
        )
    print(
        f"  ratio {names[1]} / plain: saved-for-backward peak {peaks[names[1]] / peaks[names[0]]:.3f}, "
        f"step time {cached / plain:.2f}"
    )
    if args.mixed:
        kept = statistics.median(times[names[2]])
        print(
            f"  ratio trimmed / untrimmed chunks: saved-for-backward peak {peaks[names[1]] / peaks[names[2]]:.3f}, "
            f"step time {cached / kept:.2f}"
        )


if __name__ == "__main__":
    main()

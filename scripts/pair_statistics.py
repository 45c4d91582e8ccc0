"""SimL over a dataset's training documents and inside its training batches, one JSON line each (docs/training.md).

    python scripts/pair_statistics.py runs/study/dataset --batch_size 32 --epochs 5

The first line counts every pair of training documents: SimL = 0 (contrastive negatives), 0 < SimL ≤ β (weak
pairs, outside the default `zero_or_positive` filter) and SimL > β (positives). Then, per batch sampler (`random`,
`mesh_pairs`), the in-batch pairs of ``--epochs`` epochs of the batches `biohicl train` would draw.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def pair_counts(siml: np.ndarray, beta: float) -> dict[str, int]:
    """Counts of the pairs above the diagonal of a SimL matrix, by band."""
    values = siml[np.triu_indices(len(siml), 1)]
    return {
        "pairs": int(values.size),
        "zero": int((values == 0).sum()),
        "weak": int(((values > 0) & (values <= beta)).sum()),
        "positive": int((values > beta).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="a `biohicl build-dataset` folder (or documents file)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--beta", type=float, default=0.3)
    args = parser.parse_args(argv)
    from biohicl.mesh.hierarchy import MeshHierarchy
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.run import build_batch_sampler, load_training_data

    mesh = MeshHierarchy.load()
    settings = dict(dataset_path=args.dataset, per_device_train_batch_size=args.batch_size, seed=args.seed,
                    beta=args.beta, output_dir="unused", use_cpu=True, report_to="none")  # fmt: skip
    data = load_training_data(BioHiCLTrainingArguments(**settings), mesh)
    labels = data.documents["labels"]
    counts = pair_counts(mesh.similarity_matrix(labels).numpy(), args.beta)
    print(json.dumps({"documents": len(labels), "all_pairs": counts}))
    for sampler_name in ("random", "mesh_pairs"):
        sampler = build_batch_sampler(BioHiCLTrainingArguments(**settings, batch_sampler=sampler_name), data, mesh)
        total = dict.fromkeys(("pairs", "zero", "weak", "positive"), 0)
        batches = with_positive = 0
        for epoch in range(args.epochs):
            sampler.set_epoch(epoch)
            for batch in sampler:
                counts = pair_counts(mesh.similarity_matrix([labels[i] for i in batch]).numpy(), args.beta)
                total = {k: total[k] + counts[k] for k in total}
                batches += 1
                with_positive += counts["positive"] > 0
        record = {"sampler": sampler_name, "batches": batches, "batches_with_a_positive": with_positive, **total}
        print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

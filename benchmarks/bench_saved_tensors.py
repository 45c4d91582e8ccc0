"""What one training forward of a LoRA-wrapped encoder saves for backward, counted on the CPU with a saved-tensor hook.

The GPU session's per-worker memory estimate (``WORKER_GIB`` in ``scripts/gpu_session.py``) comes from this count: it
is not a GPU measurement (no CUDA context, allocator slack or backward transients), only the activations a batch
keeps alive, which dominate a LoRA run's memory. The model is built from its config with random weights (its sizes
are what matter), so nothing is downloaded.

    python benchmarks/bench_saved_tensors.py          # all-mpnet-base-v2 sizes, batches 2 and 4 x 384, bf16 autocast
    python benchmarks/bench_saved_tensors.py --model minilm-l6 --seq 256 --scale_to 32
"""

from __future__ import annotations

import argparse
import time

import torch

#: Architectures by name: (transformers config class, model class, config kwargs, LoRA target modules).
MODELS = {
    "mpnet-base": ("MPNetConfig", "MPNetModel", {"vocab_size": 30527, "max_position_embeddings": 514}, ["q", "v"]),
    "minilm-l6": (
        "BertConfig",
        "BertModel",
        {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
        ["query", "value"],
    ),
}


def saved_bytes(model: torch.nn.Module, batch: int, seq: int, autocast: bool) -> int:
    """Bytes of the distinct storages one forward saves for backward."""
    ids = torch.randint(5, 30000, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    storages: dict[tuple[int, torch.dtype], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storages[(tensor.untyped_storage().data_ptr(), tensor.dtype)] = tensor.untyped_storage().nbytes()
        return tensor

    hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)
    with hooks, torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        model(input_ids=ids, attention_mask=mask)
    return sum(storages.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mpnet-base")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=384)
    parser.add_argument("--scale_to", type=int, default=32, help="the training batch the count is scaled to")
    parser.add_argument("--no_autocast", action="store_true", help="fp32 instead of bf16 autocast")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import transformers
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    config_name, model_name, kwargs, targets = MODELS[args.model]
    config = getattr(transformers, config_name)(**kwargs)
    model = getattr(transformers, model_name)(config)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=targets)).train()
    start = time.perf_counter()
    one = saved_bytes(model, args.batch, args.seq, autocast=not args.no_autocast)
    two = saved_bytes(model, 2 * args.batch, args.seq, autocast=not args.no_autocast)
    # saved = fixed + per_row * rows: autocast's low-precision weight copies are saved once whatever the batch, so
    # the count at batch b and 2b gives both parts, and the scaled figure does not multiply the weights' copies
    per_row = (two - one) / args.batch
    fixed = one - per_row * args.batch
    scaled = fixed + per_row * args.scale_to
    seconds = time.perf_counter() - start
    precision = "fp32" if args.no_autocast else "bf16 autocast"
    print(
        f"{args.model} ({precision}), {args.seq} tokens: saved for backward at batch {args.batch} "
        f"{one / 2**20:.1f} MiB, at batch {2 * args.batch} {two / 2**20:.1f} MiB = {fixed / 2**20:.1f} MiB fixed "
        f"+ {per_row / 2**20:.1f} MiB a row -> batch {args.scale_to}: {scaled / 2**30:.2f} GiB ({seconds:.0f} s)"
    )


if __name__ == "__main__":
    main()

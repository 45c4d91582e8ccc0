"""The logged loss components of a distributed run: the processes' sums reduced over the union of their component
names, so a component that only some processes gave is neither averaged with another one nor a hang."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist


def world_size() -> int:
    """The process group's size (1 when torch.distributed is not initialized)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def component_means(sums: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> dict[str, float]:
    """Each component's mean per optimizer step, over the micro-batches and processes that gave it: ``sums`` holds
    this process's components, each summed over its micro-batches weighted by their share of an optimizer step, and
    ``weights`` each component's total of those shares. Under several processes the names are all-gathered first
    (rank 0's in its order, then names first seen on later ranks) and a name missing on a process counts as absent
    there, neither a 0 nor a weight: its mean is over the processes (and their micro-batches) that have it. One
    reduction and one device-to-host copy."""
    names = list(sums)
    if world_size() == 1:
        return dict(
            zip(names, torch.stack([sums[name].float() / weights[name] for name in names]).tolist(), strict=True)
        )
    gathered: list[list[str] | None] = [None] * world_size()
    dist.all_gather_object(gathered, names)
    names = list(dict.fromkeys(name for keys in gathered for name in keys or ()))
    device = next(iter(sums.values())).device if sums else torch.device("cpu")
    zero = torch.zeros((), device=device)
    totals = torch.stack([sums[name].float() if name in sums else zero for name in names])
    counts = torch.tensor([float(weights[name]) if name in sums else 0.0 for name in names], device=device)
    reduced = torch.stack([totals, counts])
    dist.all_reduce(reduced)  # a sum
    return dict(zip(names, (reduced[0] / reduced[1]).tolist(), strict=True))

"""``biohicl soup``: average the LoRA adapters of one recipe (its seeds, say) into one adapter, exactly::

    biohicl soup --adapters runs/x/seed3,runs/x/seed4,runs/x/seed5 --output runs/x/soup
    biohicl soup --adapters a,b --weights 0.75,0.25 --output runs/ab

The soup's weight change is the weighted mean of the adapters' (one LoRA adapter whose rank is the sum of theirs); it
loads like any adapter (``biohicl evaluate runs/x/soup``, ``BioHiCL.from_pretrained``). See docs/training.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HELP = "Average LoRA adapters of one recipe (e.g. its seeds) into one adapter, exactly."


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass
class SoupArguments:
    adapters: str = field(metadata={"help": "Comma-separated folders of saved biohicl LoRA adapters (two or more)."})
    output: str = field(metadata={"help": "Folder to write the averaged adapter to (replaced whole if it exists)."})
    weights: str | None = field(
        default=None, metadata={"help": "Comma-separated weights, one per adapter, summing to 1 (default: equal)."}
    )

    def adapter_list(self) -> list[str]:
        return _csv(self.adapters)

    def weight_list(self) -> list[float] | None:
        from biohicl.errors import ConfigError

        if self.weights is None:
            return None
        try:
            return [float(w) for w in _csv(self.weights)]
        except ValueError:
            raise ConfigError(f"--weights: expected comma-separated numbers, got {self.weights!r}") from None


def main(argv: list[str]) -> int:
    from biohicl.cli.parser import parse_command
    from biohicl.models.soup import soup_adapters

    (args,) = parse_command(SoupArguments, argv, prog="biohicl soup", description=__doc__)
    output = soup_adapters(args.adapter_list(), args.output, args.weight_list())
    print(f"wrote the average of {len(args.adapter_list())} adapters to {output}")
    return 0

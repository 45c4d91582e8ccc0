"""``biohicl soup``: average the LoRA adapters of one recipe (its seeds, say) into one adapter, exactly::

    biohicl soup --adapters runs/x/seed3,runs/x/seed4,runs/x/seed5 --output runs/x/soup
    biohicl soup --adapters a,b --weights 0.75,0.25 --output runs/ab

The soup's weight change is the weighted mean of the adapters' (one LoRA adapter whose rank is the sum of theirs); it
loads like any adapter (``biohicl evaluate runs/x/soup``, ``BioHiCL.from_pretrained``). See docs/training.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HELP = "Average LoRA adapters of one recipe (e.g. its seeds) into one adapter, exactly."


@dataclass
class SoupArguments:
    adapters: str = field(
        metadata={"comma_list": True, "help": "Comma-separated folders of saved biohicl LoRA adapters (two or more)."}
    )
    output: str = field(metadata={"help": "Folder to write the averaged adapter to (replaced whole if it exists)."})
    weights: str | None = field(
        default=None,
        metadata={
            "comma_list": True,
            "help": "Comma-separated weights, one per adapter, summing to 1 (default: equal).",
        },
    )

    def adapter_list(self) -> list[str]:
        from biohicl.cli.parser import csv_items

        return csv_items(self.adapters)

    def weight_list(self) -> list[float] | None:
        from biohicl.cli.parser import csv_numbers

        return csv_numbers(self.weights, float, "--weights", "numbers") if self.weights is not None else None


def main(argv: list[str]) -> int:
    from biohicl.cli.parser import parse_command
    from biohicl.models.soup import soup_adapters

    (args,) = parse_command(SoupArguments, argv, prog="biohicl soup", description=__doc__)
    adapters = args.adapter_list()
    soup_adapters(adapters, args.output, args.weight_list())  # its progress line says what it wrote
    return 0

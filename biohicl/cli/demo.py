"""``biohicl demo``: the whole pipeline on the embedded default, on CPU, in minutes (:mod:`biohicl.study.demo`).

Builds the MeSH-pair dataset, trains a short dev-selected LoRA run of all-MiniLM-L6-v2, evaluates base and tuned
model on BIOSSES and PubMedQA and prints the table. Every option is a field of
:class:`~biohicl.study.demo.DemoArguments` (``biohicl demo --help``).
"""

from __future__ import annotations

HELP = "Build the MeSH-pair dataset, train a short BioHiCL run and compare it with its base (CPU, minutes)"


def main(argv: list[str]) -> int:
    from biohicl.cli.parser import parse_command
    from biohicl.study.demo import DemoArguments, run_demo

    (args,) = parse_command(DemoArguments, argv, prog="biohicl demo", description=__doc__)
    print(run_demo(args))
    return 0

"""The demo: the whole pipeline on the embedded default, on CPU, in minutes (``biohicl demo``, ``make demo``).

1. build the MeSH-pair dataset from the real MeSH-indexed abstracts (``BIOHICL_DATA_DIR``: PubMedQA, the MEDLINE
   sample, a BioASQ sample, PubMed exports; decontaminated, with a dev split);
2. LoRA-train all-MiniLM-L6-v2 with the BioHiCL loss for a short run, selected on PubMedQA dev (step 0 included);
3. evaluate the untrained base and the trained adapter on BIOSSES and PubMedQA (question → long answer);
4. the base-vs-BioHiCL table (also written to ``<output_dir>/results.md``).

Progress is logged (``biohicl.study.demo``); the command shows it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass
class DemoArguments:
    """Size settings of the demo (defaults: a run that finishes in minutes on 2 CPU cores)."""

    output_dir: str = field(default="runs/demo", metadata={"help": "Where the dataset, run and results go."})
    base_model: str = field(default=BASE_MODEL, metadata={"help": "Hub id (or folder) of the model to tune."})
    max_steps: int = field(default=60, metadata={"help": "Training steps."})
    batch_size: int = field(default=32, metadata={"help": "Documents per training batch."})
    max_length: int = field(default=128, metadata={"help": "Tokens per training document."})
    eval_max_length: int = field(
        default=256,
        metadata={
            "help": "Tokens per text at evaluation, base and tuned alike (one length, or the table compares "
            "lengths instead of models; 256 = all-MiniLM-L6-v2's own)."
        },
    )
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate of the LoRA weights."})
    eval_steps: int = field(
        default=30, metadata={"help": "Dev evaluation (PubMedQA dev) every N steps, and at step 0; the best is kept."}
    )
    tasks: str = field(default="biosses,pubmedqa", metadata={"help": "Comma-separated evaluation tasks."})
    bf16: bool = field(
        default=False,
        metadata={"help": "bfloat16 autocast (fast on GPUs and AVX512-bf16 CPUs, several times slower on AVX2)."},
    )
    seed: int = field(default=0, metadata={"help": "Random seed (dataset mining, LoRA init, batches)."})
    skip_steps_done: bool = field(
        default=True, metadata={"help": "Reuse a dataset / run / results already complete in output_dir."}
    )


def run_demo(args: DemoArguments) -> str:
    """Run the four demo steps; returns the Markdown table."""
    import torch

    from biohicl.data.build import build_default_dataset
    from biohicl.data.storage import load_pair_dataset
    from biohicl.evaluation.encoder import DtypeEncoder
    from biohicl.evaluation.evaluator import evaluator_from_args
    from biohicl.evaluation.report import markdown_table
    from biohicl.evaluation.runner import evaluate_model, load_results, save_results
    from biohicl.training.args import BioHiCLTrainingArguments
    from biohicl.training.run import train_biohicl

    start = time.time()
    out = Path(args.output_dir)
    dataset_dir, run_dir = out / "mesh-pairs", out / "run"
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    dtype = torch.bfloat16 if args.bf16 else None

    _step(1, "MeSH-pair dataset from the MeSH-indexed abstracts")
    if args.skip_steps_done and (dataset_dir / "README.md").is_file():
        load_pair_dataset(dataset_dir)
        logger.info("reusing %s", dataset_dir)
    else:
        _, summary = build_default_dataset(dataset_dir, seed=args.seed)
        logger.info("%s", summary)

    _step(2, f"LoRA training of {args.base_model} ({args.max_steps} steps × {args.batch_size} documents)")
    if args.skip_steps_done and (run_dir / "adapter_model.safetensors").is_file():
        logger.info("reusing %s", run_dir)
    else:
        training_args = BioHiCLTrainingArguments(
            output_dir=str(run_dir),
            base_model=args.base_model,
            dataset_path=str(dataset_dir),
            max_steps=args.max_steps,
            per_device_train_batch_size=args.batch_size,
            max_length=args.max_length,
            learning_rate=args.learning_rate,
            bf16=args.bf16,
            seed=args.seed,
            logging_steps=5,
            # model selection on dev data (PubMedQA dev, never a test split); step 0, the base, is a candidate,
            # so the demo never ships a model below its base on dev
            eval_strategy="steps",
            eval_steps=args.eval_steps,
            save_strategy="steps",
            save_steps=args.eval_steps,
            save_total_limit=2,
            load_best_model_at_end=True,
            eval_tasks=["pubmedqa:dev"],
            selection_metrics=["pubmedqa-dev_recall@1", "pubmedqa-dev_recall@5"],
            report_to="none",
        )
        train_biohicl(training_args, evaluator=evaluator_from_args(training_args))

    _step(3, f"evaluation on {', '.join(tasks)}: base vs BioHiCL")
    records = []
    for label, load in evaluation_models(args.base_model, run_dir, args.eval_max_length):
        path = out / f"results_{label}.json"
        if args.skip_steps_done and path.is_file():
            records.append(load_results(path))
            logger.info("reusing %s", path)
            continue
        model = load()
        record = evaluate_model(
            DtypeEncoder(model, dtype),
            tasks,
            model_id=f"{args.base_model} ({label})",
            settings={"dtype": "bfloat16" if args.bf16 else "float32", "max_length": model.config.max_length},
        )
        save_results(record, path)
        records.append(record)

    _step(4, "base vs BioHiCL")
    table = markdown_table(records, labels=["base", "BioHiCL (LoRA)"])
    (out / "results.md").write_text(table, encoding="utf-8")
    logger.info("demo finished in %.1f min; outputs in %s/", (time.time() - start) / 60, out)
    return table


def evaluation_models(base_model: str, run_dir: Path, eval_max_length: int):
    """``(label, loader)`` for the base and the tuned model, both set to ``eval_max_length`` tokens per text: the
    tuned model would otherwise keep its (shorter) training length and the table would compare lengths."""
    from biohicl.models.model import BioHiCL

    def at_length(model):
        model.config.max_length = eval_max_length
        return model

    return [
        ("base", lambda: at_length(BioHiCL.from_base(base_model))),
        ("biohicl", lambda: at_length(BioHiCL.from_pretrained(run_dir, merge=True))),
    ]


def _step(number: int, title: str) -> None:
    logger.info("\n=== [%d/4] %s ===", number, title)

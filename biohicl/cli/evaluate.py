"""``biohicl evaluate``: score a model on BEIR retrieval, BIOSSES and PubMedQA, or compare results files.

    biohicl evaluate sentence-transformers/all-MiniLM-L6-v2 --tasks scifact:train,biosses,pubmedqa \\
        --output results/minilm.json
    biohicl evaluate runs/minilm --tasks scifact --split test --dtype bfloat16
    biohicl index $BIOHICL_DATA_DIR/scifact --model NAME --output idx --shard_size 256   # resumable
    biohicl evaluate NAME --tasks scifact:train --document_index idx
    biohicl evaluate --compare results/minilm.json results/minilm-biohicl.json \\
        --plot results/compare.png --markdown results/compare.md
    biohicl evaluate runs/minilm --tasks biosses,pubmedqa --per_item --output results/tuned.json
    biohicl evaluate --compare results/base.json results/tuned.json --paired   # Δ with its 95% interval
    biohicl evaluate --compare a3.json a4.json a5.json b3.json b4.json b5.json --paired --base_count 3   # B − A
    biohicl evaluate --compare base.json s3.json s4.json s5.json --paired --resample_models --target 1.0   # seeds too

A task is ``name`` or ``name:split`` (``scifact:train``) or the path of any BEIR folder; ``--split`` is the default
split of the BEIR tasks and of no other (PubMedQA defaults to its official 500-item ``test`` split, ``pubmedqa:dev``
picks its dev split; BIOSSES is ``all``): one that applies to no task given is refused. Options can
also come from a YAML/JSON file with the same keys (``biohicl evaluate --config eval.yaml``; options override it).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biohicl.cli.encode import BACKEND_CHOICES
from biohicl.cli.progress import library_bars
from biohicl.errors import BioHiCLError, ConfigError
from biohicl.evaluation.comparison import COMPARED_SETTINGS
from biohicl.evaluation.results import AGREEMENT_TASK

HELP = "Evaluate a model (SciFact/BEIR, BIOSSES, PubMedQA) or compare results files (--compare)."

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class EvaluateArguments:
    """Options of ``biohicl evaluate`` (``MODEL`` is positional; every option also works from a config file)."""

    model: str | None = field(
        default=None,
        metadata={
            "help": "Model: a local folder (biohicl run/adapter, merged, sentence-transformers), a registered "
            "name or a cached Hub id; `name@revision` pins a revision."
        },
    )
    tasks: str = field(
        default="scifact,biosses,pubmedqa",
        metadata={
            "comma_list": True,
            "help": "Comma-separated tasks: scifact, nfcorpus, trec-covid, scidocs, biosses, pubmedqa, "
            "pubmedqa-context, siml-agreement@DATASET (a build-dataset folder), or a BEIR folder path; "
            "`name:split` picks a split (pubmedqa:dev, the 250 held-out PQA-L items).",
        },
    )
    split: str | None = field(
        default=None,
        metadata={
            "help": "Split (qrels/<split>.tsv) of the BEIR tasks given without `:split` (default: test); refused "
            "when no task is one: another task's split goes in its spec (pubmedqa:dev)."
        },
    )
    mesh_path: str | None = field(
        default=None,
        metadata={
            "help": "A MeSH release file (as biohicl train --mesh_path) that siml-agreement@DATASET measures SimL "
            "with (default: the packaged MeSH 2024); give the one the dataset was built with."
        },
    )
    output: str | None = field(
        default=None,
        metadata={
            "help": "Results JSON to write (default: results/<model>.json; a local folder's whole path names it: "
            "runs/a/seed3 -> results/runs_a_seed3.json)."
        },
    )
    revision: str | None = field(default=None, metadata={"help": "Model revision (commit sha, branch or tag)."})
    base_model_path: str | None = field(
        default=None, metadata={"help": "Where an adapter's base weights are read from (default: its Hub id)."}
    )
    force_base: bool = field(
        default=False,
        metadata={"help": "Load an adapter onto a base other than the one it records (refused otherwise)."},
    )
    batch_size: int = field(default=32, metadata={"help": "Texts per forward pass."})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1 ... (default: cuda if available)."})
    dtype: str = field(
        default="float32",
        metadata={
            "help": "float32, or bfloat16/float16 autocast: faster only with AVX512-BF16/AMX or a GPU "
            "(6x slower on an AVX2-only CPU); BIOSSES moves by ~3e-4.",
            "choices": list(DTYPES),
        },
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Override the model's maximum tokens per text.", "default_words": "the model's own"},
    )
    query_prompt: str | None = field(
        default=None, metadata={"help": "Override the model's query prompt.", "default_words": "the model's own"}
    )
    document_prompt: str | None = field(
        default=None, metadata={"help": "Override the model's document prompt.", "default_words": "the model's own"}
    )
    limit_queries: int | None = field(
        default=None,
        metadata={
            "help": "Only the first N queries of retrieval tasks (quick checks; recorded).",
            "default_words": "every query",  # biohicl.cli.parser.DEFAULT_WORDS: what None means, in --help
        },
    )
    document_index: str | None = field(
        default=None,
        metadata={
            "help": "A `biohicl index` folder of the retrieval task's corpus, built with this model: its rows "
            "replace encoding the documents (encode a large corpus once, resumably; one retrieval task)."
        },
    )
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's choice)."})
    backend: str = field(
        default="torch",
        metadata={
            "help": "Encoder: `torch` or `onnx` (ONNX Runtime, exported once and checked).",
            "metavar": BACKEND_CHOICES,
        },
    )
    quantize: str | None = field(
        default=None, metadata={"help": "With --backend onnx: `int8` (dynamic int8 quantisation, ~2x faster on CPU)."}
    )
    progress: bool = field(default=True, metadata={"help": "Encoding progress bars (--no_progress: none)."})
    compare: list[str] = field(
        default_factory=list, metadata={"help": "Results JSON files to put side by side instead of evaluating."}
    )
    labels: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Row/legend labels for --compare files; with --paired two: the base side's, then the tuned side's."
        },
    )
    per_item: bool = field(
        default=False,
        metadata={"help": "Keep each query's and pair's values in the results file, for `--compare ... --paired`."},
    )
    paired: bool = field(
        default=False,
        metadata={
            "help": "With --compare: Δ of every later file against the first (the base; several later files count "
            "as their mean) with a paired-bootstrap interval over the items; the files need --per_item values. "
            "--plot then draws Δ and its interval."
        },
    )
    base_count: int = field(
        default=1,
        metadata={
            "help": "--paired: how many of the first --compare files are the base (several count as their mean: the "
            "seeds of a reference recipe, to compare two recipes)."
        },
    )
    rounds: int = field(default=10_000, metadata={"help": "--paired: bootstrap rounds."})
    confidence: float = field(default=0.95, metadata={"help": "--paired: the interval's confidence level."})
    bootstrap_seed: int = field(default=0, metadata={"help": "--paired: seed of the resampling."})
    resample_models: bool = field(
        default=False,
        metadata={
            "help": "--paired: each round also draws each side's files with replacement (the seeds of a recipe), so "
            "the interval covers other seeds as well as other test items (a two-level bootstrap)."
        },
    )
    target: float | None = field(
        default=None,
        metadata={"help": "--paired: also give P(Δ ≥ TARGET), the share of rounds at or above TARGET points (1.0)."},
    )
    markdown: str | None = field(default=None, metadata={"help": "Write a Markdown table of the results here."})
    plot: str | None = field(default=None, metadata={"help": "Write a PNG bar chart of the results here."})

    def __post_init__(self) -> None:
        if self.compare and self.model:
            raise ConfigError("give either MODEL (evaluate) or --compare FILES (report), not both")
        if not self.compare and not self.model:
            raise ConfigError("MODEL is required (or --compare a.json b.json ...); see `biohicl evaluate --help`")
        if self.paired and len(self.compare) < 2:
            raise ConfigError("paired: needs --compare BASE.json TUNED.json [...] (the first file is the base)")
        if self.base_count != 1 and not self.paired:
            raise ConfigError("base_count: applies with --compare ... --paired")
        if self.paired and self.base_count < 1:
            raise ConfigError(f"base_count: {self.base_count} is not a positive number of files")
        if self.paired and self.base_count >= len(self.compare):
            raise ConfigError(
                f"base_count: {self.base_count} base files leave no tuned file among the {len(self.compare)} "
                "--compare files"
            )
        if (self.resample_models or self.target is not None) and not self.paired:
            raise ConfigError("resample_models/target: apply with --compare ... --paired")
        if self.per_item and self.compare:
            raise ConfigError("per_item: applies when evaluating a MODEL, not to --compare")
        if self.max_length is not None and self.max_length < 1:  # 0 would switch truncation off
            raise ConfigError(f"max_length: {self.max_length} is not a positive number of tokens")
        if self.limit_queries is not None and self.limit_queries < 1:  # before the model loads
            raise ConfigError(f"limit_queries: {self.limit_queries} is not a positive number of queries")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: {self.batch_size} is not a positive number of texts")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads: {self.threads} is not a positive number of threads")
        if self.mesh_path and f"{AGREEMENT_TASK}@" not in self.tasks:
            raise ConfigError("mesh_path: the hierarchy of siml-agreement@DATASET tasks, and --tasks has none")


def parse_args(argv: list[str]) -> EvaluateArguments:
    """Parse the command line (options, ``MODEL``, ``--config FILE``) into :class:`EvaluateArguments`."""
    from biohicl.cli.parser import parse_command

    args, _ = parse_command(
        EvaluateArguments,
        argv,
        prog="biohicl evaluate",
        description=__doc__,
        positionals={"model": {"nargs": "?", "help": "same as --model"}},
    )
    return args


def model_identity(spec: str, model: Any, revision: str | None) -> tuple[str, str | None]:
    """(id, revision) to record: the Hub id when known (never a machine path), and the commit sha when known."""
    resolved = getattr(model, "resolved", None)
    config = getattr(model, "config", None)
    if resolved is not None and getattr(resolved, "repo_id", None):
        return resolved.repo_id, resolved.commit or resolved.revision or revision
    path = Path(spec).expanduser()
    if path.exists():
        base = getattr(config, "base_model", None)
        kind = getattr(config, "kind", None)
        if kind == "adapter" and base:  # its peft method as a card words it (LoRA, DoRA, IA3 ...)
            from biohicl.hub.card_adapter import peft_name
            from biohicl.jsonio import read_json

            file = Path(getattr(resolved, "path", None) or path) / "adapter_config.json"
            adapter = read_json(file, error=ConfigError) if file.is_file() else {}
            method = peft_name(adapter.get("peft_type"), {"use_dora": bool(adapter.get("use_dora"))})
            shown = Path(base).name if Path(base).is_absolute() else base  # a local base: its name, never its path
            return f"{path.name} ({method} over {shown})", getattr(config, "base_revision", None)
        from biohicl.models.resolver import is_hub_id

        hub_base = bool(base) and is_hub_id(base)  # by the record, not this folder
        return (base if hub_base else path.name), getattr(config, "base_revision", None)  # never a machine path
    return spec, revision


def default_output(model_id: str, spec: str | None = None) -> Path:
    """``results/<model>.json``: for a local folder, its whole path (relative to the working directory when under it)
    with ``/`` as ``_`` (``runs/a/seed3`` -> ``results/runs_a_seed3.json``), since the recorded id is only the
    folder's last part or its base and two runs' records would replace each other; else the recorded (Hub) id."""
    name = model_id.split(" ")[0]
    path = Path(spec).expanduser() if spec else None
    if path is not None and path.exists():
        full = path.resolve()
        try:
            parts = full.relative_to(Path.cwd().resolve()).parts
        except ValueError:
            parts = full.parts[1:]
        name = "_".join(parts) or full.name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"
    return Path("results") / f"{slug}.json"


@contextlib.contextmanager
def keeping_finished(output: Path) -> Iterator[Callable[[dict[str, Any]], None]]:
    """``evaluate_model``'s ``on_incomplete``: the finished tasks of a run a later task's error (or Ctrl-C) stopped
    are saved to :func:`~biohicl.evaluation.runner.incomplete_path` of ``output``, and the error says where: a biohicl
    error in its one line, any other in a line before the traceback."""
    from biohicl.cli.main import one_line
    from biohicl.evaluation.runner import incomplete_path, save_results

    kept: list[tuple[Path, list[str]]] = []

    def keep(record: dict[str, Any]) -> None:
        try:
            kept.append((save_results(record, incomplete_path(output)), list(record["tasks"])))
        except BioHiCLError as err:  # a finished task's NaN metric, a full disk: the task's own error goes on
            print(f"biohicl evaluate: the finished tasks could not be kept: {one_line(err)}", file=sys.stderr)

    try:
        yield keep
    except (Exception, KeyboardInterrupt) as err:
        if not kept:
            raise
        path, names = kept[-1]
        many = len(names) > 1
        where = f"the finished task{'s' if many else ''} ({', '.join(names)}) {'are' if many else 'is'} saved in {path}"
        where += ", marked incomplete"
        if isinstance(err, BioHiCLError):
            raise BioHiCLError(f"{one_line(str(err))}; {where}") from err
        print(f"biohicl evaluate: {where}", file=sys.stderr)
        raise


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.compare:
        from biohicl.cli.evaluate_compare import compare

        return compare(args)
    import torch

    from biohicl.atomic import check_writable
    from biohicl.cli.output_paths import check_distinct_files
    from biohicl.evaluation.encoder import DtypeEncoder
    from biohicl.evaluation.report import markdown_report
    from biohicl.evaluation.runner import check_split_applies, evaluate_model, plan_tasks, save_results
    from biohicl.evaluation.tasks import with_mesh

    tasks = [with_mesh(task, args.mesh_path) for task in args.tasks.split(",")]
    plan_tasks(tasks, args.split)  # missing data (or no label the hierarchy places) fails here, before the model loads
    check_split_applies(tasks, args.split)  # --split dev --tasks pubmedqa would score PubMedQA's test split
    check_distinct_files({"--output": args.output, "--markdown": args.markdown, "--plot": args.plot})
    for target in (args.output, args.markdown, args.plot):  # an unwritable output fails now, not after the work
        if target:
            check_writable(target)
    if args.threads:
        torch.set_num_threads(args.threads)
    from biohicl.models.model import load_model
    from biohicl.models.onnx_backend import check_backend, onnx_providers, with_backend
    from biohicl.models.st_compat import inference_device

    backend, quantize = check_backend(args.backend, args.quantize)
    # checked before the model loads; ONNX's export starts from a CPU model (as encode), --device picks its providers
    extra = {"providers": onnx_providers(args.device)} if backend == "onnx" else {}
    device = torch.device("cpu") if backend == "onnx" else inference_device(args.device)
    with library_bars(args.progress):  # --no_progress: no "Loading weights" bar either
        base_path = args.base_model_path or None  # "" (an empty option) is no path
        model = load_model(
            args.model, args.revision, base_model_path=base_path, force_base=args.force_base, device=device
        )
    config = getattr(model, "config", None)
    own_length = getattr(config, "max_length", None)  # the model's own, before --max_length
    for name in COMPARED_SETTINGS:
        value = getattr(args, name)
        if value is not None:
            if config is None or not hasattr(config, name):
                raise ConfigError(f"{name}: this model has no config.{name} to override")
            if name == "max_length" and hasattr(model, "set_max_length"):
                model.set_max_length(value)  # at most the model's positions
            else:
                setattr(config, name, value)
    dtype = None if args.dtype == "float32" else getattr(torch, args.dtype)
    model_id, revision = model_identity(args.model, model, args.revision)
    model = with_backend(model, backend, quantize, threads=args.threads, **extra)  # after the overrides above
    device = model.device if backend == "onnx" else device  # where ONNX Runtime's session runs, as recorded
    target = Path(args.output) if args.output else default_output(model_id, args.model)
    if not args.output:
        check_writable(target)
    documents = None
    if args.document_index:  # its rows replace encoding the corpus (checked against the model here)
        from biohicl.search.documents import IndexDocuments

        documents = IndexDocuments(args.document_index, model)
    with keeping_finished(target) as keep:  # a later task's error keeps the finished tasks' record
        results = evaluate_model(
            DtypeEncoder(model, dtype),
            tasks,
            model_id=model_id,
            revision=revision,
            batch_size=args.batch_size,
            split=args.split,
            limit_queries=args.limit_queries,
            show_progress_bar=None if args.progress else False,
            document_index=documents,
            per_item=args.per_item,
            on_incomplete=keep,
            require_finite=True,  # a collapsed model's NaN: that task fails, the finite ones before it are kept
            settings={
                "dtype": args.dtype,
                "backend": backend + (f"-{quantize}" if quantize else ""),
                "device": str(device),
                "max_length": getattr(config, "max_length", None),
                # whether that is the model's own (--compare takes two base models each at its own length) or
                # --max_length's
                "max_length_source": "model" if args.max_length in (None, own_length) else "option",
                "query_prompt": getattr(config, "query_prompt", None),
                "document_prompt": getattr(config, "document_prompt", None),
                "command": "biohicl evaluate " + " ".join(argv),
                **({"mesh_path": args.mesh_path} if args.mesh_path else {}),
            },
        )
    output = save_results(results, target)
    print(f"wrote {output}")
    from biohicl.evaluation.runner import drop_stale_record

    if stale := drop_stale_record(output, results):  # an earlier run's finished tasks: removed if this holds them all
        print(stale)
    if args.markdown:
        from biohicl.atomic import atomic_write_text

        atomic_write_text(args.markdown, markdown_report([results], [output]))
        print(f"wrote {args.markdown}")
    if args.plot:
        from biohicl.evaluation.plots import plot_results

        plot_results([results], args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

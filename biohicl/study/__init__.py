"""The paper's study on any MeSH-annotated corpus: base vs BioHiCL, the ablation table, several base models.

:func:`run_study` does, for a :class:`ReproduceConfig` (usually read from YAML with :meth:`ReproduceConfig.from_yaml`):

1. build (or reuse) the MeSH-pair dataset (:func:`biohicl.data.build.build_dataset_from_files`);
2. for every base model: evaluate the untrained base, then train every ``(variant, seed)`` with
   :func:`biohicl.training.run.train_biohicl` and evaluate the saved model on the same tasks, at the same
   maximum length and precision;
3. aggregate over seeds (mean ± sample std), mark the differences that exceed the noise (:data:`NOISE_RULE`),
   check the targets, and write ``results.json``, ``results.md``, one grouped-bar PNG per base model (error bars
   = std over seeds) and one training-curve PNG per base model; each run folder gets a model card (``README.md``)
   with its results in the ``model-index``.

Resuming: every finished evaluation is an atomically written ``eval.json``; a run whose ``eval.json`` exists is
skipped, a run whose training finished (``training_summary.json``) is only evaluated, and an interrupted training
resumes from its last complete checkpoint. Layout of ``output_dir``::

    dataset/                           the MeSH-pair dataset (when built here)
    <model>/base/eval.json             the untrained base
    <model>/<variant>/seed<k>/         train_biohicl run folder + eval.json + README.md (model card)
    results.json  results.md  <model>_bars.png  <model>_deltas.png  <model>_curves.png

Modules, in the order a study uses them: :mod:`~biohicl.study.config` (the YAML config; a selection of it:
:mod:`~biohicl.study.selection`), :mod:`~biohicl.study.plan`
(runs, folders, statuses, the dry run), :mod:`~biohicl.study.execute` (dataset, training, evaluation, run locks),
:mod:`~biohicl.study.dev_pick` (the variant the dev data picks), :mod:`~biohicl.study.stats` (seeds, noise,
targets), :mod:`~biohicl.study.verdict` (whether the report judges the targets: the config's own seeds, the dev pick
among all its target variants) and :mod:`~biohicl.study.report` (tables, plots, model cards).
"""

from biohicl.study.config import DEFAULT_VARIANTS, DatasetSpec, ModelSpec, ReproduceConfig
from biohicl.study.execute import evaluate_step0_once, prepare_dataset, run_study
from biohicl.study.plan import BASE, PlannedRun, describe_plan, plan_study
from biohicl.study.report import markdown_results, write_results
from biohicl.study.stats import NOISE_RULE, aggregate

__all__ = [
    "BASE",
    "DEFAULT_VARIANTS",
    "NOISE_RULE",
    "DatasetSpec",
    "ModelSpec",
    "PlannedRun",
    "ReproduceConfig",
    "aggregate",
    "describe_plan",
    "evaluate_step0_once",
    "markdown_results",
    "plan_study",
    "prepare_dataset",
    "run_study",
    "write_results",
]

"""Groups of MeSH descriptors that say little about an article's topic, and their SimL weights.

- **Check tags** (:data:`CHECK_TAG_NAMES`): demographic and organism descriptors (Humans, Adult, Mice, ...) indexed
  on most articles whatever their topic; any two human studies share them.
- **Study-design and statistics descriptors** (:data:`STUDY_DESIGN_NAMES`): how a study was done (Retrospective
  Studies, Logistic Models, ...), not what it is about.

:func:`siml_label_weights` turns a weight per group into the ``label_weights`` mapping every SimL method of
:class:`~biohicl.mesh.hierarchy.MeshHierarchy` takes.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence

from biohicl.mesh.hierarchy import MeshHierarchy

logger = logging.getLogger(__name__)
# (group, id(hierarchy)) → hierarchy already warned about; an entry goes with its hierarchy, so an id is never reused
_warned: weakref.WeakValueDictionary[tuple[str, int], MeshHierarchy] = weakref.WeakValueDictionary()

#: MeSH check tags: demographic/organism descriptors indexed on most articles regardless of topic.
CHECK_TAG_NAMES = (
    "Humans", "Animals", "Male", "Female", "Pregnancy", "Infant, Newborn", "Infant", "Child, Preschool", "Child",
    "Adolescent", "Young Adult", "Adult", "Middle Aged", "Aged", "Aged, 80 and over", "Mice", "Rats",
)  # fmt: skip


#: Study-design and statistics descriptors (E05/N05/N06 and friends): indexed for how a study was done, not its topic.
STUDY_DESIGN_NAMES = (
    "Retrospective Studies", "Prospective Studies", "Cohort Studies", "Cross-Sectional Studies",
    "Follow-Up Studies", "Case-Control Studies", "Longitudinal Studies", "Cross-Over Studies", "Pilot Projects",
    "Feasibility Studies", "Treatment Outcome", "Prognosis", "Risk Factors", "Risk Assessment",
    "Surveys and Questionnaires", "Double-Blind Method", "Single-Blind Method", "Random Allocation",
    "Multivariate Analysis", "Logistic Models", "Regression Analysis", "Proportional Hazards Models",
    "Kaplan-Meier Estimate", "Statistics, Nonparametric", "Odds Ratio", "Predictive Value of Tests", "ROC Curve",
    "Sensitivity and Specificity", "Reproducibility of Results", "Time Factors", "Age Factors", "Sex Factors",
    "Incidence", "Prevalence", "Severity of Illness Index",
)  # fmt: skip


def _group_uis(mesh: MeshHierarchy, group: str, names: Sequence[str]) -> set[str]:
    """Descriptor UIs of ``names`` in ``mesh``; when none resolves (a custom hierarchy) a warning, once per
    hierarchy and group: a weight or drop asked for the group then changes nothing."""
    uis = {ui for name in names if (ui := mesh.try_resolve(name))}
    if not uis and (group, id(mesh)) not in _warned:
        _warned[group, id(mesh)] = mesh
        logger.warning(
            "none of the %d %s names (%s, ...) is in the loaded hierarchy (%s): their weight or drop changes nothing",
            len(names), group, names[0], mesh.source or f"MeSH {mesh.version}",
        )  # fmt: skip
    return uis


def check_tag_uis(mesh: MeshHierarchy) -> set[str]:
    """Descriptor UIs of :data:`CHECK_TAG_NAMES` in ``mesh`` (a warning when none is there)."""
    return _group_uis(mesh, "check tag", CHECK_TAG_NAMES)


def study_design_uis(mesh: MeshHierarchy) -> set[str]:
    """Descriptor UIs of :data:`STUDY_DESIGN_NAMES` in ``mesh`` (a warning when none is there)."""
    return _group_uis(mesh, "study-design", STUDY_DESIGN_NAMES)


def siml_label_weights(
    mesh: MeshHierarchy, check_tag_weight: float = 1.0, study_design_weight: float = 1.0
) -> dict[str, float] | None:
    """Descriptor → SimL weight for the check tags and the study-design descriptors (None: all weigh 1)."""
    weights: dict[str, float] = {}
    if study_design_weight != 1.0:
        weights.update(dict.fromkeys(sorted(study_design_uis(mesh)), study_design_weight))
    if check_tag_weight != 1.0:
        weights.update(dict.fromkeys(sorted(check_tag_uis(mesh)), check_tag_weight))
    return weights or None

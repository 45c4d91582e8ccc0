"""The BioHiCL objective: ``L = L_mse + λ · L_con`` (λ = 0.1), returning every component for logging.

Either term can be switched off (the paper's "no L_con" / "no L_mse" ablations); a switched-off term costs nothing
and is left out of the returned components, so it is not logged (a run's logs and curves show only the terms it
computed, never a 0 that reads as measured). Beyond the paper, and off by default: ``+ w_distill · L_distill``
(self-distillation towards the frozen base model's SimE, :mod:`.distillation`) and ``+ w_title · L_title`` (title →
own abstract InfoNCE, :mod:`.title`).

Any loss the trainer is given works the same way: ``forward(embeddings, siml, **inputs)`` returns a dict with
``loss`` (back-propagated) and any number of ``loss_*`` components (logged); :attr:`extra_inputs` names the inputs
beyond ``embeddings`` and ``siml`` it needs (``base_embeddings``: the batch under the frozen base model;
``title_embeddings`` and ``abstract_embeddings``: the titled documents' titles and abstracts alone).

Terms of one's own join through ``extra_terms={name: (module, weight)}``: each module is called
``term(embeddings, siml, pair_mask=pair_mask, **inputs)`` with the inputs the built-in terms get (``inputs``: those
of ``base_embeddings``, ``title_embeddings``, ``abstract_embeddings`` the trainer gave, and any other batch key a
term's own ``extra_inputs`` asks for) and returns a scalar tensor; ``weight · term`` is added to ``loss`` and the
term is logged as ``loss_<name>``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from biohicl.errors import ConfigError
from biohicl.field_types import is_number
from biohicl.losses.contrastive import HierarchicalContrastiveLoss
from biohicl.losses.distillation import SimilarityDistillationLoss
from biohicl.losses.regression import FilteredMSELoss
from biohicl.losses.terms import TERM_WEIGHTS, WEIGHT_FIELDS, trains
from biohicl.losses.title import TitleInfoNCELoss
from biohicl.losses.utils import check_inputs, pair_shares

#: The refusal of an objective where no term trains (:mod:`.terms`: a term trains with its switch on and its weight
#: above 0): the command line's settings of each term, and the extra terms Python can add.
EMPTY_OBJECTIVE = (
    f"{', '.join(WEIGHT_FIELDS)}: at least one loss term must train (use_mse on; use_contrastive on with lambda_con "
    "above 0; distill_weight or title_weight above 0; or, from Python, an extra term of positive weight: "
    "extra_terms=, as build_loss(args, extra_terms=...) gives it)"
)
#: The names of the built-in terms (``loss_<name>``), which an extra term may not take.
BUILT_IN_TERMS = frozenset({"mse", "con", "distill", "title"})


def _checked_terms(extra_terms: Mapping[str, Any] | None) -> tuple[dict[str, nn.Module], dict[str, float]]:
    """``{name: (module, weight)}`` as modules and weights, or a ConfigError naming the term."""
    modules, weights = {}, {}
    for name, entry in (extra_terms or {}).items():
        where = f"extra_terms[{name!r}]"
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"{where}: not a name (letters, digits and _; it is logged as loss_<name>)")
        if name in BUILT_IN_TERMS:
            raise ConfigError(f"{where}: the name of a built-in term ({', '.join(sorted(BUILT_IN_TERMS))})")
        if not (isinstance(entry, tuple | list) and len(entry) == 2):
            raise ConfigError(f"{where}: expected a (module, weight) pair, got {type(entry).__name__}")
        module, weight = entry
        if not isinstance(module, nn.Module):
            raise ConfigError(f"{where}: {type(module).__name__} is not an nn.Module (a term is one, as each loss)")
        if not is_number(weight) or not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"{where}: weight must be a non-negative number, got {weight!r}")
        modules[name], weights[name] = module, float(weight)
    return modules, weights


def _runs_forward_of(module: nn.Module, cls: type[nn.Module]) -> bool:
    """Whether ``module`` is a ``cls`` whose ``forward`` is ``cls``'s own (takes ``checked=``; a subclass that
    overrides it is called as a term of one's own would be)."""
    return isinstance(module, cls) and type(module).forward is cls.forward


class BioHiCLLoss(nn.Module):
    """Filtered SimE→SimL regression plus λ times the hierarchy-aware contrastive loss.

    ``forward`` returns a dict: ``loss`` (the total, to back-propagate) and the unscaled components ``loss_mse``
    and ``loss_con`` (each only when on: ``use_mse``, ``use_contrastive``; still attached to the graph: detach them
    before logging), then ``loss_distill``, ``loss_title`` when on and ``loss_<name>`` for each of ``extra_terms``
    (``{name: (module, weight)}``, see the module docstring; a weight of 0 logs the term without training on it, as
    ``lambda_con=0`` with ``use_contrastive`` logs ``loss_con``: both are computed, so their values are measured).
    ``loss_title`` is left out for a batch with fewer than two titled documents (its term is an exact 0 in ``loss``),
    so the trainer's logged mean of it is over the batches that had titles to contrast; ``loss_con`` likewise for a
    batch where no anchor has both a positive and a negative (with indexing labels most batches have no SimL = 0
    negative: their 0 read as measured and pulled the logged mean down).

    Once per batch: the inputs are checked (one read from the device; each label term checks them itself only when
    called alone), the contrastive term's masks are computed (for the term, for whether ``loss_con`` is logged and
    for :attr:`pair_shares`), and every pair term is given ``pair_mask``, the distillation term too when its
    ``forward`` takes one.
    """

    citation = (
        "BioHiCL: Hierarchy-Aware Contrastive Learning with MeSH Labels for Biomedical Retrieval, ACL 2026 "
        "(L = L_mse + λ·L_con)"
    )

    def __init__(
        self,
        regression: FilteredMSELoss | None = None,
        contrastive: HierarchicalContrastiveLoss | None = None,
        lambda_con: float = 0.1,
        use_mse: bool = True,
        use_contrastive: bool = True,
        distillation: SimilarityDistillationLoss | None = None,
        distill_weight: float = 0.0,
        title: TitleInfoNCELoss | None = None,
        title_weight: float = 0.0,
        extra_terms: Mapping[str, tuple[nn.Module, float]] | None = None,
    ):
        super().__init__()
        # the values first, then the extra terms: an objective with no term on is refused only when they are right
        if lambda_con < 0:
            raise ValueError(f"lambda_con: must be non-negative, got {lambda_con}")
        if distill_weight < 0:
            raise ValueError(f"distill_weight: must be non-negative, got {distill_weight}")
        if title_weight < 0:
            raise ValueError(f"title_weight: must be non-negative, got {title_weight}")
        terms, self.extra_weights = _checked_terms(extra_terms)
        try:
            self.extra_terms = nn.ModuleDict(terms)
        except KeyError as error:  # a name nn.ModuleDict keeps for itself ("keys", "training", ...)
            raise ConfigError(f"extra_terms: {error.args[0]}") from None
        settings = {"use_mse": use_mse, "use_contrastive": use_contrastive, "lambda_con": lambda_con}
        settings |= {"distill_weight": distill_weight, "title_weight": title_weight}
        if not any(trains(settings, term) for term in TERM_WEIGHTS) and not any(self.extra_weights.values()):
            raise ValueError(EMPTY_OBJECTIVE)
        self.regression = regression if regression is not None else FilteredMSELoss()
        self.contrastive = contrastive if contrastive is not None else HierarchicalContrastiveLoss()
        self.lambda_con = lambda_con
        self.use_mse = use_mse
        self.use_contrastive = use_contrastive
        self.distillation = distillation if distillation is not None else SimilarityDistillationLoss()
        self.distill_weight = distill_weight
        self.title = title if title is not None else TitleInfoNCELoss()
        self.title_weight = title_weight
        #: The last forward's batch under this loss's rule (its contrastive term's β and ``negative``): the shares of
        #: in-batch pairs that are positives and negatives (``positive_pairs``, ``negative_pairs``: 0-dim tensors on
        #: the embeddings' device, which the trainer logs); None before a forward, and for a contrastive term
        #: without ``masks``.
        self.pair_shares: dict[str, torch.Tensor] | None = None

    def _masks(
        self, embeddings: torch.Tensor, siml: torch.Tensor, pair_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The contrastive term's ``(positive, negative)`` masks of the batch, on the embeddings' device (None for a
        term without ``masks``), also when the term is off: :attr:`pair_shares` are over them."""
        masks = getattr(self.contrastive, "masks", None)
        if masks is None or not torch.is_tensor(siml):  # a title-only loss may be given no SimL
            return None
        return masks(siml.to(device=embeddings.device, dtype=torch.float32), pair_mask)

    def _regression(self, embeddings: torch.Tensor, siml: torch.Tensor, pair_mask: torch.Tensor | None):
        if _runs_forward_of(self.regression, FilteredMSELoss):
            return self.regression(embeddings, siml, pair_mask, checked=True)
        return self.regression(embeddings, siml, pair_mask)

    def _distillation(self, embeddings: torch.Tensor, base: torch.Tensor, pair_mask: torch.Tensor | None):
        """The distillation term, given ``pair_mask`` when its ``forward`` takes one (a term of one's own written
        with two arguments is called with two)."""
        if pair_mask is not None and "pair_mask" in inspect.signature(self.distillation.forward).parameters:
            return self.distillation(embeddings, base, pair_mask=pair_mask)
        return self.distillation(embeddings, base)

    def _contrastive(self, embeddings: torch.Tensor, siml: torch.Tensor, pair_mask: torch.Tensor | None, masks):
        if _runs_forward_of(self.contrastive, HierarchicalContrastiveLoss):
            return self.contrastive(embeddings, siml, pair_mask, checked=True, masks=masks)
        return self.contrastive(embeddings, siml, pair_mask)

    @property
    def extra_inputs(self) -> frozenset[str]:
        """Inputs beyond ``embeddings`` and ``siml`` that ``forward`` needs from the trainer: ``base_embeddings``
        (the batch under the frozen base model), ``title_embeddings`` (with ``abstract_embeddings``: the titled
        documents' titles and abstracts)."""
        wanted = {"base_embeddings"} if self.distill_weight > 0 else set()
        if self.title_weight > 0:
            wanted.add("title_embeddings")
        for term in self.extra_terms.values():
            wanted.update(getattr(term, "extra_inputs", ()))
        return frozenset(wanted)

    def forward(
        self,
        embeddings: torch.Tensor,
        siml: torch.Tensor,
        pair_mask: torch.Tensor | None = None,
        base_embeddings: torch.Tensor | None = None,
        title_embeddings: torch.Tensor | None = None,
        abstract_embeddings: torch.Tensor | None = None,
        **extra: Any,
    ) -> dict[str, torch.Tensor]:
        """``pair_mask`` [B, B] (optional): pairs the label terms may use (e.g. same label kind only); ``extra``:
        batch keys an extra term asks for (its ``extra_inputs``), passed on to the extra terms."""
        out: dict[str, torch.Tensor] = {}
        total: Any = 0.0
        if self.use_mse or self.use_contrastive:
            check_inputs(embeddings, siml)  # once for both terms
        masks = self._masks(embeddings, siml, pair_mask)
        named = None if masks is None else {"positive_pairs": masks[0], "negative_pairs": masks[1]}
        self.pair_shares = None if named is None else pair_shares(named, pair_mask)
        if self.use_mse:
            out["loss_mse"] = self._regression(embeddings, siml, pair_mask)
            total = out["loss_mse"]
        if self.use_contrastive:
            term = self._contrastive(embeddings, siml, pair_mask, masks)
            # logged only with something to contrast (an anchor with a positive and a negative; without, L_con is an
            # exact 0 by construction, not a measurement): its mean is those batches'. One read from the device.
            if masks is None or bool((masks[0] & masks[1].any(dim=1, keepdim=True)).any()):
                out["loss_con"] = term
            total = total + self.lambda_con * term  # an exact 0 without, still in the graph
        if self.distill_weight > 0:
            if base_embeddings is None:
                raise ConfigError(
                    "base_embeddings: required when distill_weight > 0 (the frozen base model's batch, which the "
                    "trainer gives a loss whose extra_inputs names it: add terms with extra_terms=, or pass on "
                    "extra_inputs from a wrapper)"
                )
            out["loss_distill"] = self._distillation(embeddings, base_embeddings, pair_mask)
            total = total + self.distill_weight * out["loss_distill"]
        if self.title_weight > 0:
            titled = title_embeddings is not None and abstract_embeddings is not None
            # a batch without titles (PubMedQA abstracts) adds 0, in the graph: a title-only loss still backprops
            term = self.title(title_embeddings, abstract_embeddings) if titled else embeddings.float().sum() * 0.0
            if titled and title_embeddings.shape[0] >= 2:  # logged only with titles to contrast: its mean is theirs
                out["loss_title"] = term
            total = total + self.title_weight * term
        if self.extra_terms:
            given = {"base_embeddings": base_embeddings, "title_embeddings": title_embeddings}
            given |= {"abstract_embeddings": abstract_embeddings, **extra}
            inputs = {key: value for key, value in given.items() if value is not None}
            for name, term in self.extra_terms.items():
                out[f"loss_{name}"] = value = term(embeddings, siml, pair_mask=pair_mask, **inputs)
                if not (torch.is_tensor(value) and value.dim() == 0):
                    shape = f"a tensor of shape {list(value.shape)}" if torch.is_tensor(value) else type(value).__name__
                    raise ConfigError(f"extra_terms[{name!r}]: returned {shape}, expected a scalar tensor")
                if self.extra_weights[name] > 0:
                    total = total + self.extra_weights[name] * value
        return {"loss": total, **out}

    def get_config_dict(self) -> dict[str, Any]:
        config = {
            "lambda_con": self.lambda_con,
            "use_mse": self.use_mse,
            "use_contrastive": self.use_contrastive,
            "regression": self.regression.get_config_dict(),
            "contrastive": self.contrastive.get_config_dict(),
            "distill_weight": self.distill_weight,
            "title_weight": self.title_weight,
        }  # each built-in term's weight, on or off; its settings when on
        if self.distill_weight > 0:
            config["distillation"] = self.distillation.get_config_dict()
        if self.title_weight > 0:
            config["title"] = self.title.get_config_dict()
        if self.extra_terms:
            config["extra_terms"] = {name: self._term_config(name) for name in self.extra_terms}
        return config

    def _term_config(self, name: str) -> dict[str, Any]:
        term = self.extra_terms[name]
        config: dict[str, Any] = {"class": type(term).__name__, "weight": self.extra_weights[name]}
        getter = getattr(term, "get_config_dict", None)
        if callable(getter):
            config["config"] = getter()
        if isinstance(citation := getattr(term, "citation", None), str) and citation:  # the card cites it
            config["citation"] = citation
        return config

    def extra_repr(self) -> str:
        return (
            f"lambda_con={self.lambda_con}, use_mse={self.use_mse}, use_contrastive={self.use_contrastive}, "
            f"distill_weight={self.distill_weight}, title_weight={self.title_weight}"
            + (f", extra_weights={self.extra_weights}" if self.extra_weights else "")
        )

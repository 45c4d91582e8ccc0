"""Which document pairs count as unrelated, and which as contrastive negatives, by their SimL.

Shared by the losses (which in-batch pairs are negatives) and the batch samplers (which documents to bring into a
batch as negatives), so both read a ``negative`` rule the same way:

- ``"zero"``: SimL = 0 (no shared MeSH tree node; the paper's rule), up to :data:`ZERO_TOLERANCE`;
- ``"below:<t>"``: SimL < t, with 0 < t ≤ β;
- ``"lowest:<k>"``: an anchor's k lowest-SimL documents among those with SimL ≤ β.
"""

from __future__ import annotations

#: SimL values at or below this count as "no shared MeSH node" (float noise of a sparse cosine).
ZERO_TOLERANCE = 1e-6


def parse_negative(rule: str, beta: float = 0.3) -> tuple[str, float]:
    """``"zero"`` → ``("zero", 0)``, ``"below:0.1"`` → ``("below", 0.1)``, ``"lowest:4"`` → ``("lowest", 4)``;
    ValueError (naming ``negative``) for anything else, a threshold outside (0, β] or k < 1."""
    kind, sep, value = str(rule).strip().partition(":")
    if kind == "zero" and not sep:
        return "zero", 0.0
    try:
        number = float(value) if kind == "below" else int(value) if kind == "lowest" else None
    except ValueError:
        number = None
    if number is None:
        raise ValueError(
            f"negative: {rule!r} is not one of zero, below:<t> (e.g. below:0.1), lowest:<k> (e.g. lowest:4)"
        )
    if kind == "below" and not 0.0 < number <= beta:
        raise ValueError(f"negative: the threshold of {rule!r} must be in (0, beta = {beta}]")
    if kind == "lowest" and number < 1:
        raise ValueError(f"negative: k of {rule!r} must be at least 1")
    return kind, float(number)

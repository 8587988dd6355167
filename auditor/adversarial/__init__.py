"""Black-box adversarial search on the epsilon ladder, from model outputs only.

`square_linf` runs the L-inf Square Attack (Andriushchenko et al., ECCV 2020) for many
samples at once, with a "flip" objective (for RA) or a "delta" objective (for RR);
`summarize` gives the figures a report shows: queries spent and success fraction.

Searches are their own kind in an audit (`registry`: `SEARCHES`, filled by `@search`);
each one is a module, imported below so that it registers.
"""

from __future__ import annotations

from auditor.adversarial import (
    square_search,  # noqa: F401  (registers square_linf)
    whitebox_search,  # noqa: F401  (registers fgsm, pgd_linf, ...)
)
from auditor.adversarial.objectives import LOSSES, NOISE, delta_objective, flip_objective
from auditor.adversarial.square import (
    DEFAULT_QUERIES,
    OBJECTIVES,
    P_INIT,
    Outcome,
    initial_fraction,
    pixel_steps,
    square_fraction,
    square_linf,
    square_side,
    summarize,
    threat_model,
)

__all__ = [
    "DEFAULT_QUERIES",
    "LOSSES",
    "NOISE",
    "OBJECTIVES",
    "P_INIT",
    "Outcome",
    "delta_objective",
    "initial_fraction",
    "flip_objective",
    "pixel_steps",
    "square_fraction",
    "square_linf",
    "square_side",
    "summarize",
    "threat_model",
]

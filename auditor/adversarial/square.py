"""Black-box adversarial search in the L-inf ball: the Square Attack on model outputs.

Andriushchenko, Croce, Flammarion and Hein, "Square Attack: a query-efficient black-box
adversarial attack via random search", ECCV 2020. The search needs only the model's
probabilities, which is all an ONNX model gives and all an outside attacker sees.

It works on the raw uint8 image, before the model's own preprocessing, so the result
is a file an attacker could hand in. It searches the uint8 lattice: eps is turned into
`floor(eps * 255)` whole pixel steps (8/255 -> 8 steps, 0.003 -> 0: nothing to search),
and every candidate is clip(x + d) with |d| <= steps, in 0..255, before it is scored.

Two objectives: "flip" changes the decision (for RA); "delta" maximizes
||f(x') - f(x)|| (for RR: the worst point of the ball for the probability change).
Each sample draws only from its own generator and each model call scores one
candidate per active sample, so a sample's result does not depend on which other
samples share its batches.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor.adversarial.objectives import Objective, delta_objective, flip_objective, two_columns

Image = NDArray[np.uint8]
Probs = NDArray[np.float64]
ScoreFn = Callable[[Sequence[Image]], Probs]

OBJECTIVES = ("flip", "delta")
DEFAULT_QUERIES = 1000
# The first square's share of the image (p_init): the paper's 0.05 up to P_INIT_KNEE
# pixel steps, then growing as eps squared (the side in proportion to eps) up to
# P_INIT_MAX, ART's and AutoAttack's default, reached at 16/255. See `initial_fraction`.
P_INIT = 0.05
P_INIT_MAX = 0.8
P_INIT_KNEE = 4
# The paper halves p at these iterations of a 10,000-query run; other budgets
# stretch or shrink the schedule in proportion.
MILESTONES = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
REFERENCE_BUDGET = 10_000
# A redrawn square whose pixels would not change wastes a query; try a few more.
REDRAWS = 10
DEFAULT_CHUNK = 256


@dataclass(frozen=True)
class Outcome:
    """What the search found for one sample.

    `image` is the best uint8 image found (the clean image when nothing was searched),
    `probs` its probabilities (K values; from `clean_probs` for a sample skipped as
    already flipped, so every outcome has them), `queries` the model
    queries spent on this sample (0 for one skipped as already flipped), `success`
    whether the objective was met (flip: the decision differs from the target; delta:
    the change exceeds the goal), `loss` the objective's value at `image` (see
    `flip_objective` and `delta_objective`), and `moved` whether any query changed the
    model's output beyond float noise.
    """

    image: Image
    probs: Probs
    queries: int
    success: bool
    loss: float | None
    moved: bool


def pixel_steps(eps: float) -> int:
    """Return the whole pixel steps that fit in `eps` (in units of 1/255), rounded down."""
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    return int(math.floor(eps * 255 + 1e-6))  # 8/255 in floats must give 8


def initial_fraction(steps: int) -> float:
    """Return p_init for a ball of `steps` pixel steps: 0.05 to 4/255, x (k/4)^2, 0.8 at 16/255.

    **choice:** no fixed p_init is best at every eps. On the sample detectors (100
    images, 1,000 queries) p_init 0.05 leaves RA up to 0.09 lower than 0.8 at eps 1 to
    4/255 (fine, pixel-sized squares: near the clean image the best point of the ball
    is the gradient's sign pattern, which is fine-grained), and 0.13 higher on detector
    a at 16/255 (large coherent squares move it most); restarts alternating the two, or
    a per-sample choice between them, split the budget and lose at both ends
    (`bench/attacks.py`). So the first square's side grows with eps: p_init stays at
    the paper's 0.05 up to 4/255 and grows as (k/4)^2 to ART's 0.8 at 16/255 and beyond.
    """
    return min(P_INIT_MAX, P_INIT * max(1.0, steps / P_INIT_KNEE) ** 2)


def square_fraction(iteration: int, budget: int, p_init: float = P_INIT) -> float:
    """Return the paper's p (share of pixels in the square) at `iteration` of `budget`."""
    scaled = int(iteration / max(budget, 1) * REFERENCE_BUDGET)
    return p_init / 2 ** bisect.bisect_left(MILESTONES, scaled)


def square_side(p: float, height: int, width: int) -> int:
    """Return the side of a square covering about `p` of an `height` x `width` image."""
    side = int(round(math.sqrt(p * height * width)))
    return max(1, min(side, min(height, width) - 1))


def square_linf(
    score_fn: ScoreFn,
    images: Sequence[Image],
    targets: Sequence[int] | NDArray[Any],
    eps: float,
    rngs: Sequence[np.random.Generator],
    *,
    objective: str = "flip",
    queries: int = DEFAULT_QUERIES,
    threshold: float = 0.5,
    positive: int | None = None,
    clean_probs: Probs | None = None,
    delta_norm: str = "linf",
    delta_goal: float | None = None,
    loss: str = "logit",
    p_init: float | None = None,
    corner_start: bool = True,
    chunk: int = DEFAULT_CHUNK,
) -> list[Outcome]:
    """Run the L-inf Square Attack on every image at once; return one `Outcome` each.

    `score_fn` maps a list of uint8 RGB images to N x K probabilities (`Model.predict`).
    For `objective` "flip", `targets` are class indices (true labels or clean decisions)
    and the search stops for a sample once its decision differs; binary models decide
    by `threshold` on column `positive` (None: argmax). With `clean_probs`, samples
    already decided otherwise are returned at once (the clean image is in the ball).
    For "delta", `targets` are the clean probabilities (N x K) and the search maximizes
    their change in `delta_norm` ("linf" or "l1"), stopping early only once it exceeds
    `delta_goal` when one is given. `queries` is the budget per sample, the first query
    included; `rngs[i]` is sample i's only source of randomness; `chunk` caps the
    images per `score_fn` call.

    The search is the paper's: vertical stripes of +-eps first, then one random square
    per query, of a side that shrinks on the paper's schedule from `p_init` (None: the
    share `initial_fraction` gives for eps), set to x +- eps with one random sign per
    channel, kept if the loss improves. **choice:**
    with `corner_start` (default) the second query tries a random vertex of the ball
    (one sign per pixel and channel) and keeps it if better: squares are piecewise
    constant and slow to find what pixel noise finds at once in a detector of fine
    detail, and a worst-case search should not be weaker than a random corner.
    """
    n = len(images)
    if len(rngs) != n or len(targets) != n:
        raise ValueError(f"{n} images need {n} targets and rngs")
    if queries < 1:
        raise ValueError(f"the query budget must be at least 1, got {queries}")
    goal: Objective
    if objective == "flip":
        goal = flip_objective(np.asarray(targets), threshold, positive, loss)
    elif objective == "delta":
        goal = delta_objective(np.asarray(targets, np.float64), delta_norm, delta_goal)
    else:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    steps = pixel_steps(eps)
    first = initial_fraction(steps) if p_init is None else p_init
    search = _Search(score_fn, images, goal, steps, queries, first, chunk, corner_start)
    search.run(rngs, clean_probs)
    return search.outcomes()


class _Search:
    """The state of one batched search: current images, best losses, queries spent."""

    def __init__(
        self,
        score_fn: ScoreFn,
        images: Sequence[Image],
        goal: Objective,
        steps: int,
        budget: int,
        p_init: float,
        chunk: int,
        corner_start: bool,
    ) -> None:
        for image in images:
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(
                    f"expected uint8 H x W x 3 images, got {image.dtype} {image.shape}"
                )
        self.score_fn, self.goal, self.steps = score_fn, goal, steps
        self.budget, self.p_init, self.chunk = budget, p_init, max(1, chunk)
        self.corner_start = corner_start
        self.clean = [np.asarray(im) for im in images]
        n = len(images)
        self.adv: list[Image] = list(self.clean)
        self.probs: list[Probs | None] = [None] * n
        self.best = np.full(n, -np.inf)
        self.spent = np.zeros(n, np.int64)
        self.success = np.zeros(n, bool)
        self.moved = np.zeros(n, bool)
        self.first: list[Probs | None] = [None] * n

    def run(self, rngs: Sequence[np.random.Generator], clean_probs: Probs | None) -> None:
        """Spend the budget: stripes first, then one random square per iteration."""
        active = self._skip_decided(clean_probs)
        if self.steps == 0:  # nothing to search: score the clean image once
            self._score(active, [self.clean[i] for i in active], first=True)
            return
        stripes = [self._stripes(i, rngs[i]) for i in active]
        active = self._score(active, stripes, first=True)
        if self.corner_start:
            corners = [self._corner(i, rngs[i]) for i in active]
            active = self._score(active, corners, first=False)
        iteration = 0
        while active:
            iteration += 1
            p = square_fraction(iteration, self.budget, self.p_init)
            candidates = [self._square(i, p, rngs[i]) for i in active]
            active = self._score(active, candidates, first=False)

    def _skip_decided(self, clean_probs: Probs | None) -> list[int]:
        """Return the samples to search; with `clean_probs`, those not already flipped."""
        everyone = list(range(len(self.clean)))
        if clean_probs is None or not self.goal.stops_on_success:
            return everyone
        rows = np.asarray(everyone, np.int64)
        probs = two_columns(np.asarray(clean_probs, np.float64))
        done = self.goal.succeeded(probs, rows, self.goal.losses(probs, rows))
        for i in np.flatnonzero(done):
            self.success[i], self.probs[i] = True, probs[i]
            self.best[i] = float(self.goal.losses(probs[i : i + 1], rows[i : i + 1])[0])
        return [i for i in everyone if not done[i]]

    def _stripes(self, i: int, rng: np.random.Generator) -> Image:
        """The paper's start: vertical stripes of +-eps, one sign per column and channel."""
        x = self.clean[i]
        signs = rng.choice(np.array([-1, 1], np.int16), size=(1, x.shape[1], 3))
        return np.clip(x.astype(np.int16) + signs * self.steps, 0, 255).astype(np.uint8)

    def _corner(self, i: int, rng: np.random.Generator) -> Image:
        """A random vertex of the ball: x +- eps with one sign per pixel and channel."""
        x = self.clean[i]
        signs = rng.choice(np.array([-1, 1], np.int16), size=x.shape)
        return np.clip(x.astype(np.int16) + signs * self.steps, 0, 255).astype(np.uint8)

    def _square(self, i: int, p: float, rng: np.random.Generator) -> Image:
        """The current image with one random square set to x +- eps, one sign per channel."""
        x, adv = self.clean[i], self.adv[i]
        height, width = x.shape[:2]
        side = square_side(p, height, width)
        for _ in range(REDRAWS):
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
            signs = rng.choice(np.array([-1, 1], np.int16), size=3) * self.steps
            area = (slice(top, top + side), slice(left, left + side))
            window = np.clip(x[area].astype(np.int16) + signs, 0, 255).astype(np.uint8)
            if not np.array_equal(window, adv[area]):
                break
        candidate = adv.copy()
        candidate[area] = window
        return candidate

    def _score(self, active: list[int], candidates: list[Image], first: bool) -> list[int]:
        """Score one candidate per active sample, keep improvements; return who goes on."""
        if not active:
            return []
        rows = np.asarray(active, np.int64)
        probs = self._predict(candidates)
        losses = self.goal.losses(probs, rows)
        wins = self.goal.succeeded(probs, rows, losses)
        keep = first | (losses > self.best[rows] + self.goal.noise) | (wins & ~self.success[rows])
        self.spent[rows] += 1
        for j, i in enumerate(active):
            reference = self.first[i] if self.goal.reference is None else self.goal.reference[i]
            if reference is not None:
                self.moved[i] |= bool(np.abs(probs[j] - reference).max() > self.goal.noise)
            if first:
                self.first[i] = probs[j]
            if keep[j]:
                self.adv[i], self.probs[i] = candidates[j], probs[j]
                self.best[i], self.success[i] = losses[j], wins[j]
        out_of_budget = self.spent[rows] >= self.budget
        finished = out_of_budget | (self.success[rows] & self.goal.stops_on_success)
        return [i for i, done in zip(active, finished) if not done]

    def _predict(self, images: list[Image]) -> Probs:
        """Score `images` in chunks of at most `chunk` per model call."""
        parts = [self._call(images[k : k + self.chunk]) for k in range(0, len(images), self.chunk)]
        probs = two_columns(np.concatenate(parts))
        if len(probs) != len(images):
            raise ValueError(f"score_fn gave {len(probs)} rows for {len(images)} images")
        return probs

    def _call(self, batch: list[Image]) -> Probs:
        """Call `score_fn`, never on a single image.

        onnxruntime runs a batch of one through other kernels than larger batches (a
        sample detector's p_fake moved by 1.9e-7), and keeping only improvements turns
        such noise into different images; pairing a lone image with itself keeps a
        sample's result independent of how many others share its calls.
        """
        if len(batch) == 1:
            return np.asarray(self.score_fn([batch[0], batch[0]]), np.float64)[:1]
        return np.asarray(self.score_fn(batch), np.float64)

    def outcomes(self) -> list[Outcome]:
        """Return the per-sample outcomes of the finished search."""
        scored = [p for p in self.probs if p is not None]
        assert len(scored) == len(self.clean), "a sample was never scored"
        return [
            Outcome(
                image=self.adv[i],
                probs=scored[i],
                queries=int(self.spent[i]),
                success=bool(self.success[i]),
                loss=float(self.best[i]) if np.isfinite(self.best[i]) else None,
                moved=bool(self.moved[i]),
            )
            for i in range(len(self.clean))
        ]


SCHEDULE = (
    f"squares start at a share p_init of the image of {P_INIT} up to eps "
    f"{P_INIT_KNEE}/255, {P_INIT} x (k/{P_INIT_KNEE})^2 at k/255, at most {P_INIT_MAX} "
    f"(from {P_INIT_KNEE * 4}/255 on), halved at the paper's milestones scaled to the budget"
)


def threat_model(queries: int, corner_start: bool = True) -> str:
    """Return the report's statement of what was searched and what it leaves out."""
    start = "vertical stripes, then a random corner of the ball" if corner_start else "stripes"
    return (
        f"Black-box search from model outputs only: the L-inf Square Attack "
        f"(Andriushchenko et al., ECCV 2020), untargeted, {queries} queries per sample "
        f"and level, starting from {start}; {SCHEDULE}; on the raw image in whole pixel "
        f"steps (eps rounded down to k/255), each candidate rounded to uint8 before scoring. "
        f"A search that fails is not a proof of robustness: a white-box attacker with "
        f"gradients (PGD, AutoAttack), a larger budget, restarts, or transfer from a "
        f"surrogate model can find points this search missed."
    )


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Return the report's figures: queries spent (median, p90), success fraction, ...

    `unaffected` is true when no query moved any sample's output: the model ignores
    its input within this ball (a constant model), which is a finding, not an error.
    """
    if not outcomes:
        return {"n": 0, "success_fraction": None, "queries_median": None, "queries_p90": None,
                "queries_total": 0, "moved_fraction": None, "loss_median": None,
                "unaffected": None}  # fmt: skip
    spent = np.array([o.queries for o in outcomes], np.float64)
    losses = [o.loss for o in outcomes if o.loss is not None]
    return {
        "n": len(outcomes),
        "success_fraction": float(np.mean([o.success for o in outcomes])),
        "queries_median": float(np.median(spent)),
        "queries_p90": float(np.percentile(spent, 90)),
        "queries_total": int(spent.sum()),
        "moved_fraction": float(np.mean([o.moved for o in outcomes])),
        "loss_median": float(np.median(losses)) if losses else None,
        "unaffected": not any(o.moved for o in outcomes),
    }

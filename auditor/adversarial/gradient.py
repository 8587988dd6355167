"""Gradient attacks on the raw image through the twin: FGSM, PGD, APGD-CE and CW-L2.

Each attack is a generator per sample that yields candidate images (floats in pixel
units); `run_attack` rounds every candidate to uint8 inside the threat model's ball
and has the real pipeline score it (`Tracker`), which keeps each sample's best point
exactly as `square_linf` does. The twin only proposes; onnxruntime decides.

- FGSM (Goodfellow et al. 2015): one step of eps along the gradient's sign.
- PGD (Madry et al. 2018): random start in the ball, `steps` signed steps of
  2.5 eps / steps, projected; `restarts` independent starts.
- APGD-CE (Croce & Hein, ICML 2020, Algorithm 1): step size 2 eps halved at the
  checkpoints where progress stalled, momentum 0.75, restarts from the best point.
- CW-L2 (Carlini & Wagner 2017): Adam on tanh-space w, minimizing ||d||^2 + c f, with a
  binary search over c; every iterate is projected onto the level's L2 budget to give
  the level's candidate, and the smallest successful L2 is recorded.

The L-inf ball is the one `square_linf` searches: eps rounded down to whole pixel steps r,
the image kept in 0..255. Every random draw comes from the sample's own generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray

from auditor.adversarial.objectives import Objective, two_columns
from auditor.adversarial.square import Outcome
from auditor.adversarial.twin import GradientTwin

Tensor = torch.Tensor
Image = NDArray[np.uint8]
Probs = NDArray[np.float64]
Loss = Callable[[Tensor], Tensor]  # log-probabilities (1 x K) -> value to maximize

PGD_STEP = 2.5  # PGD's step is PGD_STEP * eps / steps (Madry et al.)
APGD_MOMENTUM = 0.75  # alpha of Algorithm 1
APGD_RHO = 0.75  # share of improving steps below which the step size halves
CW_BINARY_STEPS = 5
CW_LEARNING_RATE = 0.05  # on tanh-space w: up to ~6 grey levels a step, for tens of steps
CW_C_INIT = 1.0
CW_KAPPA = 0.0
DELTA_TIE_BREAK = 1e-3  # weight of "away from the clean class" in the delta surrogate


@dataclass
class Sample:
    """One sample's attack: clean pixels, its ball and its generator."""

    clean: Tensor  # H x W x 3 pixel floats
    low: Tensor  # the ball's bounds, inside 0..255
    high: Tensor
    rng: np.random.Generator
    l2: list[float] = field(default_factory=list)  # CW: smallest successful L2 (RMS, 0..1)


def ball(clean: Tensor, radius: int) -> tuple[Tensor, Tensor]:
    """The L-inf ball of `radius` whole pixel steps around `clean`, inside 0..255."""
    return torch.clamp(clean - radius, 0, 255), torch.clamp(clean + radius, 0, 255)


def uniform_start(sample: Sample, radius: int) -> Tensor:
    """A uniform random point of the ball (PGD's and APGD's start), from the sample's rng."""
    noise = sample.rng.uniform(-radius, radius, size=tuple(sample.clean.shape))
    start = sample.clean + torch.as_tensor(
        noise, dtype=sample.clean.dtype, device=sample.clean.device
    )
    return torch.maximum(torch.minimum(start, sample.high), sample.low)


def project(x: Tensor, sample: Sample) -> Tensor:
    return torch.maximum(torch.minimum(x, sample.high), sample.low)


def fgsm(twin: GradientTwin, sample: Sample, loss: Loss, radius: int) -> Iterator[Tensor]:
    """One step of `radius` pixel steps along the sign of the gradient at the clean image."""
    _, grad = twin.gradient(sample.clean, loss)
    yield project(sample.clean + radius * torch.sign(grad), sample)


def pgd(
    twin: GradientTwin, sample: Sample, loss: Loss, radius: int, steps: int, restarts: int
) -> Iterator[Tensor]:
    """Projected signed gradient ascent from a random start; every point is a candidate.

    The start itself is scored too, so the attack never does worse than a random point
    of the ball (`linf_noise`).
    """
    step = PGD_STEP * radius / steps
    for _ in range(restarts):
        x = uniform_start(sample, radius)
        yield x
        for _ in range(steps):
            _, grad = twin.gradient(x, loss)
            x = project(x + step * torch.sign(grad), sample)
            yield x


def apgd_checkpoints(iterations: int) -> list[int]:
    """The iterations w_j where APGD checks its progress: ceil(p_j N) with the paper's p_j."""
    p = [0.0, 0.22]
    while True:
        following = p[-1] + max(p[-1] - p[-2] - 0.03, 0.06)
        if following > 1:
            break
        p.append(following)
    return sorted({math.ceil(round(q * iterations, 9)) for q in p})  # 0.41 * 100 is 41


def apgd(
    twin: GradientTwin, sample: Sample, loss: Loss, radius: int, iterations: int, restarts: int
) -> Iterator[Tensor]:
    """APGD (Croce & Hein 2020, Algorithm 1) from a random start; each iterate a candidate."""
    checkpoints = apgd_checkpoints(iterations)
    for _ in range(restarts):
        eta = 2.0 * radius
        x_prev = uniform_start(sample, radius)
        yield x_prev
        f_prev, grad = twin.gradient(x_prev, loss)
        best, f_best, grad_best = x_prev, f_prev, grad
        x = project(x_prev + eta * torch.sign(grad), sample)  # x(1)
        yield x
        since, last_eta, last_best, last_check = 0, eta, f_best, 0
        for k in range(1, iterations):
            f, grad = twin.gradient(x, loss)
            since += int(f > f_prev)
            f_prev = f
            if f > f_best:
                best, f_best, grad_best = x, f, grad
            if k in checkpoints:
                stalled = since < APGD_RHO * (k - last_check)
                flat = last_eta == eta and bool(last_best == f_best)
                last_eta, last_best, last_check, since = eta, f_best, k, 0
                if stalled or flat:  # halve the step, go back to the best point
                    eta /= 2
                    x, x_prev, grad = best, best, grad_best
            z = project(x + eta * torch.sign(grad), sample)
            x, x_prev = project(x + APGD_MOMENTUM * (z - x) + (1 - APGD_MOMENTUM) * (x - x_prev),
                                sample), x  # fmt: skip
            yield x


def cw_l2(
    twin: GradientTwin,
    sample: Sample,
    loss: Loss,
    budget: float,
    steps: int,
    succeeded: Callable[[Tensor], bool],
    noise: bool,
) -> Iterator[Tensor]:
    """Carlini-Wagner L2 with a binary search over c; yields each iterate inside `budget`.

    `loss` is the attacker's margin-like objective (the CW f is max(-loss, -kappa));
    `succeeded(log_probs)` says whether an unconstrained iterate met the goal, whose
    RMS L2 (0..1 scale) is kept in `sample.l2` when smaller than any before. `budget`
    is the level's L2 bound in pixel units.
    """
    clean = sample.clean
    w0 = torch.atanh(torch.clamp(clean / 127.5 - 1, -1 + 1e-6, 1 - 1e-6))
    if noise:  # the delta goal has no gradient at the clean image: start off it
        jitter = sample.rng.uniform(-1e-2, 1e-2, size=tuple(clean.shape))
        w0 = w0 + torch.as_tensor(jitter, dtype=w0.dtype, device=w0.device)
    c, lower, upper = CW_C_INIT, 0.0, math.inf
    best = math.inf
    for _ in range(CW_BINARY_STEPS):
        w = w0.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([w], lr=CW_LEARNING_RATE)
        hit = False
        for _ in range(steps):
            x = (torch.tanh(w) + 1) * 127.5
            log_probs = twin.log_probs(x)
            distance = torch.sum(((x - clean) / 255) ** 2)
            total = distance + c * torch.clamp(-loss(log_probs), min=-CW_KAPPA)
            if succeeded(log_probs.detach()):
                hit = True
                rms = math.sqrt(float(distance.detach()) / clean.numel())
                best = min(best, rms)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            yield within_l2(((torch.tanh(w) + 1) * 127.5).detach(), clean, budget)
        if hit:
            upper = min(upper, c)
            c = (lower + upper) / 2
        else:
            lower = max(lower, c)
            c = c * 10 if math.isinf(upper) else (lower + upper) / 2
    if math.isfinite(best):
        sample.l2.append(best)


def within_l2(x: Tensor, clean: Tensor, budget: float) -> Tensor:
    """`x` moved toward `clean` to an L2 distance of at most `budget`, on whole pixels."""
    delta = x - clean
    norm = float(torch.linalg.vector_norm(delta))
    if norm > budget:
        delta = delta * (budget / norm)
    return clean + torch.trunc(delta)  # truncating toward 0 cannot leave the ball


def to_pixels(x: Tensor, sample: Sample) -> Image:
    """A candidate rounded to uint8 inside the sample's ball."""
    rounded = torch.round(project(x, sample))
    return np.clip(rounded.detach().cpu().numpy(), 0, 255).astype(np.uint8)


class Tracker:
    """Scores candidates with the real pipeline and keeps each sample's best point."""

    def __init__(
        self,
        score_fn: Callable[[Sequence[Image]], Probs],
        images: Sequence[Image],
        goal: Objective,
        clean_probs: Probs,
        stop_on_success: bool,
    ) -> None:
        self.score_fn, self.goal = score_fn, goal
        self.stop_on_success = stop_on_success and goal.stops_on_success
        self.clean = list(images)
        self.clean_probs = two_columns(np.asarray(clean_probs, np.float64))
        n = len(images)
        rows = np.arange(n, dtype=np.int64)
        self.images: list[Image] = list(self.clean)
        self.probs = self.clean_probs.copy()
        self.best = goal.losses(self.probs, rows)
        self.success = goal.succeeded(self.probs, rows, self.best) & goal.stops_on_success
        self.spent = np.zeros(n, np.int64)
        self.moved = np.zeros(n, bool)

    def searching(self) -> list[int]:
        """The samples to attack: with a flip goal, those not already flipped."""
        return [i for i in range(len(self.clean)) if not self.success[i]]

    def offer(self, active: Sequence[int], candidates: Sequence[Image]) -> None:
        """Score one candidate per active sample and keep the improvements."""
        if not active:
            return
        rows = np.asarray(active, np.int64)
        probs = self._predict(candidates)
        losses = self.goal.losses(probs, rows)
        wins = self.goal.succeeded(probs, rows, losses)
        keep = (losses > self.best[rows] + self.goal.noise) | (wins & ~self.success[rows])
        self.spent[rows] += 1
        for j, i in enumerate(active):
            self.moved[i] |= bool(np.abs(probs[j] - self.clean_probs[i]).max() > self.goal.noise)
            if keep[j]:
                self.images[i], self.probs[i] = candidates[j], probs[j]
                self.best[i], self.success[i] = losses[j], wins[j]

    def finished(self, i: int) -> bool:
        return bool(self.stop_on_success and self.success[i])

    def outcomes(self) -> list[Outcome]:
        return [
            Outcome(
                image=self.images[i],
                probs=self.probs[i],
                queries=int(self.spent[i]),
                success=bool(self.success[i]),
                loss=float(self.best[i]) if np.isfinite(self.best[i]) else None,
                moved=bool(self.moved[i]),
            )
            for i in range(len(self.clean))
        ]

    def _predict(self, images: Sequence[Image]) -> Probs:
        # A lone image is paired with itself: onnxruntime's batch-of-one kernels differ in
        # the last bits, and a sample's result must not depend on who shares its calls.
        batch = list(images) if len(images) > 1 else [images[0], images[0]]
        probs = two_columns(np.asarray(self.score_fn(batch), np.float64))
        return probs[: len(images)]


def run_attack(
    tracker: Tracker,
    generators: dict[int, Iterator[Tensor]],
    samples: Sequence[Sample],
) -> None:
    """Advance every sample's generator in lock step, scoring each round in one call."""
    active = list(generators)
    while active:
        offered, candidates = [], []
        for i in active:
            x = next(generators[i], None)
            if x is not None:
                offered.append(i)
                candidates.append(to_pixels(x, samples[i]))
        tracker.offer(offered, candidates)
        active = [i for i in offered if not tracker.finished(i)]
        for i in set(generators) - set(active):
            close = getattr(generators.pop(i), "close", None)
            if close is not None:  # a generator stopped early frees its tensors now
                close()

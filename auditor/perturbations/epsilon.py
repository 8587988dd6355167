"""The epsilon ladder: random points of the L-inf ball of radius `eps` around the image.

`eps` is on the [0, 1] scale; the default ladder is 1, 2, 4, 8, 16 / 255 and any list
works (`-p linf_noise:eps=0.01,0.05,0.1,0.2`). The noise is drawn band by band so a
12 Mpx photo never needs more than a few MB of floats.
"""

from __future__ import annotations

import numpy as np

from auditor.perturbations import offsets
from auditor.perturbations.pixels import from_pixels, in_bands
from auditor.perturbations.registry import Image, perturbation

EPS_LADDER = (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)


@perturbation("linf_noise", family="epsilon", levels={"eps": EPS_LADDER}, ranges={"eps": (0, 1)})
def linf_noise(image: Image, rng: np.random.Generator, *, eps: float) -> Image:
    """Uniform noise in [-eps, eps] per pixel: a random point of the L-inf ball."""
    # Working in pixel units keeps eps = k/255 exact: +-k pixel values at most. The
    # rounded noise is drawn directly as whole-pixel offsets (see `offsets`).
    table = offsets.uniform(abs(eps) * 255.0)

    def band(part: Image) -> Image:
        return offsets.add(part, offsets.draw(rng, part.shape, table))

    return in_bands(image, band)


@perturbation("linf_sign", family="epsilon", levels={"eps": EPS_LADDER}, ranges={"eps": (0, 1)})
def linf_sign(image: Image, rng: np.random.Generator, *, eps: float) -> Image:
    """Add +eps or -eps per pixel at random: a random corner of the L-inf ball."""
    step = np.float32(abs(eps) * 255.0)

    def band(part: Image) -> Image:
        signs = rng.integers(0, 2, size=part.shape, dtype=np.int8) * np.int8(2) - np.int8(1)
        return from_pixels(part.astype(np.float32) + signs * step)

    return in_bands(image, band)

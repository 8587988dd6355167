"""Random generators derived from (seed, sample, perturbation, level, repeat).

No draw in `auditor` comes from global state: each one comes from a generator
built here, so results do not depend on batch size, worker count, order or
resumption.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stable_id(text: str) -> int:
    """Return a 64-bit integer for `text` that is the same on every run and machine."""
    # Python's hash() is salted per process, so it cannot be used here. Any str hashes:
    # a file name that is not UTF-8 (surrogate escapes) as its bytes, other text as UTF-8.
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # lone surrogates that escape no byte
        raw = text.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "little")


def derive_rng(
    seed: int, sample_key: str, perturbation: str, level: int, repeat: int
) -> np.random.Generator:
    """Return the generator for one draw of `perturbation` at `level` on one sample."""
    entropy = [seed, stable_id(sample_key), stable_id(perturbation), level, repeat]
    return np.random.default_rng(np.random.SeedSequence(entropy))

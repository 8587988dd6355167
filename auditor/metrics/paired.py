"""Per-sample outcomes as bitsets, and the exact McNemar test that pairs two models on them.

An audit stores, per level, which samples were counted correct (RA), robust at each
tolerance (RR) and flipped, one bit per sample in the order of the results'
`data.manifest` (sorted by path). Two models audited on the same manifest and settings
saw the very same perturbed pixels, so their bits are paired and the exact McNemar test
on the discordant samples says whether the two rates differ.

Encoding: bit i of the bitset (sample i of the manifest) is bit `i % 8` of byte `i // 8`,
least significant bit first (numpy's `packbits(..., bitorder="little")`); the bytes are
written in standard base64 with padding. The unused high bits of the last byte are 0.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SIGNIFICANCE = 0.05
"""A difference is called "different" at p below this (no correction for many tests)."""


def pack_bits(bits: NDArray[np.bool_]) -> str:
    """Return the base64 bitset of `bits` (bit i: byte i // 8, least significant first)."""
    packed = np.packbits(np.asarray(bits, dtype=bool), bitorder="little")
    return base64.b64encode(packed.tobytes()).decode("ascii")


def unpack_bits(text: str, n: int) -> NDArray[np.bool_]:
    """Return the `n` bits of a base64 bitset written by `pack_bits`; `ValueError` if it cannot."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"not a base64 bitset: {exc}") from None
    if len(raw) != (n + 7) // 8:
        raise ValueError(f"a bitset of {n} samples has {(n + 7) // 8} bytes, found {len(raw)}")
    bits = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")
    return bits[:n].astype(bool)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value of `only_a` and `only_b` discordant pairs.

    Under "no difference" each discordant pair goes either way with probability 1/2, so
    the smaller count is binomial(only_a + only_b, 1/2): p = min(1, 2 P(X <= smaller)),
    computed exactly in integers and rounded once. No discordant pair gives p = 1.
    """
    n = only_a + only_b
    term = tail = 1  # comb(n, 0), then comb(n, k) by its recurrence
    for k in range(min(only_a, only_b)):
        term = term * (n - k) // (k + 1)
        tail += term
    # Integer true division is correctly rounded in Python, however large n is.
    return min(1.0, 2 * tail / (1 << n))


@dataclass(frozen=True)
class Paired:
    """One paired test: the discordant counts and the exact McNemar p-value."""

    only_a: int  # samples counted for model A but not for B
    only_b: int  # and the other way round
    p: float

    @property
    def different(self) -> bool:
        """Whether the two rates differ at the SIGNIFICANCE level."""
        return self.p < SIGNIFICANCE


def paired_test(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> Paired:
    """The McNemar test of two models' bits over the same samples, in the same order."""
    if a.shape != b.shape:
        raise ValueError(f"bitsets of {a.shape[0]} and {b.shape[0]} samples cannot be paired")
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    return Paired(only_a, only_b, mcnemar_p(only_a, only_b))

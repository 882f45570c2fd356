"""The seed report's CNN (report section 1.2) and its improved variant (section 1.3.5).

Baseline: conv 3->16->32->64 (3x3, padding 1), each followed by ReLU and 2x2
max-pool; fc 1024->500->10 with ReLU between. The report's later changes are
options: ``bias`` (1.3.5d removed every bias), ``dropout`` (1.3.5b: after the
conv stack and after fc1) and ``batch_norm`` (1.3.5e: after each conv's ReLU,
before the pool, exactly as the report's code places it).
"""

from __future__ import annotations

import torch
from torch import nn

from cifarlab.models.registry import CifarModel, register_model


class SeedNet(CifarModel):
    def __init__(
        self,
        num_classes: int = 10,
        bias: bool = True,
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise TypeError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        in_ch = 3
        for out_ch in (16, 32, 64):
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias), nn.ReLU()]
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.MaxPool2d(2))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        # The report's F.relu after the last pool is a no-op on non-negative input; omitted.
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc1 = nn.Linear(64 * 4 * 4, 500, bias=bias)
        self.fc2 = nn.Linear(500, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.features(x)).flatten(1)
        x = self.drop(torch.relu(self.fc1(x)))
        return self.fc2(x)


@register_model("seednet")
def seednet(
    num_classes: int = 10, bias: bool = True, dropout: float = 0.0, batch_norm: bool = False
) -> SeedNet:
    """The report's baseline CNN (71.77% test accuracy in the report)."""
    return SeedNet(num_classes, bias=bias, dropout=dropout, batch_norm=batch_norm)


@register_model("seednet-improved")
def seednet_improved(num_classes: int = 10, dropout: float = 0.5) -> SeedNet:
    """The report's final network: no biases, dropout 0.5, batch norm (77.70% in the report)."""
    return SeedNet(num_classes, bias=False, dropout=dropout, batch_norm=True)

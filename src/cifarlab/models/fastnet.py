"""fastnet: the airbench family of fast CIFAR-10 networks.

Source: Keller Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU",
arXiv 2404.00498 (2024), sections 3.1-3.4, written from the paper's description:

- a 2x2 convolution with 2 * 3 * 2 * 2 = 24 filters, padding 0, whose weights are
  the eigenvectors of the covariance of 2x2 training patches scaled by the inverse
  square root of their eigenvalues, in both signs (patch whitening); the weights
  are frozen; its bias trains only for the first part of training;
- GELU, then three conv groups (conv -> 2x2 max-pool -> batch norm -> GELU ->
  conv -> batch norm -> GELU), widths 64/256/256, 3x3 convs without bias whose
  first ``in_channels`` filters start as the identity (dirac) init;
- batch norm without a learnable scale, eps 1e-12, running-stat momentum 0.6
  (PyTorch convention 0.4);
- a final 3x3 max-pool, then a bias-free linear head whose output is multiplied by
  a small constant (1/9 in the paper's SGD recipe; the Muon variant of the
  repository, airbench94_muon.py, uses unit-std head weights and 1/256).

The model names its parameters by role (``parameter_roles``: filters, biases, head);
their learning rates (the paper's 3.3: biases at a higher lr) are the recipe's
``[optim]`` options, applied by train/optim.py. The whitening bias is frozen
through ``after_step`` (see ``CifarModel``), which the training loop calls after
every step, and which forward reads without a host synchronisation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cifarlab.models.registry import CifarModel, register_model
from cifarlab.runtime import fp32_linear


class _BatchNorm(nn.BatchNorm2d):
    """Batch norm with a fixed unit scale and a learnable shift (paper 3.2)."""

    def __init__(self, channels: int, momentum: float) -> None:
        super().__init__(channels, eps=1e-12, momentum=1.0 - momentum)
        self.weight.requires_grad_(False)


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():
        # Identity init of the first c_in filters (paper 3.2: "dirac" initialisation).
        nn.init.dirac_(conv.weight[: min(c_in, c_out)])
    return conv


class ConvGroup(nn.Module):
    """conv -> max-pool 2 -> BN -> GELU -> conv -> BN -> GELU."""

    def __init__(self, c_in: int, c_out: int, bn_momentum: float) -> None:
        super().__init__()
        self.conv1 = _conv(c_in, c_out)
        self.norm1 = _BatchNorm(c_out, bn_momentum)
        self.conv2 = _conv(c_out, c_out)
        self.norm2 = _BatchNorm(c_out, bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class FastNet(CifarModel):
    def __init__(
        self,
        num_classes: int = 10,
        widths: tuple[int, int, int] | list[int] = (64, 256, 256),
        bn_momentum: float = 0.6,
        head_scale: float = 1 / 9,
        head_init: str = "default",
        whiten_eps: float = 5e-4,
        whiten_bias_train: float = 0.3,
    ) -> None:
        super().__init__()
        if len(widths) != 3 or any(int(w) <= 0 for w in widths):
            raise TypeError(f"widths must be three positive integers, got {widths}")
        if head_init not in ("default", "unit"):
            raise TypeError(f"head_init must be 'default' or 'unit', got {head_init!r}")
        if not 0.0 <= whiten_bias_train <= 1.0:
            raise TypeError(f"whiten_bias_train must be in [0, 1], got {whiten_bias_train}")
        w1, w2, w3 = (int(w) for w in widths)
        k = 2
        self.whiten = nn.Conv2d(3, 2 * 3 * k * k, k, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.group1 = ConvGroup(2 * 3 * k * k, w1, bn_momentum)
        self.group2 = ConvGroup(w1, w2, bn_momentum)
        self.group3 = ConvGroup(w2, w3, bn_momentum)
        self.head = nn.Linear(w3, num_classes, bias=False)
        if head_init == "unit":
            with torch.no_grad():
                self.head.weight /= self.head.weight.std()
        self.head_scale = float(head_scale)
        self.whiten_eps = float(whiten_eps)
        self.whiten_bias_train = float(whiten_bias_train)
        # Whether the whitening bias is frozen. forward reads a Python bool: reading a tensor
        # there would cost a host synchronisation every step. The buffer records it in
        # checkpoints (as ever), and loading a state dict sets the bool from it, once.
        self._whiten_bias_frozen = False
        self.register_buffer("whiten_bias_frozen", torch.tensor(False))
        self.register_load_state_dict_post_hook(_read_whiten_bias_frozen)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Set the whitening filters from the covariance of 2x2 patches of ``x`` (N, 3, H, W)."""
        c, (h, w) = x.shape[1], self.whiten.weight.shape[2:]
        patches = x.float().unfold(2, h, 1).unfold(3, w, 1)  # N, C, H', W', h, w
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * h * w)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov.double())
        filters = eigenvectors.T / torch.sqrt(eigenvalues.clamp(min=0) + self.whiten_eps)[:, None]
        filters = filters.reshape(-1, c, h, w).to(self.whiten.weight.dtype)
        self.whiten.weight.copy_(torch.cat((filters, -filters)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.whiten.bias.detach() if self._whiten_bias_frozen else self.whiten.bias
        x = F.gelu(F.conv2d(x, self.whiten.weight, bias))
        x = self.group3(self.group2(self.group1(x)))
        # A global max: at 32x32 the map here is 3x3 (airbench's MaxPool2d(3)); at smaller
        # training sizes (train.resolutions) it is smaller, and the max is still over all of it.
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return fp32_linear(self.head, x) * self.head_scale

    def after_step(self, step: int, total_steps: int) -> None:
        """Freeze the whitening bias once ``whiten_bias_train`` of the steps are done (it trains
        for at least the first step); a function of (step, total_steps) alone, so the call at
        a resume restores it."""
        frozen = step >= max(1, math.ceil(self.whiten_bias_train * total_steps))
        if frozen != self._whiten_bias_frozen:
            self._whiten_bias_frozen = frozen
            self.whiten_bias_frozen.fill_(frozen)

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        """The conv filters but the frozen whitening ones; the whitening bias and the batch-norm
        shifts (their scales are frozen at 1); the head (paper 3.3, airbench94_muon's groups)."""
        filters = [
            m.weight for m in self.modules() if isinstance(m, nn.Conv2d) and m is not self.whiten
        ]
        biases = [self.whiten.bias] + [
            m.bias for m in self.modules() if isinstance(m, _BatchNorm) and m.bias.requires_grad
        ]
        return {"weights": filters, "biases": biases, "head": [self.head.weight]}


def _read_whiten_bias_frozen(model: FastNet, incompatible_keys) -> None:
    # A load_state_dict post-hook: the one host read of the buffer, at load time.
    model._whiten_bias_frozen = bool(model.whiten_bias_frozen)


@register_model("fastnet")
def fastnet(num_classes: int = 10, **options) -> FastNet:
    """airbench-style network (arXiv 2404.00498): whitening conv + three conv groups, ~2M params."""
    return FastNet(num_classes, **options)

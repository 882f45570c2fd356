"""Benchmarks: training and inference throughput per model, and time to accuracy per recipe.

Throughput is measured on random inputs of CIFAR shape (speed does not depend on the
pixel values), after warm-up steps, in interleaved rounds so that load from other
processes on a shared machine falls on every configuration alike; the median is
reported. A configuration is a precision and a memory format: ``fp32``, ``fp32+cl``
(channels_last), ``bf16``, ``bf16+cl``, ``fp16+cl``. Nothing here gates a test on time.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cifarlab.errors import RecipeError
from cifarlab.rundir import RunDir
from cifarlab.runtime import autocast, resolve_device

CONFIGS = {
    "fp32": (None, False),
    "fp32+cl": (None, True),
    "bf16": (torch.bfloat16, False),
    "bf16+cl": (torch.bfloat16, True),
    "fp16+cl": (torch.float16, True),
}


def default_configs(device: torch.device) -> list[str]:
    """fp32 and channels_last on the CPU (bf16 is ~20x slower without AVX512-BF16/AMX: see
    docs/BENCHMARKS.md), fp32 and bf16 AMP + channels_last on CUDA."""
    if device.type == "cuda":
        return ["fp32", "bf16+cl"]
    return ["fp32", "fp32+cl"]


def parse_configs(text: str | None, device: torch.device) -> list[str]:
    if not text:
        return default_configs(device)
    names = [c.strip() for c in text.split(",") if c.strip()]
    for name in names:
        if name not in CONFIGS:
            raise RecipeError(f"--configs: unknown {name!r}; choose from {', '.join(CONFIGS)}")
    return names


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def model_throughput(
    name: str,
    device: str | torch.device = "auto",
    configs: list[str] | None = None,
    batch_size: int = 256,
    steps: int = 5,
    warmup: int = 2,
    rounds: int = 2,
    infer_batch_size: int | None = None,
) -> dict[str, Any]:
    """Training and inference images/s of model ``name`` for each configuration.

    A training step is forward, cross-entropy, backward and an SGD step; inference is a
    no-grad forward in eval mode. Returns ``{"model", "device", "batch_size", "configs":
    {config: {"train_img_s", "infer_img_s"}}}``.
    """
    from cifarlab.models import create_model

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    configs = configs or default_configs(dev)
    infer_bs = infer_batch_size or batch_size * 4
    states = {}
    for cfg in configs:
        dtype, cl = CONFIGS[cfg]
        fmt = torch.channels_last if cl else torch.contiguous_format
        torch.manual_seed(0)
        model = create_model(name).to(dev, memory_format=fmt)
        opt = torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9
        )
        states[cfg] = (model, opt, dtype, fmt)
    x = torch.randn(batch_size, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (batch_size,), device=dev)
    xi = torch.randn(infer_bs, 3, 32, 32, device=dev)
    train_t: dict[str, list[float]] = {c: [] for c in configs}
    infer_t: dict[str, list[float]] = {c: [] for c in configs}

    for r in range(rounds + 1):
        n = warmup if r == 0 else steps
        for cfg, (model, opt, dtype, fmt) in states.items():
            xb, xib = x.contiguous(memory_format=fmt), xi.contiguous(memory_format=fmt)
            model.train()
            for _ in range(n):
                _sync(dev)
                tick = time.perf_counter()
                with autocast(dev, dtype):
                    out = model(xb)
                loss = F.cross_entropy(out.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                _sync(dev)
                if r:
                    train_t[cfg].append(time.perf_counter() - tick)
            model.eval()
            with torch.no_grad():
                for _ in range(max(n // 2, 1)):
                    _sync(dev)
                    tick = time.perf_counter()
                    with autocast(dev, dtype):
                        model(xib)
                    _sync(dev)
                    if r:
                        infer_t[cfg].append(time.perf_counter() - tick)
    return {
        "model": name,
        "device": str(dev),
        "batch_size": batch_size,
        "configs": {
            c: {
                "train_img_s": batch_size / statistics.median(train_t[c]),
                "infer_img_s": infer_bs / statistics.median(infer_t[c]),
            }
            for c in configs
        },
    }


def time_to_accuracy(
    recipe: str,
    target: float,
    *,
    out_dir: str | Path,
    overrides: dict[str, Any] | list[str] | None = None,
    data_dir: str | None = None,
    data=None,
    log=print,
) -> dict[str, Any]:
    """Train ``recipe`` into ``out_dir`` and report when it reached ``target`` accuracy.

    ``target`` is a fraction (0.94). Reported: the training time at the first
    validation point at or above the target (when the recipe has a validation split),
    the final test accuracy (and with TTA when the recipe uses it), the training time
    and the whole command's wall time; ``reached`` says whether the final test accuracy
    (TTA when used, as airbench reports) met the target.
    """
    from cifarlab.train.loop import train

    if not 0.0 < target <= 1.0:
        raise RecipeError(f"--target: expected an accuracy in (0, 1], e.g. 0.94, got {target}")
    tick = time.perf_counter()
    metrics = train(
        recipe, out_dir=out_dir, overrides=overrides, data_dir=data_dir, data=data, log=log
    )
    wall = time.perf_counter() - tick
    history = RunDir(out_dir).history()
    first_val = None
    for acc, t in zip(history["val_acc"], history["time_s"], strict=True):
        if acc is not None and acc >= target:
            first_val = t
            break
    final = metrics.get("test_accuracy_tta", metrics["test_accuracy"])
    return {
        "recipe": metrics["recipe"],
        "seed": metrics["seed"],
        "target": target,
        "reached": final >= target,
        "test_accuracy": metrics["test_accuracy"],
        "test_accuracy_tta": metrics.get("test_accuracy_tta"),
        "tta": metrics.get("tta", "none"),
        "train_time_s": metrics["train_time_s"],
        "val_time_to_target_s": first_val,
        "wall_time_s": round(wall, 3),
        "device": metrics["provenance"].get("device")
        if isinstance(metrics.get("provenance"), dict)
        else None,
        "run": str(out_dir),
    }

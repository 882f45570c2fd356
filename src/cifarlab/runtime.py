"""Device, precision and memory-format choices, and the provenance of a result."""

from __future__ import annotations

import contextlib
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from cifarlab.errors import RecipeError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda, else mps, else cpu; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RecipeError(
            "system.device: 'cuda' was asked for but torch sees no CUDA device; use --device cpu"
        )
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise RecipeError(
            "system.device: 'mps' was asked for but is not available; use --device cpu"
        )
    return torch.device(name)


def check_sync_bn(sync_bn: bool, device: torch.device) -> None:
    """``system.sync_bn`` only where torch has SyncBatchNorm kernels: CUDA GPUs."""
    if sync_bn and device.type != "cuda":
        raise RecipeError(
            f"system.sync_bn: torch's SyncBatchNorm runs on CUDA GPUs only and this run is on "
            f"{device.type}; set system.sync_bn=false"
        )


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX-BF16), as torch sees it."""
    capabilities = getattr(torch.cpu, "get_capabilities", dict)()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for a recipe's precision on ``device`` (None = plain fp32).

    ``auto``: bf16 on CUDA when supported (else fp16); on the CPU, bf16 where the CPU has
    native bf16 (AVX512-BF16 / AMX, ``cpu_has_native_bf16``) and fp32 elsewhere; fp32 on MPS.
    Measured side by side (benchmarks/bench_precision.py, docs/BENCHMARKS.md), a fastnet
    training step at batch 500 on 2 cores: on an AVX2-only CPU bf16 ran 4-20x *slower* than
    fp32, on an AVX-512-BF16 one (AMD EPYC, 2026-11-30) 1.88x faster (bf16 + channels_last
    484 img/s, fp32 + channels_last 257; ResNet-18 at batch 128: 1.93x). Recipes that must
    stay in fp32 everywhere (the report's own, so issue 15's budget unit) say ``precision =
    "fp32"``; channels_last stays a recipe choice (``system.channels_last``).
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    """The name a run records for its autocast dtype: fp32, bf16 or fp16."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """A torch.autocast context for ``dtype``, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


# Evaluation on the CPU: channels_last in batches of at most 128. Measured interleaved in one
# script on our 2-core AVX2 machine while it was loaded (load 1.2-2.5, so the ratios count, not
# the seconds; seednet-improved, 10,000 images): NCHW in batches of 1000 (the old way) 4.6 s,
# NCHW/128 2.2 s, channels_last/128 1.1 s (oneDNN's blocked kernels,
# and a batch whose activations stay in cache). Training itself stays in the recipe's format:
# for seednet at batch 32, channels_last trained 0.76x as fast.
CPU_EVAL_BATCH = 128


def eval_batch_and_format(
    device: torch.device, batch_size: int, fmt: torch.memory_format
) -> tuple[int, torch.memory_format]:
    """The batch size and memory format to evaluate with on ``device``."""
    if device.type == "cpu":
        return min(batch_size, CPU_EVAL_BATCH), torch.channels_last
    return batch_size, fmt


def fp32_linear(layer: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` in fp32 on the CPU even inside bf16 autocast.

    Why: on CPUs without native bf16 (AVX2 only, as our 2-core machine) a bf16 matmul
    runs at ~0.9 GFLOP/s against ~45 GFLOP/s in fp32, so autocast's bf16 Linear would
    dominate a step. Convolutions go through oneDNN and are measured separately
    (benchmarks/bench_precision.py). On CUDA the layer stays under autocast.
    """
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return layer(x.float())
    return layer(x)


def git_commit() -> str:
    """The commit of the cifarlab source tree, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def provenance(device: Any) -> dict[str, Any]:
    """What produced a result: versions, git commit, device, threads, host."""
    import numpy
    import torch

    from cifarlab.version import __version__

    return {
        "cifarlab": __version__,
        "git_commit": git_commit(),
        "torch": str(torch.__version__),
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if getattr(device, "type", "") == "cuda"
        else (platform.processor() or platform.machine()),
        "torch_threads": torch.get_num_threads(),
        # The vector ISA torch dispatches to (AVX2, AVX512, ...): CPU timings depend on it.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "hostname": platform.node(),
    }

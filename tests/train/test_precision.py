"""Precision "auto" (runtime.autocast_dtype): bf16 on a CPU that computes bf16 natively, fp32 on
one that does not, and every run records which precision and which CPU ISA it trained with."""

from __future__ import annotations

import pytest
import torch

from cifarlab import runtime
from cifarlab.train.loop import train

CPU = torch.device("cpu")
ONE_STEP = {"train.epochs": 0.25, "train.eval_points": 1}  # cpu85 on the sample: 1 step of 500


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        ({"avx2": True, "avx512_bf16": False, "amx_bf16": False}, None),  # AVX2 only: fp32
        ({"avx2": True, "avx512_bf16": True}, torch.bfloat16),  # AMD Zen 4, Intel Cooper Lake
        ({"avx2": True, "amx_bf16": True}, torch.bfloat16),  # Intel Sapphire Rapids and later
    ],
)
def test_auto_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch, capabilities, expected):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert runtime.autocast_dtype(CPU, "auto") is expected
    # An explicit precision wins whatever the CPU.
    assert runtime.autocast_dtype(CPU, "fp32") is None
    assert runtime.autocast_dtype(CPU, "bf16") is torch.bfloat16


@pytest.mark.parametrize(
    ("native_bf16", "overrides", "expected"),
    [
        (True, {}, "bf16"),
        (False, {}, "fp32"),
        (True, {"system.precision": "fp32"}, "fp32"),
    ],
)
def test_a_run_trains_and_records_in_the_precision_auto_chose(
    tmp_path, monkeypatch, sample_data, native_bf16, overrides, expected
):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": native_bf16})
    seen = []  # the dtype the network's convolutions computed in, step by step
    real_conv = torch.nn.Conv2d._conv_forward
    monkeypatch.setattr(
        torch.nn.Conv2d,
        "_conv_forward",
        lambda self, x, w, b: seen.append((out := real_conv(self, x, w, b)).dtype) or out,
    )
    m = train(
        "cpu85",  # precision "auto", as every fastnet recipe
        out_dir=tmp_path / "run",
        data=sample_data,
        overrides={**ONE_STEP, **overrides},
        progress=False,
        log=lambda s: None,
    )
    assert m["provenance"]["precision"] == expected
    assert m["provenance"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    wanted = torch.bfloat16 if expected == "bf16" else torch.float32
    assert seen and wanted in seen  # the training step's convolutions ran in that dtype
    if expected == "fp32":
        assert set(seen) == {torch.float32}

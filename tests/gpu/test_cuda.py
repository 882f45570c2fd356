"""The CUDA path, on a machine with a GPU (skipped elsewhere, CI included).

CI has no GPU, so these run only where one is lent: benchmarks/gpu_check.sh runs them first
(`pytest tests/gpu`), on the bundled sample, before any timing. What they guard: every recipe
trains, evaluates and checkpoints on CUDA (data and augmentation resident on the GPU, bf16
autocast where the recipe says auto), augmentation draws from a CUDA generator, and a CUDA
checkpoint evaluates on the CPU to the same accuracy.
"""

from __future__ import annotations

import json

import pytest
import torch

from cifarlab.data.augment import augment_batch, color_jitter
from cifarlab.data.batches import step_generator
from cifarlab.recipe import builtin_recipes, load_recipe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_every_augmentation_draws_from_a_cuda_generator():
    gen = step_generator(0, 3, device="cuda")
    x = torch.rand(8, 3, 32, 32, device="cuda")
    out = color_jitter(x, gen, brightness=0.4, contrast=0.4, saturation=0.4)
    assert out.device.type == "cuda" and out.shape == x.shape
    cfg = load_recipe("seed-improved").augment
    assert augment_batch(x, cfg, step_generator(0, 3, device="cuda")).device.type == "cuda"


@pytest.mark.parametrize("name", builtin_recipes())
def test_recipe_trains_and_checkpoints_on_cuda(name, tmp_path, sample_data):
    from cifarlab.evaluate import evaluate
    from cifarlab.train.loop import train

    out = tmp_path / name
    metrics = train(
        name,
        out_dir=out,
        data=sample_data,
        overrides={"train.epochs": 0.5, "train.eval_points": 2, "system.device": "cuda"},
        progress=False,
        log=lambda s: None,
    )
    assert metrics["provenance"]["device"].startswith("cuda")
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert json.loads((out / "metrics.json").read_text())["steps"] == metrics["steps"]
    # The CUDA checkpoint evaluates on the CPU to the same accuracy (bf16/TF32 rounding may
    # flip a handful of the sample's 500 test images, no more).
    on_cpu = evaluate(out, data=sample_data, device="cpu")
    assert abs(on_cpu["accuracy"] - metrics["test_accuracy"]) <= 0.02


@pytest.mark.parametrize("name", builtin_recipes())
def test_training_steps_never_synchronise_with_the_host(name, tmp_path, sample_data, monkeypatch):
    """Every step between checkpoint points runs under set_sync_debug_mode("error"): a
    `.item()`, `bool(tensor)`, device-to-host copy or blocking copy there raises."""
    from cifarlab.train import loop

    real_segment, segments = loop.train_segment, []

    def strict_segment(state, ctx, stop):
        start = state.step
        torch.cuda.set_sync_debug_mode("error")
        try:
            real_segment(state, ctx, stop)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        segments.append(state.step - start)

    monkeypatch.setattr(loop, "train_segment", strict_segment)
    loop.train(
        name,
        out_dir=tmp_path / name,
        data=sample_data,
        overrides={
            "train.epochs": 0.5,
            "train.eval_points": 2,
            "system.device": "cuda",
            "eval.tta": "none",
        },
        progress=False,
        log=lambda s: None,
    )
    assert len(segments) >= 2 and sum(segments) >= 2


def test_the_regularisers_never_synchronise_with_the_host(tmp_path, sample_data, monkeypatch):
    """TrivialAugment, random erasing, mixup/cutmix and the EMA update (issue 17) in steps
    under set_sync_debug_mode("error"), and the augmentations on a CUDA generator."""
    from cifarlab.data.augment import mix_batch
    from cifarlab.train import loop

    gen = step_generator(0, 3, device="cuda")
    x = torch.rand(64, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (64,), device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        cfg = load_recipe("seed-improved", {"augment.trivial_augment": True}).augment
        cfg.random_erasing = 0.5
        out = augment_batch(x, cfg, gen)
        mixed, targets = mix_batch(out, y, 10, gen, 0.8, 1.0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert mixed.device.type == "cuda" and targets.shape == (64, 10)

    real_segment, segments = loop.train_segment, []

    def strict_segment(state, ctx, stop):
        start = state.step
        torch.cuda.set_sync_debug_mode("error")
        try:
            real_segment(state, ctx, stop)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        segments.append(state.step - start)

    monkeypatch.setattr(loop, "train_segment", strict_segment)
    loop.train(
        "seed-improved",
        out_dir=tmp_path / "run",
        data=sample_data,
        overrides={
            "train.epochs": 0.5,
            "train.eval_points": 2,
            "system.device": "cuda",
            "augment.trivial_augment": True,
            "augment.random_erasing": 0.5,
            "augment.mixup": 0.8,
            "augment.cutmix": 1.0,
            "train.ema": 0.999,
        },
        progress=False,
        log=lambda s: None,
    )
    assert len(segments) >= 2 and sum(segments) >= 2

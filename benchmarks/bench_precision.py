"""Side by side: fp32 vs bf16 autocast, contiguous vs channels_last, for a model's training step.

Measures one training step (augment-free forward, label-smoothed loss, backward, the
recipe's optimizer step) of a registered model on the current device, in interleaved
rounds so that a shared machine's load hits every configuration alike, and prints the
median images/s and the speed ratio to fp32. With ``--accuracy-epochs E`` it also trains
the recipe for E epochs in fp32 and in bf16 + channels_last (same seed) and prints both
test accuracies, so the speed ratio and its accuracy cost come from one run.

    python benchmarks/bench_precision.py                      # fastnet, batch 500, CPU
    python benchmarks/bench_precision.py --accuracy-epochs 1  # + two short fast94 trainings
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from cifarlab.data import load_cifar10
from cifarlab.data.batches import normalize, to_float, to_uint8_tensor
from cifarlab.models import create_model
from cifarlab.recipe import load_recipe
from cifarlab.runtime import autocast, resolve_device
from cifarlab.train.optim import build_optimizer

CONFIGS = [  # (label, autocast dtype, channels_last)
    ("fp32", None, False),
    ("fp32+cl", None, True),
    ("bf16", torch.bfloat16, False),
    ("bf16+cl", torch.bfloat16, True),
]


def step_times(recipe, images, labels, device, rounds: int, steps: int, warmup: int) -> dict:
    """Median seconds per training step for each configuration, measured in interleaved rounds."""
    states = {}
    for label, dtype, cl in CONFIGS:
        torch.manual_seed(0)
        fmt = torch.channels_last if cl else torch.contiguous_format
        model = create_model(recipe.model.name, **recipe.model.options).to(
            device, memory_format=fmt
        )
        model.init_from_data(images[:2000].contiguous(memory_format=fmt))  # CifarModel hook
        states[label] = (model, build_optimizer(recipe.optim, model), dtype, fmt)
    times = {label: [] for label, _, _ in CONFIGS}

    def one_step(model, opt, dtype, fmt, x, y):
        with autocast(device, dtype):
            out = model(x.contiguous(memory_format=fmt))
        loss = F.cross_entropy(out.float(), y, label_smoothing=recipe.train.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    for r in range(rounds + 1):
        for label, (model, opt, dtype, fmt) in states.items():
            n = warmup if r == 0 else steps
            for _ in range(n):
                i = torch.randint(0, len(images) - recipe.train.batch_size, (1,)).item()
                x, y = (
                    images[i : i + recipe.train.batch_size],
                    labels[i : i + recipe.train.batch_size],
                )
                tick = time.perf_counter()
                one_step(model, opt, dtype, fmt, x, y)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if r > 0:
                    times[label].append(time.perf_counter() - tick)
    return {label: statistics.median(v) for label, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="fast94")
    ap.add_argument("--batch", type=int, default=500, help="images per step (default 500)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per config per round")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--data-dir", default=None, help="CIFAR-10 folder (default: auto, else sample)")
    ap.add_argument("--accuracy-epochs", type=float, default=0.0)
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    recipe = load_recipe(args.recipe, {"train.batch_size": args.batch})
    data = (
        load_cifar10(args.data_dir, fallback_to_sample=True)
        if args.data_dir is None
        else load_cifar10(args.data_dir)
    )
    mean = torch.tensor(recipe.data.mean, device=device)
    std = torch.tensor(recipe.data.std, device=device)
    images = normalize(to_float(to_uint8_tensor(data.train_images[:10000], device)), mean, std)
    labels = torch.from_numpy(data.train_labels[:10000]).to(device)

    print(
        f"# {datetime.date.today()} | {platform.processor() or platform.machine()} | "
        f"torch {torch.__version__} | threads {torch.get_num_threads()} | device {device} | "
        f"model {recipe.model.name} | batch {args.batch} | data {data.source}"
    )
    med = step_times(recipe, images, labels, device, args.rounds, args.steps, args.warmup)
    base = med["fp32"]
    print(f"{'config':<10} {'s/step':>8} {'img/s':>8} {'speed vs fp32':>14}")
    for label, sec in med.items():
        print(f"{label:<10} {sec:>8.3f} {args.batch / sec:>8.0f} {base / sec:>13.2f}x")

    if args.accuracy_epochs > 0:
        from cifarlab.train.loop import train

        for label, precision, cl in (("fp32", "fp32", False), ("bf16+cl", "bf16", True)):
            with tempfile.TemporaryDirectory() as out:
                m = train(
                    args.recipe,
                    out_dir=out,
                    data=data,
                    overrides={
                        "train.epochs": args.accuracy_epochs,
                        "system.precision": precision,
                        "system.channels_last": cl,
                        "system.device": args.device,
                    },
                    progress=False,
                    log=lambda s: None,
                )
            tta = m.get("test_accuracy_tta")
            print(
                f"{label:<10} {args.accuracy_epochs:g} epochs: test {m['test_accuracy'] * 100:.2f}%"
                + (f", TTA {tta * 100:.2f}%" if tta is not None else "")
                + f", train {m['train_time_s']:.0f} s ({m['images_per_s']:.0f} img/s)"
            )


if __name__ == "__main__":
    main()

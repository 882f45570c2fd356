"""fastnet's training speed per shape on this CPU (issue 15): widths x batch x training size.

Each configuration is a real ``train_step`` of the ``fast94`` recipe with the shape's overrides
(``train.context.build`` on the full data: augmentation, the progressive-resize path, Muon and all),
timed over about --images training images after two warm-up steps; then one eval-mode forward
pass at 32 px in batches of 1000. Configurations run one after the other in one process, so
compare them within one run, on an idle machine, and write the load beside the figures.

    python benchmarks/bench_fastnet_shapes.py --data-dir ../shared/cifar10 \\
        64,128,128@2000 64,128,128@500 64,128,128@500@24 64,128,128@500@16 32,64,64@500

A shape is WIDTHS@BATCH[@SIZE[@nchw]] (SIZE: the training images' side, default 32; nchw:
without channels_last, which every fastnet recipe uses).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from bench_step import build

from cifarlab.train import loop


def parse(shape: str) -> tuple[list[int], int, int, bool]:
    widths, batch, *rest = shape.split("@")
    size = int(rest[0]) if rest else 32
    nchw = rest[1:] == ["nchw"]
    return [int(w) for w in widths.split(",")], int(batch), size, nchw


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shapes", nargs="+", metavar="WIDTHS@BATCH[@SIZE[@nchw]]")
    p.add_argument("--data-dir", default="../shared/cifar10")
    p.add_argument("--images", type=int, default=6000, help="training images timed per shape")
    args = p.parse_args()
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"{time.strftime('%Y-%m-%d %H:%M')} | {os.cpu_count()} cpus | load {load}")
    print("| widths | batch | size | train img/s | eval img/s (32 px) |\n|---|---:|---:|---:|---:|")
    for shape in args.shapes:
        widths, batch, size, nchw = parse(shape)
        overrides = [f"model.options.widths={widths}", f"train.batch_size={batch}"]
        overrides += [f"train.resolutions=[{size}]"] if size != 32 else []
        overrides += ["system.channels_last=false"] if nchw else []
        ctx, state = build("fast94", args.data_dir, overrides, Path("/tmp/cifarlab-bench-shapes"))
        for _ in range(2):
            loop.train_step(state, ctx)
        steps = max(3, args.images // batch)
        tick = time.perf_counter()
        for _ in range(steps):
            loop.train_step(state, ctx)
        train_rate = steps * batch / (time.perf_counter() - tick)
        model = state.step_model.eval()
        x = torch.randn(1000, 3, 32, 32).contiguous(memory_format=ctx.mem_format)
        with torch.no_grad():
            model(x)
            tick = time.perf_counter()
            model(x)
            model(x)
            eval_rate = 2000 / (time.perf_counter() - tick)
        w = "/".join(map(str, widths))
        w += " NCHW" if nchw else ""
        print(f"| {w} | {batch} | {size} | {train_rate:,.0f} | {eval_rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()

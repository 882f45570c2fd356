"""Throughput on this CPU: 2 processes x 1 thread (DDP, gloo) vs 1 process x 2 threads.

Runs ``cifarlab train`` for each model, one configuration after the other (alternating,
``--repeats`` times), and prints training images/s (metrics.json ``images_per_s``: step
time only, evaluation and start-up excluded) and the ratio. Never gates CI.

    python benchmarks/bench_ddp_throughput.py --steps 300 --data-dir sample
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(model_recipe: str, nproc: int, threads: int, steps: int, data_dir: str, out: Path):
    per_epoch = 1600 // 32 if data_dir == "sample" else 40000 // 32
    args = [sys.executable, "-m", "cifarlab", "train"]
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    args += ["--recipe", model_recipe, "--data-dir", data_dir, "--no-progress", "--out", str(out)]
    args += ["--set", f"train.epochs={steps / per_epoch}", "--set", "train.eval_points=1"]
    args += ["--set", f"system.threads={threads}", "--set", "system.device=cpu"]
    start = time.perf_counter()
    res = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{res.stderr[-2000:]}")
    m = json.loads((out / "metrics.json").read_text())
    return m["images_per_s"], m["steps"], wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps per run (batch 32)")
    ap.add_argument("--data-dir", default="sample")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--recipes", nargs="+", default=["seed-baseline", "seed-improved"])
    args = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} | {platform.node()} | {platform.processor()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes:
            results: dict[str, list[float]] = {"1x2": [], "2x1": []}
            for rep in range(args.repeats):
                for label, nproc, threads in (("1x2", 1, 2), ("2x1", 2, 1)):
                    out = Path(tmp) / f"{recipe}-{label}-{rep}"
                    ips, steps, wall = run_once(
                        recipe, nproc, threads, args.steps, args.data_dir, out
                    )
                    results[label].append(ips)
                    print(
                        f"{recipe:15s} {label} ({nproc} proc x {threads} thread): "
                        f"{ips:8.1f} img/s  ({steps} steps, wall {wall:.1f} s)",
                        flush=True,
                    )
            one, two = (sum(v) / len(v) for v in (results["1x2"], results["2x1"]))
            rows.append((recipe, one, two))
    print("\nrecipe           1 proc x 2 threads   2 procs x 1 thread   ratio (2x1 / 1x2)")
    for recipe, one, two in rows:
        print(f"{recipe:15s}  {one:17.1f}   {two:18.1f}   {two / one:8.2f}")


if __name__ == "__main__":
    main()

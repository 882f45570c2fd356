"""Reproduce the seed report's two headline numbers on the full CIFAR-10.

Trains `seed-baseline` (report: 71.77%) and `seed-improved` (report: 77.70%) with
seeds 0..N-1 through `cifarlab train`, J runs at a time with the CPU threads divided
among them, then prints mean ± std test accuracy per recipe. Finished runs are
skipped and interrupted ones resumed, so the script can be rerun after a stop.

    python benchmarks/reproduce_report.py --data-dir ../shared/cifar10 --seeds 3 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPORT = {"seed-baseline": 71.77, "seed-improved": 77.70}


def run_one(recipe: str, seed: int, out: Path, data_dir: str, threads: int) -> dict:
    run_dir = out / f"{recipe}-seed{seed}"
    if not (run_dir / "metrics.json").is_file():
        cmd = [
            sys.executable,
            "-m",
            "cifarlab",
            "train",
            "--no-progress",
            "--data-dir",
            data_dir,
            "--set",
            f"system.threads={threads}",
        ]
        cmd += (
            ["--resume", str(run_dir)]
            if (run_dir / "checkpoint.pt").is_file()
            else ["--recipe", recipe, "--seed", str(seed), "--out", str(run_dir)]
        )
        with open(out / f"{recipe}-seed{seed}.log", "a") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return json.loads((run_dir / "metrics.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("CIFARLAB_DATA", "../shared/cifar10"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="runs/bench-reproduce")
    p.add_argument("--recipes", nargs="+", default=list(REPORT))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = max((os.cpu_count() or 1) // args.jobs, 1)
    jobs = [(r, s) for r in args.recipes for s in range(args.seeds)]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(
            pool.map(lambda rs: run_one(rs[0], rs[1], out, args.data_dir, threads), jobs)
        )
    print(
        f"{'recipe':<15} {'n':>2} {'mean':>7} {'std':>6} {'per seed':<28} {'report':>7} {'train s/run':>11}"
    )
    for recipe in args.recipes:
        ms = [m for (r, _), m in zip(jobs, results, strict=True) if r == recipe]
        accs = [100 * m["test_accuracy"] for m in ms]
        times = [m["train_time_s"] for m in ms]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(
            f"{recipe:<15} {len(accs):>2} {statistics.mean(accs):>7.2f} {std:>6.2f} "
            f"{' '.join(f'{a:.2f}' for a in accs):<28} {REPORT.get(recipe, float('nan')):>7.2f} "
            f"{statistics.mean(times):>11.0f}"
        )
    print(
        f"data: {results[0]['data']['source']}; {args.jobs} runs at a time, {threads} thread(s) each"
    )


if __name__ == "__main__":
    main()

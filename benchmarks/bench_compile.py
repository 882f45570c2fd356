"""Training speed with and without ``system.compile`` (torch.compile), side by side.

For each recipe, two short `cifarlab train` runs in fresh subprocesses, alternating the order
per repeat: plain and compiled. The steady-state speed comes from the run's history: the time
between its first and last evaluation points (the first segment, which holds the compilation
warm-up, is left out), so it is what a long run sees; the warm-up is reported apart.

    python benchmarks/bench_compile.py --data-dir ../shared/cifar10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPES = {
    # recipe: overrides for a short run with several evaluation points
    "seed-improved": ["train.epochs=0.2", "train.eval_points=5"],
    "fast94": ["train.epochs=0.2", "train.eval_points=5", "eval.tta='none'"],
}


def one_run(recipe: str, overrides: list[str], compile_: bool, data_dir: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        sets = [
            a for o in [*overrides, f"system.compile={str(compile_).lower()}"] for a in ("--set", o)
        ]
        cmd = [sys.executable, "-m", "cifarlab", "train", "--recipe", recipe, *sets]
        cmd += ["--data-dir", str(data_dir), "--out", str(out), "--no-progress"]
        wall = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - wall
        m = json.loads((out / "metrics.json").read_text())
        h = json.loads((out / "history.json").read_text())
    steps, times = h["step"], h["time_s"]
    # history rows: step 0 (time 0), then each evaluation point with the cumulative train time
    first, last = 1, len(steps) - 1
    per_step = (times[last] - times[first]) / (steps[last] - steps[first])
    batch = round(m["images_per_s"] * m["train_time_s"] / m["steps"])  # images per step
    return {
        "images_per_s": batch / per_step,
        "warmup_s": times[first] - steps[first] * per_step,
        "train_s": m["train_time_s"],
        "wall_s": wall,
        "test_accuracy": m["test_accuracy"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/cifar10")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--recipes", nargs="*", default=list(RECIPES))
    args = p.parse_args()
    data_dir = Path(args.data_dir).resolve()
    print(
        f"{'recipe':<14} {'compile':<8} {'img/s':>8} {'warm-up s':>10} {'train s':>8} {'wall s':>7}"
    )
    for recipe in args.recipes:
        rows: dict[bool, list[dict]] = {False: [], True: []}
        for r in range(args.repeats):
            for compile_ in (False, True) if r % 2 == 0 else (True, False):
                rows[compile_].append(one_run(recipe, RECIPES[recipe], compile_, data_dir))
        for compile_, runs in rows.items():
            best = max(runs, key=lambda x: x["images_per_s"])
            print(
                f"{recipe:<14} {str(compile_).lower():<8} {best['images_per_s']:>8.0f} "
                f"{best['warmup_s']:>10.1f} {best['train_s']:>8.1f} {best['wall_s']:>7.1f}"
            )
        speedup = max(x["images_per_s"] for x in rows[True]) / max(
            x["images_per_s"] for x in rows[False]
        )
        print(f"{recipe}: compiled / plain steady-state speed = {speedup:.2f}x")


if __name__ == "__main__":
    main()

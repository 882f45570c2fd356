"""How long loading the full CIFAR-10 takes: decoded from the pickles, and from the cache.

    python benchmarks/bench_data_load.py [--data-dir DIR] [--repeats 5]

Each timing runs in a fresh interpreter (so no memory is reused between loads) and
times only the ``load_cifar10`` call, not Python start-up or imports. The OS file
cache is warm after the first read: "cold" here means "no decoded-array cache",
not "from the disk platters". Targets on a 2-core CPU: cold <= 2 s, warm <= 0.3 s.
Benchmarks print numbers; they never fail a build.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def _one(data_dir: str, use_cache: bool) -> None:
    """Child process: one timed load; prints seconds and whether the cache served it."""
    from cifarlab.data import load_cifar10

    t0 = time.perf_counter()
    data = load_cifar10(data_dir, use_cache=use_cache, download=False)
    seconds = time.perf_counter() - t0
    assert len(data.train_labels) == 50_000 and len(data.test_labels) == 10_000, data.source
    print(f"{seconds:.4f} {int(data.from_cache)}")


def _time(data_dir: str, cache: str, use_cache: bool) -> tuple[float, bool]:
    env = {**os.environ, "CIFARLAB_CACHE": cache}
    out = subprocess.run(
        [sys.executable, __file__, "--child", data_dir, "--use-cache", str(int(use_cache))],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.split()
    return float(out[0]), out[1] == "1"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description="Time loading the full CIFAR-10.")
    parser.add_argument(
        "--data-dir", default=os.environ.get("CIFARLAB_DATA", "/work/shared/cifar10")
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--use-cache", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _one(args.child, bool(args.use_cache))
        return

    import numpy as np

    print(f"data: {args.data_dir}")
    print(
        f"machine: {_cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"numpy {np.__version__}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )
    with tempfile.TemporaryDirectory(prefix="cifarlab-bench-") as cache:
        _time(args.data_dir, cache, use_cache=False)  # warm the OS file cache, not ours
        cold = [_time(args.data_dir, cache, use_cache=False)[0] for _ in range(args.repeats)]
        first, hit = _time(args.data_dir, cache, use_cache=True)  # empty cache: decode + write
        assert not hit
        warm_runs = [_time(args.data_dir, cache, use_cache=True) for _ in range(args.repeats)]
        assert all(hit for _, hit in warm_runs)
        warm = [s for s, _ in warm_runs]

    def fmt(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.3f} s (min {min(xs):.3f}, max {max(xs):.3f}, n={len(xs)})"

    print(f"cold, decode the pickles (use_cache=False):   {fmt(cold)}   target <= 2 s")
    print(f"first load, empty cache (decode + write):     {first:.3f} s")
    print(f"warm, from the decoded-array cache:           {fmt(warm)}   target <= 0.3 s")


if __name__ == "__main__":
    main()

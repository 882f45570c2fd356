#!/usr/bin/env bash
# resnet20 (He et al. 2016 schedule: 182 epochs) over N seeds on the full CIFAR-10; the paper
# reports 91.25%. Prints per-seed test accuracy and training time, then mean +- std.
#
#   benchmarks/resnet20_seeds.sh [N_SEEDS=3] [OUT=runs/resnet20-seeds] [extra --set args...]
#
# NOT run yet on the 2-core CPU: ~0.24 GFLOP per training image x 182 epochs x 45k images
# is ~2,000 TFLOP, i.e. many hours per seed at 30-45 GFLOP/s. Run it on a GPU (--device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3}
OUT=${2:-runs/resnet20-seeds}
shift $(( $# > 2 ? 2 : $# )) || true
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
for ((s = 0; s < N; s++)); do
  "$PY" -m cifarlab train --recipe resnet20 --seed "$s" --out "$OUT/seed$s" --no-progress "$@"
done
"$PY" - "$OUT" "$N" <<'PY'
import json, statistics, sys
from pathlib import Path
out, n = Path(sys.argv[1]), int(sys.argv[2])
acc = []
for s in range(n):
    m = json.loads((out / f"seed{s}" / "metrics.json").read_text())
    acc.append(m["test_accuracy"] * 100)
    print(f"seed {s}: test {acc[-1]:.2f}%  train {m['train_time_s']:.0f} s  on {m['provenance']['device_name']}")
sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
print(f"resnet20: mean {statistics.mean(acc):.2f} +- {sd:.2f} (n={n}); paper 91.25")
PY

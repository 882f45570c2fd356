#!/usr/bin/env bash
# fast94 over N seeds on the full CIFAR-10 (issue 5's CPU claim): for each seed, the whole
# `cifarlab train` command is timed (data loading + training + evaluation + TTA), then the
# mean/std of test accuracy (plain and TTA) and the wall times are printed.
#
#   benchmarks/fast94_seeds.sh [N_SEEDS=5] [OUT=runs/fast94-seeds] [extra --set args...]
#
# Needs an otherwise idle machine for honest times; CIFARLAB_DATA (or the cache) must hold
# the full data set. NOT run yet on the 2-core CPU: see docs/BENCHMARKS.md (fastnet needs
# ~0.7 GFLOP per training image, ~350 TFLOP for 10 epochs: hours at ~30-45 GFLOP/s).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
OUT=${2:-runs/fast94-seeds}
shift $(( $# > 2 ? 2 : $# )) || true
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
for ((s = 0; s < N; s++)); do
  start=$(date +%s.%N)
  "$PY" -m cifarlab train --recipe fast94 --seed "$s" --out "$OUT/seed$s" --no-progress "$@"
  end=$(date +%s.%N)
  echo "{\"seed\": $s, \"command_wall_s\": $(echo "$end - $start" | bc)}" > "$OUT/seed$s/command_wall.json"
done
"$PY" - "$OUT" "$N" <<'PY'
import json, statistics, sys
from pathlib import Path
out, n = Path(sys.argv[1]), int(sys.argv[2])
rows = []
for s in range(n):
    m = json.loads((out / f"seed{s}" / "metrics.json").read_text())
    w = json.loads((out / f"seed{s}" / "command_wall.json").read_text())["command_wall_s"]
    rows.append((s, m["test_accuracy"], m.get("test_accuracy_tta"), m["train_time_s"], w))
    print(f"seed {s}: test {m['test_accuracy']*100:.2f}%  TTA {m.get('test_accuracy_tta', 0)*100:.2f}%  "
          f"train {m['train_time_s']:.0f} s  command {w:.0f} s")
for i, name in ((1, "test"), (2, "TTA"), (4, "command wall s")):
    v = [r[i] * (100 if i < 3 else 1) for r in rows]
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    print(f"{name}: mean {statistics.mean(v):.2f} +- {sd:.2f} (n={len(v)}, max {max(v):.2f})")
PY

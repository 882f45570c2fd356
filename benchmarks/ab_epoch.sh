#!/usr/bin/env bash
# One epoch of seed-improved, the whole `cifarlab train` command, for two source trees back to
# back (e.g. main before and after a change): wall time, training-step time, the rest.
#   git worktree add ../old 9b185f8
#   bash benchmarks/ab_epoch.sh ../old/src src ../shared/cifar10
set -euo pipefail
OLD_SRC=$(cd "$1" && pwd); NEW_SRC=$(cd "$2" && pwd); DATA=${3:-../shared/cifar10}
PY=${PYTHON:-.venv/bin/python}
for v in new old; do
  src=$NEW_SRC; [ "$v" = old ] && src=$OLD_SRC
  out=$(mktemp -d)/run
  start=$(date +%s.%N)
  PYTHONPATH=$src "$PY" -m cifarlab train --recipe seed-improved --epochs 1 --data-dir "$DATA" \
    --out "$out" --no-progress > /dev/null
  end=$(date +%s.%N)
  "$PY" - "$out" "$start" "$end" "$v" <<'PYEOF'
import json, sys
out, start, end, name = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
m = json.load(open(f"{out}/metrics.json"))
wall = end - start
print(f"{name}: wall {wall:.1f} s, training steps {m['train_time_s']:.1f} s, "
      f"outside training {wall - m['train_time_s']:.1f} s, val acc {m['val_accuracy']:.4f}")
PYEOF
done

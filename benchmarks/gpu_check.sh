#!/usr/bin/env bash
# The prepared GPU check for a lent machine (one H100/H200, no network), in steps:
#
#   tests       pytest tests/gpu on the bundled sample: every recipe trains, checkpoints and
#               evaluates on CUDA (run first: a broken CUDA path must not eat the timing budget)
#   throughput  train / inference images/s of every model, fp32 vs bf16 AMP + channels_last
#   loopcost    resnet20's real training loop on the sample, 1 and 3 processes at once, to size
#               the resnet20 step (seconds per step)
#   fast94      fast94 over $SEEDS seeds on the full data: test accuracy with and without TTA,
#               training time and the whole command's wall time, one after another
#   resnet20    the paper's ResNet-20 recipe, $R20_SEEDS seeds at once on the one GPU
#
#   OUT=dir CIFARLAB_DATA=/path/to/cifar-10-batches-py bash benchmarks/gpu_check.sh STEP...
#   (no STEP: tests throughput fast94)
#
# Needs python3 with a CUDA torch and numpy, matplotlib, pillow, tqdm (nothing is installed:
# the machine has no network); run from the repository root (PYTHONPATH=src is set here).
# fast94 and resnet20 need the full CIFAR-10 in $CIFARLAB_DATA (benchmarks/dataset_shards.py
# carries it there in three calls). Every step has its own time limit. Results: $OUT/summary.txt
# and $OUT/results.json (every run's metrics); run directories go to $RUNS (default gpu-runs),
# since a lent machine sends back only a few files.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
OUT=${OUT:-gpu-check}
RUNS=${RUNS:-gpu-runs}
SEEDS=${SEEDS:-5}
R20_SEEDS=${R20_SEEDS:-3}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$RUNS"
log() { echo "$*" | tee -a "$OUT/summary.txt"; }
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests throughput fast94)

log "# gpu_check ${steps[*]} | $(date -u +%FT%TZ) | commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/# gpu: /' | tee -a "$OUT/summary.txt"
"$PY" -c "import torch; assert torch.cuda.is_available(); print('# torch', torch.__version__, 'cuda', torch.version.cuda, '| cpus', __import__('os').cpu_count())" \
  | tee -a "$OUT/summary.txt" || { log "no CUDA device visible to torch; stopping"; exit 1; }

need_data() {
  if [ -z "${CIFARLAB_DATA:-}" ]; then log "CIFARLAB_DATA is not set: $1 needs the full CIFAR-10; skipped"; return 1; fi
}

for step in "${steps[@]}"; do
  case "$step" in
  tests)
    timeout 300 "$PY" -m pytest -q -p no:cacheprovider tests/gpu 2>&1 | tail -15 | tee -a "$OUT/summary.txt"
    ;;
  throughput)
    timeout 200 "$PY" -m cifarlab bench --device cuda --configs fp32,bf16+cl --batch-size 512 \
      --steps 10 --warmup 3 --rounds 2 | tee -a "$OUT/summary.txt"
    ;;
  loopcost)
    for n in 1 3; do
      for ((s = 0; s < n; s++)); do
        timeout 120 "$PY" -m cifarlab train --recipe resnet20 --device cuda --data-dir sample \
          --set train.epochs=20 --set train.eval_points=2 --seed "$s" --no-progress \
          --out "$RUNS/loopcost$n-seed$s" > "$RUNS/loopcost$n-seed$s.log" 2>&1 &
      done
      wait
      "$PY" - "$RUNS" "$n" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
from pathlib import Path
out, n = Path(sys.argv[1]), int(sys.argv[2])
for s in range(n):
    m = json.loads((out / f"loopcost{n}-seed{s}" / "metrics.json").read_text())
    print(f"resnet20 loop, {n} process(es) at once, seed {s}: {m['train_time_s'] / m['steps'] * 1000:.2f} ms/step "
          f"(batch 128, {m['steps']} steps)")
PY
    done
    ;;
  fast94)
    need_data fast94 || continue
    for ((s = 0; s < SEEDS; s++)); do
      timeout 120 "$PY" -m cifarlab bench --recipe fast94 --target 0.94 --seed "$s" --device cuda \
        --data-dir "$CIFARLAB_DATA" --out "$RUNS/fast94-seed$s" --json > "$RUNS/fast94-seed$s.json" \
        2> "$RUNS/fast94-seed$s.log" || { log "fast94 seed $s failed or timed out:"; tail -3 "$RUNS/fast94-seed$s.log" | tee -a "$OUT/summary.txt"; }
    done
    "$PY" - "$RUNS" "$SEEDS" fast94 <<'PY' | tee -a "$OUT/summary.txt"
import json, statistics, sys
from pathlib import Path
out, n, name = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rows = []
for s in range(n):
    try:
        rows.append(json.loads((out / f"{name}-seed{s}.json").read_text()))
    except (OSError, ValueError):
        continue
    r = rows[-1]
    print(f"{name} seed {s}: test {r['test_accuracy']*100:.2f}%  TTA {r['test_accuracy_tta']*100:.2f}%  "
          f"train {r['train_time_s']:.1f} s  wall {r['wall_time_s']:.1f} s")
if rows:
    for key in ("test_accuracy", "test_accuracy_tta"):
        v = [r[key] * 100 for r in rows]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        print(f"{name} {key}: mean {statistics.mean(v):.2f} +- {sd:.2f} (n={len(v)})")
    for key in ("train_time_s", "wall_time_s"):
        t = [r[key] for r in rows]
        print(f"{name} {key}: mean {statistics.mean(t):.1f}  min {min(t):.1f}  max {max(t):.1f}")
    print(f"{name} reached 94% (TTA): {sum(r['reached'] for r in rows)}/{len(rows)}")
PY
    ;;
  resnet20)
    need_data resnet20 || continue
    for ((s = 0; s < R20_SEEDS; s++)); do
      timeout "${R20_LIMIT:-540}" "$PY" -m cifarlab train --recipe resnet20 --device cuda --seed "$s" \
        --data-dir "$CIFARLAB_DATA" --no-progress --out "$RUNS/resnet20-seed$s" \
        > "$RUNS/resnet20-seed$s.log" 2>&1 &
    done
    wait
    for ((s = 0; s < R20_SEEDS; s++)); do
      tail -1 "$RUNS/resnet20-seed$s.log" | sed "s/^/resnet20 seed $s: /" | tee -a "$OUT/summary.txt"
    done
    ;;
  *) log "unknown step $step (tests, throughput, loopcost, fast94, resnet20)"; exit 2 ;;
  esac
done
"$PY" - "$RUNS" "$OUT/results.json" <<'PY'
import json, sys
from pathlib import Path
runs, dest = Path(sys.argv[1]), Path(sys.argv[2])
old = json.loads(dest.read_text()) if dest.exists() else {}
for m in sorted(runs.glob("*/metrics.json")):
    r = json.loads(m.read_text())
    r.pop("confusion", None)
    old[m.parent.name] = r
for b in sorted(runs.glob("*.json")):
    try:
        old[b.stem + ".bench"] = json.loads(b.read_text())
    except ValueError:
        pass
dest.write_text(json.dumps(old, indent=1))
PY
log "# done $(date -u +%FT%TZ)"

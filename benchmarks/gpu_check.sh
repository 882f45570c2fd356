#!/usr/bin/env bash
# One prepared GPU check for a lent machine (one H100, no network), within ~8 minutes:
#   1. the model throughput table (train / inference images/s, fp32 and bf16 AMP + channels_last);
#   2. fast94 over several seeds: test accuracy (plain and TTA) and training time, i.e. whether
#      and how fast the recipe reaches 94%;
#   3. optionally resnet18's full-accuracy run (RESNET18=1; ~200 epochs: does NOT fit 8 minutes).
#
#   OUT=/path/for/results CIFARLAB_DATA=/path/to/cifar-10-batches-py benchmarks/gpu_check.sh [SEEDS=5]
#
# Needs on the machine: python3 with torch (CUDA build) and numpy, matplotlib, tqdm (the
# cifarlab dependencies; nothing is installed, the machine has no network), this repository
# (run from its root; PYTHONPATH=src is set here), and the full CIFAR-10 under
# $CIFARLAB_DATA for step 2 (without it, step 2 is skipped and says so). Results: $OUT/*.json
# and $OUT/summary.txt. Every step has its own time limit so that the whole stays under 8 min.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-gpu-check}
SEEDS=${1:-5}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
log() { echo "$*" | tee -a "$OUT/summary.txt"; }

log "# gpu_check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/# gpu: /' | tee -a "$OUT/summary.txt"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  log "no CUDA device visible to torch; stopping"; exit 1
fi
"$PY" -c "import torch; print('# torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/summary.txt"

# 1. Throughput table (~1 min).
timeout 150 "$PY" -m cifarlab bench --device cuda --configs fp32,bf16+cl --batch-size 512 \
  --steps 10 --warmup 3 --rounds 2 | tee -a "$OUT/summary.txt"

# 2. fast94 over seeds (~20-40 s each on an H100 without --compile).
if [ -z "${CIFARLAB_DATA:-}" ]; then
  log "CIFARLAB_DATA is not set: fast94 needs the full CIFAR-10; step 2 skipped"
else
  for ((s = 0; s < SEEDS; s++)); do
    timeout 90 "$PY" -m cifarlab bench --recipe fast94 --target 0.94 --seed "$s" --device cuda \
      --data-dir "$CIFARLAB_DATA" --out "$OUT/fast94-seed$s" --json > "$OUT/fast94-seed$s.json" \
      2> "$OUT/fast94-seed$s.log" || log "fast94 seed $s failed or timed out (see $OUT/fast94-seed$s.log)"
  done
  "$PY" - "$OUT" "$SEEDS" <<'PY' | tee -a "$OUT/summary.txt"
import json, statistics, sys
from pathlib import Path
out, n = Path(sys.argv[1]), int(sys.argv[2])
rows = []
for s in range(n):
    f = out / f"fast94-seed{s}.json"
    try:
        rows.append(json.loads(f.read_text()))
    except (OSError, ValueError):
        continue
    r = rows[-1]
    print(f"fast94 seed {s}: test {r['test_accuracy']*100:.2f}%  TTA {r['test_accuracy_tta']*100:.2f}%  "
          f"train {r['train_time_s']:.1f} s  wall {r['wall_time_s']:.1f} s")
if rows:
    for key in ("test_accuracy", "test_accuracy_tta"):
        v = [r[key] * 100 for r in rows]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        print(f"fast94 {key}: mean {statistics.mean(v):.2f} +- {sd:.2f} (n={len(v)})")
    t = [r["train_time_s"] for r in rows]
    print(f"fast94 train time: mean {statistics.mean(t):.1f} s; reached 94%: {sum(r['reached'] for r in rows)}/{len(rows)}")
PY
fi

# 3. resnet18 to ~95% (long: only when asked).
if [ "${RESNET18:-0}" = 1 ] && [ -n "${CIFARLAB_DATA:-}" ]; then
  "$PY" -m cifarlab train --recipe resnet18 --device cuda --data-dir "$CIFARLAB_DATA" \
    --out "$OUT/resnet18-seed0" --no-progress | tail -3 | tee -a "$OUT/summary.txt"
fi
log "# done $(date -u +%FT%TZ)"

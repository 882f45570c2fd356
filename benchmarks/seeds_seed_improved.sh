#!/usr/bin/env bash
# Issue 4 must-show: the report's final recipe with seeds 0..9 on the full CIFAR-10, to test the
# report's claim (1.4) that the model "stays consistent throughout different random states".
#
#   bash benchmarks/seeds_seed_improved.sh [DATA_DIR] [JOBS]
#
# 10 runs x 25 epochs of seednet-improved: about 2 h on a 2-core CPU. Rerun to resume. Writes
# studies-out/seed-improved-seeds/summary.md (mean ± std, 95% t interval, min, max, every seed) and
# curves_grid.png (the report's figures 9-18 in one), accuracies_strip.png, accuracy_by_step.png.
#
# Seeds 0-2 are the issue-3 reproduction runs: `python benchmarks/reuse_reproduction_runs.py`
# copies them in first (checked to be the same resolved recipe).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-${CIFARLAB_DATA:-../shared/cifar10}}"
JOBS="${2:-2}"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(hostname)  cpus: $(nproc)"
.venv/bin/python -c "import torch; print('torch', torch.__version__, '| cuda:', torch.cuda.is_available())"
time .venv/bin/cifarlab seeds --recipe seed-improved -n 10 --data-dir "$DATA" --jobs "$JOBS" \
    --out studies-out/seed-improved-seeds

#!/usr/bin/env bash
# Issue 4 must-show: the seed report's ablation ladder on the full CIFAR-10, 3 seeds per step.
#
#   bash benchmarks/ladder_seed_report.sh [DATA_DIR] [JOBS]
#
# 6 steps x 3 seeds = 18 runs, 360 epochs of seednet in all (steps 1-2: 10 epochs, 3-6: 25):
# about 3 h on a 2-core CPU, a few minutes per run on a GPU. Rerun the same command after a stop:
# finished runs are skipped, interrupted ones resume from their checkpoints. Results (mean, std,
# 95% intervals, difference from the previous step with Welch's interval, "beyond noise?") go to
# studies-out/seed-report/summary.md; put that table into docs/BENCHMARKS.md beside the report's
# 71.77 / 72.89 / 74.45 / 75.50 / 76.63 / 77.70 (the "report" column).
#
# On a cluster, the same study as a 4-task job array (each task: every 4th run), then one merge:
#   sbatch --array=0-3 --wrap 'cifarlab ablate --ladder seed-report --seeds 3 --data-dir DATA \
#       --shard $SLURM_ARRAY_TASK_ID/4 --out studies-out/seed-report-shard$SLURM_ARRAY_TASK_ID'
#   cifarlab studies merge studies-out/seed-report-shard{0,1,2,3} -o studies-out/seed-report
#
# Steps `baseline` and `batch-norm`, seeds 0-2, are the recipes the issue-3 reproduction already
# trained: `python benchmarks/reuse_reproduction_runs.py` copies those runs in first (checked to
# be the same resolved recipe), which saves 6 of the 18 runs.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-${CIFARLAB_DATA:-../shared/cifar10}}"
JOBS="${2:-2}"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(hostname)  cpus: $(nproc)"
.venv/bin/python -c "import torch; print('torch', torch.__version__, '| cuda:', torch.cuda.is_available())"
time .venv/bin/cifarlab ablate --ladder seed-report --seeds 3 --data-dir "$DATA" --jobs "$JOBS" \
    --out studies-out/seed-report

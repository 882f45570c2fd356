#!/usr/bin/env bash
# Set up (scripts/setup.sh), then the main job: explore the data, train the seed report's
# final recipe (full CIFAR-10 when found, else the bundled sample, saying which), evaluate it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-runs/quickstart}
.venv/bin/cifarlab data --out "$OUT/data" || .venv/bin/cifarlab data --data-dir sample --out "$OUT/data"
if [ -f "$OUT/seed-improved/checkpoint.pt" ]; then
  .venv/bin/cifarlab train --resume "$OUT/seed-improved" "$@"
else
  .venv/bin/cifarlab train --recipe seed-improved --out "$OUT/seed-improved" "$@"
fi
.venv/bin/cifarlab evaluate "$OUT/seed-improved"
echo "figures and metrics: $OUT/"

#!/usr/bin/env bash
# Set up (scripts/setup.sh), then the main job: explore the data, train the seed report's
# final recipe and evaluate it. It uses the full CIFAR-10 when this machine has a copy
# ($CIFARLAB_DATA, else the per-user cache) and the bundled sample otherwise; the job's first
# line says which. Nothing is downloaded: `.venv/bin/cifarlab data` does that, then run this again.
# OUT=DIR moves the output (default runs/quickstart); extra arguments go to `cifarlab train`;
# CIFARLAB_SKIP_SETUP=1 skips the set-up (the tests run the job that way). The set-up runs
# quietly: its output is shown only when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CIFARLAB_SKIP_SETUP:-}" ]; then
  # Quietly (the first time it installs torch: minutes), so that the job's first line is the
  # data line; the set-up's own output is shown only when it fails.
  setup_log=$(mktemp)
  if ! bash scripts/setup.sh >"$setup_log" 2>&1; then
    cat "$setup_log" >&2
    echo "quickstart: error: the set-up (scripts/setup.sh) failed; its output is above" >&2
    rm -f "$setup_log"
    exit 1
  fi
  rm -f "$setup_log"
fi
CIFARLAB=.venv/bin/cifarlab
OUT=${OUT:-runs/quickstart}
DATA=$("$CIFARLAB" data --locate)
if [ "$DATA" = sample ]; then
  # A separate run directory, so a rerun after the full data arrives trains afresh on it.
  RUN=$OUT/seed-improved-sample
  echo "quickstart: data: the bundled sample (2,000 train / 500 test images), as no full" \
    "CIFAR-10 is set up here; for it, run '.venv/bin/cifarlab data' (downloads it, 170 MB) or" \
    "set CIFARLAB_DATA=DIR, then run this again"
else
  RUN=$OUT/seed-improved
  echo "quickstart: data: full CIFAR-10 in $DATA"
fi
"$CIFARLAB" data --data-dir "$DATA" --out "$OUT/data"
if [ -f "$RUN/checkpoint.pt" ]; then
  "$CIFARLAB" train --resume "$RUN" --data-dir "$DATA" "$@"
else
  "$CIFARLAB" train --recipe seed-improved --out "$RUN" --data-dir "$DATA" "$@"
fi
"$CIFARLAB" evaluate "$RUN" --data-dir "$DATA"
echo "figures and metrics: $OUT/"

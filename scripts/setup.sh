#!/usr/bin/env bash
# Create .venv (once) and install cifarlab into it with its dev tools, and the `reference`
# extra (imagecorruptions) that tests/data/test_corruptions_reference.py compares against.
# TORCH_SPEC overrides the torch/torchvision pair (default: the pair this project is tested with).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q $TORCH_SPEC 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e ".[dev,extras,tune,reference]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import cifarlab, torch, torchvision; print(f'cifarlab {cifarlab.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}')"

#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite, slow tests included. Extra
# arguments go to pytest (a -m among them replaces the one here).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The layer contracts (.importlinter): no cycles, no lower layer importing a higher one.
.venv/bin/lint-imports --no-cache
# Every test, the slow ones too (a bare pytest leaves them out: pyproject.toml's addopts).
exec .venv/bin/python -m pytest -m "slow or not slow" "$@"

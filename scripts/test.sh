#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The layer contracts (.importlinter): no cycles, no lower layer importing a higher one.
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"

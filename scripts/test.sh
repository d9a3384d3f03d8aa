#!/usr/bin/env bash
# The whole test suite, including the firmware's own tests under the MicroPython unix port.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"

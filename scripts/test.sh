#!/usr/bin/env bash
# The whole test suite: lint (ruff), static types (mypy, strict on the host), then
# pytest, the firmware's own tests under the MicroPython unix port included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh emulation,test
.venv/bin/ruff check host tests tools
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"

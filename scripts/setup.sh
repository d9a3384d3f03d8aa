#!/usr/bin/env bash
# Creates or refreshes .venv in the checkout with the insole package (editable) and
# the extras named in $1 (comma-separated, e.g. "emulation,test"); used by
# scripts/demo.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-emulation}"
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras}]"

#!/usr/bin/env bash
# The main job: two simulated insoles walk, shown live. No hardware needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/insole demo "$@"

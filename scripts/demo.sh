#!/usr/bin/env bash
# The main job: two simulated insoles walk, shown live. No hardware needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh emulation  # the demo's insoles talk over the emulated BLE radio
exec .venv/bin/insole demo "$@"

#!/usr/bin/env bash
# The whole test suite: lint (ruff), static types (mypy, strict on the host), then
# pytest twice: everything under the PyPI MicroPython unix port, and every test that
# runs MicroPython (marker `micropython`) again under the unix port with the ESP32's
# number model (31-bit small ints, float32, ticks wrapping at 2^30), built from
# ../shared/vendor by scripts/build-micropython-esp32.sh. Arguments go to both runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh emulation,test
# Outside CI a missing source or toolchain only skips the second run's tests (with a message).
bash scripts/build-micropython-esp32.sh
bash scripts/install-chromium.sh
.venv/bin/ruff check host tests tools
.venv/bin/mypy

# The second run goes beside the first: both mostly wait on the emulated radio's time
# and the simulated insoles, so together they take about as long as the first alone
# (measured on 2 cores: 9.1 min for both, 9.9 and 7.5 min one after the other).
started=$SECONDS
second_log="$(mktemp)"
INSOLE_MICROPYTHON="$PWD/.build/micropython-esp32/micropython" \
    .venv/bin/python -m pytest -q -p no:cacheprovider -m "micropython and not ui" "$@" >"$second_log" 2>&1 &
second=$!
trap 'kill "$second" 2>/dev/null || true; rm -f "$second_log"' EXIT
status=0
.venv/bin/python -m pytest -q "$@" || status=$?
echo "pytest under the PyPI MicroPython: $((SECONDS - started)) s"
wait "$second" || status=$?
echo
echo "pytest -m 'micropython and not ui' under the ESP32 number model (INSOLE_MICROPYTHON=.build/micropython-esp32/micropython):"
cat "$second_log"
echo "both runs: $((SECONDS - started)) s"
exit "$status"

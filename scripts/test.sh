#!/usr/bin/env bash
# The whole test suite: lint (ruff), static types (mypy, strict on the host), then
# pytest twice: everything under the PyPI MicroPython unix port, then every test that
# runs MicroPython (marker `micropython`) again under the unix port with the ESP32's
# number model (31-bit small ints, float32, ticks wrapping at 2^30), built from
# ../shared/vendor by scripts/build-micropython-esp32.sh. Arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh emulation,test
# Outside CI a missing source or toolchain only skips the second pass's tests (with a message).
bash scripts/build-micropython-esp32.sh
.venv/bin/ruff check host tests tools
.venv/bin/mypy

status=0
started=$SECONDS
.venv/bin/python -m pytest -q "$@" || status=$?
echo "pytest, PyPI MicroPython: $((SECONDS - started)) s"
started=$SECONDS
INSOLE_MICROPYTHON="$PWD/.build/micropython-esp32/micropython" \
    .venv/bin/python -m pytest -q -m micropython "$@" || status=$?
echo "pytest -m micropython, ESP32 number model: $((SECONDS - started)) s"
exit "$status"

#!/usr/bin/env bash
# Builds a MicroPython unix port with the ESP32's number model (31-bit small ints,
# float32, ticks wrapping at 2^30): a 32-bit i686 cross-build from the vendored source
# ($INSOLE_VENDOR_DIR, default ../shared/vendor; recipe in its README.md), into
# .build/micropython-esp32/micropython. The tests run under it with
# INSOLE_MICROPYTHON=.build/micropython-esp32/micropython (scripts/test.sh does).
#
# Skips the build when the binary is up to date. Outside CI (CI unset) a missing
# source or toolchain is not an error: one line says how to enable it, exit 0.
set -euo pipefail
self="$(realpath "$0")"
here="$(dirname "$self")"
cd "$(dirname "$self")/.."

out_dir=.build/micropython-esp32
binary="$out_dir/micropython"
vendor_dir="${INSOLE_VENDOR_DIR:-../shared/vendor}"
in_ci=false
case "${CI:-}" in 1 | true | yes | TRUE | True) in_ci=true ;; esac
# The cross compiler and the 32-bit C library to run the result; make and a native gcc
# (mpy-cross) are on most machines already.
packages=(gcc-i686-linux-gnu libc6-i386 make gcc)

unavailable() {  # $1: what is missing and how to get it
    if $in_ci; then
        echo "build-micropython-esp32: $1" >&2
        exit 1
    fi
    echo "ESP32 number-model MicroPython not built ($1); then run: bash scripts/build-micropython-esp32.sh"
    exit 0
}

shopt -s nullglob
tarballs=("$vendor_dir"/micropython-*.tar.gz)
shopt -u nullglob
if [ "${#tarballs[@]}" -eq 0 ]; then
    unavailable "no $vendor_dir/micropython-*.tar.gz: put the vendored MicroPython source there or set INSOLE_VENDOR_DIR"
fi
tarball="${tarballs[-1]}"

have_toolchain() {
    command -v i686-linux-gnu-gcc >/dev/null && [ -e /lib/ld-linux.so.2 ] &&
        command -v make >/dev/null && command -v gcc >/dev/null
}
if ! have_toolchain; then
    if $in_ci && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        # CI is a fresh Debian machine, as root.
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    fi
    have_toolchain || unavailable "the i686 toolchain is missing: apt-get install ${packages[*]}"
fi

# The checks a binary must pass to stand in for the ESP32's numbers (scripts/number_model_probe.py).
check_number_model() {
    local facts
    facts="$("$1" "$here/number_model_probe.py")" || return 1
    if [ "$facts" = "$(printf '2147483647\nTrue False\nTrue\n1073741823\n20')" ]; then
        echo ok
    else
        echo "not the ESP32's number model (want 31-bit small ints, 2**30 a big int, float32, ticks wrapping at 2**30): $facts"
        return 1
    fi
}

# The stamp: the source tarball and this recipe; either changing rebuilds.
stamp="$(sha256sum "$tarball" "$self" | sha256sum | cut -c1-64)"
if [ -x "$binary" ] && [ "$(cat "$out_dir/stamp" 2>/dev/null)" = "$stamp" ]; then
    if check_number_model "$binary" >/dev/null 2>&1; then
        echo "ESP32 number-model MicroPython up to date: $binary"
        exit 0
    fi
fi

started=$SECONDS
# Everything but the binary is rebuilt from scratch; the binary is replaced at the end in
# one rename, so tests running meanwhile keep the old one.
rm -rf "$out_dir/src" "$out_dir/mpy-lib" "$out_dir/stamp"
mkdir -p "$out_dir/src" "$out_dir/mpy-lib"
tar xzf "$tarball" -C "$out_dir/src"
top="$(cd "$out_dir/src/micropython" && pwd)"
# py/manifest.mk wants micropython-lib's README.md before it freezes anything;
# nothing from micropython-lib is frozen.
echo "Placeholder for micropython-lib: the frozen manifest uses none of it." >"$out_dir/mpy-lib/README.md"
echo 'include("$(MPY_DIR)/extmod/asyncio")' >"$out_dir/manifest.py"
jobs="$(nproc 2>/dev/null || echo 2)"
log="$out_dir/build.log"
{
    make -j"$jobs" -C "$top/mpy-cross"
    make -j"$jobs" -C "$top/ports/unix" \
        CROSS_COMPILE=i686-linux-gnu- \
        CFLAGS_EXTRA='-DMICROPY_FLOAT_IMPL=MICROPY_FLOAT_IMPL_FLOAT' \
        MICROPY_PY_BTREE=0 MICROPY_PY_FFI=0 MICROPY_PY_SSL=0 MICROPY_SSL_MBEDTLS=0 MICROPY_SSL_AXTLS=0 \
        FROZEN_MANIFEST="$(pwd)/$out_dir/manifest.py" \
        MPY_LIB_DIR="$(pwd)/$out_dir/mpy-lib"
} >"$log" 2>&1 || {
    tail -n 30 "$log" >&2
    echo "build-micropython-esp32: the build failed (log: $log)" >&2
    exit 1
}
built="$top/ports/unix/build-standard/micropython"
if ! result="$(check_number_model "$built" 2>&1)" || [ "$result" != ok ]; then
    echo "build-micropython-esp32: the build does not have the ESP32's number model:" >&2
    echo "$result" >&2
    exit 1
fi
cp "$built" "$binary.new"
mv -f "$binary.new" "$binary"
rm -rf "$out_dir/src"  # the build tree (~40 MB); the stamp and the binary are all the tests need
echo "$stamp" >"$out_dir/stamp"
echo "ESP32 number-model MicroPython built in $((SECONDS - started)) s: $binary ($(stat -c %s "$binary") bytes)"

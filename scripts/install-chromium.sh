#!/usr/bin/env bash
# Debian's Chromium for the browser tests (the dashboard and the reports, driven by
# playwright with executable_path). CI is a fresh Debian machine, as root: installed
# there when missing. Elsewhere this only says how; the tests skip with that message.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "${CI:-}" = "true" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    exit 0
fi
echo "Chromium is missing: apt-get install chromium (the browser tests skip without it)" >&2

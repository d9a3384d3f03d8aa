#!/usr/bin/env bash
# Creates or refreshes .venv in the checkout with the insole package (editable) and
# the extras named in $1 (comma-separated, e.g. "emulation,test"); used by
# scripts/demo.sh and scripts/test.sh.
#
# A warm checkout starts at once: pip runs only when pyproject.toml, the Python or the
# extras asked for changed since the last install (a stamp in .venv; pip's own check of
# an unchanged environment takes 10-40 s here).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-emulation}"
stamp=.venv/.insole-setup
fingerprint="$(python3 -c 'import sys; print(sys.version)') $(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ -f "$stamp" && -x .venv/bin/insole ]] && [[ "$(head -n1 "$stamp")" == "$fingerprint" ]]; then
    installed="$(sed -n 2p "$stamp")"
    missing=""
    for extra in ${extras//,/ }; do
        [[ ",$installed," == *",$extra,"* ]] || missing+="$extra"
    done
    [[ -z "$missing" ]] && exit 0
    extras="$installed,$extras"
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras}]"
printf '%s\n%s\n' "$fingerprint" "$extras" >"$stamp"

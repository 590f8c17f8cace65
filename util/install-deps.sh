#!/usr/bin/env bash
# Installs, from Debian's packages, what building, running and testing need
# (chromium for the dashboard's test), the OpenAPI linter from npm
# (docs/package-lock.json) and the dashboard's uPlot and playwright-core
# (dashboard/package-lock.json). Idempotent: does
# nothing (and needs no network) when everything is present.
set -euo pipefail

pkgs=(
    build-essential clang libclang-rt-14-dev nginx-core nginx-dev
    libpq-dev libhiredis-dev libjansson-dev libsodium-dev
    postgresql-15 postgresql-client-15 redis-server pgbouncer
    perl libtest-base-perl libjson-pp-perl liburi-perl
    libjson-validator-perl libyaml-libyaml-perl
    debhelper dpkg-dev lintian strace iproute2 curl
    chromium
)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
        || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: run as root (apt-get needs it)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d stops the packages from starting their system-wide
    # services: we run private instances on our own ports.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node.js 20.19+ (not 21) or 22.12+ with npm (the linter's engines in
# docs/package-lock.json: require() of ES modules): bookworm's own nodejs
# is 18, so it comes from nodejs.org or NodeSource, not from here.
version_le() { printf '%s\n%s\n' "$1" "$2" | sort -V -C; }
need_node() {
    local v
    v=$(node --version 2>/dev/null || true)
    if ! command -v npm >/dev/null \
       || ! { version_le v22.12.0 "${v:-v0}" \
              || { version_le v20.19.0 "${v:-v0}" \
                   && ! version_le v21 "${v:-v0}"; }; }
    then
        echo "install-deps: Node.js 20.19+ (not 21) or 22.12+ with npm is" \
             "needed" \
             "(found: ${v:-no node}; Debian bookworm's nodejs is 18:" \
             "install it from nodejs.org or NodeSource)" >&2
        exit 1
    fi
}

# The OpenAPI linter, at the version docs/package-lock.json pins, from the
# npm registry: only when it is not installed yet or the lock changed.
docs=$(cd "$(dirname "$0")/.." && pwd)/docs
if [ ! -x "$docs/node_modules/.bin/redocly" ] \
   || [ "$docs/package-lock.json" -nt "$docs/node_modules/.package-lock.json" ]; then
    need_node
    echo "install-deps: npm ci in docs/ (the OpenAPI linter)" >&2
    (cd "$docs" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# The dashboard's chart library (vendored into build/dashboard/) and the
# browser driver of its test (playwright-core, driving Debian's chromium:
# no browser download), at the versions dashboard/package-lock.json pins.
dashboard=$(cd "$(dirname "$0")/.." && pwd)/dashboard
if [ ! -d "$dashboard/node_modules/uplot" ] \
   || [ ! -d "$dashboard/node_modules/playwright-core" ] \
   || [ "$dashboard/package-lock.json" -nt "$dashboard/node_modules/.package-lock.json" ]; then
    need_node
    echo "install-deps: npm ci in dashboard/ (uPlot, playwright-core)" >&2
    (cd "$dashboard" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
        npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

#!/usr/bin/env bash
# `make deb-test`: installs build/libnginx-mod-http-worksible_*.deb into
# this machine's nginx with apt-get, then checks that
#   - the module is enabled (modules-enabled) and the stock nginx -t passes;
#   - the example configuration, with its hosts and files made local, passes
#     nginx -t with the installed module;
#   - the packaged CLI migrates from the packaged migrations, and the
#     Test::Nginx block suites pass against the installed module;
#   - removing the package leaves a working nginx (nginx -t passes, the
#     module is gone).
# Run as root. Prints one line per check; exits non-zero on the first failure.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

deb=$(ls build/libnginx-mod-http-worksible_*.deb 2>/dev/null | tail -n 1)
[ -n "$deb" ] || { echo "deb-test: no package in build/ (make deb)" >&2; exit 1; }

pkg=libnginx-mod-http-worksible
module=/usr/lib/nginx/modules/ngx_worksible_module.so
tmp=$(mktemp -d)
checks=0

pass() { checks=$((checks + 1)); echo "ok $checks - $*"; }
fail() { echo "not ok - $*" >&2; exit 1; }

cleanup() {
    dpkg -s "$pkg" >/dev/null 2>&1 && apt-get remove -y -qq "$pkg" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

# --- install ---------------------------------------------------------------

# the package asks nginx to reload (a dpkg trigger); no system nginx runs here
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "./$deb" >"$tmp/install.log" 2>&1 \
    || { cat "$tmp/install.log"; fail "apt-get install ./$deb"; }
pass "apt-get install ./$deb"

[ -f "$module" ] || fail "$module installed"
[ -L /etc/nginx/modules-enabled/50-mod-http-worksible.conf ] \
    || fail "the load_module snippet enabled"
pass "the module and its load_module snippet are in place"

/usr/sbin/nginx -t -q \
    || fail "nginx -t with the system configuration and the module loaded"
pass "the stock nginx -t loads the module"

[ "$(worksible --version)" = "worksible $(sed -n 's/^#define NGX_WORKSIBLE_VERSION *"\(.*\)"$/\1/p' src/ngx_worksible_version.h)" ] \
    || fail "worksible --version"
[ -f /usr/share/man/man1/worksible.1.gz ] || fail "the man page"
pass "the CLI and its man page"

# --- the dashboard's files -------------------------------------------------------

for f in index.html dashboard.js dashboard.css vendor/uPlot.iife.min.js vendor/uPlot.min.css; do
    [ -s "/usr/share/worksible/dashboard/$f" ] || fail "the package ships dashboard/$f"
done
pass "the dashboard's files are in /usr/share/worksible/dashboard"

# --- the example configuration ------------------------------------------------

example=/usr/share/doc/$pkg/examples/nginx.conf.example
mkdir -p "$tmp/conf" "$tmp/logs"
od -An -v -tx1 -N32 /dev/urandom | tr -d ' \n' >"$tmp/conf/key_secret"
echo secret >"$tmp/conf/redis_password"
echo '*:*:*:*:x' >"$tmp/conf/pgpass"
chmod 600 "$tmp/conf/pgpass"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=api.test \
    -keyout "$tmp/conf/tls.key" -out "$tmp/conf/tls.crt" >/dev/null 2>&1
sed -e "s#host=db.internal#host=127.0.0.1#" \
    -e "s#reports.internal#127.0.0.1#" \
    -e "s#/etc/nginx/worksible.pgpass#$tmp/conf/pgpass#" \
    -e "s#/etc/nginx/worksible.key_secret#$tmp/conf/key_secret#" \
    -e "s#/etc/nginx/worksible.redis_password#$tmp/conf/redis_password#" \
    -e "s#/etc/ssl/api.worksible.com.crt#$tmp/conf/tls.crt#" \
    -e "s#/etc/ssl/api.worksible.com.key#$tmp/conf/tls.key#" \
    -e "s#/var/log/nginx/error.log#$tmp/logs/error.log#" \
    "$example" >"$tmp/conf/nginx.conf"
/usr/sbin/nginx -t -q -p "$tmp" -c "$tmp/conf/nginx.conf" -g 'pid logs/nginx.pid;' \
    || fail "nginx -t with the example configuration"
pass "nginx -t passes with the example configuration (hosts and files made local)"

# --- the suites against the installed module ------------------------------------

WORKSIBLE_MODULE=$module WORKSIBLE_CLI=/usr/bin/worksible util/test.sh \
    t/auth.t t/api.t t/access.t t/api_keys.t t/errors.t t/scopes.t \
    t/ratelimit.t t/resources.t t/deprecation.t \
    || fail "the block suites against the installed module"
pass "the block suites pass against the installed module and CLI"

# --- removal -------------------------------------------------------------------

apt-get remove -y -qq "$pkg" >"$tmp/remove.log" 2>&1 \
    || { cat "$tmp/remove.log"; fail "apt-get remove $pkg"; }
[ ! -e "$module" ] && [ ! -e /etc/nginx/modules-enabled/50-mod-http-worksible.conf ] \
    || fail "the module and its snippet are gone"
/usr/sbin/nginx -t -q \
    || fail "nginx -t after the removal"
pass "apt-get remove leaves a working nginx without the module"

echo "deb-test: $checks passed, 0 failed"

#!/usr/bin/env bash
# `make compat`: builds the module for each nginx source given (trees or
# .tar.gz, ../shared/nginx-src/ by default), two at a time, each in
# build/nginx-VERSION/, with -Werror. Prints one line per version and fails
# if any build failed; a failed build's log is build/nginx-VERSION/build.log.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ $# -eq 0 ]; then
    echo "compat: no nginx sources: none in ../shared/nginx-src/ beside" \
         "the checkout; name them with NGINX_SOURCES=\"PATH...\"" >&2
    exit 1
fi

build_one() {
    local src=$1 name out
    name=$(basename "${src%/}" .tar.gz)
    out=$top/build/$name
    mkdir -p "$out"
    if NGINX_SRC=$src util/build-module.sh "$out" >"$out/build.log" 2>&1; then
        echo "compat: $name ok"
    else
        echo "compat: $name FAILED (see $out/build.log)"
        tail -n 5 "$out/build.log"
        return 1
    fi
}
export -f build_one
export top

printf '%s\n' "$@" | xargs -P 2 -I{} bash -c 'build_one "$@"' _ {}

#!/usr/bin/env bash
# Builds ngx_worksible_module.so for one nginx, with --with-compat, so that
# an nginx of that version built with the same flags loads it (DESIGN.md).
#
#   util/build-module.sh OUT_DIR [CC_OPT [LD_OPT]]
#
# Environment:
#   NGINX_SRC     the nginx to build for: a source tree or a .tar.gz of one
#                 (a release tarball, or a repository tree whose configure
#                 script is auto/configure). Default: Debian's nginx-dev
#                 tree (/usr/share/nginx/src), for the system nginx.
#   NGINX_FLAGS   the configure flags of the nginx the module will be loaded
#                 into (`nginx -V` prints them; its dynamic modules, other
#                 modules and --with-cc-opt/--with-ld-opt are left out).
#                 Default: Debian's (/usr/share/nginx/src/conf_flags).
#                 --with-compat is added when missing.
#   NGINX_BINARY  1: also build that nginx itself (OUT_DIR/objs/nginx), to
#                 run the suites against it (make test NGINX_SRC=...).
#
# OUT_DIR gets nginx/ (the source), objs/ and ngx_worksible_module.so.
# nginx compiles with -Werror.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=$1
cc_opt=${2:--g -O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2 -Wformat -Werror=format-security}
ld_opt=${3:--Wl,-z,relro -Wl,-z,now}
src=$out/nginx
from=${NGINX_SRC:-/usr/share/nginx/src}

mkdir -p "$out"
if [ ! -x "$src/configure" ] && [ ! -x "$src/auto/configure" ]; then
    rm -rf "$src"
    mkdir -p "$src"
    if [ -d "$from" ]; then
        cp -r "$from/." "$src"
    else
        tar -xzf "$from" -C "$src" --strip-components=1
    fi
fi

configure=./configure
[ -x "$src/configure" ] || configure=auto/configure

if [ -n "${NGINX_FLAGS:-}" ]; then
    eval "given=($NGINX_FLAGS)"
    # nginx -V also lists the distribution's own dynamic modules and build
    # options: only the flags that shape the ABI matter here
    flags=()
    for f in "${given[@]}"; do
        case $f in
            --with-*=dynamic|--add-module=*|--add-dynamic-module=*) ;;
            --with-cc-opt=*|--with-ld-opt=*) ;;
            *) flags+=("$f") ;;
        esac
    done
else
    # shellcheck disable=SC1091
    . /usr/share/nginx/src/conf_flags
    # and the static modules nginx-core adds to them (nginx -V)
    flags=("${NGX_CONF_FLAGS[@]}" --with-http_addition_module
           --with-http_flv_module --with-http_gunzip_module
           --with-http_gzip_static_module --with-http_mp4_module
           --with-http_random_index_module --with-http_secure_link_module
           --with-http_sub_module)
fi
case " ${flags[*]} " in
    *" --with-compat "*) ;;
    *) flags+=(--with-compat) ;;
esac

if [ ! -f "$out/objs/Makefile" ] || [ "$top/config" -nt "$out/objs/Makefile" ] \
   || [ "${flags[*]} $cc_opt $ld_opt" != "$(cat "$out/flags" 2>/dev/null)" ]
then
    (
        cd "$src"
        "$configure" "${flags[@]}" \
            --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" \
            --add-dynamic-module="$top" --builddir="$out/objs" \
            >"$out/configure.log" 2>&1
    ) || { tail -n 20 "$out/configure.log" >&2; exit 1; }
    echo "${flags[*]} $cc_opt $ld_opt" >"$out/flags"
fi

if [ "${NGINX_BINARY:-0}" = 1 ]; then
    make -s -j"$(nproc)" -C "$src" -f "$out/objs/Makefile" binary modules
else
    make -s -j"$(nproc)" -C "$src" -f "$out/objs/Makefile" modules
fi

# a new file, not an overwrite: a running nginx keeps mapping the old one
cp "$out/objs/ngx_worksible_module.so" "$out/.ngx_worksible_module.so.new"
mv -f "$out/.ngx_worksible_module.so.new" "$out/ngx_worksible_module.so"

#!/usr/bin/env bash
# Builds ngx_worksible_module.so against Debian's nginx-dev tree, with the
# distribution's own configure flags (--with-compat), so that the stock
# /usr/sbin/nginx loads it (DESIGN.md).
#
#   util/build-module.sh OUT_DIR [CC_OPT [LD_OPT]]
#
# OUT_DIR gets objs/ and ngx_worksible_module.so. nginx compiles with -Werror.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=$1
cc_opt=${2:--g -O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2 -Wformat -Werror=format-security}
ld_opt=${3:--Wl,-z,relro -Wl,-z,now}
src=$out/nginx

mkdir -p "$out"
if [ ! -x "$src/configure" ]; then
    rm -rf "$src"
    cp -r /usr/share/nginx/src "$src"
fi

if [ ! -f "$out/objs/Makefile" ] || [ "$top/config" -nt "$out/objs/Makefile" ]; then
    (
        cd "$src"
        # shellcheck disable=SC1091
        . ./conf_flags
        ./configure "${NGX_CONF_FLAGS[@]}" \
            --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" \
            --add-dynamic-module="$top" --builddir="$out/objs" \
            >"$out/configure.log" 2>&1
    ) || { tail -n 20 "$out/configure.log" >&2; exit 1; }
fi

make -s -C "$src" -f "$out/objs/Makefile" modules
# a new file, not an overwrite: a running nginx keeps mapping the old one
cp "$out/objs/ngx_worksible_module.so" "$out/.ngx_worksible_module.so.new"
mv -f "$out/.ngx_worksible_module.so.new" "$out/ngx_worksible_module.so"

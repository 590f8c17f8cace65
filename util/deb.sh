#!/usr/bin/env bash
# `make deb`: the Debian package libnginx-mod-http-worksible_VERSION_ARCH.deb
# in build/, built the Debian way (debian/rules: dh --with nginx) from the
# project's files (those git tracks or would track, as they are in the
# working tree: a git checkout is needed), then checked with
# lintian. VERSION is NGX_WORKSIBLE_VERSION (src/ngx_worksible_version.h);
# debian/changelog is made from it, dated by the last commit.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

version=$(sed -n 's/^#define NGX_WORKSIBLE_VERSION *"\(.*\)"$/\1/p' \
          src/ngx_worksible_version.h)
[ -n "$version" ] || { echo "deb: no NGX_WORKSIBLE_VERSION" >&2; exit 1; }

work=$top/build/deb
src=$work/libnginx-mod-http-worksible-$version
rm -rf "$work"
mkdir -p "$src"

git ls-files -z --cached --others --exclude-standard \
    | xargs -0 cp --parents -t "$src"

# the dashboard's vendored uPlot (make: build/dashboard/vendor, from npm)
mkdir -p "$src/dashboard/vendor"
cp "$top"/build/dashboard/vendor/* "$src/dashboard/vendor/"

date=$(git log -1 --format=%cD 2>/dev/null || date -R)
cat > "$src/debian/changelog" <<CHANGES
libnginx-mod-http-worksible ($version) bookworm; urgency=medium

  * Release $version; see CHANGELOG.md in
    /usr/share/doc/libnginx-mod-http-worksible.

 -- Worksible Engineering <engineering@worksible.com>  $date
CHANGES

echo "deb: building libnginx-mod-http-worksible $version (log: $work/build.log)"
(cd "$src" && dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1 \
    || { tail -n 30 "$work/build.log" >&2; exit 1; }

deb=$(ls "$work"/libnginx-mod-http-worksible_"$version"_*.deb)
cp "$deb" "$top/build/"
echo "deb: build/$(basename "$deb")"

# any warning or error fails the build (there are no overrides)
lintian --fail-on warning,error "$top/build/$(basename "$deb")"

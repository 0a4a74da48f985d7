#!/bin/sh
# sdk.sh [BUILD]: the plugin SDK as a plugin author meets it. Installs a2ad
# into a temporary root (make install DESTDIR=... PREFIX=/usr), then builds
# examples/out-of-tree from a copy, outside the tree, with only the
# installed files (pkg-config a2ad-plugin and a2ad-mock), runs its unit test
# on the mock host, and has the installed a2ad -t load the built plugin.
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/a2ad-sdk.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
env -u MAKEFLAGS -u MFLAGS make -s -C "$root" BUILD="$build" install DESTDIR="$tmp/root" PREFIX=/usr >/dev/null
cp -r "$root/examples/out-of-tree" "$tmp/greeter"
export PKG_CONFIG_PATH="$tmp/root/usr/lib/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
# Nothing of the source tree may be reachable: only the installed header.
# A sanitizer build (make asan, make tsan) installs an instrumented mock
# library: the example is built with the same flags (SAN from the Makefile).
env -u MAKEFLAGS -u MFLAGS make -s -C "$tmp/greeter" all test ${SAN:+CFLAGS="-O1 -g -Wall -Wextra $SAN"}
cat > "$tmp/a2ad.conf" <<CONF
[plugins]
dir = $tmp/greeter
load = greeter
[tasks]
path = $tmp/a2ad.db
[agent.greeter]
greeting = Hi
CONF
"$tmp/root/usr/bin/a2ad" -t -c "$tmp/a2ad.conf"
for f in usr/include/a2ad/agent.h usr/include/a2ad/mock.h usr/lib/liba2ad-mock.a \
         usr/lib/pkgconfig/a2ad-plugin.pc usr/lib/pkgconfig/a2ad-mock.pc; do
  test -f "$tmp/root/$f" || { echo "sdk.sh: $f was not installed" >&2; exit 1; }
done
# (scdoc found when make read the Makefile: the pages were built)
if command -v scdoc >/dev/null 2>&1 && [ -d "$build/man" ]; then
  for m in man8/a2ad.8 man5/a2ad.conf.5 man3/a2ad-plugin.3; do
    test -f "$tmp/root/usr/share/man/$m" || { echo "sdk.sh: man page $m was not installed" >&2; exit 1; }
  done
fi
echo "sdk.sh: the out-of-tree plugin built, passed its mock-host test and loaded, from installed files only"

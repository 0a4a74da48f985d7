#!/bin/sh
# deps.sh [--test]: make sure the Debian packages a2ad builds with are there.
# As root, installs what is missing; otherwise prints the exact command and fails.
# deps.sh --interop: node and npm for tests/interop (the official A2A JS client).
set -eu
need="gcc make pkg-config libmicrohttpd-dev libcurl4-openssl-dev libcjson-dev libinih-dev libsqlite3-dev libssl-dev libgnutls28-dev libjwt-dev libpq-dev scdoc"
if [ "${1:-}" = "--interop" ]; then
  # Checked by command, not by package: NodeSource's nodejs bundles npm and
  # conflicts with Debian's npm package, so install only what is absent.
  need=""
  command -v node >/dev/null 2>&1 || need="nodejs"
  command -v npm >/dev/null 2>&1 || need="$need npm"
  [ -z "$need" ] && exit 0
fi
# chromium: the dashboard test (tests/ui) drives the real page in it.
# postgresql: test_pg starts its own server (initdb, pg_ctl).
[ "${1:-}" = "--test" ] && need="$need check libsubunit-dev chromium python3 openssl clang libclang-rt-14-dev postgresql curl"
missing=""
for p in $need; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps.sh: installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq $missing >/dev/null
else
  echo "deps.sh: missing Debian packages:$missing" >&2
  echo "run:  sudo apt-get install -y$missing" >&2
  exit 1
fi

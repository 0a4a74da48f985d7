#!/bin/sh
# run.sh [BUILD]: the interop test - the official A2A JavaScript client
# (@a2a-js/sdk 0.3.14 for protocol 0.3, 1.3.0 for protocol 1.0) against the
# real a2ad in BUILD (default: build). Run by `make test` and `make interop`.
# sdkrest.test.mjs drives the same scenarios through the 1.x client's
# HTTP+JSON (REST) transport, sdkrest03.test.mjs through the 0.3 client's
# (0.3's /v1/... binding).
#
# Needs node and npm. When they are missing, scripts/deps.sh --interop
# installs Debian's (as root); only if that is impossible is the test skipped,
# with a message saying so. The SDKs come from the npm registry, at the exact
# versions of package-lock.json, installed with `npm ci` into node_modules/
# here when it is missing or older than the lock file.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build="$root/$build" ;; esac

if ! "$root/scripts/deps.sh" --interop; then
  echo "interop: SKIPPED: node/npm are not installed and cannot be installed here (not root);" \
       "install nodejs and npm to run the official-client interop test" >&2
  exit 0
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "interop: node $(node --version) is too old: @a2a-js/sdk needs node >= 18 (1.3.0 declares >= 20)" >&2
  exit 1
fi

cd "$here"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "interop: npm ci (@a2a-js/sdk 0.3.14 and 1.3.0, pinned in package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "interop: node $(node --version), a2ad from $build"
# The two files (0.3 and 1.x client) run side by side, each with its own
# daemon. Each call in the tests has its own time limit; this bounds the whole run.
A2AD_BUILD="$build" exec timeout 300 node --test --test-concurrency=2 --test-reporter=spec ./*.test.mjs

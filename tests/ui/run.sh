#!/bin/sh
# run.sh [BUILD]: the dashboard test - a2ad's /ui/ in Debian's headless
# chromium, driven by puppeteer-core (pinned in package-lock.json). Run by
# `make test` and `make ui-test`.
#
# Without chromium the test is skipped with a loud message, except under CI
# (CI=true), where that is a failure: CI installs chromium (.ci/run).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build="$root/$build" ;; esac

skip() {
  if [ "${CI:-}" = "true" ]; then
    echo "ui: FAILED: $1 (CI must run the dashboard test)" >&2
    exit 1
  fi
  echo "" >&2
  echo "ui: ******** SKIPPED: $1 ********" >&2
  echo "ui: the web dashboard was NOT tested in a browser; install it: apt-get install chromium" >&2
  echo "" >&2
  exit 0
}

chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || skip "no chromium at $chromium"
if ! "$root/scripts/deps.sh" --interop; then
  skip "node/npm are not installed and cannot be installed here (not root)"
fi

cd "$here"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ui: npm ci (puppeteer-core, pinned in package-lock.json)"
  # The browser is Debian's: puppeteer-core downloads none.
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "ui: node $(node --version), $("$chromium" --version 2>/dev/null | head -1), a2ad from $build"
A2AD_BUILD="$build" CHROMIUM="$chromium" exec timeout 180 node --test --test-reporter=spec ./*.test.mjs

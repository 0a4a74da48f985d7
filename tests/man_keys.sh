#!/bin/sh
# man_keys.sh: every key of config.c's table is documented in a2ad.conf(5)
# (docs/man/a2ad.conf.5.scd), so the page cannot fall behind the program.
set -eu
cd "$(dirname "$0")/.."
page=docs/man/a2ad.conf.5.scd
missing=0
# Rows look like: K_UINT("server", "port", ...  -> section and key.
for sk in $(sed -n 's/^ *K_[A-Z0-9]*("\([a-z]*\)", "\([a-z_]*\)".*/\1:\2/p' daemon/config.c); do
  section=${sk%%:*}; key=${sk#*:}
  # The key must be listed ("*key* =") after its section's heading.
  if ! awk -v s="## [$section]" -v k="*$key* =" '
      index($0, "## [") == 1 { in_s = ($0 == s) }
      in_s && index($0, k) == 1 { found = 1 }
      END { exit !found }' "$page"; then
    echo "man_keys.sh: [$section] $key is not documented in $page" >&2
    missing=$((missing + 1))
  fi
done
n=$(sed -n 's/^ *K_[A-Z0-9]*("\([a-z]*\)", "\([a-z_]*\)".*/x/p' daemon/config.c | wc -l)
[ "$n" -gt 30 ] || { echo "man_keys.sh: found only $n keys in daemon/config.c; is the pattern stale?" >&2; exit 1; }
[ "$missing" -eq 0 ] || exit 1
echo "man_keys.sh: all $n keys of daemon/config.c are in $page"

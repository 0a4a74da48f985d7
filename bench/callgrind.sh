#!/usr/bin/env bash
# callgrind.sh BINARY [N1 N2]: CPU instructions per job of an a2ad binary,
# counted by valgrind's callgrind (deterministic, unlike wall-clock figures
# on a shared machine). Runs the daemon twice under callgrind, submits N1
# then N2 non-blocking message/send jobs to the echo agent one after the
# other, waits until all ended, stops it, and prints
#     (Ir(N2) - Ir(N1)) / (N2 - N1)
# so start-up and shutdown cancel out. Needs valgrind and curl. Example:
#     bench/callgrind.sh build/a2ad 100 300
set -euo pipefail
bin=$1; n1=${2:-100}; n2=${3:-300}
plugins=$(cd "$(dirname "$bin")" && pwd)/plugins
tmp=$(mktemp -d /tmp/a2ad-callgrind.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

run() { # run N -> prints total Ir
    local n=$1 port=$((20000 + RANDOM % 20000))
    rm -f "$tmp"/a.db*
    cat > "$tmp/a.conf" <<CONF
[server]
listen = 127.0.0.1
port = $port
default_agent = echo
[workers]
threads = 2
[plugins]
dir = $plugins
load = echo
[tasks]
path = $tmp/a.db
sync = normal
[log]
level = ${LOG_LEVEL:-info}
CONF
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$n" "$bin" -c "$tmp/a.conf" 2>"$tmp/log.$n" &
    local pid=$!
    for _ in $(seq 300); do
        curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    for i in $(seq "$n"); do
        curl -fs -o /dev/null "http://127.0.0.1:$port/" -H 'Content-Type: application/json' -d \
          '{"jsonrpc":"2.0","id":'"$i"',"method":"message/send","params":{"configuration":{"blocking":false},"message":{"role":"user","messageId":"m'"$i"'","parts":[{"kind":"text","text":"hello"}]}}}'
    done
    for _ in $(seq 300); do
        curl -fs "http://127.0.0.1:$port/healthz" | grep -q '"jobsQueued":0,"jobsRunning":0' && break
        sleep 0.1
    done
    kill -TERM "$pid"; wait "$pid" || true
    grep -E '^(summary|totals):' "$tmp/cg.$n" | head -1 | awk '{print $2}'
}
ir1=$(run "$n1"); ir2=$(run "$n2")
echo "Ir($n1 jobs) = $ir1"
echo "Ir($n2 jobs) = $ir2"
echo "instructions per job = $(( (ir2 - ir1) / (n2 - n1) ))"

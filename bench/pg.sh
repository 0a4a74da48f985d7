#!/usr/bin/env bash
# pg.sh: end-to-end jobs/s and ack latency of the sqlite store next to the
# postgresql store, one node each, same run, same load. Short on purpose
# (N=2000 jobs per store by default): not `make bench`.
#
#   bench/pg.sh            (after `make`; needs Debian's postgresql, libcurl)
#   PG_JOBS=2000 PG_CONNS=16 bench/pg.sh
#   PG_TWO_NODES=0: without the two-node run (two a2ad on the database,
#   half the jobs and connections each)
#
# Each store: a fresh a2ad (echo agent, default settings: sqlite sync = full,
# PostgreSQL with its defaults, fsync and synchronous_commit on), N
# non-blocking message/send with a webhook to bench/sink, over C keep-alive
# connections (bench/load.c). ack p50/p99: the message/send answers.
# end-to-end jobs/s: N / (last terminal webhook received - first send).
# The PostgreSQL line also shows a2ad's own count of round trips (logged at
# stop) per job.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${PG_JOBS:-2000}
C=${PG_CONNS:-16}
PORT=${BENCH_PORT:-8094}
SINK_PORT=${SINK_PORT:-9204}
die() { echo "pg.sh: $*" >&2; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$PGBIN" ] || die "no /usr/lib/postgresql/*/bin: apt-get install -y postgresql"
[ -x "$BUILD/a2ad" ] || die "$BUILD/a2ad is missing: run make"
make -s "$BUILD/bench/sink" >/dev/null
cc -O2 bench/load.c -o "$BUILD/bench/load" -lcurl -lpthread

WORK=$(mktemp -d /tmp/a2ad-pgbench.XXXXXX)
PIDS=()
AS=()
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK"; AS=(runuser -u postgres --); fi
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  "${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[ "${PG_BENCH_DEBUG:-0}" = 1 ] && trap "cat $WORK/pg.log; cleanup" EXIT
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for ((i = 0; i < 100; i++)); do port_open "$1" && return 0; sleep 0.1; done; return 1; }
# A port nothing listens on, from the kernel (a fixed range collides with
# ephemeral ports of other programs).
PGPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"${AS[@]}" "$PGBIN/initdb" -D "$WORK/data" -U a2ad -A trust >/dev/null
"${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w \
  -o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null

"$BUILD/bench/sink" "$SINK_PORT" & PIDS+=($!)
wait_port "$SINK_PORT" || die "the sink did not start"

run_store() { # STORE -> one result line
  local store=$1 conf=$WORK/$1.conf log=$WORK/$1.log
  cat >"$conf" <<EOC
[server]
listen = 127.0.0.1
port = $PORT
rate_limit_per_s = 0
max_connections_per_ip = 0
[plugins]
dir = $BUILD/plugins
load = echo
[tasks]
store = $store
path = $WORK/a2ad.db
dsn = host=127.0.0.1 port=$PGPORT dbname=postgres user=a2ad ${PG_DSN_EXTRA:-}
[log]
level = info
EOC
  "$BUILD/a2ad" -c "$conf" >"$log" 2>&1 & local pid=$!
  PIDS+=("$pid")
  wait_port "$PORT" || die "a2ad ($store) did not start: $(tail -3 "$log")"
  curl -s "http://127.0.0.1:$SINK_PORT/reset" >/dev/null
  local line
  line=$("$BUILD/bench/load" "http://127.0.0.1:$PORT/agents/echo" "$N" "$C" \
         "http://127.0.0.1:$SINK_PORT/hook")
  local start acked terminal last
  start=$(sed 's/.*start_ms=\([0-9]*\).*/\1/' <<<"$line")
  acked=$(sed 's/^acked=\([0-9]*\).*/\1/' <<<"$line")
  for ((i = 0; i < 1200; i++)); do
    read -r _ _ terminal _ _ last <<<"$(curl -s "http://127.0.0.1:$SINK_PORT/stats")"
    [ "$terminal" -ge "$acked" ] && break
    sleep 0.1
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local rt
  rt=$(grep -o '[0-9]* tasks created in [0-9]* transactions, [0-9]* statements, [0-9]* round trips' "$log" || true)
  awk -v s="$store" -v l="$line" -v n="$acked" -v t="$terminal" -v a="$start" -v b="$last" -v rt="$rt" 'BEGIN {
    split(l, f, " "); for (i in f) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
    printf "%-10s acked %5d  terminal %5d  ack %7.0f/s  end-to-end %7.0f jobs/s  ack p50 %6.2f ms  p99 %7.2f ms", s, n, t, n / v["seconds"], t / ((b - a) / 1000), v["p50_ms"], v["p99_ms"]
    if (rt != "") { split(rt, r, " "); sub(",", "", r[7]); printf "  | PostgreSQL: %.2f round trips, %.2f statements per job (%s round trips, %s transactions, %s statements)", r[9] / r[1], r[7] / r[1], r[9], r[5], r[7] }
    printf "\n" }'
  rm -f "$WORK"/a2ad.db*
}

# Two PostgreSQL nodes on the same database, each given half the jobs over
# half the connections (a load balancer's round robin, in effect).
run_two_nodes() {
  local i pids=() outs=()
  for i in 1 2; do
    cat >"$WORK/n$i.conf" <<EOC
[server]
listen = 127.0.0.1
port = $((PORT + i))
rate_limit_per_s = 0
max_connections_per_ip = 0
node_name = n$i
[plugins]
dir = $BUILD/plugins
load = echo
[tasks]
store = postgresql
dsn = host=127.0.0.1 port=$PGPORT dbname=postgres user=a2ad ${PG_DSN_EXTRA:-}
EOC
    "$BUILD/a2ad" -c "$WORK/n$i.conf" >"$WORK/n$i.log" 2>&1 & pids+=($!)
    PIDS+=($!)
  done
  for i in 1 2; do wait_port $((PORT + i)) || die "node n$i did not start: $(tail -3 "$WORK/n$i.log")"; done
  curl -s "http://127.0.0.1:$SINK_PORT/reset" >/dev/null
  for i in 1 2; do
    "$BUILD/bench/load" "http://127.0.0.1:$((PORT + i))/agents/echo" $((N / 2)) $((C / 2)) \
      "http://127.0.0.1:$SINK_PORT/hook" >"$WORK/load$i.out" & outs+=($!)
  done
  wait "${outs[@]}"
  local l1 l2 acked start terminal last
  l1=$(cat "$WORK/load1.out"); l2=$(cat "$WORK/load2.out")
  acked=$(( $(sed 's/^acked=\([0-9]*\).*/\1/' <<<"$l1") + $(sed 's/^acked=\([0-9]*\).*/\1/' <<<"$l2") ))
  start=$(printf '%s\n%s\n' "$l1" "$l2" | sed 's/.*start_ms=\([0-9]*\).*/\1/' | sort -n | head -1)
  for ((i = 0; i < 1200; i++)); do
    read -r _ _ terminal _ _ last <<<"$(curl -s "http://127.0.0.1:$SINK_PORT/stats")"
    [ "$terminal" -ge "$acked" ] && break
    sleep 0.1
  done
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  awk -v n="$acked" -v t="$terminal" -v a="$start" -v b="$last" -v l1="$l1" -v l2="$l2" 'BEGIN {
    split(l1, f, " "); for (i in f) { split(f[i], kv, "="); x[kv[1]] = kv[2] }
    split(l2, f, " "); for (i in f) { split(f[i], kv, "="); y[kv[1]] = kv[2] }
    printf "pg 2 nodes acked %5d  terminal %5d  end-to-end %7.0f jobs/s  ack p50 %6.2f / %6.2f ms  p99 %7.2f / %7.2f ms (node 1 / node 2)\n", n, t, t / ((b - a) / 1000), x["p50_ms"], y["p50_ms"], x["p99_ms"], y["p99_ms"] }'
  "${AS[@]}" "$PGBIN/psql" -h "$WORK" -p "$PGPORT" -U a2ad -d postgres -qAtc \
    "DROP TABLE a2ad_tasks, a2ad_outbox, a2ad_nodes, a2ad_schema_version" >/dev/null 2>&1 || true
}

echo "a2ad store comparison, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $N jobs (echo), $C connections, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}')"
run_store sqlite
run_store postgresql
[ "${PG_TWO_NODES:-1}" = 1 ] && run_two_nodes

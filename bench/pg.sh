#!/usr/bin/env bash
# pg.sh: end-to-end jobs/s and ack latency of the sqlite store on one node
# next to the postgresql store on 1, 2 and 3 nodes (one database), same run,
# same load. Short (N=2000 jobs per line by default); `make bench` runs it
# at its end when PostgreSQL's initdb is installed.
#
#   bench/pg.sh            (after `make`; needs Debian's postgresql, libcurl)
#   PG_JOBS=2000 PG_CONNS=16 PG_NODES="1 2 3" bench/pg.sh
#
# Each line: fresh a2ad nodes (echo agent, default settings: sqlite sync =
# full, PostgreSQL with its defaults, fsync and synchronous_commit on; every
# node of a line on the same, emptied, database), N non-blocking
# message/send with a webhook to bench/sink, over C keep-alive client
# connections (bench/load.c), job i sent to node i mod K (a round-robin load
# balancer). ack p50/p99: the message/send answers, all nodes together.
# end-to-end jobs/s: N / (last terminal webhook received - first send).
# PostgreSQL lines also show a2ad's own count of round trips and statements
# per job (logged by each node at stop, summed) and the CPU the PostgreSQL
# server used per job; every line the CPU the a2ad processes used per job
# and how busy the whole machine was meanwhile (from /proc).
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
for p in $((PORT + 1)) $((PORT + 2)) $((PORT + 3)) "$SINK_PORT"; do
  port_open "$p" && die "port $p on 127.0.0.1 is taken (set BENCH_PORT, which uses the next 3, and SINK_PORT)"
done
wait_port() { local i; for ((i = 0; i < 100; i++)); do port_open "$1" && return 0; sleep 0.1; done; return 1; }
# A port nothing listens on, from the kernel (a fixed range collides with
# ephemeral ports of other programs).
PGPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"${AS[@]}" "$PGBIN/initdb" -D "$WORK/data" -U a2ad -A trust >/dev/null
"${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w \
  -o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null

"$BUILD/bench/sink" "$SINK_PORT" & PIDS+=($!)
wait_port "$SINK_PORT" || die "the sink did not start"

# cpu_ticks PID...: utime + stime of these processes, in clock ticks.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
# The PostgreSQL server's processes: the postmaster and its children (the
# nodes' backends live from their start to their stop, so both samples see them).
pg_pids() { local pm; pm=$(head -1 "$WORK/data/postmaster.pid"); echo "$pm" $(ps -o pid= --ppid "$pm"); }
# busy_ticks / all_ticks: the machine's non-idle and total ticks (/proc/stat).
machine_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat; }

# run_nodes STORE K -> one result line: K a2ad nodes of STORE (K = 1 for
# sqlite), the jobs round-robin over them.
run_nodes() {
  local store=$1 k=$2 i pids=() urls=""
  for ((i = 1; i <= k; i++)); do
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
store = $store
path = $WORK/a2ad.db
dsn = host=127.0.0.1 port=$PGPORT dbname=postgres user=a2ad ${PG_DSN_EXTRA:-}
[webhooks]
# the sink is on loopback, which the SSRF guard refuses by default
allow_networks = 127.0.0.0/8
[log]
level = info
EOC
    "$BUILD/a2ad" -c "$WORK/n$i.conf" >"$WORK/n$i.log" 2>&1 & pids+=($!)
    PIDS+=($!)
    urls="$urls${urls:+,}http://127.0.0.1:$((PORT + i))/agents/echo"
  done
  for ((i = 1; i <= k; i++)); do
    wait_port $((PORT + i)) || die "a2ad ($store, node n$i) did not start: $(tail -3 "$WORK/n$i.log")"
  done
  curl -s "http://127.0.0.1:$SINK_PORT/reset" >/dev/null
  local cpu0 m0 pg0 line start acked terminal last cpu1 m1 pg1
  cpu0=$(cpu_ticks "${pids[@]}"); m0=$(machine_ticks); pg0=$(cpu_ticks $(pg_pids))
  line=$("$BUILD/bench/load" "$urls" "$N" "$C" "http://127.0.0.1:$SINK_PORT/hook")
  start=$(sed 's/.*start_ms=\([0-9]*\).*/\1/' <<<"$line")
  acked=$(sed 's/^acked=\([0-9]*\).*/\1/' <<<"$line")
  for ((i = 0; i < 1200; i++)); do
    read -r _ _ terminal _ _ last <<<"$(curl -s "http://127.0.0.1:$SINK_PORT/stats")"
    [ "$terminal" -ge "$acked" ] && break
    sleep 0.1
  done
  cpu1=$(cpu_ticks "${pids[@]}"); m1=$(machine_ticks); pg1=$(cpu_ticks $(pg_pids))
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  # "N tasks created in T transactions, S statements, R round trips", summed over the nodes
  local rt
  rt=$(cat "$WORK"/n*.log | { grep -o '[0-9]* tasks created in [0-9]* transactions, [0-9]* statements, [0-9]* round trips' || true; } |
       awk '{c += $1; t += $5; s += $7; r += $9} END {if (NR) print c, t, s, r}')
  awk -v s="$store" -v k="$k" -v l="$line" -v n="$acked" -v t="$terminal" -v a="$start" -v b="$last" \
      -v rt="$rt" -v cpu="$((cpu1 - cpu0))" -v pgcpu="$((pg1 - pg0))" -v hz="$(getconf CLK_TCK)" -v m0="$m0" -v m1="$m1" 'BEGIN {
    split(l, f, " "); for (i in f) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
    split(m0, x, " "); split(m1, y, " ")
    printf "%-10s %d node%s  acked %5d  terminal %5d  end-to-end %6.0f jobs/s  ack p50 %6.2f ms  p99 %7.2f ms  a2ad CPU %4.0f us/job  machine %3.0f%% busy", s, k, (k > 1 ? "s" : " "), n, t, t / ((b - a) / 1000), v["p50_ms"], v["p99_ms"], n ? cpu / hz * 1e6 / n : 0, ((y[2] > x[2]) ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 0)
    if (rt != "") { split(rt, r, " "); printf "  | PostgreSQL: %.2f round trips, %.2f statements per job (%d round trips, %d transactions), server CPU %.0f us/job", r[4] / r[1], r[3] / r[1], r[4], r[2], n ? pgcpu / hz * 1e6 / n : 0 }
    printf "\n" }'
  if [ "${PG_BENCH_DEBUG:-0}" = 1 ]; then grep -h "work sharing\|tasks created" "$WORK"/n*.log >&2 || true; fi
  rm -f "$WORK"/a2ad.db* "$WORK"/n*.log
  [ "$store" = postgresql ] && "${AS[@]}" "$PGBIN/psql" -h "$WORK" -p "$PGPORT" -U a2ad -d postgres -qAtc \
    "DROP TABLE IF EXISTS a2ad_tasks, a2ad_outbox, a2ad_nodes, a2ad_controls, a2ad_events, a2ad_schema_version" >/dev/null 2>&1
  return 0
}

echo "a2ad store comparison, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $N jobs (echo), $C client connections, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}')"
run_nodes sqlite 1
for k in ${PG_NODES:-1 2 3}; do run_nodes postgresql "$k"; done

#!/bin/bash
# bench/bench.sh [--peer] - the benchmark behind `make bench` and `make bench-peer`.
#
# Runs everything on 127.0.0.1: a2ad with the example plugins, the webhook
# receiver bench/sink.c, and wrk as the load generator (bench/submit.lua,
# bench/post.lua). Every figure printed is computed from this run's
# measurements. With --peer it also runs the A2A JS SDK peer from
# $PEER_DIR (default ../shared/peer) under the same load and prints a2ad/peer.
#
# Needs: wrk, curl, awk (and the build tools `make` already needs); for
# --peer also node and the peer's node_modules. Installs nothing.
#
# Environment (all optional):
#   BUILD=build           where `make` put a2ad, the plugins and bench/ helpers
#   BENCH_SECONDS=10      length of each load phase
#   BENCH_CONNS=32        wrk connections (wrk threads: 2)
#   BENCH_PORT=8090  SINK_PORT=9200  PEER_PORT=9101
#   PEER_DIR=../shared/peer
#   BENCH_PERF=FILE       record `perf record -g` of a2ad during the end-to-end phase
#   BENCH_KEEP=1          keep the work folder (configs, logs) instead of deleting it
#   BENCH_STORE=sqlite    [tasks] store: sqlite (the default; a fresh database in the
#                         work folder for each daemon) or memory
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
A2AD=$BUILD/a2ad
SINK=$BUILD/bench/sink
STARTUP=$BUILD/bench/startup
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-32}
STORE_KIND=${BENCH_STORE:-sqlite}
PORT=${BENCH_PORT:-8090}
SINK_PORT=${SINK_PORT:-9200}
PEER_PORT=${PEER_PORT:-9101}
PEER_DIR=${PEER_DIR:-$ROOT/../shared/peer}
WITH_PEER=0
[ "${1:-}" = "--peer" ] && WITH_PEER=1

die() { echo "bench: $*" >&2; exit 1; }

# ---- what we need --------------------------------------------------------
missing=""
for tool in wrk curl awk; do command -v $tool >/dev/null 2>&1 || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  echo "bench: missing:$missing" >&2
  echo "bench: install with:  sudo apt-get install -y$missing" >&2
  exit 1
fi
for f in "$A2AD" "$SINK" "$STARTUP" "$BUILD"/plugins/{echo,processor,threaded,failing}.so; do
  [ -x "$f" ] || [ -f "$f" ] || die "$f is missing: run it through make (make bench)"
done
CORES=$(nproc 2>/dev/null || echo "?")

WORK=$(mktemp -d /tmp/a2ad-bench.XXXXXX) || die "cannot create a work folder"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ms_now() { date +%s%3N; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# wait_port PORT TENTHS: until the port accepts a connection, at most TENTHS/10 s.
wait_port() {
  local i
  for ((i = 0; i < $2; i++)); do port_open "$1" && return 0; sleep 0.1; done
  return 1
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
threads_of() { awk '/^Threads:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
# field NAME LINE: the value of NAME=value in a key=value line.
field() { echo "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }

for p in $PORT $SINK_PORT; do port_open "$p" && die "port $p on 127.0.0.1 is taken (set BENCH_PORT / SINK_PORT)"; done
[ $WITH_PEER = 1 ] && port_open "$PEER_PORT" && die "port $PEER_PORT is taken (set PEER_PORT)"

# ---- configurations --------------------------------------------------------
# The run configuration: defaults, except processor steps take no time so
# that a2ad's own overhead is what gets measured.
conf_run=$WORK/run.conf
cat > "$conf_run" <<EOF
[server]
listen = 127.0.0.1
port = $PORT
default_agent = processor
rate_limit_per_s = 0
max_connections_per_ip = 0
[plugins]
dir = $BUILD/plugins
load = echo, processor, threaded, failing
[tasks]
store = $STORE_KIND
path = $WORK/a2ad.db
[webhooks]
# the sink is on loopback, which the SSRF guard refuses by default
allow_networks = 127.0.0.0/8
[agent.processor]
step_ms = 0
EOF
# The queue configuration: one worker busy with an endless job, so the
# next 10,000 jobs stay queued; no webhooks.
conf_queue=$WORK/queue.conf
cat > "$conf_queue" <<EOF
[server]
listen = 127.0.0.1
port = $PORT
default_agent = processor
rate_limit_per_s = 0
max_connections_per_ip = 0
[workers]
threads = 1
queue_length = 10000
shutdown_grace_s = 0
[tasks]
store = $STORE_KIND
path = $WORK/a2ad.db
[plugins]
dir = $BUILD/plugins
load = echo, processor, threaded, failing
[agent.processor]
step_ms = 3600000
EOF

A2AD_PID=
start_a2ad() { # CONF LOG
  rm -f "$WORK"/a2ad.db "$WORK"/a2ad.db-wal "$WORK"/a2ad.db-shm # each phase starts empty
  "$A2AD" -c "$1" 2>>"$2" &
  A2AD_PID=$!
  PIDS+=("$A2AD_PID")
  wait_port "$PORT" 100 || die "a2ad did not start within 10 s; see $2 (BENCH_KEEP=1 keeps it)"
}
stop_a2ad() {
  [ -n "$A2AD_PID" ] || return
  kill "$A2AD_PID" 2>/dev/null
  local i
  for ((i = 0; i < 100; i++)); do kill -0 "$A2AD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$A2AD_PID" 2>/dev/null
  wait "$A2AD_PID" 2>/dev/null
  A2AD_PID=
}

# submit URL [HOOK] -> the submit.lua summary line
submit() {
  HOOK=${2:-} wrk -t2 -c"$CONNS" -d"${SECS}s" --timeout 5s -s bench/submit.lua "$1" 2>&1 |
    grep '^accepted=' || echo "accepted=0 full=0 other=0 requests=0 seconds=1 p50_ms=0 p99_ms=0 max_ms=0 (wrk failed)"
}

sink_stats() { curl -s --max-time 2 "http://127.0.0.1:$SINK_PORT/stats"; }

# e2e NAME URL PID: submit with webhooks for SECS, then wait until every
# accepted job's terminal notification has arrived, or nothing has arrived
# for 3 s, or 60 s have passed. Sets E2E_* variables.
e2e() {
  local name=$1 url=$2 pid=$3
  curl -s --max-time 2 "http://127.0.0.1:$SINK_PORT/reset" >/dev/null
  local perf_pid=
  if [ -n "${BENCH_PERF:-}" ] && [ "$name" = a2ad ] && command -v perf >/dev/null; then
    perf record -g -o "$BENCH_PERF" -p "$pid" -- sleep "$SECS" >/dev/null 2>"$WORK/perf.log" &
    perf_pid=$!
  fi
  local t0 line
  t0=$(ms_now)
  line=$(submit "$url" "http://127.0.0.1:$SINK_PORT/hook")
  [ -n "$perf_pid" ] && wait "$perf_pid"
  local accepted posts terminal last_change=$(ms_now) prev=-1 quiet i
  accepted=$(field accepted "$line")
  accepted=${accepted:-0}
  # Done when every accepted job has its terminal POST and nothing came for
  # 0.3 s (requests in flight when wrk stopped were accepted but not counted),
  # or nothing came for 3 s, or after 60 s.
  for ((i = 0; i < 600; i++)); do # 600 x 0.1 s = 60 s at most
    read -r posts _ terminal _ _ _ <<<"$(sink_stats)"
    if [ "$posts" != "$prev" ]; then prev=$posts; last_change=$(ms_now); fi
    quiet=$(($(ms_now) - last_change))
    [ "${terminal:-0}" -ge "$accepted" ] && [ $quiet -ge 300 ] && break
    [ $quiet -gt 3000 ] && break
    sleep 0.1
  done
  read -r posts bytes terminal first_ms last_ms last_term_ms <<<"$(sink_stats)"
  E2E_LINE=$line
  E2E_ACCEPTED=$accepted
  E2E_SUBMIT_RATE=$(calc %.0f "$accepted / $(field seconds "$line")")
  E2E_P50=$(field p50_ms "$line")
  E2E_P99=$(field p99_ms "$line")
  E2E_FULL=$(field full "$line")
  E2E_OTHER=$(field other "$line")
  E2E_POSTS=$posts
  E2E_TERMINAL=$terminal
  E2E_BODY=$(calc %.0f "($posts > 0 ? $bytes / $posts : 1000)")
  E2E_JOBS_RATE=$(calc %.0f "($last_term_ms > $t0 ? $terminal * 1000 / ($last_term_ms - $t0) : 0)")
  E2E_POSTS_RATE=$(calc %.0f "($last_ms > $t0 ? $posts * 1000 / ($last_ms - $t0) : 0)")
  E2E_DRAIN_S=$(calc %.1f "($last_ms > $t0 ? ($last_ms - $t0) / 1000 : 0)")
  E2E_RSS=$(rss_kb "$pid")
}

BENCH_T0=$(ms_now)

# ---- 1. start-up to ready --------------------------------------------------
echo "[1/6] start-up time (7 runs)..." >&2
starts=()
for ((r = 0; r < 7; r++)); do
  t=$("$STARTUP" "$PORT" 5000 "$WORK/startup.log" "$A2AD" -c "$conf_run") || die "start-up run failed: see $WORK/startup.log"
  starts+=("$t")
done
STARTUP_MS=$(printf '%s\n' "${starts[@]}" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
STARTUP_MAX=$(printf '%s\n' "${starts[@]}" | sort -n | tail -1)
READY_LOG=$(grep -o 'ready in [0-9]* ms' "$WORK/startup.log" | awk '{print $3}' | sort -n |
  awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')

# ---- 2. idle RSS, then submit throughput for echo and processor -----------------
start_sink() { "$SINK" "$SINK_PORT" & SINK_PID=$!; PIDS+=("$SINK_PID"); wait_port "$SINK_PORT" 50 || die "the sink did not start"; }
start_sink

echo "[2/6] idle RSS, submit throughput: echo..." >&2
start_a2ad "$conf_run" "$WORK/a2ad-echo.log"
sleep 1
IDLE_RSS=$(rss_kb "$A2AD_PID")
IDLE_ANON=$(awk '/^RssAnon:/ {print $2}' "/proc/$A2AD_PID/status")
IDLE_FILE=$(awk '/^RssFile:/ {print $2}' "/proc/$A2AD_PID/status")
IDLE_PSS=$(awk '/^Pss:/ {print $2}' "/proc/$A2AD_PID/smaps_rollup" 2>/dev/null)
IDLE_THREADS=$(threads_of "$A2AD_PID")
ECHO=$(submit "http://127.0.0.1:$PORT/agents/echo")
stop_a2ad

echo "[3/6] submit throughput: processor..." >&2
start_a2ad "$conf_run" "$WORK/a2ad-processor.log"
PROC=$(submit "http://127.0.0.1:$PORT/")
stop_a2ad

# ---- 3. end to end ---------------------------------------------------------------
echo "[4/6] end to end: processor with webhooks..." >&2
start_a2ad "$conf_run" "$WORK/a2ad-e2e.log"
e2e a2ad "http://127.0.0.1:$PORT/" "$A2AD_PID"
A_LINE=$E2E_LINE A_ACC=$E2E_ACCEPTED A_SUB=$E2E_SUBMIT_RATE A_P50=$E2E_P50 A_P99=$E2E_P99
A_FULL=$E2E_FULL A_OTHER=$E2E_OTHER A_POSTS=$E2E_POSTS A_TERM=$E2E_TERMINAL A_BODY=$E2E_BODY
A_JOBS=$E2E_JOBS_RATE A_PPS=$E2E_POSTS_RATE A_DRAIN=$E2E_DRAIN_S A_RSS=$E2E_RSS
stop_a2ad

# ---- 4. the loopback ceiling: the same wrk against the sink alone ------------------
echo "[5/6] loopback ceiling: wrk -> sink, ${A_BODY}-byte POSTs..." >&2
CEIL=$(BODY_BYTES=$A_BODY wrk -t2 -c"$CONNS" -d"${SECS}s" -s bench/post.lua "http://127.0.0.1:$SINK_PORT/hook" 2>&1 | grep '^ok=')
CEIL_RATE=$(calc %.0f "$(field ok "$CEIL") / $(field seconds "$CEIL")")

# ---- 5. RSS with 10,000 queued jobs ---------------------------------------------
echo "[6/6] RSS with 10,000 queued jobs..." >&2
start_a2ad "$conf_queue" "$WORK/a2ad-queue.log"
sleep 1
Q_IDLE=$(rss_kb "$A2AD_PID")
Q_LINE=$(STOP_ON_FULL=1 HOOK= wrk -t2 -c"$CONNS" -d30s -s bench/submit.lua "http://127.0.0.1:$PORT/" 2>&1 | grep '^accepted=')
QUEUED=$(curl -s --max-time 2 "http://127.0.0.1:$PORT/healthz" | grep -o '"jobsQueued":[0-9]*' | cut -d: -f2)
sleep 0.5
Q_RSS=$(rss_kb "$A2AD_PID")
PER_JOB=$(calc %.0f "(${QUEUED:-0} > 0 ? ($Q_RSS - $Q_IDLE) * 1024 / $QUEUED : 0)")
stop_a2ad

# ---- 6. the peer -------------------------------------------------------------------
PEER_NOTE=""
if [ $WITH_PEER = 1 ]; then
  if ! command -v node >/dev/null 2>&1; then
    PEER_NOTE="peer skipped: node is not installed (sudo apt-get install -y nodejs npm)"
  elif [ ! -f "$PEER_DIR/server.mjs" ]; then
    PEER_NOTE="peer skipped: no $PEER_DIR/server.mjs (set PEER_DIR)"
  elif [ ! -d "$PEER_DIR/node_modules/@a2a-js/sdk" ]; then
    PEER_NOTE="peer skipped: its packages are not installed; run: (cd $PEER_DIR && npm install --no-audit --no-fund --no-package-lock)"
  else
    echo "[peer] start-up, idle RSS, end to end..." >&2
    P_START=$("$STARTUP" "$PEER_PORT" 20000 "$WORK/peer-startup.log" env PORT="$PEER_PORT" STEPS=10 node "$PEER_DIR/server.mjs") || P_START=
    (cd "$PEER_DIR" && PORT=$PEER_PORT STEPS=10 exec node server.mjs >>"$WORK/peer.log" 2>&1) &
    PEER_PID=$!
    PIDS+=("$PEER_PID")
    if wait_port "$PEER_PORT" 200; then
      sleep 1
      P_IDLE=$(rss_kb "$PEER_PID")
      e2e peer "http://127.0.0.1:$PEER_PORT/" "$PEER_PID"
      P_ACC=$E2E_ACCEPTED P_SUB=$E2E_SUBMIT_RATE P_P50=$E2E_P50 P_P99=$E2E_P99 P_FULL=$E2E_FULL
      P_OTHER=$E2E_OTHER P_POSTS=$E2E_POSTS P_TERM=$E2E_TERMINAL P_JOBS=$E2E_JOBS_RATE
      P_PPS=$E2E_POSTS_RATE P_DRAIN=$E2E_DRAIN_S P_RSS=$E2E_RSS
    else
      PEER_NOTE="peer skipped: it did not listen on port $PEER_PORT within 20 s (see $WORK/peer.log)"
    fi
    kill "$PEER_PID" 2>/dev/null; wait "$PEER_PID" 2>/dev/null
  fi
fi
HAVE_PEER=0
[ $WITH_PEER = 1 ] && [ -z "$PEER_NOTE" ] && HAVE_PEER=1

# ---- the table ---------------------------------------------------------------------
WORKERS=$(grep -o 'workers: [0-9]* threads' "$WORK/a2ad-e2e.log" | head -1 | awk '{print $2}')
STORE=$(grep -o 'store [a-z]*' "$WORK/a2ad-e2e.log" | head -1 | awk '{print $2}')
echo
echo "a2ad benchmark, $(date -u +%Y-%m-%d), $CORES cores ($(uname -m)); each load phase: wrk -t2 -c$CONNS for ${SECS}s"
echo "a2ad: store ${STORE:-?}, ${WORKERS:-?} worker threads, other settings default, processor step_ms = 0"
row() { printf '%-58s %14s %s\n' "$1" "$2" "${3:-}"; }
ratio() { calc %.3g "($2 > 0 ? $1 / $2 : 0)"; }
pct() { calc %.0f%% "($2 > 0 ? 100 * $1 / $2 : 0)"; }

echo
echo "== submit (non-blocking message/send, no webhook, $CONNS connections, ${SECS}s) =="
for pair in "echo:$ECHO" "processor:$PROC"; do
  n=${pair%%:*}; l=${pair#*:}
  row "$n: accepted jobs/s" "$(calc %.0f "$(field accepted "$l") / $(field seconds "$l")")" \
    "($(field accepted "$l") accepted, $(field full "$l") x 503 queue/store full, $(field other "$l") other)"
  row "$n: ack latency p50 / p99 (ms)" "$(field p50_ms "$l") / $(field p99_ms "$l")" "(all answers, 503s included)"
done

echo
echo "== end to end: processor, 13 webhook POSTs a job, $CONNS connections, ${SECS}s of submits =="
row "a2ad: jobs/s fully delivered (terminal webhook received)" "$A_JOBS" "($A_TERM terminal POSTs; wrk saw $A_ACC jobs accepted)"
row "a2ad: webhook POSTs/s" "$A_PPS" "($A_POSTS POSTs, mean body $A_BODY bytes, last one at ${A_DRAIN}s)"
row "a2ad: accepted jobs/s while webhooks flow" "$A_SUB" "($A_FULL x 503, $A_OTHER other)"
row "a2ad: ack latency p50 / p99 (ms) while webhooks flow" "$A_P50 / $A_P99" "(all answers, 503s included)"
row "a2ad: RSS after the run (kB)" "$A_RSS"
if [ $HAVE_PEER = 1 ]; then
  row "peer: jobs/s fully delivered" "$P_JOBS" "($P_TERM terminal POSTs; wrk saw $P_ACC jobs accepted)"
  row "peer: webhook POSTs/s" "$P_PPS" "($P_POSTS POSTs, last one at ${P_DRAIN}s)"
  row "peer: accepted jobs/s while webhooks flow" "$P_SUB" "($P_FULL x 503, $P_OTHER other)"
  row "peer: ack latency p50 / p99 (ms)" "$P_P50 / $P_P99"
  row "peer: RSS idle / after the run (kB)" "${P_IDLE:-?} / ${P_RSS:-?}"
  row "peer: start-up to listening (ms)" "${P_START:-?}"
fi

echo
echo "== loopback ceiling: the same wrk, $CONNS connections, ${A_BODY}-byte POSTs to the sink alone =="
row "sink alone: POSTs answered/s" "$CEIL_RATE" "($(field p50_ms "$CEIL") / $(field p99_ms "$CEIL") ms p50 / p99)"
row "a2ad webhook POSTs/s, fraction of the ceiling" "$(pct "$A_PPS" "$CEIL_RATE")"
row "a2ad accepted submits/s (e2e), fraction of the ceiling" "$(pct "$A_SUB" "$CEIL_RATE")"
row "a2ad echo submits/s, fraction of the ceiling" "$(pct "$(calc %.0f "$(field accepted "$ECHO") / $(field seconds "$ECHO")")" "$CEIL_RATE")"
[ $HAVE_PEER = 1 ] && row "peer webhook POSTs/s, fraction of the ceiling" "$(pct "$P_PPS" "$CEIL_RATE")"

echo
echo "== memory and start-up =="
row "RSS idle (kB), all example plugins loaded" "$IDLE_RSS" "($IDLE_THREADS threads)"
row "  of which anonymous / file-backed (shared libraries) (kB)" "$IDLE_ANON / $IDLE_FILE" "(PSS ${IDLE_PSS:-?} kB)"
row "RSS with $QUEUED jobs queued (kB)" "$Q_RSS" "(idle $Q_IDLE kB with 1 worker; $(field accepted "$Q_LINE") accepted)"
row "RSS per queued job (bytes)" "$PER_JOB"
row "start-up to ready (ms, median of 7; exec -> port answers)" "$STARTUP_MS" "(max $STARTUP_MAX; the daemon's own 'ready in' log: ${READY_LOG:-?} ms)"

if [ $HAVE_PEER = 1 ]; then
  echo
  echo "== a2ad / peer (same run, same load) =="
  row "jobs/s fully delivered" "$(ratio "$A_JOBS" "$P_JOBS")x"
  row "webhook POSTs/s" "$(ratio "$A_PPS" "$P_PPS")x"
  row "accepted jobs/s while webhooks flow" "$(ratio "$A_SUB" "$P_SUB")x"
  row "ack latency p99 (lower is better)" "$(ratio "$A_P99" "$P_P99")x"
  row "RSS idle (lower is better)" "$(ratio "$IDLE_RSS" "${P_IDLE:-0}")x"
  row "start-up (lower is better)" "$(ratio "$STARTUP_MS" "${P_START:-0}")x"
elif [ -n "$PEER_NOTE" ]; then
  echo; echo "$PEER_NOTE"
fi

echo
echo "== targets (a benchmark reports; it does not fail the build) =="
mark() { if [ "$(awk "BEGIN {print ($1) ? 1 : 0}")" = 1 ]; then echo PASS; else echo MISS; fi; }
if [ $HAVE_PEER = 1 ]; then
  row "end-to-end jobs/s >= 5x the peer" "$(mark "$A_JOBS >= 5 * $P_JOBS")" "($(ratio "$A_JOBS" "$P_JOBS")x)"
else
  row "end-to-end jobs/s >= 5x the peer" "n/a" "(make bench-peer)"
fi
row "webhook POSTs/s >= 50% of the loopback ceiling" "$(mark "$A_PPS >= 0.5 * $CEIL_RATE")" "($(pct "$A_PPS" "$CEIL_RATE"))"
row "ack p99 <= 5 ms at $CONNS connections while webhooks flow" "$(mark "$A_P99 <= 5")" "($A_P99 ms)"
row "idle RSS <= 8 MB" "$(mark "$IDLE_RSS <= 8192")" "($IDLE_RSS kB)"
row "<= 2 KB of RSS per queued job" "$(mark "$PER_JOB <= 2048 && $PER_JOB > 0")" "($PER_JOB bytes)"
row "start-up to ready <= 50 ms" "$(mark "$STARTUP_MS <= 50")" "($STARTUP_MS ms)"
# What isolation costs, in the same run: one agent in a worker thread, in a
# child process (isolation = process) and as a Python exec agent.
echo
echo "== isolation: thread vs process vs exec (bench/runners.py) =="
if command -v python3 >/dev/null 2>&1; then
  python3 "$(dirname "$0")/runners.py" "$BUILD" || echo "runners.py failed (see above)"
else
  echo "skipped: python3 not installed"
fi
# The stores side by side: SQLite on one node, PostgreSQL on 1, 2 and 3
# nodes sharing one database (bench/pg.sh starts its own server).
echo
echo "== stores: sqlite (1 node) vs postgresql (1, 2, 3 nodes) (bench/pg.sh) =="
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  BUILD=$BUILD BENCH_PORT=$((PORT + 4)) SINK_PORT=$((SINK_PORT + 4)) "$ROOT/bench/pg.sh" || echo "pg.sh failed (see above)"
else
  echo "skipped: PostgreSQL's initdb is not installed (sudo apt-get install -y postgresql)"
fi
echo
echo "whole run: $(calc %.0f "($(ms_now) - $BENCH_T0) / 1000") s"
exit 0

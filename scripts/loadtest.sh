#!/usr/bin/env bash
# Drives `tailguard serve` with wrk (an external load generator, in another process) at a fixed
# rate of Poisson arrivals: first without a backup, then with backups running back to back; once
# with the limiter (control on) and once without (--no-control). Prints the latency percentiles
# side by side.
#
#   scripts/loadtest.sh                 # defaults below
#   RATE=3000 DURATION=20 scripts/loadtest.sh
#
# Needs wrk (Debian: apt-get install wrk), curl and python3. Builds the release binary unless
# TAILGUARD_BIN names one.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-2000}              # requests per second, in total
DURATION=${DURATION:-10}        # seconds per measurement
CONNECTIONS=${CONNECTIONS:-32}  # wrk connections (each paces itself to RATE/CONNECTIONS)
THREADS=${THREADS:-1}           # wrk threads
KEYS=${KEYS:-100000}
WARMUP=${WARMUP:-3}             # seconds of load before each measurement
EXTRA=${EXTRA:-}                # extra flags for `tailguard serve`

for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "loadtest: $tool is not installed (Debian: apt-get install $tool)" >&2; exit 2; }
done
if [ -z "${TAILGUARD_BIN:-}" ]; then
  cargo build --release -q -p tailguard-cli
  TAILGUARD_BIN=target/release/tailguard
fi

work=$(mktemp -d)
server_pid=""
feeder_pid=""
cleanup() {
  [ -n "$feeder_pid" ] && kill "$feeder_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

start_server() {  # $1: extra flags
  # shellcheck disable=SC2086
  "$TAILGUARD_BIN" serve --listen 127.0.0.1:0 --keys "$KEYS" --backup-dir "$work/backups" $1 $EXTRA \
    >"$work/server.out" 2>"$work/server.err" &
  server_pid=$!
  for _ in $(seq 600); do
    addr=$(grep -o 'http://[0-9.:]*' "$work/server.out" 2>/dev/null || true)
    [ -n "$addr" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; exit 1; }
    sleep 0.1
  done
  echo "loadtest: the server did not start" >&2; exit 1
}

stop_server() {
  kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
  rm -rf "$work/backups"
}

# Keeps a backup running: starts one whenever none runs (409 while one does).
start_backups() {
  ( while true; do curl -s -o /dev/null -X POST "$addr/jobs/backup"; sleep 0.2; done ) &
  feeder_pid=$!
}

stop_backups() {
  kill "$feeder_pid" 2>/dev/null || true; wait "$feeder_pid" 2>/dev/null || true; feeder_pid=""
  for id in $(curl -s "$addr/jobs" | json "' '.join(str(j['id']) for j in d if j['state']=='running')"); do
    curl -s -o /dev/null -X POST "$addr/jobs/$id/cancel"
  done
}

backup_keys() { curl -s "$addr/jobs" | json "sum(j['keys'] for j in d if j['kind']=='backup')"; }

measure() {  # prints the RESULT line of one wrk run
  TG_RATE=$RATE TG_CONNECTIONS=$CONNECTIONS TG_KEYS=$KEYS \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s scripts/loadtest.lua "$addr" >/dev/null
  TG_RATE=$RATE TG_CONNECTIONS=$CONNECTIONS TG_KEYS=$KEYS \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s scripts/loadtest.lua "$addr" | grep '^RESULT'
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

rows=()
for control in on off; do
  flags=""; [ "$control" = off ] && flags="--no-control"
  start_server "$flags"
  echo "loadtest: control $control: measuring without a backup (${WARMUP}s warm-up + ${DURATION}s at $RATE req/s)…" >&2
  idle=$(measure)
  start_backups
  sleep 1
  before=$(backup_keys)
  echo "loadtest: control $control: measuring with backups running…" >&2
  busy=$(measure)
  after=$(backup_keys)
  stop_backups
  stop_server
  rows+=("$control|none|$idle|")
  rows+=("$control|running|$busy|$(( (after - before) / (DURATION + WARMUP) ))")
done

echo
echo "wrk -c$CONNECTIONS at $RATE req/s (Poisson), ${DURATION}s per row, $KEYS keys, $(nproc) cores"
printf '%-8s %-8s %9s %7s %8s %8s %8s %8s %8s %12s\n' control backup "req/s" errors p50_ms p90_ms p99_ms p999_ms max_ms backup_keys/s
for row in "${rows[@]}"; do
  IFS='|' read -r control backup result keys <<<"$row"
  reqs=$(field requests "$result"); secs=$(field secs "$result")
  printf '%-8s %-8s %9.0f %7s %8s %8s %8s %8s %8s %12s\n' "$control" "$backup" \
    "$(python3 -c "print($reqs/$secs)")" "$(field errors "$result")" "$(field p50_ms "$result")" \
    "$(field p90_ms "$result")" "$(field p99_ms "$result")" "$(field p999_ms "$result")" \
    "$(field max_ms "$result")" "${keys:--}"
done

#!/usr/bin/env bash
# Drives `tailguard serve` with wrk (an external load generator, in another process) at a fixed
# rate of Poisson arrivals: first without a backup, then with backups running back to back; once
# with the limiter (control on) and once without (--no-control). Prints the latency percentiles
# side by side.
#
#   scripts/loadtest.sh                 # defaults below
#   RATE=15000 DURATION=10 ROUNDS=3 scripts/loadtest.sh
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
ROUNDS=${ROUNDS:-1}             # rounds of all four rows; the table shows each figure's median
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

# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh

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

backup_keys() {  # keys backed up so far, over every backup job of this server
  local body
  for _ in 1 2 3; do
    body=$(curl -s --max-time 30 "$addr/jobs") && [ -n "$body" ] && break
    sleep 1
  done
  [ -n "$body" ] || { echo "loadtest: GET $addr/jobs failed; server log:" >&2; tail -5 "$work/server.err" >&2; exit 1; }
  json "sum(j['keys'] for j in d if j['kind']=='backup')" <<<"$body"
}

measure() {  # prints the RESULT line of one wrk run
  TG_RATE=$RATE TG_CONNECTIONS=$CONNECTIONS TG_KEYS=$KEYS \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s scripts/loadtest.lua "$addr" >/dev/null
  TG_RATE=$RATE TG_CONNECTIONS=$CONNECTIONS TG_KEYS=$KEYS \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s scripts/loadtest.lua "$addr" | grep '^RESULT'
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

results="$work/results"
for round in $(seq "$ROUNDS"); do
  # Alternate which configuration goes first, so that neither always meets a cold machine.
  order="on off"; [ $((round % 2)) -eq 0 ] && order="off on"
  for control in $order; do
    flags=""; [ "$control" = off ] && flags="--no-control"
    start_server "$flags"
    echo "loadtest: round $round/$ROUNDS, control $control: without a backup (${WARMUP}s warm-up + ${DURATION}s at $RATE req/s)…" >&2
    echo "$control none $(measure) keys_per_sec=-" >>"$results"
    start_backups
    sleep 1
    before=$(backup_keys)
    echo "loadtest: round $round/$ROUNDS, control $control: with backups running…" >&2
    busy=$(measure)
    after=$(backup_keys)
    stop_backups
    stop_server
    echo "$control running $busy keys_per_sec=$(( (after - before) / (DURATION + WARMUP) ))" >>"$results"
  done
done

echo
echo "wrk -c$CONNECTIONS at $RATE req/s (Poisson), ${DURATION}s per row, $KEYS keys, $(nproc) cores; median of $ROUNDS round(s)"
python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    control, backup, *fields = line.split()
    kv = dict(f.split("=", 1) for f in fields if "=" in f)
    rows.setdefault((control, backup), []).append(kv)
def med(runs, key, fn=float):
    values = [fn(r[key]) for r in runs if r.get(key, "-") != "-"]
    return statistics.median(values) if values else None
head = ["control", "backup", "req/s", "errors", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "backup_keys/s"]
print("%-8s %-8s %9s %7s %8s %8s %8s %8s %8s %13s" % tuple(head))
for (control, backup), runs in rows.items():
    rps = statistics.median(float(r["requests"]) / float(r["secs"]) for r in runs)
    keys = med(runs, "keys_per_sec")
    cells = [med(runs, k) for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")]
    print("%-8s %-8s %9.0f %7.0f %s %13s" % (control, backup, rps, med(runs, "errors"),
          " ".join("%8.3f" % c for c in cells), "-" if keys is None else "%.0f" % keys))
PY

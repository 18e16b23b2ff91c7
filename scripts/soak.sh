#!/usr/bin/env bash
# Soaks `tailguard serve`: closed-loop wrk load for DURATION seconds, backups back to back, and
# an outlier capture armed at its caps, sampling the server's resident memory (RSS), open file
# descriptors and backup directory every INTERVAL seconds. Prints one row per sample, then the
# figures at the start, after warm-up and at the end (medians over a minute of samples), and
# the largest departure of a later sample from the after-warm-up figure.
#
#   scripts/soak.sh                      # ten minutes, the defaults below
#   DURATION=120 WARMUP=30 scripts/soak.sh
#
# Needs wrk (Debian: apt-get install wrk), curl and python3. Builds the release binary unless
# TAILGUARD_BIN names one. Traffic goes to 127.0.0.1 only, and everything stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-600}       # seconds of load
INTERVAL=${INTERVAL:-10}        # seconds between samples
WARMUP=${WARMUP:-360}           # seconds after which the figures should be flat: retention
                                # engages once KEEP backups have completed (~20 s each under
                                # load), and RSS reached its plateau by 300-360 s in every run
CONNECTIONS=${CONNECTIONS:-32}  # wrk connections
THREADS=${THREADS:-1}           # wrk threads
KEYS=${KEYS:-100000}
KEEP=${KEEP:-10}                # --keep-backups
EXTRA=${EXTRA:-}                # extra flags for `tailguard serve`
OUT=${OUT:-}                    # also write the samples as CSV here

for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is not installed (Debian: apt-get install $tool)" >&2; exit 2; }
done
if [ -z "${TAILGUARD_BIN:-}" ]; then
  cargo build --release -q -p tailguard-cli
  TAILGUARD_BIN=target/release/tailguard
fi

work=$(mktemp -d)
server_pid=""
wrk_pid=""
feeder_pid=""
cleanup() {
  for pid in "$feeder_pid" "$wrk_pid" "$server_pid"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck disable=SC2086
"$TAILGUARD_BIN" serve --listen 127.0.0.1:0 --keys "$KEYS" --backup-dir "$work/backups" \
  --keep-backups "$KEEP" $EXTRA >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
addr=""
for _ in $(seq 600); do
  addr=$(grep -o 'http://[0-9.:]*' "$work/server.out" 2>/dev/null || true)
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "soak: the server did not start" >&2; exit 1; }

# A capture at its caps: every slow request kept until 1000 are, for a day.
curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
  -d '{"probability": 0.05, "threshold": "1ms", "window": "24h", "max_captures": 1000}' "$addr/debug/captures"

# Backups back to back: a new one whenever none runs (409 while one does).
( while true; do curl -s -o /dev/null -X POST "$addr/jobs/backup"; sleep 0.2; done ) &
feeder_pid=$!

# wrk runs a little past the last sample, so that every sample sees the load.
TG_KEYS=$KEYS wrk -t"$THREADS" -c"$CONNECTIONS" -d"$(( DURATION + INTERVAL ))s" -s scripts/soak.lua "$addr" >"$work/wrk.out" 2>&1 &
wrk_pid=$!

samples="$work/samples.csv"
echo "t_s,rss_mb,open_fds,backup_files,backup_mb,last_job,captures_kept" >"$samples"
sample() {
  local t=$1 rss fds files bytes last kept
  rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status")
  fds=$(find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  files=$(find "$work/backups" -maxdepth 1 -type f | wc -l)
  bytes=$(du -sb "$work/backups" | cut -f1)
  last=$(curl -s --max-time 10 "$addr/jobs" | python3 -c \
    "import json,sys; print(max((j['id'] for j in json.load(sys.stdin)), default=0))" 2>/dev/null || echo -)
  kept=$(curl -s --max-time 10 "$addr/debug/captures" | python3 -c \
    "import json,sys; print((json.load(sys.stdin)['status'] or {}).get('kept', 0))" 2>/dev/null || echo -)
  echo "$t,$rss,$fds,$files,$(python3 -c "print(round($bytes / 1e6, 1))"),$last,$kept" | tee -a "$samples"
}

echo "soak: ${DURATION}s of closed-loop wrk -c$CONNECTIONS on $addr, backups back to back, a capture armed; sampling every ${INTERVAL}s" >&2
start=$(date +%s)
cat "$samples"
sample 0
next=$INTERVAL
while [ "$next" -le "$DURATION" ]; do
  sleep $(( start + next - $(date +%s) > 0 ? start + next - $(date +%s) : 0 ))
  kill -0 "$server_pid" 2>/dev/null || { echo "soak: the server died" >&2; tail -20 "$work/server.err" >&2; exit 1; }
  sample "$next"
  next=$(( next + INTERVAL ))
done
kill -INT "$wrk_pid" 2>/dev/null || true  # wrk prints its summary on SIGINT
wait "$wrk_pid" || true
wrk_pid=""
kill "$feeder_pid" 2>/dev/null || true
wait "$feeder_pid" 2>/dev/null || true
feeder_pid=""
grep '^RESULT' "$work/wrk.out" >&2 || cat "$work/wrk.out" >&2
[ -n "$OUT" ] && cp "$samples" "$OUT"

# Shutdown, timed: the server must be gone within its --shutdown-timeout and a little.
t0=$(date +%s.%N)
kill -TERM "$server_pid"
wait "$server_pid" && status=0 || status=$?
server_pid=""
echo "soak: SIGTERM to exit: $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s, exit status $status" >&2
echo "soak: retention removed $(grep -c 'retention' "$work/server.err" || true) files" >&2

python3 - "$samples" "$WARMUP" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
warmup = float(sys.argv[2])
t = lambda r: float(r["t_s"])
# One sample swings with the backup in progress (a few MB of RSS, one file of eleven): the
# figures after warm-up and at the end are medians over a minute of samples.
first = [r for r in rows if warmup <= t(r) <= warmup + 60]
last = [r for r in rows if t(r) >= t(rows[-1]) - 60]
later = [r for r in rows if t(r) > warmup + 60]
if not first or not later:
    sys.exit("soak: too few samples after the warm-up (DURATION must exceed WARMUP + 60)")
median = lambda rs, key: statistics.median(float(r[key]) for r in rs)
keys = ("rss_mb", "open_fds", "backup_files", "backup_mb")
print()
print("%-30s %10s %10s %10s %10s" % ("", "RSS MB", "open fds", "files", "disk MB"))
print("%-30s %10s %10s %10s %10s" % (("start",) + tuple(rows[0][k] for k in keys)))
for name, rs in (("after warm-up (%d-%ds, median)" % (t(first[0]), t(first[-1])), first),
                 ("end (%d-%ds, median)" % (t(last[0]), t(last[-1])), last)):
    print("%-30s %10.1f %10.1f %10.1f %10.1f" % ((name,) + tuple(median(rs, k) for k in keys)))
def spread(key):
    b = median(first, key)
    worst = max(abs(float(r[key]) - b) for r in later)
    return worst / b * 100 if b else 0.0
print("%-30s %9.1f%% %9.1f%% %9.1f%% %9.1f%%" % (("largest departure",) + tuple(spread(k) for k in keys)))
print("jobs started (the last job id): %s; captures kept: %s" % (rows[-1]["last_job"], rows[-1]["captures_kept"]))
PY

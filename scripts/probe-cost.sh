#!/usr/bin/env bash
# What the scheduling-latency probe costs `tailguard serve` under load: the server's process CPU
# at the same fixed request rate with the probe at 1 kHz throughout (`--probe-idle-rate 0`)
# and with it idling at 10 Hz (the default while no elastic work runs, as here), alternating
# which goes first from round to round. The difference is the probe's cost on a busy runtime.
#
#   scripts/probe-cost.sh                       # defaults below
#   RATE=5000 DURATION=20 ROUNDS=3 scripts/probe-cost.sh
#
# Needs wrk (Debian: apt-get install wrk) and python3. Builds the release binary unless
# TAILGUARD_BIN names one.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-5000}              # requests per second, in total (Poisson)
DURATION=${DURATION:-20}        # seconds per measurement
CONNECTIONS=${CONNECTIONS:-32}
KEYS=${KEYS:-100000}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-3}

for tool in wrk python3; do
  command -v "$tool" >/dev/null || { echo "probe-cost: $tool is not installed (Debian: apt-get install $tool)" >&2; exit 2; }
done
if [ -z "${TAILGUARD_BIN:-}" ]; then
  cargo build --release -q -p tailguard-cli
  TAILGUARD_BIN=target/release/tailguard
fi

work=$(mktemp -d)
server_pid=""
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
# shellcheck source=scripts/lib/serve.sh
source scripts/lib/serve.sh

hz=$(getconf CLK_TCK)
load() {  # $1: seconds
  TG_RATE=$RATE TG_CONNECTIONS=$CONNECTIONS TG_KEYS=$KEYS \
    wrk -t1 -c"$CONNECTIONS" -d"${1}s" -s scripts/loadtest.lua "$addr" | grep '^RESULT' || true
}

for round in $(seq "$ROUNDS"); do
  order="1000 10"; [ $((round % 2)) -eq 0 ] && order="10 1000"
  for probe in $order; do
    idle=10; [ "$probe" = 1000 ] && idle=0
    start_server "--probe-idle-rate $idle"
    load "$WARMUP" >/dev/null
    before=$(cpu_ticks "$server_pid"); start=$(date +%s.%N)
    result=$(load "$DURATION")
    after=$(cpu_ticks "$server_pid"); end=$(date +%s.%N)
    stop_server
    echo "$probe $((after - before)) $start $end $result" >>"$work/results"
    echo "probe-cost: round $round/$ROUNDS, probe at $probe Hz: $(( (after - before) )) ticks" >&2
  done
done

echo
echo "wrk -c$CONNECTIONS at $RATE req/s (Poisson), ${DURATION}s per row, $(nproc) cores; $ROUNDS round(s)"
python3 - "$work/results" "$hz" <<'PY'
import statistics, sys
hz = float(sys.argv[2])
rows = {}
for line in open(sys.argv[1]):
    probe, ticks, start, end, *fields = line.split()
    kv = dict(f.split("=", 1) for f in fields if "=" in f)
    secs = float(end) - float(start)
    requests = float(kv.get("requests", 0))
    cpu = float(ticks) / hz
    rows.setdefault(int(probe), []).append((100 * cpu / secs, 1e6 * cpu / max(requests, 1), requests / secs))
print("%-12s %26s %24s %10s" % ("probe", "process CPU, % of a core", "CPU per request, us", "req/s"))
for probe in sorted(rows, reverse=True):
    runs = rows[probe]
    cells = [sorted(r[i] for r in runs) for i in range(3)]
    print("%-12s %26s %24s %10.0f" % (
        "%d Hz" % probe,
        "%.1f [%.1f-%.1f]" % (statistics.median(cells[0]), cells[0][0], cells[0][-1]),
        "%.1f [%.1f-%.1f]" % (statistics.median(cells[1]), cells[1][0], cells[1][-1]),
        statistics.median(cells[2])))
if len(rows) == 2:
    hi, lo = rows[max(rows)], rows[min(rows)]
    diffs = [a[0] - b[0] for a, b in zip(hi, lo)]
    print("1 kHz minus 10 Hz, per round: " + ", ".join("%+.2f" % d for d in diffs) + " % of a core")
PY

#!/usr/bin/env bash
# What an idle `tailguard serve` costs: the whole process's CPU (utime + stime from
# /proc/PID/stat) over a window with no requests and no jobs, as a share of one core, and per
# thread. Run it with nothing else busy on the machine.
#
#   scripts/idle-cost.sh                 # 60 s after a 5 s settle, release build
#   DURATION=20 SETTLE=2 scripts/idle-cost.sh -- --no-control
#
# Everything after `--` is passed to `tailguard serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-60}
SETTLE=${SETTLE:-5}
BIN=${BIN:-target/release/tailguard}
args=()
if [ "${1:-}" = "--" ]; then shift; args=("$@"); fi

[ -x "$BIN" ] || cargo build --release -p tailguard-cli >&2
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$BIN" serve --listen 127.0.0.1:0 --keys 10000 --backup-dir "$dir" "${args[@]}" >"$dir/out" 2>&1 &
pid=$!
sleep "$SETTLE"
kill -0 "$pid" 2>/dev/null || { cat "$dir/out" >&2; echo "serve exited" >&2; exit 1; }

ticks=$(getconf CLK_TCK)
# Fields 14 and 15 of /proc/PID/stat (after the command name in parentheses).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$1"; }
declare -A before
for task in /proc/"$pid"/task/*; do before[$task]=$(cpu_ticks "$task/stat"); done
total_before=$(cpu_ticks /proc/"$pid"/stat)
start=$(date +%s.%N)
sleep "$DURATION"
total_after=$(cpu_ticks /proc/"$pid"/stat)
end=$(date +%s.%N)

awk -v t="$((total_after - total_before))" -v hz="$ticks" -v s="$start" -v e="$end" 'BEGIN {
  wall = e - s; printf "idle tailguard serve: %.3f %% of one core over %.1f s (%d ticks of 1/%d s)\n", 100 * t / hz / wall, wall, t, hz }'
for task in /proc/"$pid"/task/*; do
  [ -r "$task/stat" ] || continue
  name=$(cat "$task/comm")
  used=$(( $(cpu_ticks "$task/stat") - ${before[$task]:-0} ))
  [ "$used" -gt 0 ] && awk -v n="$name" -v u="$used" -v hz="$ticks" -v w="$DURATION" \
    'BEGIN { printf "  %-20s %.3f %%\n", n, 100 * u / hz / w }'
done
exit 0

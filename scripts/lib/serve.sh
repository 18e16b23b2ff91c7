# Shared by the scripts that drive `tailguard serve` over HTTP (source it; needs $work, $KEYS
# and $TAILGUARD_BIN, and sets $addr and $server_pid).

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

start_server() {  # $1: extra flags
  # shellcheck disable=SC2086
  "$TAILGUARD_BIN" serve --listen 127.0.0.1:0 --keys "$KEYS" --backup-dir "$work/backups" $1 ${EXTRA:-} \
    >"$work/server.out" 2>"$work/server.err" &
  server_pid=$!
  for _ in $(seq 600); do
    addr=$(grep -o 'http://[0-9.:]*' "$work/server.out" 2>/dev/null || true)
    [ -n "$addr" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; exit 1; }
    sleep 0.1
  done
  echo "$0: the server did not start" >&2; exit 1
}

stop_server() {
  kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
  rm -rf "$work/backups"
}

# CPU time of a process so far, in clock ticks (utime + stime of /proc/PID/stat).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

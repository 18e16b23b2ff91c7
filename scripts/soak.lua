-- wrk script for scripts/soak.sh: closed loop (each connection sends its next request as soon
-- as the last one is answered), GETs over the preloaded keyspace with one PUT in ten. PUT values
-- are random bytes like the preloaded ones (drawn from a pool larger than deflate's window), so
-- backups stay as large as the first one and the disk figure measures retention alone.
--
-- Environment: TG_KEYS (keys preloaded by the server).

local keys = tonumber(os.getenv("TG_KEYS") or "100000")
local values = {}

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + (tonumber(args[1]) or 0))
  for i = 1, 1024 do
    local bytes = {}
    for j = 1, 256 do
      bytes[j] = string.char(math.random(0, 255))
    end
    values[i] = table.concat(bytes)
  end
end

function request()
  local key = math.random(0, keys - 1)
  if math.random(10) == 1 then
    return wrk.format("PUT", "/kv/" .. key, nil, values[math.random(1024)])
  end
  return wrk.format("GET", "/kv/" .. key)
end

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d errors=%d secs=%.2f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout,
    summary.duration / 1e6,
    latency:percentile(50) / 1000.0, latency:percentile(99) / 1000.0, latency.max / 1000.0))
end

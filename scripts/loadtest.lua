-- wrk script for scripts/loadtest.sh: Poisson arrivals at a fixed total rate, GETs spread over
-- the preloaded keyspace, and one machine-readable result line.
--
-- Environment: TG_RATE (requests per second, all connections together), TG_CONNECTIONS (the
-- same number as wrk's -c), TG_KEYS (keys preloaded by the server).

local rate = tonumber(os.getenv("TG_RATE") or "1000")
local connections = tonumber(os.getenv("TG_CONNECTIONS") or "16")
local keys = tonumber(os.getenv("TG_KEYS") or "100000")
local mean_gap_ms = 1000.0 * connections / rate

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + (tonumber(args[1]) or 0))
end

function delay()
  -- Exponential gaps per connection: together a Poisson stream of `rate` requests per second
  -- (less the time each response takes: the table reports the rate achieved). wrk takes whole
  -- milliseconds, so round at random to keep the mean gap exact.
  local gap = -math.log(1.0 - math.random()) * mean_gap_ms
  return math.floor(gap + math.random())
end

function request()
  return wrk.format("GET", "/kv/" .. math.random(0, keys - 1))
end

function done(summary, latency, requests)
  local function ms(us) return string.format("%.3f", us / 1000.0) end
  io.write(string.format(
    "RESULT requests=%d errors=%d secs=%.2f p50_ms=%s p90_ms=%s p99_ms=%s p999_ms=%s max_ms=%s\n",
    summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout,
    summary.duration / 1e6,
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency:percentile(99.9)), ms(latency.max)))
end

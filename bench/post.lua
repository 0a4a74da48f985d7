-- post.lua: wrk script for the loopback ceiling of `make bench`: POSTs a JSON
-- body of BODY_BYTES bytes (default 1000) to the URL, as a webhook would.
-- Prints: ok=N other=N requests=N seconds=S p50_ms=X p99_ms=Y
local size = tonumber(os.getenv("BODY_BYTES") or "1000")
local threads = {}
local body

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local head = '{"kind":"task","pad":"'
  local pad = math.max(0, size - #head - 2)
  body = head .. string.rep("x", pad) .. '"}'
end

ok, other = 0, 0

function request()
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                  ["X-A2A-Notification-Token"] = "bench"}, body)
end

function response(status, headers, resp)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local o, x = 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    x = x + t:get("other")
  end
  io.write(string.format("ok=%d other=%d requests=%d seconds=%.3f p50_ms=%.3f p99_ms=%.3f\n",
    o, x, summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end

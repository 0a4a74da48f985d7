-- submit.lua: wrk script for `make bench`. Each request is an A2A
-- message/send (non-blocking) with unique ids.
--
-- Environment:
--   HOOK=URL        give every job this push-notification webhook (default: none)
--   STOP_ON_FULL=1  a thread stops at its first 503 (used to fill the queue)
--
-- Prints one line, summed over all threads (each wrk thread has its own Lua
-- state, so the counts are collected with thread:get in done()):
--   accepted=N full=N other=N requests=N seconds=S p50_ms=X p99_ms=Y max_ms=Z
-- accepted: HTTP 200 with a JSON-RPC "result"; full: HTTP 503 (queue or store
-- full, back-pressure); other: anything else (errors).

local hook = os.getenv("HOOK") or ""
local stop_on_full = os.getenv("STOP_ON_FULL") == "1"
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

accepted, full, other = 0, 0, 0
local n = 0

function request()
  n = n + 1
  local id = "b" .. tostring(tid) .. "-" .. n
  local config = '"blocking":false'
  if hook ~= "" then
    config = config .. ',"pushNotificationConfig":{"url":"' .. hook .. '","token":"bench"}'
  end
  local body = '{"jsonrpc":"2.0","id":"' .. id .. '","method":"message/send","params":{'
    .. '"message":{"kind":"message","messageId":"' .. id .. '","role":"user",'
    .. '"parts":[{"kind":"text","text":"process ' .. id .. '"}]},'
    .. '"configuration":{' .. config .. '}}}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"result"', 1, true) then
    accepted = accepted + 1
  elseif status == 503 then
    full = full + 1
    if stop_on_full then wrk.thread:stop() end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local a, f, o = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    f = f + t:get("full")
    o = o + t:get("other")
  end
  io.write(string.format(
    "accepted=%d full=%d other=%d requests=%d seconds=%.3f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    a, f, o, summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end

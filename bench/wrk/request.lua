-- One wrk script for every scenario, configured by the environment (set by bench/run.py):
--   BENCH_METHOD   GET or POST (default POST)
--   BENCH_BODY     form body, sent as application/x-www-form-urlencoded
--   BENCH_AUTH     the Authorization header value
--   BENCH_COOKIE   the Cookie header value (a browser session, for the SSO hot path)
--   BENCH_POOL     when set to N > 0, each request introspects a random one of N seeded
--                  tokens "tk_bench" .. zero-padded index (the body is then built per request)
--   BENCH_BODIES   a file of form bodies, one a line, each sent once (single-use client
--                  assertions): thread k of BENCH_THREADS sends lines k, k + n, k + 2n, ...
--                  of those after the first BENCH_BODIES_SKIP (used by an earlier run)
--   BENCH_BODIES_HEADER  when set (e.g. "DPoP"), each BENCH_BODIES line is
--                  "<header value>\t<body>": a single-use header (a DPoP proof) per request
-- done() prints one line "BENCH_RESULT {json}" that bench/wrkresult.py parses.

local method = os.getenv("BENCH_METHOD") or "POST"
local body = os.getenv("BENCH_BODY")
local auth = os.getenv("BENCH_AUTH")
local cookie = os.getenv("BENCH_COOKIE")
local pool = tonumber(os.getenv("BENCH_POOL") or "0")
local bodies_file = os.getenv("BENCH_BODIES") or ""
local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
local skip = tonumber(os.getenv("BENCH_BODIES_SKIP") or "0")
local body_header = os.getenv("BENCH_BODIES_HEADER") or ""
local next_id = 0
local bodies = {}
local position = 0

setup = function(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

wrk.method = method
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
if cookie and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end
if method == "POST" then
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  if body then
    wrk.body = body
  end
end

-- Each thread gets its own random sequence (a Lua state per thread, same default seed).
init = function(args)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000))
  if bodies_file ~= "" then
    local id = tonumber(wrk.thread:get("id"))
    local index = 0
    for line in io.lines(bodies_file) do
      if index >= skip and index % threads == id then
        bodies[#bodies + 1] = line
      end
      index = index + 1
    end
  end
end

if bodies_file ~= "" then
  request = function()
    -- Past the last line the bodies repeat: those answers are 401 and count as errors.
    position = position % #bodies + 1
    local line = bodies[position]
    if body_header ~= "" then
      local tab = line:find("\t", 1, true)
      local headers = {}
      for name, value in pairs(wrk.headers) do
        headers[name] = value
      end
      headers[body_header] = line:sub(1, tab - 1)
      return wrk.format(nil, nil, headers, line:sub(tab + 1))
    end
    return wrk.format(nil, nil, nil, line)
  end
end

if pool > 0 then
  request = function()
    local token = string.format("tk_bench%010d", math.random(0, pool - 1))
    return wrk.format(nil, nil, nil, "token=" .. token)
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, ' ..
    '"timeouts": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end

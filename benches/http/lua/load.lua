-- wrk script for one measured round of benches/http/run.
--
-- Static requests (healthz, hot: the token is a -H header) unless
-- HTTP_BENCH_TOKENS is set: then thread <id> sends each token of the file
-- <HTTP_BENCH_TOKENS>.<id> once, in order, and stops when it has none left
-- (a cold round ends when its tokens are spent or its duration is over,
-- whichever comes first; no token is ever sent twice). On stopping, a thread
-- creates <HTTP_BENCH_TOKENS>.done.<id> so that the runner can end wrk
-- early: wrk itself always sleeps for its whole -d.
--
-- done() prints one line, "RESULT key=value ...", that the runner parses.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } http_bench_timespec;
int clock_gettime(int clk_id, http_bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("http_bench_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000000 + math.floor(tonumber(timespec.tv_nsec) / 1000)
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

local prefix = os.getenv("HTTP_BENCH_TOKENS")
if prefix and prefix ~= "" then
  local file, head, tail, spare
  local calls = 0

  function init(args)
    -- Tokens are read one at a time as requests go: reading them all here
    -- would hold this thread back while the threads before it already run.
    file = assert(io.open(prefix .. "." .. id, "r"))
    local marker = "@@HTTP_BENCH_TOKEN@@"
    local request = wrk.format("GET", wrk.path, { ["Authorization"] = "Bearer " .. marker })
    local at = assert(request:find(marker, 1, true))
    head, tail = request:sub(1, at - 1), request:sub(at + #marker)
    -- Once the tokens are spent, until the loop stops: no token at all, so
    -- that none is repeated (at most a connection's worth of such requests).
    spare = wrk.format("GET", "/healthz")
    overflow, started_us, stopped_us = 0, 0, 0
  end

  function request()
    calls = calls + 1
    -- wrk calls request() of the first thread once, before the run, to
    -- check it: not a request sent, so not the start of the run.
    if started_us == 0 and (id ~= 1 or calls > 1) then
      started_us = now_us()
    end
    if stopped_us == 0 then
      local token = file:read("*l")
      if token and token ~= "" then
        return head .. token .. tail
      end
      stopped_us = now_us()
      file:close()
      local marker = io.open(prefix .. ".done." .. id, "w")
      if marker then marker:close() end
      wrk.thread:stop()
    end
    overflow = overflow + 1
    return spare
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local exhausted, first, latest_start, last, overflow = 0, nil, 0, 0, 0
  for _, t in ipairs(threads) do
    local started, stopped = t:get("started_us") or 0, t:get("stopped_us") or 0
    overflow = overflow + (t:get("overflow") or 0)
    if stopped > 0 then exhausted = exhausted + 1 end
    if started > 0 and (first == nil or started < first) then first = started end
    if started > latest_start then latest_start = started end
    if stopped > last then last = stopped end
  end
  -- A round whose threads all ran out of tokens lasted from the first
  -- request to the last token; otherwise it lasted wrk's duration.
  local elapsed = summary.duration
  if exhausted == #threads and first ~= nil and last > first then
    elapsed = last - first
  end
  io.write(string.format(
    "RESULT requests=%d elapsed_us=%d p50_us=%d p99_us=%d connect=%d read=%d write=%d status=%d timeout=%d exhausted=%d overflow=%d start_spread_us=%d\n",
    summary.requests, elapsed, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout, exhausted, overflow,
    first and (latest_start - first) or 0))
end

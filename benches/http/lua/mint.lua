-- wrk script that mints access tokens at the dev-issuer's token endpoint
-- for benches/http/run: thread <id> writes HTTP_BENCH_MINT_QUOTA tokens,
-- one a line, to <HTTP_BENCH_MINT_OUT>.<id>, then creates
-- <HTTP_BENCH_MINT_OUT>.done.<id> and stops. The request (method, body,
-- client authentication) is given by the runner in HTTP_BENCH_MINT_BODY and
-- HTTP_BENCH_MINT_AUTH.

wrk.method = "POST"
wrk.body = os.getenv("HTTP_BENCH_MINT_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("HTTP_BENCH_MINT_AUTH")

local out = os.getenv("HTTP_BENCH_MINT_OUT")
local quota = tonumber(os.getenv("HTTP_BENCH_MINT_QUOTA"))

function setup(thread)
  setup_count = (setup_count or 0) + 1
  thread:set("id", setup_count)
end

local file, minted, failed, finished = nil, 0, 0, false

function init(args)
  file = assert(io.open(out .. "." .. id, "w"))
end

function response(status, headers, body)
  if finished then return end
  local token = status == 200 and body:match('"access_token":"([^"]+)"')
  if token then
    file:write(token, "\n")
    minted = minted + 1
  else
    failed = failed + 1
    if failed <= 3 then
      io.stderr:write("mint: the token endpoint answered ", status, ": ", body, "\n")
    end
  end
  if minted >= quota then
    finished = true
    file:close()
    local marker = io.open(out .. ".done." .. id, "w")
    if marker then marker:close() end
    wrk.thread:stop()
  end
end

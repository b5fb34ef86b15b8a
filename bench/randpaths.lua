-- wrk script for bench.py S7: each request GETs a random path from a list (one URL path a line,
-- in the file given as the first script argument), chosen by a PRNG seeded with the second:
--   wrk -t1 -c32 -d10s -s randpaths.lua http://127.0.0.1:PORT/ -- /tmp/paths.txt 12345
-- Requests are pre-formatted in init() so per-request Lua cost is one random() and one index.
local reqs = {}
local n = 0

function init(args)
  local path = args[1]
  local f = assert(io.open(path, "r"), "cannot open path list " .. tostring(path))
  for line in f:lines() do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("GET", line)
    end
  end
  f:close()
  assert(n > 0, "empty path list")
  math.randomseed(tonumber(args[2]) or 1)
end

function request()
  return reqs[math.random(n)]
end

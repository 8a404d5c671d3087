-- Load script for wrk (bench/wrk.ts): cycles through the Authorization headers of a file, one a
-- line, counts the responses whose status is not the expected one, and prints one JSON line.
-- Arguments after `--`: headers file ('' for none), expected status, first line to send.
local requests = {}
local threads = {}
local expected = 200
-- Per thread: count of each unexpected status.
seen = {}

function setup (thread)
  table.insert(threads, thread)
end

function init (args)
  local file = args[1] or ''
  expected = tonumber(args[2] or '200')
  if file ~= '' then
    for line in io.lines(file) do
      requests[#requests + 1] = wrk.format(nil, nil, { Authorization = line })
    end
  end
  if #requests == 0 then requests[1] = wrk.format(nil, nil, {}) end
  -- Built once: each request only picks the next prepared text.
  i = (tonumber(args[3] or '0') or 0) % #requests
  other = 0
end

function request ()
  i = i + 1
  if i > #requests then i = 1 end
  return requests[i]
end

function response (status, headers, body)
  if status ~= expected then
    other = other + 1
    seen[status] = (seen[status] or 0) + 1
  end
end

-- CPU time of wrk itself, in clock ticks: whether the load generator had room to spare.
local function ticks ()
  local f = io.open('/proc/self/stat', 'r')
  if f == nil then return -1 end
  local stat = f:read('*a')
  f:close()
  local fields = {}
  for field in stat:match('%) (.*)'):gmatch('%S+') do fields[#fields + 1] = field end
  return tonumber(fields[12]) + tonumber(fields[13])
end

function done (summary, latency, requests)
  local others = 0
  local counts = {}
  for _, thread in ipairs(threads) do
    others = others + (thread:get('other') or 0)
    for status, count in pairs(thread:get('seen') or {}) do counts[status] = (counts[status] or 0) + count end
  end
  local statuses = {}
  for status, count in pairs(counts) do statuses[#statuses + 1] = string.format('"%d":%d', status, count) end
  local e = summary.errors
  io.write(string.format('BENCH {"requests":%d,"duration":%d,"socketErrors":%d,"timeouts":%d,"other":%d,"statuses":{%s},"p50":%d,"p99":%d,"ticks":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write, e.timeout, others, table.concat(statuses, ','),
    latency:percentile(50), latency:percentile(99), ticks()))
end

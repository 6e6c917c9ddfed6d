-- bench/pages.py's report from wrk: one line "WRK {json}" when the run is done, with the
-- requests, the run's length, the median and 95th percentile latency (microseconds) and the
-- errors: wrk's own (connect, read, write, timeout) and every answer other than 200 (a
-- redirect to the log-in page would otherwise pass for a fast page).
-- https://github.com/wg/wrk/blob/master/SCRIPTING

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  not_ok = 0
end

function response(status, headers, body)
  if status ~= 200 then
    not_ok = not_ok + 1
  end
end

function done(summary, latency, requests)
  local not_200 = 0
  for _, thread in ipairs(threads) do
    not_200 = not_200 + thread:get("not_ok")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "max_us": %d, '
      .. '"not_200": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency.max,
    not_200, e.connect, e.read, e.write, e.timeout
  ))
end

package ratelimit

// The scripts decide for one or more keys of one client (KEYS, all in one
// hash slot) at once: every key must allow for any to count, so a request
// denied by one tier uses none of another's quota. Times are microseconds on
// Redis's clock (TIME), so instances with skewed clocks still agree.
//
// ARGV[1] is the cost n; then two numbers per key. The reply is four
// integers per key: allowed (1/0), remaining, reset-after µs, retry-after µs.
// Numbers are written with %.0f because tostring would round big ones.

// gcraScript: ARGV per key = emission interval µs (fractional), burst. The value is the
// theoretical arrival time (TAT); the key expires when it is reached, since
// a missing key and a past TAT mean the same.
const gcraScript = `
local t = redis.call('TIME')
-- µs since 2023-11-14 keeps sub-µs TAT precision in a double
local now = (tonumber(t[1]) - 1700000000) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local out, tats, ok = {}, {}, true
for i = 1, #KEYS do
  local em = tonumber(ARGV[2 * i])
  local tol = em * tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now) or now
  if tat < now then tat = now end
  local newtat = tat + em * cost
  local diff = now - (newtat - tol)
  local j = 4 * (i - 1)
  if diff < 0 then
    ok = false
    out[j + 1] = 0
    out[j + 2] = math.floor((now - (tat - tol)) / em)
    out[j + 3] = tat - now
    out[j + 4] = -diff
  else
    tats[i] = newtat
    out[j + 1] = 1
    out[j + 2] = math.floor(diff / em)
    out[j + 3] = newtat - now
    out[j + 4] = 0
  end
end
if ok then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], string.format('%.3f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000))
  end
else
  for i = 1, #KEYS do
    local j = 4 * (i - 1)
    if out[j + 1] == 1 then
      -- not counted after all: report the quota as it stays
      local em = tonumber(ARGV[2 * i])
      out[j + 2] = out[j + 2] + cost
      out[j + 3] = out[j + 3] - em * cost
      if out[j + 3] < 0 then out[j + 3] = 0 end
    end
  end
end
return out
`

// slidingScript: ARGV per key = window µs, limit. The key is a hash of the
// current window's index (w), its count (c) and the previous window's
// count (p); the estimate is p × (unelapsed share of the window) + c.
const slidingScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local out, counts, ok = {}, {}, true
for i = 1, #KEYS do
  local win = tonumber(ARGV[2 * i])
  local limit = tonumber(ARGV[2 * i + 1])
  local idx = math.floor(now / win)
  local elapsed = now - idx * win
  local v = redis.call('HMGET', KEYS[i], 'w', 'c', 'p')
  local w, c, p = tonumber(v[1]), tonumber(v[2]) or 0, tonumber(v[3]) or 0
  if w ~= idx then
    if w == idx - 1 then p = c else p = 0 end
    c = 0
  end
  local est = p * (win - elapsed) / win + c
  local reset = 0
  if c > 0 then reset = 2 * win - elapsed elseif p > 0 then reset = win - elapsed end
  counts[i] = {idx, c, p, win, reset}
  local j = 4 * (i - 1)
  if est + cost > limit then
    ok = false
    local retry
    if c + cost <= limit then
      retry = math.ceil(win * (1 - (limit - c - cost) / p)) - elapsed
    else
      retry = (win - elapsed) + math.ceil(win * (1 - (limit - cost) / (c + 0.0)))
    end
    if retry < 1 then retry = 1 end
    out[j + 1] = 0
    out[j + 2] = math.max(0, math.floor(limit - est))
    out[j + 3] = reset
    out[j + 4] = retry
  else
    out[j + 1] = 1
    out[j + 2] = math.floor(limit - est - cost)
    out[j + 3] = 2 * win - elapsed
    out[j + 4] = 0
  end
end
if ok then
  for i = 1, #KEYS do
    local s = counts[i]
    redis.call('HSET', KEYS[i], 'w', string.format('%.0f', s[1]), 'c', s[2] + cost, 'p', s[3])
    redis.call('PEXPIRE', KEYS[i], math.ceil(2 * s[4] / 1000))
  end
else
  for i = 1, #KEYS do
    local j = 4 * (i - 1)
    if out[j + 1] == 1 then
      out[j + 2] = out[j + 2] + cost
      out[j + 3] = counts[i][5]
    end
  end
end
return out
`

// fixedScript: ARGV per key = window µs, limit. The key is a hash of the
// window index (w) and its count (c); windows are aligned to the epoch.
const fixedScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local out, counts, ok = {}, {}, true
for i = 1, #KEYS do
  local win = tonumber(ARGV[2 * i])
  local limit = tonumber(ARGV[2 * i + 1])
  local idx = math.floor(now / win)
  local left = (idx + 1) * win - now
  local v = redis.call('HMGET', KEYS[i], 'w', 'c')
  local c = 0
  if tonumber(v[1]) == idx then c = tonumber(v[2]) or 0 end
  counts[i] = {idx, c, left}
  local j = 4 * (i - 1)
  out[j + 3] = left
  if c + cost > limit then
    ok = false
    out[j + 1] = 0
    out[j + 2] = limit - c
    out[j + 4] = left
  else
    out[j + 1] = 1
    out[j + 2] = limit - c - cost
    out[j + 4] = 0
  end
end
if ok then
  for i = 1, #KEYS do
    local s = counts[i]
    redis.call('HSET', KEYS[i], 'w', string.format('%.0f', s[1]), 'c', s[2] + cost)
    redis.call('PEXPIRE', KEYS[i], math.max(1, math.ceil(s[3] / 1000)))
  end
else
  for i = 1, #KEYS do
    local j = 4 * (i - 1)
    if out[j + 1] == 1 then out[j + 2] = out[j + 2] + cost end
  end
end
return out
`

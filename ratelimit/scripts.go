package ratelimit

// decideScript decides for one or more keys of one client (KEYS, all in one
// hash slot) at once, whatever the algorithm of each: every key must allow
// for any to count, so a request denied by one tier uses none of another's
// quota. Times are microseconds on Redis's clock (TIME), so instances with
// skewed clocks still agree.
//
// ARGV[1] is the cost n; then three numbers per key: the algorithm (0 GCRA,
// 1 sliding window, 2 fixed window) and two parameters:
//   - GCRA: emission interval µs (fractional), burst. The value is the
//     theoretical arrival time (TAT); the key expires when it is reached,
//     since a missing key and a past TAT mean the same.
//   - sliding window: window µs, limit. The key is a hash of the current
//     window's index (w), its count (c) and the previous window's count (p);
//     the estimate is p × (unelapsed share of the window) + c.
//   - fixed window: window µs, limit. The key is a hash of the window index
//     (w) and its count (c); windows are aligned to the epoch.
//
// The reply is four integers per key: allowed (1/0), remaining, reset-after
// µs, retry-after µs. Durations are rounded up, so a Retry-After is never
// earlier than the moment Redis would allow. Numbers are written with %.0f
// because tostring would round big ones.
const decideScript = `
local t = redis.call('TIME')
local sec, usec = tonumber(t[1]), tonumber(t[2])
-- GCRA: µs since 2023-11-14 keeps sub-µs TAT precision in a double
local gnow = (sec - 1700000000) * 1000000 + usec
-- windows: µs since the epoch, so windows align across instances
local now = sec * 1000000 + usec
local cost = tonumber(ARGV[1])
local out, st, ok = {}, {}, true
for i = 1, #KEYS do
  local algo = tonumber(ARGV[3 * i - 1])
  local p1, p2 = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local j = 4 * (i - 1)
  if algo == 0 then
    local em, tol = p1, p1 * p2
    local tat = tonumber(redis.call('GET', KEYS[i]) or gnow) or gnow
    if tat < gnow then tat = gnow end
    local newtat = tat + em * cost
    local diff = gnow - (newtat - tol)
    if diff < 0 then
      out[j + 1] = 0
      out[j + 2] = math.floor((gnow - (tat - tol)) / em)
      out[j + 3] = math.ceil(tat - gnow)
      out[j + 4] = math.ceil(-diff)
    else
      out[j + 1] = 1
      out[j + 2] = math.floor(diff / em)
      out[j + 3] = math.ceil(newtat - gnow)
      out[j + 4] = 0
    end
    st[i] = {newtat, math.ceil(tat - gnow)}
  elseif algo == 1 then
    local win, limit = p1, p2
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
    st[i] = {idx, c, p, win, reset}
    if est + cost > limit then
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
  else
    local win, limit = p1, p2
    local idx = math.floor(now / win)
    local left = (idx + 1) * win - now
    local v = redis.call('HMGET', KEYS[i], 'w', 'c')
    local c = 0
    if tonumber(v[1]) == idx then c = tonumber(v[2]) or 0 end
    st[i] = {idx, c, left}
    out[j + 3] = left
    if c + cost > limit then
      out[j + 1] = 0
      out[j + 2] = limit - c
      out[j + 4] = left
    else
      out[j + 1] = 1
      out[j + 2] = limit - c - cost
      out[j + 4] = 0
    end
  end
  if out[j + 1] == 0 then ok = false end
end
for i = 1, #KEYS do
  local algo = tonumber(ARGV[3 * i - 1])
  local s = st[i]
  local j = 4 * (i - 1)
  if ok then
    if algo == 0 then
      redis.call('SET', KEYS[i], string.format('%.3f', s[1]), 'PX', math.max(1, math.ceil((s[1] - gnow) / 1000)))
    elseif algo == 1 then
      redis.call('HSET', KEYS[i], 'w', string.format('%.0f', s[1]), 'c', s[2] + cost, 'p', s[3])
      redis.call('PEXPIRE', KEYS[i], math.ceil(2 * s[4] / 1000))
    else
      redis.call('HSET', KEYS[i], 'w', string.format('%.0f', s[1]), 'c', s[2] + cost)
      redis.call('PEXPIRE', KEYS[i], math.max(1, math.ceil(s[3] / 1000)))
    end
  elseif out[j + 1] == 1 then
    -- not counted after all: report the quota as it stays
    out[j + 2] = out[j + 2] + cost
    if algo == 0 then out[j + 3] = s[2] elseif algo == 1 then out[j + 3] = s[5] end
  end
end
return out
`

// refundScript gives back ARGV[1] events to each key (same ARGV layout as
// decideScript), never more than the key counted: a GCRA TAT moves back by
// cost × emission but not before now; a window count drops by cost but not
// below zero, in the current window (and, for the sliding window, the
// previous one when the current has none). It replies with the number of
// keys changed.
const refundScript = `
local t = redis.call('TIME')
local sec, usec = tonumber(t[1]), tonumber(t[2])
local gnow = (sec - 1700000000) * 1000000 + usec
local now = sec * 1000000 + usec
local cost = tonumber(ARGV[1])
local changed = 0
for i = 1, #KEYS do
  local algo = tonumber(ARGV[3 * i - 1])
  local p1 = tonumber(ARGV[3 * i])
  if algo == 0 then
    local tat = tonumber(redis.call('GET', KEYS[i]))
    if tat and tat > gnow then
      local newtat = tat - p1 * cost
      if newtat <= gnow then
        redis.call('DEL', KEYS[i])
      else
        redis.call('SET', KEYS[i], string.format('%.3f', newtat), 'PX', math.max(1, math.ceil((newtat - gnow) / 1000)))
      end
      changed = changed + 1
    end
  else
    local idx = math.floor(now / p1)
    local v = redis.call('HMGET', KEYS[i], 'w', 'c')
    local w, c = tonumber(v[1]), tonumber(v[2]) or 0
    if c > 0 and (w == idx or (algo == 1 and w == idx - 1)) then
      redis.call('HSET', KEYS[i], 'c', math.max(0, c - cost))
      changed = changed + 1
    end
  end
end
return changed
`
